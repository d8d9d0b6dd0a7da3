package ikev2

import (
	"net/netip"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/alg"
	"github.com/gatehouse/gatehouse/ike/clients"
)

// Interop classifies IKEv2 peers by their IKE_SA_INIT request, as IKEv1's
// ike.Interop does by their first message (the daemon asks its interop
// plugins). It is called outside the engine's lock, once per new IKE SA.
type Interop interface {
	ClassifyV2(q InteropQuery) *InteropAnswer
}

// InteropQuery is what an IKE_SA_INIT request says of its sender.
type InteropQuery struct {
	Peer      *Peer
	Remote    netip.AddrPort
	VendorIDs [][]byte
	// Offered is the initiator's IKE SA offer as suites, in its order, at
	// most MaxOfferedSuites of them (OfferedSuites).
	Offered []Proposal
}

// InteropAnswer is what the interop plugins made of a peer; nil: nothing.
// Answers are shared by the IKE SAs of one family and never changed.
type InteropAnswer struct {
	// Family is the client family ("windows", "apple"...), Detail what
	// the plugin read, Plugin who said so.
	Family, Detail, Plugin string
	Flags                  ike.Flags // added to the built-in ones
	// Suites and ESP, when set, replace the peer's lists for this IKE SA
	// (its IKE SA and its children).
	Suites []Proposal
	ESP    []esp.Suite
	// Hint is added to a NO_PROPOSAL_CHOSEN refusal: what would let the
	// peer in.
	Hint string
}

// builtinFlags reads the vendor IDs the engine knows itself: Windows's
// built-in client sends MS NT5 ISAKMPOAKLEY with its version, as in
// IKEv1, and two rules the protocol leaves open depend on it (the flags'
// comments), so they hold with no interop plugin loaded.
func builtinFlags(vids [][]byte) ike.Flags {
	for _, v := range vids {
		if _, ok := clients.WindowsVersion(v); ok {
			return ike.FlagClientRekeysChildren | ike.FlagRekeyMODP2048First
		}
	}
	return 0
}

func vendorIDsOf(ps []Payload) [][]byte {
	var vids [][]byte
	for _, p := range ps {
		if v, ok := p.(*VendorID); ok {
			vids = append(vids, v.Data)
		}
	}
	return vids
}

// preClassify asks the interop plugins about an IKE_SA_INIT request before
// the engine's lock is taken, unless initRequest will not make an SA of
// it (a retransmission, no peer for the address). The peer it was asked
// for goes with the answer: a reload meanwhile voids it.
func (m *Manager) preClassify(msg *Message, local, remote netip.AddrPort) (*Peer, *InteropAnswer) {
	if m.interop == nil || msg.Exchange != ExchangeIKESAInit || msg.Response() {
		return nil, nil
	}
	m.mu.Lock()
	p := m.peerFor(local.Addr(), remote.Addr())
	again := m.opening[openKey{msg.SPIi, remote}] != nil
	m.mu.Unlock()
	if p == nil || again {
		return nil, nil
	}
	q := InteropQuery{Peer: p, Remote: remote, VendorIDs: vendorIDsOf(msg.Payloads)}
	if sa, ok := Find(msg.Payloads, PayloadSA).(*SA); ok {
		q.Offered = OfferedSuites(sa.Proposals)
	}
	return p, m.interop.ClassifyV2(q)
}

// classified settles a new responder SA's flags and family: the built-in
// flags, and the plugins' answer when it was asked for this peer.
func (m *Manager) classified(s *ikeSA, vids [][]byte, asked *Peer, a *InteropAnswer) {
	s.flags = builtinFlags(vids)
	if a == nil || asked != s.peer {
		return
	}
	s.interop = a
	s.flags |= a.Flags
	if a.Family != "" {
		m.log.Info("IKEv2 peer classified", zap.Stringer("remote", s.remote), zap.String("family", a.Family),
			zap.String("detail", a.Detail), zap.String("plugin", a.Plugin), zap.Stringer("flags", s.flags))
	}
}

// suites are the IKE SA suites this SA accepts and offers: the peer's,
// or the interop plugins' for its family.
func (s *ikeSA) suites() []Proposal {
	if s.interop != nil && s.interop.Suites != nil {
		return s.interop.Suites
	}
	return s.peer.Suites
}

// espSuites are its children's suites, likewise.
func (s *ikeSA) espSuites() []esp.Suite {
	if s.interop != nil && s.interop.ESP != nil {
		return s.interop.ESP
	}
	return s.peer.ESP
}

// clientRekeysChildren reports whether a road warrior must rekey its
// children itself: Windows behind a NAT refuses the server's rekeys
// (error 13863) and makes its own.
func (s *ikeSA) clientRekeysChildren() bool {
	return s.peer.RemoteAccess != nil && s.flags.Has(ike.FlagClientRekeysChildren) && s.nat.PeerBehind
}

// modp2048First puts the suites with MODP2048 first, keeping their order
// otherwise: Windows takes the server's IKE SA rekey with MODP2048 even
// where its own offer had MODP1024 only.
func modp2048First(ours []Proposal) []Proposal {
	out := make([]Proposal, 0, len(ours))
	for _, first := range []bool{true, false} {
		for _, p := range ours {
			if (p.Group.Number == 14) == first {
				out = append(out, p)
			}
		}
	}
	return out
}

// MaxOfferedSuites bounds the suites an offer is read as: one proposal
// may list every cipher, hash and group at once (strongSwan's default
// offer is hundreds of combinations).
const MaxOfferedSuites = 64

// OfferedSuites reads an IKE SA offer as the suites it offers, proposal by
// proposal, in the peer's order of transforms, skipping what our
// catalogue does not name, at most MaxOfferedSuites.
func OfferedSuites(offered []SAProposal) []Proposal {
	var out []Proposal
	for _, o := range offered {
		if o.Protocol != ProtoIKE {
			continue
		}
		var ciphers []*alg.Cipher
		var integs, prfs []*alg.Hash
		var groups []*alg.Group
		for _, t := range o.Transforms {
			switch t.Type {
			case TransformEncr:
				if c := cipherOf(t); c != nil {
					ciphers = append(ciphers, c)
				}
			case TransformInteg, TransformPRF:
				if h := hashOf(t); h != nil && t.Type == TransformInteg {
					integs = append(integs, h)
				} else if h != nil {
					prfs = append(prfs, h)
				}
			case TransformDH:
				if g := groupOf(t.ID); g != nil {
					groups = append(groups, g)
				}
			}
		}
		for _, c := range ciphers {
			withIntegs := integs
			if c.AEAD {
				withIntegs = []*alg.Hash{nil} // none (RFC 5282 section 8)
			}
			for _, integ := range withIntegs {
				for _, prf := range prfs {
					for _, g := range groups {
						if len(out) == MaxOfferedSuites {
							return out
						}
						out = append(out, Proposal{Cipher: c, Integ: integ, PRF: prf, Group: g})
					}
				}
			}
		}
	}
	return out
}
