package ppp

import (
	"net/netip"
)

// IPCP options (RFC 1332, RFC 1877).
const (
	IPCPOptCompression = 2
	IPCPOptAddress     = 3
	IPCPOptDNS1        = 129
	IPCPOptNBNS1       = 130
	IPCPOptDNS2        = 131
	IPCPOptNBNS2       = 132
)

// IPCP negotiates addresses. The server asks for nothing but its own
// address and hands the client its address and name servers by Nak-ing
// what the client asks for (RFC 1877: a client asks for 0.0.0.0 and is
// told). The client asks for 0.0.0.0 everywhere and takes what it is told.
type IPCP struct {
	Server bool
	// Local is our address. For the server: its own; for the client:
	// what it asks for (0.0.0.0 until told).
	Local netip.Addr
	// Peer is, for the server, the address the client gets (from the
	// pool); for the client, what the server says it has.
	Peer netip.Addr
	// DNS and NBNS: the server's to hand out; the client's as learned.
	DNS, NBNS []netip.Addr

	OnSend                   func(Packet)
	OnUp, OnDown, OnFinished func()

	askDNS  [2]bool
	askNBNS [2]bool
}

var zero4 = netip.AddrFrom4([4]byte{})

// NewIPCPServer hands the client peer, with dns and nbns servers.
func NewIPCPServer(local, peer netip.Addr, dns, nbns []netip.Addr) *IPCP {
	return &IPCP{Server: true, Local: local, Peer: peer, DNS: dns, NBNS: nbns}
}

// NewIPCPClient asks for an address and up to two DNS servers (and NBNS
// servers when wantNBNS).
func NewIPCPClient(wantNBNS bool) *IPCP {
	return &IPCP{Local: zero4, askDNS: [2]bool{true, true}, askNBNS: [2]bool{wantNBNS, wantNBNS}}
}

func addrOpt(t byte, a netip.Addr) Option { b := a.As4(); return Option{Type: t, Data: b[:]} }

func (c *IPCP) Options() []Option {
	o := []Option{addrOpt(IPCPOptAddress, c.Local)}
	if !c.Server {
		for i, t := range []byte{IPCPOptDNS1, IPCPOptDNS2} {
			if c.askDNS[i] {
				o = append(o, addrOpt(t, c.nth(c.DNS, i)))
			}
		}
		for i, t := range []byte{IPCPOptNBNS1, IPCPOptNBNS2} {
			if c.askNBNS[i] {
				o = append(o, addrOpt(t, c.nth(c.NBNS, i)))
			}
		}
	}
	return o
}

func (c *IPCP) nth(list []netip.Addr, i int) netip.Addr {
	if i < len(list) {
		return list[i]
	}
	return zero4
}

// Check: the server Naks anything but the client's assigned address and
// the configured name servers, and Rejects name servers it has none of
// and IP compression; the client accepts the server's own address.
func (c *IPCP) Check(opts []Option) (Verdict, []Option) {
	var nak, rej []Option
	for _, o := range opts {
		if len(o.Data) != 4 && o.Type != IPCPOptCompression {
			rej = append(rej, o)
			continue
		}
		var got netip.Addr
		if len(o.Data) == 4 {
			got = netip.AddrFrom4([4]byte(o.Data))
		}
		switch {
		case o.Type == IPCPOptAddress && c.Server:
			if got != c.Peer {
				nak = append(nak, addrOpt(IPCPOptAddress, c.Peer))
			}
		case o.Type == IPCPOptAddress:
			if !got.IsValid() || got == zero4 {
				rej = append(rej, o) // the server must say who it is
			} else {
				c.Peer = got
			}
		case c.Server && (o.Type == IPCPOptDNS1 || o.Type == IPCPOptDNS2 || o.Type == IPCPOptNBNS1 || o.Type == IPCPOptNBNS2):
			list, i := c.DNS, 0
			if o.Type == IPCPOptNBNS1 || o.Type == IPCPOptNBNS2 {
				list = c.NBNS
			}
			if o.Type == IPCPOptDNS2 || o.Type == IPCPOptNBNS2 {
				i = 1
			}
			switch {
			case i >= len(list):
				rej = append(rej, o)
			case got != list[i]:
				nak = append(nak, addrOpt(o.Type, list[i]))
			}
		default:
			rej = append(rej, o) // compression and the rest
		}
	}
	if len(rej) > 0 {
		return Reject, rej
	}
	if len(nak) > 0 {
		return Nak, nak
	}
	return Ack, nil
}

// Nakked: the client takes the address and name servers it is told.
func (c *IPCP) Nakked(opts []Option) {
	for _, o := range opts {
		if len(o.Data) != 4 {
			continue
		}
		a := netip.AddrFrom4([4]byte(o.Data))
		switch o.Type {
		case IPCPOptAddress:
			c.Local = a
		case IPCPOptDNS1:
			c.DNS = setNth(c.DNS, 0, a)
		case IPCPOptDNS2:
			c.DNS = setNth(c.DNS, 1, a)
		case IPCPOptNBNS1:
			c.NBNS = setNth(c.NBNS, 0, a)
		case IPCPOptNBNS2:
			c.NBNS = setNth(c.NBNS, 1, a)
		}
	}
}

func setNth(list []netip.Addr, i int, a netip.Addr) []netip.Addr {
	for len(list) <= i {
		list = append(list, zero4)
	}
	list[i] = a
	return list
}

// Rejected: stop asking for name servers the server does not have.
func (c *IPCP) Rejected(opts []Option) {
	for _, o := range opts {
		switch o.Type {
		case IPCPOptDNS1:
			c.askDNS[0] = false
		case IPCPOptDNS2:
			c.askDNS[1] = false
		case IPCPOptNBNS1:
			c.askNBNS[0] = false
		case IPCPOptNBNS2:
			c.askNBNS[1] = false
		}
	}
}

func (c *IPCP) Up()           { call(c.OnUp) }
func (c *IPCP) Down()         { call(c.OnDown) }
func (c *IPCP) Finished()     { call(c.OnFinished) }
func (c *IPCP) Send(p Packet) { c.OnSend(p) }
