package policy

import "net/netip"

// Exemption classes (seed: KB 253169 for Windows 2000, KB 811832 for the
// Windows Server 2003 change to IKE only).
const (
	ExemptIKE       = "ike"       // UDP 500
	ExemptKerberos  = "kerberos"  // UDP and TCP 88
	ExemptRSVP      = "rsvp"      // IP protocol 46
	ExemptBroadcast = "broadcast" // 255.255.255.255, and IPv6's link-local fe80::/10 (IPv6 has no broadcast)
	ExemptMulticast = "multicast" // 224.0.0.0/4, ff00::/8
)

const (
	protoTCP  = 6
	protoUDP  = 17
	protoRSVP = 46
)

// classify names the exemption class a packet belongs to, or "".
func classify(p Packet) []string {
	var out []string
	if p.Proto == protoUDP && (p.SrcPort == 500 || p.DstPort == 500) {
		out = append(out, ExemptIKE)
	}
	if (p.Proto == protoUDP || p.Proto == protoTCP) && (p.SrcPort == 88 || p.DstPort == 88) {
		out = append(out, ExemptKerberos)
	}
	if p.Proto == protoRSVP {
		out = append(out, ExemptRSVP)
	}
	if isLimitedBroadcast(p.Dst) || (p.Dst.Is6() && p.Dst.IsLinkLocalUnicast()) {
		out = append(out, ExemptBroadcast)
	}
	if p.Dst.IsMulticast() {
		out = append(out, ExemptMulticast)
	}
	return out
}

var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func isLimitedBroadcast(a netip.Addr) bool { return a.Unmap() == limitedBroadcast }

// tunnelRefuses reports whether dst can never travel through a tunnel:
// broadcast and multicast are never tunnelled (seed), nor IPv6 link-local
// addresses, whatever the exemption set. dstPrefix is the tunnel filter's destination, whose directed broadcast
// address is refused too. A filter whose destination is 255.255.255.255/32
// itself carries it: an IKEv2 server puts that in a Windows client's
// traffic selectors for the DHCPINFORM that asks for its routes.
func tunnelRefuses(dst netip.Addr, dstPrefix Addr) bool {
	if isLimitedBroadcast(dst) && dstPrefix.Prefix == netip.PrefixFrom(limitedBroadcast, 32) {
		return false
	}
	if dst.IsMulticast() || isLimitedBroadcast(dst) || (dst.Is6() && dst.IsLinkLocalUnicast()) {
		return true // IPv6's link-local addresses are the link's own, as broadcast is
	}
	if dstPrefix.Any || !dst.Is4() || dstPrefix.Prefix.Bits() > 30 {
		return false
	}
	return dst == lastAddr(dstPrefix.Prefix)
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= (1 << host) - 1
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
