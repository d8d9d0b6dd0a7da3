package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/auth/radius"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

// radiusAuth serves PPP user authentication through auth/radius.
type radiusAuth struct {
	sdk.UnimplementedAuthenticator
	log hclog.Logger

	mu     sync.RWMutex
	client *radius.Client
}

var _ sdk.Authenticator = (*radiusAuth)(nil)

func newRadiusAuth(log hclog.Logger) *radiusAuth { return &radiusAuth{log: log} }

func (a *radiusAuth) Info(context.Context) (sdk.AuthenticatorInfo, error) {
	return sdk.AuthenticatorInfo{
		Info:    sdk.Info{Name: "radius", Version: version, Description: "remote-access users checked by RADIUS servers (PAP, CHAP, MS-CHAPv2)"},
		Methods: []sdk.AuthMethod{sdk.MethodPAP, sdk.MethodCHAPMD5, sdk.MethodMSCHAPv2},
	}, nil
}

// Configure reads the shared secrets (files of mode 0600) and replaces
// the client; a bad file keeps the old configuration.
func (a *radiusAuth) Configure(_ context.Context, cfg sdk.AuthConfig) ([]string, error) {
	r := cfg.Radius
	if r == nil || len(r.Servers) == 0 {
		a.mu.Lock()
		a.client = nil
		a.mu.Unlock()
		return []string{"radius: loaded, but remote_access.ppp.radius names no servers; every user is refused"}, nil
	}
	rc := radius.Config{Timeout: r.Timeout, Tries: r.Tries, NASIdentifier: r.NASIdentifier, RequireMessageAuthenticator: r.RequireMessageAuthenticator}
	for _, s := range r.Servers {
		secret, err := radius.ReadSecretFile(s.SecretFile)
		if err != nil {
			a.log.Error("configuration refused; keeping the previous one", "server", s.Address, "error", err)
			return nil, fmt.Errorf("%w: server %s: %v", sdk.ErrInvalid, s.Address, err)
		}
		rc.Servers = append(rc.Servers, radius.Server{Addr: s.Address, AcctAddr: s.AccountingAddress, Secret: secret})
	}
	c, err := radius.New(rc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
	}
	a.mu.Lock()
	a.client = c
	a.mu.Unlock()
	var warnings []string
	if !r.RequireMessageAuthenticator {
		warnings = append(warnings, "radius: answers without a Message-Authenticator are accepted (require_message_authenticator: false); remove that setting once the servers are patched for BlastRADIUS (CVE-2024-3596)")
	}
	a.log.Info("RADIUS servers configured", "servers", len(rc.Servers), "nas_identifier", r.NASIdentifier, "timeout", r.Timeout.String())
	return warnings, nil
}

var methods = map[sdk.AuthMethod]radius.Method{sdk.MethodPAP: radius.PAP, sdk.MethodCHAPMD5: radius.CHAP, sdk.MethodMSCHAPv2: radius.MSCHAPv2}

// AuthenticateUser asks the servers. No answer from any server is an
// error (the user is refused, and the log says the servers are down, not
// that the password was wrong).
func (a *radiusAuth) AuthenticateUser(ctx context.Context, req sdk.UserAuthRequest) (sdk.UserAuthResult, error) {
	a.mu.RLock()
	c := a.client
	a.mu.RUnlock()
	if c == nil {
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: "no RADIUS server configured"}, nil
	}
	m, ok := methods[req.Method]
	if !ok {
		return sdk.UserAuthResult{}, fmt.Errorf("%w: %v", sdk.ErrUnsupported, req.Method)
	}
	rr := radius.Request{Method: m, User: req.User, Password: []byte(req.Password), ID: req.ChapID, Challenge: req.Challenge,
		Response: req.Response, PeerChallenge: req.PeerChallenge}
	if req.Peer.IsValid() {
		rr.CallingStation = req.Peer.Addr().String()
	}
	res, err := c.Authenticate(ctx, rr)
	if err != nil {
		return sdk.UserAuthResult{}, a.noAnswer(req.User, err)
	}
	return a.verdict(req.User, m.String(), res), nil
}

// noAnswer logs why no server's answer could be used, and maps it.
func (a *radiusAuth) noAnswer(user string, err error) error {
	msg := "no RADIUS server answered"
	switch {
	case errors.Is(err, radius.ErrNoMessageAuthenticator):
		msg = "RADIUS answer refused: it has no Message-Authenticator"
	case errors.Is(err, radius.ErrBadResponse):
		msg = "no valid RADIUS answer"
	}
	a.log.Error(msg, "user", user, "error", err)
	if errors.Is(err, radius.ErrNoServer) {
		return fmt.Errorf("%w: %v", sdk.ErrUnavailable, err)
	}
	return err
}

// verdict is a server's Access-Accept or Access-Reject, logged.
func (a *radiusAuth) verdict(user, method string, res radius.Result) sdk.UserAuthResult {
	if !res.Accept {
		a.log.Info("user rejected by RADIUS", "user", user, "method", method, "server", res.Server, "message", res.Message)
		msg := "rejected by the RADIUS server"
		if res.Message != "" {
			msg += ": " + res.Message
		}
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: msg}
	}
	fields := []any{"user", user, "method", method, "server", res.Server,
		"framed_address", res.FramedAddress.String(), "session_timeout", res.SessionTimeout.String()}
	if len(res.Unanswered) > 0 {
		// The user got in, but a server before this one is down.
		fields = append(fields, "unanswered", res.Unanswered)
	}
	a.log.Info("user accepted by RADIUS", fields...)
	return sdk.UserAuthResult{Code: sdk.UserAccept, Message: res.Message, AuthenticatorResponse: res.AuthenticatorResponse,
		MPPESendKey: res.MPPESendKey, MPPERecvKey: res.MPPERecvKey, FramedAddress: res.FramedAddress,
		SessionTimeoutSeconds: uint32(res.SessionTimeout.Seconds()), IdleTimeoutSeconds: uint32(res.IdleTimeout.Seconds()), Class: firstClass(res.Class)}
}

// RelayEAP carries an IKEv2 road warrior's EAP round to the servers (RFC
// 3579): the first to answer keeps the conversation (req.Server).
func (a *radiusAuth) RelayEAP(ctx context.Context, req sdk.EAPRelayRequest) (sdk.EAPRelayResult, error) {
	a.mu.RLock()
	c := a.client
	a.mu.RUnlock()
	if c == nil {
		return sdk.EAPRelayResult{}, fmt.Errorf("%w: no RADIUS server configured", sdk.ErrUnavailable)
	}
	r := radius.EAPRequest{User: req.User, EAP: req.EAP, State: req.State, Server: req.Server}
	if req.Peer.IsValid() {
		r.CallingStation = req.Peer.Addr().String()
	}
	res, err := c.EAP(ctx, r)
	if err != nil {
		return sdk.EAPRelayResult{}, a.noAnswer(req.User, err)
	}
	out := sdk.EAPRelayResult{Challenge: res.Challenge, EAP: res.EAP, State: res.State, Server: res.Server}
	if !res.Challenge {
		out.Verdict = a.verdict(req.User, "eap", res.Result)
	}
	return out, nil
}

var acctStatus = map[sdk.AcctStatus]radius.AcctStatus{sdk.AcctStart: radius.AcctStart, sdk.AcctStop: radius.AcctStop, sdk.AcctInterim: radius.AcctInterim}

// Account hands a record to the accounting servers, in order.
func (a *radiusAuth) Account(ctx context.Context, req sdk.AccountRequest) error {
	a.mu.RLock()
	c := a.client
	a.mu.RUnlock()
	if c == nil {
		return fmt.Errorf("%w: no RADIUS server configured", sdk.ErrUnavailable)
	}
	st, ok := acctStatus[req.Status]
	if !ok {
		return fmt.Errorf("%w: accounting status %d", sdk.ErrInvalid, req.Status)
	}
	rec := radius.AcctRecord{Status: st, SessionID: req.SessionID, User: req.User, FramedAddress: req.FramedAddress,
		BytesIn: req.BytesIn, BytesOut: req.BytesOut, PacketsIn: req.PacketsIn, PacketsOut: req.PacketsOut,
		SessionTime: req.SessionTime, TerminateCause: req.TerminateCause, Class: req.Class}
	if req.Peer.IsValid() {
		rec.CallingStation = req.Peer.Addr().String()
	}
	srv, err := c.Account(ctx, rec)
	if err != nil {
		a.log.Error("accounting record not taken by any server", "session", req.SessionID, "user", req.User, "status", st.String(), "error", err)
		return fmt.Errorf("%w: %v", sdk.ErrUnavailable, err)
	}
	a.log.Debug("accounting record taken", "session", req.SessionID, "status", st.String(), "server", srv)
	return nil
}

// firstClass: RADIUS may send several Class attributes; the plugin
// interface carries the first, which accounting echoes.
func firstClass(c [][]byte) []byte {
	if len(c) == 0 {
		return nil
	}
	return c[0]
}
