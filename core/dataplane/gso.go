package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/esp"
)

// The pieces for a Linux TUN with offloads (IFF_VNET_HDR, TUNSETOFFLOAD):
// with TSO on, the kernel hands us TCP "super-packets" of up to 64 KiB behind
// a virtio-net header, and we cut them into MSS-sized segments before ESP,
// one system call instead of dozens. Layouts: include/uapi/linux/virtio_net.h.

// VirtioNetHdrLen is the header before each packet with IFF_VNET_HDR.
const VirtioNetHdrLen = 10

// virtio-net header flags and GSO types.
const (
	VirtioNetHdrFNeedsCsum = 1
	VirtioNetHdrGSONone    = 0
	VirtioNetHdrGSOTCPv4   = 1
	VirtioNetHdrGSOTCPv6   = 4
)

// VirtioNetHdr is struct virtio_net_hdr (little-endian fields).
type VirtioNetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// ErrGSO means a super-packet we cannot or will not segment.
var ErrGSO = errors.New("bad offload packet")

// DecodeVirtioNetHdr reads the header at the front of b.
func DecodeVirtioNetHdr(b []byte) (VirtioNetHdr, error) {
	if len(b) < VirtioNetHdrLen {
		return VirtioNetHdr{}, fmt.Errorf("%w: %d bytes, no virtio-net header", ErrGSO, len(b))
	}
	return VirtioNetHdr{Flags: b[0], GSOType: b[1], HdrLen: binary.LittleEndian.Uint16(b[2:]), GSOSize: binary.LittleEndian.Uint16(b[4:]),
		CsumStart: binary.LittleEndian.Uint16(b[6:]), CsumOffset: binary.LittleEndian.Uint16(b[8:])}, nil
}

// Encode writes the header into b[:VirtioNetHdrLen].
func (h VirtioNetHdr) Encode(b []byte) {
	b[0], b[1] = h.Flags, h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// Segment cuts pkt (an IP packet read behind hdr) into packets in out,
// each out[i] with room for the largest segment, and returns how many it
// wrote and their sizes. A packet without GSO is copied as is, its partial
// checksum completed if the kernel left one (VIRTIO_NET_HDR_F_NEEDS_CSUM).
// For TCP GSO it does what the kernel's tcp_gso_segment does: each segment
// gets the headers with the IPv4 ID counting up, the sequence number moved
// on, FIN and PSH only on the last segment, CWR only on the first, and
// fresh IP and TCP checksums. It allocates nothing.
func Segment(pkt []byte, hdr VirtioNetHdr, out [][]byte, sizes []int) (int, error) {
	if hdr.GSOType == VirtioNetHdrGSONone {
		if len(out) < 1 || len(out[0]) < len(pkt) {
			return 0, fmt.Errorf("%w: no room for a %d-byte packet", ErrGSO, len(pkt))
		}
		n := copy(out[0], pkt)
		if hdr.Flags&VirtioNetHdrFNeedsCsum != 0 {
			if err := completeCsum(out[0][:n], hdr); err != nil {
				return 0, err
			}
		}
		sizes[0] = n
		return 1, nil
	}
	if hdr.GSOType&^0x80 != VirtioNetHdrGSOTCPv4 && hdr.GSOType&^0x80 != VirtioNetHdrGSOTCPv6 {
		return 0, fmt.Errorf("%w: GSO type %d", ErrGSO, hdr.GSOType)
	}
	info, err := esp.ParseIP(pkt)
	if err != nil || info.Proto != esp.ProtoTCP {
		return 0, fmt.Errorf("%w: TCP GSO on a packet that is not IP/TCP", ErrGSO)
	}
	v4 := info.Src.Is4()
	if v4 != (hdr.GSOType&^0x80 == VirtioNetHdrGSOTCPv4) {
		return 0, fmt.Errorf("%w: GSO type %d on an IPv%d packet", ErrGSO, hdr.GSOType, map[bool]int{true: 4, false: 6}[v4])
	}
	pkt = pkt[:info.TotalLen]
	ipHL := info.HeaderLen
	if len(pkt) < ipHL+20 {
		return 0, fmt.Errorf("%w: truncated TCP header", ErrGSO)
	}
	tcpHL := int(pkt[ipHL+12]>>4) * 4
	hl := ipHL + tcpHL
	mss := int(hdr.GSOSize)
	if tcpHL < 20 || hl > len(pkt) || mss == 0 {
		return 0, fmt.Errorf("%w: header lengths %d+%d, MSS %d", ErrGSO, ipHL, tcpHL, mss)
	}
	payload := pkt[hl:]
	count := (len(payload) + mss - 1) / mss
	if count == 0 {
		count = 1
	}
	if count > len(out) {
		return 0, fmt.Errorf("%w: %d segments, room for %d", ErrGSO, count, len(out))
	}
	seq := binary.BigEndian.Uint32(pkt[ipHL+4:])
	flags := pkt[ipHL+13]
	var id uint16
	if v4 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	for i := 0; i < count; i++ {
		chunk := payload[min(i*mss, len(payload)):min((i+1)*mss, len(payload))]
		size := hl + len(chunk)
		if len(out[i]) < size {
			return 0, fmt.Errorf("%w: no room for a %d-byte segment", ErrGSO, size)
		}
		seg := out[i][:size]
		copy(seg, pkt[:hl])
		copy(seg[hl:], chunk)
		tcp := seg[ipHL:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(i*mss))
		f := flags
		if i < count-1 {
			f &^= 0x01 | 0x08 // FIN, PSH
		}
		if i > 0 {
			f &^= 0x80 // CWR
		}
		tcp[13] = f
		if v4 {
			binary.BigEndian.PutUint16(seg[2:], uint16(size))
			binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
			seg[10], seg[11] = 0, 0
			binary.BigEndian.PutUint16(seg[10:], esp.Checksum(seg[:ipHL], 0))
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(size-40))
		}
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], esp.Checksum(tcp, pseudoSum(info.Src, info.Dst, esp.ProtoTCP, len(tcp))))
		sizes[i] = size
	}
	return count, nil
}

// completeCsum finishes a partial checksum: the kernel stored the pseudo-
// header sum at CsumStart+CsumOffset; the Internet checksum from CsumStart
// over that value is the final one.
func completeCsum(p []byte, hdr VirtioNetHdr) error {
	start, at := int(hdr.CsumStart), int(hdr.CsumStart)+int(hdr.CsumOffset)
	if start >= len(p) || at+2 > len(p) {
		return fmt.Errorf("%w: checksum offsets %d+%d beyond %d bytes", ErrGSO, hdr.CsumStart, hdr.CsumOffset, len(p))
	}
	binary.BigEndian.PutUint16(p[at:], esp.Checksum(p[start:], 0))
	return nil
}

// pseudoSum is the TCP/UDP pseudo-header sum, IPv4 or IPv6 (RFC 793, RFC 8200).
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint32 {
	if src.Is4() {
		return esp.PseudoHeaderSum(src, dst, proto, length)
	}
	var sum uint32
	s, d := src.As16(), dst.As16()
	for i := 0; i < 16; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	return sum + uint32(length>>16) + uint32(length&0xffff) + uint32(proto)
}
