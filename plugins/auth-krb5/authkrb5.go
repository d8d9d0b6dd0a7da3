package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/gatehouse/gatehouse/auth/krb5"
	"github.com/gatehouse/gatehouse/auth/secretfile"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

// Bounds on contexts: main mode releases each one when it ends, but a
// core that restarted mid-negotiation never will.
const (
	maxContexts = 4096
	contextTTL  = 2 * time.Minute
)

// profile is one kerberos entry: our principal, its keytab (to accept
// tickets and, as initiator, to log in) or a credential cache, and the
// client that holds our TGT and service tickets between negotiations.
type profile struct {
	name      string
	principal string // host/gw.example.net@REALM
	user      string // host/gw.example.net
	realm     string
	kt        *keytab.Keytab // nil with a ccache only
	ccache    string
	cfg       *krbconfig.Config
	maxSkew   time.Duration
	offset    time.Duration

	mu sync.Mutex // guards cl
	cl *client.Client
}

// gssCtx is one security context, as initiator until its AP-REP or as
// an established acceptor.
type gssCtx struct {
	mu      sync.Mutex // sequence numbers move on every Wrap and Unwrap
	profile *profile
	init    *krb5.Initiator
	ctx     *krb5.Context
	made    time.Time
}

// krbAuth serves the GSS-API method: Kerberos V5 tickets (RFC 4121) for
// IKE main mode (draft-ietf-ipsec-isakmp-gss-auth).
type krbAuth struct {
	sdk.UnimplementedAuthenticator
	log hclog.Logger
	now func() time.Time

	mu       sync.Mutex
	profiles map[string]*profile
	ctxs     map[string]*gssCtx
	// replay holds the authenticators accepted lately, for every profile
	// and across reloads (a reload must not open a window for replays).
	replay *krb5.ReplayCache
}

// maxReplay bounds the replay cache: far more tickets than a gateway
// accepts in the skew window (5 minutes by default).
const maxReplay = 65536

var _ sdk.Authenticator = (*krbAuth)(nil)

func newKrbAuth(log hclog.Logger) *krbAuth {
	return &krbAuth{log: log, now: time.Now, ctxs: map[string]*gssCtx{}, replay: krb5.NewReplayCache(maxReplay)}
}

func (a *krbAuth) Info(context.Context) (sdk.AuthenticatorInfo, error) {
	return sdk.AuthenticatorInfo{
		Info:    sdk.Info{Name: "auth-krb5", Version: version, Description: "IKE authentication with Kerberos computer tickets (GSS-API method)"},
		Methods: []sdk.AuthMethod{sdk.MethodKerberos},
	}, nil
}

// Configure reads every profile's krb5.conf and keytab; a bad one refuses
// the whole configuration and keeps the old. Keytabs are read again on
// every reload, which is how a re-keyed host takes its new key.
func (a *krbAuth) Configure(_ context.Context, cfg sdk.AuthConfig) ([]string, error) {
	profiles := map[string]*profile{}
	var warnings []string
	for _, pc := range cfg.Kerberos {
		p, w, err := loadProfile(pc)
		if err != nil {
			a.log.Error("configuration refused; keeping the previous one", "profile", pc.Name, "error", err)
			return nil, fmt.Errorf("%w: %s: %v", sdk.ErrInvalid, pc.Name, err)
		}
		warnings = append(warnings, w...)
		profiles[pc.Name] = p
		a.log.Info("Kerberos profile loaded", "profile", pc.Name, "principal", p.principal, "keytab", pc.Keytab != "",
			"ccache", pc.Ccache != "", "max_skew", p.maxSkew.String(), "clock_offset", p.offset.String())
	}
	a.mu.Lock()
	old := a.profiles
	a.profiles = profiles
	a.mu.Unlock()
	for _, p := range old {
		p.destroy()
	}
	for _, w := range warnings {
		a.log.Warn(w)
	}
	if len(cfg.PSK) > 0 || len(cfg.X509) > 0 {
		warnings = append(warnings, "auth-krb5 serves Kerberos only; preshared keys and certificates need their own plugins")
	}
	return warnings, nil
}

func loadProfile(pc sdk.KerberosProfile) (*profile, []string, error) {
	user, realm, ok := strings.Cut(pc.Principal, "@")
	if !ok || realm == "" || !strings.Contains(user, "/") {
		return nil, nil, fmt.Errorf("principal %q: want service/host@REALM", pc.Principal)
	}
	conf := pc.Krb5Conf
	if conf == "" {
		conf = "/etc/krb5.conf"
	}
	kc, err := krbconfig.Load(conf)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", conf, err)
	}
	p := &profile{name: pc.Name, principal: pc.Principal, user: user, realm: realm, ccache: pc.Ccache, cfg: kc,
		maxSkew: pc.MaxSkew, offset: pc.ClockOffset}
	if p.maxSkew <= 0 {
		p.maxSkew = 5 * time.Minute
	}
	var warnings []string
	if pc.Keytab != "" {
		if p.kt, err = loadKeytab(pc.Keytab); err != nil {
			return nil, nil, fmt.Errorf("keytab %s: %w", pc.Keytab, err)
		}
		if !hasPrincipal(p.kt, user, realm) {
			return nil, nil, fmt.Errorf("keytab %s has no key for %s", pc.Keytab, pc.Principal)
		}
	} else {
		warnings = append(warnings, fmt.Sprintf("%s: no keytab: this gateway can initiate with its credential cache but cannot accept tickets", pc.Name))
	}
	if p.offset != 0 {
		warnings = append(warnings, fmt.Sprintf("%s: clock_offset %s is set: our Kerberos clock is deliberately wrong (for testing only)", pc.Name, p.offset))
	}
	return p, warnings, nil
}

// loadKeytab and loadCCache read Kerberos secrets through secretfile's
// checks on the opened file (gokrb5's loaders take a path and trust it).
func loadKeytab(path string) (*keytab.Keytab, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	kt := keytab.New()
	return kt, kt.Unmarshal(b)
}

func loadCCache(path string) (*credentials.CCache, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	cc := new(credentials.CCache)
	return cc, cc.Unmarshal(b)
}

func hasPrincipal(kt *keytab.Keytab, user, realm string) bool {
	for _, e := range kt.Entries {
		if e.Principal.Realm == realm && strings.Join(e.Principal.Components, "/") == user {
			return true
		}
	}
	return false
}

// client logs in once and keeps the TGT; gokrb5 caches service tickets
// and renews the TGT itself.
func (p *profile) client() (*client.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl == nil {
		if p.ccache != "" {
			cc, err := loadCCache(p.ccache)
			if err != nil {
				return nil, fmt.Errorf("credential cache %s: %w", p.ccache, err)
			}
			if p.cl, err = client.NewFromCCache(cc, p.cfg, client.DisablePAFXFAST(true)); err != nil {
				return nil, fmt.Errorf("credential cache %s: %w", p.ccache, err)
			}
		} else {
			p.cl = client.NewWithKeytab(p.user, p.realm, p.kt, p.cfg, client.DisablePAFXFAST(true))
		}
	}
	if err := p.cl.AffirmLogin(); err != nil {
		p.cl.Destroy()
		p.cl = nil
		return nil, fmt.Errorf("logging in to realm %s as %s: %w", p.realm, p.principal, err)
	}
	return p.cl, nil
}

func (p *profile) destroy() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil {
		p.cl.Destroy()
		p.cl = nil
	}
}

func (a *krbAuth) profile(name string) (*profile, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.profiles == nil {
		return nil, fmt.Errorf("%w: not configured yet", sdk.ErrUnavailable)
	}
	p, ok := a.profiles[name]
	if !ok {
		return nil, fmt.Errorf("%w: no Kerberos profile %q", sdk.ErrInvalid, name)
	}
	return p, nil
}

// GSSStep: an initiator's first step gets a ticket for the target and
// makes the AP-REQ; its second reads the AP-REP. An acceptor opens the
// AP-REQ with the keytab and answers the AP-REP. One round trip each.
func (a *krbAuth) GSSStep(_ context.Context, req sdk.GSSStepRequest) (sdk.GSSStepResult, error) {
	if req.ContextID != "" {
		c, err := a.context(req.ContextID)
		if err != nil {
			return sdk.GSSStepResult{}, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.init == nil || c.ctx.Complete() {
			return sdk.GSSStepResult{}, fmt.Errorf("%w: context %s is complete; Kerberos takes one round trip", sdk.ErrInvalid, req.ContextID)
		}
		if err := c.init.Step(req.Token); err != nil {
			a.log.Warn("the peer's answer to our ticket refused", "profile", c.profile.name, "peer", c.ctx.Peer(), "error", err)
			return sdk.GSSStepResult{}, fmt.Errorf("the answer from %s: %w", c.ctx.Peer(), err)
		}
		return sdk.GSSStepResult{ContextID: req.ContextID, Complete: true, PeerPrincipal: c.ctx.Peer()}, nil
	}
	p, err := a.profile(req.Profile)
	if err != nil {
		return sdk.GSSStepResult{}, err
	}
	now := a.now().Add(p.offset)
	c := &gssCtx{profile: p, made: a.now()}
	var out []byte
	switch req.Role {
	case sdk.GSSInitiator:
		if out, err = a.initiate(p, req.Target, now, c); err != nil {
			a.log.Warn("no ticket for the peer", "profile", p.name, "target", req.Target, "error", err)
			return sdk.GSSStepResult{}, err
		}
	case sdk.GSSAcceptor:
		if p.kt == nil {
			return sdk.GSSStepResult{}, fmt.Errorf("%w: %s has no keytab to accept tickets with", sdk.ErrInvalid, p.name)
		}
		acc, rep, err := krb5.Accept(krb5.AcceptConfig{Keytab: p.kt, Service: p.principal, MaxSkew: p.maxSkew, Replay: a.replay}, req.Token, now)
		if err != nil {
			a.log.Warn("peer's ticket refused", "profile", p.name, "error", err)
			return sdk.GSSStepResult{}, err
		}
		c.ctx, out = &acc.Context, rep
	default:
		return sdk.GSSStepResult{}, fmt.Errorf("%w: GSS role %d", sdk.ErrInvalid, req.Role)
	}
	id, err := a.keep(c)
	if err != nil {
		return sdk.GSSStepResult{}, err
	}
	return sdk.GSSStepResult{ContextID: id, Token: out, Complete: c.ctx.Complete(), PeerPrincipal: c.peer()}, nil
}

func (c *gssCtx) peer() string {
	if c.ctx.Complete() {
		return c.ctx.Peer()
	}
	return ""
}

func (a *krbAuth) initiate(p *profile, target string, now time.Time, c *gssCtx) ([]byte, error) {
	if target == "" {
		return nil, fmt.Errorf("%w: no target principal", sdk.ErrInvalid)
	}
	cl, err := p.client()
	if err != nil {
		return nil, err
	}
	spn, _, _ := strings.Cut(target, "@") // the realm comes from krb5.conf's domain_realm
	tkt, key, err := cl.GetServiceTicket(spn)
	if err != nil {
		return nil, fmt.Errorf("a ticket for %s: %w", target, err)
	}
	i, tok, err := krb5.NewInitiator(tkt, key, cl.Credentials.CName(), cl.Credentials.Domain(), now)
	if err != nil {
		return nil, err
	}
	c.init, c.ctx = i, &i.Context
	return tok, nil
}

// keep files a new context under a random ID, dropping expired ones.
func (a *krbAuth) keep(c *gssCtx) (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for k, old := range a.ctxs {
		if now.Sub(old.made) > contextTTL {
			delete(a.ctxs, k)
		}
	}
	if len(a.ctxs) >= maxContexts {
		return "", fmt.Errorf("%w: %d GSS contexts open; refusing more", sdk.ErrUnavailable, len(a.ctxs))
	}
	a.ctxs[id] = c
	return id, nil
}

// errNoContext: the ID is unknown (released, expired, or lost when this
// plugin restarted).
var errNoContext = errors.New("no such GSS context")

func (a *krbAuth) context(id string) (*gssCtx, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.ctxs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", errNoContext, id)
	}
	return c, nil
}

func (a *krbAuth) GSSWrap(_ context.Context, id string, data []byte) ([]byte, error) {
	return a.withContext(id, func(c *krb5.Context) ([]byte, error) { return c.Wrap(data) })
}

func (a *krbAuth) GSSUnwrap(_ context.Context, id string, token []byte) ([]byte, error) {
	return a.withContext(id, func(c *krb5.Context) ([]byte, error) { return c.Unwrap(token) })
}

// withContext runs f on a context, one call at a time: sequence numbers
// move on every Wrap and Unwrap.
func (a *krbAuth) withContext(id string, f func(*krb5.Context) ([]byte, error)) ([]byte, error) {
	c, err := a.context(id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return f(c.ctx)
}

func (a *krbAuth) GSSRelease(_ context.Context, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.ctxs[id]; !ok {
		return fmt.Errorf("%w: %s", errNoContext, id)
	}
	delete(a.ctxs, id)
	return nil
}
