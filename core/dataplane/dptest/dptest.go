// Package dptest holds in-memory stand-ins for the data path's devices,
// for tests that run a dataplane.Plane (or two, back to back) without a
// kernel: a TUN whose packets are channels, and wires whose two ends are
// outer sockets. They satisfy dataplane.Device and dataplane.Conn.
package dptest

import (
	"errors"
	"net"
	"net/netip"
	"sync"
)

// TUN is a TUN device: a test writes to In what the host routes into
// the tunnel, and reads from Out what the plane delivers.
type TUN struct {
	In, Out  chan []byte
	headroom int
	done     chan struct{}
	once     sync.Once
}

// NewTUN makes a TUN that refuses writes with less than headroom bytes
// free before the packet (dataplane.DeviceHeadroom), as a real one needs.
func NewTUN(headroom int) *TUN {
	return &TUN{In: make(chan []byte, 16), Out: make(chan []byte, 16), headroom: headroom, done: make(chan struct{})}
}

// Read returns the next packet and whatever else is queued, as a batch.
func (f *TUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case p := <-f.In:
		sizes[0] = copy(bufs[0][offset:], p)
	case <-f.done:
		return 0, net.ErrClosed
	}
	n := 1
	for ; n < len(bufs); n++ {
		select {
		case p := <-f.In:
			sizes[n] = copy(bufs[n][offset:], p)
		default:
			return n, nil
		}
	}
	return n, nil
}

func (f *TUN) Write(buf []byte, off, n int) error {
	if off < f.headroom {
		return errors.New("no headroom for a device header")
	}
	select {
	case f.Out <- append([]byte(nil), buf[off:off+n]...):
		return nil
	case <-f.done:
		return net.ErrClosed
	}
}

func (f *TUN) Close() error { f.once.Do(func() { close(f.done) }); return nil }

// Datagram is one datagram on a wire and where it came from.
type Datagram struct {
	B    []byte
	From netip.AddrPort
}

// Conn is one end of a wire: WriteTo delivers to the other end when
// addressed to its address, and a test may put datagrams in In itself
// (a replay, a forgery) or drop some on their way (SetDrop).
type Conn struct {
	In    chan Datagram
	local netip.AddrPort
	peer  *Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	last []byte
	drop func(b []byte) bool
}

// Wire makes the two ends of a wire, at addresses a and b.
func Wire(a, b netip.AddrPort) (*Conn, *Conn) {
	x := &Conn{local: a, In: make(chan Datagram, 256), done: make(chan struct{})}
	y := &Conn{local: b, In: make(chan Datagram, 256), done: make(chan struct{})}
	x.peer, y.peer = y, x
	return x, y
}

func (c *Conn) ReadFrom(b []byte) ([]byte, netip.AddrPort, error) {
	select {
	case d := <-c.In:
		return b[:copy(b, d.B)], d.From, nil
	case <-c.done:
		return nil, netip.AddrPort{}, net.ErrClosed
	}
}

// TryRead reads a datagram if one is queued, without waiting.
func (c *Conn) TryRead(b []byte) ([]byte, netip.AddrPort, bool) {
	select {
	case d := <-c.In:
		return b[:copy(b, d.B)], d.From, true
	default:
		return nil, netip.AddrPort{}, false
	}
}

// ErrNoRoute: a datagram for an address the wire does not reach.
var ErrNoRoute = errors.New("no route")

func (c *Conn) WriteTo(b []byte, to netip.AddrPort) error {
	if to.Addr() != c.peer.local.Addr() {
		return ErrNoRoute
	}
	c.mu.Lock()
	c.last = append([]byte(nil), b...)
	drop := c.drop
	c.mu.Unlock()
	if drop != nil && drop(b) {
		return nil // lost on the way, as a real network loses it
	}
	select {
	case c.peer.In <- Datagram{append([]byte(nil), b...), c.local}:
	case <-c.peer.done:
	}
	return nil
}

// Last is the last datagram written, for replay tests.
func (c *Conn) Last() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.last...)
}

// SetDrop loses every datagram written from now on that drop returns
// true for (nil: none).
func (c *Conn) SetDrop(drop func(b []byte) bool) {
	c.mu.Lock()
	c.drop = drop
	c.mu.Unlock()
}

func (c *Conn) Close() error { c.once.Do(func() { close(c.done) }); return nil }
