package ikev2

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/alg"
)

// The IKE_AUTH exchange with preshared keys or signatures, and the first
// child SA (RFC 7296 sections 1.2, 2.15 and 2.17). Both messages travel in
// an SK payload.
//
//	Initiator                         Responder
//	HDR, SK {IDi, [CERT,] [CERTREQ,] AUTH, [N(USE_TRANSPORT_MODE),]
//	  SAi2, TSi, TSr, N(INITIAL_CONTACT)}  -->
//	                                  <--  HDR, SK {IDr, [CERT,] AUTH, [N(USE_TRANSPORT_MODE),]
//	                                         SAr2, TSi, TSr}
//	                                  <--  or HDR, SK {IDr, AUTH, N(NO_PROPOSAL_CHOSEN /
//	                                         TS_UNACCEPTABLE)}: the IKE SA stands, no child
//	                                  <--  or HDR, SK {N(AUTHENTICATION_FAILED)}

// keyPad is the pad the preshared key is hashed with (section 2.15).
var keyPad = []byte("Key Pad for IKEv2")

// signedOctets is what AUTH covers (section 2.15): the sender's
// IKE_SA_INIT message as sent, the peer's nonce, and prf(SK_p, the body of
// the sender's ID payload).
func signedOctets(prf alg.PRF, message, peerNonce, skp []byte, id *ID) []byte {
	return append(append(append([]byte(nil), message...), peerNonce...), prf.Sum(skp, id.Body())...)
}

// pskAuth is AUTH for a preshared key: prf(prf(key, "Key Pad for
// IKEv2"), signed octets).
func pskAuth(prf alg.PRF, psk, octets []byte) []byte {
	return prf.Sum(prf.Sum(psk, keyPad), octets)
}

// AuthSide is one side's part in IKE_AUTH: its identity and key (or its
// signer and certificates), its ESP suites, and the traffic it protects
// (Local) and reaches (Remote).
type AuthSide struct {
	ID  *ID
	PSK []byte
	// Sign, when set, makes our AUTH by signature over the signed octets
	// (RFC 7427's form when digital is set: the peer announced signature
	// hashes); Certs, our chain ours first, go as CERT payloads, and a
	// CERTREQ asks for the peer's.
	Sign  func(octets []byte, digital bool) (*Auth, error)
	Certs [][]byte
	CAs   []byte // the CERTREQ's list: SHA-1 hashes of our CAs' keys

	Suites    []esp.Suite
	Local     []Selector
	Remote    []Selector
	Transport bool
	// CP, when set, goes in our IKE_AUTH request: a road warrior asks
	// for its address.
	CP *CP
	// Others: we hold other IKE SAs with the peer, so our IKE_AUTH
	// request carries no INITIAL_CONTACT (section 2.4), which would have
	// the peer drop them.
	Others bool
}

// CheckAuth verifies the peer's AUTH over the signed octets (section
// 2.15), made with the preshared key its identity maps to or with the key
// of its certificate chain (certs, its own first), and returns the
// preshared key when it used one: a responder answers with the same.
type CheckAuth func(prf alg.PRF, id *ID, auth *Auth, octets []byte, certs [][]byte) (psk []byte, err error)

// PSKCheck checks AUTH with the preshared key lookup gives for the
// peer's identity.
func PSKCheck(lookup func(*ID) ([]byte, error)) CheckAuth {
	return func(prf alg.PRF, id *ID, auth *Auth, octets []byte, _ [][]byte) ([]byte, error) {
		if auth.Method != AuthPSK {
			return nil, fmt.Errorf("AUTH method %d where a preshared key is configured", auth.Method)
		}
		key, err := lookup(id)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(auth.Data, pskAuth(prf, key, octets)) {
			return nil, errors.New("AUTH does not verify with the preshared key for its identity")
		}
		return key, nil
	}
}

// ourAuth is our AUTH payload over the signed octets: signed, or made
// with the preshared key.
func (t *ikeInit) ourAuth(me AuthSide, key []byte, octets []byte) (*Auth, error) {
	if me.Sign != nil && key == nil {
		return me.Sign(octets, t.signatureHashes)
	}
	if key == nil {
		return nil, errors.New("no preshared key and no signer for our AUTH")
	}
	prf := t.chosen.PRF.PRF()
	return &Auth{Method: AuthPSK, Data: pskAuth(prf, key, octets)}, nil
}

// certs are our CERT payloads.
func certPayloads(chain [][]byte) []Payload {
	var out []Payload
	for _, c := range chain {
		out = append(out, &Cert{Encoding: CertX509Sig, Data: c})
	}
	return out
}

// peerCerts are the X.509 certificates of the peer's CERT payloads.
func peerCerts(inner []Payload) [][]byte {
	var out [][]byte
	for _, p := range inner {
		if c, ok := p.(*Cert); ok && c.Encoding == CertX509Sig {
			out = append(out, c.Data)
		}
	}
	return out
}

// Child is a child SA both sides agreed on.
type Child struct {
	Suite         esp.Suite
	InSPI, OutSPI uint32
	Keys          ChildKeys // initiator-to-responder and back
	TSi, TSr      []Selector
	Transport     bool
}

func spiBytes(spi uint32) []byte { return binary.BigEndian.AppendUint32(nil, spi) }

// authRequest is the initiator's IKE_AUTH payloads; msg1 is its
// IKE_SA_INIT request as sent, inSPI the child's inbound SPI.
func (t *ikeInit) authRequest(me AuthSide, msg1 []byte, inSPI uint32) ([]Payload, error) {
	prf := t.chosen.PRF.PRF()
	id := &ID{T: PayloadIDi, IDType: me.ID.IDType, Data: me.ID.Data}
	auth, err := t.ourAuth(me, me.PSK, signedOctets(prf, msg1, t.nr, t.keys.Pi, id))
	if err != nil {
		return nil, fmt.Errorf("our AUTH: %w", err)
	}
	ps := append([]Payload{id}, certPayloads(me.Certs)...)
	if me.Sign != nil {
		// Peers that send their certificate only when asked are asked,
		// naming our CAs (section 3.7; none: any CA).
		ps = append(ps, &CertReq{Encoding: CertX509Sig, Authority: me.CAs})
	}
	ps = append(ps, auth)
	if me.CP != nil {
		ps = append(ps, me.CP, &Notify{Kind: NotifyMobikeSupported}) // a road warrior may roam (RFC 4555)
	}
	if me.Transport {
		ps = append(ps, &Notify{Kind: NotifyUseTransportMode})
	}
	ps = append(ps, &SA{Proposals: ChildProposals(me.Suites, inSPI)}, &TS{T: PayloadTSi, Selectors: me.Local}, &TS{T: PayloadTSr, Selectors: me.Remote})
	if !me.Others {
		ps = append(ps, &Notify{Kind: NotifyInitialContact})
	}
	return ps, nil
}

// authRespond checks the initiator's IKE_AUTH (inner, opened) with check
// and answers; msg1 and msg2 are the IKE_SA_INIT request and response as
// they were on the wire. We answer with the preshared key if the
// initiator used one, else with our signature. A child that cannot be
// made is answered with its notify beside IDr and AUTH (the IKE SA
// stands); a failed authentication with AUTHENTICATION_FAILED alone
// (*NotifyError).
func (t *ikeInit) authRespond(me AuthSide, check CheckAuth, inner []Payload, msg1, msg2 []byte, inSPI uint32) ([]Payload, *Child, error) {
	prf := t.chosen.PRF.PRF()
	idi, _ := Find(inner, PayloadIDi).(*ID)
	auth, _ := Find(inner, PayloadAuth).(*Auth)
	if idi == nil || auth == nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: "IKE_AUTH without IDi or AUTH"}
	}
	key, err := check(prf, idi, auth, signedOctets(prf, msg1, t.nr, t.keys.Pi, idi), peerCerts(inner))
	if err != nil {
		return nil, nil, &NotifyError{Kind: NotifyAuthenticationFailed, Why: fmt.Sprintf("the initiator's AUTH (method %d): %v", auth.Method, err)}
	}
	idr := &ID{T: PayloadIDr, IDType: me.ID.IDType, Data: me.ID.Data}
	ours, err := t.ourAuth(me, key, signedOctets(prf, msg2, t.ni, t.keys.Pr, idr))
	if err != nil {
		return nil, nil, &NotifyError{Kind: NotifyAuthenticationFailed, Why: fmt.Sprintf("our AUTH: %v", err)}
	}
	var ps []Payload
	if key == nil {
		ps = append([]Payload{idr}, certPayloads(me.Certs)...)
	} else {
		ps = []Payload{idr}
	}
	ps = append(ps, ours)
	child, chosen, refusal := respondChild(me, inner, inSPI, 0, "IKE_AUTH")
	if refusal == nil {
		refusal = t.childKeys(child)
	}
	if refusal != nil {
		return append(ps, &Notify{Kind: refusal.Kind}), nil, refusal
	}
	if child.Transport {
		ps = append(ps, &Notify{Kind: NotifyUseTransportMode})
	}
	return append(ps, &SA{Proposals: []SAProposal{chosen}}, &TS{T: PayloadTSi, Selectors: child.TSi}, &TS{T: PayloadTSr, Selectors: child.TSr}), child, nil
}

func (t *ikeInit) childKeys(c *Child) *NotifyError {
	km, err := ChildKeymat(t.chosen.PRF.PRF(), t.keys.D, nil, t.ni, t.nr, ChildKeyLen(c.Suite))
	if err == nil {
		c.Keys, err = SplitChildKeys(km, c.Suite)
	}
	if err != nil {
		return &NotifyError{Kind: NotifyNoProposalChosen, Why: err.Error()}
	}
	return nil
}

// authResponse checks the responder's IKE_AUTH answer (inner, opened)
// with check; msg2 is its IKE_SA_INIT response as it was on the wire.
func (t *ikeInit) authResponse(me AuthSide, check CheckAuth, inner []Payload, msg2 []byte, inSPI uint32) (*Child, error) {
	for _, p := range inner {
		if n, ok := p.(*Notify); ok && n.Kind == NotifyAuthenticationFailed {
			return nil, &NotifyError{Kind: n.Kind, Why: "the responder refused our authentication"}
		}
	}
	prf := t.chosen.PRF.PRF()
	idr, _ := Find(inner, PayloadIDr).(*ID)
	auth, _ := Find(inner, PayloadAuth).(*Auth)
	if idr == nil || auth == nil {
		return nil, fmt.Errorf("%w: IKE_AUTH response without IDr or AUTH", ErrMalformed)
	}
	if _, err := check(prf, idr, auth, signedOctets(prf, msg2, t.ni, t.keys.Pr, idr), peerCerts(inner)); err != nil {
		return nil, &NotifyError{Kind: NotifyAuthenticationFailed, Why: fmt.Sprintf("the responder's AUTH (method %d): %v", auth.Method, err)}
	}
	if err := refusal(inner, "the IKE SA is up, the child SA was refused"); err != nil {
		return nil, err
	}
	c, err := acceptChild(me, inner, inSPI, 0, "IKE_AUTH")
	if err != nil {
		return nil, err
	}
	if refusal := t.childKeys(c); refusal != nil {
		return nil, refusal
	}
	return c, nil
}
