package psk

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ike"
)

func keyFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "k.psk")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckKeyFileModes(t *testing.T) {
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{{0o600, true}, {0o400, true}, {0o640, false}, {0o604, false}, {0o620, false}, {0o644, false}} {
		err := CheckKeyFile(keyFile(t, "0123456789", c.mode))
		if c.ok != (err == nil) {
			t.Errorf("mode %04o: err = %v", c.mode, err)
		}
		if !c.ok && (!errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600")) {
			t.Errorf("mode %04o: error should say how to fix it: %v", c.mode, err)
		}
	}
	if err := CheckKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: %v", err)
	}
	if err := CheckKeyFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestReadKeyFile(t *testing.T) {
	k, err := ReadKeyFile(keyFile(t, "correct horse battery\r\n", 0o600))
	if err != nil || string(k.Bytes()) != "correct horse battery" {
		t.Fatalf("text key = %q, %v", k.Bytes(), err)
	}
	k, err = ReadKeyFile(keyFile(t, "0x00112233445566778899\n", 0o600))
	if err != nil || fmt.Sprintf("%x", k.Bytes()) != "00112233445566778899" {
		t.Fatalf("hex key = %x, %v", k.Bytes(), err)
	}
	for name, content := range map[string]string{"empty": "\n", "short": "abc", "bad hex": "0xzz11223344556677"} {
		if _, err := ReadKeyFile(keyFile(t, content, 0o600)); err == nil {
			t.Errorf("%s key accepted", name)
		}
	}
	if _, err := ReadKeyFile(keyFile(t, "long enough key", 0o644)); !errors.Is(err, ErrKeyFileMode) {
		t.Errorf("world-readable key read: %v", err)
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k, err := ReadKeyFile(keyFile(t, "super-secret-psk", 0o600))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, "super") {
			t.Fatalf("key printed: %s", s)
		}
	}
}

func TestLookupPrecedence(t *testing.T) {
	f := func(key string) string { return keyFile(t, key, 0o600) }
	s, err := Load([]Entry{
		{Name: "subnet", KeyFile: f("subnet-key-1"), Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Name: "host", KeyFile: f("host-key-12"), Prefix: netip.MustParsePrefix("198.51.100.2/32")},
		{Name: "id", KeyFile: f("ident-key-1"), ID: "fqdn:gw.example.net"},
		{Name: "any", KeyFile: f("wild-key-12"), Wildcard: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ peer, id, want string }{
		{"198.51.100.2", "", "host"},
		{"198.51.100.9", "", "subnet"},
		{"::ffff:198.51.100.9", "", "subnet"},
		{"198.51.100.2", "fqdn:gw.example.net", "id"},
		{"198.51.100.2", "fqdn:other", "host"},
		{"192.0.2.5", "ipv4:192.168.1.20", "any"},
	} {
		_, got, err := s.Lookup(netip.MustParseAddr(c.peer), c.id)
		if err != nil || got != c.want {
			t.Errorf("Lookup(%s, %q) = %s, %v; want %s", c.peer, c.id, got, err, c.want)
		}
	}
	if s.Len() != 4 {
		t.Errorf("Len = %d", s.Len())
	}
	s2, _ := Load([]Entry{{Name: "host", KeyFile: f("host-key-12"), Prefix: netip.MustParsePrefix("198.51.100.2/32")}})
	if _, _, err := s2.Lookup(netip.MustParseAddr("192.0.2.1"), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("no match: %v", err)
	}
}

func TestLoadRejects(t *testing.T) {
	good := keyFile(t, "a-good-key-1", 0o600)
	cases := map[string][]Entry{
		"no selector":     {{Name: "x", KeyFile: good}},
		"two selectors":   {{Name: "x", KeyFile: good, Wildcard: true, ID: "fqdn:a"}},
		"two wildcards":   {{Name: "a", KeyFile: good, Wildcard: true}, {Name: "b", KeyFile: good, Wildcard: true}},
		"duplicate id":    {{Name: "a", KeyFile: good, ID: "fqdn:a"}, {Name: "b", KeyFile: good, ID: "fqdn:a"}},
		"world readable":  {{Name: "a", KeyFile: keyFile(t, "a-good-key-1", 0o644), Wildcard: true}},
		"missing keyfile": {{Name: "a", KeyFile: "/nonexistent/k", Wildcard: true}},
	}
	for name, entries := range cases {
		if _, err := Load(entries); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIDs(t *testing.T) {
	for _, c := range []struct {
		typ  uint8
		data []byte
		want string
	}{
		{ike.IDIPv4Addr, []byte{192, 0, 2, 1}, "ipv4:192.0.2.1"},
		{ike.IDFQDN, []byte("GW.Example.NET"), "fqdn:gw.example.net"},
		{ike.IDUserFQDN, []byte("Ops@Example.net"), "user:ops@example.net"},
		{ike.IDKeyID, []byte{0xab, 0x01}, "keyid:ab01"},
		{ike.IDIPv4Addr, []byte{1, 2, 3}, "type:1:010203"},
		{ike.IDIPv6Addr, netip.MustParseAddr("2001:db8::1").AsSlice(), "ipv6:2001:db8::1"},
	} {
		if got := FormatID(c.typ, c.data); got != c.want {
			t.Errorf("FormatID(%d, %x) = %s, want %s", c.typ, c.data, got, c.want)
		}
	}
	for in, want := range map[string]string{"fqdn:GW.example.net": "fqdn:gw.example.net", "ipv4:192.0.2.1": "ipv4:192.0.2.1", "keyid:AB01": "keyid:ab01",
		"dn:CN=gw-b, O=Example Corp": "dn:cn=gw-b,o=example corp", `dn:CN=a\,b,O=X`: `dn:cn=a\,b,o=x`} {
		if got, err := ParseID(in); err != nil || got != want {
			t.Errorf("ParseID(%s) = %s, %v", in, got, err)
		}
	}
	for _, bad := range []string{"gw.example.net", "ipv4:2001:db8::1", "ipv6:192.0.2.1", "keyid:xyz", "dn:foo", "fqdn:"} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%s) accepted", bad)
		}
	}
	// A configured DN names a certificate subject as FormatID writes it,
	// whatever the case and spacing.
	subject := FormatID(ike.IDDERASN1DN, mustDN(t, "CN=gw-b,O=Example Corp"))
	for in, want := range map[string]bool{"dn:cn=GW-B , o=example corp": true, "dn:CN=gw-b": false, "fqdn:gw-b": false} {
		norm, err := ParseID(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := ike.SameID(norm, subject); got != want {
			t.Errorf("SameID(%s, %s) = %v", norm, subject, got)
		}
	}
}

// mustDN encodes "CN=...,O=..." as a DER subject.
func mustDN(t *testing.T, text string) []byte {
	var n pkix.Name
	for _, part := range strings.Split(text, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		}
	}
	der, err := asn1.Marshal(n.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	return der
}
