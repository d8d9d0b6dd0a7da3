package ike

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/gatehouse/gatehouse/esp"
)

// Selector is one side of a quick mode identity: a prefix, and optionally
// a protocol and port (RFC 2407 section 4.6.2).
type Selector struct {
	Prefix netip.Prefix
	Proto  uint8
	Port   uint16
}

func (s Selector) String() string {
	out := s.Prefix.String()
	if s.Proto != 0 || s.Port != 0 {
		out += fmt.Sprintf("[%d/%d]", s.Proto, s.Port)
	}
	return out
}

func (s Selector) id() *ID { return IDFromPrefix(s.Prefix, s.Proto, s.Port) }

func selectorOf(id *ID) (Selector, error) {
	p, err := id.Prefix()
	if err != nil {
		return Selector{}, err
	}
	return Selector{Prefix: p, Proto: id.Protocol, Port: id.Port}, nil
}

// PeerConfig is what IKE needs to know about one peer: the daemon builds
// it from a tunnel's configuration.
type PeerConfig struct {
	Name string
	// Remote is the peer's address; unset, the config is a wildcard that
	// answers any peer (remote access): it never initiates, and each
	// client gets IKE SAs of its own.
	Local, Remote netip.Addr
	Proposals     []Proposal // phase 1 offers, in order of preference
	// Auth lists the auth methods in the rule's order (AuthPSK,
	// AuthRSASig, AuthECDSA256...): the initiator offers them in this
	// order, the responder takes the first the peer offered.
	Auth []uint16
	// Offer, when set, is the initiator's phase 1 offer transform by
	// transform, in place of Proposals and Auth; VendorIDs are added to
	// its first message. Both let a client emulate a family's offer
	// (gatehouse connect --profile), weak transforms included.
	Offer     []Phase1
	VendorIDs [][]byte
	// GSS configures the GSS-API (Kerberos) method, AuthGSS.
	GSS GSSOptions
	// NoFragmentation neither announces nor uses IKE fragmentation;
	// FragmentSize is the datagram size past which we fragment (0: the
	// manager's).
	NoFragmentation bool
	FragmentSize    int
	Lifetime        time.Duration
	ESP             []esp.Suite // phase 2 offers, in order of preference
	PFS             uint16      // DH group for quick mode, 0: none
	ESPLifetime     time.Duration
	ESPLifeKB       uint64
	Transport       bool
	// ForceEncap: ESP in UDP even without a NAT. Our NAT-D hash for our
	// own address is made not to match, so the peer sees us behind a NAT
	// (strongSwan's encap = yes does the same).
	ForceEncap bool
	// DPDInterval is how long the peer may be silent before we probe it;
	// after DPDTimeout of silence it is dead (RFC 3706). 0: no DPD.
	DPDInterval, DPDTimeout time.Duration
	// Restart: start again when the IKE SA dies (start: always).
	Restart bool
	// Aggressive mode instead of main mode; only with RemoteID, the
	// peer's identity as FormatID writes it. LocalID is ours (nil: our
	// address).
	Aggressive bool
	RemoteID   string
	LocalID    *ID
	// Interop names the interop plugins the host asks about this peer
	// (the host decides what an empty list means).
	Interop []string
	// Pairs are the quick mode identities (tunnel mode: every local
	// subnet with every remote one), one child SA each, as IKEv1 carries
	// one pair per quick mode. Empty in transport mode: the gateways
	// themselves, and no ID payloads are sent.
	Pairs []TSPair
	// L2TP: transport mode protects L2TP only (RFC 3193): quick mode
	// identities are the two hosts with UDP port 1701 (or any port).
	L2TP bool
}

// Wildcard reports whether the config answers any peer.
func (p *PeerConfig) Wildcard() bool { return !p.Remote.IsValid() }

// hasIDs reports whether quick mode carries ID payloads.
func (p *PeerConfig) hasIDs() bool { return len(p.Pairs) > 0 }

// TSPair is one local and one remote selector: what one child SA of a
// tunnel protects. The zero pair stands for a peer without pairs (the
// two hosts, in transport mode).
type TSPair struct{ Local, Remote Selector }

func (t TSPair) String() string {
	if t == (TSPair{}) {
		return "hosts"
	}
	return t.Local.String() + " <-> " + t.Remote.String()
}

// has reports whether the pair is one of the peer's.
func (p *PeerConfig) has(t TSPair) bool {
	if !p.hasIDs() {
		return t == TSPair{}
	}
	for _, q := range p.Pairs {
		if q == t {
			return true
		}
	}
	return false
}

// allPairs is what a peer brings up when asked for all of it.
func (p *PeerConfig) allPairs() []TSPair {
	if !p.hasIDs() {
		return []TSPair{{}}
	}
	return p.Pairs
}

// ChildSA is one negotiated pair of ESP SAs, as the data path installs it:
// the boundary between IKE and the core.
type ChildSA struct {
	Peer          string // PeerConfig.Name
	Local, Remote netip.AddrPort
	Tunnel, UDP   bool
	Suite         esp.Suite
	// InSPI is ours (the peer sends with it); OutSPI the peer's.
	InSPI, OutSPI     uint32
	InEnc, InInteg    []byte
	OutEnc, OutInteg  []byte
	LocalTS, RemoteTS Selector // zero prefixes in transport mode without IDs
	Lifetime          time.Duration
	LifeKB            uint64
	SPIi, SPIr        Cookie // the IKE SA that made it
	Established       time.Time
	// NATOA is the peer's own address when a NAT rewrote it (transport
	// mode): from its NAT-OA payload, else its quick mode identity (RFC
	// 3947 section 5.2). Checksums of what it sends were made with it.
	NATOA netip.Addr
	// Pairs, when set, are every local and remote selector pair the
	// child carries (an IKEv2 child's TSi and TSr lists, RFC 7296
	// section 2.9); LocalTS and RemoteTS are then the first.
	Pairs []TSPair

	// pair is the peer's pair it protects (zero for a peer without).
	pair TSPair
	// Rekeying (rekey.go): when to rekey and when the SAs expire; whether
	// a newer child replaced this one; when to delete it.
	rekeyAt, expiresAt time.Time
	rekeying           bool
	superseded         bool
	deleteAt           time.Time
}

// AllPairs is every selector pair the child carries: Pairs (IKEv2), or
// its one pair.
func (c *ChildSA) AllPairs() []TSPair {
	if len(c.Pairs) > 0 {
		return c.Pairs
	}
	return []TSPair{{Local: c.LocalTS, Remote: c.RemoteTS}}
}

// wipeKeys zeroes the child's KEYMAT once its SAs are gone. The data
// path's esp.Config shares these slices and wipes them as well.
func (c *ChildSA) wipeKeys() {
	for _, b := range [][]byte{c.InEnc, c.InInteg, c.OutEnc, c.OutInteg} {
		clear(b)
	}
}

func (c *ChildSA) String() string {
	mode := "tunnel"
	if !c.Tunnel {
		mode = "transport"
	}
	if c.pair != (TSPair{}) {
		return fmt.Sprintf("%s %s %s %v in %#08x out %#08x", c.Peer, mode, c.Suite, c.pair, c.InSPI, c.OutSPI)
	}
	return fmt.Sprintf("%s %s %s in %#08x out %#08x", c.Peer, mode, c.Suite, c.InSPI, c.OutSPI)
}

// Host is what the engine needs from the daemon. Calls are made with the
// engine's lock held: they must not call back into the Manager.
type Host interface {
	// Send sends an IKE datagram (the non-ESP marker is the host's on
	// port 4500).
	Send(b []byte, local, remote netip.AddrPort) error
	// SendKeepalive sends a NAT keepalive (RFC 3948 section 2.3: one
	// 0xFF byte) on port 4500.
	SendKeepalive(local, remote netip.AddrPort) error
	// PSK returns the preshared key for a peer, through the auth
	// plugins; id is the peer's identity when it is known in time
	// (aggressive mode), else nil. It returns a copy: the engine zeroes
	// it once SKEYID is made.
	PSK(peer *PeerConfig, remote netip.Addr, id *ID) ([]byte, error)
	// Signature methods (RFC 2409 section 5.1): our certificate chain,
	// identity and CAs for this peer; a signature over HASH_I or HASH_R
	// (SignHash's format) with our key; the peer's chain checked against
	// the CAs, with its ID payload, giving the key to verify it with.
	LocalCredentials(peer *PeerConfig, method uint16, peerCAs [][]byte) (*LocalCredentials, error)
	Sign(peer *PeerConfig, method uint16, hash []byte) ([]byte, error)
	VerifyPeer(peer *PeerConfig, method uint16, chain [][]byte, id *ID) (*PeerCredentials, error)
	// GSS-API (AuthGSS, gss.go): GSSStep feeds the peer's token (nil for
	// the initiator's first step) to the context, filling in its ID,
	// Complete and Peer, and returns the token to send (none when the
	// context is complete without one). GSSWrap and GSSUnwrap protect the
	// exchange hash; GSSRelease ends the context.
	GSSStep(peer *PeerConfig, c *GSSContext, token []byte) ([]byte, error)
	GSSWrap(peer *PeerConfig, c *GSSContext, data []byte) ([]byte, error)
	GSSUnwrap(peer *PeerConfig, c *GSSContext, token []byte) ([]byte, error)
	GSSRelease(peer *PeerConfig, c *GSSContext)
	// AllocSPI returns an unused inbound SPI (256 or more).
	AllocSPI() (uint32, error)
	// InstallInbound adds the child's inbound SA; InstallOutbound makes
	// it the one traffic is sent with, replacing the previous one in one
	// step. A quick mode responder installs inbound first, when it
	// answers, so the initiator may send on the new SA at once.
	InstallInbound(c *ChildSA) error
	InstallOutbound(c *ChildSA) error
	// DeleteChild removes both SAs (the outbound one only if it is still
	// the one in use). It may be called for a child installed inbound
	// only, and more than once.
	DeleteChild(c *ChildSA)
	Event(e Event)
}

// Audit event ids: 541 and 542 as Windows logs them; ours from 5400.
const (
	EventIKEUp          = 541
	EventIKEDown        = 542
	EventChildUp        = 5401
	EventChildDown      = 5402
	EventNegotiationErr = 5403
)

// Event is an audit event from the engine.
type Event struct {
	ID     int
	Peer   string
	Remote netip.Addr
	// What happened, in words an operator can act on.
	Message string
	// For failures: the reason class (no-proposal-chosen,
	// authentication-failed, timeout, peer-error, malformed).
	Reason string
	Child  *ChildSA
	// Rekey: the child replaces an older one (EventChildUp).
	Rekey bool
	// Exchange and Initiator say, for a failure, which negotiation
	// failed and whether we started it: a quick mode the peer started and
	// we refused leaves everything else up.
	Exchange  ExchangeType
	Initiator bool
	// Version is the IKE version that negotiated (0 stands for 1).
	Version int
}

func hostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

func netipPort(ap netip.AddrPort, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), port)
}
