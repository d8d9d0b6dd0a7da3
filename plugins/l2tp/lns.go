package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/auth/psk"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/plugins/sdk"
	"github.com/gatehouse/gatehouse/ppp"
)

// The LNS: L2TP control connections and PPP negotiation for remote-access
// clients. The core hands us L2TP control messages and PPP control frames
// over the Control stream and frames data itself; when IPCP opens we ask
// it to install the session. Everything runs under one lock: the l2tp and
// ppp state machines are not concurrent, and the work per message is
// small. Calls to the Host (user authentication, address leases, session
// installation) are made under it too, with deadlines, so a slow RADIUS
// server stalls negotiations, never forwarding, which is the core's.

// Audit event ids (docs/l2tp.md).
const (
	EventUserConnected    = sdk.EventUserConnected
	EventUserDisconnected = sdk.EventUserDisconnected
	EventUserAuthFailed   = sdk.EventUserAuthFailed
)

// hostTimeout bounds each Host call.
const hostTimeout = 10 * time.Second

// peerKey is where a control message came from: the IPsec SA's outer
// endpoints. Clients behind one NAT differ in their NAT-T port.
type peerKey struct {
	Local, Peer netip.AddrPort
}

// call is one L2TP session with its PPP link.
type call struct {
	key     peerKey
	said    uint64
	sess    *l2tp.Session
	link    *ppp.Link
	user    string
	addr    netip.Addr
	handle  uint64
	started time.Time
	static  bool
	// checks counts the user checks started: only the latest one's
	// answer counts (an LCP renegotiation starts authentication anew).
	checks int
}

type callKey struct {
	key             peerKey
	tunnel, session uint16 // ours
}

type lns struct {
	log hclog.Logger
	now func() time.Time

	mu     sync.Mutex
	host   sdk.Host
	cfg    sdk.L2TPConfig
	secret []byte
	auth   []ppp.AuthProto
	conn   sdk.ControlConn
	srv    *l2tp.Server[peerKey]
	calls  map[callKey]*call
	said   map[peerKey]uint64 // the latest SA each peer spoke on
	drops  map[string]uint64
	early  map[callKey]*earlyFrames
}

// earlyFrames are PPP frames that came for a call before its ICCN (holdEarly).
type earlyFrames struct {
	since  time.Time
	frames [][]byte
}

// Bounds of holdEarly: frames per call, calls, and how long they wait.
const (
	earlyPerCall = 2
	earlyCalls   = 1024
	earlyKeep    = 10 * time.Second
)

func newLNS(log hclog.Logger) *lns {
	l := &lns{log: log, now: time.Now, calls: map[callKey]*call{}, said: map[peerKey]uint64{}, drops: map[string]uint64{},
		early: map[callKey]*earlyFrames{}}
	l.srv = &l2tp.Server[peerKey]{NewConfig: l.tunnelConfig}
	return l
}

func (l *lns) Info(context.Context) (sdk.L2TPInfo, error) {
	return sdk.L2TPInfo{Info: sdk.Info{Name: "l2tp", Version: version,
		Description: "L2TP network server (RFC 2661) with PPP: LCP, PAP, CHAP-MD5, MS-CHAPv2, IPCP"},
		Protocols: []string{"l2tp"}}, nil
}

func (l *lns) Start(_ context.Context, host sdk.Host) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.host = host
	return nil
}

// pppAuth maps configuration names to protocols; the default is what
// Windows offers first.
func pppAuth(names []string) ([]ppp.AuthProto, error) {
	if len(names) == 0 {
		return []ppp.AuthProto{ppp.AuthMSCHAPv2}, nil
	}
	var out []ppp.AuthProto
	for _, n := range names {
		a, err := ppp.ParseAuthProto(n)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func (l *lns) Configure(_ context.Context, cfg sdk.L2TPConfig) ([]string, error) {
	auth, err := pppAuth(cfg.PPPAuth)
	if err != nil {
		return nil, err
	}
	if !cfg.Pool.IsValid() || !cfg.Pool.Addr().Is4() {
		return nil, fmt.Errorf("%w: an IPv4 address pool is required", sdk.ErrInvalid)
	}
	var secret []byte
	if cfg.TunnelSecretFile != "" {
		k, err := psk.ReadKeyFile(cfg.TunnelSecretFile)
		if err != nil {
			return nil, fmt.Errorf("%w: tunnel secret: %v", sdk.ErrInvalid, err)
		}
		secret = k.Bytes()
	}
	var warnings []string
	for _, a := range auth {
		if a == ppp.AuthPAP {
			warnings = append(warnings, "PAP sends passwords in the clear inside the tunnel; prefer mschapv2")
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg, l.auth, l.secret = cfg, auth, secret
	l.srv.Secret = secret
	return warnings, nil
}

// Control serves the stream until it ends. The core opens one at a time;
// a new one replaces the old.
func (l *lns) Control(ctx context.Context, conn sdk.ControlConn) error {
	l.mu.Lock()
	l.conn = conn
	l.mu.Unlock()
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				l.tick()
			}
		}
	}()
	for {
		pkt, err := conn.Recv()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
		l.input(pkt)
	}
}

func (l *lns) tick() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.srv.Tick(now)
	for _, c := range l.calls {
		c.link.Tick(now)
	}
	for ck, e := range l.early {
		if now.Sub(e.since) > earlyKeep {
			delete(l.early, ck) // the call never connected
		}
	}
}

func (l *lns) drop(reason string, err error) {
	l.drops[reason]++
	if l.drops[reason]&(l.drops[reason]-1) == 0 { // 1, 2, 4, 8...: a trail, not a flood
		l.log.Warn("control message dropped", "reason", reason, "error", err, "count", l.drops[reason])
	}
}

func (l *lns) input(pkt sdk.ControlPacket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := peerKey{pkt.Local, pkt.Peer}
	now := l.now()
	switch pkt.Kind {
	case sdk.ControlL2TP:
		l.said[key] = pkt.SAID
		if _, err := l.srv.Input(key, pkt.Payload, now); err != nil {
			l.drop("l2tp", err)
		}
	case sdk.ControlPPP:
		ck := callKey{key, pkt.TunnelID, pkt.SessionID}
		c := l.calls[ck]
		if c == nil {
			if !l.holdEarly(ck, pkt.Payload, now) {
				l.drop("ppp-no-session", fmt.Errorf("tunnel %d session %d from %v", pkt.TunnelID, pkt.SessionID, pkt.Peer))
			}
			return
		}
		if err := c.link.Input(pkt.Payload, now); err != nil && !errors.Is(err, ppp.ErrDataFrame) {
			l.drop("ppp", err)
		}
	case sdk.ControlDisconnect:
		// The core already took the session off the data path; hang up.
		if c := l.calls[callKey{key, pkt.TunnelID, pkt.SessionID}]; c != nil {
			c.link.Close(now, string(pkt.Payload))
		}
	case sdk.ControlPeerGone:
		// The core already removed the sessions and released their
		// addresses (linkDown finds them gone); we forget the rest.
		// The core names the peer only: every key it spoke from through
		// an SA goes; its cleartext L2TP (SA id 0), if any, has no SA.
		n := 0
		for k, said := range l.said {
			if k.Peer == pkt.Peer && said != 0 {
				n += l.srv.Abandon(k, now, "the IPsec SA is gone")
				delete(l.said, k)
			}
		}
		if n > 0 {
			l.log.Info("peer gone; its L2TP tunnels ended", "peer", pkt.Peer.String(), "tunnels", n)
		}
	default:
		l.drop("kind", fmt.Errorf("control kind %d", pkt.Kind))
	}
}

func (l *lns) send(p sdk.ControlPacket) {
	if l.conn == nil {
		return
	}
	if err := l.conn.Send(p); err != nil {
		l.drop("send", err)
	}
}

// tunnelConfig makes the l2tp configuration of a tunnel from key.
func (l *lns) tunnelConfig(key peerKey) l2tp.Config {
	hello := time.Duration(l.cfg.HelloIntervalSeconds) * time.Second
	return l2tp.Config{Role: l2tp.LNS, HostName: "gatehouse", Secret: l.secret, Hello: hello,
		Send: func(b []byte) {
			l.send(sdk.ControlPacket{Kind: sdk.ControlL2TP, SAID: l.said[key], Local: key.Local, Peer: key.Peer, Payload: append([]byte(nil), b...)})
		},
		OnUp: func(t *l2tp.Tunnel) {
			l.log.Info("L2TP tunnel up", "peer", key.Peer.String(), "host", t.PeerHost, "tunnel", t.LocalID)
		},
		OnDown: func(t *l2tp.Tunnel, r l2tp.Result, why string) {
			l.log.Info("L2TP tunnel down", "peer", key.Peer.String(), "tunnel", t.LocalID, "reason", why)
		},
		OnSessionUp:   func(s *l2tp.Session) { l.sessionUp(key, s) },
		OnSessionDown: func(s *l2tp.Session, r l2tp.Result, cause *l2tp.PPPCause, why string) { l.sessionDown(key, s, why) },
	}
}

// holdEarly keeps a PPP frame that came for a call still waiting for its
// ICCN. Data messages travel outside the control window (RFC 2661 section
// 5.8), so an LAC that starts PPP as it queues the ICCN can have its first
// Configure-Request overtake it; dropped, it would cost the call a 3 s
// restart timer. Held frames are bounded and replayed once the call is up.
func (l *lns) holdEarly(ck callKey, frame []byte, now time.Time) bool {
	t := l.srv.Tunnel(ck.tunnel)
	if t == nil {
		return false
	}
	if s := t.Session(ck.session); s == nil || s.Established() {
		return false
	}
	e := l.early[ck]
	if e == nil {
		if len(l.early) >= earlyCalls {
			return false
		}
		e = &earlyFrames{since: now}
		l.early[ck] = e
	}
	if len(e.frames) >= earlyPerCall {
		return false
	}
	e.frames = append(e.frames, frame) // the payload is ours (a copy from the stream)
	return true
}

// sessionUp starts PPP on a new call.
func (l *lns) sessionUp(key peerKey, s *l2tp.Session) {
	c := &call{key: key, said: l.said[key], sess: s, started: l.now()}
	ck := callKey{key, s.Tunnel.LocalID, s.LocalID}
	l.calls[ck] = c
	gw := l.cfg.Pool.Masked().Addr().Next()
	c.link = ppp.NewLink(ppp.LinkConfig{Server: true, Auth: l.auth, MRU: l.cfg.MRU, Name: "gatehouse",
		EchoInterval: 30 * time.Second, EchoFailures: 4,
		StartCheck: func(cr ppp.Credentials) { l.startCheck(ck, c, cr) },
		Assign: func(user string) (ppp.Addresses, error) {
			a, err := l.allocate(c, user)
			return ppp.Addresses{Local: gw, Peer: a, DNS: l.cfg.DNS, NBNS: l.cfg.NBNS}, err
		},
		Send: func(frame []byte) {
			l.send(sdk.ControlPacket{Kind: sdk.ControlPPP, SAID: c.said, Local: key.Local, Peer: key.Peer,
				TunnelID: s.Tunnel.PeerID, SessionID: s.PeerID, Payload: append([]byte(nil), frame...)})
		},
		OnUp:   func(u ppp.LinkUp) { l.linkUp(c, u) },
		OnDown: func(d ppp.Disconnect) { l.linkDown(ck, c, d) },
	})
	now := l.now()
	c.link.Open(now)
	if e := l.early[ck]; e != nil {
		delete(l.early, ck)
		for _, f := range e.frames {
			if err := c.link.Input(f, now); err != nil && !errors.Is(err, ppp.ErrDataFrame) {
				l.drop("ppp", err)
			}
		}
	}
}

func (l *lns) sessionDown(key peerKey, s *l2tp.Session, why string) {
	delete(l.early, callKey{key, s.Tunnel.LocalID, s.LocalID})
	if c := l.calls[callKey{key, s.Tunnel.LocalID, s.LocalID}]; c != nil {
		c.link.Down(why) // calls linkDown
	}
}

func hostCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), hostTimeout)
}

// startCheck asks the core to authenticate the user, off the control
// loop: the answer may take a RADIUS round trip (seconds when a server is
// down), and every other call's control traffic goes on meanwhile. Called
// with l.mu held; the result is handed to the call's link under it again.
func (l *lns) startCheck(ck callKey, c *call, cr ppp.Credentials) {
	host := l.host
	c.checks++
	n := c.checks
	go func() {
		ctx, cancel := hostCtx()
		res, err := host.AuthenticateUser(ctx, sdk.UserAuthRequestFor(cr, c.key.Peer))
		cancel()
		user := ppp.StripDomain(cr.User)
		out := ppp.AuthResult{OK: err == nil && res.Code == sdk.UserAccept, AuthResponse: res.AuthenticatorResponse}
		if !out.OK {
			out.Message = res.Message
			if err != nil {
				out.Message = "the user database did not answer: " + err.Error()
			}
			l.auditTo(host, EventUserAuthFailed, "user-auth-failed", map[string]string{"user": user, "peer": c.key.Peer.String(),
				"method": cr.Proto.String(), "reason": out.Message})
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.calls[ck] != c || c.checks != n {
			return // the call ended, or started over, while the core was asked
		}
		if out.OK {
			c.user = user
			if res.FramedAddress.IsValid() {
				c.addr, c.static = res.FramedAddress, true
			}
		}
		c.link.CheckDone(l.now(), out)
	}()
}

// allocate leases the client's address: its static one, or one from the
// pool.
func (l *lns) allocate(c *call, user string) (netip.Addr, error) {
	ctx, cancel := hostCtx()
	defer cancel()
	a, err := l.host.AllocateAddress(ctx, l.cfg.Pool.String(), user, c.addr)
	if err != nil {
		return netip.Addr{}, err
	}
	c.addr = a
	return a, nil
}

func (l *lns) linkUp(c *call, u ppp.LinkUp) {
	s := c.sess
	ctx, cancel := hostCtx()
	defer cancel()
	mru := min(u.PeerMRU, l.cfg.MRU)
	if mru == 0 {
		mru = u.PeerMRU
	}
	h, err := l.host.InstallSession(ctx, sdk.SessionSpec{SAID: c.said, Local: c.key.Local, Peer: c.key.Peer,
		LocalTunnelID: s.Tunnel.LocalID, LocalSessionID: s.LocalID, PeerTunnelID: s.Tunnel.PeerID, PeerSessionID: s.PeerID,
		ClientAddress: c.addr, User: c.user, MRU: mru, LCPMagic: u.Magic})
	if err != nil {
		l.log.Error("the core refused the session", "user", c.user, "error", err)
		c.link.Close(l.now(), "the data path refused the session: "+err.Error())
		return
	}
	c.handle = h
	l.audit(EventUserConnected, "user-connected", map[string]string{"user": c.user, "address": c.addr.String(),
		"peer": c.key.Peer.String(), "auth": u.Auth.String()})
}

// linkDown ends a call: CDN with the PPP cause, session removed from the
// data path, address released, audit event with the totals.
func (l *lns) linkDown(ck callKey, c *call, d ppp.Disconnect) {
	delete(l.calls, ck)
	now := l.now()
	t := c.sess.Tunnel
	if t.Session(c.sess.LocalID) == c.sess {
		t.CloseSession(now, c.sess, l2tp.Result{Result: l2tp.CDNAdmin, Message: d.Reason},
			&l2tp.PPPCause{Code: d.Code, Proto: d.Proto, Direction: d.Direction, Message: d.Reason}, d.Reason)
	}
	ctx, cancel := hostCtx()
	defer cancel()
	if c.handle == 0 {
		// Not installed yet: the lease is ours to give back.
		if c.addr.IsValid() {
			if err := l.host.ReleaseAddress(ctx, l.cfg.Pool.String(), c.addr); err != nil {
				l.log.Warn("releasing the address", "address", c.addr.String(), "error", err)
			}
		}
		return
	}
	// An installed session's lease goes with it. If the core no longer
	// has it, the core ended it (the SA went, or an operator) and said so.
	counters, err := l.host.RemoveSession(ctx, c.handle, d.Reason)
	if errors.Is(err, sdk.ErrNotFound) {
		return
	}
	if err != nil {
		l.log.Warn("removing the session from the data path", "user", c.user, "error", err)
	}
	l.audit(EventUserDisconnected, "user-disconnected", map[string]string{"user": c.user, "address": c.addr.String(),
		"peer": c.key.Peer.String(), "reason": d.Reason, "duration": now.Sub(c.started).Round(time.Second).String(),
		"bytes_in": strconv.FormatUint(counters.BytesIn, 10), "bytes_out": strconv.FormatUint(counters.BytesOut, 10)})
}

func (l *lns) audit(id uint32, name string, fields map[string]string) {
	l.auditTo(l.host, id, name, fields)
}

// auditTo sends an audit event through host (read under l.mu by callers
// that run without it).
func (l *lns) auditTo(host sdk.Host, id uint32, name string, fields map[string]string) {
	ctx, cancel := hostCtx()
	defer cancel()
	if err := host.EmitAudit(ctx, sdk.AuditEvent{ID: id, Name: name, Fields: fields}); err != nil {
		l.log.Warn("audit event lost", "event", name, "error", err)
	}
}
