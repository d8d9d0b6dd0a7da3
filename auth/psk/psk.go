// Package psk is the preshared-key store behind IKE PSK authentication
// (RFC 2409 section 5.4): keys read from files with strict permissions and
// looked up by IKE identity, by peer address, or through a wildcard entry.
package psk

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/gatehouse/gatehouse/auth/secretfile"
	"github.com/gatehouse/gatehouse/ike"
)

// Sentinel errors callers test with errors.Is.
var (
	ErrKeyFileMode  = secretfile.ErrMode
	ErrKeyFileEmpty = errors.New("key file holds no key")
	ErrNotFound     = errors.New("no preshared key for this peer")
)

// MinKeyBytes is the shortest key accepted. Short PSKs fall to offline
// dictionary attacks on a captured main mode (RFC 9395 section 3).
const MinKeyBytes = 8

// Key is a preshared key. Its String and Format never show the secret.
type Key struct{ b []byte }

// Bytes returns the key material.
func (k Key) Bytes() []byte { return k.b }

func (k Key) String() string { return fmt.Sprintf("psk(%d bytes)", len(k.b)) }

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return k.String() }

// CheckKeyFile reports whether path is a secret file as secretfile checks
// them (a regular file, group and others shut out, owned by root or us,
// through root's links only). It does not read the key.
func CheckKeyFile(path string) error { return secretfile.Check(path) }

// ReadKeyFile reads a key file. The file holds the key as text; trailing
// newlines are dropped. A key written as "0x" followed by hex digits is
// decoded to bytes, for peers configured with binary keys.
func ReadKeyFile(path string) (Key, error) {
	raw, err := secretfile.Read(path)
	if err != nil {
		return Key{}, err
	}
	raw = bytes.TrimRight(raw, "\r\n")
	if len(raw) == 0 {
		return Key{}, fmt.Errorf("%w: %s", ErrKeyFileEmpty, path)
	}
	if s := string(raw); strings.HasPrefix(s, "0x") {
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return Key{}, fmt.Errorf("key file %s: key starts with 0x but is not hex: %v", path, err)
		}
		raw = b
	}
	if len(raw) < MinKeyBytes {
		return Key{}, fmt.Errorf("key file %s: key is %d bytes, need at least %d", path, len(raw), MinKeyBytes)
	}
	return Key{b: raw}, nil
}

// Entry says which peers a key is for. Exactly one of ID, Prefix or
// Wildcard is set.
type Entry struct {
	Name     string
	KeyFile  string
	ID       string       // IKE identity in text form, see FormatID
	Prefix   netip.Prefix // peer address or subnet
	Wildcard bool
}

// Validate checks that the entry selects peers in exactly one way.
func (e Entry) Validate() error {
	n := 0
	if e.ID != "" {
		n++
	}
	if e.Prefix.IsValid() {
		n++
	}
	if e.Wildcard {
		n++
	}
	if n != 1 {
		return fmt.Errorf("psk entry %q: set exactly one of id, address or wildcard", e.Name)
	}
	return nil
}

type loaded struct {
	Entry
	key Key
}

// Store answers lookups. It is immutable once built; build a new one on
// reload.
type Store struct {
	byID     map[string]*loaded
	prefixes []*loaded // longest prefix first
	wildcard *loaded
}

// Load reads every entry's key file. It fails on the first bad entry, naming
// it, so that a reload with a bad key file keeps the old store.
func Load(entries []Entry) (*Store, error) {
	s := &Store{byID: map[string]*loaded{}}
	for _, e := range entries {
		if err := e.Validate(); err != nil {
			return nil, err
		}
		k, err := ReadKeyFile(e.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("psk entry %q: %w", e.Name, err)
		}
		l := &loaded{Entry: e, key: k}
		switch {
		case e.ID != "":
			if _, dup := s.byID[e.ID]; dup {
				return nil, fmt.Errorf("psk entry %q: identity %s is already used by entry %q", e.Name, e.ID, s.byID[e.ID].Name)
			}
			s.byID[e.ID] = l
		case e.Wildcard:
			if s.wildcard != nil {
				return nil, fmt.Errorf("psk entry %q: only one wildcard entry is allowed (entry %q is one)", e.Name, s.wildcard.Name)
			}
			s.wildcard = l
		default:
			s.prefixes = append(s.prefixes, l)
		}
	}
	// Longest prefix first so a host entry beats its subnet.
	for i := 1; i < len(s.prefixes); i++ {
		for j := i; j > 0 && s.prefixes[j].Prefix.Bits() > s.prefixes[j-1].Prefix.Bits(); j-- {
			s.prefixes[j], s.prefixes[j-1] = s.prefixes[j-1], s.prefixes[j]
		}
	}
	return s, nil
}

// Len reports how many keys the store holds.
func (s *Store) Len() int {
	n := len(s.byID) + len(s.prefixes)
	if s.wildcard != nil {
		n++
	}
	return n
}

// Lookup finds the key for a peer. An identity match wins over an address
// match, which wins over the wildcard: in main mode the responder must pick
// the key before the peer's (encrypted) ID arrives, so id is empty there and
// the address decides; road-warrior clients identify with a private address
// (Windows sends ID_IPV4_ADDR of its LAN address), which only the wildcard
// can cover. It returns the matching entry's name for logs.
func (s *Store) Lookup(peer netip.Addr, id string) (Key, string, error) {
	if id != "" {
		if l, ok := s.byID[id]; ok {
			return l.key, l.Name, nil
		}
	}
	peer = peer.Unmap()
	for _, l := range s.prefixes {
		if l.Prefix.Contains(peer) {
			return l.key, l.Name, nil
		}
	}
	if s.wildcard != nil {
		return s.wildcard.key, s.wildcard.Name, nil
	}
	return Key{}, "", fmt.Errorf("%w: address %s, identity %q", ErrNotFound, peer, id)
}

// FormatID renders an identification payload body in the text form used by
// configuration; see ike.FormatID.
func FormatID(idType uint8, data []byte) string { return ike.FormatID(idType, data) }

// ParseID normalises a configured identity to FormatID's form; see
// ike.ParseID.
func ParseID(text string) (string, error) { return ike.ParseID(text) }
