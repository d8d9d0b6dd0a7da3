package remote

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/labs/testbin"
	"github.com/gatehouse/gatehouse/plugins/sdk"
	"github.com/gatehouse/gatehouse/ppp"
)

// raClient is a LAC with a PPP client whose packets go through the core's
// relay as if they had come through an SA from peer.
type raClient struct {
	peer  netip.AddrPort
	clear bool // L2TP without IPsec
	lac   *l2tp.Tunnel
	link  *ppp.Link
	up    *ppp.LinkUp
}

// sent is an L2TP message the core sent to the client at a NAT-T port,
// or in clear to its L2TP port.
type sent struct {
	port  uint16
	b     []byte
	clear bool
}

type raRig struct {
	t       *testing.T
	r       *Access
	mu      sync.Mutex
	clients map[uint16]*raClient // by NAT-T port
	inbox   chan sent
	now     time.Time
}

var (
	raServer      = netip.MustParseAddrPort("203.0.113.1:4500")
	raServerClear = netip.MustParseAddrPort("203.0.113.1:1701")
)

// dial connects a client through an SA from port.
func (g *raRig) dial(port uint16, user, password string) *raClient {
	return g.dialVia(port, user, password, false)
}

// dialVia connects a client from port, through an SA or in clear.
func (g *raRig) dialVia(port uint16, user, password string, clear bool) *raClient {
	c := &raClient{peer: netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), port), clear: clear}
	g.mu.Lock()
	g.clients[port] = c
	g.mu.Unlock()
	local, spi, l2tpPort := raServer, uint32(port), uint16(l2tp.Port)
	if clear {
		local, spi, l2tpPort = raServerClear, 0, port
	}
	ctl := func(isPPP bool, tun, sess uint16, b []byte) {
		g.r.OnControl(dataplane.L2TPControl{PPP: isPPP, Local: local, Peer: c.peer, SPI: spi, Tunnel: tun, Session: sess,
			Payload: append([]byte(nil), b...), ClientL2TPPort: l2tpPort})
	}
	c.lac = l2tp.NewTunnel(l2tp.Config{Role: l2tp.LAC,
		Send: func(b []byte) { ctl(false, 0, 0, b) },
		OnUp: func(t *l2tp.Tunnel) { t.OpenSession(g.now) },
		OnSessionUp: func(s *l2tp.Session) {
			c.link = ppp.NewLink(ppp.LinkConfig{Auth: []ppp.AuthProto{ppp.AuthMSCHAPv2}, User: user, Password: password,
				Send:   func(f []byte) { ctl(true, s.Tunnel.PeerID, s.PeerID, f) },
				OnUp:   func(u ppp.LinkUp) { c.up = &u },
				OnDown: func(ppp.Disconnect) {}})
			c.link.Open(g.now)
		}}, 0x0101)
	c.lac.Start(g.now)
	return c
}

// pump hands the core's messages to the clients until cond holds, or
// fails after 10 s; cond is checked again every few milliseconds, for
// what changes without a message (the plugin restarting).
func (g *raRig) pump(cond func() bool) bool {
	limit := time.NewTimer(10 * time.Second)
	defer limit.Stop()
	recheck := time.NewTicker(5 * time.Millisecond)
	defer recheck.Stop()
	for !cond() {
		select {
		case m := <-g.inbox:
			g.mu.Lock()
			c := g.clients[m.port]
			g.mu.Unlock()
			if c == nil {
				continue
			}
			if c.clear != m.clear {
				g.t.Errorf("a message for %v went the wrong way (cleartext %v)", c.peer, m.clear)
				continue
			}
			h, payload, err := l2tp.ParseHeader(m.b)
			if err != nil {
				g.t.Errorf("the core sent a bad L2TP message: %v", err)
				continue
			}
			if h.Control {
				_ = c.lac.Input(m.b, g.now)
			} else if c.link != nil {
				_ = c.link.Input(payload, g.now)
			}
		case <-recheck.C:
		case <-limit.C:
			return cond()
		}
	}
	return true
}

// newPluginRig runs the real l2tp plugin binary under the plugin host
// for remote access ra, with users alice, bob and carol. The core's
// sends land in the rig's inbox.
func newPluginRig(t *testing.T, ra *config.RemoteAccess) (*raRig, *pluginhost.Host) {
	dir := t.TempDir()
	bin, err := testbin.Build(dir, map[string]string{"../../plugins/l2tp": "l2tp"})
	if err != nil {
		t.Fatal(err)
	}
	ra.PPP.UsersFile = filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(ra.PPP.UsersFile, []byte("users:\n  alice: {password: 'correct horse'}\n  bob: {password: 'battery staple'}\n  carol: {password: 'no ipsec here'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := newAccess(zap.NewNop(), ra)
	if err != nil {
		t.Fatal(err)
	}
	g := &raRig{t: t, r: r, clients: map[uint16]*raClient{}, inbox: make(chan sent, 256), now: time.Now()}
	r.SetSender(func(key sad.OutKey, port uint16, msg []byte) error {
		if port == l2tp.Port {
			g.inbox <- sent{port: key.Port, b: append([]byte(nil), msg...)}
		}
		return nil
	}, func(_, to netip.AddrPort, msg []byte) error {
		g.inbox <- sent{port: to.Port(), b: append([]byte(nil), msg...), clear: true}
		return nil
	})
	life, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.Forward(life)
	host := pluginhost.New(zap.NewNop(), pluginhost.Options{}, func(ctx context.Context, p *pluginhost.Plugin) error {
		if tc, ok := p.L2TP(); ok {
			return r.Attach(ctx, life, tc)
		}
		return nil
	})
	if err := host.Start(context.Background(), pluginhost.Spec{Name: "l2tp", Path: filepath.Join(bin, "l2tp")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.StopAll)
	return g, host
}

// TestRemoteAccessSurvivesPluginKill runs the real l2tp plugin binary
// under the plugin host, connects a client, kills the plugin, and checks
// that the session stays installed and a new client gets in once the
// plugin is back.
func TestRemoteAccessSurvivesPluginKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the plugin binary")
	}
	g, host := newPluginRig(t, &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		PPP: config.PPP{Auth: []string{"mschapv2"}, MRU: 1400}})
	r := g.r
	alice := g.dial(4500, "alice", "correct horse")
	if !g.pump(func() bool { return alice.up != nil && r.table.Len() == 1 }) {
		t.Fatalf("alice not connected: up %v, %d sessions, %d dropped", alice.up, r.table.Len(), r.dropped.Load())
	}
	s := r.table.All()[0]
	if s.User != "alice" || s.Client != alice.up.Local || s.Peer != alice.peer || s.OutKey.Port != 4500 || s.L2TPPort != l2tp.Port {
		t.Fatalf("installed %+v", s)
	}

	p, _ := host.Get("l2tp")
	pid := p.Status().PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	await.State(t, 10*time.Second, "the plugin back", func() (bool, string) {
		st := p.Status()
		return st.Restarts >= 1 && st.State == pluginhost.StateRunning && st.PID != pid && r.conn.Load() != nil, fmt.Sprintf("%+v", st)
	})
	if r.table.Len() != 1 {
		t.Fatal("the established session went with the plugin")
	}
	bob := g.dial(4501, "bob", "battery staple")
	if !g.pump(func() bool { return bob.up != nil && r.table.Len() == 2 }) {
		t.Fatalf("bob not connected after the restart: up %v, %d sessions", bob.up, r.table.Len())
	}
	if bob.up.Local == alice.up.Local {
		t.Fatal("bob got alice's address")
	}
	// Alice's IPsec SA goes (DPD). The restarted plugin never knew her
	// session: the core ends it, frees her address and tells the plugin;
	// she can connect again from the same NAT port.
	r.PeerGone(alice.peer, "DPD: the peer stopped answering")
	if r.table.Len() != 1 || r.table.All()[0].User != "bob" {
		t.Fatalf("after alice's SA went: %d sessions", r.table.Len())
	}
	if _, held := r.pool.Owner(alice.up.Local); held {
		t.Fatal("alice's address is still leased after her SA went")
	}
	again := g.dial(4500, "alice", "correct horse")
	if !g.pump(func() bool { return again.up != nil && r.table.Len() == 2 }) {
		t.Fatalf("alice could not reconnect after her SA went: up %v, %d sessions", again.up, r.table.Len())
	}
}

// TestRemoteAccessIdleTimeout: a session that sends nothing for
// idle_timeout leaves the data path, its address goes back, and the
// plugin is told to hang up with the reason; a busy one stays.
func TestRemoteAccessIdleTimeout(t *testing.T) {
	ra := &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		IdleTimeout: config.Duration{Duration: time.Minute}}
	r, err := newAccess(zap.NewNop(), ra)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(time.Now().Unix(), 0) // the data path keeps whole seconds
	add := func(user string, since time.Time, tunnel uint16) *dataplane.L2TPSession {
		addr, err := r.pool.Allocate(user, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		s := &dataplane.L2TPSession{Peer: netip.MustParseAddrPort("192.0.2.10:4500"), LocalTunnel: tunnel, LocalSession: 1,
			Client: addr, User: user, Since: since}
		if _, err := r.table.Add(s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	idle := add("alice", start.Add(-30*time.Second), 1)
	busy := add("bob", start, 2)
	r.expireIdle(start.Add(20 * time.Second))
	if r.table.Len() != 2 {
		t.Fatalf("%d sessions after 50 s and 20 s idle; both should stay", r.table.Len())
	}
	r.expireIdle(start.Add(40 * time.Second))
	if left := r.table.All(); len(left) != 1 || left[0] != busy {
		t.Fatalf("after alice's idle minute: %d sessions (bob's should stay)", len(left))
	}
	if used, _ := r.pool.Usage(); used != 1 {
		t.Fatalf("%d addresses in use; alice's should be back", used)
	}
	select {
	case n := <-r.notes:
		if n.Kind != sdk.ControlDisconnect || n.TunnelID != idle.LocalTunnel || !strings.HasPrefix(string(n.Payload), "idle for 1m10s (idle_timeout 1m0s)") {
			t.Fatalf("note to the plugin: %+v %q", n, n.Payload)
		}
	default:
		t.Fatal("the plugin was not told to hang up")
	}
	// Off: nothing ends.
	r.cfg.IdleTimeout.Duration = 0
	r.expireIdle(start.Add(time.Hour))
	if r.table.Len() != 1 {
		t.Fatal("idle_timeout 0 ended a session")
	}
}

// TestRemoteAccessUserLimits: a RADIUS Session-Timeout ends a session
// however busy, and a user's Idle-Timeout replaces idle_timeout for that
// user only; grants of logins that never became sessions expire.
func TestRemoteAccessUserLimits(t *testing.T) {
	ra := &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		IdleTimeout: config.Duration{Duration: time.Hour}}
	r, err := newAccess(zap.NewNop(), ra)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(time.Now().Unix(), 0)
	peer := netip.MustParseAddrPort("192.0.2.10:4500")
	add := func(user string, tunnel uint16, res sdk.UserAuthResult) *dataplane.L2TPSession {
		r.noteGrant(peer, user, res)
		addr, _ := r.pool.Allocate(user, netip.Addr{})
		s := &dataplane.L2TPSession{Peer: peer, LocalTunnel: tunnel, LocalSession: 1, Client: addr, User: user, Since: start}
		if _, err := r.table.Add(s); err != nil {
			t.Fatal(err)
		}
		if g := r.takeGrant(s); g.sessionTimeout != time.Duration(res.SessionTimeoutSeconds)*time.Second {
			t.Fatalf("grant %+v", g)
		}
		return s
	}
	add("henry", 1, sdk.UserAuthResult{Code: sdk.UserAccept, SessionTimeoutSeconds: 60})
	add("ida", 2, sdk.UserAuthResult{Code: sdk.UserAccept, IdleTimeoutSeconds: 30})
	plain := add("jack", 3, sdk.UserAuthResult{Code: sdk.UserAccept})
	r.expireIdle(start.Add(20 * time.Second))
	if r.table.Len() != 3 {
		t.Fatalf("%d sessions at 20 s", r.table.Len())
	}
	r.expireIdle(start.Add(31 * time.Second)) // ida's own idle limit
	r.expireIdle(start.Add(61 * time.Second)) // henry's session limit
	if left := r.table.All(); len(left) != 1 || left[0] != plain {
		t.Fatalf("%d sessions left; jack's should stay", len(left))
	}
	var reasons []string
	for range 2 {
		n := <-r.notes
		reasons = append(reasons, string(n.Payload))
	}
	if !strings.Contains(reasons[0], "Idle-Timeout from RADIUS 30s") || !strings.Contains(reasons[1], "Session-Timeout 1m0s from RADIUS") {
		t.Fatalf("reasons %q", reasons)
	}
	if terminateCause(reasons[0]) != 4 || terminateCause(reasons[1]) != 5 {
		t.Fatalf("causes %d %d", terminateCause(reasons[0]), terminateCause(reasons[1]))
	}
	if len(r.grants) != 0 {
		t.Fatalf("grants of ended sessions left: %v", r.grants)
	}
}

// TestLoginLimits: three wrong passwords are free; the fourth makes the
// user wait, with a 5413 event, and during the wait even the right
// password is refused without being checked; once the wait is over the
// right password gets in and clears the record. A client with its places
// taken by logins being checked is refused another.
func TestLoginLimits(t *testing.T) {
	dir := t.TempDir()
	usersFile := filepath.Join(dir, "users.yaml")
	if err := os.WriteFile(usersFile, []byte("users:\n  alice: {password: 'correct horse'}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	ra := &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		PPP: config.PPP{Auth: []string{"pap"}, UsersFile: usersFile, MRU: 1400, MaxAuthenticatingPerSA: 2,
			FailedLogins: config.FailedLogins{Delay: config.Duration{Duration: 300 * time.Millisecond}}}}
	r, err := newAccess(zap.New(core), ra)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(1_800_000_000, 0)
	r.now = func() time.Time { return clock }
	peer := netip.MustParseAddrPort("198.51.100.7:4500")
	login := func(pw string) sdk.UserAuthResult {
		t.Helper()
		res, err := r.AuthenticateUser(context.Background(), sdk.UserAuthRequest{Method: sdk.MethodPAP, User: "alice", Password: sdk.Secret(pw), Peer: peer})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i := 1; i <= 4; i++ {
		if res := login("wrong"); res.Code != sdk.UserReject || strings.Contains(res.Message, "too many") {
			t.Fatalf("wrong password %d: %+v", i, res)
		}
	}
	warned := logs.FilterMessageSnippet("user alice must wait").All()
	if len(warned) != 1 {
		t.Fatalf("want one warning that alice must wait, got %d", len(warned))
	}
	if res := login("correct horse"); res.Code != sdk.UserReject || !strings.Contains(res.Message, "too many failed logins") {
		t.Fatalf("the right password during the wait: %+v", res)
	}
	if r.throttled[0].Load() != 1 {
		t.Fatalf("refused-unchecked count %d, want 1", r.throttled[0].Load())
	}
	clock = clock.Add(300 * time.Millisecond)
	if res := login("correct horse"); res.Code != sdk.UserAccept {
		t.Fatalf("the right password after the wait: %+v", res)
	}
	if res := login("wrong"); strings.Contains(res.Message, "too many") || len(logs.FilterMessageSnippet("must wait").All()) != 1 {
		t.Fatalf("a success should have cleared the record: %+v", res)
	}
	// Two logins of this client are being checked: a third is refused.
	r.startCheck(peer)
	r.startCheck(peer)
	if res := login("correct horse"); res.Code != sdk.UserReject || !strings.Contains(res.Message, "more than 2 logins at once") {
		t.Fatalf("a third login at once: %+v", res)
	}
	r.endCheck(peer)
	if res := login("correct horse"); res.Code != sdk.UserAccept {
		t.Fatalf("with a place free: %+v", res)
	}
}
