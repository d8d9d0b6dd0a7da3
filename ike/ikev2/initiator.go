package ikev2

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// InitiatorConfig sets up one IKE SA and its first child as initiator.
type InitiatorConfig struct {
	Proposals []Proposal
	Auth      AuthSide
	SPIi      SPI
	// InSPI is the child's inbound ESP SPI.
	InSPI uint32
	// Local and Remote are the IKE_SA_INIT endpoints, for NAT detection.
	Local, Remote netip.AddrPort
	Rand          io.Reader
}

// Initiator runs IKE_SA_INIT (with its retries) and IKE_AUTH as a
// sequence of messages: Start gives the first request, Receive takes each
// response and gives the next request, until Done. The caller moves the
// messages, retransmits (the same bytes) and moves to port 4500 when NAT
// says so (RFC 7296 section 2.23). It is the exchanges' driver for tests
// and tools until the engine holds IKE SAs itself.
type Initiator struct {
	cfg        InitiatorConfig
	t          *ikeInit
	msg1, msg2 []byte
	iToR, rToI *Protector
	authSent   bool
	child      *Child
}

// ErrNotExpected is a message the initiator was not waiting for.
var ErrNotExpected = errors.New("unexpected IKEv2 message")

// NewInitiator prepares the first request.
func NewInitiator(cfg InitiatorConfig) (*Initiator, error) {
	t, err := newInitiator(cfg.Proposals, cfg.SPIi, cfg.Rand)
	if err != nil {
		return nil, err
	}
	return &Initiator{cfg: cfg, t: t}, nil
}

// Start returns the IKE_SA_INIT request.
func (in *Initiator) Start() ([]byte, error) {
	b, err := (&Message{Header: Header{SPIi: in.cfg.SPIi, Exchange: ExchangeIKESAInit, Flags: FlagInitiator},
		Payloads: in.t.request(in.cfg.Local, in.cfg.Remote)}).Encode()
	in.msg1 = b
	return b, err
}

// Receive takes the response to the last request. It returns the next
// request, or nil once the IKE SA and its child are up (Done).
func (in *Initiator) Receive(b []byte) ([]byte, error) {
	m, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if !m.Response() || m.SPIi != in.cfg.SPIi {
		return nil, fmt.Errorf("%w: %v from %x", ErrNotExpected, m.Exchange, m.SPIi)
	}
	if !in.authSent {
		if m.Exchange != ExchangeIKESAInit || m.MessageID != 0 {
			return nil, fmt.Errorf("%w: %v #%d while waiting for IKE_SA_INIT", ErrNotExpected, m.Exchange, m.MessageID)
		}
		switch err := in.t.response(m, in.cfg.Local, in.cfg.Remote); {
		case errors.Is(err, ErrRetry):
			return in.Start()
		case err != nil:
			return nil, fmt.Errorf("IKE_SA_INIT: %w", err)
		}
		in.msg2 = append([]byte(nil), b[:m.Length]...)
		k, s := in.t.keys, in.t.chosen
		if in.iToR, err = NewProtector(s.Cipher, s.Integ, k.Ei, k.Ai); err == nil {
			in.rToI, err = NewProtector(s.Cipher, s.Integ, k.Er, k.Ar)
		}
		if err != nil {
			return nil, err
		}
		in.authSent = true
		return in.iToR.Seal(Header{SPIi: in.cfg.SPIi, SPIr: in.t.spir, Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1},
			in.t.authRequest(in.cfg.Auth, in.msg1, in.cfg.InSPI), in.cfg.Rand)
	}
	if m.Exchange != ExchangeIKEAuth || m.MessageID != 1 || m.SPIr != in.t.spir || len(m.Payloads) == 0 {
		return nil, fmt.Errorf("%w: %v #%d while waiting for IKE_AUTH", ErrNotExpected, m.Exchange, m.MessageID)
	}
	e, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
	if !ok {
		return nil, fmt.Errorf("%w: IKE_AUTH response in clear", ErrMalformed)
	}
	inner, err := in.rToI.Open(b, &m.Header, e)
	if err != nil {
		return nil, fmt.Errorf("IKE_AUTH: %w", err)
	}
	if in.child, err = in.t.authResponse(in.cfg.Auth, inner, in.msg2, in.cfg.InSPI); err != nil {
		return nil, fmt.Errorf("IKE_AUTH: %w", err)
	}
	return nil, nil
}

// Done reports whether the IKE SA and its child are up.
func (in *Initiator) Done() bool { return in.child != nil }

// NAT is what NAT detection found in IKE_SA_INIT.
func (in *Initiator) NAT() NAT { return in.t.nat }

// Suite is the IKE SA's suite; Child the child SA.
func (in *Initiator) Suite() Proposal { return in.t.chosen }

// Child is the first child SA, once Done.
func (in *Initiator) Child() *Child { return in.child }

// SPIr is the responder's IKE SA SPI, once IKE_SA_INIT is through.
func (in *Initiator) SPIr() SPI { return in.t.spir }
