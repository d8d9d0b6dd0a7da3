package ikev2

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// The CREATE_CHILD_SA exchange (RFC 7296 section 1.3), inside the IKE SA's
// SK payloads: a new child SA, a child's rekey (N(REKEY_SA) names the
// SA it replaces, section 1.3.3), optionally with a new Diffie-Hellman
// (PFS), and the IKE SA's own rekey (section 1.3.2).
//
//	Initiator                         Responder
//	HDR, SK {[N(REKEY_SA)], [N(USE_TRANSPORT_MODE)],
//	  SA, Ni, [KEi], TSi, TSr}  -->
//	                            <--   HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Nr, [KEr], TSi, TSr}
//	HDR, SK {SA, Ni, KEi}       -->   (the IKE SA)
//	                            <--   HDR, SK {SA, Nr, KEr}

// childExchange is one side of a CREATE_CHILD_SA for a child.
type childExchange struct {
	sa     *ikeSA
	me     AuthSide
	inSPI  uint32
	pfs    uint16 // the group for a new Diffie-Hellman; 0: none
	rekey  uint32 // the inbound SPI of the child being rekeyed; 0: a new child
	dh     alg.DH
	ni, nr []byte
}

func (x *childExchange) nonce() ([]byte, error) {
	n := make([]byte, NonceLen)
	_, err := io.ReadFull(x.sa.rand, n)
	return n, err
}

// request is the initiator's CREATE_CHILD_SA payloads for a child.
func (x *childExchange) request() ([]Payload, error) {
	var err error
	if x.ni, err = x.nonce(); err != nil {
		return nil, err
	}
	var ps []Payload
	if x.rekey != 0 {
		ps = append(ps, &Notify{Protocol: ProtoESP, SPI: spiBytes(x.rekey), Kind: NotifyRekeySA})
	}
	if x.me.Transport {
		ps = append(ps, &Notify{Kind: NotifyUseTransportMode})
	}
	props := ChildProposals(x.me.Suites, x.inSPI)
	if x.pfs != 0 {
		for i := range props {
			props[i].Transforms = append(props[i].Transforms, Transform{Type: TransformDH, ID: x.pfs})
		}
	}
	ps = append(ps, &SA{Proposals: props}, &Nonce{Data: x.ni})
	if x.pfs != 0 {
		if x.dh, err = alg.NewDH(x.pfs, x.sa.rand); err != nil {
			return nil, err
		}
		ps = append(ps, &KE{Group: x.pfs, Data: x.dh.Public()})
	}
	return append(ps, &TS{T: PayloadTSi, Selectors: x.me.Local}, &TS{T: PayloadTSr, Selectors: x.me.Remote}), nil
}

// respondChild answers a CREATE_CHILD_SA for a child: the response
// payloads and the child, or a *NotifyError to answer with (the IKE SA
// stands). Our PFS group, when set, must be the one the initiator's KE
// uses (else INVALID_KE_PAYLOAD naming ours).
func (sa *ikeSA) respondChild(me AuthSide, pfs uint16, req []Payload, inSPI uint32) ([]Payload, *Child, error) {
	x := &childExchange{sa: sa, me: me, inSPI: inSPI, pfs: pfs}
	ni, _ := Find(req, PayloadNonce).(*Nonce)
	ke, _ := Find(req, PayloadKE).(*KE)
	if ni == nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: "CREATE_CHILD_SA without a Nonce"}
	}
	c, chosen, refusal := respondChild(me, req, inSPI, pfs, "CREATE_CHILD_SA")
	if refusal != nil {
		return nil, nil, refusal
	}
	if pfs != 0 && (ke == nil || ke.Group != pfs) {
		return nil, nil, &NotifyError{Kind: NotifyInvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, pfs),
			Why: fmt.Sprintf("PFS in %s is required", alg.GroupName(pfs))}
	}
	x.ni = ni.Data
	var err error
	if x.nr, err = x.nonce(); err != nil {
		return nil, nil, err
	}
	var gir []byte
	var ps []Payload
	if c.Transport {
		ps = append(ps, &Notify{Kind: NotifyUseTransportMode})
	}
	ps = append(ps, &SA{Proposals: []SAProposal{chosen}}, &Nonce{Data: x.nr})
	if pfs != 0 {
		if x.dh, err = alg.NewDH(pfs, sa.rand); err != nil {
			return nil, nil, err
		}
		ps = append(ps, &KE{Group: pfs, Data: x.dh.Public()})
		if gir, err = x.shared(ke.Data); err != nil {
			return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: err.Error()}
		}
	}
	if err := x.keys(c, gir); err != nil {
		return nil, nil, err
	}
	return append(ps, &TS{T: PayloadTSi, Selectors: c.TSi}, &TS{T: PayloadTSr, Selectors: c.TSr}), c, nil
}

func (x *childExchange) shared(peer []byte) ([]byte, error) {
	gir, err := x.dh.Shared(peer)
	x.dh.Wipe()
	return gir, err
}

// keys cuts the child's keys from prf+(SK_d, [g^ir (new)] | Ni | Nr).
func (x *childExchange) keys(c *Child, gir []byte) error {
	defer clear(gir)
	km, err := ChildKeymat(x.sa.suite.PRF.PRF(), x.sa.keys.D, gir, x.ni, x.nr, ChildKeyLen(c.Suite))
	if err == nil {
		c.Keys, err = SplitChildKeys(km, c.Suite)
	}
	return err
}

// response reads the responder's answer to a child's CREATE_CHILD_SA.
func (x *childExchange) response(resp []Payload) (*Child, error) {
	if err := refusal(resp, "the responder refused the child SA"); err != nil {
		return nil, err
	}
	nr, _ := Find(resp, PayloadNonce).(*Nonce)
	ke, _ := Find(resp, PayloadKE).(*KE)
	if nr == nil {
		return nil, fmt.Errorf("%w: CREATE_CHILD_SA response without a Nonce", ErrMalformed)
	}
	c, err := acceptChild(x.me, resp, x.inSPI, x.pfs, "CREATE_CHILD_SA")
	if err != nil {
		return nil, err
	}
	x.nr = nr.Data
	var gir []byte
	if x.pfs != 0 {
		if ke == nil || ke.Group != x.pfs {
			return nil, fmt.Errorf("%w: CREATE_CHILD_SA response without a KE in %s", ErrMalformed, alg.GroupName(x.pfs))
		}
		if gir, err = x.shared(ke.Data); err != nil {
			return nil, err
		}
	}
	return c, x.keys(c, gir)
}

// ikeRekey is one side of the IKE SA's rekey: a new suite choice, new
// SPIs and new keys from prf(SK_d (old), g^ir (new) | Ni | Nr) (section
// 2.18).
type ikeRekey struct {
	sa      *ikeSA
	ours    []Proposal
	spi     SPI // our new SPI
	dh      alg.DH
	ni, nr  []byte
	group   uint16
	initSPI SPI // the initiator's new SPI (the new SA's SPIi)
}

// request is the initiator's payloads: SA with its new SPI, Ni, KEi in
// the first suite's group.
func (r *ikeRekey) request() ([]Payload, error) {
	r.ni = make([]byte, NonceLen)
	if _, err := io.ReadFull(r.sa.rand, r.ni); err != nil {
		return nil, err
	}
	r.group = r.ours[0].Group.Number
	var err error
	if r.dh, err = alg.NewDH(r.group, r.sa.rand); err != nil {
		return nil, err
	}
	sa := &SA{}
	for i, p := range r.ours {
		sa.Proposals = append(sa.Proposals, SAProposal{Num: uint8(i + 1), Protocol: ProtoIKE, SPI: r.spi[:], Transforms: p.Transforms()})
	}
	r.initSPI = r.spi
	return []Payload{sa, &Nonce{Data: r.ni}, &KE{Group: r.group, Data: r.dh.Public()}}, nil
}

// respondIKE answers the IKE SA's rekey: the response and the new SA's
// suite, SPIs (the initiator's, ours) and keys.
func (sa *ikeSA) respondIKE(ours []Proposal, mySPI SPI, req []Payload) ([]Payload, *RekeyedIKE, error) {
	offer, _ := Find(req, PayloadSA).(*SA)
	ni, _ := Find(req, PayloadNonce).(*Nonce)
	ke, _ := Find(req, PayloadKE).(*KE)
	if offer == nil || ni == nil || ke == nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: "IKE SA rekey without SA, Nonce or KE"}
	}
	chosen, suite, err := Choose(offer.Proposals, ours, mySPI[:])
	if err != nil {
		return nil, nil, &NotifyError{Kind: NotifyNoProposalChosen, Why: err.Error()}
	}
	if ke.Group != suite.Group.Number {
		return nil, nil, &NotifyError{Kind: NotifyInvalidKEPayload, Data: binary.BigEndian.AppendUint16(nil, suite.Group.Number),
			Why: fmt.Sprintf("key exchange in %s, but %s was chosen", alg.GroupName(ke.Group), suite.Group.Name)}
	}
	var theirs SPI
	for _, p := range offer.Proposals {
		if p.Num == chosen.Num && len(p.SPI) == 8 {
			copy(theirs[:], p.SPI)
		}
	}
	if theirs == (SPI{}) {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: "IKE SA rekey proposal without an 8-byte SPI"}
	}
	r := &ikeRekey{sa: sa, ni: ni.Data, nr: make([]byte, NonceLen), group: ke.Group}
	if _, err := io.ReadFull(sa.rand, r.nr); err != nil {
		return nil, nil, err
	}
	if r.dh, err = alg.NewDH(ke.Group, sa.rand); err != nil {
		return nil, nil, err
	}
	out, err := r.derive(suite, ke.Data, theirs, mySPI)
	if err != nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: err.Error()}
	}
	return []Payload{&SA{Proposals: []SAProposal{chosen}}, &Nonce{Data: r.nr}, &KE{Group: ke.Group, Data: r.dh.Public()}}, out, nil
}

// RekeyedIKE is the new IKE SA a rekey made.
type RekeyedIKE struct {
	Suite      Proposal
	SPIi, SPIr SPI
	Keys       *Keys
}

func (r *ikeRekey) derive(suite Proposal, peerPublic []byte, spii, spir SPI) (*RekeyedIKE, error) {
	gir, err := r.dh.Shared(peerPublic)
	r.dh.Wipe()
	if err != nil {
		return nil, err
	}
	defer clear(gir)
	prf := suite.PRF.PRF()
	// The old SA's PRF keys SKEYSEED; the new suite's takes it from there.
	skeyseed := RekeySKEYSEED(r.sa.suite.PRF.PRF(), r.sa.keys.D, gir, r.ni, r.nr)
	keys, err := DeriveKeys(prf, skeyseed, r.ni, r.nr, spii, spir, suite.Cipher, suite.Integ)
	if err != nil {
		return nil, err
	}
	return &RekeyedIKE{Suite: suite, SPIi: spii, SPIr: spir, Keys: keys}, nil
}

// response reads the responder's answer to the IKE SA's rekey.
func (r *ikeRekey) response(resp []Payload) (*RekeyedIKE, error) {
	if err := refusal(resp, "the responder refused the IKE SA rekey"); err != nil {
		return nil, err
	}
	sa, _ := Find(resp, PayloadSA).(*SA)
	nr, _ := Find(resp, PayloadNonce).(*Nonce)
	ke, _ := Find(resp, PayloadKE).(*KE)
	if sa == nil || nr == nil || ke == nil || len(sa.Proposals) != 1 || len(sa.Proposals[0].SPI) != 8 {
		return nil, fmt.Errorf("%w: IKE SA rekey response without one SA proposal with an SPI, Nonce and KE", ErrMalformed)
	}
	p := sa.Proposals[0]
	p.SPI = nil // compared by transforms; the new SPI is read below
	suite, ok := acceptedSuite(p, r.ours)
	if !ok || ke.Group != r.group || suite.Group.Number != r.group {
		return nil, &NotifyError{Kind: NotifyNoProposalChosen, Why: "the responder chose a suite or group we did not offer: " + describe(sa.Proposals)}
	}
	var spir SPI
	copy(spir[:], sa.Proposals[0].SPI)
	r.nr = nr.Data
	return r.derive(suite, ke.Data, r.initSPI, spir)
}
