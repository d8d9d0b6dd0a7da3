// Package raclient is an L2TP/IPsec remote-access client in user space:
// IKEv1 initiator in transport mode (RFC 3193), L2TP access concentrator
// (RFC 2661), PPP client, and the core's data path with a TUN. It needs no
// kernel IPsec, L2TP or PPP. `gatehouse connect l2tp` runs it; so do our
// labs.
package raclient

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/ppp"
)

// Config says where to connect and as whom.
type Config struct {
	Log    *zap.Logger
	Server netip.Addr
	// Local is our address towards the server; unset, the routing table
	// decides.
	Local          netip.Addr
	PSK            []byte
	User, Password string
	// PPPAuth: the user authentication protocols we accept, in order.
	PPPAuth []ppp.AuthProto
	// IKE and ESP are what we offer, in order.
	IKE []ike.Proposal
	ESP []esp.Suite
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
}

// Info describes an established connection.
type Info struct {
	Address, Gateway netip.Addr // ours and the server's, inside
	DNS, NBNS        []netip.Addr
	Local, Server    netip.AddrPort // the IPsec SA's outer endpoints
	NAT              bool
	Auth             ppp.AuthProto
	ESP              string
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
	ike   dataplane.Conn
	udp   dataplane.Conn
	local netip.Addr

	in     chan datagram
	ctl    chan dataplane.L2TPControl
	events chan ike.Event
	calls  chan func()
	stop   chan struct{}
	done   chan struct{}

	// State of the loop goroutine only.
	child   *ike.ChildSA
	key     sad.OutKey
	lac     *l2tp.Tunnel
	sess    *l2tp.Session
	link    *ppp.Link
	cleanup func()

	up       chan Info // one value: the connection is up
	downOnce sync.Once
	down     chan struct{} // closed when the connection ends
	mu       sync.Mutex
	why      error
	info     Info
	handle   uint64
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
	c := &Conn{cfg: cfg, log: cfg.Log, db: sad.New(), table: dataplane.NewL2TPTable(), in: make(chan datagram, 64),
		ctl: make(chan dataplane.L2TPControl, 256), events: make(chan ike.Event, 64), calls: make(chan func()), stop: make(chan struct{}),
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
		c.log.Info("connected", zap.Stringer("address", info.Address), zap.Stringer("gateway", info.Gateway),
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

// open finds our address and opens the sockets, the TUN and the data path.
func (c *Conn) open() error {
	cfg := c.cfg
	c.local = cfg.Local
	if !c.local.IsValid() {
		probe, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.Server, 500)))
		if err != nil {
			return fmt.Errorf("no route to %v: %w", cfg.Server, err)
		}
		c.local = probe.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
		probe.Close()
	}
	var err error
	if c.ike, err = dataplane.ListenUDP(netip.AddrPortFrom(c.local, 500), cfg.Mark); err != nil {
		return fmt.Errorf("%w (is an IKE daemon running on this host?)", err)
	}
	if c.udp, err = dataplane.ListenUDP(netip.AddrPortFrom(c.local, esp.NATTPort), cfg.Mark); err != nil {
		return err
	}
	raw, err := dataplane.ListenRawESP(c.local, cfg.Mark)
	if err != nil {
		return err
	}
	tun, err := dataplane.OpenTUN(cfg.TUN)
	if err != nil {
		raw.Close()
		return err
	}
	c.plane = dataplane.New(dataplane.Config{Log: c.log.Named("esp"), TUN: tun, Raw: raw, UDP: c.udp, SAD: c.db, MTU: cfg.MTU,
		L2TP: c.table, OnL2TPControl: c.onControl,
		OnIKE: func(msg []byte, from netip.AddrPort) { c.deliver(msg, netip.AddrPortFrom(c.local, esp.NATTPort), from) },
	}, &policy.Policy{})
	c.mgr = ike.NewManager(ike.Config{Log: c.log.Named("ike"), Host: (*host)(c), Rand: rand.Reader})
	c.mgr.SetPeers([]*ike.PeerConfig{{Name: peerName, Local: c.local, Remote: cfg.Server, Auth: ike.AuthPSK, Proposals: cfg.IKE,
		Lifetime: 8 * time.Hour, ESP: cfg.ESP, ESPLifetime: time.Hour, Transport: true, L2TP: true,
		DPDInterval: 30 * time.Second, DPDTimeout: 150 * time.Second}})
	c.plane.Start()
	go c.read500()
	return nil
}

func (c *Conn) read500() {
	buf := make([]byte, 65535)
	for {
		b, from, err := c.ike.ReadFrom(buf)
		if err != nil {
			return // closed
		}
		c.deliver(b, netip.AddrPortFrom(c.local, 500), from)
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
	if err := c.mgr.Initiate(peerName); err != nil {
		c.end(fmt.Errorf("%w: %v", ErrIKE, err))
		return
	}
	for {
		select {
		case <-c.stop:
			return
		case d := <-c.in:
			c.mgr.Receive(d.b, d.local, d.remote)
		case e := <-c.events:
			c.ikeEvent(e)
		case m := <-c.ctl:
			c.control(m)
		case f := <-c.calls:
			f()
		case <-tick.C:
			now := time.Now()
			c.mgr.Tick()
			if c.lac != nil {
				c.lac.Tick(now)
			}
			if c.link != nil {
				c.link.Tick(now)
			}
		}
	}
}

// timedOut says how far the setup got (on the loop goroutine).
func (c *Conn) timedOut() error {
	t := c.cfg.Timeout
	switch {
	case c.link != nil:
		return fmt.Errorf("%w: %w: PPP did not finish in %v", ErrPPP, ErrTimeout, t)
	case c.lac != nil:
		return fmt.Errorf("%w: %w: the L2TP tunnel did not come up in %v (is the server's L2TP service running?)", ErrL2TP, ErrTimeout, t)
	default:
		return fmt.Errorf("%w: %w: no IPsec SA in %v: the server did not answer, or did not accept our preshared key "+
			"(check the key, and that UDP 500 and 4500 reach the server)", ErrIKE, ErrTimeout, t)
	}
}

func (c *Conn) ikeEvent(e ike.Event) {
	switch e.ID {
	case ike.EventNegotiationErr:
		if c.child == nil {
			c.end(fmt.Errorf("%w: %s", ErrIKE, e.Message))
		}
	case ike.EventChildUp:
		if c.child != nil {
			c.child = e.Child // a rekey: the session's key stays the same
			return
		}
		c.child = e.Child
		c.key = outKey(e.Child)
		c.startL2TP()
	case ike.EventIKEDown:
		if c.child != nil {
			c.end(fmt.Errorf("%w: the server ended the IPsec connection: %s", ErrIKE, e.Message))
		}
	}
}

func outKey(ch *ike.ChildSA) sad.OutKey {
	k := sad.OutKey{Rule: ruleOut, Peer: ch.Remote.Addr().Unmap()}
	if ch.UDP {
		k.Port = ch.Remote.Port()
	}
	return k
}

// startL2TP opens the L2TP tunnel and, once it is up, a call with PPP.
func (c *Conn) startL2TP() {
	now := time.Now()
	var id [2]byte
	for binary.BigEndian.Uint16(id[:]) == 0 {
		rand.Read(id[:])
	}
	c.lac = l2tp.NewTunnel(l2tp.Config{Role: l2tp.LAC, HostName: "gatehouse-client",
		Send: func(b []byte) { c.sendL2TP(b) },
		OnUp: func(t *l2tp.Tunnel) {
			s, err := t.OpenSession(time.Now())
			if err != nil {
				c.end(fmt.Errorf("%w: %v", ErrL2TP, err))
			}
			c.sess = s
		},
		OnDown: func(_ *l2tp.Tunnel, r l2tp.Result, why string) {
			c.end(fmt.Errorf("%w: tunnel closed: %s", ErrL2TP, why))
		},
		OnSessionUp: func(s *l2tp.Session) { c.startPPP(s) },
		OnSessionDown: func(_ *l2tp.Session, r l2tp.Result, cause *l2tp.PPPCause, why string) {
			if cause != nil && cause.Message != "" {
				why += " (" + cause.Message + ")"
			}
			c.end(fmt.Errorf("%w: call cleared: %s", ErrL2TP, why))
		},
	}, binary.BigEndian.Uint16(id[:]))
	c.lac.Start(now)
}

func (c *Conn) startPPP(s *l2tp.Session) {
	c.link = ppp.NewLink(ppp.LinkConfig{Auth: c.cfg.PPPAuth, MRU: uint16(c.cfg.MTU), User: c.cfg.User, Password: c.cfg.Password,
		EchoInterval: 30 * time.Second, EchoFailures: 4,
		Send: func(f []byte) {
			c.sendL2TP(append(l2tp.AppendDataHeader(make([]byte, 0, 10+len(f)), s.Tunnel.PeerID, s.PeerID, false, 0), f...))
		},
		OnUp: func(u ppp.LinkUp) { c.pppUp(s, u) },
		OnDown: func(d ppp.Disconnect) {
			switch d.Code {
			case ppp.CauseAuthFailed, ppp.CauseAuthUnaccepted, ppp.CauseNoAddresses, ppp.CauseNoPermittedAddr:
				c.end(fmt.Errorf("%w: %w: %s", ErrPPP, ErrRefused, d.Reason))
			default:
				c.end(fmt.Errorf("%w: %s", ErrPPP, d.Reason))
			}
		},
	})
	c.link.Open(time.Now())
}

func (c *Conn) sendL2TP(msg []byte) {
	if err := c.plane.SendL2TP(c.key, l2tp.Port, msg); err != nil {
		c.log.Debug("L2TP message not sent", zap.Error(err))
	}
}

// pppUp installs the session in the data path and sets up the TUN.
func (c *Conn) pppUp(s *l2tp.Session, u ppp.LinkUp) {
	mru := u.PeerMRU
	if mru == 0 || int(mru) > c.cfg.MTU {
		mru = uint16(c.cfg.MTU)
	}
	h, err := c.table.Add(&dataplane.L2TPSession{LAC: true, Local: c.child.Local, Peer: c.child.Remote, L2TPPort: l2tp.Port,
		LocalTunnel: s.Tunnel.LocalID, LocalSession: s.LocalID, PeerTunnel: s.Tunnel.PeerID, PeerSession: s.PeerID,
		Client: u.Local, User: c.cfg.User, MRU: mru, OutKey: c.key})
	if err != nil {
		c.end(fmt.Errorf("%w: %v", ErrPPP, err))
		return
	}
	routes := []dataplane.Route{{Dst: netip.PrefixFrom(u.Peer, 32), Src: u.Local}}
	for _, r := range c.cfg.Routes {
		routes = append(routes, dataplane.Route{Dst: r, Src: u.Local})
	}
	cleanup, err := dataplane.SetupNetwork(dataplane.NetConfig{TUN: c.cfg.TUN, MTU: c.cfg.MTU, Table: c.cfg.Table, Mark: c.cfg.Mark,
		Routes: routes, Addrs: []netip.Prefix{netip.PrefixFrom(u.Local, 32)}})
	if err != nil {
		c.end(fmt.Errorf("setting up %s: %w", c.cfg.TUN, err))
		return
	}
	c.cleanup = cleanup
	info := Info{Address: u.Local, Gateway: u.Peer, DNS: u.DNS, NBNS: u.NBNS, Local: c.child.Local, Server: c.child.Remote,
		NAT: c.child.UDP, Auth: u.Auth, ESP: c.child.Suite.String()}
	c.mu.Lock()
	c.info, c.handle = info, h
	c.mu.Unlock()
	c.up <- info
}

func (c *Conn) control(m dataplane.L2TPControl) {
	now := time.Now()
	if !m.PPP {
		if c.lac != nil {
			if err := c.lac.Input(m.Payload, now); err != nil {
				c.log.Debug("L2TP message refused", zap.Error(err))
			}
		}
		return
	}
	if c.link != nil && c.sess != nil && m.Tunnel == c.sess.Tunnel.LocalID && m.Session == c.sess.LocalID {
		if err := c.link.Input(m.Payload, now); err != nil && !errors.Is(err, ppp.ErrDataFrame) {
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
			c.call(func() {
				if c.link != nil {
					c.link.Close(time.Now(), "the user disconnected")
				}
			})
			time.Sleep(300 * time.Millisecond) // the Terminate-Ack, or not
			c.call(func() {
				const why = "the user disconnected"
				if c.lac != nil && c.sess != nil && c.lac.Session(c.sess.LocalID) == c.sess {
					// CDN with the PPP cause (RFC 3145), as Windows sends
					// before the StopCCN.
					c.lac.CloseSession(time.Now(), c.sess, l2tp.Result{Result: l2tp.CDNAdmin, Message: why},
						&l2tp.PPPCause{Code: ppp.CauseAdmin, Proto: ppp.ProtoLCP, Direction: 2, Message: why}, why)
				}
			})
			time.Sleep(100 * time.Millisecond)
			c.call(func() {
				if c.lac != nil {
					c.lac.Close(time.Now(), l2tp.Result{Result: l2tp.StopClearConnection, Message: "the user disconnected"}, "the user disconnected")
				}
			})
			time.Sleep(200 * time.Millisecond)
			c.call(func() { c.mgr.Terminate(peerName) })
		}()
		select {
		case <-bye:
		case <-time.After(2 * time.Second):
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
	case c.calls <- func() { f(); close(ran) }:
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
	if c.plane == nil && c.udp != nil {
		c.udp.Close()
	}
}
