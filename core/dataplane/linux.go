package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// OpenTUN creates (or attaches to) a TUN device with water, the portable
// default: one packet per read and per write.
func OpenTUN(name string) (Device, error) {
	ifc, err := water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: name}})
	if err != nil {
		return nil, fmt.Errorf("TUN %s: %w (is /dev/net/tun there, and are we root?)", name, err)
	}
	return &waterDevice{ifc: ifc}, nil
}

type waterDevice struct{ ifc *water.Interface }

func (w *waterDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := w.ifc.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func (w *waterDevice) Write(buf []byte, off, n int) error {
	_, err := w.ifc.Write(buf[off : off+n])
	return err
}

func (w *waterDevice) Close() error { return w.ifc.Close() }

// segmentingTUN is a Linux TUN with IFF_VNET_HDR and TSO: the kernel may hand
// us TCP super-packets of up to 64 KiB, which Segment cuts up, so one read
// carries what took dozens. Writes go out one packet each, behind an empty
// virtio-net header.
type segmentingTUN struct {
	f       *os.File
	scratch []byte
	views   [][]byte

	wmu      sync.Mutex // the inbound routines share wscratch
	wscratch []byte
}

// OpenSegmentingTUN creates a TUN that hands over TCP super-packets and
// takes joined segments (dataplane.tun_segmentation: true).
func OpenSegmentingTUN(name string) (Device, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("TUN %s: open /dev/net/tun: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: TUNSETIFF: %w", name, err)
	}
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: TUNSETOFFLOAD: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &segmentingTUN{f: os.NewFile(uintptr(fd), "/dev/net/tun"), scratch: make([]byte, VirtioNetHdrLen+65536), views: make([][]byte, batchSize),
		wscratch: make([]byte, VirtioNetHdrLen+65535)}, nil
}

func (t *segmentingTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := t.f.Read(t.scratch)
	if err != nil {
		return 0, err
	}
	hdr, err := DecodeVirtioNetHdr(t.scratch[:n])
	if err != nil {
		return 0, err
	}
	views := t.views[:len(bufs)]
	for i := range views {
		views[i] = bufs[i][offset:]
	}
	return Segment(t.scratch[VirtioNetHdrLen:n], hdr, views, sizes)
}

func (t *segmentingTUN) Write(buf []byte, off, n int) error {
	hdr := buf[off-VirtioNetHdrLen : off]
	clear(hdr) // no offload on what we write
	_, err := t.f.Write(buf[off-VirtioNetHdrLen : off+n])
	return err
}

// WriteBatch joins runs of TCP segments into super-packets (gro.go) and
// writes the rest one by one.
func (t *segmentingTUN) WriteBatch(pkts []Packet) (written, calls int, first error) {
	for i := 0; i < len(pkts); {
		n := groRun(pkts[i:])
		var err error
		if n == 1 {
			err = t.Write(pkts[i].Buf, pkts[i].Off, pkts[i].Len)
		} else {
			t.wmu.Lock()
			l := joinTCP(t.wscratch, pkts[i:i+n])
			_, err = t.f.Write(t.wscratch[:l])
			t.wmu.Unlock()
		}
		calls++
		if err == nil {
			written += n
		} else if first == nil {
			first = err
		}
		i += n
	}
	return written, calls, first
}

func (t *segmentingTUN) Close() error { return t.f.Close() }

func setMark(rc syscall.RawConn, mark int) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, mark)
	})
	if err != nil {
		return err
	}
	return serr
}

// outerSocket is what net.IPConn and net.UDPConn share here.
type outerSocket interface {
	SyscallConn() (syscall.RawConn, error)
	SetReadBuffer(int) error
	SetWriteBuffer(int) error
	Close() error
}

// prepareOuter marks an outer socket (so policy routing sends its packets
// out the real interface) and gives it large buffers; on error it closes
// the socket.
func prepareOuter(c outerSocket, mark int) (syscall.RawConn, error) {
	rc, err := c.SyscallConn()
	if err == nil {
		err = setMark(rc, mark)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	return rc, nil
}

type rawESP struct {
	c          *net.IPConn
	rc         syscall.RawConn
	keepHeader bool // AH: the ICV covers the outer header, so hand it on
	wildcard   bool // bound to 0.0.0.0: sends name their source address
	tx, rx     *mmsgIO
}

// ListenRawAH opens the IP protocol 51 socket. Reads return the whole IPv4
// packet; AH is sent whole through the clear (IP_HDRINCL) socket.
func ListenRawAH(local netip.Addr) (Conn, error) {
	c, err := net.ListenIP("ip4:51", &net.IPAddr{IP: local.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("raw AH socket on %s: %w", local, err)
	}
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetReadBuffer(4 << 20)
	return &rawESP{c: c, rc: rc, keepHeader: true}, nil
}

// ListenRawESP opens the IP protocol 50 socket on a local address. Reads
// return ESP without the IP header. Our sends carry mark, so policy routing
// sends them out the real interface, never back into the TUN. Bound to
// 0.0.0.0 (several listen addresses), each send names its source address
// (Msg.Src, WriteFromTo).
func ListenRawESP(local netip.Addr, mark int) (Conn, error) {
	if local.Is6() {
		return listenRawESP6(local, mark)
	}
	c, err := net.ListenIP("ip4:50", &net.IPAddr{IP: local.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("raw ESP socket on %s: %w", local, err)
	}
	rc, err := prepareOuter(c, mark)
	if err != nil {
		return nil, fmt.Errorf("raw ESP socket: SO_MARK: %w", err)
	}
	wild := local.IsUnspecified()
	return &rawESP{c: c, rc: rc, wildcard: wild, tx: newMmsgIO(rc, batchSize, false, wild), rx: newMmsgIO(rc, rxBatch, false, false)}, nil
}

func (r *rawESP) WriteBatch(msgs []Msg) (int, error) { return r.tx.send(msgs) }
func (r *rawESP) ReadBatch(msgs []Msg) (int, error)  { return r.rx.recv(msgs, !r.keepHeader) }

// ReadFrom reads through the raw file descriptor: an IPv4 raw socket
// delivers the IP header, which we skip in place. (net.IPConn would copy
// the whole payload down over it: 13 % of the CPU under load.)
func (r *rawESP) ReadFrom(b []byte) ([]byte, netip.AddrPort, error) {
	var n int
	var from syscall.Sockaddr
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, from, rerr = syscall.Recvfrom(int(fd), b, 0)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	sa, ok := from.(*syscall.SockaddrInet4)
	if !ok || n < 20 {
		return b[:0], netip.AddrPort{}, nil // counted as malformed by the caller
	}
	hl := int(b[0]&0x0f) * 4
	if r.keepHeader {
		hl = 0
	} else if hl < 20 || hl > n {
		return b[:0], netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), 0), nil
	}
	return b[hl:n], netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), 0), nil
}

func (r *rawESP) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := r.c.WriteToIP(b, &net.IPAddr{IP: to.Addr().AsSlice()})
	return err
}

// WriteFromTo sends from src (control path: it allocates).
func (r *rawESP) WriteFromTo(b []byte, src netip.Addr, to netip.AddrPort) error {
	if !r.wildcard || !src.Is4() {
		return r.WriteTo(b, to)
	}
	oob := make([]byte, cmsgPktinfoSpace)
	putPktinfo(oob, src)
	_, _, err := r.c.WriteMsgIP(b, oob, &net.IPAddr{IP: to.Addr().AsSlice()})
	return err
}

func (r *rawESP) Close() error { return r.c.Close() }

type udpConn struct {
	c        *net.UDPConn
	wildcard bool
	tx, rx   *mmsgIO
}

// ListenUDP opens an outer UDP socket: RFC 3948's (port 4500), IKE's
// (500) or cleartext L2TP's (1701). Bound to 0.0.0.0 (several listen
// addresses), reads report the address each datagram was sent to and
// sends name their source address (Msg.Src, WriteFromTo), so that a peer
// gets its answers from the address it dialled.
func ListenUDP(local netip.AddrPort, mark int) (Conn, error) {
	if local.Addr().Is6() {
		return listenUDP6(local, mark)
	}
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return nil, fmt.Errorf("UDP socket %s: %w", local, err)
	}
	rc, err := prepareOuter(c, mark)
	if err != nil {
		return nil, fmt.Errorf("UDP socket: SO_MARK: %w", err)
	}
	wild := local.Addr().IsUnspecified()
	if wild {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) }); err == nil {
			err = serr
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("UDP socket %s: IP_PKTINFO: %w", local, err)
		}
	}
	return &udpConn{c: c, wildcard: wild, tx: newMmsgIO(rc, batchSize, true, wild), rx: newMmsgIO(rc, rxBatch, false, wild)}, nil
}

func (u *udpConn) WriteBatch(msgs []Msg) (int, error) { return u.tx.send(msgs) }
func (u *udpConn) ReadBatch(msgs []Msg) (int, error)  { return u.rx.recv(msgs, false) }

func (u *udpConn) ReadFrom(b []byte) ([]byte, netip.AddrPort, error) {
	n, from, err := u.c.ReadFromUDPAddrPort(b)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	return b[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
}

func (u *udpConn) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, to)
	return err
}

// WriteFromTo sends from src (control path: it allocates).
func (u *udpConn) WriteFromTo(b []byte, src netip.Addr, to netip.AddrPort) error {
	if !u.wildcard || !src.Is4() {
		return u.WriteTo(b, to)
	}
	oob := make([]byte, cmsgPktinfoSpace)
	putPktinfo(oob, src)
	_, _, err := u.c.WriteMsgUDPAddrPort(b, oob, to)
	return err
}

func (u *udpConn) Close() error { return u.c.Close() }

type clearConn struct{ fd int }

// OpenClear opens the socket that sends permitted cleartext that was routed
// into the TUN back out, whole (IPPROTO_RAW implies IP_HDRINCL).
func OpenClear(mark int) (Conn, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("clear socket: %w", err)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_MARK, mark); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("clear socket: SO_MARK: %w", err)
	}
	return &clearConn{fd: fd}, nil
}

var errWriteOnly = errors.New("write-only socket")

func (c *clearConn) ReadFrom([]byte) ([]byte, netip.AddrPort, error) {
	return nil, netip.AddrPort{}, errWriteOnly
}

var errIPv4Only = errors.New("the clear socket sends IPv4 only")

func (c *clearConn) WriteTo(b []byte, to netip.AddrPort) error {
	if !to.Addr().Is4() {
		return errIPv4Only
	}
	return syscall.Sendto(c.fd, b, 0, &syscall.SockaddrInet4{Addr: to.Addr().As4()})
}

func (c *clearConn) Close() error { return syscall.Close(c.fd) }

// NetConfig is the host side of the data path.
type NetConfig struct {
	TUN    string
	MTU    int
	Table  int // routing table for routes into the TUN
	Mark   int // fwmark on our own sockets
	Routes []Route
	// Addrs go on the TUN (the remote-access pool's gateway, so clients
	// can reach this host at it).
	Addrs []netip.Prefix
}

// Route sends a prefix into the TUN, with a preferred source address.
type Route struct {
	Dst netip.Prefix
	Src netip.Addr
}

// SetupNetwork brings the TUN up and adds our routes and the two policy
// rules: marked packets (our outer ESP and cleartext) use the main table;
// all others consult our table first. The returned function removes the
// rules; the routes go with the device.
func SetupNetwork(c NetConfig) (func(), error) {
	link, err := netlink.LinkByName(c.TUN)
	if err != nil {
		return nil, fmt.Errorf("TUN %s: %w", c.TUN, err)
	}
	if err := netlink.LinkSetMTU(link, c.MTU); err != nil {
		return nil, fmt.Errorf("TUN %s: MTU %d: %w", c.TUN, c.MTU, err)
	}
	if err := setIPv6(c.TUN, c.hasIPv6()); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("TUN %s: up: %w", c.TUN, err)
	}
	for _, a := range c.Addrs {
		if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: prefixNet(a)}); err != nil {
			return nil, fmt.Errorf("TUN %s: address %s: %w", c.TUN, a, err)
		}
	}
	for _, r := range c.Routes {
		rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: prefixNet(r.Dst), Table: c.Table, Scope: netlink.SCOPE_LINK}
		if r.Src.IsValid() {
			rt.Src = r.Src.AsSlice()
		}
		if err := netlink.RouteReplace(rt); err != nil {
			return nil, fmt.Errorf("route %s dev %s table %d: %w", r.Dst, c.TUN, c.Table, err)
		}
	}
	// Both families' rules, IPv6 routes or not: a reload may add some.
	var rules []*netlink.Rule
	for _, f := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		marked := netlink.NewRule()
		marked.Family, marked.Mark, marked.Table, marked.Priority = f, uint32(c.Mark), 254, 1000
		ours := netlink.NewRule()
		ours.Family, ours.Table, ours.Priority = f, c.Table, 1001
		rules = append(rules, marked, ours)
	}
	cleanup := func() {
		for _, r := range rules {
			netlink.RuleDel(r)
		}
	}
	cleanup() // a crashed predecessor may have left them
	for i, r := range rules {
		if err := netlink.RuleAdd(r); err != nil {
			if r.Family == netlink.FAMILY_V6 && !c.hasIPv6() {
				// A host with IPv6 turned off: an IPv4-only data path
				// needs none.
				rules = rules[:i]
				break
			}
			cleanup()
			if r.Mark != 0 {
				return nil, fmt.Errorf("ip rule fwmark %#x lookup main (family %d): %w", c.Mark, r.Family, err)
			}
			return nil, fmt.Errorf("ip rule lookup %d (family %d): %w", c.Table, r.Family, err)
		}
	}
	return cleanup, nil
}

// setIPv6 turns IPv6 on the TUN on for IPv6 routes or addresses, and
// then with no link-local address (addr_gen_mode 1): the kernel would
// send its router solicitations and MLD reports into the TUN. Off, it
// stays off.
func setIPv6(tun string, on bool) error {
	conf := "/proc/sys/net/ipv6/conf/" + tun + "/"
	if !on {
		os.WriteFile(conf+"disable_ipv6", []byte("1"), 0o644)
		return nil
	}
	os.WriteFile(conf+"addr_gen_mode", []byte("1"), 0o644)
	os.WriteFile(conf+"accept_ra", []byte("0"), 0o644)
	if err := os.WriteFile(conf+"disable_ipv6", []byte("0"), 0o644); err != nil {
		return fmt.Errorf("TUN %s: IPv6 routes, but IPv6 cannot be turned on for it: %w", tun, err)
	}
	return nil
}

// hasIPv6 reports whether an IPv6 route or address goes on the TUN.
func (c NetConfig) hasIPv6() bool {
	for _, r := range c.Routes {
		if r.Dst.Addr().Is6() {
			return true
		}
	}
	for _, a := range c.Addrs {
		if a.Addr().Is6() {
			return true
		}
	}
	return false
}

// HostRoute adds, or with del removes, a host route for a into the TUN:
// for a remote-access client whose static address lies outside the pool's
// prefix, which SetupNetwork routes as a whole.
func HostRoute(tun string, table int, a, src netip.Addr, del bool) error {
	return SetRoute(tun, table, Route{Dst: netip.PrefixFrom(a, a.BitLen()), Src: src}, del)
}

// SetRoute adds, or with del removes, a route into the TUN in our table
// (a reload adding or removing a tunnel).
func SetRoute(tun string, table int, r Route, del bool) error {
	link, err := netlink.LinkByName(tun)
	if err != nil {
		return fmt.Errorf("TUN %s: %w", tun, err)
	}
	rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: prefixNet(r.Dst), Table: table, Scope: netlink.SCOPE_LINK}
	if r.Src.IsValid() {
		rt.Src = r.Src.AsSlice()
	}
	if !del && r.Dst.Addr().Is6() {
		if err := setIPv6(tun, true); err != nil { // the first IPv6 route, on a reload
			return err
		}
	}
	if del {
		err = netlink.RouteDel(rt)
	} else {
		err = netlink.RouteReplace(rt)
	}
	if err != nil {
		return fmt.Errorf("route %s dev %s table %d: %w", r.Dst, tun, table, err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
