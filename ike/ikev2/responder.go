package ikev2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// ResponderConfig answers one peer's IKE SA and first child.
type ResponderConfig struct {
	Proposals []Proposal
	Auth      AuthSide
	// PSK gives the preshared key for the initiator's identity.
	PSK   func(*ID) ([]byte, error)
	SPIr  SPI
	InSPI uint32 // the child's inbound ESP SPI
	// Local is our IKE endpoint, for NAT detection; Cookies, when set,
	// asks for a cookie first (section 2.6).
	Local   netip.AddrPort
	Cookies *Cookies
	Rand    io.Reader
	// PFS is the group a child's rekey or new child must use (0: none);
	// NewSPI gives each later child's inbound SPI.
	PFS    uint16
	NewSPI func() uint32
}

// Responder answers IKE_SA_INIT and IKE_AUTH for one peer: Receive takes
// each request and returns the response to send. A retransmitted request
// gets the same response again (section 2.1). Like Initiator, it drives
// the exchanges for tests and tools until the engine holds IKE SAs.
type Responder struct {
	cfg        ResponderConfig
	t          *ikeInit
	msg1, msg2 []byte
	last, resp []byte
	iToR, rToI *Protector
	child      *Child
	children   []*Child // every child up, the first one first
	next       uint32   // the next request's message ID, once IKE_AUTH is through
	closed     bool     // the peer deleted the IKE SA
}

// NewResponder waits for an IKE_SA_INIT.
func NewResponder(cfg ResponderConfig) *Responder { return &Responder{cfg: cfg} }

// Receive answers a request from remote. A refused IKE_SA_INIT is
// answered with its notify and the responder waits for another; a failed
// IKE_AUTH is answered and returned as the error.
func (r *Responder) Receive(b []byte, remote netip.AddrPort) ([]byte, error) {
	if r.last != nil && bytes.Equal(b, r.last) {
		return r.resp, nil // a retransmission
	}
	m, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if m.Response() || !m.FromInitiator() {
		return nil, fmt.Errorf("%w: a response, or a request not from the initiator", ErrNotExpected)
	}
	var out []byte
	switch {
	case m.Exchange == ExchangeIKESAInit && r.t == nil && m.MessageID == 0:
		out, err = r.init(m, b, remote)
	case m.Exchange == ExchangeIKEAuth && r.t != nil && r.child == nil && m.MessageID == 1 && m.SPIr == r.cfg.SPIr:
		out, err = r.auth(m, b)
	case r.child != nil && !r.closed && m.MessageID == r.next && m.SPIr == r.cfg.SPIr &&
		(m.Exchange == ExchangeCreateChildSA || m.Exchange == ExchangeInformational):
		out, err = r.later(m, b)
	default:
		return nil, fmt.Errorf("%w: %v #%d", ErrNotExpected, m.Exchange, m.MessageID)
	}
	if out != nil {
		r.last, r.resp = append([]byte(nil), b...), out
	}
	return out, err
}

func (r *Responder) init(m *Message, b []byte, remote netip.AddrPort) ([]byte, error) {
	t, ps, err := respond(r.cfg.Proposals, m, r.cfg.Local, remote, r.cfg.SPIr, r.cfg.Cookies, r.cfg.Rand)
	h := Header{SPIi: m.SPIi, Exchange: ExchangeIKESAInit, Flags: FlagResponse}
	var ne *NotifyError
	if errors.As(err, &ne) {
		return (&Message{Header: h, Payloads: []Payload{&Notify{Kind: ne.Kind, Data: ne.Data}}}).Encode()
	}
	if err != nil {
		return nil, err
	}
	h.SPIr = r.cfg.SPIr
	out, err := (&Message{Header: h, Payloads: ps}).Encode()
	if err != nil {
		return nil, err
	}
	k, s := t.keys, t.chosen
	if r.iToR, err = NewProtector(s.Cipher, s.Integ, k.Ei, k.Ai); err == nil {
		r.rToI, err = NewProtector(s.Cipher, s.Integ, k.Er, k.Ar)
	}
	if err != nil {
		return nil, err
	}
	r.t, r.msg1, r.msg2 = t, append([]byte(nil), b[:m.Length]...), out
	return out, nil
}

func (r *Responder) auth(m *Message, b []byte) ([]byte, error) {
	e, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
	if !ok {
		return nil, fmt.Errorf("%w: IKE_AUTH in clear", ErrMalformed)
	}
	inner, err := r.iToR.Open(b, &m.Header, e)
	if err != nil {
		return nil, fmt.Errorf("IKE_AUTH: %w", err) // a forgery changes nothing: no answer
	}
	ps, child, aerr := r.t.authRespond(r.cfg.Auth, PSKCheck(r.cfg.PSK), inner, r.msg1, r.msg2, r.cfg.InSPI)
	if ps == nil {
		var ne *NotifyError
		if !errors.As(aerr, &ne) {
			return nil, aerr
		}
		ps = []Payload{&Notify{Kind: ne.Kind}}
	}
	out, err := r.rToI.Seal(Header{SPIi: m.SPIi, SPIr: r.cfg.SPIr, Exchange: ExchangeIKEAuth, Flags: FlagResponse, MessageID: 1}, ps, r.cfg.Rand)
	if err != nil {
		return nil, err
	}
	r.child, r.next = child, 2
	if child != nil {
		r.children = append(r.children, child)
	}
	if aerr != nil {
		return out, fmt.Errorf("IKE_AUTH: %w", aerr)
	}
	return out, nil
}

// later answers a CREATE_CHILD_SA for a child (a new one, or a rekey) or
// an INFORMATIONAL (deletes and liveness checks) on the established IKE
// SA. Rekeying the IKE SA itself is refused here (NO_PROPOSAL_CHOSEN):
// the engine will do it.
func (r *Responder) later(m *Message, b []byte) ([]byte, error) {
	e, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
	if !ok {
		return nil, fmt.Errorf("%w: %v in clear", ErrMalformed, m.Exchange)
	}
	inner, err := r.iToR.Open(b, &m.Header, e)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", m.Exchange, err)
	}
	var ps []Payload
	var refusal error
	if m.Exchange == ExchangeInformational {
		ps = r.informational(inner)
	} else {
		ps, refusal = r.createChild(inner)
	}
	out, err := r.rToI.Seal(Header{SPIi: m.SPIi, SPIr: r.cfg.SPIr, Exchange: m.Exchange, Flags: FlagResponse, MessageID: m.MessageID}, ps, r.cfg.Rand)
	if err != nil {
		return nil, err
	}
	r.next++
	return out, refusal
}

func (r *Responder) createChild(inner []Payload) ([]Payload, error) {
	sa := &ikeSA{suite: r.t.chosen, keys: r.t.keys, rand: r.cfg.Rand}
	if offer, _ := Find(inner, PayloadSA).(*SA); offer != nil && len(offer.Proposals) > 0 && offer.Proposals[0].Protocol == ProtoIKE {
		return []Payload{&Notify{Kind: NotifyNoProposalChosen}}, &NotifyError{Kind: NotifyNoProposalChosen, Why: "IKE SA rekeys are not answered yet"}
	}
	spi := r.cfg.InSPI + uint32(len(r.children))
	if r.cfg.NewSPI != nil {
		spi = r.cfg.NewSPI()
	}
	ps, child, err := sa.respondChild(r.cfg.Auth, r.cfg.PFS, inner, spi)
	var ne *NotifyError
	if errors.As(err, &ne) {
		return []Payload{&Notify{Kind: ne.Kind, Data: ne.Data}}, err
	}
	if err != nil {
		return nil, err
	}
	r.children = append(r.children, child)
	return ps, nil
}

// informational answers deletes with the other halves of the deleted
// child SAs (section 1.4.1) and a liveness check with nothing.
func (r *Responder) informational(inner []Payload) []Payload {
	closed, answer := answerDeletes(inner, func(out uint32) (uint32, bool) {
		for i, c := range r.children {
			if c.OutSPI == out {
				r.children = append(r.children[:i], r.children[i+1:]...)
				return c.InSPI, true
			}
		}
		return 0, false
	})
	r.closed = r.closed || closed
	return answer
}

// Done reports whether the IKE SA and its child are up.
func (r *Responder) Done() bool { return r.child != nil }

// NAT is what NAT detection found in IKE_SA_INIT.
func (r *Responder) NAT() NAT {
	if r.t == nil {
		return NAT{}
	}
	return r.t.nat
}

// Suite is the IKE SA's suite, once IKE_SA_INIT is through.
func (r *Responder) Suite() Proposal { return r.t.chosen }

// Child is the first child SA, once Done.
func (r *Responder) Child() *Child { return r.child }

// Children are the child SAs up now, oldest first.
func (r *Responder) Children() []*Child { return r.children }

// Closed reports whether the peer deleted the IKE SA.
func (r *Responder) Closed() bool { return r.closed }
