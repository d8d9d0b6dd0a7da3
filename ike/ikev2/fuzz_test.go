package ikev2

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// FuzzDecode: no input makes the decoder panic; every refusal carries
// ErrMalformed, ErrVersion or an *UnsupportedCriticalError; and what it
// accepts encodes to a message that decodes to the same payloads.
func FuzzDecode(f *testing.F) {
	for _, ps := range [][]Payload{everyPayload(), append(everyPayload(), &Encrypted{T: PayloadSK, Inner: PayloadIDi, Data: []byte{1, 2, 3}}),
		{&Encrypted{T: PayloadSKF, Number: 2, Total: 2, Data: []byte{7}}}} {
		b, err := (&Message{Header: Header{SPIi: spi(1), Exchange: ExchangeIKEAuth}, Payloads: ps}).Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	wire, _ := hex.DecodeString(wireIKESAInit)
	f.Add(wire)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			var uc *UnsupportedCriticalError
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.As(err, &uc) {
				t.Fatalf("refusal without the package's errors: %v", err)
			}
			return
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("encoding what was decoded: %v", err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("decoding what was re-encoded: %v", err)
		}
		if !reflect.DeepEqual(m.Payloads, m2.Payloads) {
			t.Fatalf("payloads changed on the way round:\n%#v\n%#v", m.Payloads, m2.Payloads)
		}
	})
}

// FuzzOpen: a protected message with any byte changed is refused with
// ErrAuth or ErrMalformed (a CBC and an AEAD suite), never a panic; only
// the sealed message itself opens, to what was sealed.
func FuzzOpen(f *testing.F) {
	type suite struct {
		p    *Protector
		seal []byte
	}
	var ps []suite
	for _, names := range [][2]string{{"aes256", "sha256"}, {"aes128gcm16", ""}} {
		c, _ := alg.ParseCipher(names[0])
		var h *alg.Hash
		if names[1] != "" {
			h, _ = alg.ParseHash(names[1])
		}
		enc, integ := keysFor(c, h, 1)
		p, err := NewProtector(c, h, enc, integ)
		if err != nil {
			f.Fatal(err)
		}
		// A fixed IV: the fuzzing workers build the same seeds again.
		b, err := p.Seal(Header{SPIi: spi(1), SPIr: spi(2), Exchange: ExchangeIKEAuth, MessageID: 1}, everyPayload()[6:9], bytes.NewReader(make([]byte, 16)))
		if err != nil {
			f.Fatal(err)
		}
		ps = append(ps, suite{p, b})
		f.Add(b, uint8(len(ps)-1))
	}
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		s := ps[int(which)%len(ps)]
		m, err := Decode(b)
		if err != nil || len(m.Payloads) == 0 {
			return
		}
		e, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
		if !ok || e.T != PayloadSK {
			return
		}
		inner, err := s.p.Open(b, &m.Header, e)
		if err != nil {
			var uc *UnsupportedCriticalError
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrMalformed) && !errors.As(err, &uc) {
				t.Fatalf("refusal without the package's errors: %v", err)
			}
			return
		}
		if !bytes.Equal(b[:m.Length], s.seal) || !reflect.DeepEqual(inner, everyPayload()[6:9]) {
			t.Fatalf("a changed message opened: %#v", inner)
		}
	})
}

// FuzzEngineReceive drives two engines through a tunnel's life (setup, a
// child rekey, a liveness check, an IKE SA rekey, a delete) with
// deterministic randomness, and changes the step-th datagram on its way:
// mask is XORed over it (and extends it), cut shortens it. Nothing may
// panic or loop, and a changed datagram that is not the original with
// bytes added past its length must leave what its receiver has
// established as it was: every byte of an IKEv2 message after
// IKE_SA_INIT is covered by the ICV.
func FuzzEngineReceive(f *testing.F) {
	for step := range 16 {
		f.Add(uint8(step), []byte{}, uint16(0))
		f.Add(uint8(step), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20}, uint16(0)) // the response flag
		f.Add(uint8(step), []byte{}, uint16(40))
	}
	f.Fuzz(func(t *testing.T, step uint8, mask []byte, cut uint16) {
		cryptotest.SetGlobalRandom(t, 7)
		e := newEnginePair(t, "k", "k")
		mutateStep(t, e, step, mask, cut)
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		if sa := only2(e.a); sa != nil && len(sa.children) > 0 {
			sa.children[0].rekeying = true
			sa.queueTask(&childTask{old: sa.children[0]})
			e.pump()
			sa.queueTask(livenessTask{})
			e.pump()
			sa.rekeying = true
			sa.queueTask(&ikeRekeyTask{})
			e.pump()
		}
		if sb := only2(e.b); sb != nil && len(sb.children) > 0 {
			sb.deleteChild(sb.children[0], "fuzz")
			e.pump()
		}
		e.advance(3 * time.Second)
	})
}

// only2 is an engine's one established IKE SA, or nil.
func only2(m *Manager) *ikeSA {
	for _, s := range m.sas {
		if s.state == stateEstablished && s.successor == nil {
			return s
		}
	}
	return nil
}

// mutateStep makes e change its step-th datagram (mask XORed over it and
// extending it, cut shortening it) and check that a changed datagram
// leaves what its receiver had established as it was.
func mutateStep(t *testing.T, e *enginePair, step uint8, mask []byte, cut uint16) {
	var original, changed []byte
	e.mutate = func(n int, d *datagram) bool {
		if n != int(step) {
			return false
		}
		original = bytes.Clone(d.b)
		for i, m := range mask {
			if i < len(d.b) {
				d.b[i] ^= m
			} else {
				d.b = append(d.b, m)
			}
		}
		if cut > 0 && int(cut) < len(d.b) {
			d.b = d.b[:cut]
		}
		changed = bytes.Clone(d.b)
		return true
	}
	e.whenMutated = func(to *Manager, before, after string) {
		n := len(original)
		if len(changed) >= n && bytes.Equal(changed[:n], original) {
			return // the same message, with bytes past its length
		}
		if before != "" && before != after {
			t.Fatalf("a changed datagram (step %d) changed what was established:\nbefore %s\nafter  %s", step, before, after)
		}
	}
}

// FuzzEngineRemoteAccess is FuzzEngineReceive for a road warrior by
// EAP-MSCHAPv2: the setup's seven exchanges (IKE_SA_INIT, five IKE_AUTH
// rounds with the certificate, EAP and the MSK's AUTH), then a delete,
// with the server asking an interop host about each IKE_SA_INIT.
func FuzzEngineRemoteAccess(f *testing.F) {
	for step := range 16 {
		f.Add(uint8(step), []byte{}, uint16(0))
		f.Add(uint8(step), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20}, uint16(0))
	}
	f.Fuzz(func(t *testing.T, step uint8, mask []byte, cut uint16) {
		cryptotest.SetGlobalRandom(t, 9)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := eapPairWith(t, "clientPass", key)
		// The plugins' question is read from whatever IKE_SA_INIT comes.
		ask := &fakeInterop{answer: &InteropAnswer{Family: "fuzz", Suites: e.pb.Suites}}
		e.b.interop = ask
		mutateStep(t, e, step, mask, cut)
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		e.a.Terminate("to-b")
		e.pump()
		e.advance(3 * time.Second)
		for _, q := range ask.asked {
			if len(q.Offered) > MaxOfferedSuites || q.Peer != e.pb {
				t.Fatalf("asked %+v", q)
			}
		}
	})
}
