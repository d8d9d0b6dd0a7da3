package dhcp

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/labs/pcap"
)

// RFC 3442 section 3's table of destination encodings, each with the
// router 0.0.0.0 after it, both ways.
func TestClasslessRFC3442(t *testing.T) {
	for _, c := range []struct {
		prefix string
		want   []byte
	}{
		{"0.0.0.0/0", []byte{0}},
		{"10.0.0.0/8", []byte{8, 10}},
		{"10.0.0.0/16", []byte{16, 10, 0}},
		{"10.17.0.0/16", []byte{16, 10, 17}},
		{"10.27.129.0/24", []byte{24, 10, 27, 129}},
		{"10.229.0.128/25", []byte{25, 10, 229, 0, 128}},
		{"10.198.122.47/32", []byte{32, 10, 198, 122, 47}},
	} {
		p := netip.MustParsePrefix(c.prefix)
		got := AppendClassless(nil, []netip.Prefix{p})
		if want := append(c.want, 0, 0, 0, 0); !bytes.Equal(got, want) {
			t.Errorf("%s: % x, want % x", c.prefix, got, want)
		}
		if back, err := parseClassless(got); err != nil || len(back) != 1 || back[0] != p {
			t.Errorf("%s read back as %v, %v", c.prefix, back, err)
		}
	}
	if _, err := parseClassless([]byte{33, 1, 2, 3, 4, 5, 0, 0, 0, 0}); !errors.Is(err, ErrMalformed) {
		t.Errorf("a /33: %v", err)
	}
}

// A DHCPINFORM as Windows sends it, and the DHCPACK to it, read back and
// by tshark as well formed.
func TestInformAndAck(t *testing.T) {
	client := netip.MustParseAddr("10.8.0.2")
	inform := AppendInform(nil, client, [6]byte{2, 0, 0x5e, 1, 2, 3}, 0x1d2c3b4a)
	req, err := Parse(inform)
	if err != nil || req.Op != BootRequest || req.Type != Inform || req.CIAddr != client || req.XID != 0x1d2c3b4a ||
		!req.Wants(OptMSClassless) || req.Wants(51) {
		t.Fatalf("%+v %v", req, err)
	}
	a := Answer{Server: netip.MustParseAddr("10.2.0.53"), Domain: "corp.example", DNS: []netip.Addr{netip.MustParseAddr("10.2.0.53")},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"), netip.MustParsePrefix("10.3.0.0/16")}}
	ack := AppendAck(nil, req, a)
	got, err := Parse(ack)
	if err != nil || got.Op != BootReply || got.Type != Ack || got.XID != req.XID || got.CIAddr != client || got.ServerID != a.Server ||
		!slices.Equal(got.Routes, a.Routes) || got.Domain != a.Domain || !slices.Equal(got.DNS, a.DNS) || !bytes.Equal(ack[16:20], []byte{0, 0, 0, 0}) {
		t.Fatalf("%+v %v", got, err)
	}
	// Asked for nothing but 249: gets 249 alone.
	req.Params = []byte{OptMSClassless}
	if got, _ := Parse(AppendAck(nil, req, a)); !slices.Equal(got.Routes, a.Routes) || got.Domain != "" || got.DNS != nil {
		t.Fatalf("%+v", got)
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: tshark is installed by make test as root")
	}
	out, err := pcap.Tshark(t.TempDir(), []pcap.Datagram{
		{Src: netip.AddrPortFrom(client, ClientPort), Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), ServerPort), Payload: inform},
		{Src: netip.AddrPortFrom(a.Server, ServerPort), Dst: netip.AddrPortFrom(client, ClientPort), Payload: ack}}, "-Y", "dhcp")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if bad := pcap.Malformed(out); len(bad) > 0 {
		t.Fatalf("tshark flagged:\n%s\n\n%s", strings.Join(bad, "\n"), out)
	}
	for _, w := range []string{"DHCP: Inform (8)", "DHCP: ACK (5)", "Classless Static Route", "10.3.0.0/16", "Private/Classless Static Route (Microsoft)", "corp.example", "MSFT 5.0"} {
		if !strings.Contains(out, w) {
			t.Errorf("tshark's dissection lacks %q:\n%s", w, out)
		}
	}
}

// Packet's UDP checksum verifies.
func TestPacket(t *testing.T) {
	from, to := netip.MustParseAddr("10.2.0.53"), netip.MustParseAddr("10.8.0.2")
	pkt := Packet(from, to, ServerPort, ClientPort, []byte("payload"))
	if len(pkt) != 20+8+7 || pkt[9] != 17 || pkt[21] != ServerPort || pkt[23] != ClientPort {
		t.Fatalf("% x", pkt)
	}
}

// FuzzParse: any datagram is read or refused with ErrMalformed; what is
// read answers to a well-formed DHCPACK that reads back.
func FuzzParse(f *testing.F) {
	a := netip.MustParseAddr("10.8.0.2")
	f.Add(AppendInform(nil, a, [6]byte{2}, 1))
	f.Add(AppendInform(nil, a, [6]byte{2}, 1)[:fixedLen+6])
	req, _ := Parse(AppendInform(nil, a, [6]byte{2}, 1))
	f.Add(AppendAck(nil, req, Answer{Server: a, Routes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Domain: "x"}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		ack := AppendAck(nil, m, Answer{Server: netip.MustParseAddr("10.2.0.1"), Routes: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")}, Domain: "corp.example"})
		back, err := Parse(ack)
		if err != nil || back.Type != Ack || back.XID != m.XID {
			t.Fatalf("answer %+v, %v", back, err)
		}
	})
}
