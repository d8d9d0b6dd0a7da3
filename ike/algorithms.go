package ike

import (
	"errors"
	"fmt"
	"strings"
)

// Group is a Diffie-Hellman group with its IANA "Group Description" number
// (RFC 2409 appendix A, RFC 3526, RFC 5903, RFC 8031).
type Group struct {
	Name   string
	Number uint16
	// Legacy groups are refused unless the operator or an interop plugin
	// enables them for a client family.
	Legacy bool
}

// Cipher is a phase 1 encryption algorithm (RFC 2409 appendix A values).
type Cipher struct {
	Name      string
	Attribute uint16
	KeyBits   int
	Legacy    bool
}

// Hash is a phase 1 hash/PRF algorithm (RFC 2409 appendix A, RFC 4868).
type Hash struct {
	Name      string
	Attribute uint16
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
	{Name: "aes128", Attribute: 7, KeyBits: 128},
	{Name: "aes256", Attribute: 7, KeyBits: 256},
	{Name: "3des", Attribute: 5, KeyBits: 192, Legacy: true},
}

var hashes = []Hash{
	{Name: "sha1", Attribute: 2},
	{Name: "sha256", Attribute: 4},
	{Name: "sha384", Attribute: 5},
	{Name: "sha512", Attribute: 6},
}

var weak = map[string]string{
	"des":     "DES is broken (RFC 8221 section 5)",
	"md5":     "MD5 is not allowed for IKE (RFC 9395 section 3)",
	"modp768": "MODP768 is broken (RFC 8247 section 2.4)",
}

// ErrUnknownAlgorithm is returned for names outside the catalogue.
var ErrUnknownAlgorithm = errors.New("unknown algorithm")

// ErrWeakAlgorithm is returned for algorithms that are never negotiated.
var ErrWeakAlgorithm = errors.New("algorithm refused as too weak")

// Proposal is one phase 1 offer: cipher, hash and DH group.
type Proposal struct {
	Cipher *Cipher
	Hash   *Hash
	Group  *Group
}

func (p Proposal) String() string { return p.Cipher.Name + "-" + p.Hash.Name + "-" + p.Group.Name }

// Legacy reports whether any part of the proposal is a legacy algorithm.
func (p Proposal) Legacy() bool { return p.Cipher.Legacy || p.Group.Legacy }

// ParseProposal parses "aes256-sha256-modp2048".
func ParseProposal(text string) (Proposal, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(text)), "-")
	for _, p := range parts {
		if why, ok := weak[p]; ok {
			return Proposal{}, fmt.Errorf("%q: %w: %s", text, ErrWeakAlgorithm, why)
		}
	}
	if len(parts) != 3 {
		return Proposal{}, fmt.Errorf("%q: want cipher-hash-group, e.g. aes256-sha256-modp2048", text)
	}
	var p Proposal
	var err error
	if p.Cipher, err = find(ciphers, parts[0], func(c *Cipher) string { return c.Name }, "cipher"); err != nil {
		return Proposal{}, fmt.Errorf("%q: %w", text, err)
	}
	if p.Hash, err = find(hashes, parts[1], func(h *Hash) string { return h.Name }, "hash"); err != nil {
		return Proposal{}, fmt.Errorf("%q: %w", text, err)
	}
	if p.Group, err = ParseGroup(parts[2]); err != nil {
		return Proposal{}, fmt.Errorf("%q: %w", text, err)
	}
	return p, nil
}

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

// weakGroupNames name the groups we refuse, for messages about them.
var weakGroupNames = map[uint16]string{1: "modp768"}

// ParseGroup parses a DH group name ("modp2048", "ecp256").
func ParseGroup(name string) (*Group, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	if why, ok := weak[name]; ok {
		return nil, fmt.Errorf("%w: %s", ErrWeakAlgorithm, why)
	}
	return find(groups, name, func(g *Group) string { return g.Name }, "DH group")
}

func find[T any](list []T, name string, nameOf func(*T) string, what string) (*T, error) {
	known := make([]string, 0, len(list))
	for i := range list {
		if nameOf(&list[i]) == name {
			return &list[i], nil
		}
		known = append(known, nameOf(&list[i]))
	}
	return nil, fmt.Errorf("%w: %s %q (known: %s)", ErrUnknownAlgorithm, what, name, strings.Join(known, ", "))
}
