package ppp

import (
	"crypto/des"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf16"

	"golang.org/x/crypto/md4" //nolint:staticcheck // MS-CHAPv2 is defined on MD4 (RFC 2759 section 8)
)

// MS-CHAPv2 (RFC 2759) and the MPPE keys derived from it (RFC 3079). The
// function names follow the RFCs' pseudo-code, so each can be checked
// against it line by line.

// NTPasswordHash is MD4 of the password in UTF-16LE (RFC 2759 section 8.3).
func NTPasswordHash(password string) [16]byte {
	u := utf16.Encode([]rune(password))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	h := md4.New()
	h.Write(b)
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// HashNTPasswordHash is MD4 of the hash (section 8.4).
func HashNTPasswordHash(hash [16]byte) [16]byte {
	h := md4.New()
	h.Write(hash[:])
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ChallengeHash is section 8.2: the first 8 bytes of SHA1(PeerChallenge |
// AuthenticatorChallenge | UserName). The user name is without any domain
// the peer may have put in front (section 4: "DOMAIN\user").
func ChallengeHash(peer, auth [16]byte, user string) [8]byte {
	h := sha1.New()
	h.Write(peer[:])
	h.Write(auth[:])
	h.Write([]byte(StripDomain(user)))
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// StripDomain removes a "DOMAIN\" prefix, as Windows clients send it.
func StripDomain(user string) string {
	if i := strings.LastIndexByte(user, '\\'); i >= 0 {
		return user[i+1:]
	}
	return user
}

// ChallengeResponse is section 8.5: the 16-byte hash, zero-padded to 21,
// as three DES keys, each encrypting the challenge.
func ChallengeResponse(challenge [8]byte, hash [16]byte) [24]byte {
	var z [21]byte
	copy(z[:], hash[:])
	var out [24]byte
	for i := 0; i < 3; i++ {
		desEncrypt(out[8*i:8*i+8], challenge[:], z[7*i:7*i+7])
	}
	return out
}

// desEncrypt is section 8.6: a 7-byte key spread over 8 bytes (parity
// bits left clear; DES ignores them).
func desEncrypt(dst, clear, key7 []byte) {
	var k [8]byte
	k[0] = key7[0] >> 1
	k[1] = (key7[0]&0x01)<<6 | key7[1]>>2
	k[2] = (key7[1]&0x03)<<5 | key7[2]>>3
	k[3] = (key7[2]&0x07)<<4 | key7[3]>>4
	k[4] = (key7[3]&0x0f)<<3 | key7[4]>>5
	k[5] = (key7[4]&0x1f)<<2 | key7[5]>>6
	k[6] = (key7[5]&0x3f)<<1 | key7[6]>>7
	k[7] = key7[6] & 0x7f
	for i := range k {
		k[i] <<= 1
	}
	c, _ := des.NewCipher(k[:]) // 8 bytes: cannot fail
	c.Encrypt(dst, clear)
}

// GenerateNTResponse is section 8.1, from the password's NT hash.
func GenerateNTResponse(auth, peer [16]byte, user string, hash [16]byte) [24]byte {
	return ChallengeResponse(ChallengeHash(peer, auth, user), hash)
}

var (
	magic1 = []byte("Magic server to client signing constant")
	magic2 = []byte("Pad to make it do more than one iteration")
)

// GenerateAuthenticatorResponse is section 8.7: the "S=" string the
// server sends in its Success packet, proving it knows the password too.
func GenerateAuthenticatorResponse(hash [16]byte, ntResponse [24]byte, peer, auth [16]byte, user string) string {
	hh := HashNTPasswordHash(hash)
	h := sha1.New()
	h.Write(hh[:])
	h.Write(ntResponse[:])
	h.Write(magic1)
	digest := h.Sum(nil)
	ch := ChallengeHash(peer, auth, user)
	h = sha1.New()
	h.Write(digest)
	h.Write(ch[:])
	h.Write(magic2)
	return "S=" + strings.ToUpper(hex.EncodeToString(h.Sum(nil)))
}

// CheckAuthenticatorResponse is section 8.8, for the client: the server's
// "S=" string, compared in constant time.
func CheckAuthenticatorResponse(hash [16]byte, ntResponse [24]byte, peer, auth [16]byte, user, received string) bool {
	want := GenerateAuthenticatorResponse(hash, ntResponse, peer, auth, user)
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToUpper(strings.TrimSpace(received)))) == 1
}

// VerifyNTResponse is the server's check of a client's NT-Response.
func VerifyNTResponse(auth, peer [16]byte, user string, hash [16]byte, ntResponse []byte) bool {
	want := GenerateNTResponse(auth, peer, user, hash)
	return subtle.ConstantTimeCompare(want[:], ntResponse) == 1
}

// RFC 3079 section 3.4: MPPE keys from MS-CHAPv2.
var (
	mppeMagic1 = []byte("This is the MPPE Master Key")
	mppeMagic2 = []byte("On the client side, this is the send key; on the server side, it is the receive key.")
	mppeMagic3 = []byte("On the client side, this is the receive key; on the server side, it is the send key.")
	shsPad1    = make([]byte, 40)
	shsPad2    = func() []byte {
		b := make([]byte, 40)
		for i := range b {
			b[i] = 0xf2
		}
		return b
	}()
)

// MasterKey is GetMasterKey: SHA1(PasswordHashHash | NT-Response | Magic1),
// first 16 bytes.
func MasterKey(hash [16]byte, ntResponse [24]byte) [16]byte {
	hh := HashNTPasswordHash(hash)
	h := sha1.New()
	h.Write(hh[:])
	h.Write(ntResponse[:])
	h.Write(mppeMagic1)
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// AsymmetricStartKey is GetAsymmetricStartKey for 128-bit keys: the send
// or receive key of the server or the client.
func AsymmetricStartKey(master [16]byte, send, server bool) [16]byte {
	magic := mppeMagic3
	if send != server { // client send and server receive use Magic2
		magic = mppeMagic2
	}
	h := sha1.New()
	h.Write(master[:])
	h.Write(shsPad1)
	h.Write(magic)
	h.Write(shsPad2)
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// MSCHAPv2Response is the 49-byte Value of a client's Response packet
// (RFC 2759 section 4): Peer-Challenge, 8 reserved zero bytes,
// NT-Response, Flags.
type MSCHAPv2Response struct {
	PeerChallenge [16]byte
	NTResponse    [24]byte
	Flags         byte
}

// ErrBadResponse: a Response value of the wrong size.
var ErrBadResponse = fmt.Errorf("%w: MS-CHAPv2 response value must be 49 bytes", ErrMalformed)

// ParseMSCHAPv2Response decodes the Value field.
func ParseMSCHAPv2Response(v []byte) (MSCHAPv2Response, error) {
	var r MSCHAPv2Response
	if len(v) != 49 {
		return r, ErrBadResponse
	}
	copy(r.PeerChallenge[:], v[:16])
	copy(r.NTResponse[:], v[24:48])
	r.Flags = v[48]
	return r, nil
}

// Bytes encodes the Value field.
func (r MSCHAPv2Response) Bytes() []byte {
	b := make([]byte, 49)
	copy(b, r.PeerChallenge[:])
	copy(b[24:], r.NTResponse[:])
	b[48] = r.Flags
	return b
}
