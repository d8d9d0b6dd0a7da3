package ike

import (
	"fmt"
	"strings"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// The catalogue both IKE versions share (package alg), under the names
// this package has always used.
type (
	Group  = alg.Group
	Cipher = alg.Cipher
	Hash   = alg.Hash
	DH     = alg.DH
)

// Errors of the catalogue and of Diffie-Hellman.
var (
	ErrUnknownAlgorithm = alg.ErrUnknownAlgorithm
	ErrWeakAlgorithm    = alg.ErrWeakAlgorithm
	ErrBadPublic        = alg.ErrBadPublic
)

// NewDH, PublicLen, GroupName and ParseGroup: package alg's.
var (
	NewDH      = alg.NewDH
	PublicLen  = alg.PublicLen
	GroupName  = alg.GroupName
	ParseGroup = alg.ParseGroup
)

// Proposal is one phase 1 offer: cipher, hash and DH group.
type Proposal struct {
	Cipher *Cipher
	Hash   *Hash
	Group  *Group
}

func (p Proposal) String() string { return p.Cipher.Name + "-" + p.Hash.Name + "-" + p.Group.Name }

// Legacy reports whether any part of the proposal is a legacy algorithm.
func (p Proposal) Legacy() bool { return p.Cipher.Legacy || p.Group.Legacy }

// ParseProposal parses "aes256-sha256-modp2048": a cipher IKEv1 has
// (not an AEAD one), a hash and a group.
func ParseProposal(text string) (Proposal, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(text)), "-")
	for _, p := range parts {
		if why := alg.Weak(p); why != "" {
			return Proposal{}, fmt.Errorf("%q: %w: %s", text, ErrWeakAlgorithm, why)
		}
	}
	if len(parts) != 3 {
		return Proposal{}, fmt.Errorf("%q: want cipher-hash-group, e.g. aes256-sha256-modp2048", text)
	}
	var p Proposal
	var err error
	if p.Cipher, err = alg.ParseCipher(parts[0]); err == nil && p.Cipher.Attribute == 0 {
		err = fmt.Errorf("%w: %s is an IKEv2 cipher; IKEv1's are aes128, aes256 and 3des", ErrUnknownAlgorithm, p.Cipher.Name)
	}
	if err != nil {
		return Proposal{}, fmt.Errorf("%q: %w", text, err)
	}
	if p.Hash, err = alg.ParseHash(parts[1]); err != nil {
		return Proposal{}, fmt.Errorf("%q: %w", text, err)
	}
	if p.Group, err = ParseGroup(parts[2]); err != nil {
		return Proposal{}, fmt.Errorf("%q: %w", text, err)
	}
	return p, nil
}
