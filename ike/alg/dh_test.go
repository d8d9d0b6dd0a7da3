package alg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"testing"
)

// arctanInv is arctan(1/x) scaled by 2^scale (Taylor series, truncating).
func arctanInv(x int64, scale uint) *big.Int {
	one := new(big.Int).Lsh(big.NewInt(1), scale)
	x2 := big.NewInt(x * x)
	term := new(big.Int).Quo(one, big.NewInt(x))
	sum := new(big.Int).Set(term)
	for n := int64(3); term.Sign() != 0; n += 2 {
		term.Quo(term, x2)
		t := new(big.Int).Quo(term, big.NewInt(n))
		if n%4 == 3 {
			sum.Sub(sum, t)
		} else {
			sum.Add(sum, t)
		}
	}
	return sum
}

// TestMODPPrimes derives each prime from its definition with pi (Machin's
// formula) and checks that it is the constant we carry and a safe prime.
func TestMODPPrimes(t *testing.T) {
	for _, g := range []struct {
		bits  uint
		k     int64
		prime string
	}{{1024, 129093, modp1024Prime}, {2048, 124476, modp2048Prime}, {3072, 1690314, modp3072Prime}, {4096, 240904, modp4096Prime}} {
		scale := g.bits + 100
		pi := new(big.Int).Sub(new(big.Int).Mul(big.NewInt(16), arctanInv(5, scale)), new(big.Int).Mul(big.NewInt(4), arctanInv(239, scale)))
		f := new(big.Int).Add(new(big.Int).Rsh(pi, scale-(g.bits-130)), big.NewInt(g.k))
		p := new(big.Int).Lsh(big.NewInt(1), g.bits)
		p.Sub(p, new(big.Int).Lsh(big.NewInt(1), g.bits-64))
		p.Sub(p, big.NewInt(1))
		p.Add(p, new(big.Int).Lsh(f, 64))
		want, _ := new(big.Int).SetString(g.prime, 16)
		if p.Cmp(want) != 0 {
			t.Fatalf("MODP %d: the constant differs from the definition", g.bits)
		}
		if !p.ProbablyPrime(10) || !new(big.Int).Rsh(p, 1).ProbablyPrime(10) {
			t.Fatalf("MODP %d: not a safe prime", g.bits)
		}
	}
}

// TestDHAgreement: two parties agree in every group, with values of the
// fixed wire length.
func TestDHAgreement(t *testing.T) {
	for _, group := range []uint16{2, 14, 15, 16, 19, 20, 31} {
		a, err := NewDH(group, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewDH(group, rand.Reader)
		if len(a.Public()) != PublicLen(group) || len(b.Public()) != PublicLen(group) {
			t.Fatalf("group %d: public of %d bytes, want %d", group, len(a.Public()), PublicLen(group))
		}
		s1, err1 := a.Shared(b.Public())
		s2, err2 := b.Shared(a.Public())
		if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) {
			t.Fatalf("group %d: no agreement (%v, %v)", group, err1, err2)
		}
		if want := map[uint16]int{19: 32, 20: 48, 31: 32}[group]; want != 0 && len(s1) != want {
			t.Fatalf("group %d: shared secret of %d bytes, want %d", group, len(s1), want)
		}
		if group <= 16 && len(s1) != PublicLen(group) {
			t.Fatalf("group %d: shared secret of %d bytes, want the prime's length", group, len(s1))
		}
	}
}

// TestMODPMatchesReference compares the constant-time exponentiation with
// math/big's.
func TestMODPMatchesReference(t *testing.T) {
	a, _ := NewDH(14, rand.Reader)
	b, _ := NewDH(14, rand.Reader)
	p, _ := new(big.Int).SetString(modp2048Prime, 16)
	x := new(big.Int).SetBytes(a.(*modpDH).x)
	if got, want := new(big.Int).SetBytes(a.Public()), new(big.Int).Exp(big.NewInt(2), x, p); got.Cmp(want) != 0 {
		t.Fatal("public value differs from 2^x mod p")
	}
	s, _ := a.Shared(b.Public())
	if want := new(big.Int).Exp(new(big.Int).SetBytes(b.Public()), x, p); new(big.Int).SetBytes(s).Cmp(want) != 0 {
		t.Fatal("shared value differs from y^x mod p")
	}
}

// TestCurve25519Vector is RFC 7748 section 6.1, through our interface.
func TestCurve25519Vector(t *testing.T) {
	priv, err := ecdh.X25519().NewPrivateKey(mustHex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	if err != nil {
		t.Fatal(err)
	}
	d := &ecDH{number: 31, priv: priv, pub: priv.PublicKey().Bytes()}
	s, err := d.Shared(mustHex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
	if err != nil || hex.EncodeToString(s) != "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742" {
		t.Fatalf("shared %x, %v", s, err)
	}
	if hex.EncodeToString(d.Public()) != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("public %x", d.Public())
	}
}

func TestDHRefusesBadPublics(t *testing.T) {
	m, _ := NewDH(14, rand.Reader)
	p, _ := hex.DecodeString(modp2048Prime)
	pm1 := new(big.Int).Sub(new(big.Int).SetBytes(p), big.NewInt(1)).FillBytes(make([]byte, 256))
	one := make([]byte, 256)
	one[255] = 1
	e, _ := NewDH(19, rand.Reader)
	x, _ := NewDH(31, rand.Reader)
	for name, c := range map[string]struct {
		dh   DH
		peer []byte
	}{
		"MODP short":      {m, make([]byte, 255)},
		"MODP zero":       {m, make([]byte, 256)},
		"MODP one":        {m, one},
		"MODP p-1":        {m, pm1},
		"MODP p":          {m, p},
		"ECP short":       {e, make([]byte, 63)},
		"ECP off curve":   {e, bytes.Repeat([]byte{1}, 64)},
		"X25519 zero":     {x, make([]byte, 32)},
		"X25519 27 bytes": {x, make([]byte, 27)},
	} {
		if _, err := c.dh.Shared(c.peer); !errors.Is(err, ErrBadPublic) {
			t.Errorf("%s: %v, want ErrBadPublic", name, err)
		}
	}
	if _, err := NewDH(1, rand.Reader); !errors.Is(err, ErrUnknownAlgorithm) {
		t.Errorf("group 1: %v", err)
	}
}

func BenchmarkDH(b *testing.B) {
	for _, g := range []uint16{14, 19, 31} {
		b.Run(map[uint16]string{14: "modp2048", 19: "ecp256", 31: "curve25519"}[g], func(b *testing.B) {
			peer, _ := NewDH(g, rand.Reader)
			for b.Loop() {
				d, _ := NewDH(g, rand.Reader)
				d.Shared(peer.Public())
			}
		})
	}
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
