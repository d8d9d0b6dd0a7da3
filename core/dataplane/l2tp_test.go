package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/dataplane/dptest"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/l2tp"
)

// l2tpPair is a server plane (A, the LNS) and a client plane (B, the LAC)
// with a transport SA pair between the gateways, a cleartext L2TP wire,
// and one session each (over the SAs, or in clear).
type l2tpPair struct {
	a, b       *side
	clearA     *dptest.Conn // A's cleartext L2TP socket; B's is clearB
	clearB     *dptest.Conn
	srv, cli   *L2TPSession
	mu         sync.Mutex
	control    []L2TPControl
	clientAddr netip.Addr
}

// send seals an L2TP message from B to A through B's SA, as B's
// control path would.
func (lp *l2tpPair) send(t *testing.T, l2 []byte) {
	sa := lp.b.db.Outbound(sad.OutKey{Rule: "ra", Peer: gwA})
	buf := make([]byte, 256)
	start := 64
	n := copy(buf[start+8:], l2)
	binary.BigEndian.PutUint16(buf[start:], 1701)
	binary.BigEndian.PutUint16(buf[start+2:], 1701)
	binary.BigEndian.PutUint16(buf[start+4:], uint16(8+n))
	out, err := sa.ESP.Seal(buf[start-sa.ESP.Headroom():start+8+n], 8+n, esp.ProtoUDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.b.udp.WriteTo(out, netip.AddrPortFrom(gwA, 4500)); err != nil {
		t.Fatal(err)
	}
}

// waitControl waits for n control packets.
func (lp *l2tpPair) waitControl(t *testing.T, n int) {
	t.Helper()
	await.State(t, 5*time.Second, fmt.Sprintf("%d control packets", n), func() (bool, string) {
		lp.mu.Lock()
		defer lp.mu.Unlock()
		return len(lp.control) >= n, fmt.Sprintf("%d", len(lp.control))
	})
}

var (
	clearEndA = netip.AddrPortFrom(gwA, 1701)
	clearEndB = netip.AddrPortFrom(gwB, 1701)
)

func newL2TPPair(t *testing.T, udp bool) *l2tpPair { return newL2TPPairWith(t, udp, false) }

// newL2TPPairWith makes the pair; clear puts the sessions on the
// cleartext wire.
func newL2TPPairWith(t *testing.T, udp, clear bool) *l2tpPair {
	lp := &l2tpPair{clientAddr: netip.MustParseAddr("10.8.0.2")}
	rawA, rawB := dptest.Wire(netip.AddrPortFrom(gwA, 0), netip.AddrPortFrom(gwB, 0))
	udpA, udpB := dptest.Wire(netip.AddrPortFrom(gwA, 4500), netip.AddrPortFrom(gwB, 4500))
	lp.clearA, lp.clearB = dptest.Wire(clearEndA, clearEndB)
	mk := func(raw, udp, l2 *dptest.Conn, me, peer netip.Addr) *side {
		s := &side{tun: dptest.NewTUN(DeviceHeadroom), raw: raw, udp: udp, db: sad.New()}
		tab := NewL2TPTable()
		s.plane = New(Config{TUN: s.tun, Raw: raw, UDP: udp, SAD: s.db, L2TP: tab, L2TPClear: l2, L2TPClearLocal: netip.AddrPortFrom(me, 1701), OnL2TPControl: func(c L2TPControl) {
			lp.mu.Lock()
			lp.control = append(lp.control, c)
			lp.mu.Unlock()
		}}, gatewayPolicy(me, peer, netA, netB))
		s.plane.Start()
		t.Cleanup(s.plane.Close)
		return s
	}
	lp.a, lp.b = mk(rawA, udpA, lp.clearA, gwA, gwB), mk(rawB, udpB, lp.clearB, gwB, gwA)
	sel := []sad.Selector{{Src: netip.PrefixFrom(gwB, 32), Dst: netip.PrefixFrom(gwA, 32), Proto: 17, SrcPort: 1701, DstPort: 1701}}
	install(t, lp.a, lp.b, gwA, gwB, 0x7001, cbc, sad.Transport, udp, "ra", sel)
	install(t, lp.b, lp.a, gwB, gwA, 0x7002, cbc, sad.Transport, udp, "ra", sel)
	port := uint16(0)
	if udp {
		port = 4500
	}
	lp.srv = &L2TPSession{Local: netip.AddrPortFrom(gwA, port), Peer: netip.AddrPortFrom(gwB, port), LocalTunnel: 10, LocalSession: 11,
		PeerTunnel: 20, PeerSession: 21, Client: lp.clientAddr, User: "alice", MRU: 1400, OutKey: sad.OutKey{Rule: "ra", Peer: gwB}}
	lp.cli = &L2TPSession{Local: netip.AddrPortFrom(gwB, port), Peer: netip.AddrPortFrom(gwA, port), LocalTunnel: 20, LocalSession: 21,
		PeerTunnel: 10, PeerSession: 11, Client: lp.clientAddr, MRU: 1400, LAC: true, SendSeq: true, OutKey: sad.OutKey{Rule: "ra", Peer: gwA}}
	if clear {
		lp.srv.Clear, lp.srv.Local, lp.srv.Peer, lp.srv.OutKey = true, clearEndA, clearEndB, sad.OutKey{}
		lp.cli.Clear, lp.cli.Local, lp.cli.Peer, lp.cli.OutKey = true, clearEndB, clearEndA, sad.OutKey{}
	}
	if _, err := lp.a.plane.cfg.L2TP.Add(lp.srv); err != nil {
		t.Fatal(err)
	}
	if _, err := lp.b.plane.cfg.L2TP.Add(lp.cli); err != nil {
		t.Fatal(err)
	}
	return lp
}

func TestL2TPSessionBothWays(t *testing.T) {
	for _, c := range []struct{ udp, clear bool }{{false, false}, {true, false}, {false, true}} {
		lp := newL2TPPairWith(t, c.udp, c.clear)
		udp := c.udp
		inside := netip.MustParseAddr("10.1.0.5")
		up := ipPacket(lp.clientAddr, inside, 17, 5000, 53, "query")
		lp.b.tun.In <- up
		expect(t, lp.a.tun, up)
		down := ipPacket(inside, lp.clientAddr, 17, 53, 5000, "answer, a little longer")
		lp.a.tun.In <- down
		expect(t, lp.b.tun, down)
		n := lp.srv.Counters()
		if n.PacketsIn != 1 || n.PacketsOut != 1 || n.BytesIn != uint64(len(up)) || n.BytesOut != uint64(len(down)) {
			t.Fatalf("udp=%v clear=%v server counters %+v", udp, c.clear, n)
		}
		// Each way a session's packets take is its own: nothing crossed
		// the other wire.
		if clearL2TP := lp.a.plane.Counters().ClearL2TP; (clearL2TP > 0) != c.clear {
			t.Fatalf("clear=%v: %d datagrams on the cleartext socket", c.clear, clearL2TP)
		}
		if c.clear && lp.a.db.Len()+lp.b.db.Len() != 4 {
			t.Fatal("SAs changed")
		}
	}
}

// TestL2TPCleartextKeptApart: a cleartext datagram never feeds an IPsec
// session, nor an ESP one a cleartext session; cleartext control goes to
// the plugin with SPI 0 and our L2TP socket's address; an Echo-Request
// on a cleartext session is answered in clear.
func TestL2TPCleartextKeptApart(t *testing.T) {
	data := func(tunnel, session uint16, pkt []byte) []byte {
		return append(append(l2tp.AppendDataHeader(nil, tunnel, session, false, 0), 0xff, 0x03, 0x00, 0x21), pkt...)
	}
	pkt := ipPacket(netip.MustParseAddr("10.8.0.2"), netip.MustParseAddr("10.1.0.5"), 17, 5000, 53, "query")

	// inject hands the plane an L2TP message as if read from the given
	// way, from peer.
	inject := func(p *Plane, from l2tpFrom, msg []byte) {
		buf := make([]byte, headroom+len(msg))
		copy(buf[headroom:], msg)
		p.l2tpMessage(from, buf, buf[headroom:], nil)
	}

	// An IPsec session over UDP; its ids in clear from its peer's own
	// address and NAT-T port (a spoofed source) are refused.
	lp := newL2TPPair(t, true)
	inject(lp.a.plane, l2tpFrom{local: clearEndA, peer: lp.srv.Peer, port: 4500, clear: true}, data(10, 11, pkt))
	waitDrop(t, lp.a.plane, "wrong-peer", 1)
	if err := lp.clearB.WriteTo(data(10, 11, pkt), clearEndA); err != nil {
		t.Fatal(err)
	}
	waitDrop(t, lp.a.plane, "wrong-peer", 2)
	if n := lp.srv.Counters(); n.PacketsIn != 0 {
		t.Fatalf("a cleartext datagram reached an IPsec session: %+v", n)
	}

	// A cleartext session; its ids through an SA, even one from its
	// peer's address and port, are refused.
	lp = newL2TPPairWith(t, true, true)
	inject(lp.a.plane, l2tpFrom{local: netip.AddrPortFrom(gwA, 4500), peer: clearEndB, spi: 0x7001, port: 1701}, data(10, 11, pkt))
	waitDrop(t, lp.a.plane, "wrong-peer", 1)
	lp.send(t, data(10, 11, pkt))
	waitDrop(t, lp.a.plane, "wrong-peer", 2)
	if n := lp.srv.Counters(); n.PacketsIn != 0 {
		t.Fatalf("an ESP datagram reached a cleartext session: %+v", n)
	}
	// The right way in works.
	inject(lp.a.plane, l2tpFrom{local: clearEndA, peer: clearEndB, port: 1701, clear: true}, data(10, 11, pkt))
	if n := lp.srv.Counters(); n.PacketsIn != 1 {
		t.Fatalf("the cleartext session's own datagram: %+v", n)
	}
	hello := (&l2tp.Message{Type: l2tp.MsgHello}).AppendAVPs(nil, nil, nil)
	if err := lp.clearB.WriteTo(append(l2tp.AppendControlHeader(nil, 10, 0, 3, 4, len(hello)), hello...), clearEndA); err != nil {
		t.Fatal(err)
	}
	lp.waitControl(t, 1)
	lp.mu.Lock()
	c := lp.control[0]
	lp.mu.Unlock()
	if c.PPP || c.SPI != 0 || c.Local != clearEndA || c.Peer != clearEndB || c.ClientL2TPPort != 1701 || c.Tunnel != 10 {
		t.Fatalf("cleartext control: %+v", c)
	}
	lp.srv.Magic = 0x01020304
	echo := append(l2tp.AppendDataHeader(nil, 10, 11, false, 0), 0xff, 0x03, 0xc0, 0x21, 9, 7, 0, 8, 0xaa, 0xbb, 0xcc, 0xdd)
	if err := lp.clearB.WriteTo(echo, clearEndA); err != nil {
		t.Fatal(err)
	}
	lp.waitControl(t, 2) // the reply, at the client's plane
	lp.mu.Lock()
	c = lp.control[1]
	lp.mu.Unlock()
	if !c.PPP || c.SPI != 0 || c.Tunnel != 20 || c.Session != 21 || c.Payload[4] != 10 || lp.srv.Counters().Echoes != 1 {
		t.Fatalf("echo reply: %+v", c)
	}
}

func TestL2TPSpoofAndUnknownSession(t *testing.T) {
	lp := newL2TPPair(t, true)
	// The client sends from an address that is not its own.
	lp.b.tun.In <- ipPacket(netip.MustParseAddr("10.8.0.99"), netip.MustParseAddr("10.1.0.5"), 17, 1, 2, "x")
	waitDrop(t, lp.a.plane, "l2tp-spoofed-source", 1)
	// A session the server no longer has.
	if _, ok := lp.a.plane.cfg.L2TP.Remove(lp.srv.Handle); !ok {
		t.Fatal("remove")
	}
	lp.b.tun.In <- ipPacket(lp.clientAddr, netip.MustParseAddr("10.1.0.5"), 17, 1, 2, "x")
	waitDrop(t, lp.a.plane, "l2tp-no-session", 1)
	if lp.a.plane.cfg.L2TP.Len() != 0 {
		t.Fatal("table not empty")
	}
}

// TestL2TPControlGoesToThePlugin sends a control message and an LCP frame
// through the SA and checks the plane hands both over with their ids.
func TestL2TPControlGoesToThePlugin(t *testing.T) {
	lp := newL2TPPair(t, true)
	send := func(l2 []byte) { lp.send(t, l2) }
	hello := (&l2tp.Message{Type: l2tp.MsgHello}).AppendAVPs(nil, nil, nil)
	send(append(l2tp.AppendControlHeader(nil, 10, 0, 3, 4, len(hello)), hello...))
	lcp := append(l2tp.AppendDataHeader(nil, 10, 11, false, 0), 0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4) // Configure-Request
	send(lcp)
	lp.waitControl(t, 2)
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if len(lp.control) != 2 {
		t.Fatalf("%d control packets", len(lp.control))
	}
	c0, c1 := lp.control[0], lp.control[1]
	if c0.PPP || c0.Tunnel != 10 || c0.Peer != netip.AddrPortFrom(gwB, 4500) || c0.ClientL2TPPort != 1701 {
		t.Errorf("control: %+v", c0)
	}
	if !c1.PPP || c1.Tunnel != 10 || c1.Session != 11 || c1.Payload[2] != 0xc0 {
		t.Errorf("ppp: %+v", c1)
	}
}

func TestClampMSS(t *testing.T) {
	syn := make([]byte, 20+24)
	esp.PutIPv4Header(syn, netip.MustParseAddr("10.8.0.2"), netip.MustParseAddr("10.1.0.5"), 6, 64, 0, 24)
	tcp := syn[20:]
	tcp[12] = 6 << 4
	tcp[13] = 0x02
	copy(tcp[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksumFor(syn))
	info, _ := esp.ParseIP(syn)
	clampMSS(syn, info, 1400)
	if mss := binary.BigEndian.Uint16(tcp[22:]); mss != 1360 {
		t.Fatalf("MSS %d", mss)
	}
	if got := binary.BigEndian.Uint16(tcp[16:]); got != tcpChecksumFor(syn) {
		t.Fatalf("checksum %04x, want %04x", got, tcpChecksumFor(syn))
	}
	// A smaller MSS stays.
	binary.BigEndian.PutUint16(tcp[22:], 1200)
	clampMSS(syn, info, 1400)
	if binary.BigEndian.Uint16(tcp[22:]) != 1200 {
		t.Fatal("a smaller MSS was raised")
	}
}

// tcpChecksumFor computes the TCP checksum of an IPv4 packet from scratch.
func tcpChecksumFor(pkt []byte) uint16 {
	tcp := pkt[20:]
	saved := binary.BigEndian.Uint16(tcp[16:])
	binary.BigEndian.PutUint16(tcp[16:], 0)
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(pkt[12:20])
	sum += 6 + uint32(len(tcp))
	add(tcp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], saved)
	return ^uint16(sum)
}

// BenchmarkL2TPOutbound: framing and sealing a session's packet (esp),
// and framing a cleartext session's (clear).
func BenchmarkL2TPOutbound(b *testing.B) {
	for _, clear := range []bool{false, true} {
		name := map[bool]string{false: "esp", true: "clear"}[clear]
		b.Run(name, func(b *testing.B) {
			lp := newL2TPPairWith(&testing.T{}, true, clear)
			buf := make([]byte, headroom+1500+64)
			pkt := ipPacket(netip.MustParseAddr("10.1.0.5"), lp.clientAddr, 17, 53, 5000, string(make([]byte, 1372)))
			info, _ := esp.ParseIP(pkt)
			q := &lp.a.plane.txUDP
			if clear {
				q = &lp.a.plane.txClear
			}
			q.init(discardConn{}) // measure the framing and sealing, not the fake wire's copies
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				copy(buf[headroom:], pkt)
				lp.a.plane.l2tpOutbound(buf, info, lp.srv)
				q.msgs = q.msgs[:0]
			}
		})
	}
}

type discardConn struct{}

func (discardConn) ReadFrom([]byte) ([]byte, netip.AddrPort, error) { select {} }
func (discardConn) WriteTo([]byte, netip.AddrPort) error            { return nil }
func (discardConn) Close() error                                    { return nil }

// TestL2TPEchoAnsweredByTheCore: an installed session's LCP Echo-Request is
// answered by the data path with the session's magic number, so echoes
// keep working while the plugin restarts; the plugin never sees it.
func TestL2TPEchoAnsweredByTheCore(t *testing.T) {
	lp := newL2TPPair(t, true)
	lp.srv.Magic = 0x01020304
	lp.send(t, append(l2tp.AppendDataHeader(nil, 10, 11, false, 0), 0xff, 0x03, 0xc0, 0x21, 9, 7, 0, 12, 0xaa, 0xbb, 0xcc, 0xdd, 'p', 'i', 'n', 'g'))
	lp.waitControl(t, 1)
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if len(lp.control) != 1 {
		t.Fatalf("%d control packets, want only the reply at the client", len(lp.control))
	}
	c := lp.control[0]
	want := []byte{0xff, 0x03, 0xc0, 0x21, 10, 7, 0, 12, 1, 2, 3, 4, 'p', 'i', 'n', 'g'}
	if !c.PPP || c.Tunnel != 20 || c.Session != 21 || string(c.Payload) != string(want) {
		t.Fatalf("reply at the client: %+v, want payload % x", c, want)
	}
	if lp.srv.Counters().Echoes != 1 {
		t.Fatalf("echoes answered: %+v", lp.srv.Counters())
	}
}
