package ikev2

import (
	"bytes"
	"crypto/rand"
	"errors"
	"reflect"
	"testing"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// suites are the IKE SA suites sealed and opened in the tests: every
// cipher of the catalogue, with each HMAC for the CBC ones.
func suites(t *testing.T) []struct {
	c *alg.Cipher
	h *alg.Hash
} {
	var out []struct {
		c *alg.Cipher
		h *alg.Hash
	}
	for _, cn := range []string{"aes128", "aes256", "3des", "aes128gcm16", "aes256gcm16", "chacha20poly1305"} {
		c, err := alg.ParseCipher(cn)
		if err != nil {
			t.Fatal(err)
		}
		if c.AEAD {
			out = append(out, struct {
				c *alg.Cipher
				h *alg.Hash
			}{c, nil})
			continue
		}
		for _, h := range alg.Hashes() {
			out = append(out, struct {
				c *alg.Cipher
				h *alg.Hash
			}{c, &h})
		}
	}
	return out
}

func keysFor(c *alg.Cipher, h *alg.Hash, seed byte) (enc, integ []byte) {
	enc = bytes.Repeat([]byte{seed}, c.KeyBits/8+c.SaltBytes)
	if h != nil {
		integ = bytes.Repeat([]byte{seed + 1}, h.New().Size())
	}
	return enc, integ
}

// Every suite seals inner payloads that Decode and Open give back
// unchanged, also after Release; any bit changed anywhere in the message,
// or the wrong key, is ErrAuth; the message never grows past Overhead.
func TestSealOpen(t *testing.T) {
	inner := everyPayload()[6:12] // IDi to the child SA
	h := Header{SPIi: spi(1), SPIr: spi(2), Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}
	plainLen := len(mustEncode(t, h, inner)) - HeaderLen
	for _, s := range suites(t) {
		name := s.c.Name
		if s.h != nil {
			name += "-" + s.h.Name
		}
		enc, integ := keysFor(s.c, s.h, 7)
		p, err := NewProtector(s.c, s.h, enc, integ)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, err := p.Seal(h, inner, rand.Reader)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(b) > HeaderLen+plainLen+p.Overhead() {
			t.Errorf("%s: %d bytes, more than %d + %d", name, len(b), HeaderLen+plainLen, p.Overhead())
		}
		m, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		e := m.Payloads[0].(*Encrypted)
		p.Release() // an idle SA's: the cipher is keyed again from the keys
		if p.block != nil || p.aead != nil {
			t.Fatalf("%s: Release kept the keyed cipher", name)
		}
		got, err := p.Open(b, &m.Header, e)
		if err != nil || !reflect.DeepEqual(got, inner) {
			t.Fatalf("%s: open: %v\n%#v", name, err, got)
		}
		for _, at := range []int{0, 19, 27, HeaderLen + 1, HeaderLen + 5, len(b) / 2, len(b) - 1} {
			bad := bytes.Clone(b)
			bad[at] ^= 0x10
			m, err := Decode(bad)
			if err != nil {
				continue // the header or the payload's own framing refused it already
			}
			if _, err := p.Open(bad, &m.Header, m.Payloads[0].(*Encrypted)); !errors.Is(err, ErrAuth) {
				t.Errorf("%s: byte %d changed: %v", name, at, err)
			}
		}
		enc2, integ2 := keysFor(s.c, s.h, 9)
		other, _ := NewProtector(s.c, s.h, enc2, integ2)
		if _, err := other.Open(b, &m.Header, e); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: opened with other keys: %v", name, err)
		}
	}
}

func mustEncode(t *testing.T, h Header, ps []Payload) []byte {
	b, err := (&Message{Header: h, Payloads: ps}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Keys of the wrong size, or a suite without what it needs, are refused.
func TestProtectorRefusesBadKeys(t *testing.T) {
	aes, _ := alg.ParseCipher("aes256")
	gcm, _ := alg.ParseCipher("aes128gcm16")
	sha, _ := alg.ParseHash("sha256")
	for name, f := range map[string]func() error{
		"short AES key":    func() error { _, err := NewProtector(aes, sha, make([]byte, 16), make([]byte, 32)); return err },
		"short HMAC key":   func() error { _, err := NewProtector(aes, sha, make([]byte, 32), make([]byte, 20)); return err },
		"CBC without HMAC": func() error { _, err := NewProtector(aes, nil, make([]byte, 32), nil); return err },
		"GCM with HMAC":    func() error { _, err := NewProtector(gcm, sha, make([]byte, 20), make([]byte, 32)); return err },
		"GCM without salt": func() error { _, err := NewProtector(gcm, nil, make([]byte, 16), nil); return err },
	} {
		if err := f(); !errors.Is(err, ErrKeyLengths) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
