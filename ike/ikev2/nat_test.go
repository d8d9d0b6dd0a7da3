package ikev2

import (
	"errors"
	"net/netip"
	"testing"
)

// The initiator's notifies, read by the responder at the addresses they
// arrive from and at: nothing when nothing changed, the right side when a
// NAT rewrote either address.
func TestDetectNAT(t *testing.T) {
	i, r := netip.MustParseAddrPort("10.0.1.2:500"), netip.MustParseAddrPort("203.0.113.1:500")
	spii := spi(1)
	ps := NATNotifies(spii, SPI{}, i, r)
	for _, c := range []struct {
		name           string
		from, to       netip.AddrPort
		peer, weBehind bool
	}{
		{"no NAT", i, r, false, false},
		{"the initiator behind a NAT", netip.MustParseAddrPort("198.51.100.9:37000"), r, true, false},
		{"the responder behind a NAT", i, netip.MustParseAddrPort("192.168.1.5:500"), false, true},
	} {
		n, err := DetectNAT(ps, spii, SPI{}, c.to, c.from)
		if err != nil || !n.Supported || n.PeerBehind != c.peer || n.WeBehind != c.weBehind {
			t.Errorf("%s: %+v %v", c.name, n, err)
		}
	}
	// The hashes cover the SPIs: another IKE SA's notifies do not match.
	if n, _ := DetectNAT(NATNotifies(spi(7), SPI{}, i, r), spii, SPI{}, r, i); !n.PeerBehind || !n.WeBehind {
		t.Errorf("another SA's hashes matched: %+v", n)
	}
	if n, err := DetectNAT(nil, spii, SPI{}, r, i); err != nil || n.Supported {
		t.Errorf("no notifies: %+v %v", n, err)
	}
	if _, err := DetectNAT(append(ps, ps[1]), spii, SPI{}, r, i); !errors.Is(err, ErrMalformed) {
		t.Errorf("two destination hashes: %v", err)
	}
}
