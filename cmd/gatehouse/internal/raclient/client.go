// Package raclient is a remote-access client in user space. For
// L2TP/IPsec: IKEv1 initiator in transport mode (RFC 3193), L2TP access
// concentrator (RFC 2661), PPP client. For IKEv2 (ikev2.go): a road
// warrior with EAP-MSCHAPv2 and a virtual address. Both run the core's
// data path with a TUN and need no kernel IPsec, L2TP or PPP.
// `gatehouse connect l2tp` and `connect ikev2` run it; so do our labs.
package raclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/ppp"
)

// Config says where to connect and as whom.
type Config struct {
	Log    *zap.Logger
	Server netip.Addr
	// Local is our address towards the server; unset, the routing table
	// decides.
	Local netip.Addr
	// PSK, or Cert and CAs, authenticate the machine in IKE: with a
	// certificate, CAs judge the server's.
	PSK            []byte
	Cert           *x509.Identity
	CAs            *x509.Store
	User, Password string
	// PPPAuth: the user authentication protocols we accept, in order.
	PPPAuth []ppp.AuthProto
	// IKE and ESP are what we offer, in order.
	IKE []ike.Proposal
	ESP []esp.Suite
	// Profile, when set, makes main mode offer exactly what a client
	// family offers, transform by transform, with its lifetimes and vendor
	// IDs (IKE is then unused; ESP should be the family's suites).
	Profile *clients.Family
	// TUN is the device name; MTU its MTU. Table and Mark keep our outer
	// packets out of the tunnel (as the daemon's data path does).
	TUN         string
	MTU         int
	Table, Mark int
	// Routes go through the tunnel besides the server's PPP address.
	Routes []netip.Prefix
	// Timeout bounds the whole setup.
	Timeout time.Duration
	// KeyLog, when set, receives each ESP SA's keys, one line per
	// direction: "esp SRC DST SPI SUITE ENC-KEY INTEG-KEY" (hex), for
	// decrypting captures. For debugging only: it is the tunnel's secret.
	KeyLog io.Writer
	// NoIPsec dials L2TP on UDP 1701 in clear, with no IKE and no ESP,
	// as a Windows client with ProhibitIpSec does; the server must allow
	// it (remote_access.allow_cleartext_l2tp). PSK, Cert, IKE and ESP are
	// unused.
	NoIPsec bool
	// Calls and Tunnels load-test a server: Calls PPP sessions (default 1)
	// spread over Tunnels L2TP tunnels (default 1, at most Calls) inside
	// the one IPsec SA, as an LAC concentrating many users does. Only the
	// first call carries traffic (the TUN); the others authenticate, get
	// an address and answer keepalives. Dial returns once every call is
	// up.
	Calls, Tunnels int
	// IO, when set, replaces the sockets, the TUN and the network setup
	// Dial would make: tests run the client over in-memory stand-ins.
	IO *IO
	// IKEv2, when set, makes Dial an IKEv2 road warrior offering these
	// IKE SA suites (ESP the child's): the user logs in by EAP-MSCHAPv2,
	// or, without a User, the machine alone by PSK or Cert. Calls opens
	// that many IKE SAs; PPPAuth, Profile and Tunnels are unused.
	IKEv2 []ikev2.Proposal
	// VendorIDs go in IKEv2's IKE_SA_INIT (a client family's).
	VendorIDs [][]byte
	// DHCPInform makes an IKEv2 client ask the server for split-tunnel
	// routes by DHCPINFORM once it is up, as Windows does; the answer is
	// logged.
	DHCPInform bool
}

// IO is what the client reads and writes.
type IO struct {
	// Local is our address towards the server.
	Local netip.Addr
	// IKE is UDP 500; UDP is UDP 4500 (ESP in UDP, and IKE once NAT-T
	// floats); Raw is raw ESP. L2TP is UDP 1701, for NoIPsec only (the
	// others are then nil).
	IKE, UDP, Raw, L2TP dataplane.Conn
	TUN                 dataplane.Device
	// Network gives the TUN its address and routes, and returns what
	// takes them away (dataplane.SetupNetwork).
	Network func(dataplane.NetConfig) (undo func(), err error)
}

// Info describes an established connection.
type Info struct {
	Address, Gateway netip.Addr // ours and the server's, inside
	DNS, NBNS        []netip.Addr
	Local, Server    netip.AddrPort // the IPsec SA's outer endpoints, or the L2TP ones without IPsec
	NAT              bool
	Auth             ppp.AuthProto
	ESP              string // "none" without IPsec
	// Addresses are every call's, in the order they came up (the first
	// call's first): one per Config.Calls.
	Addresses []netip.Addr
	// Setup is how long Dial took; CallSetup the part after the IPsec SA
	// was up (L2TP tunnels, calls and PPP for every call; with IKEv2, all
	// of it).
	Setup, CallSetup time.Duration
	// Routes go into the tunnel: with IKEv2, the server's traffic
	// selectors and Config.Routes.
	Routes []netip.Prefix
}

// Errors a caller may test.
var (
	ErrIKE  = errors.New("IKE failed")
	ErrL2TP = errors.New("L2TP failed")
	ErrPPP  = errors.New("PPP failed")
	// ErrRefused: the server refused the user (authentication, or no
	// address for it).
	ErrRefused = errors.New("the server refused the user")
	ErrTimeout = errors.New("no connection in time")
)

// MaxCalls and MaxTunnels bound Config: far more than a server's pool,
// well inside the 16-bit id spaces (so picking free ids stays quick).
const (
	MaxCalls   = 60000
	MaxTunnels = 4096
)

const (
	peerName = "server"
	ruleOut  = "l2tp/out"
	ruleIn   = "l2tp/in"
)

// Conn is a running connection.
type Conn struct {
	cfg   Config
	log   *zap.Logger
	plane *dataplane.Plane
	db    *sad.DB
	table *dataplane.L2TPTable
	mgr   *ike.Manager
	v2    *v2State // IKEv2 instead of mgr (Config.IKEv2)
	ike   dataplane.Conn
	udp   dataplane.Conn
	l2tp  dataplane.Conn // NoIPsec's UDP 1701
	local netip.Addr
	here  atomic.Value // local, for the reading goroutines
	// network sets up the TUN's address and routes once PPP is up.
	network func(dataplane.NetConfig) (func(), error)

	in     chan datagram
	ctl    chan dataplane.L2TPControl
	events chan ike.Event
	runq   chan func() // functions to run on the loop (Conn.call)
	stop   chan struct{}
	done   chan struct{}

	// State of the loop goroutine only.
	child     *ike.ChildSA
	key       sad.OutKey
	tunnels   map[uint16]*l2tp.Tunnel // by our tunnel id
	calls     []*call                 // calls[0] carries traffic
	byTunnel  map[*l2tp.Tunnel][]*call
	bySession map[*l2tp.Session]*call
	upCalls   []netip.Addr
	began     time.Time      // Dial
	stranger  netip.AddrPort // NoIPsec: the last host other than the server that sent us L2TP
	childUp   time.Time
	cleanup   func()

	up       chan Info // one value: the connection is up
	downOnce sync.Once
	down     chan struct{} // closed when the connection ends
	mu       sync.Mutex
	why      error
	info     Info
	handle   uint64
}

// call is one L2TP session with its PPP link.
type call struct {
	n      int // index in Conn.calls
	tunnel *l2tp.Tunnel
	sess   *l2tp.Session
	link   *ppp.Link
	up     bool
	ppp    ppp.LinkUp
}

type datagram struct {
	b             []byte
	local, remote netip.AddrPort
}

// Dial connects and returns once PPP has an address, or fails with the
// reason; ctx cancels the attempt.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1400
	}
	cfg.Calls = max(cfg.Calls, 1)
	cfg.Tunnels = min(max(cfg.Tunnels, 1), cfg.Calls)
	if cfg.Calls > MaxCalls || cfg.Tunnels > MaxTunnels {
		return nil, fmt.Errorf("%d calls in %d tunnels: at most %d calls and %d tunnels", cfg.Calls, cfg.Tunnels, MaxCalls, MaxTunnels)
	}
	// IKEv2 calls are followed by their events, which must not be dropped
	// while the loop reads a burst of answers (L2TP's calls share one
	// IKE SA).
	events := 64
	if len(cfg.IKEv2) > 0 {
		events = max(events, 4*cfg.Calls)
	}
	c := &Conn{cfg: cfg, log: cfg.Log, db: sad.New(), table: dataplane.NewL2TPTable(), in: make(chan datagram, 64),
		ctl: make(chan dataplane.L2TPControl, max(256, 4*cfg.Calls)), began: time.Now(),
		events: make(chan ike.Event, events), runq: make(chan func()), stop: make(chan struct{}),
		done: make(chan struct{}), up: make(chan Info, 1), down: make(chan struct{})}
	if err := c.open(); err != nil {
		c.closeIO()
		return nil, err
	}
	go c.loop()
	timer := time.NewTimer(cfg.Timeout)
	defer timer.Stop()
	select {
	case info := <-c.up:
		inside := zap.Stringer("gateway", info.Gateway)
		if c.v2 != nil {
			inside = zap.Stringers("routes", info.Routes)
		}
		c.log.Info("connected", zap.Stringer("address", info.Address), inside,
			zap.Stringer("server", info.Server), zap.Bool("nat", info.NAT), zap.String("esp", info.ESP))
		return c, nil
	case <-c.down:
		c.shutdown()
		return nil, c.Err()
	case <-timer.C:
		c.call(func() { c.end(c.timedOut()) })
	case <-ctx.Done():
		c.end(ctx.Err())
	}
	c.Close()
	return nil, c.Err()
}

// open starts the data path and IKE over the configured I/O, or the
// real sockets and TUN.
func (c *Conn) open() error {
	cfg := c.cfg
	io := cfg.IO
	if io == nil {
		var err error
		if io, err = openIO(cfg); err != nil {
			return err
		}
	}
	c.local, c.ike, c.udp, c.l2tp, c.network = io.Local, io.IKE, io.UDP, io.L2TP, io.Network
	c.here.Store(io.Local)
	c.plane = dataplane.New(dataplane.Config{Log: c.log.Named("esp"), TUN: io.TUN, Raw: io.Raw, UDP: c.udp, SAD: c.db, MTU: cfg.MTU,
		L2TP: c.table, OnL2TPControl: c.onControl, L2TPClear: c.l2tp, L2TPClearLocal: netip.AddrPortFrom(c.local, l2tp.Port),
		OnIKE: func(msg []byte, local netip.Addr, from netip.AddrPort) {
			if !local.IsValid() || local.IsUnspecified() {
				local = c.localNow()
			}
			c.deliver(msg, netip.AddrPortFrom(local, esp.NATTPort), from)
		},
	}, &policy.Policy{})
	if cfg.NoIPsec {
		c.plane.Start()
		return nil
	}
	if len(cfg.IKEv2) > 0 {
		return c.openV2()
	}
	c.mgr = ike.NewManager(ike.Config{Log: c.log.Named("ike"), Host: (*host)(c), Rand: rand.Reader})
	auth := uint16(ike.AuthPSK)
	if cfg.Cert != nil {
		var err error
		if auth, err = ike.SignatureMethod(cfg.Cert.Key.Public()); err != nil {
			return err
		}
	}
	peer := &ike.PeerConfig{Name: peerName, Local: c.local, Remote: cfg.Server, Auth: []uint16{auth}, Proposals: cfg.IKE,
		Lifetime: 8 * time.Hour, ESP: cfg.ESP, ESPLifetime: time.Hour, Transport: true, L2TP: true,
		DPDInterval: 30 * time.Second, DPDTimeout: 150 * time.Second}
	if f := cfg.Profile; f != nil {
		for _, o := range f.Offer {
			o.Auth = auth
			peer.Offer = append(peer.Offer, o)
		}
		peer.VendorIDs, peer.Lifetime, peer.ESPLifetime = f.VendorIDs, f.Lifetime, f.ESPLifetime
		if !slices.ContainsFunc(f.VendorIDs, func(v []byte) bool { return bytes.Equal(v, clients.DPD) }) {
			peer.DPDInterval = 0 // the family does not announce DPD (Windows)
		}
	}
	c.mgr.SetPeers([]*ike.PeerConfig{peer})
	c.plane.Start()
	go c.read500()
	return nil
}

// openIO finds our address towards the server and opens the sockets and
// the TUN; on error it closes what it opened.
func openIO(cfg Config) (_ *IO, err error) {
	io := &IO{Local: cfg.Local, Network: dataplane.SetupNetwork}
	if !io.Local.IsValid() {
		var err error
		if io.Local, err = localTowards(cfg.Server, cfg.Mark); err != nil {
			return nil, err
		}
	}
	defer func() {
		if err != nil {
			for _, c := range []dataplane.Conn{io.IKE, io.UDP, io.Raw, io.L2TP} {
				if c != nil {
					c.Close()
				}
			}
		}
	}()
	if cfg.NoIPsec {
		// From port 1701, as Windows and macOS send.
		if io.L2TP, err = dataplane.ListenUDP(netip.AddrPortFrom(io.Local, l2tp.Port), cfg.Mark); err != nil {
			return nil, fmt.Errorf("%w (is an L2TP client or server running on this host?)", err)
		}
		if io.TUN, err = dataplane.OpenTUN(cfg.TUN); err != nil {
			return nil, err
		}
		return io, nil
	}
	// An IKEv2 client may roam (MOBIKE): its sockets take any address,
	// and each send names its source.
	bind := io.Local
	if len(cfg.IKEv2) > 0 && !cfg.Local.IsValid() {
		bind = netip.IPv4Unspecified()
	}
	if io.IKE, err = dataplane.ListenUDP(netip.AddrPortFrom(bind, 500), cfg.Mark); err != nil {
		return nil, fmt.Errorf("%w (is an IKE daemon running on this host?)", err)
	}
	if io.UDP, err = dataplane.ListenUDP(netip.AddrPortFrom(bind, esp.NATTPort), cfg.Mark); err != nil {
		return nil, err
	}
	if io.Raw, err = dataplane.ListenRawESP(bind, cfg.Mark); err != nil {
		return nil, err
	}
	if io.TUN, err = dataplane.OpenTUN(cfg.TUN); err != nil {
		return nil, err
	}
	return io, nil
}

// localTowards is our address on the route to server, for packets that
// carry mark (ours, which bypass the tunnel).
func localTowards(server netip.Addr, mark int) (netip.Addr, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, mark) }); err != nil {
			return err
		}
		return serr
	}}
	probe, err := d.Dial("udp4", netip.AddrPortFrom(server, 500).String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to %v: %w", server, err)
	}
	defer probe.Close()
	return probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// localNow is our address towards the server, for the reading
// goroutines (the loop's c.local changes when we roam).
func (c *Conn) localNow() netip.Addr { return c.here.Load().(netip.Addr) }

func (c *Conn) read500() {
	buf := make([]byte, 65535)
	for {
		b, from, err := c.ike.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		c.deliver(b, netip.AddrPortFrom(c.localNow(), 500), from)
	}
}

func (c *Conn) deliver(b []byte, local, remote netip.AddrPort) {
	select {
	case c.in <- datagram{append([]byte(nil), b...), local, remote}:
	default: // IKE retransmits
	}
}

func (c *Conn) onControl(m dataplane.L2TPControl) {
	select {
	case c.ctl <- m:
	default: // L2TP and PPP retransmit
	}
}

// loop runs every state machine: one goroutine, so none needs a lock.
func (c *Conn) loop() {
	defer close(c.done)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	if c.cfg.NoIPsec {
		c.childUp = time.Now()
		c.startL2TP()
	} else if c.v2 != nil {
		c.startCalls()
	} else if err := c.mgr.Initiate(peerName); err != nil {
		c.end(fmt.Errorf("%w: %v", ErrIKE, err))
		return
	}
	for {
		select {
		case <-c.stop:
			return
		case d := <-c.in:
			if c.v2 != nil {
				c.v2.mgr.Receive(d.b, d.local, d.remote)
			} else {
				c.mgr.Receive(d.b, d.local, d.remote)
			}
		case e := <-c.events:
			if c.v2 != nil {
				c.v2Event(e)
			} else {
				c.ikeEvent(e)
			}
		case m := <-c.ctl:
			c.control(m)
		case f := <-c.runq:
			f()
		case <-tick.C:
			now := time.Now()
			if c.mgr != nil {
				c.mgr.Tick()
			}
			if c.v2 != nil {
				c.v2.mgr.Tick()
				c.startCalls()
				c.roam(now)
			}
			for _, t := range c.tunnels {
				t.Tick(now)
			}
			for _, k := range c.calls {
				if k.link != nil {
					k.link.Tick(now)
				}
			}
		}
	}
}

// timedOut says how far the setup got (on the loop goroutine).
func (c *Conn) timedOut() error {
	t := c.cfg.Timeout
	links, sessions := 0, 0
	for _, k := range c.calls {
		if k.link != nil {
			links++
		}
		if k.sess != nil {
			sessions++
		}
	}
	switch {
	case c.v2 != nil && len(c.upCalls) > 0:
		return fmt.Errorf("%w: %w: %d of %d IKEv2 calls up in %v", ErrIKE, ErrTimeout, len(c.upCalls), c.cfg.Calls, t)
	case c.v2 != nil:
		return fmt.Errorf("%w: %w: no IKEv2 SA in %v: the server did not answer (check that UDP 500 and 4500 reach it)", ErrIKE, ErrTimeout, t)
	case len(c.calls) > 1 && len(c.upCalls) > 0:
		return fmt.Errorf("%w: %d of %d calls up in %v (%d had an L2TP session, %d a PPP link)", ErrTimeout, len(c.upCalls), len(c.calls), t, sessions, links)
	case links > 0:
		return fmt.Errorf("%w: %w: PPP did not finish in %v", ErrPPP, ErrTimeout, t)
	case c.cfg.NoIPsec && c.stranger.IsValid():
		return fmt.Errorf("%w: %w: no L2TP answer from %v in %v, but %v sent L2TP (ignored): is the server answering from another of its addresses?",
			ErrL2TP, ErrTimeout, c.serverL2TP(), t, c.stranger)
	case c.cfg.NoIPsec:
		return fmt.Errorf("%w: %w: no L2TP answer in %v without IPsec: the server must allow it (remote_access.allow_cleartext_l2tp) "+
			"and UDP 1701 must reach it", ErrL2TP, ErrTimeout, t)
	case len(c.tunnels) > 0:
		return fmt.Errorf("%w: %w: the L2TP tunnel did not come up in %v (is the server's L2TP service running?)", ErrL2TP, ErrTimeout, t)
	default:
		return fmt.Errorf("%w: %w: no IPsec SA in %v: the server did not answer, or did not accept our preshared key "+
			"(check the key, and that UDP 500 and 4500 reach the server)", ErrIKE, ErrTimeout, t)
	}
}

func (c *Conn) ikeEvent(e ike.Event) {
	switch e.ID {
	case ike.EventNegotiationErr:
		if endsSetup(e, c.child != nil) {
			c.end(fmt.Errorf("%w: %s", ErrIKE, e.Message))
		}
	case ike.EventChildUp:
		if c.child != nil {
			c.child = e.Child // a rekey: the session's key stays the same
			return
		}
		c.child = e.Child
		c.key = outKey(e.Child)
		c.childUp = time.Now()
		c.startL2TP()
	case ike.EventIKEDown:
		if c.child != nil {
			c.end(fmt.Errorf("%w: the server ended the IPsec connection: %s", ErrIKE, e.Message))
		}
	}
}

// endsSetup reports whether a failed negotiation ends the connection:
// one of ours (main mode, or our quick mode) before our IPsec SA is up.
// A quick mode the server starts and we refuse (for the other direction,
// or a rekey with a suite we do not take) leaves everything as it is.
func endsSetup(e ike.Event, childUp bool) bool {
	if childUp {
		return false
	}
	return e.Exchange != ike.ExchangeQuick || e.Initiator
}

func outKey(ch *ike.ChildSA) sad.OutKey {
	k := sad.OutKey{Rule: ruleOut, Peer: ch.Remote.Addr().Unmap()}
	if ch.UDP {
		k.Port = ch.Remote.Port()
	}
	return k
}

// startL2TP opens the L2TP tunnels and, once each is up, its calls with
// PPP. Call i goes in tunnel i mod Tunnels.
func (c *Conn) startL2TP() {
	now := time.Now()
	c.tunnels = make(map[uint16]*l2tp.Tunnel, c.cfg.Tunnels)
	c.bySession = make(map[*l2tp.Session]*call, c.cfg.Calls)
	c.calls = make([]*call, c.cfg.Calls)
	order := make([]*l2tp.Tunnel, 0, c.cfg.Tunnels)
	for len(order) < c.cfg.Tunnels {
		var id [2]byte
		rand.Read(id[:])
		local := binary.BigEndian.Uint16(id[:])
		if local == 0 || c.tunnels[local] != nil {
			continue
		}
		t := l2tp.NewTunnel(l2tp.Config{Role: l2tp.LAC, HostName: "gatehouse-client",
			Send:          func(b []byte) { c.sendL2TP(b) },
			OnUp:          c.tunnelUp,
			OnDown:        c.tunnelDown,
			OnSessionUp:   func(s *l2tp.Session) { c.startPPP(c.bySession[s]) },
			OnSessionDown: c.sessionDown,
		}, local)
		c.tunnels[local] = t
		order = append(order, t)
	}
	c.byTunnel = make(map[*l2tp.Tunnel][]*call, len(order))
	for i := range c.calls {
		t := order[i%len(order)]
		c.calls[i] = &call{n: i, tunnel: t}
		c.byTunnel[t] = append(c.byTunnel[t], c.calls[i])
	}
	for _, t := range order {
		t.Start(now)
	}
}

func (c *Conn) tunnelUp(t *l2tp.Tunnel) {
	now := time.Now()
	for _, k := range c.byTunnel[t] {
		s, err := t.OpenSession(now)
		if err != nil {
			c.callFailed(k, fmt.Errorf("%w: %v", ErrL2TP, err))
			continue
		}
		k.sess = s
		c.bySession[s] = k
	}
}

func (c *Conn) tunnelDown(t *l2tp.Tunnel, _ l2tp.Result, why string) {
	// Its sessions were reported down first; a tunnel that never came up
	// had none.
	for _, k := range c.byTunnel[t] {
		if k.sess == nil {
			c.callFailed(k, fmt.Errorf("%w: tunnel closed: %s", ErrL2TP, why))
		}
	}
}

func (c *Conn) sessionDown(s *l2tp.Session, _ l2tp.Result, _ *l2tp.PPPCause, why string) {
	k := c.bySession[s]
	if k == nil {
		return
	}
	// why names the PPP cause already (l2tp adds it).
	c.callFailed(k, fmt.Errorf("%w: call cleared: %s", ErrL2TP, why))
}

// callFailed ends the connection when the first call fails; a load test's
// other calls are counted and logged (the first failure ends Dial too).
func (c *Conn) callFailed(k *call, err error) {
	if k.n == 0 || !c.isUp() {
		c.end(err)
		return
	}
	if k.up {
		k.up = false
		c.log.Warn("call ended", zap.Int("call", k.n), zap.Error(err))
	}
}

func (c *Conn) isUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info.Address.IsValid()
}

func (c *Conn) startPPP(k *call) {
	if k == nil {
		return
	}
	s := k.sess
	k.link = ppp.NewLink(ppp.LinkConfig{Auth: c.cfg.PPPAuth, MRU: uint16(c.cfg.MTU), User: c.cfg.User, Password: c.cfg.Password,
		EchoInterval: 30 * time.Second, EchoFailures: 4,
		Send: func(f []byte) {
			c.sendL2TP(append(l2tp.AppendDataHeader(make([]byte, 0, 10+len(f)), s.Tunnel.PeerID, s.PeerID, false, 0), f...))
		},
		OnUp: func(u ppp.LinkUp) { c.pppUp(k, u) },
		OnDown: func(d ppp.Disconnect) {
			switch d.Code {
			case ppp.CauseAuthFailed, ppp.CauseAuthUnaccepted, ppp.CauseNoAddresses, ppp.CauseNoPermittedAddr:
				c.callFailed(k, fmt.Errorf("%w: %w: %s", ErrPPP, ErrRefused, d.Reason))
			default:
				c.callFailed(k, fmt.Errorf("%w: %s", ErrPPP, d.Reason))
			}
		},
	})
	k.link.Open(time.Now())
}

func (c *Conn) sendL2TP(msg []byte) {
	var err error
	if c.cfg.NoIPsec {
		err = c.plane.SendL2TPClear(netip.AddrPortFrom(c.local, l2tp.Port), c.serverL2TP(), msg)
	} else {
		err = c.plane.SendL2TP(c.key, l2tp.Port, msg)
	}
	if err != nil {
		c.log.Debug("L2TP message not sent", zap.Error(err))
	}
}

// serverL2TP is the server's L2TP endpoint without IPsec.
func (c *Conn) serverL2TP() netip.AddrPort { return netip.AddrPortFrom(c.cfg.Server, l2tp.Port) }

// outer is the connection's outer endpoints and protection: the IPsec
// SA's, or L2TP's own without IPsec.
func (c *Conn) outer() (local, server netip.AddrPort, nat bool, suite string) {
	if c.cfg.NoIPsec {
		return netip.AddrPortFrom(c.local, l2tp.Port), c.serverL2TP(), false, "none"
	}
	return c.child.Local, c.child.Remote, c.child.UDP, c.child.Suite.String()
}

// pppUp installs the first call in the data path and sets up the TUN;
// the connection is up once every call is.
func (c *Conn) pppUp(k *call, u ppp.LinkUp) {
	k.up, k.ppp = true, u
	c.upCalls = append(c.upCalls, u.Local)
	if k.n == 0 && !c.install(k.sess, u) {
		return
	}
	if len(c.upCalls) != len(c.calls) || c.isUp() {
		return
	}
	now := time.Now()
	first := c.calls[0].ppp
	local, server, nat, suite := c.outer()
	info := Info{Address: first.Local, Gateway: first.Peer, DNS: first.DNS, NBNS: first.NBNS, Local: local, Server: server,
		NAT: nat, Auth: first.Auth, ESP: suite, Addresses: c.upCalls,
		Setup: now.Sub(c.began), CallSetup: now.Sub(c.childUp)}
	c.mu.Lock()
	c.info = info
	c.mu.Unlock()
	c.up <- info
}

func (c *Conn) install(s *l2tp.Session, u ppp.LinkUp) bool {
	mru := u.PeerMRU
	if mru == 0 || int(mru) > c.cfg.MTU {
		mru = uint16(c.cfg.MTU)
	}
	local, server, _, _ := c.outer()
	h, err := c.table.Add(&dataplane.L2TPSession{LAC: true, Local: local, Peer: server, Clear: c.cfg.NoIPsec, L2TPPort: l2tp.Port,
		LocalTunnel: s.Tunnel.LocalID, LocalSession: s.LocalID, PeerTunnel: s.Tunnel.PeerID, PeerSession: s.PeerID,
		Client: u.Local, User: c.cfg.User, MRU: mru, OutKey: c.key})
	if err != nil {
		c.end(fmt.Errorf("%w: %v", ErrPPP, err))
		return false
	}
	if !c.setupTUN(u.Local, append([]netip.Prefix{netip.PrefixFrom(u.Peer, 32)}, c.cfg.Routes...)) {
		return false
	}
	c.mu.Lock()
	c.handle = h
	c.mu.Unlock()
	return true
}

// setupTUN gives the TUN our address and routes dsts into it, from that
// address.
func (c *Conn) setupTUN(addr netip.Addr, dsts []netip.Prefix) bool {
	var routes []dataplane.Route
	for _, d := range dsts {
		routes = append(routes, dataplane.Route{Dst: d, Src: addr})
	}
	cleanup, err := c.network(dataplane.NetConfig{TUN: c.cfg.TUN, MTU: c.cfg.MTU, Table: c.cfg.Table, Mark: c.cfg.Mark,
		Routes: routes, Addrs: []netip.Prefix{netip.PrefixFrom(addr, 32)}})
	if err != nil {
		c.end(fmt.Errorf("setting up %s: %w", c.cfg.TUN, err))
		return false
	}
	c.cleanup = cleanup
	return true
}

func (c *Conn) control(m dataplane.L2TPControl) {
	if c.cfg.NoIPsec && m.Peer != c.serverL2TP() {
		c.log.Debug("cleartext L2TP from another host than the server ignored", zap.Stringer("from", m.Peer))
		c.stranger = m.Peer
		return
	}
	now := time.Now()
	t := c.tunnels[m.Tunnel]
	if t == nil {
		c.log.Debug("L2TP message for no tunnel of ours", zap.Uint16("tunnel", m.Tunnel))
		return
	}
	if !m.PPP {
		if err := t.Input(m.Payload, now); err != nil {
			c.log.Debug("L2TP message refused", zap.Error(err))
		}
		return
	}
	if k := c.bySession[t.Session(m.Session)]; k != nil && k.link != nil {
		if err := k.link.Input(m.Payload, now); err != nil && !errors.Is(err, ppp.ErrDataFrame) {
			c.log.Debug("PPP frame refused", zap.Error(err))
		}
	}
}

// end records why the connection ended (the first reason wins).
func (c *Conn) end(why error) {
	c.downOnce.Do(func() {
		c.mu.Lock()
		c.why = why
		c.mu.Unlock()
		close(c.down)
	})
}

// Done is closed when the connection has ended; Err says why.
func (c *Conn) Done() <-chan struct{} { return c.down }

// Err is why the connection ended, nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.why
}

// Info describes the connection.
func (c *Conn) Info() Info {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Counters are the session's totals.
func (c *Conn) Counters() dataplane.L2TPCounters {
	if c.v2 != nil {
		return c.v2Counters()
	}
	for _, s := range c.table.All() {
		return s.Counters()
	}
	return dataplane.L2TPCounters{}
}

// Close hangs up politely: PPP terminate, L2TP CDN and StopCCN, IKE
// delete, each given a moment; then everything is torn down.
func (c *Conn) Close() {
	c.end(errors.New("closed by the user"))
	c.shutdown()
}

func (c *Conn) shutdown() {
	select {
	case <-c.done:
	default:
		bye := make(chan struct{})
		go func() {
			defer close(bye)
			const why = "the user disconnected"
			c.call(func() {
				for _, k := range c.calls {
					if k.link != nil {
						k.link.Close(time.Now(), why)
					}
				}
			})
			time.Sleep(300 * time.Millisecond) // the Terminate-Acks, or not
			c.call(func() {
				for _, k := range c.calls {
					if k.sess != nil && k.tunnel.Session(k.sess.LocalID) == k.sess {
						// CDN with the PPP cause (RFC 3145), as Windows
						// sends before the StopCCN.
						k.tunnel.CloseSession(time.Now(), k.sess, l2tp.Result{Result: l2tp.CDNAdmin, Message: why},
							&l2tp.PPPCause{Code: ppp.CauseAdmin, Proto: ppp.ProtoLCP, Direction: 2, Message: why}, why)
					}
				}
			})
			time.Sleep(100 * time.Millisecond)
			c.call(func() {
				for _, t := range c.tunnels {
					t.Close(time.Now(), l2tp.Result{Result: l2tp.StopClearConnection, Message: why}, why)
				}
			})
			time.Sleep(200 * time.Millisecond)
			if c.mgr != nil {
				c.call(func() { c.mgr.Terminate(peerName) })
			}
			if c.v2 != nil {
				c.terminateV2() // the engine takes calls from any goroutine
			}
		}()
		select {
		case <-bye:
		case <-time.After(2*time.Second + c.terminateTime()):
		}
		close(c.stop)
		<-c.done
	}
	if c.cleanup != nil {
		c.cleanup()
	}
	c.closeIO()
}

// call runs f on the loop goroutine and waits for it, for at most a
// second.
func (c *Conn) call(f func()) {
	ran := make(chan struct{})
	select {
	case c.runq <- func() { f(); close(ran) }:
	case <-c.done:
		return
	}
	select {
	case <-ran:
	case <-c.done:
	case <-time.After(time.Second):
	}
}

func (c *Conn) closeIO() {
	if c.plane != nil {
		c.plane.Close()
	}
	if c.ike != nil {
		c.ike.Close()
	}
	if c.plane == nil {
		for _, s := range []dataplane.Conn{c.udp, c.l2tp} {
			if s != nil {
				s.Close()
			}
		}
	}
}
