package esp

import (
	"errors"
	"testing"
)

// FuzzInboundOpen feeds arbitrary packets to inbound SAs of every suite: no
// input may panic, and every failure must be one of the counted reasons.
func FuzzInboundOpen(f *testing.F) {
	suites := AllSuites()
	for i, s := range suites {
		o, _ := pair(f, s, i%2 == 0, Limits{}, nil)
		pkt := seal(f, o, []byte("seed payload"), 4)
		f.Add(uint8(i), pkt)
		f.Add(uint8(i), pkt[:len(pkt)-1])
		f.Add(uint8(i), pkt[:HeaderLen])
	}
	f.Add(uint8(0), []byte{})
	f.Add(uint8(3), []byte{0xc0, 0xff, 0xee, 0x01, 0, 0, 0, 0})
	known := []error{ErrTruncated, ErrMisaligned, ErrSPIMismatch, ErrReplay, ErrAuth, ErrPadding, ErrDummy}
	f.Fuzz(func(t *testing.T, which uint8, pkt []byte) {
		s := suites[int(which)%len(suites)]
		_, in := pair(t, s, which&0x80 != 0, Limits{}, nil)
		payload, _, err := in.Open(pkt)
		if err == nil {
			if len(payload) > len(pkt) {
				t.Fatal("payload longer than packet")
			}
			return
		}
		for _, k := range known {
			if errors.Is(err, k) {
				return
			}
		}
		t.Fatalf("unexpected error %v", err)
	})
}
