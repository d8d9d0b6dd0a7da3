package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"

	"github.com/gatehouse/gatehouse/esp"
)

// The receive half of a TUN with offloads: decrypted TCP segments of one
// flow that arrive together are joined into one super-packet and written
// behind a virtio-net header asking for TCP GSO, so the kernel's stack
// handles one packet where it would have handled dozens (what GRO does on
// a NIC). What cannot be joined is written as it is.

// tcpSeg is what coalescing needs to know of one IP/TCP packet.
type tcpSeg struct {
	ok       bool // IPv4 or IPv6 TCP that may be joined at all
	v4       bool
	ipHL, hl int // IP header length; IP plus TCP header length
	seq      uint32
	payload  int
	psh      bool
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// parseTCPSeg looks at a packet for coalescing. Only plain data segments
// qualify: no IPv4 options or fragments, no IPv6 extension headers, flags
// ACK and maybe PSH, and some payload.
func parseTCPSeg(p []byte) tcpSeg {
	var s tcpSeg
	if len(p) < 20 {
		return s
	}
	switch p[0] >> 4 {
	case 4:
		if p[0]&0x0f != 5 || p[9] != esp.ProtoTCP || int(binary.BigEndian.Uint16(p[2:])) != len(p) ||
			binary.BigEndian.Uint16(p[6:])&0x3fff != 0 { // MF or a fragment offset
			return s
		}
		s.v4, s.ipHL = true, 20
	case 6:
		if len(p) < 40 || p[6] != esp.ProtoTCP || int(binary.BigEndian.Uint16(p[4:]))+40 != len(p) {
			return s
		}
		s.ipHL = 40
	default:
		return s
	}
	if len(p) < s.ipHL+20 {
		return s
	}
	tcp := p[s.ipHL:]
	thl := int(tcp[12]>>4) * 4
	if thl < 20 || s.ipHL+thl > len(p) {
		return s
	}
	flags := tcp[13]
	if flags&^(tcpACK|tcpPSH) != 0 || flags&tcpACK == 0 {
		return s
	}
	s.hl = s.ipHL + thl
	s.payload = len(p) - s.hl
	if s.payload == 0 {
		return s
	}
	s.seq = binary.BigEndian.Uint32(tcp[4:])
	s.psh = flags&tcpPSH != 0
	s.ok = true
	return s
}

// sameFlow tells whether b may follow a in one super-packet, header for
// header: addresses, TOS/traffic class, TTL/hop limit, DF, ports, ack,
// window and TCP options all equal. (The IPv4 ID, length and checksums,
// and the sequence number, differ by nature.)
func sameFlow(a, b []byte, sa, sb tcpSeg) bool {
	if sa.v4 != sb.v4 || sa.hl != sb.hl {
		return false
	}
	if sa.v4 {
		if a[1] != b[1] || a[6]&0x40 != b[6]&0x40 || a[8] != b[8] || !bytes.Equal(a[12:20], b[12:20]) {
			return false
		}
	} else if !bytes.Equal(a[:4], b[:4]) || a[7] != b[7] || !bytes.Equal(a[8:40], b[8:40]) {
		return false
	}
	ta, tb := a[sa.ipHL:sa.hl], b[sb.ipHL:sb.hl]
	return bytes.Equal(ta[:4], tb[:4]) && // ports
		bytes.Equal(ta[8:12], tb[8:12]) && // ack
		bytes.Equal(ta[14:16], tb[14:16]) && // window
		bytes.Equal(ta[20:], tb[20:]) // options
}

// maxGROSegments bounds a super-packet (the kernel's own GRO stops at 64).
const maxGROSegments = 64

// groRun returns how many packets from pkts[0] on can be joined: one flow,
// consecutive sequence numbers, every segment the size of the first but
// the last (which may be shorter), PSH only on the last, and 64 KiB in all.
func groRun(pkts []Packet) int {
	first := pkts[0].Buf[pkts[0].Off : pkts[0].Off+pkts[0].Len]
	s0 := parseTCPSeg(first)
	if !s0.ok || s0.psh {
		return 1
	}
	seq, total := s0.seq+uint32(s0.payload), len(first)
	n := 1
	for n < len(pkts) && n < maxGROSegments {
		p := pkts[n].Buf[pkts[n].Off : pkts[n].Off+pkts[n].Len]
		s := parseTCPSeg(p)
		if !s.ok || s.seq != seq || s.payload > s0.payload || total+s.payload > 65535 || !sameFlow(first, p, s0, s) {
			break
		}
		n++
		total += s.payload
		seq += uint32(s.payload)
		if s.psh || s.payload < s0.payload {
			break
		}
	}
	return n
}

// joinTCP writes the super-packet of pkts into dst behind a virtio-net
// header and returns its whole length (header included). dst must hold
// VirtioNetHdrLen + 65535 bytes.
func joinTCP(dst []byte, pkts []Packet) int {
	first := pkts[0].Buf[pkts[0].Off : pkts[0].Off+pkts[0].Len]
	s0 := parseTCPSeg(first)
	pkt := dst[VirtioNetHdrLen:]
	n := copy(pkt, first)
	psh := false
	for _, q := range pkts[1:] {
		p := q.Buf[q.Off : q.Off+q.Len]
		n += copy(pkt[n:], p[s0.hl:])
		psh = psh || p[s0.ipHL+13]&tcpPSH != 0
	}
	pkt = pkt[:n]
	if psh {
		pkt[s0.ipHL+13] |= tcpPSH // the last segment's PSH, as GRO keeps it
	}
	var from, to netip.Addr
	if s0.v4 {
		binary.BigEndian.PutUint16(pkt[2:], uint16(n))
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], esp.Checksum(pkt[:20], 0))
		from, to = netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	} else {
		binary.BigEndian.PutUint16(pkt[4:], uint16(n-40))
		from, to = netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
	}
	pseudo := pseudoSum(from, to, esp.ProtoTCP, n-s0.ipHL)
	// VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum field holds the folded
	// pseudo-header sum; whoever segments or delivers completes it.
	binary.BigEndian.PutUint16(pkt[s0.ipHL+16:], ^esp.Checksum(nil, pseudo))
	gso := uint8(VirtioNetHdrGSOTCPv4)
	if !s0.v4 {
		gso = VirtioNetHdrGSOTCPv6
	}
	VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, GSOType: gso, HdrLen: uint16(s0.hl), GSOSize: uint16(s0.payload),
		CsumStart: uint16(s0.ipHL), CsumOffset: 16}.Encode(dst)
	return VirtioNetHdrLen + n
}
