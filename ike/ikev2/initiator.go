package ikev2

import (
	"encoding/binary"
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
	// After IKE_AUTH: the next message ID, a child rekey under way, and
	// the child it replaces, to delete once the new one is up.
	next    uint32
	rekey   *childExchange
	retired *Child
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
		ps, err := in.t.authRequest(in.cfg.Auth, in.msg1, in.cfg.InSPI)
		if err != nil {
			return nil, err
		}
		return in.iToR.Seal(Header{SPIi: in.cfg.SPIi, SPIr: in.t.spir, Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}, ps, in.cfg.Rand)
	}
	if in.child != nil {
		return in.later(m, b)
	}
	if m.Exchange != ExchangeIKEAuth || m.MessageID != 1 || m.SPIr != in.t.spir || len(m.Payloads) == 0 {
		return nil, fmt.Errorf("%w: %v #%d while waiting for IKE_AUTH", ErrNotExpected, m.Exchange, m.MessageID)
	}
	inner, err := in.open(m, b)
	if err != nil {
		return nil, fmt.Errorf("IKE_AUTH: %w", err)
	}
	check := PSKCheck(func(*ID) ([]byte, error) { return in.cfg.Auth.PSK, nil })
	if in.child, err = in.t.authResponse(in.cfg.Auth, check, inner, in.msg2, in.cfg.InSPI); err != nil {
		return nil, fmt.Errorf("IKE_AUTH: %w", err)
	}
	in.next = 2
	return nil, nil
}

func (in *Initiator) open(m *Message, b []byte) ([]Payload, error) {
	e, ok := m.Payloads[len(m.Payloads)-1].(*Encrypted)
	if !ok {
		return nil, fmt.Errorf("%w: %v in clear", ErrMalformed, m.Exchange)
	}
	return in.rToI.Open(b, &m.Header, e)
}

// RekeyChild starts the rekey of the current child (section 1.3.3), with
// a new Diffie-Hellman in group pfs (0: none) and inSPI as the new
// child's inbound SPI. Receive takes the answer and returns the old
// child's delete; once that is answered, Child is the new one.
func (in *Initiator) RekeyChild(pfs uint16, inSPI uint32) ([]byte, error) {
	if in.child == nil || in.rekey != nil || in.retired != nil {
		return nil, fmt.Errorf("%w: no child to rekey now", ErrNotExpected)
	}
	x := &childExchange{sa: &ikeSA{suite: in.t.chosen, keys: in.t.keys, rand: in.cfg.Rand}, me: in.cfg.Auth, inSPI: inSPI, pfs: pfs, rekey: in.child.InSPI}
	ps, err := x.request()
	if err != nil {
		return nil, err
	}
	in.rekey = x
	return in.send(ExchangeCreateChildSA, ps)
}

func (in *Initiator) send(x ExchangeType, ps []Payload) ([]byte, error) {
	b, err := in.iToR.Seal(Header{SPIi: in.cfg.SPIi, SPIr: in.t.spir, Exchange: x, Flags: FlagInitiator, MessageID: in.next}, ps, in.cfg.Rand)
	if err == nil {
		in.next++
	}
	return b, err
}

// later takes the answers to a child's rekey and to the old child's
// delete.
func (in *Initiator) later(m *Message, b []byte) ([]byte, error) {
	if m.MessageID != in.next-1 || m.SPIr != in.t.spir || len(m.Payloads) == 0 {
		return nil, fmt.Errorf("%w: %v #%d", ErrNotExpected, m.Exchange, m.MessageID)
	}
	inner, err := in.open(m, b)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", m.Exchange, err)
	}
	switch {
	case in.rekey != nil && m.Exchange == ExchangeCreateChildSA:
		c, err := in.rekey.response(inner)
		in.rekey = nil
		if err != nil {
			return nil, fmt.Errorf("CREATE_CHILD_SA: %w", err)
		}
		in.retired, in.child = in.child, c
		return in.send(ExchangeInformational, []Payload{&Delete{Protocol: ProtoESP, SPIs: [][]byte{spiBytes(in.retired.InSPI)}}})
	case in.retired != nil && m.Exchange == ExchangeInformational:
		d, _ := Find(inner, PayloadDelete).(*Delete)
		if d == nil || d.Protocol != ProtoESP || len(d.SPIs) != 1 || binary.BigEndian.Uint32(d.SPIs[0]) != in.retired.OutSPI {
			return nil, fmt.Errorf("%w: the old child's delete answered with %#v", ErrMalformed, inner)
		}
		in.retired = nil
		return nil, nil
	}
	return nil, fmt.Errorf("%w: %v #%d", ErrNotExpected, m.Exchange, m.MessageID)
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
