// Package policy is Gatehouse's security policy database (SPD, RFC 4301
// section 4.4.1) in the Windows model of the seed documents: rules made of a
// filter list, a filter action (permit, block, or negotiate with ordered
// offers), an optional tunnel endpoint and ordered authentication methods.
//
// Matching follows Windows: the most specific filter wins (address
// specificity first, then protocol, then ports), and ties go to the rule
// written first. Filters are directional; a mirrored filter adds the reverse
// filter for inbound traffic. The exemption rules are in exempt.go.
package policy

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/esp"
)

// Action is what a filter action does.
type Action uint8

const (
	Permit Action = iota + 1
	Block
	Negotiate
)

func (a Action) String() string {
	switch a {
	case Permit:
		return "permit"
	case Block:
		return "block"
	case Negotiate:
		return "negotiate"
	}
	return "none"
}

// Direction of travel relative to the gateway's IPsec processing.
type Direction uint8

const (
	Outbound Direction = iota + 1 // leaving: to be protected or sent
	Inbound                       // arriving: decapsulated or received
)

func (d Direction) String() string {
	if d == Inbound {
		return "inbound"
	}
	return "outbound"
}

// Offer is one security method of a negotiate action, in preference order.
type Offer struct {
	Suite      esp.Suite
	Lifetime   time.Duration
	LifetimeKB uint64
}

// FilterAction says what to do with matching traffic.
type FilterAction struct {
	Name            string
	Action          Action
	Offers          []Offer
	PFS             string // DH group name, or "none"
	AcceptUnsecured bool   // accept inbound cleartext that matches
	FallbackToClear bool   // send in clear if negotiation fails
}

// AuthMethod is one entry of a rule's ordered authentication methods.
type AuthMethod struct {
	Kind   string // psk, x509, kerberos
	Detail string // key file, CA, principal: for display, never secrets
}

// Addr is a filter address: Any, or a prefix (a "me" address is expanded
// to one prefix per gateway address when the policy is built).
type Addr struct {
	Any    bool
	Prefix netip.Prefix
}

func (a Addr) String() string {
	if a.Any {
		return "any"
	}
	return a.Prefix.String()
}

func (a Addr) bits() int {
	if a.Any {
		return 0
	}
	return a.Prefix.Bits()
}

// Filter is one filter of a rule as configured (after "me" expansion).
type Filter struct {
	Src, Dst         Addr
	Proto            uint8 // 0: any
	SrcPort, DstPort uint16
	Mirrored         bool
}

// Rule is a compiled rule.
type Rule struct {
	Name   string
	Origin string // where it came from: "tunnels[0] neta-netb", "rules[2]", "remote_access"
	Seq    int    // position, for ties
	// Tunnel is the tunnel endpoint; invalid means transport mode.
	Tunnel  netip.Addr
	Dir     Direction // for tunnel rules: Outbound if Tunnel is the peer
	Action  FilterAction
	Auth    []AuthMethod
	Filters []Filter
	// PerPair: each filter (a local and a remote subnet) has an SA pair
	// of its own, as IKE negotiates them for a tunnel (one quick mode
	// per pair); the filter a packet matched picks its SA. Otherwise one
	// SA pair serves the whole rule.
	PerPair bool
}

// IsTunnel reports whether the rule has a tunnel endpoint.
func (r *Rule) IsTunnel() bool { return r.Tunnel.IsValid() }

// Entry is one applied, directional filter: what `gatehouse policy show`
// prints one block for.
type Entry struct {
	Rule             *Rule
	Dir              Direction
	Src, Dst         Addr
	Proto            uint8
	SrcPort, DstPort uint16
	Mirrored         bool // the filter is mirrored
	Mirror           bool // this entry is the generated reverse
	Weight           uint32
	Seq              int
	// Pair is PairID(Src, Dst) for a PerPair rule's entry, else 0.
	Pair uint32
}

// pairIDs numbers the subnet pairs of PerPair rules. A number is never
// reused or forgotten (there are as many as pairs ever configured), so
// SAs keyed by it find their pair again after a reload.
var pairIDs struct {
	sync.Mutex
	m map[[2]netip.Prefix]uint32
}

// PairID is the number of a (local, remote) subnet pair, from 1.
func PairID(local, remote netip.Prefix) uint32 {
	pairIDs.Lock()
	defer pairIDs.Unlock()
	k := [2]netip.Prefix{local.Masked(), remote.Masked()}
	if id, ok := pairIDs.m[k]; ok {
		return id
	}
	if pairIDs.m == nil {
		pairIDs.m = map[[2]netip.Prefix]uint32{}
	}
	id := uint32(len(pairIDs.m) + 1)
	pairIDs.m[k] = id
	return id
}

// Weight orders filters like Windows: more specific addresses first, then a
// specific protocol, then specific ports.
func weight(src, dst Addr, proto uint8, sport, dport uint16) uint32 {
	w := uint32(src.bits()+dst.bits()) << 3
	if proto != 0 {
		w |= 4
	}
	if sport != 0 {
		w |= 2
	}
	if dport != 0 {
		w |= 1
	}
	return w
}

// Packet is what a lookup needs of a packet.
type Packet struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
	// Local: for outbound, the gateway itself sends it; for inbound, it is
	// addressed to the gateway. Routed traffic is not local.
	Local bool
}

func (p Packet) String() string {
	return fmt.Sprintf("%s:%d > %s:%d proto %d local=%v", p.Src, p.SrcPort, p.Dst, p.DstPort, p.Proto, p.Local)
}

// Decision is the result of a lookup.
type Decision struct {
	Action Action
	Entry  *Entry // nil when no filter matched (or exempt)
	// Exempt names the exemption class that let the packet skip
	// transport-mode filters ("ike", "kerberos"...), if any.
	Exempt string
}

// Default is the decision for traffic no filter matches: it passes in the
// clear, as on Windows where unmatched traffic is not touched by IPsec.
var Default = Decision{Action: Permit}
