package eap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gatehouse/gatehouse/auth/radius"
)

// Relay is an EAP server that leaves the method to a RADIUS server (RFC
// 3579), so FreeRADIUS or NPS checks the user with whatever method and
// user store it has: the relay asks for the identity itself, as
// strongSwan's eap-radius does, then carries each response to the
// server and each request back, until Access-Accept, whose MS-MPPE keys
// make the MSK (RFC 5247: Recv-Key then Send-Key), or Access-Reject.
type Relay struct {
	ask     func(context.Context, radius.EAPRequest) (radius.EAPResult, error)
	timeout time.Duration
	calling string
	rand    io.Reader

	outcome
	id     uint8
	state  []byte
	server string
	// Accepted is what the Access-Accept granted (an address, timeouts,
	// Class), once Succeeded.
	Accepted radius.Result
}

// NewRelay relays through ask (a radius.Client's EAP) for a client at
// callingStation; each round may take timeout.
func NewRelay(ask func(context.Context, radius.EAPRequest) (radius.EAPResult, error), callingStation string, timeout time.Duration, rand io.Reader) *Relay {
	return &Relay{ask: ask, calling: callingStation, timeout: timeout, rand: rand}
}

// Start is the first request: EAP-Request/Identity.
func (r *Relay) Start() ([]byte, error) {
	id, b, err := identityRequest(r.rand)
	r.id = id
	return b, err
}

// Receive carries the peer's response to the RADIUS server and returns
// its answer to pass on. No server answering fails the exchange.
func (r *Relay) Receive(b []byte) ([]byte, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if p.Code != CodeResponse || r.done {
		return nil, fmt.Errorf("%w: %v", ErrProtocol, p)
	}
	if r.user == "" {
		if p.Type != TypeIdentity || p.ID != r.id || len(p.Data) == 0 {
			return nil, fmt.Errorf("%w: %v in answer to Identity", ErrProtocol, p)
		}
		r.user = string(p.Data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	res, err := r.ask(ctx, radius.EAPRequest{User: r.user, EAP: b[:4+1+len(p.Data)], State: r.state, Server: r.server, CallingStation: r.calling})
	if err != nil {
		return r.fail(p.ID, fmt.Errorf("EAP relayed to RADIUS: %w", err), nil)
	}
	r.server = res.Server
	switch {
	case res.Challenge:
		r.state = res.State
		return res.EAP, nil
	case res.Accept:
		if len(res.MPPERecvKey) == 0 || len(res.MPPESendKey) == 0 {
			return r.fail(p.ID, errors.New("the RADIUS server accepted the user but sent no MS-MPPE keys: its EAP method must make an MSK"), nil)
		}
		r.msk = append(append([]byte(nil), res.MPPERecvKey...), res.MPPESendKey...)
		r.Accepted, r.done = res.Result, true
		if res.EAP == nil {
			return (&Packet{Code: CodeSuccess, ID: p.ID}).Encode(), nil
		}
		return res.EAP, nil
	}
	why := "the RADIUS server rejected the user"
	if res.Message != "" {
		why += ": " + res.Message
	}
	return r.fail(p.ID, fmt.Errorf("%w: %s", ErrRejected, why), res.EAP)
}

// FramedAddress is the address the RADIUS server chose for the user
// (Framed-IP-Address), if it did.
func (r *Relay) FramedAddress() netip.Addr { return r.Accepted.FramedAddress }

// fail ends the exchange: the server's EAP-Failure, or ours.
func (r *Relay) fail(id uint8, err error, failure []byte) ([]byte, error) {
	r.err, r.done = err, true
	if failure == nil {
		failure = (&Packet{Code: CodeFailure, ID: id}).Encode()
	}
	return failure, nil
}
