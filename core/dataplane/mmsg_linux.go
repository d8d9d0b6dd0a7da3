package dataplane

import (
	"errors"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr; Go pads it to the C size (64 bytes on 64-bit).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// mmsgIO is one direction of batch I/O on a socket: the headers, vectors,
// addresses and control space for sendmmsg or recvmmsg, allocated once so
// a batch costs no allocation. A socket has one for writing and one for
// reading; each is used by one goroutine.
type mmsgIO struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ctrl  []byte
	first []int // per header: the index of its first message
	segs  []int // per header: how many messages it carries

	// The system call's arguments and results, kept here so that the
	// closure handed to RawConn is made once.
	trap         uintptr
	start, count int
	ret          int
	errno        syscall.Errno
	fn           func(fd uintptr) bool

	gsoOff bool // the kernel refused UDP GSO once: send one datagram a message
	// pktinfo: the socket is bound to the wildcard address; sends carry
	// their source address, reads report the address they were sent to
	// (IP_PKTINFO, ip(7)).
	pktinfo bool
}

const (
	cmsgGSOSpace     = 24 // unix.CmsgSpace(2) on 64-bit: room for UDP_SEGMENT's uint16
	cmsgPktinfoSpace = 32 // unix.CmsgSpace(unix.SizeofInet4Pktinfo) on 64-bit
	ctrlSpace        = cmsgPktinfoSpace + cmsgGSOSpace
)

func newMmsgIO(rc syscall.RawConn, n int, gso, pktinfo bool) *mmsgIO {
	m := &mmsgIO{rc: rc, hdrs: make([]mmsghdr, n), iovs: make([]unix.Iovec, n), names: make([]unix.RawSockaddrInet4, n),
		first: make([]int, n), segs: make([]int, n), gsoOff: !gso, pktinfo: pktinfo}
	if gso || pktinfo {
		m.ctrl = make([]byte, n*ctrlSpace)
	}
	m.fn = m.call
	return m
}

// putPktinfo writes an IP_PKTINFO control message that sends from src
// into c (at least cmsgPktinfoSpace bytes) and returns its length.
func putPktinfo(c []byte, src netip.Addr) int {
	clear(c[:cmsgPktinfoSpace])
	ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	ch.Level, ch.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	ch.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&c[unix.CmsgLen(0)]))
	*info = unix.Inet4Pktinfo{Spec_dst: src.As4()}
	return cmsgPktinfoSpace
}

// readPktinfo returns the destination address an IP_PKTINFO control
// message in c reports (unset if there is none).
func readPktinfo(c []byte) netip.Addr {
	for len(c) >= unix.CmsgLen(0) {
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		l := int(ch.Len)
		if l < unix.CmsgLen(0) || l > len(c) {
			return netip.Addr{}
		}
		if ch.Level == unix.IPPROTO_IP && ch.Type == unix.IP_PKTINFO && l >= unix.CmsgLen(unix.SizeofInet4Pktinfo) {
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&c[unix.CmsgLen(0)]))
			return netip.AddrFrom4(info.Addr)
		}
		c = c[min(len(c), unix.CmsgSpace(l-unix.CmsgLen(0))):]
	}
	return netip.Addr{}
}

// sendsFrom reports whether a message should carry its source address.
func (m *mmsgIO) sendsFrom(src netip.Addr) bool {
	return m.pktinfo && src.Is4() && !src.IsUnspecified()
}

func (m *mmsgIO) call(fd uintptr) bool {
	r, _, e := unix.Syscall6(m.trap, fd, uintptr(unsafe.Pointer(&m.hdrs[m.start])), uintptr(m.count), 0, 0, 0)
	m.ret, m.errno = int(r), e
	return e != unix.EAGAIN && e != unix.EINTR
}

// run makes the call; err is the socket's own failure (closed), errno the
// kernel's answer to this call.
func (m *mmsgIO) run(trap uintptr, start, count int, write bool) (int, syscall.Errno, error) {
	m.trap, m.start, m.count = trap, start, count
	var err error
	if write {
		err = m.rc.Write(m.fn)
	} else {
		err = m.rc.Read(m.fn)
	}
	if err != nil {
		return 0, 0, err
	}
	if m.errno != 0 {
		return 0, m.errno, nil
	}
	return m.ret, 0, nil
}

func putName(sa *unix.RawSockaddrInet4, a netip.AddrPort) uint32 {
	ip := a.Addr().Unmap()
	if !ip.Is4() {
		return 0 // no address: the send fails with EDESTADDRREQ and is counted
	}
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(a.Port()>>8), byte(a.Port())
	sa.Addr = ip.As4()
	return unix.SizeofSockaddrInet4
}

func setIov(v *unix.Iovec, b []byte) {
	if len(b) > 0 {
		v.Base = &b[0]
	} else {
		v.Base = nil
	}
	v.SetLen(len(b))
}

// send writes msgs with sendmmsg, several datagrams per message with UDP
// GSO where possible. The vectors point into the callers' buffers: nothing
// is copied.
func (m *mmsgIO) send(msgs []Msg) (int, error) {
	if len(msgs) > len(m.iovs) {
		n, err := m.send(msgs[:len(m.iovs)])
		n2, err2 := m.send(msgs[len(m.iovs):])
		return n + n2, errors.Join(err, err2)
	}
	for i := range msgs {
		setIov(&m.iovs[i], msgs[i].Buf)
	}
	nh := 0
	group := func(start, end, seg int) {
		h := &m.hdrs[nh]
		*h = mmsghdr{}
		h.hdr.Name = (*byte)(unsafe.Pointer(&m.names[nh]))
		h.hdr.Namelen = putName(&m.names[nh], msgs[start].Addr)
		h.hdr.Iov = &m.iovs[start]
		h.hdr.SetIovlen(end - start)
		var c []byte // control space: there is some when GSO or IP_PKTINFO is on
		if m.ctrl != nil {
			c = m.ctrl[nh*ctrlSpace : (nh+1)*ctrlSpace]
		}
		n := 0
		if src := msgs[start].Src; m.sendsFrom(src) {
			n += putPktinfo(c, src)
		}
		if end-start > 1 {
			// RFC-less but documented in udp(7): UDP_SEGMENT splits the
			// payload into seg-byte datagrams.
			g := c[n : n+cmsgGSOSpace]
			clear(g)
			ch := (*unix.Cmsghdr)(unsafe.Pointer(&g[0]))
			ch.Level, ch.Type = unix.SOL_UDP, unix.UDP_SEGMENT
			ch.SetLen(unix.CmsgLen(2))
			*(*uint16)(unsafe.Pointer(&g[unix.CmsgLen(0)])) = uint16(seg)
			n += cmsgGSOSpace
		}
		if n > 0 {
			h.hdr.Control = &c[0]
			h.hdr.SetControllen(n)
		}
		m.first[nh], m.segs[nh] = start, end-start
		nh++
	}
	if m.gsoOff {
		for i := range msgs {
			group(i, i+1, len(msgs[i].Buf))
		}
	} else {
		gsoGroups(msgs, group)
	}
	sent := 0
	var first error
	for k := 0; k < nh; {
		r, errno, err := m.run(unix.SYS_SENDMMSG, k, nh-k, true)
		if err != nil {
			return sent, err
		}
		if errno != 0 {
			if m.segs[k] > 1 && errno == unix.EIO {
				// The route's device cannot take a GSO send (udp(7)):
				// give up on GSO and resend the rest one by one.
				m.gsoOff = true
				n, err := m.send(msgs[m.first[k]:])
				return sent + n, errors.Join(first, err)
			}
			if first == nil {
				first = errno
			}
			k++ // skip what the kernel refused
			continue
		}
		for i := k; i < k+r; i++ {
			sent += m.segs[i]
		}
		k += r
	}
	return sent, first
}

// recv reads up to len(msgs) datagrams with recvmmsg. skipIP: a raw IPv4
// socket returns the IP header, which is skipped in place.
func (m *mmsgIO) recv(msgs []Msg, skipIP bool) (int, error) {
	n := min(len(msgs), len(m.hdrs))
	for i := 0; i < n; i++ {
		setIov(&m.iovs[i], msgs[i].Buf)
		h := &m.hdrs[i]
		*h = mmsghdr{}
		h.hdr.Name = (*byte)(unsafe.Pointer(&m.names[i]))
		h.hdr.Namelen = unix.SizeofSockaddrInet4
		h.hdr.Iov = &m.iovs[i]
		h.hdr.SetIovlen(1)
		if m.pktinfo {
			h.hdr.Control = &m.ctrl[i*ctrlSpace]
			h.hdr.SetControllen(ctrlSpace)
		}
	}
	r, errno, err := m.run(unix.SYS_RECVMMSG, 0, n, false)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	for i := 0; i < r; i++ {
		h := &m.hdrs[i]
		sa := &m.names[i]
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		msgs[i].Addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(p[0])<<8|uint16(p[1]))
		msgs[i].Src = netip.Addr{}
		if m.pktinfo {
			msgs[i].Src = readPktinfo(m.ctrl[i*ctrlSpace : i*ctrlSpace+int(h.hdr.Controllen)])
		}
		b := msgs[i].Buf[:h.n]
		switch {
		case h.hdr.Flags&unix.MSG_TRUNC != 0 || sa.Family != unix.AF_INET:
			b = b[:0] // larger than the slot, or not IPv4: counted as malformed
		case skipIP:
			hl := 0
			if len(b) > 0 {
				hl = int(b[0]&0x0f) * 4
			}
			if hl < 20 || hl > len(b) {
				b = b[:0]
			} else {
				b = b[hl:]
			}
		}
		msgs[i].Buf = b
	}
	return r, nil
}
