package ikev2

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// Proposal is one IKE SA suite we offer or accept: a cipher, an
// integrity algorithm (none with an AEAD cipher), a PRF and a
// Diffie-Hellman group.
type Proposal struct {
	Cipher *alg.Cipher
	Integ  *alg.Hash
	PRF    *alg.Hash
	Group  *alg.Group
}

// String names the suite as the configuration does:
// "aes256-sha256-modp2048" (the hash is integrity and PRF),
// "aes256-sha256-prfsha384-ecp384" when they differ,
// "aes128gcm16-prfsha256-ecp256" for an AEAD cipher.
func (p Proposal) String() string {
	parts := []string{p.Cipher.Name}
	if p.Integ != nil {
		parts = append(parts, p.Integ.Name)
	}
	if p.Integ == nil || p.Integ != p.PRF {
		parts = append(parts, "prf"+p.PRF.Name)
	}
	return strings.Join(append(parts, p.Group.Name), "-")
}

// Legacy reports whether the suite needs legacy algorithms enabled.
func (p Proposal) Legacy() bool { return p.Cipher.Legacy || p.Group.Legacy }

// ParseProposal parses a suite name (see String). An AEAD cipher needs
// its PRF named ("prfsha256"): it has no hash to take one from.
func ParseProposal(text string) (Proposal, error) {
	bad := func(err error) (Proposal, error) { return Proposal{}, fmt.Errorf("%q: %w", text, err) }
	parts := strings.Split(strings.ToLower(strings.TrimSpace(text)), "-")
	for _, s := range parts {
		if why := alg.Weak(strings.TrimPrefix(s, "prf")); why != "" {
			return bad(fmt.Errorf("%w: %s", alg.ErrWeakAlgorithm, why))
		}
	}
	if len(parts) < 3 || len(parts) > 4 {
		return bad(errors.New("want cipher-integrity-group (aes256-sha256-modp2048), cipher-integrity-prfHASH-group, or for AEAD cipher-prfHASH-group (aes128gcm16-prfsha256-ecp256)"))
	}
	var p Proposal
	var err error
	if p.Cipher, err = alg.ParseCipher(parts[0]); err != nil {
		return bad(err)
	}
	if p.Group, err = alg.ParseGroup(parts[len(parts)-1]); err != nil {
		return bad(err)
	}
	mid := parts[1 : len(parts)-1]
	if !p.Cipher.AEAD {
		if p.Integ, err = alg.ParseHash(mid[0]); err != nil {
			return bad(err)
		}
		p.PRF, mid = p.Integ, mid[1:]
	}
	switch {
	case len(mid) == 1 && strings.HasPrefix(mid[0], "prf"):
		if p.PRF, err = alg.ParseHash(strings.TrimPrefix(mid[0], "prf")); err != nil {
			return bad(err)
		}
	case len(mid) > 0:
		return bad(fmt.Errorf("%q: a PRF is written prfHASH, e.g. prfsha256", mid[0]))
	case p.Cipher.AEAD:
		return bad(fmt.Errorf("%s is an AEAD cipher: name the PRF, e.g. %s-prfsha256-%s", p.Cipher.Name, p.Cipher.Name, p.Group.Name))
	}
	return p, nil
}

// Transforms are the suite's transforms, in the order of section 3.3.2's
// types.
func (p Proposal) Transforms() []Transform {
	ts := []Transform{p.encr(), {Type: TransformPRF, ID: p.PRF.PRFID}}
	if p.Integ != nil {
		ts = append(ts, Transform{Type: TransformInteg, ID: p.Integ.Integ})
	}
	return append(ts, Transform{Type: TransformDH, ID: p.Group.Number})
}

func (p Proposal) encr() Transform {
	if p.Cipher.Encr == 3 || p.Cipher.Encr == 28 { // fixed key sizes: no Key Length (RFC 7296 3.3.5, RFC 7634)
		return Transform{Type: TransformEncr, ID: p.Cipher.Encr}
	}
	return WithKeyBits(TransformEncr, p.Cipher.Encr, uint16(p.Cipher.KeyBits))
}

// ErrNoProposalChosen is an offer none of our suites accepts.
var ErrNoProposalChosen = errors.New("no proposal chosen")

// Choose is the responder's choice (section 2.7): the first of our
// suites, in our order, that one of the peer's IKE proposals offers
// whole. A proposal offers a suite when, for each type, one of its
// transforms is the suite's; a proposal with a transform we cannot read
// (an unknown attribute, section 3.3.6) offers nothing. The answer is
// that proposal cut to the chosen transforms, with the peer's proposal
// number and the given SPI (ours, when rekeying; nil in IKE_SA_INIT).
func Choose(offered []SAProposal, ours []Proposal, spi []byte) (SAProposal, Proposal, error) {
	wants := make([]want, len(ours))
	for i, p := range ours {
		wants[i] = want{ts: p.Transforms(), aead: p.Cipher.AEAD, name: p.String()}
	}
	got, i, err := choose(offered, ProtoIKE, wants)
	if err != nil {
		return SAProposal{}, Proposal{}, err
	}
	got.SPI = spi
	return got, ours[i], nil
}

// want is one of our suites as choose sees it.
type want struct {
	ts   []Transform
	aead bool
	name string
}

// choose finds our first suite, in our order, that one of the peer's
// proposals for protocol offers, and returns that proposal cut to the
// suite's transforms (without SPI) and the suite's index.
func choose(offered []SAProposal, protocol uint8, wants []want) (SAProposal, int, error) {
	for i, w := range wants {
		for _, o := range offered {
			if o.Protocol == protocol && offers(o, w.ts, w.aead) {
				return SAProposal{Num: o.Num, Protocol: protocol, Transforms: w.ts}, i, nil
			}
		}
	}
	names := make([]string, len(wants))
	for i, w := range wants {
		names[i] = w.name
	}
	return SAProposal{}, 0, fmt.Errorf("%w: peer offered %s; we accept %s", ErrNoProposalChosen, describe(offered), strings.Join(names, ", "))
}

// offers reports whether o holds each transform of want. With an AEAD
// cipher it may name no integrity algorithm but NONE (RFC 5282 section
// 8): AEAD and non-AEAD ciphers share no proposal (RFC 7296 section 3.3).
func offers(o SAProposal, want []Transform, aead bool) bool {
	for _, t := range o.Transforms {
		if !t.Understood() || (aead && t.Type == TransformInteg && t.ID != 0) {
			return false
		}
	}
	for _, w := range want {
		found := false
		for _, t := range o.Transforms {
			if t.Type == w.Type && t.ID == w.ID && t.KeyBits() == w.KeyBits() {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// describe names what a peer offered, transform by transform, for a
// refusal an operator can act on: "#1 aes256/aes128 prfsha256 sha256
// ecp256/modp2048".
func describe(offered []SAProposal) string {
	var out []string
	for _, o := range offered {
		var per [6][]string
		for _, t := range o.Transforms {
			if int(t.Type) < len(per) {
				per[t.Type] = append(per[t.Type], transformName(t))
			}
		}
		var groups []string
		for _, ty := range []uint8{TransformEncr, TransformInteg, TransformPRF, TransformDH} {
			if len(per[ty]) > 0 {
				groups = append(groups, strings.Join(per[ty], "/"))
			}
		}
		out = append(out, fmt.Sprintf("#%d %s", o.Num, strings.Join(groups, " ")))
	}
	return strings.Join(out, "; ")
}

// transformName names a transform by the catalogue, or by its numbers.
func transformName(t Transform) string {
	switch t.Type {
	case TransformEncr:
		if c := cipherOf(t); c != nil {
			return c.Name
		}
	case TransformPRF, TransformInteg:
		if h := hashOf(t); h != nil {
			return map[uint8]string{TransformPRF: "prf", TransformInteg: ""}[t.Type] + h.Name
		}
	case TransformDH:
		return alg.GroupName(t.ID)
	}
	if kb := t.KeyBits(); kb != 0 {
		return fmt.Sprintf("type%d-id%d-%dbits", t.Type, t.ID, kb)
	}
	return fmt.Sprintf("type%d-id%d", t.Type, t.ID)
}

// cipherOf is the catalogue's cipher for an encryption transform, or nil.
func cipherOf(t Transform) *alg.Cipher {
	cs := alg.Ciphers()
	for i := range cs {
		c := &cs[i]
		if c.Encr != 0 && c.Encr == t.ID && (c.Encr == 3 || c.Encr == 28 || int(t.KeyBits()) == c.KeyBits) {
			return c
		}
	}
	return nil
}

// hashOf is the catalogue's hash for a PRF or integrity transform, or nil.
func hashOf(t Transform) *alg.Hash {
	hs := alg.Hashes()
	for i := range hs {
		h := &hs[i]
		if (t.Type == TransformPRF && h.PRFID == t.ID) || (t.Type == TransformInteg && h.Integ == t.ID) {
			return h
		}
	}
	return nil
}

// groupOf is the catalogue's group with a number, or nil.
func groupOf(number uint16) *alg.Group {
	gs := alg.Groups()
	for i := range gs {
		if gs[i].Number == number {
			return &gs[i]
		}
	}
	return nil
}
