// Package users is the local user database for PPP authentication: a YAML
// file of users, each with a cleartext password or an NT hash (MD4 of the
// UTF-16 password, what MS-CHAPv2 needs) and optionally a fixed address.
//
//	users:
//	  alice: {password: "correct horse"}
//	  bob:   {nt_hash: 8846f7eaee8fb117ad06bdd830b7586c, address: 10.8.0.50}
//
// The file holds secrets: it is refused when group or others may read it.
package users

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/auth/secretfile"
	"github.com/gatehouse/gatehouse/ppp"
)

// ErrUnknownUser is a user the file does not list: another database may.
var ErrUnknownUser = errors.New("unknown user")

// User is one entry. Its String never shows the secrets.
type User struct {
	Name     string
	password string
	ntHash   [16]byte
	hasHash  bool
	Address  netip.Addr // fixed address, or invalid
}

func (u User) String() string { return "user " + u.Name }

// DB is a loaded users file. It is read-only after Load: safe for
// concurrent use.
type DB struct {
	Path  string
	users map[string]User
}

type fileUser struct {
	Password *string `yaml:"password"`
	NTHash   string  `yaml:"nt_hash"`
	Address  string  `yaml:"address"`
}

// Load reads and checks a users file.
func Load(path string) (*DB, error) {
	raw, err := secretfile.Read(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer clear(raw) // passwords; the parsed copies live in the DB
	return Parse(path, raw)
}

// Parse reads a users file's content; path names it in errors.
func Parse(path string, raw []byte) (*DB, error) {
	var doc struct {
		Users map[string]fileUser `yaml:"users"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	db := &DB{Path: path, users: map[string]User{}}
	for name, f := range doc.Users {
		u := User{Name: name}
		where := fmt.Sprintf("users file %s: user %q", path, name)
		if name == "" || strings.ContainsAny(name, `\ `) {
			return nil, fmt.Errorf("%s: a user name has no spaces or backslashes (DOMAIN\\user logins match the bare name)", where)
		}
		switch {
		case f.Password != nil && f.NTHash != "":
			return nil, fmt.Errorf("%s: give password or nt_hash, not both", where)
		case f.Password != nil:
			if *f.Password == "" {
				return nil, fmt.Errorf("%s: empty password", where)
			}
			u.password = *f.Password
			u.ntHash, u.hasHash = ppp.NTPasswordHash(u.password), true
		case f.NTHash != "":
			h, err := hex.DecodeString(f.NTHash)
			if err != nil || len(h) != 16 {
				return nil, fmt.Errorf("%s: nt_hash must be 32 hex digits", where)
			}
			copy(u.ntHash[:], h)
			u.hasHash = true
		default:
			return nil, fmt.Errorf("%s: needs password or nt_hash", where)
		}
		if f.Address != "" {
			a, err := netip.ParseAddr(f.Address)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%s: address %q is not an IPv4 address", where, f.Address)
			}
			u.Address = a
		}
		db.users[strings.ToLower(name)] = u
	}
	return db, nil
}

// Len is the number of users.
func (db *DB) Len() int { return len(db.users) }

// Lookup finds a user by login name; a DOMAIN\ prefix is ignored and
// names are matched without regard to case, as Windows does.
func (db *DB) Lookup(login string) (User, bool) {
	u, ok := db.users[strings.ToLower(ppp.StripDomain(login))]
	return u, ok
}

// Check decides PPP credentials. The error wraps ErrUnknownUser when the
// user is not listed (so that the next database may be asked); a refusal
// is a result with OK false and a reason for the log, never for the
// client.
func (db *DB) Check(c ppp.Credentials) (ppp.AuthResult, User, error) {
	u, ok := db.Lookup(c.User)
	if !ok {
		return ppp.AuthResult{}, User{}, fmt.Errorf("%w: %q", ErrUnknownUser, ppp.StripDomain(c.User))
	}
	switch c.Proto {
	case ppp.AuthPAP:
		// PAP against an NT hash works too: hash what was sent.
		got := ppp.NTPasswordHash(c.Password)
		if subtle.ConstantTimeCompare(got[:], u.ntHash[:]) == 1 {
			return ppp.AuthResult{OK: true}, u, nil
		}
		return ppp.AuthResult{Message: "wrong password"}, u, nil
	case ppp.AuthCHAPMD5:
		if u.password == "" {
			return ppp.AuthResult{Message: "CHAP-MD5 needs the cleartext password; this user has only an NT hash (use MS-CHAPv2)"}, u, nil
		}
		r := ppp.CheckWithPassword(u.password)(c)
		if !r.OK {
			r.Message = "wrong password"
		}
		return r, u, nil
	case ppp.AuthMSCHAPv2:
		r := ppp.CheckMSCHAPv2(u.ntHash, c)
		if !r.OK {
			r.Message = "wrong password"
		}
		return r, u, nil
	}
	return ppp.AuthResult{Message: fmt.Sprintf("unsupported method %v", c.Proto)}, u, nil
}
