package main

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/gatehouse/gatehouse/auth/users"
	"github.com/gatehouse/gatehouse/core/pool"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/plugins/sdk"
	"github.com/gatehouse/gatehouse/ppp"
)

// fakeHost is the core's side as far as the plugin can tell: a pool, the
// users file, a session table and the audit trail.
type fakeHost struct {
	mu       sync.Mutex
	pool     *pool.Pool
	db       *users.DB
	sessions map[uint64]sdk.SessionSpec
	next     uint64
	audit    []string
	// slow holds a user's check until the channel is closed (a RADIUS
	// server taking its time).
	slow map[string]chan struct{}
}

func (h *fakeHost) InstallSession(_ context.Context, s sdk.SessionSpec) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	h.sessions[h.next] = s
	return h.next, nil
}

func (h *fakeHost) RemoveSession(_ context.Context, handle uint64, _ string) (sdk.SessionCounters, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[handle]
	if !ok {
		return sdk.SessionCounters{}, sdk.ErrNotFound
	}
	delete(h.sessions, handle)
	if err := h.pool.Release(s.ClientAddress); err != nil { // the lease goes with the session
		return sdk.SessionCounters{}, err
	}
	return sdk.SessionCounters{BytesIn: 100, BytesOut: 200}, nil
}

func (h *fakeHost) AllocateAddress(_ context.Context, _, user string, want netip.Addr) (netip.Addr, error) {
	return h.pool.Allocate(user, want)
}

func (h *fakeHost) ReleaseAddress(_ context.Context, _ string, a netip.Addr) error {
	return h.pool.Release(a)
}

func (h *fakeHost) AuthenticateUser(ctx context.Context, r sdk.UserAuthRequest) (sdk.UserAuthResult, error) {
	c, err := r.PPPCredentials()
	if err != nil {
		return sdk.UserAuthResult{}, err
	}
	h.mu.Lock()
	gate := h.slow[ppp.StripDomain(c.User)]
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return sdk.UserAuthResult{}, ctx.Err()
		}
	}
	res, u, err := h.db.Check(c)
	if errors.Is(err, users.ErrUnknownUser) {
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: err.Error()}, nil
	}
	if !res.OK {
		return sdk.UserAuthResult{Code: sdk.UserReject, Message: res.Message}, nil
	}
	return sdk.UserAuthResult{Code: sdk.UserAccept, AuthenticatorResponse: res.AuthResponse, FramedAddress: u.Address}, nil
}

func (h *fakeHost) EmitAudit(_ context.Context, ev sdk.AuditEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := ev.Name
	for _, k := range []string{"user", "address", "reason", "bytes_out"} {
		if v, ok := ev.Fields[k]; ok {
			s += " " + k + "=" + v
		}
	}
	h.audit = append(h.audit, s)
	return nil
}

func (h *fakeHost) snapshot() (int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions), append([]string(nil), h.audit...)
}

// client is one LAC with a PPP client, speaking to the plugin as the core
// would relay it.
type client struct {
	peer   netip.AddrPort
	lac    *l2tp.Tunnel
	sess   *l2tp.Session
	link   *ppp.Link
	up     *ppp.LinkUp
	down   string
	server netip.AddrPort
	send   func(kind sdk.ControlKind, tun, sess uint16, b []byte)
}

type rig struct {
	t       *testing.T
	host    *fakeHost
	conn    sdk.ControlConn
	mu      sync.Mutex
	clients map[netip.AddrPort]*client
	// inbox holds what the plugin sent, for pump to hand to the clients.
	inbox chan sdk.ControlPacket
	now   time.Time
	// hold, when set, sees each L2TP message a client sends and keeps
	// those it returns true for from the server.
	hold func(b []byte) bool
	// clear: the next clients dial L2TP without IPsec (SA id 0).
	clear bool
}

func newRig(t *testing.T, auth []string, usersYAML string) *rig {
	db, err := users.Parse("users.yaml", []byte(usersYAML))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pool.New(netip.MustParsePrefix("10.8.0.0/24"))
	r := &rig{t: t, host: &fakeHost{pool: p, db: db, sessions: map[uint64]sdk.SessionSpec{}}, clients: map[netip.AddrPort]*client{},
		inbox: make(chan sdk.ControlPacket, 1024), now: time.Unix(9000, 0)}
	pc, _ := plugin.TestPluginGRPCConn(t, false, sdk.PluginSet(sdk.Impl{L2TP: newLNS(hclog.NewNullLogger())}))
	t.Cleanup(func() { pc.Close() })
	raw, err := pc.Dispense(sdk.KindL2TP)
	if err != nil {
		t.Fatal(err)
	}
	tc := raw.(sdk.L2TPClient)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := tc.Start(ctx, r.host); err != nil {
		t.Fatal(err)
	}
	warn, err := tc.Configure(ctx, sdk.L2TPConfig{Pool: p.Prefix(), DNS: []netip.Addr{netip.MustParseAddr("10.1.0.53")}, PPPAuth: auth, MRU: 1400})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(auth, ","), "pap") != (len(warn) > 0) {
		t.Errorf("warnings %v for %v", warn, auth)
	}
	if r.conn, err = tc.OpenControl(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			p, err := r.conn.Recv()
			if err != nil {
				return
			}
			r.inbox <- p
		}
	}()
	return r
}

var serverAddr = netip.MustParseAddrPort("203.0.113.1:1701")

func (r *rig) dial(peer string, user, password string, auth []ppp.AuthProto) *client {
	c := &client{peer: netip.MustParseAddrPort(peer), server: serverAddr}
	r.mu.Lock()
	r.clients[c.peer] = c
	r.mu.Unlock()
	said := uint64(7)
	if r.clear {
		said = 0
	}
	send := func(kind sdk.ControlKind, tun, sess uint16, b []byte) {
		if err := r.conn.Send(sdk.ControlPacket{Kind: kind, SAID: said, Local: serverAddr, Peer: c.peer, TunnelID: tun, SessionID: sess,
			Payload: append([]byte(nil), b...)}); err != nil {
			r.t.Error(err)
		}
	}
	c.lac = l2tp.NewTunnel(l2tp.Config{Role: l2tp.LAC, HostName: "laptop",
		Send: func(b []byte) {
			if r.hold == nil || !r.hold(b) {
				send(sdk.ControlL2TP, 0, 0, b)
			}
		},
		OnUp: func(t *l2tp.Tunnel) {
			c.sess, _ = t.OpenSession(r.now)
		},
		OnSessionUp: func(s *l2tp.Session) {
			c.link = ppp.NewLink(ppp.LinkConfig{Auth: auth, User: user, Password: password,
				Send:   func(f []byte) { send(sdk.ControlPPP, s.Tunnel.PeerID, s.PeerID, f) },
				OnUp:   func(u ppp.LinkUp) { c.up = &u },
				OnDown: func(d ppp.Disconnect) { c.down = d.Reason }})
			c.link.Open(r.now)
		},
		OnSessionDown: func(_ *l2tp.Session, _ l2tp.Result, _ *l2tp.PPPCause, why string) {
			if c.down == "" {
				c.down = why
			}
		},
	}, 0x1234) // every client uses the same LAC tunnel id, as Windows clients may
	c.lac.Start(r.now)
	c.send = send
	return c
}

// pump relays the plugin's packets to the clients until cond holds, or
// fails after 5 s. What cond watches besides the clients (the host's
// sessions and audit) changes on calls from the plugin, so it is checked
// again every few milliseconds even when no packet comes.
func (r *rig) pump(cond func() bool) bool {
	limit := time.NewTimer(5 * time.Second)
	defer limit.Stop()
	recheck := time.NewTicker(5 * time.Millisecond)
	defer recheck.Stop()
	for !cond() {
		select {
		case p := <-r.inbox:
			r.mu.Lock()
			c := r.clients[p.Peer]
			r.mu.Unlock()
			switch {
			case c == nil:
			case p.Kind == sdk.ControlL2TP:
				_ = c.lac.Input(p.Payload, r.now)
			case c.link != nil:
				_ = c.link.Input(p.Payload, r.now)
			}
		case <-recheck.C:
		case <-limit.C:
			return cond()
		}
	}
	return true
}

const usersYAML = `users:
  alice: {password: "correct horse"}
  bob: {password: "battery staple", address: 10.8.0.77}
  carol: {password: "c4rol!"}
  dave: {password: "d4ve!"}
`

func TestLNSSessionsBehindOneNAT(t *testing.T) {
	r := newRig(t, []string{"mschapv2", "chap"}, usersYAML)
	all := []ppp.AuthProto{ppp.AuthMSCHAPv2, ppp.AuthCHAPMD5}
	// Four clients behind one NAT: one public address, four NAT-T ports,
	// the same L2TP tunnel id from each.
	cs := []*client{
		r.dial("198.51.100.7:4500", "alice", "correct horse", all),
		r.dial("198.51.100.7:4501", `CORP\bob`, "battery staple", all),
		r.dial("198.51.100.7:4502", "carol", "c4rol!", []ppp.AuthProto{ppp.AuthCHAPMD5}),
		r.dial("198.51.100.7:4503", "dave", "d4ve!", all),
	}
	if !r.pump(func() bool {
		for _, c := range cs {
			if c.up == nil {
				return false
			}
		}
		n, _ := r.host.snapshot() // the server installs after the client sees IPCP open
		return n == 4
	}) {
		for _, c := range cs {
			t.Logf("%v: up %v down %q", c.peer, c.up, c.down)
		}
		t.Fatal("not every client came up")
	}
	seen := map[netip.Addr]bool{}
	for _, c := range cs {
		if seen[c.up.Local] || !netip.MustParsePrefix("10.8.0.0/24").Contains(c.up.Local) || c.up.Peer != netip.MustParseAddr("10.8.0.1") {
			t.Errorf("%v got %v (server %v)", c.peer, c.up.Local, c.up.Peer)
		}
		seen[c.up.Local] = true
		if len(c.up.DNS) == 0 || c.up.DNS[0].String() != "10.1.0.53" {
			t.Errorf("%v DNS %v", c.peer, c.up.DNS)
		}
	}
	if cs[1].up.Local.String() != "10.8.0.77" {
		t.Errorf("bob's static address: %v", cs[1].up.Local)
	}
	n, audit := r.host.snapshot()
	if n != 4 {
		t.Fatalf("%d sessions installed: %v", n, audit)
	}
	// Each installed session names its own peer and both id pairs.
	r.host.mu.Lock()
	for _, s := range r.host.sessions {
		if s.PeerTunnelID != 0x1234 || s.LocalTunnelID == 0 || s.PeerSessionID == 0 || s.LocalSessionID == 0 || s.MRU == 0 || s.User == "" {
			t.Errorf("session spec %+v", s)
		}
	}
	r.host.mu.Unlock()
	// Carol hangs up: her session goes, her address comes back, the
	// others stay.
	cs[2].link.Close(r.now, "user hung up")
	if !r.pump(func() bool { n, a := r.host.snapshot(); return n == 3 && len(a) == 5 }) {
		t.Fatal("carol's session was not removed")
	}
	_, audit = r.host.snapshot()
	joined := strings.Join(audit, "\n")
	if !strings.Contains(joined, "user-disconnected user=carol address="+cs[2].up.Local.String()+" reason=the peer terminated the link (LCP Terminate-Request) bytes_out=200") {
		t.Errorf("audit:\n%s", joined)
	}
	if _, held := r.host.pool.Owner(cs[2].up.Local); held {
		t.Error("carol's address is still leased")
	}
	if used, _ := r.host.pool.Usage(); used != 3 {
		t.Errorf("pool usage %d", used)
	}
	// Dave's IPsec SA goes: the core removes his session and lease and
	// says so; the plugin forgets his tunnel, sends nothing, releases
	// nothing and logs no second end.
	dave := cs[3]
	r.host.mu.Lock()
	for h, s := range r.host.sessions {
		if s.Peer == dave.peer {
			delete(r.host.sessions, h)
			r.host.pool.Release(s.ClientAddress)
		}
	}
	r.host.mu.Unlock()
	if err := r.conn.Send(sdk.ControlPacket{Kind: sdk.ControlPeerGone, Peer: dave.peer}); err != nil { // as the core sends it
		t.Fatal(err)
	}
	// A fresh client from the same port is a new peer to the plugin.
	again := r.dial(dave.peer.String(), "dave", "d4ve!", all)
	// The client may see IPCP open before the server has installed the
	// session and logged it: wait for both.
	if !r.pump(func() bool { _, a := r.host.snapshot(); return again.up != nil && len(a) >= 6 }) {
		t.Fatalf("dave could not come back after his SA went: %q", again.down)
	}
	if n, a := r.host.snapshot(); n != 3 || len(a) != 6 || !strings.HasPrefix(a[5], "user-connected user=dave") {
		t.Fatalf("after dave's SA went and he came back: %d sessions, audit %v", n, a)
	}
	if used, _ := r.host.pool.Usage(); used != 3 {
		t.Errorf("pool usage %d after dave came back, want 3", used)
	}
}

// TestLNSHoldsPPPBeforeICCN: a LAC that starts PPP as it sends the ICCN
// can have its first Configure-Request arrive first (data messages are
// outside the control window). The LNS holds it and answers once the call
// connects; the client never needs its restart timer (which this rig
// never runs).
// TestLNSPeerGoneSparesCleartext: the end of an IPsec SA names only the
// peer's address and port; a call without IPsec from that same address
// and port (SA id 0) has no SA and stays, so its hang-up is still seen.
func TestLNSPeerGoneSparesCleartext(t *testing.T) {
	r := newRig(t, []string{"mschapv2"}, usersYAML)
	r.clear = true
	c := r.dial("198.51.100.7:4500", "alice", "correct horse", []ppp.AuthProto{ppp.AuthMSCHAPv2})
	if !r.pump(func() bool { n, _ := r.host.snapshot(); return c.up != nil && n == 1 }) {
		t.Fatalf("not up: %q", c.down)
	}
	if err := r.conn.Send(sdk.ControlPacket{Kind: sdk.ControlPeerGone, Peer: c.peer}); err != nil {
		t.Fatal(err)
	}
	c.link.Close(r.now, "user hung up")
	if !r.pump(func() bool { n, a := r.host.snapshot(); return n == 0 && len(a) == 2 }) {
		_, a := r.host.snapshot()
		t.Fatalf("the cleartext call did not end: %v", a)
	}
	if _, a := r.host.snapshot(); !strings.Contains(a[1], "user-disconnected user=alice") || !strings.Contains(a[1], "LCP Terminate-Request") {
		t.Fatalf("the call ended otherwise than by the user's hang-up: %v", a)
	}
}

func TestLNSHoldsPPPBeforeICCN(t *testing.T) {
	r := newRig(t, []string{"mschapv2"}, usersYAML)
	var held [][]byte
	r.hold = func(b []byte) bool {
		_, payload, err := l2tp.ParseHeader(b)
		if err != nil || len(payload) == 0 {
			return false
		}
		if m, err := l2tp.ParseMessage(payload, nil); err == nil && m.Type == l2tp.MsgICCN {
			held = append(held, append([]byte(nil), b...))
			return true
		}
		return false
	}
	c := r.dial("198.51.100.7:4500", "alice", "correct horse", []ppp.AuthProto{ppp.AuthMSCHAPv2})
	if !r.pump(func() bool { return c.link != nil && len(held) == 1 }) {
		t.Fatalf("PPP not started (held %d ICCNs)", len(held))
	}
	// The Configure-Request went first on the one ordered stream, so the
	// plugin has it before the ICCN.
	r.hold = nil
	c.send(sdk.ControlL2TP, 0, 0, held[0])
	if !r.pump(func() bool { return c.up != nil }) {
		t.Fatalf("PPP did not come up without a retransmission: %q", c.down)
	}
}

func TestLNSWrongPasswordConsumesNoAddress(t *testing.T) {
	r := newRig(t, []string{"mschapv2"}, usersYAML)
	c := r.dial("198.51.100.9:4500", "alice", "wrong", []ppp.AuthProto{ppp.AuthMSCHAPv2})
	if !r.pump(func() bool { return c.down != "" }) {
		t.Fatal("the client was not refused")
	}
	if c.up != nil || !strings.Contains(c.down, "authentication failed") {
		t.Fatalf("client: up %v, down %q", c.up, c.down)
	}
	r.pump(func() bool {
		_, a := r.host.snapshot()
		return len(a) > 0
	})
	n, audit := r.host.snapshot()
	if used, _ := r.host.pool.Usage(); used != 0 || n != 0 {
		t.Fatalf("a refused user holds %d addresses, %d sessions", used, n)
	}
	if len(audit) != 1 || !strings.HasPrefix(audit[0], "user-auth-failed user=alice reason=wrong password") {
		t.Fatalf("audit %v", audit)
	}
}

func TestLNSConfigureErrors(t *testing.T) {
	l := newLNS(hclog.NewNullLogger())
	for _, cfg := range []sdk.L2TPConfig{
		{Pool: netip.MustParsePrefix("10.8.0.0/24"), PPPAuth: []string{"eap"}},
		{PPPAuth: []string{"pap"}},
		{Pool: netip.MustParsePrefix("10.8.0.0/24"), TunnelSecretFile: "/nonexistent/secret"},
	} {
		if _, err := l.Configure(context.Background(), cfg); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// TestLNSSlowCheckHoldsNoOneElse: while one user's check waits on the
// core (a slow RADIUS server), another user connects; the first comes up
// when its answer arrives.
func TestLNSSlowCheckHoldsNoOneElse(t *testing.T) {
	r := newRig(t, []string{"mschapv2"}, usersYAML)
	gate := make(chan struct{})
	r.host.mu.Lock()
	r.host.slow = map[string]chan struct{}{"alice": gate}
	r.host.mu.Unlock()
	mschap := []ppp.AuthProto{ppp.AuthMSCHAPv2}
	alice := r.dial("198.51.100.7:4500", "alice", "correct horse", mschap)
	carol := r.dial("198.51.100.8:4500", "carol", "c4rol!", mschap)
	if !r.pump(func() bool { return carol.up != nil }) {
		t.Fatalf("carol waited on alice's check: down %q", carol.down)
	}
	if alice.up != nil {
		t.Fatal("alice is up before her check answered")
	}
	close(gate)
	if !r.pump(func() bool { return alice.up != nil }) {
		t.Fatalf("alice did not come up once her check answered: down %q", alice.down)
	}
}
