package esp

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IP protocol numbers used in next-header fields.
const (
	ProtoIPv4 = 4
	ProtoTCP  = 6
	ProtoUDP  = 17
	ProtoIPv6 = 41
)

// IPv4HeaderLen is the header without options; IPv6HeaderLen the fixed
// header.
const (
	IPv4HeaderLen = 20
	IPv6HeaderLen = 40
)

// ErrNotIP means a buffer is not a well-formed IPv4 or IPv6 packet.
var ErrNotIP = errors.New("not a well-formed IP packet")

// IPInfo is what the data path needs of an IP packet's header.
type IPInfo struct {
	Src, Dst netip.Addr
	// Proto is the upper-layer protocol: after IPv4's header, or after
	// IPv6's fixed header and its extension headers (ESP ends them).
	Proto uint8
	// HeaderLen runs to the upper-layer header: IPv4's with options, or
	// IPv6's fixed header with its extension headers.
	HeaderLen int
	TotalLen  int
	TTL       uint8
	// Fragment: a fragment past the first, which has no upper-layer
	// header (no ports).
	Fragment bool
}

// ParseIP reads an IPv4 header (with options), or an IPv6 fixed header
// and its extension headers, without allocating.
func ParseIP(p []byte) (IPInfo, error) {
	if len(p) < 1 {
		return IPInfo{}, ErrNotIP
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < IPv4HeaderLen {
			return IPInfo{}, ErrNotIP
		}
		hl := int(p[0]&0x0f) * 4
		tl := int(binary.BigEndian.Uint16(p[2:]))
		if hl < IPv4HeaderLen || tl < hl || tl > len(p) {
			return IPInfo{}, ErrNotIP
		}
		return IPInfo{Src: netip.AddrFrom4([4]byte(p[12:16])), Dst: netip.AddrFrom4([4]byte(p[16:20])),
			Proto: p[9], HeaderLen: hl, TotalLen: tl, TTL: p[8], Fragment: binary.BigEndian.Uint16(p[6:])&0x1fff != 0}, nil
	case 6:
		if len(p) < 40 {
			return IPInfo{}, ErrNotIP
		}
		tl := 40 + int(binary.BigEndian.Uint16(p[4:]))
		if tl > len(p) {
			return IPInfo{}, ErrNotIP
		}
		info := IPInfo{Src: netip.AddrFrom16([16]byte(p[8:24])), Dst: netip.AddrFrom16([16]byte(p[24:40])), TTL: p[7], TotalLen: tl}
		var err error
		info.Proto, info.HeaderLen, info.Fragment, err = walkIPv6(p[:tl], p[6])
		return info, err
	}
	return IPInfo{}, ErrNotIP
}

// Checksum is the Internet checksum (RFC 1071) of b, folded with initial.
func Checksum(b []byte, initial uint32) uint16 {
	sum := initial
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// PutIPv4Header writes a 20-byte IPv4 header for a packet of payloadLen
// bytes (used when transport mode rebuilds the header after decryption).
func PutIPv4Header(b []byte, src, dst netip.Addr, proto, ttl uint8, id uint16, payloadLen int) {
	b[0], b[1] = 0x45, 0
	binary.BigEndian.PutUint16(b[2:], uint16(IPv4HeaderLen+payloadLen))
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], 0) // flags and fragment offset: the inner packet was whole
	b[8], b[9] = ttl, proto
	b[10], b[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(b[12:16], s[:])
	copy(b[16:20], d[:])
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:IPv4HeaderLen], 0))
}

// PutIPv6Header writes IPv6's fixed header (RFC 8200 section 3) for a
// payload of payloadLen bytes with next header nh: transport mode's header
// again after decryption.
func PutIPv6Header(b []byte, src, dst netip.Addr, nh, hopLimit uint8, payloadLen int) {
	b[0], b[1], b[2], b[3] = 0x60, 0, 0, 0 // version 6, traffic class and flow label 0
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6], b[7] = nh, hopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
}

// FixTransportChecksum corrects the TCP or UDP checksum of seg after NAT
// changed the addresses it was computed over: in transport mode behind NAT
// the sender's checksum covers its original addresses (NAT-OA), not the ones
// we see (RFC 3948 section 3.1.2). It updates incrementally (RFC 1624). A
// UDP checksum of zero (none) is left alone.
func FixTransportChecksum(proto uint8, seg []byte, origSrc, origDst, src, dst netip.Addr) bool {
	var off int
	switch proto {
	case ProtoTCP:
		off = 16
	case ProtoUDP:
		off = 6
	default:
		return false
	}
	if len(seg) < off+2 || !origSrc.Is4() || !src.Is4() {
		return false
	}
	old := binary.BigEndian.Uint16(seg[off:])
	if proto == ProtoUDP && old == 0 {
		return true
	}
	sum := uint32(^old)
	for _, pair := range [2][2]netip.Addr{{origSrc, src}, {origDst, dst}} {
		o, n := pair[0].As4(), pair[1].As4()
		for i := 0; i < 4; i += 2 {
			sum += uint32(^binary.BigEndian.Uint16(o[i:])) + uint32(binary.BigEndian.Uint16(n[i:]))
		}
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if proto == ProtoUDP && c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(seg[off:], c)
	return true
}

// PseudoHeaderSum is the IPv4 pseudo-header sum for TCP and UDP checksums.
func PseudoHeaderSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	s, d := src.As4(), dst.As4()
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	return sum + uint32(proto) + uint32(length)
}

// IPv6 extension headers (RFC 8200 section 4, RFC 4302 for AH; the
// IANA registry's others share their length format).
const (
	ipv6HopByHop  = 0
	ipv6Routing   = 43
	ipv6Fragment  = 44
	ipv6AH        = 51
	ipv6DestOpts  = 60
	ipv6Mobility  = 135
	ipv6HIP       = 139
	ipv6Shim6     = 140
	ipv6Fixed     = 40
	ipv6FragHdr   = 8
	ipv6MaxHeader = 2048 // far past any real chain; bounds the walk
)

// walkIPv6 follows the extension headers after IPv6's fixed header to the
// upper-layer protocol and where its header starts. A fragment past the
// first ends the walk with the protocol its Fragment header names.
func walkIPv6(p []byte, next uint8) (proto uint8, headerLen int, fragment bool, err error) {
	off := ipv6Fixed
	for {
		var n int
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts, ipv6Mobility, ipv6HIP, ipv6Shim6:
			if len(p) < off+2 {
				return 0, 0, false, ErrNotIP
			}
			n = (int(p[off+1]) + 1) * 8
		case ipv6AH:
			if len(p) < off+2 {
				return 0, 0, false, ErrNotIP
			}
			n = (int(p[off+1]) + 2) * 4
		case ipv6Fragment:
			if len(p) < off+ipv6FragHdr {
				return 0, 0, false, ErrNotIP
			}
			if binary.BigEndian.Uint16(p[off+2:])&0xfff8 != 0 {
				return p[off], off + ipv6FragHdr, true, nil
			}
			n = ipv6FragHdr
		default:
			return next, off, false, nil // upper layer, ESP or No Next Header
		}
		if off+n > len(p) || off+n > ipv6MaxHeader {
			return 0, 0, false, ErrNotIP
		}
		next, off = p[off], off+n
	}
}
