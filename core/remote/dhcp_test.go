package remote

import (
	"bytes"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/internal/dhcp"
)

func windowsInform(ciaddr netip.Addr) []byte {
	return dhcp.AppendInform(nil, ciaddr, [6]byte{2, 0, 0x5e, 0x10, 0x20, 0x30}, 0x1d2c3b4a)
}

// A road warrior's DHCPINFORM is answered through its SA with the inside
// networks as classless static routes, the DNS suffix and server, from
// the DNS server's address, in a well-formed IPv4/UDP packet. A second
// within the second, another message type, a stranger, a malformed one
// and a full tunnel's client get nothing.
func TestDHCPInformAnswered(t *testing.T) {
	r := v2Access(t)
	r.cfg.IKEv2.Inside = []config.Prefix{{Prefix: netip.MustParsePrefix("10.2.0.0/24")}, {Prefix: netip.MustParsePrefix("10.3.0.0/16")}}
	r.cfg.IKEv2.DNSDomains = []string{"corp.example"}
	now := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	var sent [][]byte
	r.SetIKEv2(nil, nil, func(addr netip.Addr, pkt []byte) error {
		sent = append(sent, pkt)
		return nil
	})
	a, _, err := r.IKEv2Lease("alice", netip.MustParseAddrPort("192.0.2.10:4500"), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OnDHCP(a, windowsInform(a)) || len(sent) != 1 {
		t.Fatalf("not answered: %d sent", len(sent))
	}
	pkt := sent[0]
	info, err := esp.ParseIP(pkt)
	if err != nil || info.Src.String() != "10.2.0.53" || info.Dst != a || info.Proto != esp.ProtoUDP || info.TotalLen != len(pkt) {
		t.Fatalf("IP header %+v, %v", info, err)
	}
	udp := pkt[info.HeaderLen:]
	if udp[1] != dhcp.ServerPort || udp[3] != dhcp.ClientPort || esp.Checksum(udp, esp.PseudoHeaderSum(info.Src, info.Dst, esp.ProtoUDP, len(udp))) != 0 {
		t.Fatalf("UDP header % x", udp[:8])
	}
	ack, err := dhcp.Parse(udp[8:])
	routes := []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("10.3.0.0/16")}
	if err != nil || ack.Type != dhcp.Ack || ack.XID != 0x1d2c3b4a || ack.CIAddr != a || ack.ServerID != info.Src ||
		!slices.Equal(ack.Routes, routes) || ack.Domain != "corp.example" || len(ack.DNS) != 1 || ack.DNS[0] != info.Src {
		t.Fatalf("answer %+v, %v", ack, err)
	}
	if r.OnDHCP(a, windowsInform(a)) {
		t.Fatal("a second answer within the second")
	}
	now = now.Add(time.Second)
	discover := windowsInform(a)
	discover[bytes.Index(discover, []byte{53, 1, dhcp.Inform})+2] = 1
	for name, c := range map[string]struct {
		from netip.Addr
		msg  []byte
	}{
		"a DHCPDISCOVER":  {a, discover},
		"a stranger":      {netip.MustParseAddr("10.8.0.99"), windowsInform(a)},
		"a truncated one": {a, windowsInform(a)[:240]},
	} {
		if r.OnDHCP(c.from, c.msg) {
			t.Errorf("%s answered", name)
		}
	}
	if !r.OnDHCP(a, windowsInform(a)) || len(sent) != 2 {
		t.Fatalf("not answered a second later: %d sent", len(sent))
	}
	r.cfg.IKEv2.Inside = nil
	now = now.Add(time.Second)
	if r.OnDHCP(a, windowsInform(a)) {
		t.Fatal("a full tunnel's client answered")
	}
}
