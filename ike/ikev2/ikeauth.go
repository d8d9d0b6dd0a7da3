package ikev2

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/alg"
)

// The IKE_AUTH exchange with preshared keys, and the first child SA
// (RFC 7296 sections 1.2, 2.15 and 2.17). Both messages travel in an SK
// payload.
//
//	Initiator                         Responder
//	HDR, SK {IDi, AUTH, [N(USE_TRANSPORT_MODE),]
//	  SAi2, TSi, TSr, N(INITIAL_CONTACT)}  -->
//	                                  <--  HDR, SK {IDr, AUTH, [N(USE_TRANSPORT_MODE),]
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

// AuthSide is one side's part in IKE_AUTH: its identity and key, its
// ESP suites, and the traffic it protects (Local) and reaches (Remote).
type AuthSide struct {
	ID        *ID
	PSK       []byte
	Suites    []esp.Suite
	Local     []Selector
	Remote    []Selector
	Transport bool
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
func (t *ikeInit) authRequest(me AuthSide, msg1 []byte, inSPI uint32) []Payload {
	prf := t.chosen.PRF.PRF()
	id := &ID{T: PayloadIDi, IDType: me.ID.IDType, Data: me.ID.Data}
	ps := []Payload{id, &Auth{Method: AuthPSK, Data: pskAuth(prf, me.PSK, signedOctets(prf, msg1, t.nr, t.keys.Pi, id))}}
	if me.Transport {
		ps = append(ps, &Notify{Kind: NotifyUseTransportMode})
	}
	return append(ps, &SA{Proposals: ChildProposals(me.Suites, inSPI)}, &TS{T: PayloadTSi, Selectors: me.Local},
		&TS{T: PayloadTSr, Selectors: me.Remote}, &Notify{Kind: NotifyInitialContact})
}

// authRespond checks the initiator's IKE_AUTH (inner, opened), with the
// preshared key psk gives for its identity, and answers; msg1 and msg2
// are the IKE_SA_INIT request and response as they were on the wire. A
// child that cannot be made is answered with its notify beside IDr and
// AUTH (the IKE SA stands); a failed authentication with
// AUTHENTICATION_FAILED alone (*NotifyError).
func (t *ikeInit) authRespond(me AuthSide, psk func(*ID) ([]byte, error), inner []Payload, msg1, msg2 []byte, inSPI uint32) ([]Payload, *Child, error) {
	prf := t.chosen.PRF.PRF()
	idi, _ := Find(inner, PayloadIDi).(*ID)
	auth, _ := Find(inner, PayloadAuth).(*Auth)
	if idi == nil || auth == nil {
		return nil, nil, &NotifyError{Kind: NotifyInvalidSyntax, Why: "IKE_AUTH without IDi or AUTH"}
	}
	key, err := psk(idi)
	if err != nil || auth.Method != AuthPSK ||
		!hmac.Equal(auth.Data, pskAuth(prf, key, signedOctets(prf, msg1, t.nr, t.keys.Pi, idi))) {
		why := fmt.Sprintf("the initiator's AUTH (method %d) does not verify with the preshared key for its identity", auth.Method)
		if err != nil {
			why = err.Error()
		}
		return nil, nil, &NotifyError{Kind: NotifyAuthenticationFailed, Why: why}
	}
	idr := &ID{T: PayloadIDr, IDType: me.ID.IDType, Data: me.ID.Data}
	ps := []Payload{idr, &Auth{Method: AuthPSK, Data: pskAuth(prf, key, signedOctets(prf, msg2, t.ni, t.keys.Pr, idr))}}
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

// authResponse checks the responder's IKE_AUTH answer (inner, opened);
// msg2 is its IKE_SA_INIT response as it was on the wire.
func (t *ikeInit) authResponse(me AuthSide, inner []Payload, msg2 []byte, inSPI uint32) (*Child, error) {
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
	if auth.Method != AuthPSK || !hmac.Equal(auth.Data, pskAuth(prf, me.PSK, signedOctets(prf, msg2, t.ni, t.keys.Pr, idr))) {
		return nil, &NotifyError{Kind: NotifyAuthenticationFailed, Why: "the responder's AUTH does not verify with our preshared key"}
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
