package ppp

import (
	"bytes"
	"testing"
)

// testProto is a small LCP-like protocol: it asks for its options and
// accepts the peer's unless told to nak a value or reject a type.
type testProto struct {
	name     string
	want     []Option
	nakType  byte // we Nak this option type, proposing nakValue
	nakValue []byte
	rejType  byte // we Reject this option type
	out      *[]Packet
	ups      int
	downs    int
	finished int
}

func (p *testProto) Options() []Option { return p.want }

func (p *testProto) Check(opts []Option) (Verdict, []Option) {
	var rej, nak []Option
	for _, o := range opts {
		switch {
		case o.Type == p.rejType:
			rej = append(rej, o)
		case o.Type == p.nakType && !bytes.Equal(o.Data, p.nakValue):
			nak = append(nak, Option{Type: o.Type, Data: p.nakValue})
		}
	}
	if len(rej) > 0 {
		return Reject, rej
	}
	if len(nak) > 0 {
		return Nak, nak
	}
	return Ack, nil
}

func (p *testProto) Nakked(opts []Option) {
	for _, n := range opts {
		for i := range p.want {
			if p.want[i].Type == n.Type {
				p.want[i].Data = n.Data
			}
		}
	}
}

func (p *testProto) Rejected(opts []Option) {
	kept := p.want[:0]
	for _, o := range p.want {
		drop := false
		for _, r := range opts {
			drop = drop || r.Type == o.Type
		}
		if !drop {
			kept = append(kept, o)
		}
	}
	p.want = kept
}

func (p *testProto) Up()           { p.ups++ }
func (p *testProto) Down()         { p.downs++ }
func (p *testProto) Finished()     { p.finished++ }
func (p *testProto) Send(x Packet) { *p.out = append(*p.out, x) }

type link struct {
	pipe
	pa, pb *testProto
}

func newLink() *link {
	l := &link{}
	l.pa = &testProto{name: "A", want: []Option{{Type: 1, Data: []byte{0x05, 0xdc}}, {Type: 5, Data: []byte{1, 2, 3, 4}}}, out: &l.toB}
	l.pb = &testProto{name: "B", want: []Option{{Type: 1, Data: []byte{0x05, 0x78}}}, out: &l.toA}
	l.a, l.b = NewFSM(l.pa), NewFSM(l.pb)
	return l
}

func TestFSMOpens(t *testing.T) {
	l := newLink()
	l.open(t)
	if l.a.State() != Opened || l.b.State() != Opened || l.pa.ups != 1 || l.pb.ups != 1 {
		t.Fatalf("states %v %v, ups %d %d", l.a.State(), l.b.State(), l.pa.ups, l.pb.ups)
	}
	if l.a.TimerRunning() || l.b.TimerRunning() {
		t.Fatal("restart timer still running when Opened")
	}
}

// TestFSMNakAndReject: B naks A's MRU and rejects option 5; A adopts the
// MRU and drops the option, and both open.
func TestFSMNakAndReject(t *testing.T) {
	l := newLink()
	l.pb.nakType, l.pb.nakValue = 1, []byte{0x05, 0x78}
	l.pb.rejType = 5
	l.open(t)
	if l.a.State() != Opened || l.b.State() != Opened {
		t.Fatalf("states %v %v", l.a.State(), l.b.State())
	}
	if len(l.pa.want) != 1 || !bytes.Equal(l.pa.want[0].Data, []byte{0x05, 0x78}) {
		t.Fatalf("A's options after Nak and Reject: %+v", l.pa.want)
	}
}

// TestFSMNakForever: a peer that naks a value we keep asking for is
// rejected after Max-Failure rounds instead of looping.
func TestFSMNakForever(t *testing.T) {
	l := newLink()
	l.pb.nakType, l.pb.nakValue = 1, []byte{0x05, 0x78}
	l.pa.nakType, l.pa.nakValue = 1, []byte{0x05, 0xdc} // and A naks B's
	l.open(t)
	if l.a.State() != Opened || l.b.State() != Opened {
		t.Fatalf("states %v %v", l.a.State(), l.b.State())
	}
}

func TestFSMTerminate(t *testing.T) {
	l := newLink()
	l.open(t)
	l.a.Close()
	l.run(t)
	if l.a.State() != Closed || l.b.State() != Stopping || l.pa.downs != 1 || l.pb.downs != 1 || l.pa.finished != 1 {
		t.Fatalf("after close: %v %v, downs %d %d, finished %d", l.a.State(), l.b.State(), l.pa.downs, l.pb.downs, l.pa.finished)
	}
	// B's restart timer (zero count) ends Stopping.
	l.b.Timeout()
	if l.b.State() != Stopped || l.pb.finished != 1 {
		t.Fatalf("B after its timer: %v, finished %d", l.b.State(), l.pb.finished)
	}
}

// TestFSMSilentPeer: nothing comes back; after Max-Configure requests the
// automaton gives up (TO-) and says so.
func TestFSMSilentPeer(t *testing.T) {
	var out []Packet
	p := &testProto{want: []Option{{Type: 1, Data: []byte{5, 0xdc}}}, out: &out}
	f := NewFSM(p)
	f.Open()
	f.Up()
	for i := 0; i < 20 && f.TimerRunning(); i++ {
		f.Timeout()
	}
	if f.State() != Stopped || p.finished != 1 || len(out) != DefaultMaxConfigure {
		t.Fatalf("state %v, finished %d, %d requests sent (want %d)", f.State(), p.finished, len(out), DefaultMaxConfigure)
	}
}

// TestFSMPeerRenegotiates: a Configure-Request in Opened takes the layer
// down and negotiates again.
func TestFSMPeerRenegotiates(t *testing.T) {
	l := newLink()
	l.open(t)
	l.b.id++
	l.a.Input(Packet{Code: CodeConfigureRequest, ID: l.b.id, Data: AppendOptions(nil, l.pb.want)})
	l.run(t)
	if l.a.State() != Opened || l.pa.downs != 1 || l.pa.ups != 2 {
		t.Fatalf("after renegotiation: %v, downs %d, ups %d", l.a.State(), l.pa.downs, l.pa.ups)
	}
}

func TestFSMUnknownCodeIsRejected(t *testing.T) {
	l := newLink()
	l.open(t)
	l.a.Input(Packet{Code: 42, ID: 9, Data: []byte{1}})
	if len(l.toB) != 1 || l.toB[0].Code != CodeCodeReject || l.a.State() != Opened {
		t.Fatalf("unknown code: %+v, state %v", l.toB, l.a.State())
	}
}
