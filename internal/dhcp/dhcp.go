// Package dhcp reads and writes the DHCP messages a VPN server and its
// clients exchange through a tunnel: Windows's DHCPINFORM for its
// split-tunnel routes (RFC 2131 section 3.4) and the DHCPACK that answers
// it with classless static routes (RFC 3442 option 121, and Microsoft's
// option 249 in the same format). It knows nothing of leases.
package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/gatehouse/gatehouse/esp"
)

// Ports (RFC 2131 section 4.1).
const (
	ServerPort = 67
	ClientPort = 68
)

// Message types (RFC 2132 section 9.6) and BOOTP ops.
const (
	Inform = 8
	Ack    = 5

	BootRequest = 1
	BootReply   = 2
)

// Options used here (RFC 2132, RFC 3442, and Microsoft's 249).
const (
	optPad          = 0
	optDNS          = 6
	optDomainName   = 15
	optMessageType  = 53
	optServerID     = 54
	optParamRequest = 55
	optClientID     = 61
	optVendorClass  = 60
	OptClassless    = 121
	OptMSClassless  = 249
	optEnd          = 255
)

// fixedLen is the BOOTP part before the magic cookie (RFC 2131 section 2).
const fixedLen = 236

const magic = 0x63825363

// ErrMalformed is a datagram that is not a well-formed DHCP message.
var ErrMalformed = errors.New("malformed DHCP message")

// Message is what this package reads of a DHCP message.
type Message struct {
	Op     byte
	XID    uint32
	CIAddr netip.Addr
	Type   int    // option 53; -1 if absent
	Params []byte // option 55: the options asked for; nil if absent
	// An answer's contents.
	ServerID netip.Addr
	Routes   []netip.Prefix // option 121, else 249
	Domain   string
	DNS      []netip.Addr

	fixed [fixedLen]byte // op to file, as received
}

// Parse reads a DHCP message.
func Parse(b []byte) (*Message, error) {
	if len(b) < fixedLen+4 || binary.BigEndian.Uint32(b[fixedLen:]) != magic {
		return nil, fmt.Errorf("%w: %d bytes without the magic cookie", ErrMalformed, len(b))
	}
	m := &Message{Op: b[0], XID: binary.BigEndian.Uint32(b[4:]), CIAddr: netip.AddrFrom4([4]byte(b[12:16])), Type: -1}
	copy(m.fixed[:], b)
	var ms []netip.Prefix
	for opts := b[fixedLen+4:]; len(opts) > 0; {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return nil, fmt.Errorf("%w: option %d overruns the message", ErrMalformed, code)
		}
		val := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(val):]
		var err error
		switch code {
		case optMessageType:
			if len(val) != 1 {
				return nil, fmt.Errorf("%w: message type of %d bytes", ErrMalformed, len(val))
			}
			m.Type = int(val[0])
		case optParamRequest:
			m.Params = slices.Clone(val)
		case optServerID:
			if len(val) != 4 {
				return nil, fmt.Errorf("%w: server identifier of %d bytes", ErrMalformed, len(val))
			}
			m.ServerID = netip.AddrFrom4([4]byte(val))
		case OptClassless:
			m.Routes, err = parseClassless(val)
		case OptMSClassless:
			ms, err = parseClassless(val)
		case optDomainName:
			m.Domain = string(val)
		case optDNS:
			for ; len(val) >= 4; val = val[4:] {
				m.DNS = append(m.DNS, netip.AddrFrom4([4]byte(val)))
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if m.Routes == nil {
		m.Routes = ms
	}
	return m, nil
}

// AppendClassless encodes routes as RFC 3442 section 3 does: the prefix
// length, the significant octets of the destination, the router. Router
// 0.0.0.0 puts the destination on the link (section 3), here the tunnel.
func AppendClassless(b []byte, routes []netip.Prefix) []byte {
	for _, p := range routes {
		p = p.Masked()
		a := p.Addr().As4()
		b = append(b, byte(p.Bits()))
		b = append(b, a[:(p.Bits()+7)/8]...)
		b = append(b, 0, 0, 0, 0)
	}
	return b
}

// parseClassless reads RFC 3442 routes; the router is not kept (a tunnel
// has no other).
func parseClassless(b []byte) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for len(b) > 0 {
		bits := int(b[0])
		n := (bits + 7) / 8
		if bits > 32 || len(b) < 1+n+4 {
			return nil, fmt.Errorf("%w: classless static route of /%d in %d bytes", ErrMalformed, bits, len(b))
		}
		var a [4]byte
		copy(a[:], b[1:1+n])
		out = append(out, netip.PrefixFrom(netip.AddrFrom4(a), bits).Masked())
		b = b[1+n+4:]
	}
	return out, nil
}

// Wants reports whether the client asked for an option; one that sent no
// list gets everything.
func (m *Message) Wants(code byte) bool { return m.Params == nil || slices.Contains(m.Params, code) }

// appendOption appends one option if it fits in a single one (255
// bytes); a longer one is left out, not split (RFC 3396).
func appendOption(b []byte, code byte, val []byte) []byte {
	if len(val) > 255 {
		return b
	}
	return append(append(b, code, byte(len(val))), val...)
}

// AppendInform appends a DHCPINFORM as Windows sends one through a
// tunnel: its address in ciaddr, its hardware address, the options it
// asks for (routes both ways, the domain, DNS) and its vendor class.
func AppendInform(b []byte, ciaddr netip.Addr, hw [6]byte, xid uint32) []byte {
	start := len(b)
	b = append(b, make([]byte, fixedLen)...)
	f := b[start:]
	f[0], f[1], f[2] = BootRequest, 1, 6
	binary.BigEndian.PutUint32(f[4:], xid)
	a := ciaddr.As4()
	copy(f[12:], a[:])
	copy(f[28:], hw[:])
	b = binary.BigEndian.AppendUint32(b, magic)
	b = appendOption(b, optMessageType, []byte{Inform})
	b = appendOption(b, optClientID, append([]byte{1}, hw[:]...))
	b = appendOption(b, optVendorClass, []byte("MSFT 5.0"))
	b = appendOption(b, optParamRequest, []byte{1, optDomainName, 3, optDNS, 44, 46, 47, 31, 33, OptClassless, OptMSClassless, 43})
	return append(b, optEnd)
}

// Answer is what a server tells a client.
type Answer struct {
	Server netip.Addr     // server identifier, and the answer's source
	Routes []netip.Prefix // classless static routes, on the link
	Domain string         // the DNS suffix
	DNS    []netip.Addr
}

// AppendAck appends the DHCPACK to a DHCPINFORM (RFC 2131 section 4.3.5:
// no lease time, no yiaddr), with the options the client asked for.
func AppendAck(b []byte, req *Message, a Answer) []byte {
	start := len(b)
	b = append(b, req.fixed[:]...)
	f := b[start:]
	f[0] = BootReply
	clear(f[16:28])  // yiaddr, siaddr, giaddr
	clear(f[44:236]) // sname, file
	b = binary.BigEndian.AppendUint32(b, magic)
	b = appendOption(b, optMessageType, []byte{Ack})
	s := a.Server.As4()
	b = appendOption(b, optServerID, s[:])
	if len(a.Routes) > 0 {
		routes := AppendClassless(nil, a.Routes)
		for _, code := range []byte{OptClassless, OptMSClassless} {
			if req.Wants(code) {
				b = appendOption(b, code, routes)
			}
		}
	}
	if a.Domain != "" && req.Wants(optDomainName) {
		b = appendOption(b, optDomainName, []byte(a.Domain))
	}
	if len(a.DNS) > 0 && req.Wants(optDNS) {
		var v []byte
		for _, d := range a.DNS {
			if d.Is4() {
				x := d.As4()
				v = append(v, x[:]...)
			}
		}
		b = appendOption(b, optDNS, v)
	}
	return append(b, optEnd)
}

// Packet wraps a DHCP message in IPv4 and UDP, with the checksum.
func Packet(from, to netip.Addr, sport, dport uint16, msg []byte) []byte {
	n := 8 + len(msg)
	pkt := make([]byte, esp.IPv4HeaderLen+n)
	esp.PutIPv4Header(pkt, from, to, esp.ProtoUDP, 64, 0, n)
	udp := pkt[esp.IPv4HeaderLen:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(n))
	copy(udp[8:], msg)
	c := esp.Checksum(udp, esp.PseudoHeaderSum(from, to, esp.ProtoUDP, n))
	if c == 0 {
		c = 0xffff // RFC 768: zero means no checksum
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return pkt
}
