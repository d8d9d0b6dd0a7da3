package ppp

import (
	"net/netip"
	"testing"
)

// pipe runs two automata against each other until quiet (bounded).
type pipe struct {
	a, b     *FSM
	toA, toB []Packet
}

func (p *pipe) run(t *testing.T) {
	t.Helper()
	for range 200 {
		if len(p.toA) == 0 && len(p.toB) == 0 {
			return
		}
		if len(p.toB) > 0 {
			x := p.toB[0]
			p.toB = p.toB[1:]
			p.b.Input(x)
		}
		if len(p.toA) > 0 {
			x := p.toA[0]
			p.toA = p.toA[1:]
			p.a.Input(x)
		}
	}
	t.Fatal("never settled")
}

func (p *pipe) open(t *testing.T) {
	for _, f := range []*FSM{p.a, p.b} {
		f.Open()
		f.Up()
	}
	p.run(t)
	if p.a.State() != Opened || p.b.State() != Opened {
		t.Fatalf("states %v %v", p.a.State(), p.b.State())
	}
}

func counter(start uint32) func() uint32 { n := start; return func() uint32 { n++; return n } }

func lcpPair(serverAuth, clientAuth []AuthProto) (*pipe, *LCP, *LCP) {
	p := &pipe{}
	s := NewLCP(true, serverAuth, 1400, counter(100))
	c := NewLCP(false, clientAuth, 1400, counter(200))
	s.OnSend = func(x Packet) { p.toB = append(p.toB, x) }
	c.OnSend = func(x Packet) { p.toA = append(p.toA, x) }
	p.a, p.b = NewFSM(s), NewFSM(c)
	return p, s, c
}

func TestLCPAgreesOnMSCHAPv2(t *testing.T) {
	p, s, c := lcpPair([]AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}, []AuthProto{AuthMSCHAPv2, AuthPAP})
	p.open(t)
	if s.Agreed() != AuthMSCHAPv2 || c.Agreed() != AuthMSCHAPv2 {
		t.Fatalf("agreed %v / %v", s.Agreed(), c.Agreed())
	}
}

// TestLCPClientNaksAuth: a client that only does PAP naks MS-CHAPv2 and
// the server moves down its list.
func TestLCPClientNaksAuth(t *testing.T) {
	p, s, c := lcpPair([]AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}, []AuthProto{AuthPAP})
	p.open(t)
	if s.Agreed() != AuthPAP || c.Agreed() != AuthPAP {
		t.Fatalf("agreed %v / %v", s.Agreed(), c.Agreed())
	}
}

// TestLCPClientAnswersEAPWithNak: offered EAP, which we do not speak, the
// client proposes its own protocol instead.
func TestLCPClientAnswersEAPWithNak(t *testing.T) {
	c := NewLCP(false, []AuthProto{AuthMSCHAPv2}, 1400, counter(1))
	v, opts := c.Check([]Option{{Type: LCPOptAuth, Data: []byte{0xc2, 0x27}}, {Type: LCPOptMagic, Data: []byte{0, 0, 0, 9}}})
	if v != Nak || len(opts) != 1 || authFromOption(opts[0].Data) != AuthMSCHAPv2 {
		t.Fatalf("EAP offer answered %v %+v", v, opts)
	}
}

// TestLCPLoopAndOddOptions: our own magic number back means a looped
// line; a tiny MRU is raised to 576; callback is rejected.
func TestLCPLoopAndOddOptions(t *testing.T) {
	l := NewLCP(true, []AuthProto{AuthPAP}, 1400, counter(7))
	v, opts := l.Check([]Option{{Type: LCPOptMagic, Data: []byte{0, 0, 0, 8}}, {Type: LCPOptMRU, Data: []byte{0, 100}}})
	if v != Nak || len(opts) != 2 || opts[0].Type != LCPOptMagic || opts[1].Data[0] != 0x02 || opts[1].Data[1] != 0x40 {
		t.Fatalf("loop/MRU: %v %+v", v, opts)
	}
	if v, opts := l.Check([]Option{{Type: 13, Data: []byte{6}}}); v != Reject || opts[0].Type != 13 {
		t.Fatalf("callback: %v %+v", v, opts)
	}
}

// rejecter is a server that rejects Magic-Number and MRU, as some do.
type rejecter struct{ *LCP }

func (r rejecter) Check(opts []Option) (Verdict, []Option) {
	var rej []Option
	for _, o := range opts {
		if o.Type == LCPOptMagic || o.Type == LCPOptMRU {
			rej = append(rej, o)
		}
	}
	if len(rej) > 0 {
		return Reject, rej
	}
	return r.LCP.Check(opts)
}

func TestLCPClientCopesWithRejects(t *testing.T) {
	p, s, c := lcpPair([]AuthProto{AuthMSCHAPv2}, []AuthProto{AuthMSCHAPv2})
	p.a = NewFSM(rejecter{s})
	p.open(t)
	if c.askMagic || c.askMRU || c.Agreed() != AuthMSCHAPv2 {
		t.Fatalf("client still asks magic %v MRU %v, agreed %v", c.askMagic, c.askMRU, c.Agreed())
	}
}

func TestLCPEchoReply(t *testing.T) {
	l := NewLCP(false, nil, 0, counter(41))
	r := l.EchoReply(Packet{Code: CodeEchoRequest, ID: 3, Data: []byte{0, 0, 0, 9, 'x'}})
	if r.Code != CodeEchoReply || r.ID != 3 || len(r.Data) != 5 || r.Data[3] != 42 || r.Data[4] != 'x' {
		t.Fatalf("echo reply %+v", r)
	}
}

// TestIPCPHandsOutAddressAndDNS: the client asks for 0.0.0.0, two DNS and
// two NBNS servers; it gets its address and the one DNS server, and stops
// asking for what the server rejects.
func TestIPCPHandsOutAddressAndDNS(t *testing.T) {
	p := &pipe{}
	s := NewIPCPServer(netip.MustParseAddr("10.8.0.1"), netip.MustParseAddr("10.8.0.5"), []netip.Addr{netip.MustParseAddr("10.1.0.53")}, nil)
	c := NewIPCPClient(true)
	s.OnSend = func(x Packet) { p.toB = append(p.toB, x) }
	c.OnSend = func(x Packet) { p.toA = append(p.toA, x) }
	p.a, p.b = NewFSM(s), NewFSM(c)
	p.open(t)
	if c.Local != netip.MustParseAddr("10.8.0.5") || c.Peer != netip.MustParseAddr("10.8.0.1") || len(c.DNS) != 1 || c.DNS[0] != netip.MustParseAddr("10.1.0.53") {
		t.Fatalf("client got %v via %v, DNS %v", c.Local, c.Peer, c.DNS)
	}
	if c.askDNS[1] || c.askNBNS[0] || c.askNBNS[1] {
		t.Fatalf("client still asks for rejected servers: DNS %v NBNS %v", c.askDNS, c.askNBNS)
	}
}
