package esp

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestClassifyUDP(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		kind UDPKind
		rest int
	}{
		{[]byte{0xff}, UDPKeepalive, 0},
		{[]byte{0, 0, 0, 0, 1, 2, 3}, UDPIKE, 3},
		{[]byte{0xc0, 0xff, 0xee, 1, 0, 0, 0, 1, 9}, UDPESP, 9},
		{[]byte{1, 2}, UDPInvalid, 0},
		{[]byte{}, UDPInvalid, 0},
		{[]byte{0xfe}, UDPInvalid, 0},
	} {
		k, rest := ClassifyUDP(c.in)
		if k != c.kind || len(rest) != c.rest {
			t.Errorf("%x: %s %d, want %s %d", c.in, k, len(rest), c.kind, c.rest)
		}
	}
}

func udpSegment(src, dst netip.Addr, payload []byte) []byte {
	seg := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(seg[0:], 1701)
	binary.BigEndian.PutUint16(seg[2:], 1701)
	binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)))
	copy(seg[8:], payload)
	c := Checksum(seg, PseudoHeaderSum(src, dst, ProtoUDP, len(seg)))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[6:], c)
	return seg
}

// After NAT, the fixed-up checksum must equal one computed from scratch
// over the addresses we see.
func TestFixTransportChecksum(t *testing.T) {
	origSrc, origDst := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("203.0.113.1")
	natSrc := netip.MustParseAddr("198.51.100.77")
	for _, payload := range [][]byte{{}, {1}, []byte("l2tp control message"), make([]byte, 1300)} {
		seg := udpSegment(origSrc, origDst, payload)
		if !FixTransportChecksum(ProtoUDP, seg, origSrc, origDst, natSrc, origDst) {
			t.Fatal("not fixed")
		}
		want := udpSegment(natSrc, origDst, payload)
		if binary.BigEndian.Uint16(seg[6:]) != binary.BigEndian.Uint16(want[6:]) {
			t.Fatalf("len %d: fixed %04x, recomputed %04x", len(payload), binary.BigEndian.Uint16(seg[6:]), binary.BigEndian.Uint16(want[6:]))
		}
		// Verifying the fixed segment over the new addresses gives zero.
		if Checksum(seg, PseudoHeaderSum(natSrc, origDst, ProtoUDP, len(seg))) != 0 {
			t.Fatal("fixed checksum does not verify")
		}
	}
	zero := make([]byte, 8)
	if !FixTransportChecksum(ProtoUDP, zero, origSrc, origDst, natSrc, origDst) || binary.BigEndian.Uint16(zero[6:]) != 0 {
		t.Fatal("UDP checksum 0 must stay 0")
	}
	if FixTransportChecksum(ProtoTCP, make([]byte, 10), origSrc, origDst, natSrc, origDst) {
		t.Fatal("short TCP segment fixed")
	}
}

func TestParseIPAndBuildHeader(t *testing.T) {
	src, dst := netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.2.0.7")
	pkt := make([]byte, 20+8)
	PutIPv4Header(pkt, src, dst, ProtoUDP, 64, 7, 8)
	if Checksum(pkt[:20], 0) != 0 {
		t.Fatal("header checksum does not verify")
	}
	info, err := ParseIP(pkt)
	if err != nil || info.Src != src || info.Dst != dst || info.Proto != ProtoUDP || info.HeaderLen != 20 || info.TotalLen != 28 || info.TTL != 64 {
		t.Fatalf("ParseIP = %+v, %v", info, err)
	}
	for _, bad := range [][]byte{nil, {0x45}, pkt[:19], append([]byte{0x46}, pkt[1:]...)[:20], {0x60, 0, 0, 0}} {
		if _, err := ParseIP(bad); err == nil {
			t.Errorf("%x parsed", bad)
		}
	}
	v6 := make([]byte, 48)
	v6[0] = 0x60
	binary.BigEndian.PutUint16(v6[4:], 8)
	v6[6] = ProtoUDP
	copy(v6[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(v6[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	if info, err := ParseIP(v6); err != nil || info.Dst.String() != "2001:db8::2" || info.TotalLen != 48 {
		t.Fatalf("v6: %+v %v", info, err)
	}
}

func FuzzParseIP(f *testing.F) {
	pkt := make([]byte, 28)
	PutIPv4Header(pkt, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.2.0.7"), ProtoUDP, 64, 7, 8)
	f.Add(pkt)
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, p []byte) {
		info, err := ParseIP(p)
		if err == nil && (info.TotalLen > len(p) || info.HeaderLen > info.TotalLen) {
			t.Fatalf("inconsistent %+v for %d bytes", info, len(p))
		}
		ClassifyUDP(p)
	})
}
