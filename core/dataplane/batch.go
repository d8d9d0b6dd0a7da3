package dataplane

import "net/netip"

// Msg is one datagram of a batch on an outer socket.
type Msg struct {
	// Buf is, on write, the datagram; on read, the slot to read into,
	// which ReadBatch reslices to the payload (as Conn.ReadFrom does).
	Buf  []byte
	Addr netip.AddrPort
	// Src is, on write, our address to send from; on read, our address
	// the datagram was sent to. Both only on a socket bound to the
	// wildcard address (with several listen addresses); elsewhere the
	// socket's own address is the one, and Src is left unset.
	Src netip.Addr
}

// SrcConn is a Conn bound to the wildcard address that can send from a
// chosen one of our addresses (IP_PKTINFO), so that a peer gets its
// answers from the address it dialled.
type SrcConn interface {
	Conn
	WriteFromTo(b []byte, src netip.Addr, to netip.AddrPort) error
}

// WriteFrom sends b to `to` from src when c can choose (SrcConn) and src
// is set; otherwise from the socket's own address.
func WriteFrom(c Conn, b []byte, src netip.Addr, to netip.AddrPort) error {
	if sc, ok := c.(SrcConn); ok && src.IsValid() && !src.IsUnspecified() {
		return sc.WriteFromTo(b, src, to)
	}
	return c.WriteTo(b, to)
}

// BatchConn is a Conn that moves many datagrams per system call
// (sendmmsg/recvmmsg, and UDP GSO where the socket has it). The plane
// uses it when a Conn has it and falls back to one call a packet.
type BatchConn interface {
	Conn
	// WriteBatch sends every message, in order, and returns how many went
	// out; a message the kernel refused is skipped, and the first such
	// error is returned with the count.
	WriteBatch(msgs []Msg) (int, error)
	// ReadBatch blocks until at least one datagram arrives and fills
	// msgs[:n].
	ReadBatch(msgs []Msg) (int, error)
}

// Packet is an IP packet at Buf[Off:Off+Len], with Buf[:Off] free for a
// device header (Off is at least DeviceHeadroom).
type Packet struct {
	Buf      []byte
	Off, Len int
}

// BatchDevice is a Device that can write many packets at once; a TUN with
// offloads coalesces TCP segments into one super-packet (GRO) there.
type BatchDevice interface {
	Device
	// WriteBatch writes every packet and returns how many were written
	// and in how many system calls; the first error is returned with the
	// counts. It may overwrite the packets' buffers.
	WriteBatch(pkts []Packet) (written, calls int, err error)
}

// maxGSOSegments is how many datagrams one UDP GSO send may carry
// (UDP_MAX_SEGMENTS in kernels before 6.9; later ones allow 128).
const maxGSOSegments = 64

// maxGSOBytes bounds a GSO send's payload: one IPv4 datagram.
const maxGSOBytes = 65535 - 20 - 8

// gsoGroups splits msgs into runs that one UDP GSO send can carry: the
// same destination and source, every datagram the size of the first
// except the last, which may be shorter (the kernel cuts the payload
// every Seg bytes), at most maxGSOSegments datagrams and maxGSOBytes
// bytes. It calls f with each run's bounds and segment size, in order.
func gsoGroups(msgs []Msg, f func(start, end, seg int)) {
	for i := 0; i < len(msgs); {
		seg, total, j := len(msgs[i].Buf), len(msgs[i].Buf), i+1
		for j < len(msgs) && j-i < maxGSOSegments && msgs[j].Addr == msgs[i].Addr && msgs[j].Src == msgs[i].Src {
			l := len(msgs[j].Buf)
			if l > seg || l == 0 || total+l > maxGSOBytes {
				break
			}
			total += l
			j++
			if l < seg {
				break // a short datagram ends the run
			}
		}
		f(i, j, seg)
		i = j
	}
}
