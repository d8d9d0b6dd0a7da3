package ikev2

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/esp"
)

// childTransforms are an ESP suite's transforms (RFC 7296 section
// 3.3.2): the cipher (with Key Length for AES), the integrity algorithm
// unless AEAD, and no extended sequence numbers.
func childTransforms(s esp.Suite) []Transform {
	e := s.Encryption
	var ts []Transform
	switch id := e.IKEv2Encr(); {
	case e.KeyBits == 0 || e.Name == "3des" || id == 28: // NULL, 3DES and ChaCha20-Poly1305 have one key size
		ts = append(ts, Transform{Type: TransformEncr, ID: id})
	default:
		ts = append(ts, WithKeyBits(TransformEncr, id, uint16(e.KeyBits)))
	}
	if s.Integrity != nil {
		ts = append(ts, Transform{Type: TransformInteg, ID: s.Integrity.IKEv2ID})
	}
	return append(ts, Transform{Type: TransformESN, ID: 0})
}

// ChildProposals are our ESP offer for a child SA with inbound SPI spi,
// one proposal per suite.
func ChildProposals(suites []esp.Suite, spi uint32) []SAProposal {
	out := make([]SAProposal, len(suites))
	for i, su := range suites {
		out[i] = SAProposal{Num: uint8(i + 1), Protocol: ProtoESP, SPI: spiBytes(spi), Transforms: childTransforms(su)}
	}
	return out
}

// childWants are our ESP suites as choose sees them; with pfs set each
// also asks for that Diffie-Hellman group (CREATE_CHILD_SA with PFS).
func childWants(suites []esp.Suite, pfs uint16) []want {
	wants := make([]want, len(suites))
	for i, s := range suites {
		ts := childTransforms(s)
		if pfs != 0 {
			ts = append(ts, Transform{Type: TransformDH, ID: pfs})
		}
		wants[i] = want{ts: ts, aead: s.Encryption.AEAD, name: s.String()}
	}
	return wants
}

// ChooseChild is the responder's choice of an ESP suite (section 2.7), as
// Choose does for IKE SA suites; the answer carries our inbound SPI.
func ChooseChild(offered []SAProposal, ours []esp.Suite, spi uint32) (SAProposal, esp.Suite, error) {
	got, i, err := choose(offered, ProtoESP, childWants(ours, 0))
	if err != nil {
		return SAProposal{}, esp.Suite{}, err
	}
	got.SPI = spiBytes(spi)
	return got, ours[i], nil
}

// acceptedChild finds which of our suites (with the PFS group, if any)
// the responder's answer is, exactly.
func acceptedChild(p SAProposal, ours []esp.Suite, pfs uint16) (esp.Suite, bool) {
	if p.Protocol != ProtoESP || len(p.SPI) != 4 {
		return esp.Suite{}, false
	}
	for i, w := range childWants(ours, pfs) {
		if len(w.ts) == len(p.Transforms) && offers(p, w.ts, w.aead) {
			return ours[i], true
		}
	}
	return esp.Suite{}, false
}

// respondChild is the responder's side of a child SA in IKE_AUTH or
// CREATE_CHILD_SA: its suite (with the PFS group, if any), the peer's and
// our SPIs, the narrowed selectors and the mode, and the proposal that
// answers for it. The keys are the caller's: they come from different
// nonces in the two exchanges.
func respondChild(me AuthSide, inner []Payload, inSPI uint32, pfs uint16, what string) (*Child, SAProposal, *NotifyError) {
	sa, _ := Find(inner, PayloadSA).(*SA)
	tsi, _ := Find(inner, PayloadTSi).(*TS)
	tsr, _ := Find(inner, PayloadTSr).(*TS)
	if sa == nil || tsi == nil || tsr == nil {
		return nil, SAProposal{}, &NotifyError{Kind: NotifyInvalidSyntax, Why: what + " without SA, TSi or TSr"}
	}
	chosen, i, err := choose(sa.Proposals, ProtoESP, childWants(me.Suites, pfs))
	if err != nil {
		return nil, SAProposal{}, &NotifyError{Kind: NotifyNoProposalChosen, Why: err.Error()}
	}
	chosen.SPI = spiBytes(inSPI)
	c := &Child{Suite: me.Suites[i], InSPI: inSPI}
	for _, p := range sa.Proposals {
		if p.Num == chosen.Num && p.Protocol == ProtoESP {
			c.OutSPI = binary.BigEndian.Uint32(p.SPI) // verify() made it 4 bytes
			break
		}
	}
	// TSi is the initiator's side, which we reach; TSr is ours.
	c.TSi, c.TSr = Narrow(tsi.Selectors, me.Remote), Narrow(tsr.Selectors, me.Local)
	if len(c.TSi) == 0 || len(c.TSr) == 0 {
		return nil, SAProposal{}, &NotifyError{Kind: NotifyTSUnacceptable, Why: "the initiator's traffic selectors are outside what this tunnel protects"}
	}
	c.Transport = me.Transport && len(Notifies(inner, NotifyUseTransportMode)) > 0
	return c, chosen, nil
}

// acceptChild is the initiator's check of the responder's answer for a
// child: the suite it chose is one of ours, its selectors lie within
// ours, and it agreed to the mode we asked for.
func acceptChild(me AuthSide, inner []Payload, inSPI uint32, pfs uint16, what string) (*Child, error) {
	sa, _ := Find(inner, PayloadSA).(*SA)
	tsi, _ := Find(inner, PayloadTSi).(*TS)
	tsr, _ := Find(inner, PayloadTSr).(*TS)
	if sa == nil || tsi == nil || tsr == nil || len(sa.Proposals) != 1 {
		return nil, fmt.Errorf("%w: %s response without one SA proposal, TSi and TSr", ErrMalformed, what)
	}
	suite, ok := acceptedChild(sa.Proposals[0], me.Suites, pfs)
	if !ok {
		return nil, &NotifyError{Kind: NotifyNoProposalChosen, Why: "the responder chose an ESP suite we did not offer: " + describe(sa.Proposals)}
	}
	if !Within(tsi.Selectors, me.Local) || !Within(tsr.Selectors, me.Remote) {
		return nil, &NotifyError{Kind: NotifyTSUnacceptable, Why: "the responder's traffic selectors are not within ours"}
	}
	transport := len(Notifies(inner, NotifyUseTransportMode)) > 0
	if transport != me.Transport {
		return nil, &NotifyError{Kind: NotifyNoProposalChosen, Why: fmt.Sprintf("we asked for transport mode %v, the responder answered %v", me.Transport, transport)}
	}
	return &Child{Suite: suite, InSPI: inSPI, OutSPI: binary.BigEndian.Uint32(sa.Proposals[0].SPI), TSi: tsi.Selectors, TSr: tsr.Selectors,
		Transport: transport}, nil
}

// PrefixSelector is a traffic selector for a subnet, any protocol and
// port.
func PrefixSelector(p netip.Prefix) Selector {
	p = p.Masked()
	return Selector{EndPort: 65535, StartAddr: p.Addr(), EndAddr: lastAddr(p)}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Narrow is the responder's narrowing (section 2.9): the parts of the
// peer's selectors that fall inside ours, selector by selector; none
// means TS_UNACCEPTABLE.
func Narrow(theirs, ours []Selector) []Selector {
	var out []Selector
	for _, t := range theirs {
		for _, o := range ours {
			if t.StartAddr.Is4() != o.StartAddr.Is4() {
				continue
			}
			s := Selector{StartAddr: maxAddr(t.StartAddr, o.StartAddr), EndAddr: minAddr(t.EndAddr, o.EndAddr),
				StartPort: max(t.StartPort, o.StartPort), EndPort: min(t.EndPort, o.EndPort), Protocol: t.Protocol}
			switch {
			case o.Protocol != 0 && t.Protocol != 0 && o.Protocol != t.Protocol:
				continue
			case o.Protocol != 0:
				s.Protocol = o.Protocol
			}
			if s.EndAddr.Less(s.StartAddr) || s.StartPort > s.EndPort {
				continue
			}
			out = append(out, s)
		}
	}
	return out
}

func maxAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return b
	}
	return a
}

func minAddr(a, b netip.Addr) netip.Addr {
	if a.Less(b) {
		return a
	}
	return b
}

// Within reports whether every selector of got lies inside one of ours:
// what an initiator checks of the responder's narrowed answer.
func Within(got, ours []Selector) bool {
	for _, g := range got {
		n := Narrow([]Selector{g}, ours)
		if len(n) != 1 || n[0] != g {
			return false
		}
	}
	return len(got) > 0
}

// ChildKeys are a child SA's keys each way, cut from its KEYMAT (section
// 2.17): the initiator-to-responder encryption then integrity key, then
// the other direction's. Encryption keys carry the AEAD salt.
type ChildKeys struct {
	EncIR, IntegIR, EncRI, IntegRI []byte
}

// ChildKeyLen is how much KEYMAT a suite takes.
func ChildKeyLen(s esp.Suite) int {
	n := s.Encryption.KeyBits/8 + s.Encryption.SaltBytes
	if s.Integrity != nil {
		n += s.Integrity.KeyBytes
	}
	return 2 * n
}

// SplitChildKeys cuts KEYMAT for suite s.
func SplitChildKeys(keymat []byte, s esp.Suite) (ChildKeys, error) {
	if len(keymat) != ChildKeyLen(s) {
		return ChildKeys{}, fmt.Errorf("%w: %d bytes of KEYMAT for %s, which takes %d", ErrKeyLengths, len(keymat), s, ChildKeyLen(s))
	}
	enc, integ := s.Encryption.KeyBits/8+s.Encryption.SaltBytes, 0
	if s.Integrity != nil {
		integ = s.Integrity.KeyBytes
	}
	cut := func(n int) []byte {
		b := keymat[:n:n]
		keymat = keymat[n:]
		return b
	}
	var k ChildKeys
	k.EncIR, k.IntegIR, k.EncRI, k.IntegRI = cut(enc), cut(integ), cut(enc), cut(integ)
	return k, nil
}
