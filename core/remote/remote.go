// Package remote is the core's half of L2TP/IPsec remote access. Access
// is the Host the l2tp plugin calls (address pool, user database,
// data-path sessions, audit), the relay between the data path's L2TP
// control packets and the plugin's control stream, the login limits, and
// the RADIUS side: accounting (accounting.go) and Disconnect-Requests
// (disconnect.go). Sessions live in the data path's table, so a plugin
// that dies takes no established session with it. Start with New and
// Access.Attach.
package remote

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/throttle"
	"github.com/gatehouse/gatehouse/auth/users"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/events"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/core/pool"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/plugins/sdk"
	"github.com/gatehouse/gatehouse/ppp"
)

// Access is the core's half of L2TP/IPsec remote access: the Host
// the L2TP plugin calls (address pool, user database, data-path sessions,
// audit) and the relay between the data path and the plugin's control
// stream. Sessions live in the data path's table, so a plugin that dies
// takes no established session with it.
type Access struct {
	log    *zap.Logger
	events *events.Log // nil in tests that run without a daemon
	cfg    *config.RemoteAccess
	pool   *pool.Pool
	users  *users.DB
	table  *dataplane.L2TPTable

	in      chan dataplane.L2TPControl
	notes   chan sdk.ControlPacket // the core's own news for the plugin
	conn    atomic.Pointer[sdk.ControlConn]
	dropped atomic.Uint64

	mu sync.Mutex
	// sendL2TP transmits an L2TP message through a peer's transport SA
	// (the plane's SendL2TP); nil until the data path runs.
	sendL2TP func(key sad.OutKey, port uint16, msg []byte) error
	// sendClear transmits cleartext L2TP (the plane's SendL2TPClear).
	sendClear func(from, to netip.AddrPort, msg []byte) error
	peers     map[peerKey]raPeer
	clearN    int // cleartext peers in peers
	// attached is the plugin instance the control stream is open to.
	attached sdk.L2TPClient
	// plugins finds the RADIUS plugin when ppp.radius is set; acct sends
	// its accounting (nil without).
	plugins *pluginhost.Host
	acct    *accounting
	// grants are what an Access-Accept said of a user (Session-Timeout,
	// Idle-Timeout, Class): pending until the session starts, then by
	// session handle. Guarded by mu.
	pending map[grantKey]grant
	grants  map[uint64]grant
	// v2 holds the IKEv2 road warriors (ikev2.go). Guarded by mu.
	v2 ikev2State
	// hostRoute routes (add) or unroutes a client address outside the
	// pool into the TUN; nil until the data path runs.
	hostRoute func(a netip.Addr, add bool) error
	// limits slows password guessing; checking counts the logins being
	// checked per client (its SA's outer address and port). Guarded by
	// mu; throttled counts attempts refused unchecked, by kind.
	limits      *throttle.Limiter
	checking    map[netip.AddrPort]int
	maxChecking int
	throttled   [2]atomic.Uint64 // user, address
	now         func() time.Time
}

// grantKey finds a login's grant when its session starts.
type grantKey struct {
	peer netip.AddrPort
	user string
}

type grant struct {
	sessionTimeout, idleTimeout time.Duration
	class                       [][]byte
	at                          time.Time
}

// noteGrant keeps what the server said of an accepted user until the
// session starts (a minute at most).
func (r *Access) noteGrant(peer netip.AddrPort, user string, res sdk.UserAuthResult) {
	g := grant{sessionTimeout: time.Duration(res.SessionTimeoutSeconds) * time.Second, idleTimeout: time.Duration(res.IdleTimeoutSeconds) * time.Second, at: time.Now()}
	if len(res.Class) > 0 {
		g.class = [][]byte{res.Class}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, old := range r.pending {
		if g.at.Sub(old.at) > time.Minute { // a login that never became a session
			delete(r.pending, k)
		}
	}
	r.pending[grantKey{peer, strings.ToLower(user)}] = g
}

// takeGrant moves a login's grant to its session.
func (r *Access) takeGrant(s *dataplane.L2TPSession) grant {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := grantKey{s.Peer, strings.ToLower(s.User)}
	g := r.pending[k]
	delete(r.pending, k)
	if g.sessionTimeout > 0 || g.idleTimeout > 0 {
		r.grants[s.Handle] = g
	}
	return g
}

// Rule names remote access's SAs and rules (policy.remoteAccessRule).
const Rule = "remote-access"

// OutKey names the transport SA to a client: its address and, when
// UDP-encapsulated, its NAT-T port, so clients behind one NAT each have
// their own.
func OutKey(peer netip.AddrPort) sad.OutKey {
	return sad.OutKey{Rule: Rule + "/out", Peer: peer.Addr().Unmap(), Port: peer.Port()}
}

// raPeer is what the data path told us of a peer: how to reach it.
type raPeer struct {
	key  sad.OutKey
	port uint16 // its L2TP port inside IPsec
	// A cleartext peer's last control message, and our endpoint it was
	// sent to (where the answers leave from).
	seen  time.Time
	local netip.AddrPort
}

// peerKey tells a peer's IPsec SA from its cleartext L2TP: the plugin
// marks cleartext with SA id 0 (ESP never uses SPI 0), so a cleartext
// datagram can never be answered through, or installed on, an IPsec peer.
type peerKey struct {
	addr  netip.AddrPort
	clear bool
}

// Cleartext peers have no SA whose end would tell us they are gone: one
// unheard of for clearPeerIdle with no session is forgotten (an L2TP
// tunnel says Hello every 60 s), and at most maxClearPeers are known at
// once, so spoofed sources cannot grow the table without bound.
const (
	clearPeerIdle = 5 * time.Minute
	maxClearPeers = 4096
)

// controlQueue bounds what waits for the plugin; beyond it, control
// traffic is dropped and counted (the peers retransmit). 10,000 calls
// opened at once from one host overflowed 4096 entries by 54,000 drops and
// 16384 by 21,000; 65536 (6.5 MiB of buffer) dropped none in two runs
// from four hosts. noteQueue holds the core's own news (a disconnect per
// session, a peer gone per SA).
const (
	controlQueue = 65536
	noteQueue    = 4096
)

// Config wires remote access into the daemon.
type Config struct {
	Log          *zap.Logger
	RemoteAccess *config.RemoteAccess
	// Plugins finds the RADIUS plugin when users are kept in RADIUS.
	Plugins *pluginhost.Host
	Events  *events.Log
}

// New makes remote access. StartRADIUS, Forward and, for each l2tp plugin
// instance, Attach run it; the data path hands it control packets
// (OnControl) and a way to send (SetSender).
func New(c Config) (*Access, error) {
	r, err := newAccess(c.Log, c.RemoteAccess)
	if err != nil {
		return nil, err
	}
	r.plugins, r.events = c.Plugins, c.Events
	return r, nil
}

// StartRADIUS starts what remote_access.ppp.radius asks for until ctx
// ends: accounting, and the Disconnect-Request listener.
func (r *Access) StartRADIUS(ctx context.Context) error {
	rc := r.cfg.PPP.Radius
	if rc == nil {
		return nil
	}
	if rc.AccountingOn() {
		r.acct = newAccounting(r.log.Named("accounting"), r.plugins, rc.InterimInterval.Duration)
		go r.acct.run(ctx)
	}
	if rc.DisconnectListen != "" {
		if err := r.startDisconnects(ctx, rc); err != nil {
			return fmt.Errorf("remote_access.ppp.radius: %w", err)
		}
	}
	return nil
}

// Pool is the address pool.
func (r *Access) Pool() *pool.Pool { return r.pool }

// Table is the data path's session table.
func (r *Access) Table() *dataplane.L2TPTable { return r.table }

// SetHostRoute gives the way to route a client address outside the pool
// into the TUN (add) or take the route away; call it before the data path
// runs.
func (r *Access) SetHostRoute(f func(a netip.Addr, add bool) error) { r.hostRoute = f }

// Tick ends idle sessions and sends the interim accounting that is due;
// the daemon calls it every second.
func (r *Access) Tick(now time.Time) {
	r.expireIdle(now)
	r.forgetClearPeers(now)
	r.expireClients(now)
	if r.acct != nil {
		r.acct.tick(now, r.countersOf)
	}
}

// countersOf is a session's counters by its handle and address, either
// protocol.
func (r *Access) countersOf(handle uint64, addr netip.Addr) (dataplane.L2TPCounters, bool) {
	if handle < clientHandles {
		s := r.table.Get(handle)
		if s == nil {
			return dataplane.L2TPCounters{}, false
		}
		return s.Counters(), true
	}
	r.mu.Lock()
	c := r.v2.clients[addr]
	r.mu.Unlock()
	if c == nil || c.handle != handle {
		return dataplane.L2TPCounters{}, false
	}
	return r.clientCounters(c), true
}

// ControlDropped counts control packets the relay to the plugin dropped
// (queue full, plugin away); peers retransmit.
func (r *Access) ControlDropped() uint64 { return r.dropped.Load() }

// LoginLimits reports the attempts refused unchecked, by kind, and the
// users locked out now.
func (r *Access) LoginLimits() (unchecked map[string]uint64, locked int) {
	return map[string]uint64{string(throttle.KindUser): r.throttled[0].Load(), string(throttle.KindAddress): r.throttled[1].Load()},
		r.limits.Locked(r.now())
}

func newAccess(log *zap.Logger, ra *config.RemoteAccess) (*Access, error) {
	p, err := pool.New(ra.Pool.Prefix)
	if err != nil {
		return nil, err
	}
	f := ra.PPP.FailedLogins
	r := &Access{log: log, cfg: ra, pool: p, table: dataplane.NewL2TPTable(),
		in: make(chan dataplane.L2TPControl, controlQueue), notes: make(chan sdk.ControlPacket, noteQueue), peers: map[peerKey]raPeer{},
		pending: map[grantKey]grant{}, grants: map[uint64]grant{}, checking: map[netip.AddrPort]int{},
		maxChecking: cmp.Or(ra.PPP.MaxAuthenticatingPerSA, config.DefaultMaxAuthenticatingPerSA), now: time.Now,
		limits: throttle.New(throttle.Config{UserFree: f.UserFree, AddressFree: f.AddressFree, Delay: f.Delay.Duration, MaxDelay: f.MaxDelay.Duration,
			LockoutAfter: f.LockoutAfter, Lockout: f.Lockout.Duration, Forget: f.ForgetAfter.Duration})}
	r.table.Pool = p.Prefix()
	r.v2.clients = map[netip.Addr]*client{}
	if ra.PPP.UsersFile != "" {
		if r.users, err = users.Load(ra.PPP.UsersFile); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// l2tpConfig is what the plugin is configured with.
func (r *Access) l2tpConfig() sdk.L2TPConfig {
	return sdk.L2TPConfig{Pool: r.pool.Prefix(), PPPAuth: r.cfg.PPP.Auth, MRU: r.cfg.PPP.MRU, DNS: config.Addrs(r.cfg.DNS), NBNS: config.Addrs(r.cfg.NBNS)}
}

// Attach starts a (new) plugin instance: Host, configuration, and the
// control stream, which lives until ctx ends or the plugin dies.
// A plugin already attached (a reload) is only configured again.
func (r *Access) Attach(ctx, life context.Context, tc sdk.L2TPClient) error {
	r.mu.Lock()
	fresh := r.attached != tc
	r.mu.Unlock()
	if fresh {
		if err := tc.Start(ctx, r); err != nil {
			return err
		}
	}
	warnings, err := tc.Configure(ctx, r.l2tpConfig())
	if err != nil {
		return err
	}
	for _, w := range warnings {
		r.log.Warn("plugin warning", zap.String("warning", w))
	}
	if !fresh {
		return nil
	}
	conn, err := tc.OpenControl(life)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.attached = tc
	r.mu.Unlock()
	r.conn.Store(&conn)
	go r.receive(conn)
	return nil
}

// SetSender connects the relay to the data path: send goes through a
// peer's transport SA, sendClear (nil unless allow_cleartext_l2tp) out of
// the cleartext L2TP socket.
func (r *Access) SetSender(send func(key sad.OutKey, port uint16, msg []byte) error, sendClear func(from, to netip.AddrPort, msg []byte) error) {
	r.mu.Lock()
	r.sendL2TP, r.sendClear = send, sendClear
	r.mu.Unlock()
}

// forgetClearPeers forgets the cleartext peers that have been silent for
// clearPeerIdle and hold no session.
func (r *Access) forgetClearPeers(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clearN == 0 {
		return
	}
	var live map[netip.AddrPort]bool
	for k, p := range r.peers {
		if !k.clear || now.Sub(p.seen) < clearPeerIdle {
			continue
		}
		if live == nil {
			live = map[netip.AddrPort]bool{}
			for _, s := range r.table.All() {
				if s.Clear {
					live[s.Peer] = true
				}
			}
		}
		if !live[k.addr] {
			delete(r.peers, k)
			r.clearN--
		}
	}
}

// notePeer remembers how to reach the peer a control packet came from;
// false: a new cleartext peer beyond maxClearPeers, to be dropped.
func (r *Access) notePeer(c dataplane.L2TPControl) bool {
	k := peerKey{c.Peer, c.SPI == 0}
	r.mu.Lock()
	defer r.mu.Unlock()
	p, known := r.peers[k]
	if k.clear {
		if !known && r.clearN >= maxClearPeers {
			return false
		}
		if !known {
			r.clearN++
		}
		p.port, p.seen, p.local = c.ClientL2TPPort, r.now(), c.Local
	} else {
		p = raPeer{key: OutKey(c.Peer), port: c.ClientL2TPPort}
	}
	r.peers[k] = p
	return true
}

// PeerGone runs when a client's last transport SA goes (IKE delete, DPD,
// expiry): its sessions leave the data path at once, their addresses go
// back to the pool, their ends are logged, and the plugin is told to
// forget the peer. It must not block: IKE calls it under its lock.
func (r *Access) PeerGone(peer netip.AddrPort, why string) {
	for _, s := range r.table.All() {
		if s.Peer != peer || s.Clear {
			continue
		}
		r.end(s, "the IPsec SA went: "+why)
	}
	r.mu.Lock()
	delete(r.peers, peerKey{peer, false})
	r.mu.Unlock()
	r.note(sdk.ControlPacket{Kind: sdk.ControlPeerGone, Peer: peer})
}

// note queues news for the plugin; it never blocks.
func (r *Access) note(p sdk.ControlPacket) {
	select {
	case r.notes <- p:
	default:
		r.dropped.Add(1)
	}
}

// Disconnect ends the sessions of a user or a client address (gatehouse
// disconnect): an L2TP session leaves the data path at once and the
// plugin hangs up the call politely; an IKEv2 client is sent a delete
// of its IKE SA.
func (r *Access) Disconnect(target string) []Session {
	addr, _ := netip.ParseAddr(target)
	var out []Session
	for _, s := range r.table.All() {
		if s.Client != addr && !strings.EqualFold(s.User, target) {
			continue
		}
		r.hangUp(s, "disconnected by the operator")
		out = append(out, l2tpSession(s))
	}
	return append(out, r.endClients(func(c *client) bool { return c.addr == addr || strings.EqualFold(c.user, target) },
		func(*client) string { return "disconnected by the operator" })...)
}

func (r *Access) outsidePool(a netip.Addr) bool {
	return r.hostRoute != nil && a.IsValid() && !r.pool.Prefix().Contains(a)
}

// unroute removes an outside-pool address's route when its session ends.
func (r *Access) unroute(a netip.Addr) {
	if r.outsidePool(a) {
		if err := r.hostRoute(a, false); err != nil {
			r.log.Warn("removing a client's route", zap.Stringer("address", a), zap.Error(err))
		}
	}
}

func (r *Access) dropGrant(handle uint64) {
	r.mu.Lock()
	delete(r.grants, handle)
	r.mu.Unlock()
}

// expireIdle hangs up the sessions that have sent nothing for
// idle_timeout, or for the user's own Idle-Timeout from RADIUS (LCP echoes
// do not count: they prove the client is there, not that it is used), and
// those past their Session-Timeout. The data path's one-second tick runs
// it.
func (r *Access) expireIdle(now time.Time) {
	limit := r.cfg.IdleTimeout.Duration
	r.mu.Lock()
	grants := maps.Clone(r.grants) // few: only users RADIUS gave limits
	r.mu.Unlock()
	if limit <= 0 && len(grants) == 0 {
		return
	}
	for _, s := range r.table.All() {
		g := grants[s.Handle]
		if g.sessionTimeout > 0 && now.Sub(s.Since) >= g.sessionTimeout {
			r.hangUp(s, fmt.Sprintf("session timeout: connected for %v (Session-Timeout %v from RADIUS)", now.Sub(s.Since).Round(time.Second), g.sessionTimeout))
			continue
		}
		userLimit, what := limit, "idle_timeout"
		if g.idleTimeout > 0 {
			userLimit, what = g.idleTimeout, "Idle-Timeout from RADIUS"
		}
		if userLimit <= 0 {
			continue
		}
		if idle := now.Sub(s.Counters().LastIn); idle >= userLimit {
			r.hangUp(s, fmt.Sprintf("idle for %v (%s %v)", idle.Round(time.Second), what, userLimit))
		}
	}
}

// hangUp ends a session in the core at once and has the plugin hang up
// the call politely (LCP Terminate-Request, CDN).
func (r *Access) hangUp(s *dataplane.L2TPSession, why string) {
	r.end(s, why)
	r.note(sdk.ControlPacket{Kind: sdk.ControlDisconnect, Local: s.Local, Peer: s.Peer, TunnelID: s.LocalTunnel,
		SessionID: s.LocalSession, Payload: []byte(why)})
}

// end takes a session off the data path, releases its address and logs
// its end (event 5411, as the plugin does for the ends it sees).
func (r *Access) end(s *dataplane.L2TPSession, why string) {
	if _, ok := r.table.Remove(s.Handle); !ok {
		return // the plugin removed it first
	}
	if err := r.pool.Release(s.Client); err != nil {
		r.log.Warn("releasing a session's address", zap.Stringer("address", s.Client), zap.Error(err))
	}
	c := s.Counters()
	r.dropGrant(s.Handle)
	r.unroute(s.Client)
	if r.acct != nil {
		r.acct.stop(s.Handle, c, why)
	}
	r.EmitAudit(context.Background(), sdk.AuditEvent{ID: sdk.EventUserDisconnected, Name: "user-disconnected", Fields: map[string]string{
		"user": s.User, "address": s.Client.String(), "peer": s.Peer.String(), "reason": why,
		"duration": time.Since(s.Since).Round(time.Second).String(),
		"bytes_in": strconv.FormatUint(c.BytesIn, 10), "bytes_out": strconv.FormatUint(c.BytesOut, 10)}})
}

// OnControl is the data path's hand-off; it must not block.
func (r *Access) OnControl(c dataplane.L2TPControl) {
	select {
	case r.in <- c:
	default:
		r.dropped.Add(1)
	}
}

// Forward relays the data path's control traffic to the plugin until ctx
// ends.
func (r *Access) Forward(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-r.notes:
			if cp := r.conn.Load(); cp != nil {
				if err := (*cp).Send(n); err != nil {
					r.dropped.Add(1)
				}
			}
		case c := <-r.in:
			if !r.notePeer(c) {
				r.dropped.Add(1)
				continue
			}
			cp := r.conn.Load()
			if cp == nil {
				r.dropped.Add(1)
				continue
			}
			kind := sdk.ControlL2TP
			if c.PPP {
				kind = sdk.ControlPPP
			}
			if err := (*cp).Send(sdk.ControlPacket{Kind: kind, SAID: uint64(c.SPI), Local: c.Local, Peer: c.Peer,
				TunnelID: c.Tunnel, SessionID: c.Session, Payload: c.Payload}); err != nil {
				r.dropped.Add(1)
			}
		}
	}
}

// receive sends what the plugin says out through the peers' SAs, or in
// clear to the cleartext peers.
func (r *Access) receive(conn sdk.ControlConn) {
	for {
		pkt, err := conn.Recv()
		if err != nil {
			r.conn.CompareAndSwap(&conn, nil)
			return
		}
		clear := pkt.SAID == 0
		r.mu.Lock()
		peer, ok := r.peers[peerKey{pkt.Peer, clear}]
		send, sendClear := r.sendL2TP, r.sendClear
		r.mu.Unlock()
		if !ok || (!clear && send == nil) || (clear && sendClear == nil) {
			r.dropped.Add(1)
			continue
		}
		msg := pkt.Payload
		if pkt.Kind == sdk.ControlPPP {
			// A PPP control frame goes in a data message with the
			// peer's ids (RFC 2661 section 5.4).
			msg = append(l2tp.AppendDataHeader(make([]byte, 0, 10+len(pkt.Payload)), pkt.TunnelID, pkt.SessionID, false, 0), pkt.Payload...)
		}
		if clear {
			err = sendClear(peer.local, pkt.Peer, msg)
		} else {
			err = send(peer.key, peer.port, msg)
		}
		if err != nil {
			r.dropped.Add(1)
			r.log.Debug("L2TP control message not sent", zap.Stringer("peer", pkt.Peer), zap.Error(err))
		}
	}
}

// --- sdk.Host ---

func (r *Access) InstallSession(_ context.Context, s sdk.SessionSpec) (uint64, error) {
	clear := s.SAID == 0
	r.mu.Lock()
	peer, ok := r.peers[peerKey{s.Peer, clear}]
	r.mu.Unlock()
	if !ok && clear {
		return 0, fmt.Errorf("%w: no cleartext L2TP peer %v", sdk.ErrNotFound, s.Peer)
	}
	if !ok {
		return 0, fmt.Errorf("%w: no IPsec SA known for %v", sdk.ErrNotFound, s.Peer)
	}
	if owner, held := r.pool.Owner(s.ClientAddress); !held || owner != s.User {
		return 0, fmt.Errorf("%w: %v is not leased to %s", sdk.ErrInvalid, s.ClientAddress, s.User)
	}
	local := s.Local
	if clear {
		local = peer.local // where its control messages came in: our answers leave from there
	}
	sess := &dataplane.L2TPSession{Local: local, Peer: s.Peer, Clear: clear, L2TPPort: peer.port,
		LocalTunnel: s.LocalTunnelID, LocalSession: s.LocalSessionID, PeerTunnel: s.PeerTunnelID, PeerSession: s.PeerSessionID,
		Client: s.ClientAddress, User: s.User, MRU: s.MRU, Magic: s.LCPMagic, OutKey: peer.key}
	h, err := r.table.Add(sess)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
	}
	if r.outsidePool(sess.Client) {
		// A RADIUS Framed-IP-Address outside the pool: the pool's route
		// does not cover it.
		if err := r.hostRoute(sess.Client, true); err != nil {
			r.table.Remove(h)
			return 0, fmt.Errorf("%w: %v", sdk.ErrUnavailable, err)
		}
		r.log.Info("static address outside the pool routed to its session", zap.String("user", s.User), zap.Stringer("address", sess.Client))
	}
	g := r.takeGrant(sess)
	if r.acct != nil {
		r.acct.start(sess.Handle, sess.User, sess.Client, sess.Peer, sess.Since, g.class)
	}
	r.log.Info("session installed", zap.String("user", s.User), zap.Stringer("address", s.ClientAddress), zap.Stringer("peer", s.Peer), zap.Bool("ipsec", !clear))
	return h, nil
}

func (r *Access) RemoveSession(_ context.Context, handle uint64, reason string) (sdk.SessionCounters, error) {
	s, ok := r.table.Remove(handle)
	if !ok {
		return sdk.SessionCounters{}, fmt.Errorf("%w: session %d", sdk.ErrNotFound, handle)
	}
	if err := r.pool.Release(s.Client); err != nil { // the lease goes with the session (sdk.Host)
		r.log.Warn("releasing a session's address", zap.Stringer("address", s.Client), zap.Error(err))
	}
	c := s.Counters()
	r.dropGrant(handle)
	r.unroute(s.Client)
	if r.acct != nil {
		r.acct.stop(handle, c, reason)
	}
	r.log.Info("session removed", zap.String("user", s.User), zap.Stringer("address", s.Client), zap.String("reason", reason))
	return sdk.SessionCounters{BytesIn: c.BytesIn, BytesOut: c.BytesOut, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut}, nil
}

func (r *Access) AllocateAddress(_ context.Context, _ string, user string, requested netip.Addr) (netip.Addr, error) {
	a, err := r.pool.Allocate(user, requested)
	if errors.Is(err, pool.ErrExhausted) || errors.Is(err, pool.ErrInUse) {
		r.log.Warn("no address for a user", zap.String("user", user), zap.Error(err))
		return netip.Addr{}, fmt.Errorf("%w: %v", sdk.ErrUnavailable, err)
	}
	return a, err
}

func (r *Access) ReleaseAddress(_ context.Context, _ string, a netip.Addr) error {
	if err := r.pool.Release(a); err != nil {
		return fmt.Errorf("%w: %v", sdk.ErrNotFound, err)
	}
	return nil
}

// AuthenticateUser checks a user, within the limits on guessing: a user or
// client address that failed too often waits (or is locked out) and its
// attempts are refused without being checked, and one client may have
// only so many logins being checked at once.
func (r *Access) AuthenticateUser(ctx context.Context, req sdk.UserAuthRequest) (sdk.UserAuthResult, error) {
	return r.authenticate(ctx, req, true)
}

// authenticate is AuthenticateUser; perClient applies the bound on logins
// checked at once per client, which is an L2TP client's IPsec SA and its
// many PPP sessions. An IKEv2 login is the only one of its IKE SA, and
// IKE SAs being set up are bounded per source address by the engine: many
// IKE SAs from one address and port (a load test) are not one client.
func (r *Access) authenticate(ctx context.Context, req sdk.UserAuthRequest, perClient bool) (sdk.UserAuthResult, error) {
	user, addr, now := ppp.StripDomain(req.User), req.Peer.Addr(), r.now()
	if ref := r.limits.Check(user, addr, now); ref != nil {
		r.throttled[kindIndex(ref.Kind)].Add(1)
		r.log.Debug("login refused unchecked: too many failed logins", zap.String("user", user), zap.Stringer("peer", req.Peer), zap.Error(ref))
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: "too many failed logins: " + ref.Error()}, nil
	}
	if perClient {
		if !r.startCheck(req.Peer) {
			r.log.Info("login refused: this client already has logins being checked", zap.String("user", user), zap.Stringer("peer", req.Peer),
				zap.Int("max_authenticating_per_sa", r.maxChecking))
			return sdk.UserAuthResult{Code: sdk.UserReject, Message: fmt.Sprintf("more than %d logins at once from this client", r.maxChecking)}, nil
		}
		defer r.endCheck(req.Peer)
	}
	res, err := r.checkUser(ctx, req)
	switch {
	case err != nil:
		// The servers did not answer: not the user's failure.
	case res.Code == sdk.UserAccept:
		r.limits.Succeeded(user, addr)
	default:
		if ref := r.limits.Failed(user, addr, now); ref != nil {
			r.limitReached(user, req.Peer, ref)
		}
	}
	return res, err
}

func kindIndex(k throttle.Kind) int {
	if k == throttle.KindAddress {
		return 1
	}
	return 0
}

// limitReached tells the operator that a user or address now has to wait
// (or is locked out): one audit event per failure past the allowance,
// which the waits themselves make rare.
func (r *Access) limitReached(user string, peer netip.AddrPort, ref *throttle.Refusal) {
	what := "must wait"
	if ref.Locked {
		what = "is locked out"
	}
	msg := fmt.Sprintf("%s %s %s %s after %d failed logins (remote_access.ppp.failed_logins)", ref.Kind, ref.Key, what,
		ref.Until.Sub(r.now()).Round(time.Millisecond), ref.Failures)
	r.log.Warn(msg, zap.String("user", user), zap.Stringer("peer", peer))
	if r.events != nil {
		r.events.Emit(events.Record{ID: events.LoginThrottled, Remote: peer.Addr().String(), Reason: string(ref.Kind), Message: msg,
			Fields: map[string]string{"user": user, "peer": peer.String(), "kind": string(ref.Kind), "failures": strconv.Itoa(ref.Failures),
				"until": ref.Until.UTC().Format(time.RFC3339), "locked": strconv.FormatBool(ref.Locked)}})
	}
}

// startCheck takes one of a client's places for a login being checked.
func (r *Access) startCheck(peer netip.AddrPort) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checking[peer] >= r.maxChecking {
		return false
	}
	r.checking[peer]++
	return true
}

func (r *Access) endCheck(peer netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checking[peer]--; r.checking[peer] <= 0 {
		delete(r.checking, peer)
	}
}

// checkUser asks the RADIUS plugin when ppp.radius is set, else checks
// the users file.
func (r *Access) checkUser(ctx context.Context, req sdk.UserAuthRequest) (sdk.UserAuthResult, error) {
	if r.cfg.PPP.Radius != nil {
		a, _, err := r.plugins.Authenticator(req.Method)
		if err != nil {
			return sdk.UserAuthResult{}, fmt.Errorf("RADIUS: %w", err)
		}
		res, err := a.AuthenticateUser(ctx, req)
		if err == nil && res.Code == sdk.UserAccept {
			r.noteGrant(req.Peer, ppp.StripDomain(req.User), res)
		}
		return res, err
	}
	if r.users == nil {
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: "no user database configured (remote_access.ppp.users_file)"}, nil
	}
	c, err := req.PPPCredentials()
	if err != nil {
		return sdk.UserAuthResult{}, err
	}
	res, u, err := r.users.Check(c)
	if errors.Is(err, users.ErrUnknownUser) {
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: "unknown user"}, nil
	}
	if err != nil {
		return sdk.UserAuthResult{}, err
	}
	if !res.OK {
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: res.Message}, nil
	}
	return sdk.UserAuthResult{Code: sdk.UserAccept, AuthenticatorResponse: res.AuthResponse, FramedAddress: u.Address,
		MPPERecvKey: res.MPPERecvKey, MPPESendKey: res.MPPESendKey}, nil
}

func (r *Access) EmitAudit(_ context.Context, ev sdk.AuditEvent) error {
	if r.events != nil {
		rec := events.Record{ID: int(ev.ID), Fields: ev.Fields}
		rec.Remote, rec.Reason = ev.Fields["peer"], ev.Fields["reason"]
		r.events.Emit(rec)
	}
	fields := []zap.Field{zap.Uint32("event_id", ev.ID), zap.String("event", ev.Name)}
	for k, v := range ev.Fields {
		fields = append(fields, zap.String(k, v))
	}
	r.log.Info("audit", fields...)
	return nil
}
