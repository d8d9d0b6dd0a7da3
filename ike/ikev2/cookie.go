package ikev2

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
	"net/netip"
	"sync"
)

// Cookies are a responder's stateless cookies (section 2.6), asked for
// when too many IKE SAs are half open: Cookie = <VersionIDofSecret> |
// Hash(Ni | IPi | SPIi | <secret>), here HMAC-SHA-256 keyed with the
// secret. A cookie made with the current or the previous secret is good,
// so Rotate can run on a timer without refusing cookies just handed out.
type Cookies struct {
	mu      sync.Mutex
	rand    io.Reader
	version byte
	cur     [32]byte
	prev    [32]byte
	hasPrev bool
}

// CookieLen is the length of our cookies (1 to 64 bytes allowed, section
// 3.10.1).
const CookieLen = 1 + sha256.Size

// NewCookies makes a cookie maker with a fresh secret from rand.
func NewCookies(rand io.Reader) (*Cookies, error) {
	c := &Cookies{rand: rand}
	if _, err := io.ReadFull(rand, c.cur[:]); err != nil {
		return nil, fmt.Errorf("cookie secret: %w", err)
	}
	return c, nil
}

// Rotate takes a new secret; the last one stays good until the next
// rotation.
func (c *Cookies) Rotate() error {
	var next [32]byte
	if _, err := io.ReadFull(c.rand, next[:]); err != nil {
		return fmt.Errorf("cookie secret: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.prev, c.cur, c.hasPrev = c.cur, next, true
	clear(next[:])
	c.version++
	return nil
}

func cookieHash(secret []byte, ni []byte, ip netip.Addr, spii SPI) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(ni)
	m.Write(ip.Unmap().AsSlice())
	m.Write(spii[:])
	return m.Sum(nil)
}

// Make is the cookie for an initiator's first message: its nonce, its
// address and its SPI.
func (c *Cookies) Make(ni []byte, ip netip.Addr, spii SPI) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte{c.version}, cookieHash(c.cur[:], ni, ip, spii)...)
}

// Check reports whether cookie is one we made for this nonce, address and
// SPI, with the current or the previous secret.
func (c *Cookies) Check(cookie, ni []byte, ip netip.Addr, spii SPI) bool {
	if len(cookie) != CookieLen {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case cookie[0] == c.version:
		return hmac.Equal(cookie[1:], cookieHash(c.cur[:], ni, ip, spii))
	case c.hasPrev && cookie[0] == c.version-1:
		return hmac.Equal(cookie[1:], cookieHash(c.prev[:], ni, ip, spii))
	}
	return false
}
