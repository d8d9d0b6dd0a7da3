package alg

import (
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/bigmod"
)

// The MODP primes: p = 2^N - 2^(N-64) - 1 + 2^64 * ([2^(N-130) pi] + k),
// generator 2 (RFC 2409 section 6.2 for 1024 bits, RFC 3526 sections 3-5
// for 2048, 3072 and 4096). TestMODPPrimes derives them again from pi.
const (
	modp1024Prime = "" +
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" +
		"020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" +
		"4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF"
	modp2048Prime = "" +
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" +
		"020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" +
		"4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05" +
		"98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB" +
		"9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718" +
		"3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF"
	modp3072Prime = "" +
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" +
		"020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" +
		"4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05" +
		"98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB" +
		"9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718" +
		"3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33" +
		"A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
		"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864" +
		"D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2" +
		"08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
	modp4096Prime = "" +
		"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74" +
		"020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437" +
		"4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05" +
		"98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB" +
		"9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
		"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718" +
		"3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33" +
		"A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
		"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864" +
		"D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2" +
		"08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7" +
		"88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8" +
		"DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2" +
		"233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9" +
		"93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF"
)

// ErrBadPublic is a peer's KE value we refuse: the wrong length, not a
// point on the curve, or a degenerate MODP value (1, p-1, 0).
var ErrBadPublic = errors.New("invalid Diffie-Hellman public value")

// errWiped: Shared after Wipe.
var errWiped = errors.New("Diffie-Hellman private value already wiped")

// DH is our half of a Diffie-Hellman exchange. Public and Shared return
// fixed-length values, as they go on the wire and into SKEYID: a MODP
// value as long as the prime, an ECP point as x | y (RFC 5903 section 7),
// curve25519 as its 32 bytes (RFC 8031).
type DH interface {
	Group() uint16
	Public() []byte
	Shared(peer []byte) ([]byte, error)
	// Wipe zeroes the private value (a MODP exponent; an ECDH key held by
	// Go's crypto/ecdh cannot be reached, and is only let go). Shared
	// fails after it.
	Wipe()
	// Wiped reports whether Wipe ran.
	Wiped() bool
}

type modpGroup struct {
	number  uint16
	m       *bigmod.Modulus
	expBits int // private exponent length: twice the group's strength
}

var modpGroups = map[uint16]*modpGroup{}

func init() {
	for _, g := range []struct {
		number  uint16
		prime   string
		expBits int
	}{{2, modp1024Prime, 256}, {14, modp2048Prime, 320}, {15, modp3072Prime, 448}, {16, modp4096Prime, 512}} {
		b, err := hex.DecodeString(g.prime)
		if err != nil {
			panic(err)
		}
		m, err := bigmod.NewModulus(b)
		if err != nil {
			panic(err)
		}
		modpGroups[g.number] = &modpGroup{number: g.number, m: m, expBits: g.expBits}
	}
}

type modpDH struct {
	g   *modpGroup
	x   []byte // private exponent
	pub []byte
}

// Private exponents are 2s bits for a group of strength s, as SP 800-56A
// allows for safe-prime groups; bigmod's exponentiation is constant-time.
func newMODP(g *modpGroup, rand io.Reader) (*modpDH, error) {
	x := make([]byte, g.expBits/8)
	if _, err := io.ReadFull(rand, x); err != nil {
		return nil, fmt.Errorf("DH group %s: %w", GroupName(g.number), err)
	}
	x[0] |= 0x80 // full length, never small
	gen := bigmod.NewNat().SetUint(2).ExpandFor(g.m)
	pub := bigmod.NewNat().Exp(gen, x, g.m).Bytes(g.m)
	return &modpDH{g: g, x: x, pub: pub}, nil
}

func (d *modpDH) Group() uint16  { return d.g.number }
func (d *modpDH) Public() []byte { return d.pub }
func (d *modpDH) Wipe()          { clear(d.x); d.x = nil }
func (d *modpDH) Wiped() bool    { return d.x == nil }

func (d *modpDH) Shared(peer []byte) ([]byte, error) {
	if d.x == nil {
		return nil, errWiped
	}
	if len(peer) != d.g.m.Size() {
		return nil, fmt.Errorf("%w: %d bytes for %s, want %d", ErrBadPublic, len(peer), GroupName(d.g.number), d.g.m.Size())
	}
	y, err := bigmod.NewNat().SetBytes(peer, d.g.m)
	if err != nil {
		return nil, fmt.Errorf("%w: not below the prime", ErrBadPublic)
	}
	// 0, 1 and p-1 confine the shared value to a tiny subgroup.
	if y.IsZero() == 1 || y.IsOne() == 1 || y.IsMinusOne(d.g.m) == 1 {
		return nil, fmt.Errorf("%w: degenerate value", ErrBadPublic)
	}
	return bigmod.NewNat().Exp(y, d.x, d.g.m).Bytes(d.g.m), nil
}

type ecDH struct {
	number uint16
	priv   *ecdh.PrivateKey
	pub    []byte
}

func curveOf(group uint16) ecdh.Curve {
	switch group {
	case 19:
		return ecdh.P256()
	case 20:
		return ecdh.P384()
	case 31:
		return ecdh.X25519()
	}
	return nil
}

func (d *ecDH) Group() uint16  { return d.number }
func (d *ecDH) Public() []byte { return d.pub }
func (d *ecDH) Wipe()          { d.priv = nil }
func (d *ecDH) Wiped() bool    { return d.priv == nil }

func (d *ecDH) Shared(peer []byte) ([]byte, error) {
	if d.priv == nil {
		return nil, errWiped
	}
	raw := peer
	if d.number != 31 {
		if len(peer) != len(d.pub) {
			return nil, fmt.Errorf("%w: %d bytes for %s, want %d", ErrBadPublic, len(peer), GroupName(d.number), len(d.pub))
		}
		raw = append([]byte{4}, peer...) // RFC 5903 section 7: x | y, no point format byte
	}
	pk, err := d.priv.Curve().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPublic, err)
	}
	s, err := d.priv.ECDH(pk) // the x coordinate for NIST curves (RFC 5903 section 7)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPublic, err)
	}
	if subtle.ConstantTimeCompare(s, make([]byte, len(s))) == 1 {
		return nil, fmt.Errorf("%w: all-zero shared secret", ErrBadPublic)
	}
	return s, nil
}

// NewDH starts our half of an exchange in a group (IANA "Group
// Description" number). Whether a group is allowed is policy, decided
// before; here every group we can compute is available.
func NewDH(group uint16, rand io.Reader) (DH, error) {
	if g, ok := modpGroups[group]; ok {
		return newMODP(g, rand)
	}
	c := curveOf(group)
	if c == nil {
		return nil, fmt.Errorf("%w: DH %s", ErrUnknownAlgorithm, GroupName(group))
	}
	priv, err := c.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("DH group %s: %w", GroupName(group), err)
	}
	pub := priv.PublicKey().Bytes()
	if group != 31 {
		pub = pub[1:] // drop the 0x04 point format byte
	}
	return &ecDH{number: group, priv: priv, pub: pub}, nil
}

// PublicLen is the KE payload length of a group, 0 for unknown groups.
func PublicLen(group uint16) int {
	if g, ok := modpGroups[group]; ok {
		return g.m.Size()
	}
	switch group {
	case 19:
		return 64
	case 20:
		return 96
	case 31:
		return 32
	}
	return 0
}
