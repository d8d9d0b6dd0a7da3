package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/alg"
)

// ErrNoProposalChosen: nothing the peer offered is acceptable (RFC 2408
// NO-PROPOSAL-CHOSEN). The error text says what was offered.
var ErrNoProposalChosen = errors.New("no proposal chosen")

// Phase 1 attribute types and values (RFC 2409 appendix A).
const (
	p1Encryption   = 1
	p1Hash         = 2
	p1Auth         = 3
	p1Group        = 4
	p1LifeType     = 11
	p1LifeDuration = 12
	p1KeyLength    = 14

	lifeSeconds   = 1
	lifeKilobytes = 2

	keyIKE = 1 // phase 1 transform id KEY_IKE (RFC 2407 section 4.4.2)

	cipherAESCBC  = 7
	cipher3DESCBC = 5
)

// Authentication methods (RFC 2409 appendix A; 65001 is GSS-API only with
// the GSSAPI or MS NT5 vendor IDs, else it is XAUTH's: see gss.go).
const (
	AuthPSK      = 1
	AuthRSASig   = 3
	AuthECDSA256 = 9 // RFC 4754
	AuthECDSA384 = 10
	AuthECDSA521 = 11
	AuthGSS      = 65001
)

// Phase1 is a phase 1 transform: what an IKE SA uses.
type Phase1 struct {
	Cipher   uint16 // attribute value: 7 AES-CBC, 5 3DES
	KeyBits  int
	Hash     uint16
	Group    uint16
	Auth     uint16
	Lifetime time.Duration // 0: none given
}

func (p Phase1) String() string {
	c := fmt.Sprintf("cipher%d", p.Cipher)
	switch p.Cipher {
	case cipherAESCBC:
		c = fmt.Sprintf("aes%d", p.KeyBits)
	case cipher3DESCBC:
		c = "3des"
	case 1:
		c = "des" // named so that refusals and interop plugins can read it
	}
	h := map[uint16]string{1: "md5", HashSHA1: "sha1", HashSHA256: "sha256", HashSHA384: "sha384", HashSHA512: "sha512"}[p.Hash]
	if h == "" {
		h = fmt.Sprintf("hash%d", p.Hash)
	}
	g := fmt.Sprintf("group%d", p.Group)
	if p.Group == 1 {
		g = "modp768"
	}
	for _, grp := range alg.Groups() {
		if grp.Number == p.Group {
			g = grp.Name
		}
	}
	return c + "-" + h + "-" + g
}

// phase1Of converts a configured proposal.
func phase1Of(p Proposal, auth uint16, life time.Duration) Phase1 {
	c := uint16(cipherAESCBC)
	if p.Cipher.Name == "3des" {
		c = cipher3DESCBC
	}
	return Phase1{Cipher: c, KeyBits: p.Cipher.KeyBits, Hash: p.Hash.Attribute, Group: p.Group.Number, Auth: auth, Lifetime: life}
}

func (p Phase1) transform(n uint8) Transform {
	attrs := []Attribute{BasicAttr(p1Encryption, p.Cipher)}
	if p.Cipher == cipherAESCBC {
		attrs = append(attrs, BasicAttr(p1KeyLength, uint16(p.KeyBits)))
	}
	attrs = append(attrs, BasicAttr(p1Hash, p.Hash), BasicAttr(p1Auth, p.Auth), BasicAttr(p1Group, p.Group))
	if p.Lifetime > 0 {
		attrs = append(attrs, BasicAttr(p1LifeType, lifeSeconds), UintAttr(p1LifeDuration, uint64(p.Lifetime/time.Second)))
	}
	return Transform{Number: n, ID: keyIKE, Attributes: attrs}
}

// Phase1Offer is the initiator's SA payload: one ISAKMP proposal with a
// transform per configured proposal and auth method (RFC 2409 section 5),
// methods in the rule's order, each with every proposal in order.
func Phase1Offer(props []Proposal, auths []uint16, life time.Duration) *SA {
	p := SAProposal{Number: 1, Protocol: ProtoISAKMP}
	for _, auth := range auths {
		for _, pr := range props {
			p.Transforms = append(p.Transforms, phase1Of(pr, auth, life).transform(uint8(len(p.Transforms)+1)))
		}
	}
	return &SA{DOI: DOIIPsec, Situation: SitIdentityOnly, Proposals: []SAProposal{p}}
}

// phase1Offer is the SA payload an initiator sends this peer.
func (p *PeerConfig) phase1Offer() *SA {
	if len(p.Offer) == 0 {
		return Phase1Offer(p.Proposals, p.Auth, p.Lifetime)
	}
	return TransformOffer(p.Offer)
}

// TransformOffer is a phase 1 SA payload with exactly these transforms, in
// order: one ISAKMP proposal, transforms numbered from 1.
func TransformOffer(ts []Phase1) *SA {
	sp := SAProposal{Number: 1, Protocol: ProtoISAKMP}
	for i, o := range ts {
		sp.Transforms = append(sp.Transforms, o.transform(uint8(i+1)))
	}
	return &SA{DOI: DOIIPsec, Situation: SitIdentityOnly, Proposals: []SAProposal{sp}}
}

// acceptPhase1Reply checks the responder's choice against our offer.
func (p *PeerConfig) acceptPhase1Reply(reply *SA) (Phase1, error) {
	if len(p.Offer) == 0 {
		return AcceptPhase1Reply(reply, p.Proposals, p.Auth)
	}
	if len(reply.Proposals) != 1 || len(reply.Proposals[0].Transforms) != 1 {
		return Phase1{}, fmt.Errorf("%w: the responder must choose one transform", ErrNoProposalChosen)
	}
	got, err := parsePhase1(reply.Proposals[0].Transforms[0])
	if err != nil {
		return Phase1{}, fmt.Errorf("%w: responder's choice: %v", ErrNoProposalChosen, err)
	}
	for _, o := range p.Offer {
		if got.same(o) {
			return got, nil
		}
	}
	return Phase1{}, fmt.Errorf("%w: the responder chose %v/%s, which we did not offer", ErrNoProposalChosen, got, MethodName(got.Auth))
}

// parsePhase1 reads a phase 1 transform. Unknown attribute types make it
// unacceptable (RFC 2409 section 5: all attributes must be understood).
func parsePhase1(t Transform) (Phase1, error) {
	if t.ID != keyIKE {
		return Phase1{}, fmt.Errorf("transform id %d, want KEY_IKE", t.ID)
	}
	var p Phase1
	lifeType := uint64(0)
	for _, a := range t.Attributes {
		if a.Type == AttrGSSIdentity || a.Type == AttrGSSIdentityWin2k {
			continue // a principal name, read by main mode (gss.go)
		}
		v, ok := a.Uint()
		if !ok {
			return Phase1{}, fmt.Errorf("attribute %d: bad value", a.Type)
		}
		switch a.Type {
		case p1Encryption:
			p.Cipher = uint16(v)
		case p1Hash:
			p.Hash = uint16(v)
		case p1Auth:
			p.Auth = uint16(v)
		case p1Group:
			p.Group = uint16(v)
		case p1KeyLength:
			p.KeyBits = int(v)
		case p1LifeType:
			lifeType = v
		case p1LifeDuration:
			if lifeType == lifeSeconds && v > 0 {
				p.Lifetime = time.Duration(min(v, 1<<32)) * time.Second
			}
			// Kilobyte lifetimes for IKE SAs are accepted and not
			// enforced, as other implementations do.
		default:
			return Phase1{}, fmt.Errorf("attribute %d not understood", a.Type)
		}
	}
	if p.Cipher == cipher3DESCBC && p.KeyBits == 0 {
		p.KeyBits = 192
	}
	if p.Cipher == 1 && p.KeyBits == 0 {
		p.KeyBits = 64 // DES: never chosen, but compared when offered
	}
	return p, nil
}

// same compares everything but the lifetime.
func (p Phase1) same(q Phase1) bool {
	return p.Cipher == q.Cipher && p.KeyBits == q.KeyBits && p.Hash == q.Hash && p.Group == q.Group && p.Auth == q.Auth
}

// SelectPhase1 picks, in our configured order, the first of our auth
// methods and proposals that the initiator offered (the rule's order
// decides, not the initiator's: the first method we can do wins). It returns the transform and the SA payload to answer
// with: the initiator's transform, unchanged (RFC 2408 section 4.2).
func SelectPhase1(offered *SA, ours []Proposal, auths []uint16) (Phase1, *SA, error) {
	if len(offered.Proposals) != 1 || offered.Proposals[0].Protocol != ProtoISAKMP {
		return Phase1{}, nil, fmt.Errorf("%w: phase 1 needs one ISAKMP proposal, got %d", ErrNoProposalChosen, len(offered.Proposals))
	}
	prop := offered.Proposals[0]
	var seen []string
	parsed := make([]Phase1, len(prop.Transforms))
	valid := make([]bool, len(prop.Transforms))
	for i, t := range prop.Transforms {
		p, err := parsePhase1(t)
		if err != nil {
			seen = append(seen, fmt.Sprintf("#%d (%v)", t.Number, err))
			continue
		}
		parsed[i], valid[i] = p, true
		seen = append(seen, fmt.Sprintf("%v/%s", p, MethodName(p.Auth)))
	}
	for _, auth := range auths {
		for _, o := range ours {
			want := phase1Of(o, auth, 0)
			for i := range parsed {
				if valid[i] && parsed[i].same(want) {
					reply := &SA{DOI: offered.DOI, Situation: offered.Situation, Proposals: []SAProposal{{Number: prop.Number,
						Protocol: ProtoISAKMP, SPI: prop.SPI, Transforms: []Transform{prop.Transforms[i]}}}}
					return parsed[i], reply, nil
				}
			}
		}
	}
	var mine []string
	for _, a := range auths {
		mine = append(mine, MethodName(a))
	}
	return Phase1{}, nil, fmt.Errorf("%w: peer offered %s; we accept %s", ErrNoProposalChosen, strings.Join(seen, ", "), strings.Join(mine, ", "))
}

// AcceptPhase1Reply checks the responder's choice against what we offered.
func AcceptPhase1Reply(reply *SA, offered []Proposal, auths []uint16) (Phase1, error) {
	if len(reply.Proposals) != 1 || len(reply.Proposals[0].Transforms) != 1 {
		return Phase1{}, fmt.Errorf("%w: the responder must choose one transform", ErrNoProposalChosen)
	}
	p, err := parsePhase1(reply.Proposals[0].Transforms[0])
	if err != nil {
		return Phase1{}, fmt.Errorf("%w: responder's choice: %v", ErrNoProposalChosen, err)
	}
	for _, auth := range auths {
		for _, o := range offered {
			if p.same(phase1Of(o, auth, 0)) {
				return p, nil
			}
		}
	}
	return Phase1{}, fmt.Errorf("%w: the responder chose %v/%s, which we did not offer", ErrNoProposalChosen, p, MethodName(p.Auth))
}

// Phase 2 attribute types and values (RFC 2407 section 4.5, RFC 3947).
const (
	p2LifeType     = 1
	p2LifeDuration = 2
	p2Group        = 3
	p2Encap        = 4
	p2Auth         = 5
	p2KeyLength    = 6

	EncapTunnel            = 1
	EncapTransport         = 2
	EncapUDPTunnel         = 3 // RFC 3947
	EncapUDPTransport      = 4
	EncapUDPTunnelDraft    = 61443 // draft-ietf-ipsec-nat-t-ike
	EncapUDPTransportDraft = 61444
)

// Phase2 is a negotiated quick mode SA bundle for ESP.
type Phase2 struct {
	Suite    esp.Suite
	Encap    uint16 // one of the Encap values
	Group    uint16 // PFS group, 0 for none
	Lifetime time.Duration
	LifeKB   uint64
	SPI      uint32 // the SPI of the proposal it came from
}

// String names the bundle as operators read it: "aes256-sha1
// (udp-transport, no PFS)".
func (p Phase2) String() string {
	return fmt.Sprintf("%v (%s, %s)", p.Suite, EncapName(p.Encap), PFSName(p.Group))
}

var encapNames = map[uint16]string{EncapTunnel: "tunnel", EncapTransport: "transport", EncapUDPTunnel: "udp-tunnel",
	EncapUDPTransport: "udp-transport", EncapUDPTunnelDraft: "udp-tunnel (NAT-T draft)", EncapUDPTransportDraft: "udp-transport (NAT-T draft)"}

// EncapName names an encapsulation mode attribute (RFC 2407 section 4.5,
// RFC 3947 section 5.2).
func EncapName(e uint16) string {
	if n, ok := encapNames[e]; ok {
		return n
	}
	return fmt.Sprintf("encapsulation mode %d", e)
}

// PFSName names a quick mode's PFS group: "no PFS" for 0.
func PFSName(group uint16) string {
	if group == 0 {
		return "no PFS"
	}
	return "PFS " + GroupName(group)
}

// Tunnel reports whether the encapsulation is a tunnel mode.
func (p Phase2) Tunnel() bool {
	return p.Encap == EncapTunnel || p.Encap == EncapUDPTunnel || p.Encap == EncapUDPTunnelDraft
}

// UDP reports whether ESP is UDP-encapsulated.
func (p Phase2) UDP() bool { return p.Encap != EncapTunnel && p.Encap != EncapTransport }

func keyBitsAttr(s esp.Suite) int {
	if s.Encryption.Name == "3des" || s.Encryption.Name == "null" {
		return 0
	}
	return s.Encryption.KeyBits
}

func (p Phase2) transform(n uint8) Transform {
	attrs := []Attribute{BasicAttr(p2Encap, p.Encap)}
	if p.Suite.Integrity != nil {
		attrs = append(attrs, BasicAttr(p2Auth, p.Suite.Integrity.AuthAlgorithm))
	}
	if kb := keyBitsAttr(p.Suite); kb != 0 {
		attrs = append(attrs, BasicAttr(p2KeyLength, uint16(kb)))
	}
	if p.Group != 0 {
		attrs = append(attrs, BasicAttr(p2Group, p.Group))
	}
	attrs = appendLifeAttrs(attrs, p.Lifetime, p.LifeKB)
	return Transform{Number: n, ID: uint8(p.Suite.Encryption.TransformID), Attributes: attrs}
}

// appendLifeAttrs adds the SA Life Type/Duration pairs (RFC 2407 section
// 4.5) for the limits that are set.
func appendLifeAttrs(attrs []Attribute, life time.Duration, kb uint64) []Attribute {
	if life > 0 {
		attrs = append(attrs, BasicAttr(p2LifeType, lifeSeconds), UintAttr(p2LifeDuration, uint64(life/time.Second)))
	}
	if kb > 0 {
		attrs = append(attrs, BasicAttr(p2LifeType, lifeKilobytes), UintAttr(p2LifeDuration, kb))
	}
	return attrs
}

// DefaultPhase2Lifetime is an IPsec SA's lifetime when the proposal names
// none (RFC 2407 section 4.5).
const DefaultPhase2Lifetime = 8 * time.Hour

// ResponderLifetime is the RESPONDER-LIFETIME notify (RFC 2407 section
// 4.6.3.1) with which a responder that accepted a proposal tells the
// initiator the shorter limits it will keep: SPI is the responder's
// inbound SPI, life and kb the limits to report (0: not reported).
func ResponderLifetime(spi uint32, life time.Duration, kb uint64) *Notify {
	return &Notify{DOI: DOIIPsec, Protocol: ProtoESP, Kind: NotifyResponderLifetime,
		SPI: binary.BigEndian.AppendUint32(nil, spi), Data: appendAttributes(nil, appendLifeAttrs(nil, life, kb))}
}

// Phase2Offer is the quick mode SA payload: one ESP proposal per suite,
// in order, each with our inbound SPI.
func Phase2Offer(suites []esp.Suite, spi uint32, encap, group uint16, life time.Duration, lifeKB uint64) *SA {
	sa := &SA{DOI: DOIIPsec, Situation: SitIdentityOnly}
	for i, s := range suites {
		p := Phase2{Suite: s, Encap: encap, Group: group, Lifetime: life, LifeKB: lifeKB}
		sa.Proposals = append(sa.Proposals, SAProposal{Number: uint8(i + 1), Protocol: ProtoESP,
			SPI: binary.BigEndian.AppendUint32(nil, spi), Transforms: []Transform{p.transform(1)}})
	}
	return sa
}

func parsePhase2(prop SAProposal, t Transform) (Phase2, error) {
	if prop.Protocol != ProtoESP {
		return Phase2{}, fmt.Errorf("%s is not supported in quick mode", protoName(prop.Protocol))
	}
	var keyBits int
	var auth uint16
	p := Phase2{SPI: binary.BigEndian.Uint32(prop.SPI)}
	lifeType := uint64(0)
	for _, a := range t.Attributes {
		v, ok := a.Uint()
		if !ok {
			return Phase2{}, fmt.Errorf("attribute %d: bad value", a.Type)
		}
		switch a.Type {
		case p2LifeType:
			lifeType = v
		case p2LifeDuration:
			switch lifeType {
			case lifeSeconds:
				p.Lifetime = time.Duration(min(v, 1<<32)) * time.Second
			case lifeKilobytes:
				p.LifeKB = v
			}
		case p2Group:
			p.Group = uint16(v)
		case p2Encap:
			p.Encap = uint16(v)
		case p2Auth:
			auth = uint16(v)
		case p2KeyLength:
			keyBits = int(v)
		default:
			return Phase2{}, fmt.Errorf("attribute %d not understood", a.Type)
		}
	}
	s, err := esp.LookupESP(uint16(t.ID), keyBits, auth)
	if err != nil {
		return Phase2{}, err
	}
	p.Suite = s
	if p.Encap == 0 {
		p.Encap = EncapTunnel // unspecified is "host-dependent" (RFC 2407 section 4.5): ours is tunnel
	}
	return p, nil
}

// SelectPhase2 picks, in our order, the first suite the initiator offered
// with an acceptable encapsulation and the PFS group we require (0: no
// PFS). The reply proposal carries the initiator's transform unchanged;
// the caller puts our SPI in it.
func SelectPhase2(offered *SA, ours []esp.Suite, encapOK func(uint16) bool, group uint16) (Phase2, SAProposal, error) {
	var seen []string
	for _, s := range ours {
		for _, prop := range offered.Proposals {
			for _, t := range prop.Transforms {
				p, err := parsePhase2(prop, t)
				if err != nil {
					continue
				}
				if p.Suite.String() != s.String() || !encapOK(p.Encap) || p.Group != group {
					continue
				}
				return p, SAProposal{Number: prop.Number, Protocol: prop.Protocol, SPI: prop.SPI, Transforms: []Transform{t}}, nil
			}
		}
	}
	for _, prop := range offered.Proposals {
		for _, t := range prop.Transforms {
			if p, err := parsePhase2(prop, t); err != nil {
				seen = append(seen, fmt.Sprintf("#%d (%v)", prop.Number, err))
			} else {
				seen = append(seen, p.String())
			}
		}
	}
	return Phase2{}, SAProposal{}, fmt.Errorf("%w: peer offered %s", ErrNoProposalChosen, strings.Join(seen, ", "))
}
