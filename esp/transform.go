package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// HeaderLen is SPI and sequence number (RFC 4303 section 2).
const HeaderLen = 8

// Transform is one SA's cryptography from a backend. It works in place on
// a whole ESP packet: pkt[0:8] SPI and sequence number, then IVLen bytes of
// IV, the padded plaintext (or ciphertext), and ICVLen bytes of ICV. It is
// used by one goroutine at a time.
type Transform interface {
	IVLen() int
	ICVLen() int
	// BlockLen is the alignment the padded plaintext must have (at least 4).
	BlockLen() int
	// Seal writes the IV, encrypts and writes the ICV. seq is the full
	// 64-bit sequence number; with esn its high half is authenticated
	// without being sent (RFC 4303 section 2.2.1).
	Seal(pkt []byte, seq uint64, esn bool)
	// Open verifies the ICV and decrypts in place, or returns ErrAuth.
	Open(pkt []byte, seq uint64, esn bool) error
}

// ErrAuth means the ICV did not verify.
var ErrAuth = errors.New("integrity check failed")

// ErrUnsupported means a backend cannot do a suite.
var ErrUnsupported = errors.New("suite not supported by this backend")

// ErrKeyLength means key material of the wrong size.
var ErrKeyLength = errors.New("wrong key length")

// KeyLengths says how much key material a suite takes: the encryption key
// (with the 4-byte salt of AEAD ciphers appended, RFC 4106 section 8.1,
// RFC 7634 section 4) and the integrity key.
func KeyLengths(s Suite) (enc, integ int) {
	if s.Encryption != nil {
		enc = s.Encryption.KeyBits/8 + s.Encryption.SaltBytes
	}
	if s.Integrity != nil {
		integ = s.Integrity.KeyBytes
	}
	return enc, integ
}

// newSoftware builds the Go-crypto transform for an ESP suite.
func newSoftware(s Suite, encKey, integKey []byte) (Transform, error) {
	if s.Protocol != ProtoESP {
		return nil, fmt.Errorf("%w: %s is not ESP", ErrUnsupported, s)
	}
	el, il := KeyLengths(s)
	if len(encKey) != el || len(integKey) != il {
		return nil, fmt.Errorf("%w: %s takes %d+%d bytes of key, got %d+%d", ErrKeyLength, s, el, il, len(encKey), len(integKey))
	}
	e := s.Encryption
	if e.AEAD {
		key, salt := encKey[:len(encKey)-4], encKey[len(encKey)-4:]
		var a cipher.AEAD
		var err error
		if e.Name == "chacha20poly1305" {
			a, err = chacha20poly1305.New(key)
		} else {
			var b cipher.Block
			if b, err = aes.NewCipher(key); err == nil {
				a, err = cipher.NewGCM(b)
			}
		}
		if err != nil {
			return nil, err
		}
		t := &aeadTransform{aead: a}
		copy(t.nonce[:4], salt)
		return t, nil
	}
	t := &cbcTransform{icvLen: s.Integrity.ICVBytes}
	switch s.Integrity.Name {
	case "sha1":
		t.mac = hmac.New(sha1.New, integKey)
	case "sha256":
		t.mac = hmac.New(sha256.New, integKey)
	default:
		return nil, fmt.Errorf("%w: integrity %s", ErrUnsupported, s.Integrity.Name)
	}
	var b cipher.Block
	var err error
	switch e.Name {
	case "null":
		t.blockLen = 4
		return t, nil
	case "aes128", "aes256":
		b, err = aes.NewCipher(encKey)
	case "3des":
		b, err = des.NewTripleDESCipher(encKey)
	default:
		return nil, fmt.Errorf("%w: cipher %s", ErrUnsupported, e.Name)
	}
	if err != nil {
		return nil, err
	}
	t.blockLen, t.ivLen = b.BlockSize(), b.BlockSize()
	zero := make([]byte, t.ivLen)
	t.enc = cipher.NewCBCEncrypter(b, zero).(ivSetter)
	t.dec = cipher.NewCBCDecrypter(b, zero).(ivSetter)
	// CBC IVs must be unpredictable (RFC 3602 section 2.3): each is the
	// packet's sequence number encrypted under a random per-SA key, which
	// is unique per packet and unknowable without that key.
	var ivKey [16]byte
	if _, err := rand.Read(ivKey[:]); err != nil {
		return nil, err
	}
	t.ivGen, _ = aes.NewCipher(ivKey[:])
	return t, nil
}

type ivSetter interface {
	cipher.BlockMode
	SetIV([]byte)
}

// aeadTransform is AES-GCM (RFC 4106) or ChaCha20-Poly1305 (RFC 7634):
// 8-byte IV, 16-byte ICV, nonce = salt || IV, AAD = SPI || [seq hi] || seq.
type aeadTransform struct {
	aead  cipher.AEAD
	nonce [12]byte
	aad   [12]byte
	// fixedIV, when set, is every packet's IV instead of its sequence
	// number: only tests set it, to reproduce published packets.
	fixedIV *[8]byte
}

func (t *aeadTransform) IVLen() int    { return 8 }
func (t *aeadTransform) ICVLen() int   { return 16 }
func (t *aeadTransform) BlockLen() int { return 4 }

func (t *aeadTransform) prepare(pkt []byte, seq uint64, esn bool) []byte {
	copy(t.nonce[4:], pkt[HeaderLen:HeaderLen+8])
	if !esn {
		return pkt[:HeaderLen]
	}
	copy(t.aad[:4], pkt[:4])
	binary.BigEndian.PutUint64(t.aad[4:], seq)
	return t.aad[:]
}

func (t *aeadTransform) Seal(pkt []byte, seq uint64, esn bool) {
	// The IV only has to be unique per key (RFC 4106 section 3.1): the
	// sequence number is.
	if t.fixedIV != nil {
		copy(pkt[HeaderLen:], t.fixedIV[:])
	} else {
		binary.BigEndian.PutUint64(pkt[HeaderLen:], seq)
	}
	aad := t.prepare(pkt, seq, esn)
	body := pkt[HeaderLen+8:]
	t.aead.Seal(body[:0], t.nonce[:], body[:len(body)-16], aad)
}

func (t *aeadTransform) Open(pkt []byte, seq uint64, esn bool) error {
	aad := t.prepare(pkt, seq, esn)
	body := pkt[HeaderLen+8:]
	if _, err := t.aead.Open(body[:0], t.nonce[:], body, aad); err != nil {
		return ErrAuth
	}
	return nil
}

// cbcTransform is a CBC (or NULL) cipher with a truncated HMAC
// (RFC 3602, RFC 2451, RFC 2404, RFC 4868), encrypt-then-MAC.
type cbcTransform struct {
	enc, dec        ivSetter // nil for NULL encryption
	ivGen           cipher.Block
	mac             hash.Hash
	ivLen, blockLen int
	icvLen          int
	ivIn, ivBuf     [16]byte // scratch: arrays passed to interfaces would escape
	sum             [64]byte
	seqHi           [4]byte
}

func (t *cbcTransform) IVLen() int    { return t.ivLen }
func (t *cbcTransform) ICVLen() int   { return t.icvLen }
func (t *cbcTransform) BlockLen() int { return t.blockLen }

func (t *cbcTransform) icv(pkt []byte, seq uint64, esn bool) []byte {
	t.mac.Reset()
	t.mac.Write(pkt[:len(pkt)-t.icvLen])
	if esn {
		binary.BigEndian.PutUint32(t.seqHi[:], uint32(seq>>32))
		t.mac.Write(t.seqHi[:])
	}
	return t.mac.Sum(t.sum[:0])[:t.icvLen]
}

func (t *cbcTransform) Seal(pkt []byte, seq uint64, esn bool) {
	if t.enc != nil {
		binary.BigEndian.PutUint64(t.ivIn[:], seq)
		t.ivGen.Encrypt(t.ivBuf[:], t.ivIn[:])
		iv := pkt[HeaderLen : HeaderLen+t.ivLen]
		copy(iv, t.ivBuf[:t.ivLen])
		body := pkt[HeaderLen+t.ivLen : len(pkt)-t.icvLen]
		t.enc.SetIV(iv)
		t.enc.CryptBlocks(body, body)
	}
	copy(pkt[len(pkt)-t.icvLen:], t.icv(pkt, seq, esn))
}

func (t *cbcTransform) Open(pkt []byte, seq uint64, esn bool) error {
	if !hmac.Equal(t.icv(pkt, seq, esn), pkt[len(pkt)-t.icvLen:]) {
		return ErrAuth
	}
	if t.dec != nil {
		body := pkt[HeaderLen+t.ivLen : len(pkt)-t.icvLen]
		t.dec.SetIV(pkt[HeaderLen : HeaderLen+t.ivLen])
		t.dec.CryptBlocks(body, body)
	}
	return nil
}
