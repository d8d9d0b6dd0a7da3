package alg

import (
	"errors"
	"strings"
	"testing"
)

// The catalogue gives each version its own numbers for one name (RFC 2409
// appendix A for IKEv1, RFC 7296 section 3.3.2 and RFC 4868 for IKEv2),
// refuses weak names with the reason and lists what it knows otherwise.
func TestCatalogue(t *testing.T) {
	c, err := ParseCipher("AES256")
	if err != nil || c.Attribute != 7 || c.Encr != 12 || c.KeyBits != 256 || c.AEAD {
		t.Fatalf("aes256: %+v %v", c, err)
	}
	if c, err := ParseCipher("chacha20poly1305"); err != nil || c.Attribute != 0 || c.Encr != 28 || !c.AEAD || c.ICVBytes != 16 || c.SaltBytes != 4 {
		t.Fatalf("chacha20poly1305: %+v %v", c, err)
	}
	if c, err := ParseCipher("aes128gcm16"); err != nil || c.Encr != 20 || c.KeyBits != 128 || !c.AEAD {
		t.Fatalf("aes128gcm16: %+v %v", c, err)
	}
	for name, want := range map[string][4]uint16{"sha1": {2, 2, 2, 12}, "sha256": {4, 5, 12, 16}, "sha384": {5, 6, 13, 24}, "sha512": {6, 7, 14, 32}} {
		h, err := ParseHash(name)
		if err != nil || [4]uint16{h.Attribute, h.PRFID, h.Integ, uint16(h.ICVBytes)} != want {
			t.Errorf("%s: %+v %v", name, h, err)
		}
	}
	if g, err := ParseGroup("ecp256"); err != nil || g.Number != 19 || GroupName(31) != "curve25519" || GroupName(1) != "modp768" || GroupName(99) != "group 99" {
		t.Fatalf("groups: %+v %v", g, err)
	}
	if _, err := ParseHash("md5"); !errors.Is(err, ErrWeakAlgorithm) || !strings.Contains(err.Error(), "RFC 9395") {
		t.Errorf("md5: %v", err)
	}
	if _, err := ParseGroup("ecp521"); !errors.Is(err, ErrUnknownAlgorithm) || !strings.Contains(err.Error(), "known: modp1024") {
		t.Errorf("ecp521: %v", err)
	}
}
