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
	ps, child, aerr := r.t.authRespond(r.cfg.Auth, r.cfg.PSK, inner, r.msg1, r.msg2, r.cfg.InSPI)
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
	r.child = child
	if aerr != nil {
		return out, fmt.Errorf("IKE_AUTH: %w", aerr)
	}
	return out, nil
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
