package ike

import (
	"encoding/binary"
	"fmt"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// Phase 1 hash attribute values (RFC 2409 appendix A, RFC 4868).
const (
	HashSHA1   = 2
	HashSHA256 = 4
	HashSHA384 = 5
	HashSHA512 = 6
)

// PRF is the phase 1 pseudo-random function: HMAC with the negotiated
// hash (RFC 2409 section 5: no prf attribute means HMAC of the hash).
type PRF = alg.PRF

// NewPRF returns the PRF of a hash attribute value. MD5 (1) is refused.
func NewPRF(hashAttr uint16) (PRF, error) {
	for _, h := range alg.Hashes() {
		if h.Attribute == hashAttr {
			return h.PRF(), nil
		}
	}
	return PRF{}, fmt.Errorf("%w: hash attribute %d", ErrUnknownAlgorithm, hashAttr)
}

// SkeyidPSK is SKEYID for preshared keys: prf(pre-shared-key, Ni_b | Nr_b)
// (RFC 2409 section 5).
func SkeyidPSK(p PRF, psk, ni, nr []byte) []byte { return p.Sum(psk, ni, nr) }

// SkeyidSig is SKEYID for signatures, and for the GSS-API method:
// prf(Ni_b | Nr_b, g^xy).
func SkeyidSig(p PRF, ni, nr, gxy []byte) []byte {
	key := make([]byte, 0, len(ni)+len(nr))
	return p.Sum(append(append(key, ni...), nr...), gxy)
}

// Keys is the keying material of an IKE SA (RFC 2409 section 5).
type Keys struct {
	SKEYID, D, A, E []byte
}

// wipe zeroes the keying material when the IKE SA dies. Go gives no way
// to reach the key schedules inside crypto/aes or crypto/hmac: those go
// with the last reference to the SA's crypter.
func (k *Keys) wipe() {
	for _, b := range [][]byte{k.SKEYID, k.D, k.A, k.E} {
		clear(b)
	}
}

// DeriveKeys computes SKEYID_d, SKEYID_a and SKEYID_e from SKEYID.
func DeriveKeys(p PRF, skeyid, gxy []byte, ckyI, ckyR Cookie) Keys {
	d := p.Sum(skeyid, gxy, ckyI[:], ckyR[:], []byte{0})
	a := p.Sum(skeyid, d, gxy, ckyI[:], ckyR[:], []byte{1})
	e := p.Sum(skeyid, a, gxy, ckyI[:], ckyR[:], []byte{2})
	return Keys{SKEYID: skeyid, D: d, A: a, E: e}
}

// EncryptionKey cuts the cipher key from SKEYID_e, expanding it when it
// is too short (RFC 2409 appendix B: K1 = prf(SKEYID_e, 0), K2 =
// prf(SKEYID_e, K1), ...).
func EncryptionKey(p PRF, skeyidE []byte, n int) []byte {
	if len(skeyidE) >= n {
		return append([]byte(nil), skeyidE[:n]...)
	}
	out := make([]byte, 0, n+p.Size)
	k := p.Sum(skeyidE, []byte{0})
	out = append(out, k...)
	for len(out) < n {
		k = p.Sum(skeyidE, k)
		out = append(out, k...)
	}
	return out[:n]
}

// KeyMat computes n bytes of quick mode keying material for one SA
// direction (RFC 2409 section 5.5): K1 = prf(SKEYID_d, [g(qm)^xy |]
// protocol | SPI | Ni_b | Nr_b), Kn = prf(SKEYID_d, Kn-1 | the same).
// gxy is nil without PFS.
func KeyMat(p PRF, skeyidD, gxy []byte, protocol uint8, spi, ni, nr []byte, n int) []byte {
	seed := make([]byte, 0, len(gxy)+1+len(spi)+len(ni)+len(nr))
	seed = append(append(append(append(append(seed, gxy...), protocol), spi...), ni...), nr...)
	out := make([]byte, 0, n+p.Size)
	k := p.Sum(skeyidD, seed)
	out = append(out, k...)
	for len(out) < n {
		k = p.Sum(skeyidD, k, seed)
		out = append(out, k...)
	}
	return out[:n]
}

// Phase1IV is the IV of the first encrypted main mode message: the hash
// of g^xi | g^xr, cut to the cipher's block size (RFC 2409 appendix B).
func Phase1IV(p PRF, gxi, gxr []byte, blockSize int) []byte {
	return p.Hash(gxi, gxr)[:blockSize]
}

// MessageIV is the IV of the first message of a quick mode or
// informational exchange: the hash of the last phase 1 CBC block and the
// message ID (RFC 2409 appendix B).
func MessageIV(p PRF, lastBlock []byte, msgID uint32, blockSize int) []byte {
	var id [4]byte
	binary.BigEndian.PutUint32(id[:], msgID)
	return p.Hash(lastBlock, id[:])[:blockSize]
}

// HashI and HashR authenticate main mode (RFC 2409 section 5):
//
//	HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
//	HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
//
// saiB is the initiator's SA payload body (without its generic header);
// idB the ID payload body.
func HashI(p PRF, skeyid, gxi, gxr []byte, ckyI, ckyR Cookie, saiB, idiiB []byte) []byte {
	return p.Sum(skeyid, gxi, gxr, ckyI[:], ckyR[:], saiB, idiiB)
}

func HashR(p PRF, skeyid, gxi, gxr []byte, ckyI, ckyR Cookie, saiB, idirB []byte) []byte {
	return p.Sum(skeyid, gxr, gxi, ckyR[:], ckyI[:], saiB, idirB)
}

// The quick mode hashes (RFC 2409 section 5.5). rest is the message's
// payloads after the HASH payload, each with its generic header, as sent.
//
//	HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
//	HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
//	HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
func QuickHash1(p PRF, skeyidA []byte, msgID uint32, rest []byte) []byte {
	return p.Sum(skeyidA, be32(msgID), rest)
}

func QuickHash2(p PRF, skeyidA []byte, msgID uint32, ni, rest []byte) []byte {
	return p.Sum(skeyidA, be32(msgID), ni, rest)
}

func QuickHash3(p PRF, skeyidA []byte, msgID uint32, ni, nr []byte) []byte {
	return p.Sum(skeyidA, []byte{0}, be32(msgID), ni, nr)
}

// InfoHash is the informational exchange's HASH(1) = prf(SKEYID_a, M-ID |
// N/D) (RFC 2409 section 5.7); rest as for the quick mode hashes.
func InfoHash(p PRF, skeyidA []byte, msgID uint32, rest []byte) []byte {
	return p.Sum(skeyidA, be32(msgID), rest)
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
