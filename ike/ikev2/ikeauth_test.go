package ikev2

import (
	"bytes"
	"crypto/rand"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// authPair runs IKE_SA_INIT and then IKE_AUTH between two in-process
// peers, every message through the codec and IKE_AUTH's in SK payloads
// sealed and opened with the keys each side derived.
type authPair struct {
	*initPair
	msg1, msg2 []byte
	me, them   AuthSide
	psks       map[string][]byte // the responder's keys by initiator identity
}

func newAuthPair(t *testing.T, suite string) *authPair {
	p := &authPair{initPair: newInitPair(t, mustProposals(t, suite), mustProposals(t, suite)), psks: map[string][]byte{"gw-a.example.net": []byte("a shared secret")}}
	p.me = AuthSide{ID: &ID{IDType: IDFQDN, Data: []byte("gw-a.example.net")}, PSK: []byte("a shared secret"),
		Suites: mustSuites(t, "aes128gcm16", "aes256-sha256"), Local: []Selector{sel(t, "10.1.0.0/24")}, Remote: []Selector{sel(t, "10.2.0.0/16")}}
	p.them = AuthSide{ID: &ID{IDType: IDFQDN, Data: []byte("gw-b.example.net")},
		Suites: mustSuites(t, "aes256-sha256"), Local: []Selector{sel(t, "10.2.0.0/24")}, Remote: []Selector{sel(t, "10.1.0.0/24")}}
	return p
}

// init runs IKE_SA_INIT, keeping both messages as they were on the wire
// (AUTH covers them).
func (p *authPair) init() {
	p.t.Helper()
	req, _ := (&Message{Header: Header{SPIi: p.i.spii, Exchange: ExchangeIKESAInit, Flags: FlagInitiator}, Payloads: p.i.request(iAddr, rAddr)}).Encode()
	m, err := Decode(req)
	if err != nil {
		p.t.Fatal(err)
	}
	r, ps, err := respond(p.rOurs, m, rAddr, iAddr, spi(0x77), nil, rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.r = r
	resp, _ := (&Message{Header: Header{SPIi: p.i.spii, SPIr: r.spir, Exchange: ExchangeIKESAInit, Flags: FlagResponse}, Payloads: ps}).Encode()
	rm, _ := Decode(resp)
	if err := p.i.response(rm, iAddr, rAddr); err != nil {
		p.t.Fatal(err)
	}
	p.msg1, p.msg2 = req, resp
}

func (p *authPair) protectors() (iToR, rToI *Protector) {
	p.t.Helper()
	k, s := p.i.keys, p.i.chosen
	var err error
	if iToR, err = NewProtector(s.Cipher, s.Integ, k.Ei, k.Ai); err == nil {
		rToI, err = NewProtector(s.Cipher, s.Integ, k.Er, k.Ar)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	return iToR, rToI
}

// auth runs IKE_AUTH and returns both sides' children and errors.
func (p *authPair) auth() (ci, cr *Child, ierr, rerr error) {
	p.t.Helper()
	iToR, rToI := p.protectors()
	h := Header{SPIi: p.i.spii, SPIr: p.i.spir, Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}
	req, err := p.i.authRequest(p.me, p.msg1, 0xc1000001)
	if err != nil {
		p.t.Fatal(err)
	}
	b, err := iToR.Seal(h, req, rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		p.t.Fatal(err)
	}
	inner, err := iToR.Open(b, &m.Header, m.Payloads[0].(*Encrypted))
	if err != nil {
		p.t.Fatalf("responder opening IKE_AUTH: %v", err)
	}
	lookup := func(id *ID) ([]byte, error) {
		if k, ok := p.psks[string(id.Data)]; ok {
			return k, nil
		}
		return nil, errors.New("no preshared key for " + string(id.Data))
	}
	ps, cr, rerr := p.r.authRespond(p.them, PSKCheck(lookup), inner, p.msg1, p.msg2, 0xc2000002)
	if ps == nil {
		var ne *NotifyError
		if !errors.As(rerr, &ne) {
			p.t.Fatalf("responder: %v", rerr)
		}
		ps = []Payload{&Notify{Kind: ne.Kind}}
	}
	h.Flags, h.MessageID = FlagResponse, 1
	b, err = rToI.Seal(h, ps, rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	m, _ = Decode(b)
	inner, err = rToI.Open(b, &m.Header, m.Payloads[0].(*Encrypted))
	if err != nil {
		p.t.Fatalf("initiator opening the answer: %v", err)
	}
	ci, ierr = p.i.authResponse(p.me, PSKCheck(func(*ID) ([]byte, error) { return p.me.PSK, nil }), inner, p.msg2, 0xc1000001)
	return ci, cr, ierr, rerr
}

// A tunnel comes up: both sides authenticate with the preshared key, the
// responder narrows 10.2.0.0/16 to its 10.2.0.0/24, picks its ESP suite,
// and both cut the same child keys with the SPIs crossed.
func TestIKEAuthPSK(t *testing.T) {
	for _, suite := range []string{"aes256-sha256-ecp256", "aes128gcm16-prfsha256-curve25519", "aes128-sha1-modp2048"} {
		p := newAuthPair(t, suite)
		p.init()
		ci, cr, ierr, rerr := p.auth()
		if ierr != nil || rerr != nil {
			t.Fatalf("%s: %v / %v", suite, ierr, rerr)
		}
		if ci.Suite.String() != "aes256-sha256" || !reflect.DeepEqual(ci.Keys, cr.Keys) || len(ci.Keys.EncIR) != 32 || bytes.Equal(ci.Keys.EncIR, ci.Keys.EncRI) {
			t.Fatalf("%s: children differ: %+v %+v", suite, ci, cr)
		}
		if ci.InSPI != cr.OutSPI || ci.OutSPI != cr.InSPI || ci.OutSPI != 0xc2000002 {
			t.Fatalf("%s: SPIs %#x/%#x and %#x/%#x", suite, ci.InSPI, ci.OutSPI, cr.InSPI, cr.OutSPI)
		}
		if !reflect.DeepEqual(ci.TSr, []Selector{sel(t, "10.2.0.0/24")}) || !reflect.DeepEqual(ci.TSi, []Selector{sel(t, "10.1.0.0/24")}) {
			t.Fatalf("%s: selectors %+v %+v", suite, ci.TSi, ci.TSr)
		}
	}
}

// A wrong key on either side fails authentication, with the reason, and
// makes no child.
func TestIKEAuthWrongKey(t *testing.T) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	p.init()
	p.psks["gw-a.example.net"] = []byte("another secret")
	ci, cr, ierr, rerr := p.auth()
	var ne *NotifyError
	if !errors.As(rerr, &ne) || ne.Kind != NotifyAuthenticationFailed || cr != nil || ci != nil || !errors.As(ierr, &ne) || ne.Kind != NotifyAuthenticationFailed {
		t.Fatalf("responder %v, initiator %v", rerr, ierr)
	}
	// An unknown identity is refused the same way.
	p = newAuthPair(t, "aes256-sha256-ecp256")
	p.init()
	p.me.ID = &ID{IDType: IDFQDN, Data: []byte("stranger.example.net")}
	if _, _, _, rerr := p.auth(); !errors.As(rerr, &ne) || ne.Kind != NotifyAuthenticationFailed {
		t.Fatalf("unknown identity: %v", rerr)
	}
}

// A child the responder cannot make is refused beside a good AUTH: the
// initiator learns the IKE SA is up and why the child is not.
func TestIKEAuthChildRefused(t *testing.T) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	p.init()
	p.me.Remote = []Selector{sel(t, "10.9.0.0/16")} // nothing B protects
	_, _, ierr, rerr := p.auth()
	var ne *NotifyError
	if !errors.As(rerr, &ne) || ne.Kind != NotifyTSUnacceptable || !errors.As(ierr, &ne) || ne.Kind != NotifyTSUnacceptable {
		t.Fatalf("selectors: %v / %v", rerr, ierr)
	}
	p = newAuthPair(t, "aes256-sha256-ecp256")
	p.init()
	p.me.Suites = mustSuites(t, "aes128-sha1")
	if _, _, ierr, rerr := p.auth(); !errors.As(rerr, &ne) || ne.Kind != NotifyNoProposalChosen || !errors.As(ierr, &ne) {
		t.Fatalf("suites: %v / %v", rerr, ierr)
	}
}

// Transport mode is agreed only when both sides want it.
func TestIKEAuthTransport(t *testing.T) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	p.init()
	host := []Selector{{Protocol: 17, StartPort: 1701, EndPort: 1701, StartAddr: netip.MustParseAddr("192.0.2.1"), EndAddr: netip.MustParseAddr("192.0.2.1")}}
	peer := []Selector{{Protocol: 17, StartPort: 1701, EndPort: 1701, StartAddr: netip.MustParseAddr("192.0.2.2"), EndAddr: netip.MustParseAddr("192.0.2.2")}}
	p.me.Local, p.me.Remote, p.me.Transport = host, peer, true
	p.them.Local, p.them.Remote, p.them.Transport = peer, host, true
	ci, cr, ierr, rerr := p.auth()
	if ierr != nil || rerr != nil || !ci.Transport || !cr.Transport {
		t.Fatalf("transport: %v / %v", ierr, rerr)
	}
}

// The exported Initiator drives the same exchanges against the
// responder's functions: a retry for another group, then IKE_AUTH.
func TestInitiatorDriver(t *testing.T) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	p.rOurs = mustProposals(t, "aes256-sha256-modp2048")
	in, err := NewInitiator(InitiatorConfig{Proposals: mustProposals(t, "aes256-sha256-ecp256", "aes256-sha256-modp2048"), Auth: p.me,
		SPIi: spi(0x21), InSPI: 0xc3000003, Local: iAddr, Remote: rAddr, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	req, err := in.Start()
	var r *ikeInit
	var msg1, msg2 []byte
	for round := 0; err == nil && req != nil && round < 4; round++ {
		m, derr := Decode(req)
		if derr != nil {
			t.Fatal(derr)
		}
		var ps []Payload
		h := Header{SPIi: m.SPIi, Exchange: m.Exchange, Flags: FlagResponse, MessageID: m.MessageID}
		switch m.Exchange {
		case ExchangeIKESAInit:
			var rerr error
			r, ps, rerr = respond(p.rOurs, m, rAddr, iAddr, spi(0x78), nil, rand.Reader)
			var ne *NotifyError
			if errors.As(rerr, &ne) {
				ps = []Payload{&Notify{Kind: ne.Kind, Data: ne.Data}}
			} else {
				h.SPIr, msg1 = r.spir, req
			}
			b, _ := (&Message{Header: h, Payloads: ps}).Encode()
			if rerr == nil {
				msg2 = b
			}
			req, err = in.Receive(b)
		case ExchangeIKEAuth:
			iToR, _ := NewProtector(r.chosen.Cipher, r.chosen.Integ, r.keys.Ei, r.keys.Ai)
			rToI, _ := NewProtector(r.chosen.Cipher, r.chosen.Integ, r.keys.Er, r.keys.Ar)
			inner, oerr := iToR.Open(req, &m.Header, m.Payloads[0].(*Encrypted))
			if oerr != nil {
				t.Fatal(oerr)
			}
			ps, _, rerr := r.authRespond(p.them, PSKCheck(func(*ID) ([]byte, error) { return p.me.PSK, nil }), inner, msg1, msg2, 0xc4000004)
			if rerr != nil {
				t.Fatal(rerr)
			}
			h.SPIr = r.spir
			b, _ := rToI.Seal(h, ps, rand.Reader)
			req, err = in.Receive(b)
		}
	}
	if err != nil || !in.Done() || in.Child().OutSPI != 0xc4000004 || in.Suite().Group.Number != 14 {
		t.Fatalf("driver: %v, done %v", err, in.Done())
	}
}

// The exported Initiator and Responder bring a tunnel up between them,
// through a cookie, and a retransmitted request gets the same answer.
func TestInitiatorAndResponder(t *testing.T) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	cookies, _ := NewCookies(rand.Reader)
	r := NewResponder(ResponderConfig{Proposals: mustProposals(t, "aes256-sha256-ecp256"), Auth: p.them,
		PSK: func(*ID) ([]byte, error) { return p.me.PSK, nil }, SPIr: spi(0x79), InSPI: 0xc5000005, Local: rAddr, Cookies: cookies, Rand: rand.Reader})
	in, err := NewInitiator(InitiatorConfig{Proposals: mustProposals(t, "aes256-sha256-ecp256"), Auth: p.me,
		SPIi: spi(0x22), InSPI: 0xc6000006, Local: iAddr, Remote: rAddr, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	req, err := in.Start()
	for round := 0; err == nil && req != nil && round < 5; round++ {
		var resp []byte
		if resp, err = r.Receive(req, iAddr); err != nil {
			break
		}
		if again, _ := r.Receive(req, iAddr); !bytes.Equal(again, resp) {
			t.Fatal("a retransmitted request got another answer")
		}
		req, err = in.Receive(resp)
	}
	if err != nil || !in.Done() || !r.Done() || !reflect.DeepEqual(in.Child().Keys, r.Child().Keys) || in.Child().OutSPI != 0xc5000005 || r.Child().OutSPI != 0xc6000006 {
		t.Fatalf("%v: initiator %v, responder %v", err, in.Done(), r.Done())
	}
}
