package remote

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/eap"
	"github.com/gatehouse/gatehouse/auth/radius"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/plugins/sdk"
	"github.com/gatehouse/gatehouse/ppp"
)

// IKEv2 road warriors (remote_access.ikev2) share the pool, the users,
// the login limits, RADIUS accounting and `gatehouse sessions` with
// L2TP/IPsec. The engine asks for an address once a client is
// authenticated (IKEv2Lease) and gives it back when the IKE SA goes
// (IKEv2Release); the SA host tells us of the client's child SAs, whose
// counters are the session's.

// RuleIKEv2 names the IKEv2 road warriors' peer and SAs.
const RuleIKEv2 = "remote-access-ikev2"

// ClientOutKey is where the data path finds the outbound SA to an IKEv2
// road warrior: by its virtual address, which stays when the client
// moves (MOBIKE) and is unique where outer addresses behind one NAT are
// not.
func ClientOutKey(a netip.Addr) sad.OutKey { return sad.OutKey{Rule: RuleIKEv2 + "/out", Peer: a} }

// clientHandles start high so an IKEv2 session's accounting handle never
// meets an L2TP one (the data path's table counts from 1).
const clientHandles = 1 << 62

// client is an IKEv2 road warrior's session.
type client struct {
	handle uint64
	user   string
	addr   netip.Addr
	peer   netip.AddrPort
	since  time.Time
	grant  grant
	// inSPI is its current child's inbound SPI (0 until it is up); past
	// sums the children rekeyed away.
	inSPI uint32
	past  dataplane.L2TPCounters
	// lastIn is when its packet count last grew (idle timeouts), seen
	// the packets counted then.
	lastIn time.Time
	seen   uint64
	// why is the reason the core ended it (Disconnect, timeouts).
	why string
	// lastDHCP is when its last DHCPINFORM was answered (Unix ns).
	lastDHCP int64
}

// ikev2State is the road warriors' part of Access, guarded by Access.mu.
type ikev2State struct {
	clients    map[netip.Addr]*client
	nextHandle uint64
	// disconnect ends a client's IKE SA (the engine's Disconnect); sad
	// reads its SAs' counters. Both nil until IKE runs.
	disconnect func(addr netip.Addr, why string) bool
	sad        *sad.DB
	// sendClient sends an IP packet to a client through its SA (the
	// data path's SendToClient); nil until the data path runs.
	sendClient func(addr netip.Addr, pkt []byte) error
	probes     []probe // expireClients's, between ticks
}

// ServesIKEv2 reports whether IKEv2 road warriors are answered
// (remote_access.ikev2).
func (r *Access) ServesIKEv2() bool { return r.cfg.IKEv2 != nil }

// SetIKEv2 connects the road warriors to the IKE engine (disconnect), the
// SA database (db) and the data path (send, for DHCP answers).
func (r *Access) SetIKEv2(disconnect func(addr netip.Addr, why string) bool, db *sad.DB, send func(addr netip.Addr, pkt []byte) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.v2.disconnect, r.v2.sad, r.v2.sendClient = disconnect, db, send
}

// IKEv2Lease gives an authenticated road warrior an address from the
// pool (want: the one RADIUS or the users file gave it) and opens its
// session; the DNS servers are remote_access.dns.
func (r *Access) IKEv2Lease(user string, outer netip.AddrPort, want netip.Addr) (netip.Addr, []netip.Addr, error) {
	user = ppp.StripDomain(user)
	a, err := r.AllocateAddress(context.Background(), "", user, want)
	if err != nil {
		return netip.Addr{}, nil, err
	}
	if r.outsidePool(a) {
		if err := r.hostRoute(a, true); err != nil {
			r.pool.Release(a)
			return netip.Addr{}, nil, fmt.Errorf("routing %v to the TUN: %w", a, err)
		}
	}
	now := r.now()
	r.mu.Lock()
	g := r.pending[grantKey{outer, strings.ToLower(user)}]
	delete(r.pending, grantKey{outer, strings.ToLower(user)})
	r.v2.nextHandle++
	c := &client{handle: clientHandles + r.v2.nextHandle, user: user, addr: a, peer: outer, since: now, grant: g, lastIn: now}
	r.v2.clients[a] = c
	r.mu.Unlock()
	if r.acct != nil {
		r.acct.start(c.handle, user, a, outer, now, g.class)
	}
	dns := config.Addrs(r.cfg.DNS)
	r.EmitAudit(context.Background(), sdk.AuditEvent{ID: sdk.EventUserConnected, Name: "user-connected", Fields: map[string]string{
		"user": user, "address": a.String(), "peer": outer.String(), "protocol": "ikev2"}})
	return a, dns, nil
}

// IKEv2Release ends a road warrior's session when its IKE SA goes (why,
// unless the core ended it for a reason of its own): the address goes
// back, accounting stops, and the audit log says why.
func (r *Access) IKEv2Release(a netip.Addr, why string) {
	r.mu.Lock()
	c := r.v2.clients[a]
	delete(r.v2.clients, a)
	r.mu.Unlock()
	if c == nil {
		return
	}
	if err := r.pool.Release(a); err != nil {
		r.log.Warn("releasing a road warrior's address", zap.Stringer("address", a), zap.Error(err))
	}
	r.unroute(a)
	if c.why != "" {
		why = c.why
	}
	cnt := r.clientCounters(c)
	if r.acct != nil {
		r.acct.stop(c.handle, cnt, why)
	}
	r.EmitAudit(context.Background(), sdk.AuditEvent{ID: sdk.EventUserDisconnected, Name: "user-disconnected", Fields: map[string]string{
		"user": c.user, "address": a.String(), "peer": c.peer.String(), "reason": why, "protocol": "ikev2",
		"duration": r.now().Sub(c.since).Round(time.Second).String(),
		"bytes_in": strconv.FormatUint(cnt.BytesIn, 10), "bytes_out": strconv.FormatUint(cnt.BytesOut, 10)}})
}

// IKEv2Child records a road warrior's child SA as its current one (its
// first, a rekey, or a move to peer).
func (r *Access) IKEv2Child(a netip.Addr, inSPI uint32, peer netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.v2.clients[a]; c != nil {
		c.inSPI, c.peer = inSPI, peer
	}
}

// IKEv2ChildGone adds a child's counters to its session's totals before
// its SAs leave the database (in and out may be nil).
func (r *Access) IKEv2ChildGone(a netip.Addr, inSPI uint32, in *sad.InSA, out *sad.OutSA) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.v2.clients[a]
	if c == nil {
		return
	}
	addSA(&c.past, in, out)
	if c.inSPI == inSPI {
		c.inSPI = 0
	}
}

// addSA adds an inbound and an outbound SA's counts to t.
func addSA(t *dataplane.L2TPCounters, in *sad.InSA, out *sad.OutSA) {
	if in != nil && in.ESP != nil {
		st := in.ESP.Counters()
		t.BytesIn += st.Bytes.Load()
		t.PacketsIn += st.Packets.Load()
	}
	if out != nil && out.ESP != nil {
		st := out.ESP.Counters()
		t.BytesOut += st.Bytes.Load()
		t.PacketsOut += st.Packets.Load()
	}
}

// clientCounters are a session's totals: its children rekeyed away and
// its current one.
func (r *Access) clientCounters(c *client) dataplane.L2TPCounters {
	r.mu.Lock()
	t, db, spi := c.past, r.v2.sad, c.inSPI
	t.LastIn = c.lastIn
	r.mu.Unlock()
	if db != nil {
		var in *sad.InSA
		if spi != 0 {
			in = db.Inbound(spi)
		}
		addSA(&t, in, db.Outbound(ClientOutKey(c.addr)))
	}
	return t
}

// Session is a remote-access session of either protocol, as `gatehouse
// sessions` shows it.
type Session struct {
	Protocol string // l2tp or ikev2
	User     string
	Client   netip.Addr
	// Peer is the client's outer address (and NAT-T port); Clear: L2TP
	// without IPsec.
	Peer     netip.AddrPort
	Clear    bool
	Since    time.Time
	Counters dataplane.L2TPCounters
}

// Sessions lists every session, L2TP's then IKEv2's.
func (r *Access) Sessions() []Session {
	var out []Session
	for _, s := range r.table.All() {
		out = append(out, l2tpSession(s))
	}
	for _, c := range r.clients() {
		out = append(out, Session{Protocol: "ikev2", User: c.user, Client: c.addr, Peer: c.peer, Since: c.since, Counters: r.clientCounters(&c)})
	}
	return out
}

func l2tpSession(s *dataplane.L2TPSession) Session {
	return Session{Protocol: "l2tp", User: s.User, Client: s.Client, Peer: s.Peer, Clear: s.Clear, Since: s.Since, Counters: s.Counters()}
}

// clients lists the road warriors' sessions (copies).
func (r *Access) clients() []client {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]client, 0, len(r.v2.clients))
	for _, c := range r.v2.clients {
		out = append(out, *c)
	}
	return out
}

// ClientCount is how many IKEv2 road warriors hold an address.
func (r *Access) ClientCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.v2.clients)
}

// endClients ends road warriors' IKE SAs (the client is told), each for
// why; match picks them. It returns the sessions ended.
func (r *Access) endClients(match func(c *client) bool, why func(c *client) string) []Session {
	r.mu.Lock()
	disconnect := r.v2.disconnect
	var hit []client
	for _, c := range r.v2.clients {
		if match(c) {
			c.why = why(c)
			hit = append(hit, *c)
		}
	}
	r.mu.Unlock()
	var out []Session
	for _, c := range hit {
		s := Session{Protocol: "ikev2", User: c.user, Client: c.addr, Peer: c.peer, Since: c.since, Counters: r.clientCounters(&c)}
		// The engine releases the address (IKEv2Release) as the SA goes;
		// called without our lock, which Release takes.
		if disconnect != nil && disconnect(c.addr, c.why) {
			out = append(out, s)
		}
	}
	return out
}

// expireClients notes when each road warrior last sent (its inbound
// packet count grew), and ends those idle or connected too long, as
// expireIdle does L2TP sessions. The one-second tick runs it.
func (r *Access) expireClients(now time.Time) {
	limit := r.cfg.IdleTimeout.Duration
	r.mu.Lock()
	db, probes := r.v2.sad, r.v2.probes[:0]
	for _, c := range r.v2.clients {
		probes = append(probes, probe{c, c.inSPI, c.past.PacketsIn})
	}
	r.mu.Unlock()
	// The current children's inbound counts, read without the lock.
	for i, p := range probes {
		if db == nil || p.spi == 0 {
			continue
		}
		if in := db.Inbound(p.spi); in != nil && in.ESP != nil {
			probes[i].in += in.ESP.Counters().Packets.Load()
		}
	}
	r.mu.Lock()
	for _, p := range probes {
		if p.in != p.c.seen {
			p.c.seen, p.c.lastIn = p.in, now
		}
	}
	clear(probes) // no client kept alive until the next tick
	r.v2.probes = probes
	r.mu.Unlock()
	r.endClients(func(c *client) bool { return r.clientExpired(c, now, limit) != "" },
		func(c *client) string { return r.clientExpired(c, now, limit) })
}

// probe is a road warrior's inbound packet count being read (the tick
// reuses the slice: no allocation per client per second).
type probe struct {
	c   *client
	spi uint32
	in  uint64
}

// clientExpired says why a road warrior's session is over ("" if not).
func (r *Access) clientExpired(c *client, now time.Time, limit time.Duration) string {
	g := c.grant
	if g.sessionTimeout > 0 && now.Sub(c.since) >= g.sessionTimeout {
		return fmt.Sprintf("session timeout: connected for %v (Session-Timeout %v from RADIUS)", now.Sub(c.since).Round(time.Second), g.sessionTimeout)
	}
	userLimit, what := limit, "idle_timeout"
	if g.idleTimeout > 0 {
		userLimit, what = g.idleTimeout, "Idle-Timeout from RADIUS"
	}
	if idle := now.Sub(c.lastIn); userLimit > 0 && idle >= userLimit {
		return fmt.Sprintf("idle for %v (%s %v)", idle.Round(time.Second), what, userLimit)
	}
	return ""
}

// IKEv2EAP starts EAP-MSCHAPv2 for a road warrior at outer: the password
// is checked as L2TP's are (users_file or RADIUS, within the login
// limits), and the MSK comes from the MPPE keys the check gives.
func (r *Access) IKEv2EAP(outer netip.AddrPort) ikev2.EAPSession {
	s := &eapLogin{}
	s.Server = eap.NewServer(r.serverName(), func(user string, ac, pc [16]byte, nt [24]byte) (string, []byte, error) {
		res, err := r.authenticate(context.Background(), sdk.UserAuthRequest{Method: sdk.MethodMSCHAPv2, User: user,
			Challenge: ac[:], PeerChallenge: pc[:], Response: nt[:], Peer: outer}, false)
		reason := res.Message
		if err != nil {
			reason = "the user database did not answer: " + err.Error()
		}
		if err == nil && res.Code == sdk.UserAccept {
			msk := eap.MPPEMSK(res.MPPERecvKey, res.MPPESendKey)
			if msk != nil {
				s.framed = res.FramedAddress
				return res.AuthenticatorResponse, msk, nil
			}
			reason = "the user database accepted the user but gave no MPPE keys, which EAP-MSCHAPv2 needs for the MSK"
		}
		r.EmitAudit(context.Background(), sdk.AuditEvent{ID: sdk.EventUserAuthFailed, Name: "user-auth-failed", Fields: map[string]string{
			"user": ppp.StripDomain(user), "peer": outer.String(), "method": "eap-mschapv2", "reason": reason, "protocol": "ikev2"}})
		return "", nil, fmt.Errorf("%w: %s: %s", eap.ErrRejected, user, reason)
	}, rand.Reader)
	return s
}

// IKEv2EAPRelay relays a road warrior's EAP to the RADIUS servers (RFC
// 3579, eap: radius), which run the method (EAP-MSCHAPv2, PEAP...): the
// MSK comes from the MS-MPPE keys of the Access-Accept, whose address,
// timeouts and Class apply as for other users.
func (r *Access) IKEv2EAPRelay(outer netip.AddrPort) ikev2.EAPSession {
	ask := func(ctx context.Context, q radius.EAPRequest) (radius.EAPResult, error) {
		a, _, err := r.plugins.Authenticator(sdk.MethodPAP)
		if err != nil {
			return radius.EAPResult{}, fmt.Errorf("RADIUS: %w", err)
		}
		res, err := a.RelayEAP(ctx, sdk.EAPRelayRequest{User: q.User, EAP: q.EAP, State: q.State, Server: q.Server, Peer: outer})
		if err != nil {
			return radius.EAPResult{}, err
		}
		v := res.Verdict
		out := radius.EAPResult{Challenge: res.Challenge, EAP: res.EAP, State: res.State, Result: radius.Result{Server: res.Server,
			Accept: !res.Challenge && v.Code == sdk.UserAccept, Message: v.Message, MPPESendKey: v.MPPESendKey, MPPERecvKey: v.MPPERecvKey,
			FramedAddress: v.FramedAddress}}
		user := ppp.StripDomain(q.User)
		switch {
		case res.Challenge:
		case out.Accept:
			r.noteGrant(outer, user, v)
		default:
			r.EmitAudit(context.Background(), sdk.AuditEvent{ID: sdk.EventUserAuthFailed, Name: "user-auth-failed", Fields: map[string]string{
				"user": user, "peer": outer.String(), "method": "eap-radius", "reason": v.Message, "protocol": "ikev2"}})
		}
		return out, nil
	}
	return eap.NewRelay(ask, outer.Addr().String(), relayRound, rand.Reader)
}

// relayRound bounds one EAP round relayed to RADIUS: the plugin tries
// each server in turn within its own timeouts.
const relayRound = 30 * time.Second

// eapLogin is EAP-MSCHAPv2 with the address the user database gave the
// user (RADIUS Framed-IP-Address, the users file's fixed address).
type eapLogin struct {
	*eap.Server
	framed netip.Addr
}

func (s *eapLogin) FramedAddress() netip.Addr { return s.framed }

// serverName is what EAP-MSCHAPv2 challenges call us: RADIUS's
// NAS-Identifier when set, else gatehouse.
func (r *Access) serverName() string {
	if rc := r.cfg.PPP.Radius; rc != nil && rc.NASIdentifier != "" {
		return rc.NASIdentifier
	}
	return "gatehouse"
}
