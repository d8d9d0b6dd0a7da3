package ikev2

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/gatehouse/gatehouse/ike/alg"
	"github.com/gatehouse/gatehouse/ike/wire"
)

// ErrAuth is a protected message whose ICV does not verify: a forgery, a
// corruption or the wrong keys. Such a message changes nothing.
var ErrAuth = errors.New("IKEv2 message failed its integrity check")

// Protector seals and opens the Encrypted payloads (SK and SKF) of one
// direction of an IKE SA (RFC 7296 section 3.14): with a block cipher in
// CBC mode and an HMAC (the ICV covers the whole message), or with an
// AEAD cipher whose associated data is everything before the IV (RFC 5282
// section 5.1, RFC 7634 section 4, RFC 7383 section 2.5).
type Protector struct {
	c         *alg.Cipher
	encKey    []byte // without the salt
	mac       func() hash.Hash
	macKey    []byte
	salt      []byte
	blockSize int // CBC; 0 for AEAD
	ivLen     int
	icvLen    int
	// block (CBC) or aead is the keyed cipher: made on first use and
	// dropped by Release, so that an idle IKE SA holds its keys and not
	// the key schedule and tables (about 800 bytes a direction for
	// AES-GCM).
	block cipher.Block
	aead  cipher.AEAD
}

// NewProtector keys one direction: encKey is SK_ei or SK_er (with the
// salt after the key for AEAD ciphers), integKey SK_ai or SK_ar (nil for
// AEAD ciphers, which take no integrity algorithm).
func NewProtector(c *alg.Cipher, integ *alg.Hash, encKey, integKey []byte) (*Protector, error) {
	if c == nil || (integ == nil) != c.AEAD {
		return nil, fmt.Errorf("%w: a cipher and an integrity algorithm, or an AEAD cipher alone", ErrKeyLengths)
	}
	keyLen := c.KeyBits / 8
	if len(encKey) != keyLen+c.SaltBytes {
		return nil, fmt.Errorf("%w: %s takes %d key bytes, got %d", ErrKeyLengths, c.Name, keyLen+c.SaltBytes, len(encKey))
	}
	p := &Protector{c: c, encKey: encKey[:keyLen]}
	if err := p.keyed(); err != nil {
		return nil, err
	}
	if p.aead != nil {
		p.salt, p.ivLen, p.icvLen = encKey[keyLen:], 8, p.aead.Overhead()
		return p, nil
	}
	if len(integKey) != integ.New().Size() {
		return nil, fmt.Errorf("%w: HMAC-%s takes a %d-byte key, got %d", ErrKeyLengths, integ.Name, integ.New().Size(), len(integKey))
	}
	p.blockSize = p.block.BlockSize()
	p.mac, p.macKey, p.ivLen, p.icvLen = integ.New, integKey, p.blockSize, integ.ICVBytes
	return p, nil
}

// keyed makes the keyed cipher unless it is there.
func (p *Protector) keyed() error {
	if p.block != nil || p.aead != nil {
		return nil
	}
	var err error
	switch c := p.c; {
	case c.Encr == 28: // ChaCha20-Poly1305 (RFC 7634)
		p.aead, err = chacha20poly1305.New(p.encKey)
	case c.AEAD: // AES-GCM (RFC 5282)
		var b cipher.Block
		if b, err = aes.NewCipher(p.encKey); err == nil {
			p.aead, err = cipher.NewGCMWithTagSize(b, c.ICVBytes)
		}
	case c.Encr == 3: // 3DES-CBC
		p.block, err = des.NewTripleDESCipher(p.encKey)
	default: // AES-CBC
		p.block, err = aes.NewCipher(p.encKey)
	}
	return err
}

// Release drops the keyed cipher; the next Seal or Open makes it again
// from the keys. The engine releases an idle IKE SA's.
func (p *Protector) Release() { p.block, p.aead = nil, nil }

// Overhead is what protection adds to the inner payloads at most: the
// Encrypted payload's header, IV, padding and ICV.
func (p *Protector) Overhead() int { return GenericHeaderLen + p.ivLen + p.ivLen + p.icvLen }

// Seal builds the message h with the inner payloads protected in one SK
// payload. rand gives the IV.
func (p *Protector) Seal(h Header, inner []Payload, rand io.Reader) ([]byte, error) {
	h.Version, h.NextPayload = Version, PayloadSK
	b := h.Append(make([]byte, 0, HeaderLen+p.Overhead()+512))
	b = append(b, byte(wire.First(inner)), 0, 0, 0)
	return p.seal(b, wire.AppendChain(nil, inner, Payload.appendBody), rand)
}

// SealFragments builds the message h with the inner payloads protected
// in SKF fragments (RFC 7383 section 2.5), each a message of at most size
// bytes: the first names the first inner payload, all carry their number
// and the total, and each is protected on its own.
func (p *Protector) SealFragments(h Header, inner []Payload, size int, rand io.Reader) ([][]byte, error) {
	h.Version, h.NextPayload = Version, PayloadSKF
	plain := wire.AppendChain(nil, inner, Payload.appendBody)
	room := size - HeaderLen - GenericHeaderLen - 4 - p.ivLen - p.icvLen // for plaintext, padding and its length
	chunk := room - 1
	if bs := p.blockSize; bs != 0 {
		chunk = room/bs*bs - 1
	}
	if chunk < 1 {
		return nil, fmt.Errorf("fragments of %d bytes leave no room for data", size)
	}
	total := (len(plain) + chunk - 1) / chunk
	if total > MaxFragments {
		return nil, fmt.Errorf("%d bytes in fragments of %d would take %d fragments, more than %d", len(plain), size, total, MaxFragments)
	}
	out := make([][]byte, 0, total)
	for i := range total {
		next := PayloadNone
		if i == 0 {
			next = wire.First(inner)
		}
		b := h.Append(make([]byte, 0, size))
		b = append(b, byte(next), 0, 0, 0)
		b = binary.BigEndian.AppendUint16(b, uint16(i+1))
		b = binary.BigEndian.AppendUint16(b, uint16(total))
		end := min((i+1)*chunk, len(plain))
		f, err := p.seal(b, plain[i*chunk:end:end], rand) // a full slice: padding must not spill into the next share
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// MaxFragments bounds the fragments of one message, sent or received: at
// the smallest fragment size a message of 64 KiB takes about 120.
const MaxFragments = 128

// seal protects plain after b, which holds the message up to the end of
// the Encrypted payload's header (and an SKF's fragment fields), and fills
// in both lengths.
func (p *Protector) seal(b, plain []byte, rand io.Reader) ([]byte, error) {
	if err := p.keyed(); err != nil {
		return nil, err
	}
	skStart := HeaderLen // the generic header follows the IKE header
	ivAt := len(b)
	iv := make([]byte, p.ivLen)
	if _, err := io.ReadFull(rand, iv); err != nil {
		return nil, fmt.Errorf("IV: %w", err)
	}
	b = append(b, iv...)
	// Padding then Pad Length (section 3.14): to the block size for CBC,
	// none for AEAD ciphers.
	pad := 0
	if bs := p.blockSize; bs != 0 {
		pad = (bs - (len(plain)+1)%bs) % bs
	}
	total := len(b) + len(plain) + pad + 1 + p.icvLen
	if total > MaxMessageLen {
		return nil, fmt.Errorf("protected message of %d bytes is too large", total)
	}
	putLengths(b, skStart, total)
	pt := append(append(plain, make([]byte, pad)...), byte(pad))
	if p.aead != nil {
		aad := append([]byte(nil), b[:ivAt]...) // Seal's output and its additional data may not share memory
		return p.aead.Seal(b, p.nonce(iv), pt, aad), nil
	}
	ctAt := len(b)
	b = append(b, pt...)
	cipher.NewCBCEncrypter(p.block, iv).CryptBlocks(b[ctAt:], b[ctAt:])
	m := hmac.New(p.mac, p.macKey)
	m.Write(b)
	return append(b, m.Sum(nil)[:p.icvLen]...), nil
}

// putLengths sets the message's and its Encrypted payload's lengths.
func putLengths(b []byte, skStart, total int) {
	binary.BigEndian.PutUint32(b[24:], uint32(total))
	binary.BigEndian.PutUint16(b[skStart+2:], uint16(total-skStart))
}

func (p *Protector) nonce(iv []byte) []byte {
	return append(append(make([]byte, 0, len(p.salt)+len(iv)), p.salt...), iv...)
}

// Open checks and decrypts the SK payload e that ends message b (as
// Decode returned them) and decodes the payloads inside. A message that
// does not verify is ErrAuth; one whose sizes cannot be right is
// ErrMalformed.
func (p *Protector) Open(b []byte, h *Header, e *Encrypted) ([]Payload, error) {
	if e.T != PayloadSK {
		return nil, fmt.Errorf("%w: %v where an SK payload was expected", ErrMalformed, e.T)
	}
	plain, err := p.open(b[:h.Length], e)
	if err != nil {
		return nil, err
	}
	return DecodePayloads(e.Inner, plain)
}

// OpenFragment checks and decrypts one SKF payload (RFC 7383 section
// 2.5) and returns its share of the inner payloads' bytes, to be joined
// in fragment order and decoded from the first fragment's Inner type.
func (p *Protector) OpenFragment(b []byte, h *Header, e *Encrypted) ([]byte, error) {
	if e.T != PayloadSKF {
		return nil, fmt.Errorf("%w: %v where an SKF payload was expected", ErrMalformed, e.T)
	}
	return p.open(b[:h.Length], e)
}

// open returns the plaintext of the Encrypted payload that ends b, with
// its padding removed.
func (p *Protector) open(b []byte, e *Encrypted) ([]byte, error) {
	data := e.Data
	ivAt := len(b) - len(data) // the data runs to the end of the message
	n := len(data) - p.ivLen - p.icvLen
	if n < 1 || (p.blockSize != 0 && n%p.blockSize != 0) {
		return nil, fmt.Errorf("%w: %d bytes of %v data", ErrMalformed, len(data), e.T)
	}
	if err := p.keyed(); err != nil {
		return nil, err
	}
	iv := data[:p.ivLen]
	var pt []byte
	if p.aead != nil {
		var err error
		if pt, err = p.aead.Open(nil, p.nonce(iv), data[p.ivLen:], b[:ivAt]); err != nil {
			return nil, ErrAuth
		}
	} else {
		m := hmac.New(p.mac, p.macKey)
		m.Write(b[:len(b)-p.icvLen])
		if !hmac.Equal(m.Sum(nil)[:p.icvLen], b[len(b)-p.icvLen:]) {
			return nil, ErrAuth
		}
		pt = make([]byte, n)
		cipher.NewCBCDecrypter(p.block, iv).CryptBlocks(pt, data[p.ivLen:p.ivLen+n])
	}
	pad := int(pt[len(pt)-1])
	if pad+1 > len(pt) {
		return nil, fmt.Errorf("%w: pad length %d in %d bytes", ErrMalformed, pad, len(pt))
	}
	return pt[:len(pt)-pad-1], nil
}
