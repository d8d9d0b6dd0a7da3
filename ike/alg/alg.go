// Package alg is what both IKE versions know of their algorithms: the
// catalogue of Diffie-Hellman groups, IKE SA ciphers and hash/PRF
// algorithms with their names and each version's numbers, and the
// Diffie-Hellman computations (dh.go). Package ike (IKEv1) and ike/ikev2
// build their proposals from it; the names are those of the
// configuration ("aes256", "sha256", "ecp256").
package alg

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"strings"
)

// Group is a Diffie-Hellman group. Number is both IKEv1's "Group
// Description" (RFC 2409 appendix A) and IKEv2's Transform Type 4 ID (RFC
// 7296 section 3.3.2): IANA keeps one registry (RFC 3526, RFC 5903, RFC
// 8031).
type Group struct {
	Name   string
	Number uint16
	// Legacy groups are refused unless the operator or an interop plugin
	// enables them for a client family.
	Legacy bool
}

// Cipher is an IKE SA cipher: Attribute is IKEv1's phase 1 "Encryption
// Algorithm" value (RFC 2409 appendix A; 0: none), Encr its IKEv2
// Transform Type 1 ID (RFC 7296 section 3.3.2; 0: none). An AEAD cipher
// (IKEv2 only, RFC 5282, RFC 7634) needs no integrity algorithm; ICVBytes
// is its tag and SaltBytes the key material after the key.
type Cipher struct {
	Name      string
	Attribute uint16
	Encr      uint16
	KeyBits   int
	AEAD      bool
	ICVBytes  int
	SaltBytes int
	Legacy    bool
}

// Hash is a hash for IKE: IKEv1's phase 1 "Hash Algorithm" value
// (Attribute, RFC 2409 appendix A, RFC 4868), and in IKEv2 the HMAC as a
// PRF (PRFID, Transform Type 2) and as an integrity algorithm truncated
// to half its output (Integ, Transform Type 3, RFC 4868; SHA-1 to 96
// bits, RFC 2404).
type Hash struct {
	Name      string
	Attribute uint16
	PRFID     uint16
	Integ     uint16
	ICVBytes  int // as an IKEv2 integrity algorithm
	New       func() hash.Hash
}

var groups = []Group{
	{Name: "modp1024", Number: 2, Legacy: true},
	{Name: "modp1536", Number: 5, Legacy: true},
	{Name: "modp2048", Number: 14},
	{Name: "modp3072", Number: 15},
	{Name: "modp4096", Number: 16},
	{Name: "ecp256", Number: 19},
	{Name: "ecp384", Number: 20},
	{Name: "curve25519", Number: 31},
}

var ciphers = []Cipher{
	{Name: "aes128", Attribute: 7, Encr: 12, KeyBits: 128},
	{Name: "aes256", Attribute: 7, Encr: 12, KeyBits: 256},
	{Name: "3des", Attribute: 5, Encr: 3, KeyBits: 192, Legacy: true},
	{Name: "aes128gcm16", Encr: 20, KeyBits: 128, AEAD: true, ICVBytes: 16, SaltBytes: 4},
	{Name: "aes256gcm16", Encr: 20, KeyBits: 256, AEAD: true, ICVBytes: 16, SaltBytes: 4},
	{Name: "chacha20poly1305", Encr: 28, KeyBits: 256, AEAD: true, ICVBytes: 16, SaltBytes: 4},
}

var hashes = []Hash{
	{Name: "sha1", Attribute: 2, PRFID: 2, Integ: 2, ICVBytes: 12, New: sha1.New},
	{Name: "sha256", Attribute: 4, PRFID: 5, Integ: 12, ICVBytes: 16, New: sha256.New},
	{Name: "sha384", Attribute: 5, PRFID: 6, Integ: 13, ICVBytes: 24, New: sha512.New384},
	{Name: "sha512", Attribute: 6, PRFID: 7, Integ: 14, ICVBytes: 32, New: sha512.New},
}

// weak names are recognised only to refuse them with the reason.
var weak = map[string]string{
	"des":     "DES is broken (RFC 8221 section 5)",
	"md5":     "MD5 is not allowed for IKE (RFC 9395 section 3, RFC 8247 section 2.2)",
	"modp768": "MODP768 is broken (RFC 8247 section 2.4)",
}

// weakGroupNames name the groups we refuse, for messages about them.
var weakGroupNames = map[uint16]string{1: "modp768"}

// ErrUnknownAlgorithm is returned for names outside the catalogue.
var ErrUnknownAlgorithm = errors.New("unknown algorithm")

// ErrWeakAlgorithm is returned for algorithms that are never negotiated.
var ErrWeakAlgorithm = errors.New("algorithm refused as too weak")

// Ciphers lists the IKE SA ciphers we know, in the catalogue's order.
func Ciphers() []Cipher { return ciphers }

// Hashes lists the hashes we know, in the catalogue's order.
func Hashes() []Hash { return hashes }

// PRF is HMAC with a hash: IKEv1's phase 1 PRF (RFC 2409 section 5) and
// IKEv2's PRF_HMAC_* (RFC 7296 section 2.13, RFC 4868).
type PRF struct {
	New  func() hash.Hash
	Size int
}

// PRF is the hash's HMAC.
func (h *Hash) PRF() PRF { return PRF{New: h.New, Size: h.New().Size()} }

// Sum is prf(key, data[0] | data[1] | ...).
func (p PRF) Sum(key []byte, data ...[]byte) []byte {
	m := hmac.New(p.New, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// Hash is the plain hash over data (IKEv1's phase 1 IV).
func (p PRF) Hash(data ...[]byte) []byte {
	h := p.New()
	for _, d := range data {
		h.Write(d)
	}
	return h.Sum(nil)
}

// NATHash is the hash NAT detection compares (RFC 3947 section 3.2 with
// the negotiated hash over the cookies; RFC 7296 section 2.23 with SHA-1
// over the SPIs): HASH(SPIi | SPIr | IP | Port).
func (p PRF) NATHash(spii, spir []byte, ap netip.AddrPort) []byte {
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], ap.Port())
	return p.Hash(spii, spir, ap.Addr().Unmap().AsSlice(), port[:])
}

// Groups lists the groups we know, in the catalogue's order.
func Groups() []Group { return groups }

// Weak says why a name is refused as too weak ("" when it is not).
func Weak(name string) string { return weak[name] }

// GroupName names a DH group number ("modp2048"), or says it is unknown.
func GroupName(number uint16) string {
	for _, g := range groups {
		if g.Number == number {
			return g.Name
		}
	}
	if n, ok := weakGroupNames[number]; ok {
		return n
	}
	return fmt.Sprintf("group %d", number)
}

// ParseGroup parses a DH group name ("modp2048", "ecp256").
func ParseGroup(name string) (*Group, error) { return lookup(groups, name, "DH group") }

// ParseCipher parses an IKE SA cipher name ("aes256", "aes128gcm16").
func ParseCipher(name string) (*Cipher, error) { return lookup(ciphers, name, "cipher") }

// ParseHash parses a hash name ("sha256").
func ParseHash(name string) (*Hash, error) { return lookup(hashes, name, "hash") }

// named is what lookup needs of a catalogue entry.
type named interface{ Group | Cipher | Hash }

func nameOf[T named](x *T) string {
	switch v := any(x).(type) {
	case *Group:
		return v.Name
	case *Cipher:
		return v.Name
	case *Hash:
		return v.Name
	}
	return ""
}

// lookup finds name in list, refusing weak names with their reason and
// unknown ones with the names we know.
func lookup[T named](list []T, name, what string) (*T, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if why, ok := weak[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrWeakAlgorithm, why)
	}
	known := make([]string, 0, len(list))
	for i := range list {
		if nameOf(&list[i]) == name {
			return &list[i], nil
		}
		known = append(known, nameOf(&list[i]))
	}
	return nil, fmt.Errorf("%w: %s %q (known: %s)", ErrUnknownAlgorithm, what, name, strings.Join(known, ", "))
}
