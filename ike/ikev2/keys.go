package ikev2

import (
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// prfPlus is prf+ (RFC 7296 section 2.13): T1 | T2 | ... with
// T1 = prf(K, S | 0x01) and Tn = prf(K, Tn-1 | S | n), cut to n bytes.
// The counter is one byte, so it yields at most 255 blocks.
func prfPlus(p alg.PRF, key, seed []byte, n int) ([]byte, error) {
	if n > 255*p.Size {
		return nil, fmt.Errorf("prf+: %d bytes asked, at most %d", n, 255*p.Size)
	}
	out := make([]byte, 0, n+p.Size)
	var t []byte
	for i := byte(1); len(out) < n; i++ {
		t = p.Sum(key, t, seed, []byte{i})
		out = append(out, t...)
	}
	clear(out[n:cap(out)])
	return out[:n], nil
}

// SKEYSEED is prf(Ni | Nr, g^ir) for a new IKE SA (section 2.14).
func SKEYSEED(p alg.PRF, ni, nr, gir []byte) []byte {
	return p.Sum(append(append(make([]byte, 0, len(ni)+len(nr)), ni...), nr...), gir)
}

// RekeySKEYSEED is prf(SK_d (old), g^ir (new) | Ni | Nr) for an IKE SA
// rekeyed by CREATE_CHILD_SA (section 2.18).
func RekeySKEYSEED(p alg.PRF, oldSKd, gir, ni, nr []byte) []byte {
	return p.Sum(oldSKd, gir, ni, nr)
}

// Keys are an IKE SA's keys (section 2.14): SK_d derives children's,
// SK_ai/SK_ar protect integrity (none with an AEAD cipher), SK_ei/SK_er
// encrypt (the key, then the salt for AEAD), SK_pi/SK_pr go into AUTH.
type Keys struct {
	D, Ai, Ar, Ei, Er, Pi, Pr []byte
}

// Wipe zeroes every key: the IKE SA is gone.
func (k *Keys) Wipe() {
	for _, b := range [][]byte{k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr} {
		clear(b)
	}
}

// Established is what an established IKE SA still needs of its keys, in
// a buffer of their own: SK_d for rekeys and the four that protect
// messages. SK_pi and SK_pr served AUTH only (section 2.15). k is left as
// it is: the caller wipes it once the copies are in use.
func (k *Keys) Established() *Keys {
	buf := make([]byte, 0, len(k.D)+len(k.Ai)+len(k.Ar)+len(k.Ei)+len(k.Er))
	take := func(b []byte) []byte {
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	return &Keys{D: take(k.D), Ai: take(k.Ai), Ar: take(k.Ar), Ei: take(k.Ei), Er: take(k.Er)}
}

// ErrKeyLengths is a suite whose keys we cannot size.
var ErrKeyLengths = errors.New("no key lengths for the suite")

// DeriveKeys computes {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi |
// SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (section 2.14). SK_d,
// SK_pi and SK_pr are as long as the PRF's output (its preferred key
// size, section 2.13); integrity keys as the HMAC's output (RFC 4868);
// encryption keys as the cipher's key plus its salt.
func DeriveKeys(p alg.PRF, skeyseed, ni, nr []byte, spii, spir SPI, cipher *alg.Cipher, integ *alg.Hash) (*Keys, error) {
	if cipher == nil || (integ == nil) != cipher.AEAD {
		return nil, ErrKeyLengths
	}
	prfLen, encLen, integLen := p.Size, cipher.KeyBits/8+cipher.SaltBytes, 0
	if integ != nil {
		integLen = integ.New().Size()
	}
	seed := make([]byte, 0, len(ni)+len(nr)+16)
	seed = append(append(append(append(seed, ni...), nr...), spii[:]...), spir[:]...)
	km, err := prfPlus(p, skeyseed, seed, 3*prfLen+2*integLen+2*encLen)
	if err != nil {
		return nil, err
	}
	cut := func(n int) []byte {
		b := km[:n:n]
		km = km[n:]
		return b
	}
	k := &Keys{D: cut(prfLen), Ai: cut(integLen), Ar: cut(integLen), Ei: cut(encLen), Er: cut(encLen)}
	k.Pi, k.Pr = cut(prfLen), cut(prfLen)
	return k, nil
}

// ChildKeymat is a child SA's KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr)
// (section 2.17): gir is set when the CREATE_CHILD_SA exchange ran a new
// Diffie-Hellman (PFS).
func ChildKeymat(p alg.PRF, skd, gir, ni, nr []byte, n int) ([]byte, error) {
	seed := make([]byte, 0, len(gir)+len(ni)+len(nr))
	return prfPlus(p, skd, append(append(append(seed, gir...), ni...), nr...), n)
}
