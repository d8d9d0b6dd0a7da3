package ikev2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/gatehouse/gatehouse/ike/alg"
	"github.com/gatehouse/gatehouse/ike/clients"
)

// The IKE_SA_INIT exchange (RFC 7296 section 1.2), as strongSwan's
// ike_init task does it: the initiator offers suites, a key exchange, a
// nonce and NAT detection; the responder picks a suite, or asks for
// another group (INVALID_KE_PAYLOAD) or a cookie (COOKIE); both derive
// the IKE SA's keys.
//
//	Initiator                         Responder
//	HDR, [N(COOKIE),] SAi1, KEi, Ni,
//	  N(NAT_D_SRC), N(NAT_D_DST),
//	  N(FRAGMENTATION), N(SIG_HASH)  -->
//	                                  <--  HDR, SAr1, KEr, Nr, N(NAT_D_SRC),
//	                                         N(NAT_D_DST), N(FRAGMENTATION),
//	                                         N(SIG_HASH)
//	                                  <--  or HDR, N(INVALID_KE_PAYLOAD / COOKIE /
//	                                         NO_PROPOSAL_CHOSEN)

// NonceLen is the length of our nonces: at least half the largest PRF
// key (section 2.10), and the 32 bytes strongSwan sends.
const NonceLen = 32

// Hash algorithms for RFC 7427 signatures we announce: SHA2-256, SHA2-384
// and SHA2-512 (RFC 7427 section 7).
var sigHashes = []byte{0, 2, 0, 3, 0, 4}

// NotifyError is a refusal the responder answers with a notify (section
// 2.21.1), and what the initiator reports when it gets one.
type NotifyError struct {
	Kind NotifyType
	Data []byte
	Why  string
}

func (e *NotifyError) Error() string { return fmt.Sprintf("%v: %s", e.Kind, e.Why) }

// refusal is the first error notify of a response, as a *NotifyError
// (section 3.10.1: an error type we do not know fails the request too),
// or nil. The return type is error so that nil stays nil.
func refusal(ps []Payload, why string) error {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.Kind.IsError() {
			return &NotifyError{Kind: n.Kind, Data: n.Data, Why: why}
		}
	}
	return nil
}

// ErrRetry: the responder asked for another group or a cookie; the
// initiator sends its request again (Request), as a new exchange with
// message ID 0.
var ErrRetry = errors.New("IKE_SA_INIT to be sent again")

// ikeInit is one side of IKE_SA_INIT.
type ikeInit struct {
	initiator  bool
	ours       []Proposal
	rand       io.Reader
	spii, spir SPI
	group      uint16 // the initiator's KE group
	dh         alg.DH
	ni, nr     []byte
	cookie     []byte
	retried    bool // the initiator changed group once already

	// The outcome.
	chosen          Proposal
	nat             NAT
	fragmentation   bool // the peer supports RFC 7383 fragmentation
	signatureHashes bool // the peer supports RFC 7427 signatures
	keys            *Keys
	skeyseed        []byte
}

func (t *ikeInit) newDH(group uint16) error {
	if t.dh != nil {
		t.dh.Wipe()
	}
	var err error
	t.dh, err = alg.NewDH(group, t.rand)
	t.group = group
	return err
}

// newInitiator starts an initiator's IKE_SA_INIT with our suites; the
// key exchange uses the first suite's group.
func newInitiator(ours []Proposal, spii SPI, rand io.Reader) (*ikeInit, error) {
	if len(ours) == 0 {
		return nil, errors.New("IKE_SA_INIT: no suites to offer")
	}
	t := &ikeInit{initiator: true, ours: ours, rand: rand, spii: spii, ni: make([]byte, NonceLen)}
	if _, err := io.ReadFull(rand, t.ni); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return t, t.newDH(ours[0].Group.Number)
}

// request is the initiator's message, from local to remote.
func (t *ikeInit) request(local, remote netip.AddrPort) []Payload {
	sa := &SA{}
	for i, p := range t.ours {
		sa.Proposals = append(sa.Proposals, SAProposal{Num: uint8(i + 1), Protocol: ProtoIKE, Transforms: p.Transforms()})
	}
	var ps []Payload
	if t.cookie != nil {
		ps = append(ps, &Notify{Kind: NotifyCookie, Data: t.cookie}) // first (section 2.6)
	}
	ps = append(ps, sa, &KE{Group: t.group, Data: t.dh.Public()}, &Nonce{Data: t.ni})
	ps = append(ps, NATNotifies(t.spii, SPI{}, local, remote)...)
	return append(ps, &Notify{Kind: NotifyFragmentationSupported}, &Notify{Kind: NotifySignatureHashAlgorithms, Data: sigHashes})
}

// respond is the responder's answer to a request from remote to local:
// the response payloads, or a *NotifyError to answer with. With cookies
// set, a request without a good cookie is answered with one (the caller
// passes cookies only while too many IKE SAs are half open).
func respond(ours []Proposal, req *Message, local, remote netip.AddrPort, spir SPI, cookies *Cookies, rand io.Reader) (*ikeInit, []Payload, error) {
	sa, _ := Find(req.Payloads, PayloadSA).(*SA)
	ke, _ := Find(req.Payloads, PayloadKE).(*KE)
	ni, _ := Find(req.Payloads, PayloadNonce).(*Nonce)
	if sa == nil || ke == nil || ni == nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: "IKE_SA_INIT without SA, KE or Nonce"}
	}
	if cookies != nil {
		c := Notifies(req.Payloads, NotifyCookie)
		if len(c) == 0 || !cookies.Check(c[0].Data, ni.Data, remote.Addr(), req.SPIi) {
			return nil, nil, &NotifyError{Kind: NotifyCookie, Data: cookies.Make(ni.Data, remote.Addr(), req.SPIi), Why: "too many half-open IKE SAs: a cookie is asked for"}
		}
	}
	chosenSA, suite, err := Choose(sa.Proposals, ours, nil)
	if err != nil {
		return nil, nil, &NotifyError{Kind: NotifyNoProposalChosen, Why: err.Error() + modp1024Hint(sa.Proposals)}
	}
	if ke.Group != suite.Group.Number {
		// Section 1.2: the initiator guessed the group wrong; say which.
		return nil, nil, &NotifyError{Kind: NotifyInvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, suite.Group.Number),
			Why: fmt.Sprintf("key exchange in %s, but %s was chosen", alg.GroupName(ke.Group), suite.Group.Name)}
	}
	t := &ikeInit{ours: ours, rand: rand, spii: req.SPIi, spir: spir, ni: ni.Data, nr: make([]byte, NonceLen), chosen: suite}
	if _, err := io.ReadFull(rand, t.nr); err != nil {
		return nil, nil, err
	}
	if err := t.newDH(suite.Group.Number); err != nil {
		return nil, nil, err
	}
	if t.nat, err = DetectNAT(req.Payloads, req.SPIi, SPI{}, local, remote); err != nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: err.Error()}
	}
	t.peerSupport(req.Payloads)
	if err := t.derive(ke.Data); err != nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: err.Error()}
	}
	ps := []Payload{&SA{Proposals: []SAProposal{chosenSA}}, &KE{Group: t.group, Data: t.dh.Public()}, &Nonce{Data: t.nr}}
	ps = append(ps, NATNotifies(t.spii, t.spir, local, remote)...)
	if t.fragmentation {
		ps = append(ps, &Notify{Kind: NotifyFragmentationSupported})
	}
	if t.signatureHashes {
		ps = append(ps, &Notify{Kind: NotifySignatureHashAlgorithms, Data: sigHashes})
	}
	return t, ps, nil
}

// modp1024Hint says what to do when every proposal offers MODP1024 and
// nothing stronger: that is Windows' built-in IKEv2 client, which offers
// MODP2048 only when its registry tells it to.
func modp1024Hint(offered []SAProposal) string {
	for _, p := range offered {
		for _, t := range p.Transforms {
			if t.Type == TransformDH && t.ID != 2 {
				return ""
			}
		}
	}
	if len(offered) == 0 {
		return ""
	}
	return "; the peer offers MODP1024 only, as Windows' built-in client does by default: " + clients.WindowsDH2048Fix +
		", or allow legacy_algorithms and offer modp1024"
}

func (t *ikeInit) peerSupport(ps []Payload) {
	t.fragmentation = len(Notifies(ps, NotifyFragmentationSupported)) > 0
	t.signatureHashes = len(Notifies(ps, NotifySignatureHashAlgorithms)) > 0
}

// derive computes g^ir from the peer's public value, then SKEYSEED and
// the keys; the private value is wiped.
func (t *ikeInit) derive(peerPublic []byte) error {
	gir, err := t.dh.Shared(peerPublic)
	t.dh.Wipe()
	if err != nil {
		return fmt.Errorf("key exchange: %w", err)
	}
	defer clear(gir)
	prf := t.chosen.PRF.PRF()
	t.skeyseed = SKEYSEED(prf, t.ni, t.nr, gir)
	t.keys, err = DeriveKeys(prf, t.skeyseed, t.ni, t.nr, t.spii, t.spir, t.chosen.Cipher, t.chosen.Integ)
	return err
}

// response reads the responder's answer, from remote to local. ErrRetry
// means send the request again (another group, or a cookie); a
// *NotifyError is the responder's refusal.
func (t *ikeInit) response(resp *Message, local, remote netip.AddrPort) error {
	if n := Notifies(resp.Payloads, NotifyCookie); len(n) > 0 && t.cookie == nil {
		if len(n[0].Data) == 0 || len(n[0].Data) > 64 {
			return fmt.Errorf("%w: cookie of %d bytes", ErrMalformed, len(n[0].Data))
		}
		t.cookie = append([]byte(nil), n[0].Data...)
		return ErrRetry
	}
	if n := Notifies(resp.Payloads, NotifyInvalidKEPayload); len(n) > 0 {
		if len(n[0].Data) != 2 {
			return fmt.Errorf("%w: INVALID_KE_PAYLOAD of %d bytes", ErrMalformed, len(n[0].Data))
		}
		want := binary.BigEndian.Uint16(n[0].Data)
		if t.retried || want == t.group || !t.offersGroup(want) {
			return &NotifyError{Kind: NotifyInvalidKEPayload, Data: n[0].Data,
				Why: fmt.Sprintf("the responder wants %s, which we did not offer or already tried", alg.GroupName(want))}
		}
		t.retried = true
		if err := t.newDH(want); err != nil {
			return err
		}
		return ErrRetry
	}
	if err := refusal(resp.Payloads, "refused by the responder"); err != nil {
		return err
	}
	sa, _ := Find(resp.Payloads, PayloadSA).(*SA)
	ke, _ := Find(resp.Payloads, PayloadKE).(*KE)
	nr, _ := Find(resp.Payloads, PayloadNonce).(*Nonce)
	if sa == nil || ke == nil || nr == nil || len(sa.Proposals) != 1 {
		return fmt.Errorf("%w: IKE_SA_INIT response without one SA proposal, KE and Nonce", ErrMalformed)
	}
	suite, ok := acceptedSuite(sa.Proposals[0], t.ours)
	if !ok {
		return &NotifyError{Kind: NotifyNoProposalChosen, Why: "the responder chose a suite we did not offer: " + describe(sa.Proposals)}
	}
	if ke.Group != t.group || suite.Group.Number != t.group {
		return fmt.Errorf("%w: the responder's key exchange is in %s, ours in %s", ErrMalformed, alg.GroupName(ke.Group), alg.GroupName(t.group))
	}
	t.chosen, t.spir, t.nr = suite, resp.SPIr, nr.Data
	var err error
	if t.nat, err = DetectNAT(resp.Payloads, t.spii, t.spir, local, remote); err != nil {
		return err
	}
	t.peerSupport(resp.Payloads)
	return t.derive(ke.Data)
}

func (t *ikeInit) offersGroup(g uint16) bool {
	for _, p := range t.ours {
		if p.Group.Number == g {
			return true
		}
	}
	return false
}

// acceptedSuite finds the suite of ours the responder's proposal is,
// exactly.
func acceptedSuite(p SAProposal, ours []Proposal) (Proposal, bool) {
	if p.Protocol != ProtoIKE || len(p.SPI) != 0 {
		return Proposal{}, false
	}
	for _, s := range ours {
		want := s.Transforms()
		if len(want) == len(p.Transforms) && offers(p, want, s.Cipher.AEAD) {
			return s, true
		}
	}
	return Proposal{}, false
}
