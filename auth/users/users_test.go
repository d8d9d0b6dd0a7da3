package users

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ppp"
)

const sample = `users:
  alice: {password: "correct horse"}
  Bob:   {nt_hash: 8846f7eaee8fb117ad06bdd830b7586c, address: 10.8.0.50}
`

func TestLoadRefusesReadableFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "users.yaml")
	os.WriteFile(p, []byte(sample), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable: %v", err)
	}
	os.Chmod(p, 0o600)
	db, err := Load(p)
	if err != nil || db.Len() != 2 {
		t.Fatalf("%v %v", db, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"users:\n  a: {}\n", "needs password or nt_hash"},
		{"users:\n  a: {password: x, nt_hash: 00112233445566778899aabbccddeeff}\n", "not both"},
		{"users:\n  a: {nt_hash: abc}\n", "32 hex digits"},
		{"users:\n  a: {password: x, address: fe80::1}\n", "not an IPv4"},
		{"users:\n  a: {password: x, pasword: y}\n", "field pasword not found"},
		{"users:\n  'D\\a': {password: x}\n", "backslashes"},
		{"users:\n  a: {password: ''}\n", "empty password"},
	} {
		if _, err := Parse("u.yaml", []byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.doc, err, tc.want)
		}
	}
}

func TestCheckEachProtocol(t *testing.T) {
	db, err := Parse("u.yaml", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	// Bob's hash is the well-known NT hash of "password".
	if h := ppp.NTPasswordHash("password"); hex.EncodeToString(h[:]) != "8846f7eaee8fb117ad06bdd830b7586c" {
		t.Fatalf("NT hash of password: %x", h)
	}
	for _, tc := range []struct {
		user, pass string
		proto      ppp.AuthProto
		ok         bool
		msg        string
	}{
		{"alice", "correct horse", ppp.AuthPAP, true, ""},
		{`CORP\Alice`, "correct horse", ppp.AuthMSCHAPv2, true, ""},
		{"alice", "correct horse", ppp.AuthCHAPMD5, true, ""},
		{"alice", "wrong", ppp.AuthMSCHAPv2, false, "wrong password"},
		{"bob", "password", ppp.AuthPAP, true, ""},
		{"bob", "password", ppp.AuthMSCHAPv2, true, ""},
		{"bob", "password", ppp.AuthCHAPMD5, false, "only an NT hash"},
		{"bob", "Password", ppp.AuthPAP, false, "wrong password"},
	} {
		// Build the credentials a client would send, through the ppp
		// client and server themselves.
		var got ppp.AuthResult
		var user User
		srv := &ppp.AuthServer{Proto: tc.proto, Name: "gh", Random: func(b []byte) { copy(b, "0123456789abcdef") },
			Check: func(c ppp.Credentials) ppp.AuthResult {
				var err error
				got, user, err = db.Check(c)
				if err != nil {
					t.Fatal(err)
				}
				return got
			}, Done: func(bool, string, string) {}}
		cli := &ppp.AuthClient{Proto: tc.proto, User: tc.user, Password: tc.pass, Random: func(b []byte) { copy(b, "fedcba9876543210") },
			Done: func(bool, string) {}}
		srv.Send = func(p ppp.Packet) { cli.Input(p) }
		cli.Send = func(p ppp.Packet) { srv.Input(p) }
		srv.Start()
		cli.Start()
		if got.OK != tc.ok || !strings.Contains(got.Message, tc.msg) {
			t.Errorf("%s/%v: %+v", tc.user, tc.proto, got)
		}
		if tc.ok && user.Name == "" {
			t.Errorf("%s: no user returned", tc.user)
		}
	}
	if _, _, err := db.Check(ppp.Credentials{Proto: ppp.AuthPAP, User: "mallory"}); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if u, _ := db.Lookup("BOB"); u.Address.String() != "10.8.0.50" || strings.Contains(u.String(), "8846") {
		t.Fatalf("%v %v", u, u.Address)
	}
}
