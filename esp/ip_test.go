package esp

import (
	"encoding/binary"
	"net/netip"
	"slices"
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

// v6Packet is an IPv6 packet from 2001:db8::1 to 2001:db8::2 whose fixed
// header names next and whose payload is exts then upper.
func v6Packet(next uint8, exts, upper []byte) []byte {
	p := make([]byte, 40, 40+len(exts)+len(upper))
	p[0], p[6], p[7] = 0x60, next, 64
	copy(p[8:], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(p[24:], netip.MustParseAddr("2001:db8::2").AsSlice())
	p = append(append(p, exts...), upper...)
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	return p
}

// An extension header of n bytes (RFC 8200 section 4: the next header,
// then the length in 8-octet units past the first 8).
func ext(next uint8, n int) []byte {
	h := make([]byte, n)
	h[0], h[1] = next, byte(n/8-1)
	return h
}

// fragHdr is a Fragment header (RFC 8200 section 4.5) at offset (in
// 8-octet units).
func fragHdr(next uint8, offset uint16, more bool) []byte {
	h := make([]byte, 8)
	h[0] = next
	binary.BigEndian.PutUint16(h[2:], offset<<3)
	if more {
		h[3] |= 1
	}
	binary.BigEndian.PutUint32(h[4:], 0xdeadbeef)
	return h
}

var udp8 = []byte{0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0} // 5000 > 53

// ParseIP walks IPv6's extension headers to the upper layer (RFC 8200
// section 4.1's order, AH's length in 4-octet units per RFC 4302), stops at
// ESP, and marks a fragment past the first, which carries no ports; an
// IPv4 fragment past the first likewise. A chain that runs past the packet
// is refused.
func TestParseIPv6ExtensionHeaders(t *testing.T) {
	ah := make([]byte, 24) // next header, length 4 (24 octets: (4+2)*4), SPI, sequence, 12-byte ICV
	ah[0], ah[1] = ProtoUDP, 4
	for name, c := range map[string]struct {
		pkt      []byte
		proto    uint8
		hl       int
		fragment bool
	}{
		"none":              {v6Packet(ProtoUDP, nil, udp8), ProtoUDP, 40, false},
		"hop-by-hop":        {v6Packet(0, ext(ProtoUDP, 8), udp8), ProtoUDP, 48, false},
		"a chain":           {v6Packet(0, slices.Concat(ext(60, 8), ext(43, 16), ext(44, 24), fragHdr(60, 0, true), ext(ProtoTCP, 8)), udp8), ProtoTCP, 104, false},
		"AH":                {v6Packet(51, ah, udp8), ProtoUDP, 64, false},
		"ESP ends the walk": {v6Packet(0, ext(50, 8), udp8), 50, 48, false},
		"no next header":    {v6Packet(59, nil, nil), 59, 40, false},
		"first fragment":    {v6Packet(44, fragHdr(ProtoUDP, 0, true), udp8), ProtoUDP, 48, false},
		"later fragment":    {v6Packet(44, fragHdr(ProtoUDP, 185, false), udp8), ProtoUDP, 48, true},
	} {
		info, err := ParseIP(c.pkt)
		if err != nil || info.Proto != c.proto || info.HeaderLen != c.hl || info.Fragment != c.fragment || info.TotalLen != len(c.pkt) {
			t.Errorf("%s: %+v, %v; want proto %d, header %d, fragment %v", name, info, err, c.proto, c.hl, c.fragment)
		}
	}
	for name, bad := range map[string][]byte{
		"extension past the end": v6Packet(0, ext(ProtoUDP, 8)[:1], nil),
		"length past the end":    v6Packet(0, append(ext(ProtoUDP, 8)[:1], 9), nil),
		"fragment header cut":    v6Packet(44, fragHdr(ProtoUDP, 0, false)[:6], nil),
	} {
		if info, err := ParseIP(bad); err == nil {
			t.Errorf("%s: parsed as %+v", name, info)
		}
	}
	v4 := make([]byte, 28)
	PutIPv4Header(v4, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.2.0.7"), ProtoUDP, 64, 7, 8)
	binary.BigEndian.PutUint16(v4[6:], 185) // offset 185 octets*8
	if info, err := ParseIP(v4); err != nil || !info.Fragment {
		t.Errorf("a later IPv4 fragment: %+v %v", info, err)
	}
}

func FuzzParseIP(f *testing.F) {
	pkt := make([]byte, 28)
	PutIPv4Header(pkt, netip.MustParseAddr("10.1.0.5"), netip.MustParseAddr("10.2.0.7"), ProtoUDP, 64, 7, 8)
	f.Add(pkt)
	f.Add([]byte{0x4f, 0, 0, 20})
	f.Add([]byte{0x60})
	f.Add(v6Packet(ProtoUDP, nil, udp8))
	f.Add(v6Packet(0, slices.Concat(ext(60, 8), ext(43, 16), fragHdr(ProtoUDP, 0, true)), udp8))
	f.Add(v6Packet(44, fragHdr(ProtoUDP, 185, false), udp8))
	f.Add(v6Packet(51, append([]byte{ProtoTCP, 4}, make([]byte, 22)...), udp8))
	f.Fuzz(func(t *testing.T, p []byte) {
		info, err := ParseIP(p)
		if err == nil && (info.TotalLen > len(p) || info.HeaderLen > info.TotalLen) {
			t.Fatalf("inconsistent %+v for %d bytes", info, len(p))
		}
		ClassifyUDP(p)
	})
}
