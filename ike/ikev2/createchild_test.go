package ikev2

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"
)

// upPair is an authPair with its IKE SA and first child up, and each
// side's view of the IKE SA.
func upPair(t *testing.T) (*authPair, *ikeSA, *ikeSA, *Child) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	p.init()
	ci, _, ierr, rerr := p.auth()
	if ierr != nil || rerr != nil {
		t.Fatal(ierr, rerr)
	}
	return p, &ikeSA{suite: p.i.chosen, keys: p.i.keys, rand: rand.Reader}, &ikeSA{suite: p.r.chosen, keys: p.r.keys, rand: rand.Reader}, ci
}

// exchange carries a CREATE_CHILD_SA request and its answer through the
// IKE SA's SK payloads (message ID 2) and returns what each side opened.
func (p *authPair) exchange(req []Payload, answer func(inner []Payload) []Payload) []Payload {
	p.t.Helper()
	iToR, rToI := p.protectors()
	h := Header{SPIi: p.i.spii, SPIr: p.i.spir, Exchange: ExchangeCreateChildSA, Flags: FlagInitiator, MessageID: 2}
	b, err := iToR.Seal(h, req, rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	m, _ := Decode(b)
	inner, err := iToR.Open(b, &m.Header, m.Payloads[0].(*Encrypted))
	if err != nil {
		p.t.Fatal(err)
	}
	h.Flags = FlagResponse
	b, err = rToI.Seal(h, answer(inner), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	m, _ = Decode(b)
	out, err := rToI.Open(b, &m.Header, m.Payloads[0].(*Encrypted))
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// A child's rekey, with and without PFS, gives both sides the same new
// keys, unlike the old ones; the request names the SA it replaces.
func TestRekeyChild(t *testing.T) {
	for _, pfs := range []uint16{0, 19, 14} {
		p, iSA, rSA, old := upPair(t)
		x := &childExchange{sa: iSA, me: p.me, inSPI: 0xc1000009, pfs: pfs, rekey: old.InSPI}
		req, err := x.request()
		if err != nil {
			t.Fatal(err)
		}
		var rc *Child
		resp := p.exchange(req, func(inner []Payload) []Payload {
			if n := Notifies(inner, NotifyRekeySA); len(n) != 1 || !bytes.Equal(n[0].SPI, spiBytes(old.InSPI)) {
				t.Fatalf("REKEY_SA: %+v", n)
			}
			ps, c, err := rSA.respondChild(p.them, pfs, inner, 0xc2000009)
			if err != nil {
				t.Fatal(err)
			}
			rc = c
			return ps
		})
		ic, err := x.response(resp)
		if err != nil {
			t.Fatalf("pfs %d: %v", pfs, err)
		}
		if !reflect.DeepEqual(ic.Keys, rc.Keys) || bytes.Equal(ic.Keys.EncIR, old.Keys.EncIR) || ic.OutSPI != 0xc2000009 || rc.OutSPI != 0xc1000009 {
			t.Fatalf("pfs %d: the new child's keys: %+v / %+v", pfs, ic, rc)
		}
		if pfs != 0 && !x.dh.Wiped() {
			t.Fatalf("pfs %d: the PFS private value outlived the exchange", pfs)
		}
	}
}

// A responder that requires PFS refuses a child without it; the IKE SA
// stands (the refusal is a notify in its SK payload).
func TestChildPFSRequired(t *testing.T) {
	p, iSA, rSA, _ := upPair(t)
	x := &childExchange{sa: iSA, me: p.me, inSPI: 0xc100000a}
	req, _ := x.request()
	resp := p.exchange(req, func(inner []Payload) []Payload {
		_, _, err := rSA.respondChild(p.them, 19, inner, 0xc200000a)
		var ne *NotifyError
		if !errors.As(err, &ne) {
			t.Fatalf("responder: %v", err)
		}
		return []Payload{&Notify{Kind: ne.Kind, Data: ne.Data}}
	})
	var ne *NotifyError
	if _, err := x.response(resp); !errors.As(err, &ne) || ne.Kind != NotifyNoProposalChosen {
		t.Fatalf("initiator: %v", err)
	}
}

// The IKE SA's rekey: new SPIs, a new suite choice and new keys from the
// old SK_d, the same on both sides (RFC 7296 2.18).
func TestRekeyIKESA(t *testing.T) {
	p, iSA, rSA, _ := upPair(t)
	r := &ikeRekey{sa: iSA, ours: mustProposals(t, "aes256-sha256-ecp384", "aes256-sha256-ecp256"), spi: spi(0x31)}
	req, err := r.request()
	if err != nil {
		t.Fatal(err)
	}
	var newR *RekeyedIKE
	resp := p.exchange(req, func(inner []Payload) []Payload {
		ps, n, err := rSA.respondIKE(mustProposals(t, "aes256-sha256-ecp384"), spi(0x32), inner)
		if err != nil {
			t.Fatal(err)
		}
		newR = n
		return ps
	})
	newI, err := r.response(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(newI, newR) || newI.SPIi != spi(0x31) || newI.SPIr != spi(0x32) || newI.Suite.Group.Name != "ecp384" ||
		bytes.Equal(newI.Keys.D, iSA.keys.D) {
		t.Fatalf("rekeyed: %+v / %+v", newI, newR)
	}
}

// newDrivers makes an Initiator and a Responder (which requires PFS in
// ECP256 for later children) with the given inbound SPIs.
func newDrivers(t *testing.T, rSPI, iSPI uint32) (*Initiator, *Responder) {
	p := newAuthPair(t, "aes256-sha256-ecp256")
	r := NewResponder(ResponderConfig{Proposals: mustProposals(t, "aes256-sha256-ecp256"), Auth: p.them, PFS: 19,
		PSK: func(*ID) ([]byte, error) { return p.me.PSK, nil }, SPIr: spi(0x7a), InSPI: rSPI, Local: rAddr, Rand: rand.Reader})
	in, err := NewInitiator(InitiatorConfig{Proposals: mustProposals(t, "aes256-sha256-ecp256"), Auth: p.me,
		SPIi: spi(0x23), InSPI: iSPI, Local: iAddr, Remote: rAddr, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	return in, r
}

// converse carries an initiator's request and the ones that follow to
// the responder and back until the initiator has nothing more to send.
func converse(t *testing.T, in *Initiator, r *Responder) func([]byte, error) {
	return func(req []byte, err error) {
		t.Helper()
		for i := 0; err == nil && req != nil && i < 6; i++ {
			var resp []byte
			if resp, err = r.Receive(req, iAddr); err == nil {
				req, err = in.Receive(resp)
			}
		}
		if err != nil || req != nil {
			t.Fatalf("%v (request left: %v)", err, req != nil)
		}
	}
}

// The Responder, once the IKE SA is up, answers a child's rekey with PFS,
// the delete of the old child with the other half, a liveness check with
// nothing, and the IKE SA's delete; message IDs count on from 2.
func TestResponderLaterExchanges(t *testing.T) {
	in, r := newDrivers(t, 0xc7000007, 0xc8000008)
	converse(t, in, r)(in.Start())
	old := in.Child()
	send := func(id uint32, x ExchangeType, ps []Payload) []Payload {
		t.Helper()
		b, err := in.iToR.Seal(Header{SPIi: spi(0x23), SPIr: spi(0x7a), Exchange: x, Flags: FlagInitiator, MessageID: id}, ps, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Receive(b, iAddr)
		if err != nil {
			t.Fatalf("%v #%d: %v", x, id, err)
		}
		m, _ := Decode(out)
		if m.MessageID != id || !m.Response() {
			t.Fatalf("answered #%d %+v", id, m.Header)
		}
		inner, err := in.rToI.Open(out, &m.Header, m.Payloads[0].(*Encrypted))
		if err != nil {
			t.Fatal(err)
		}
		return inner
	}
	x := &childExchange{sa: &ikeSA{suite: in.Suite(), keys: in.t.keys, rand: rand.Reader}, me: in.cfg.Auth, inSPI: 0xc8000009, pfs: 19, rekey: old.InSPI}
	req2, _ := x.request()
	c, err := x.response(send(2, ExchangeCreateChildSA, req2))
	if err != nil || len(r.Children()) != 2 || !reflect.DeepEqual(c.Keys, r.Children()[1].Keys) {
		t.Fatalf("rekey: %v, %d children", err, len(r.Children()))
	}
	del := send(3, ExchangeInformational, []Payload{&Delete{Protocol: ProtoESP, SPIs: [][]byte{spiBytes(old.InSPI)}}})
	if d, ok := Find(del, PayloadDelete).(*Delete); !ok || !bytes.Equal(d.SPIs[0], spiBytes(old.OutSPI)) || len(r.Children()) != 1 {
		t.Fatalf("delete answered with %#v, %d children left", del, len(r.Children()))
	}
	if live := send(4, ExchangeInformational, nil); len(live) != 0 {
		t.Fatalf("liveness check answered with %#v", live)
	}
	send(5, ExchangeInformational, []Payload{&Delete{Protocol: ProtoIKE}})
	if !r.Closed() {
		t.Fatal("the IKE SA's delete was not taken")
	}
}

// The Initiator rekeys its child against the Responder: CREATE_CHILD_SA
// with PFS, then the old child's delete, answered with the other half.
func TestInitiatorRekeysChild(t *testing.T) {
	in, r := newDrivers(t, 0xc9000001, 0xca000001)
	run := converse(t, in, r)
	run(in.Start())
	old := in.Child()
	run(in.RekeyChild(19, 0xca000002))
	kids := r.Children()
	if len(kids) != 1 || in.Child().InSPI != 0xca000002 || kids[0].OutSPI != 0xca000002 || !reflect.DeepEqual(in.Child().Keys, kids[0].Keys) ||
		reflect.DeepEqual(in.Child().Keys, old.Keys) {
		t.Fatalf("after the rekey: %d children at the responder, ours %+v", len(kids), in.Child())
	}
	if _, err := in.RekeyChild(0, 0xca000003); err != nil {
		t.Fatalf("a second rekey cannot start: %v", err)
	}
}
