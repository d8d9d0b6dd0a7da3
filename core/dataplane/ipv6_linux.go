package dataplane

import (
	"fmt"
	"net"
	"net/netip"
)

// The outer sockets for IPv6 peers: ESP (IP protocol 50) and UDP (IKE on
// 500, ESP and IKE on 4500, RFC 3948). Each is bound to the one IPv6
// listen address, so its sends leave from it; they move one datagram a
// system call (the IPv4 sockets' batching is not built for IPv6 yet).

// ipv6Conn is an outer IPv6 socket: UDP, or raw ESP, which the kernel
// hands over without the IPv6 header (RFC 3542 section 3).
type ipv6Conn struct {
	udp   *net.UDPConn
	raw   *net.IPConn
	local netip.Addr
}

// listenUDP6 opens an outer UDP socket on an IPv6 address.
func listenUDP6(local netip.AddrPort, mark int) (Conn, error) {
	c, err := net.ListenUDP("udp6", net.UDPAddrFromAddrPort(local))
	if err != nil {
		return nil, fmt.Errorf("UDP socket %s: %w", local, err)
	}
	if _, err := prepareOuter(c, mark); err != nil {
		return nil, fmt.Errorf("UDP socket %s: SO_MARK: %w", local, err)
	}
	return &ipv6Conn{udp: c, local: local.Addr()}, nil
}

// listenRawESP6 opens the IP protocol 50 socket on an IPv6 address.
func listenRawESP6(local netip.Addr, mark int) (Conn, error) {
	c, err := net.ListenIP("ip6:50", &net.IPAddr{IP: local.AsSlice()})
	if err != nil {
		return nil, fmt.Errorf("raw ESP socket on %s: %w", local, err)
	}
	if _, err := prepareOuter(c, mark); err != nil {
		return nil, fmt.Errorf("raw ESP socket on %s: SO_MARK: %w", local, err)
	}
	return &ipv6Conn{raw: c, local: local}, nil
}

func (c *ipv6Conn) ReadFrom(b []byte) ([]byte, netip.AddrPort, error) {
	if c.udp != nil {
		n, from, err := c.udp.ReadFromUDPAddrPort(b)
		if err != nil {
			return nil, netip.AddrPort{}, err
		}
		return b[:n], from, nil
	}
	n, from, err := c.raw.ReadFromIP(b)
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	a, _ := netip.AddrFromSlice(from.IP)
	return b[:n], netip.AddrPortFrom(a, 0), nil
}

func (c *ipv6Conn) WriteTo(b []byte, to netip.AddrPort) error {
	var err error
	if c.udp != nil {
		_, err = c.udp.WriteToUDPAddrPort(b, to)
	} else {
		_, err = c.raw.WriteToIP(b, &net.IPAddr{IP: to.Addr().AsSlice()})
	}
	return err
}

func (c *ipv6Conn) Close() error {
	if c.udp != nil {
		return c.udp.Close()
	}
	return c.raw.Close()
}

// Local is the address the socket is bound to (IKE on 4500 is answered
// from it).
func (c *ipv6Conn) Local() netip.Addr { return c.local }

// ByFamily is one Conn for senders that reach peers of both families:
// writes to an IPv6 peer go to v6, the others to v4. It does not read.
func ByFamily(v4, v6 Conn) Conn {
	if v6 == nil {
		return v4
	}
	return byFamily{v4, v6}
}

type byFamily struct{ v4, v6 Conn }

func (b byFamily) pick(to netip.AddrPort) Conn {
	if to.Addr().Is6() {
		return b.v6
	}
	return b.v4
}

func (b byFamily) ReadFrom([]byte) ([]byte, netip.AddrPort, error) {
	return nil, netip.AddrPort{}, errWriteOnly
}
func (b byFamily) WriteTo(p []byte, to netip.AddrPort) error { return b.pick(to).WriteTo(p, to) }
func (b byFamily) WriteFromTo(p []byte, src netip.Addr, to netip.AddrPort) error {
	return WriteFrom(b.pick(to), p, src, to)
}
func (b byFamily) Close() error { return nil } // the sockets' owner closes them
