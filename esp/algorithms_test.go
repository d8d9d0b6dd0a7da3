package esp

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSuite(t *testing.T) {
	good := map[string]string{
		"aes128gcm16": "aes128gcm16", "AES256GCM16": "aes256gcm16", "esp-aes128-sha1": "aes128-sha1",
		"aes256-sha256": "aes256-sha256", "chacha20poly1305": "chacha20poly1305", "null-sha256": "null-sha256",
		"ah-sha1": "ah-sha1", "ah-sha256": "ah-sha256", "3des-sha1": "3des-sha1",
	}
	for in, want := range good {
		s, err := ParseSuite(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseSuite(%q) = %v, %v; want %s", in, s, err, want)
		}
	}
	if s, _ := ParseSuite("3des-sha1"); !s.Legacy() {
		t.Error("3des not legacy")
	}
	if s, _ := ParseSuite("ah-sha256"); s.Protocol != ProtoAH || s.Integrity.ICVBytes != 16 || s.Integrity.AHTransform != 5 {
		t.Errorf("ah-sha256 = %+v", s)
	}
	if s, _ := ParseSuite("aes128gcm16"); s.Encryption.TransformID != 20 || s.Encryption.SaltBytes != 4 || !s.Encryption.AEAD {
		t.Errorf("gcm = %+v", s.Encryption)
	}
	for in, want := range map[string]error{"des-sha1": ErrWeakAlgorithm, "aes128-md5": ErrWeakAlgorithm, "ah-md5": ErrWeakAlgorithm, "aes192-sha1": ErrUnknownAlgorithm, "aes128-sha384": ErrUnknownAlgorithm} {
		if _, err := ParseSuite(in); !errors.Is(err, want) {
			t.Errorf("ParseSuite(%q) = %v, want %v", in, err, want)
		}
	}
	for _, in := range []string{"", "esp", "aes128", "aes128gcm16-sha1", "aes128-sha1-sha256", "ah", "ah-sha1-sha256", "null"} {
		if _, err := ParseSuite(in); err == nil {
			t.Errorf("ParseSuite(%q) accepted", in)
		}
	}
}

// ChaCha20-Poly1305 has no IKEv1 transform: IKEv1 refuses it, saying why.
func TestIKEv1Suites(t *testing.T) {
	for _, name := range []string{"aes128gcm16", "aes256gcm16", "aes128-sha1", "aes256-sha256", "null-sha256", "ah-sha256"} {
		s, _ := ParseSuite(name)
		if err := CheckIKEv1(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	s, _ := ParseSuite("chacha20poly1305")
	if err := CheckIKEv1(s); !errors.Is(err, ErrNotIKEv1) || !strings.Contains(err.Error(), "IKEv2 only") || !strings.Contains(err.Error(), "aes256gcm16") {
		t.Fatalf("chacha20poly1305 in IKEv1: %v", err)
	}
}

func TestLookupESP(t *testing.T) {
	for _, name := range []string{"aes128gcm16", "aes256gcm16", "aes128-sha1", "aes256-sha256", "3des-sha1", "null-sha256"} {
		s, _ := ParseSuite(name)
		keyBits := s.Encryption.KeyBits
		if s.Encryption.Name == "3des" || s.Encryption.Name == "null" {
			keyBits = 0 // no key length attribute for fixed-key ciphers
		}
		var auth uint16
		if s.Integrity != nil {
			auth = s.Integrity.AuthAlgorithm
		}
		got, err := LookupESP(s.Encryption.TransformID, keyBits, auth)
		if err != nil || got.String() != s.String() {
			t.Fatalf("%s: got %v, %v", name, got, err)
		}
	}
	// 28 is ChaCha20-Poly1305's IKEv2 number, not an IKEv1 one; 0 is
	// reserved.
	for _, bad := range [][3]int{{12, 192, 2}, {20, 128, 2}, {12, 128, 1}, {99, 0, 0}, {28, 256, 0}, {0, 256, 0}} {
		if _, err := LookupESP(uint16(bad[0]), bad[1], uint16(bad[2])); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}
