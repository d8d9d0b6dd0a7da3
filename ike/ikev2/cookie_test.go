package ikev2

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"testing"
)

// A cookie is good for its nonce, address and SPI only, across one
// rotation of the secret and not two.
func TestCookies(t *testing.T) {
	c, err := NewCookies(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ni, ip, spii := bytes.Repeat([]byte{7}, 32), netip.MustParseAddr("198.51.100.9"), spi(3)
	k := c.Make(ni, ip, spii)
	if len(k) != CookieLen || !c.Check(k, ni, ip, spii) {
		t.Fatalf("cookie %x refused", k)
	}
	for name, ok := range map[string]bool{
		"another nonce":   c.Check(k, bytes.Repeat([]byte{8}, 32), ip, spii),
		"another address": c.Check(k, ni, netip.MustParseAddr("198.51.100.10"), spii),
		"another SPI":     c.Check(k, ni, ip, spi(4)),
		"short":           c.Check(k[:20], ni, ip, spii),
		"another version": c.Check(append([]byte{k[0] + 5}, k[1:]...), ni, ip, spii),
	} {
		if ok {
			t.Errorf("cookie taken for %s", name)
		}
	}
	if err := c.Rotate(); err != nil || !c.Check(k, ni, ip, spii) {
		t.Fatalf("a cookie of the previous secret refused: %v", err)
	}
	if !c.Check(c.Make(ni, ip, spii), ni, ip, spii) {
		t.Fatal("a new cookie refused")
	}
	if err := c.Rotate(); err != nil || c.Check(k, ni, ip, spii) {
		t.Fatalf("a cookie two secrets old taken: %v", err)
	}
}
