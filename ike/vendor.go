package ike

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/esp"
)

// Flags are the peer features and quirks an IKE SA's tasks act on. The
// tasks read flags, never vendor IDs: the standard flags come from the
// vendor IDs ike itself knows (builtinFlags), the rest from interop
// plugins (Interop), which an operator loads, configures and can see.
type Flags uint32

const (
	FlagNATT          Flags = 1 << iota // RFC 3947 NAT traversal
	FlagNATTDraft                       // the NAT-T drafts 02/03: payloads 130/131, modes 61443/61444
	FlagDPD                             // RFC 3706 dead peer detection
	FlagFragmentation                   // IKE fragmentation (fragment.go)
	FlagGSSAPI                          // 65001 means GSS-API, not XAUTH (gss.go)
	// FlagInitialContact: the peer's first message says it holds no other
	// SA with us, as the INITIAL-CONTACT notify would (Windows sends it as
	// a vendor ID); older SAs from the same address and port go once this
	// one is up.
	FlagInitialContact
	// FlagQMNotifyMsgID: a quick mode failure is reported to the peer in
	// an informational exchange with the quick mode's message ID, which
	// is how Windows ties the error to the negotiation it started.
	FlagQMNotifyMsgID
	// FlagClientRekeysChildren (IKEv2): the road warrior refuses child
	// rekeys the server starts, as Windows behind a NAT does (error
	// 13863), and makes its own; ours are kept until it does.
	FlagClientRekeysChildren
	// FlagRekeyMODP2048First (IKEv2): when we rekey the peer's IKE SA, our
	// MODP2048 suites go first, which Windows takes even where its own
	// offer had MODP1024 only.
	FlagRekeyMODP2048First
	// FlagDHCPInform (IKEv2): the road warrior asks for its split-tunnel
	// routes by a DHCPINFORM to 255.255.255.255 through the tunnel, as
	// Windows does; with inside networks set, that address joins the
	// traffic selectors so the request can pass.
	FlagDHCPInform
)

var flagNames = []string{"natt", "natt-draft", "dpd", "fragmentation", "gssapi", "initial-contact", "qm-notify-message-id",
	"client-rekeys-children", "rekey-modp2048-first", "dhcp-inform"}

// ParseFlag returns the flag with a name ("natt-draft").
func ParseFlag(name string) (Flags, bool) {
	i := slices.Index(flagNames, name)
	if i < 0 {
		return 0, false
	}
	return 1 << i, true
}

// FlagNames lists every flag name.
func FlagNames() []string { return slices.Clone(flagNames) }

// Has reports whether every flag of g is set.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Names lists the set flags' names in a fixed order.
func (f Flags) Names() []string {
	var out []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

func (f Flags) String() string { return strings.Join(f.Names(), ",") }

// builtinFlags reads the standard vendor IDs.
func builtinFlags(vids [][]byte) Flags {
	var f Flags
	for _, v := range vids {
		switch {
		case bytes.Equal(v, vidRFC3947):
			f |= FlagNATT
		case bytes.Equal(v, vidDPD):
			f |= FlagDPD
		case fragmentVendor(v):
			f |= FlagFragmentation
		case gssVendor(v):
			f |= FlagGSSAPI
		}
	}
	return f
}

// Interop classifies peers for the manager (the daemon asks its interop
// plugins). Calls are made with the engine's lock held, once per IKE SA.
type Interop interface {
	// VendorIDs are added to an initiator's first message.
	VendorIDs(peer *PeerConfig, remote netip.AddrPort) [][]byte
	// Classify runs on the first message from the peer, before any task
	// reads it.
	Classify(q InteropQuery) InteropAnswer
}

// InteropQuery is what is known of a peer at its first message.
type InteropQuery struct {
	Peer      *PeerConfig
	Remote    netip.AddrPort
	Initiator bool // we are; the message is the responder's answer
	VendorIDs [][]byte
	// Offered is the initiator's phase 1 offer, in order (responder), or
	// the responder's choice (initiator).
	Offered []Phase1
	Builtin Flags
}

// InteropAnswer is what the interop plugins made of a peer.
type InteropAnswer struct {
	// Family is the client family ("windows", "apple"...) and Detail what
	// the plugin read ("Windows 8 to 11"); Plugin is who said so.
	Family, Detail, Plugin string
	Flags                  Flags // added to the built-in ones
	// VendorIDs go in our next message.
	VendorIDs [][]byte
	// Proposals and ESP, when set, replace the peer config's lists for
	// this IKE SA (a plugin enabling a group for a family, or reordering).
	Proposals []Proposal
	ESP       []esp.Suite
	// Hint is added to a no-proposal-chosen refusal: what would let the
	// peer in.
	Hint string
}

// preClassified is the interop plugins' answer about a peer's first
// message, asked for before the engine's lock was taken (Receive).
type preClassified struct {
	peer   *PeerConfig
	answer InteropAnswer
}

// classifyQuery decides whether a message is a peer's first, which the
// interop plugins must see, and builds the question. Called with m.mu held.
func (m *Manager) classifyQuery(h Header, b []byte, local, remote netip.AddrPort) (InteropQuery, bool) {
	if m.interop == nil || h.MessageID != 0 || h.Flags&FlagEncryption != 0 || !h.Exchange.phase1() {
		return InteropQuery{}, false
	}
	q := InteropQuery{Remote: remote}
	switch sa := m.sas[h.SPIi]; {
	case sa == nil && h.SPIr == (Cookie{}):
		// A responder's first message, unless Receive or respond will
		// turn it away.
		q.Peer = m.peerFor(local.Addr(), remote.Addr())
		if q.Peer == nil || m.halfOpenFull(remote.Addr()) || (h.Exchange == ExchangeAggressive && !q.Peer.Aggressive) {
			return InteropQuery{}, false
		}
	case sa != nil && sa.Initiator && !sa.vendor.classified && sa.state == stateMainMode && sa.Remote.Addr() == remote.Addr():
		q.Peer, q.Initiator = sa.Peer, true
	default:
		return InteropQuery{}, false
	}
	ps, err := DecodePayloads(h.NextPayload, b[HeaderLen:], false)
	if err != nil {
		return InteropQuery{}, false // the exchange refuses it
	}
	in := &msg{payloads: ps}
	q.VendorIDs = vendorIDsOf(in)
	q.Builtin = builtinFlags(q.VendorIDs)
	if offered, ok := in.get(PayloadSA).(*SA); ok && len(offered.Proposals) > 0 {
		for _, t := range offered.Proposals[0].Transforms {
			if p, err := parsePhase1(t); err == nil {
				q.Offered = append(q.Offered, p)
			}
		}
	}
	return q, true
}

func vendorIDsOf(in *msg) [][]byte {
	var vids [][]byte
	for _, p := range in.all(PayloadVendorID) {
		vids = append(vids, p.(*Data).Data)
	}
	return vids
}

// classify settles the SA's flags and family from the peer's first
// message, with the plugins' answer asked for beforehand (pre). It returns
// what undoes it, for a first message that turns out to be refused.
func (m *Manager) classify(sa *IKESA, in *msg, pre *preClassified) (undo func()) {
	was, wasContact := sa.vendor, sa.initialContact
	was.classified = false
	undo = func() { sa.vendor, sa.initialContact = was, wasContact }
	sa.vendor.classified = true
	sa.vendor.flags = builtinFlags(vendorIDsOf(in))
	if m.interop == nil || pre == nil || pre.peer != sa.Peer {
		return undo // no plugins, or a reload changed the peer meanwhile
	}
	a := pre.answer
	sa.vendor.interop = a
	sa.vendor.flags |= a.Flags
	if sa.vendor.flags.Has(FlagInitialContact) {
		sa.initialContact = true
	}
	if a.Family != "" {
		m.log.Info("IKE peer classified", zap.Stringer("remote", sa.Remote), zap.String("family", a.Family),
			zap.String("detail", a.Detail), zap.String("plugin", a.Plugin), zap.Stringer("flags", sa.vendor.flags))
	}
	return undo
}

// proposals are the phase 1 proposals for this SA; espSuites the ESP ones.
func (sa *IKESA) proposals() []Proposal {
	if sa.vendor.interop.Proposals != nil {
		return sa.vendor.interop.Proposals
	}
	return sa.Peer.Proposals
}

func (sa *IKESA) espSuites() []esp.Suite {
	if sa.vendor.interop.ESP != nil {
		return sa.vendor.interop.ESP
	}
	return sa.Peer.ESP
}

// vendorCapability is a phase 1 task for a capability both sides announce
// by vendor ID (DPD, fragmentation): we offer it in our first message
// when it is on, and a responder echoes it only to a peer whose flags say
// it offered it.
type vendorCapability struct {
	step int
	vid  []byte
	on   func(*PeerConfig) bool
	flag Flags
}

func (t *vendorCapability) build(x *exchange, out *msg) (bool, error) {
	t.step++
	if t.step <= 2 && t.on(x.sa.Peer) && (t.step == 1 || x.sa.vendor.flags.Has(t.flag)) {
		out.add(&Data{T: PayloadVendorID, Data: t.vid})
	}
	return t.step >= 2, nil
}

func (t *vendorCapability) process(x *exchange, in *msg) (bool, error) {
	t.step++
	return t.step >= 2, nil
}

// extraVendorIDs is the phase 1 task that adds the vendor IDs of our
// first message that no other task sends: the peer config's (a client
// emulating a family) and the interop plugins'.
type extraVendorIDs struct{}

func (extraVendorIDs) build(x *exchange, out *msg) (bool, error) {
	sa := x.sa
	vids := sa.vendor.interop.VendorIDs
	if sa.Initiator {
		vids = append(slices.Clone(sa.Peer.VendorIDs), vids...)
	}
	for _, v := range vids {
		dup := false
		for _, p := range out.all(PayloadVendorID) {
			dup = dup || bytes.Equal(p.(*Data).Data, v)
		}
		if !dup {
			out.add(&Data{T: PayloadVendorID, Data: v})
		}
	}
	return true, nil
}

func (extraVendorIDs) process(*exchange, *msg) (bool, error) { return false, nil }
