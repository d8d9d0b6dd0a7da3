package radius

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// EAP relayed to RADIUS (RFC 3579): the NAS carries each EAP packet of
// the peer to the server in EAP-Message attributes, and the server's
// back, until Access-Accept (with the MSK in the MS-MPPE keys, RFC 2548)
// or Access-Reject. Every round of one conversation goes to the server
// that answered its first: its State names the conversation there.

// EAPRequest is one round: the peer's EAP packet, for its identity.
type EAPRequest struct {
	User string // the EAP identity, as User-Name
	EAP  []byte
	// State and Server come from the last round's answer (none on the
	// first).
	State  []byte
	Server string
	// CallingStation is the client's outer address.
	CallingStation string
}

// EAPResult is the server's answer: a challenge (the EAP request to pass
// on, and the State for the next round), or its verdict.
type EAPResult struct {
	Result
	Challenge bool
	EAP       []byte
	State     []byte
}

// EAP carries one round to the server.
func (c *Client) EAP(ctx context.Context, r EAPRequest) (EAPResult, error) {
	res, server, unanswered, err := tryServers(ctx, c, r.Server, func(s Server) (EAPResult, error) { return c.askEAP(ctx, s, r) })
	res.Server, res.Unanswered = server, unanswered
	return res, err
}

func (c *Client) askEAP(ctx context.Context, s Server, r EAPRequest) (EAPResult, error) {
	p, errs := c.accessRequest(s, r.User, r.CallingStation)
	errs = append(errs, rfc2869.EAPMessage_Set(p, r.EAP))
	if r.State != nil {
		errs = append(errs, rfc2865.State_Set(p, r.State))
	}
	if err := errors.Join(errs...); err != nil {
		return EAPResult{}, err
	}
	req, err := encodeWithAuthenticator(p)
	if err != nil {
		return EAPResult{}, err
	}
	resp, err := c.exchange(ctx, s.Addr, req, s.Secret)
	if err != nil {
		return EAPResult{}, err
	}
	// RFC 3579 section 3.2: an answer carrying EAP-Message must carry a
	// Message-Authenticator, whatever servers do for PPP.
	if err := checkMessageAuthenticator(resp, req[4:20], s.Secret, true); err != nil {
		return EAPResult{}, err
	}
	a, err := radius.Parse(resp, s.Secret)
	if err != nil {
		return EAPResult{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	res := EAPResult{Result: Result{Message: strings.Join(replyMessages(a), " ")}, EAP: rfc2869.EAPMessage_Get(a), State: rfc2865.State_Get(a)}
	switch a.Code {
	case radius.CodeAccessChallenge:
		if res.EAP == nil {
			return EAPResult{}, fmt.Errorf("%w: an Access-Challenge without EAP-Message", ErrBadResponse)
		}
		res.Challenge = true
	case radius.CodeAccessAccept:
		res.Accept = true
		acceptSettings(a, p, &res.Result)
	case radius.CodeAccessReject:
	default:
		return EAPResult{}, fmt.Errorf("%w: code %v to an Access-Request", ErrBadResponse, a.Code)
	}
	return res, nil
}
