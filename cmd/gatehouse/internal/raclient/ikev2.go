package raclient

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/internal/dhcp"
)

// An IKEv2 road warrior (Config.IKEv2), as the clients built into
// Windows, macOS, iOS and Android are: IKE_SA_INIT, IKE_AUTH with a
// configuration request, the user logging in by EAP-MSCHAPv2 (or the
// machine alone by key or certificate), and one child in tunnel mode from
// the address the server gives to the networks its traffic selectors
// name, which become the TUN's routes. With Calls above one, that many
// IKE SAs are opened at once (a load test); only the first carries
// traffic.

// v2Window bounds the IKE SAs being set up at once in a load test: a
// server answers at most 64 half-open SAs from one address (and asks for
// cookies past half its total), so more only makes it drop and us resend.
const v2Window = 48

// v2Name is the name of call i's peer (the first is peerName).
func v2Name(i int) string {
	if i == 0 {
		return peerName
	}
	return fmt.Sprintf("%s-%d", peerName, i)
}

// v2State is the IKEv2 client's part of Conn, on the loop goroutine.
type v2State struct {
	mgr      *ikev2.Manager
	next     int             // the next call to start
	inflight int             // calls started and not up or failed yet
	up       map[string]bool // calls whose child came up, by peer name
	// checked is when our address towards the server was last looked at
	// (roam), unless Config.Local fixed it.
	checked time.Time
}

// roamCheck is how often the client looks for a new address of its own.
const roamCheck = time.Second

// roam follows a change of our address towards the server (Wi-Fi to
// mobile data): the first call's IKE SA tells the server with
// UPDATE_SA_ADDRESSES (MOBIKE, RFC 4555) and its ESP SAs send from the new
// address, keys and counters kept. Sockets take any address (openIO).
func (c *Conn) roam(now time.Time) {
	v := c.v2
	if c.cfg.Local.IsValid() || c.child == nil || now.Sub(v.checked) < roamCheck {
		return
	}
	v.checked = now
	a, err := localTowards(c.cfg.Server, c.cfg.Mark)
	if err != nil || a == c.local {
		return
	}
	ch := c.child
	local := netip.AddrPortFrom(a, ch.Local.Port())
	if err := v.mgr.Roam(peerName, local); err != nil {
		c.log.Warn("our address changed, but the IKE SA cannot follow", zap.Stringer("from", c.local), zap.Stringer("to", a), zap.Error(err))
		c.local = a
		c.here.Store(a)
		return
	}
	if err := c.db.Move(ch.InSPI, v2OutKey(ch), ch.OutSPI, local, ch.Remote, ch.UDP); err != nil {
		c.log.Warn("the ESP SAs did not move", zap.Error(err))
	}
	c.log.Info("our address changed: the IKE SA moves (MOBIKE)", zap.Stringer("from", c.local), zap.Stringer("to", a))
	c.local = a
	c.here.Store(a)
	c.mu.Lock()
	c.info.Local = local
	c.mu.Unlock()
}

// openV2 starts IKEv2 over the data path open made.
func (c *Conn) openV2() error {
	cfg := c.cfg
	m, err := ikev2.NewManager(ikev2.Config{Log: c.log.Named("ikev2"), Host: (*host)(c), Rand: rand.Reader})
	if err != nil {
		return err
	}
	// With EAP the server signs, and any signature method is checked by
	// the key in its certificate; without, we prove ourselves as we are
	// configured to.
	auth := uint16(ike.AuthRSASig)
	switch {
	case cfg.User != "":
	case cfg.Cert != nil:
		if auth, err = ike.SignatureMethod(cfg.Cert.Key.Public()); err != nil {
			return err
		}
	default:
		auth = ike.AuthPSK
	}
	peers := make([]*ikev2.Peer, cfg.Calls)
	for i := range peers {
		pc := &ike.PeerConfig{Name: v2Name(i), Local: c.local, Remote: cfg.Server, Auth: []uint16{auth}, ESP: cfg.ESP,
			ESPLifetime: time.Hour, Lifetime: 8 * time.Hour, DPDInterval: 30 * time.Second, DPDTimeout: 150 * time.Second, VendorIDs: cfg.VendorIDs}
		p := &ikev2.Peer{PeerConfig: pc, Suites: cfg.IKEv2}
		if cfg.User != "" {
			p.EAPClient = &ikev2.EAPClient{Identity: cfg.User, Password: cfg.Password}
		} else {
			p.AskAddress = true
		}
		peers[i] = p
	}
	m.SetPeers(peers)
	c.v2 = &v2State{mgr: m, up: map[string]bool{}}
	c.plane.Start()
	go c.read500()
	return nil
}

// startCalls starts IKE SAs while fewer than v2Window are being set up.
func (c *Conn) startCalls() {
	v := c.v2
	for v.next < c.cfg.Calls && v.inflight < v2Window {
		if err := v.mgr.Initiate(v2Name(v.next)); err != nil {
			c.end(fmt.Errorf("%w: %v", ErrIKE, err))
			return
		}
		v.next++
		v.inflight++
	}
}

// v2Event follows the IKEv2 calls (on the loop goroutine).
func (c *Conn) v2Event(e ike.Event) {
	v := c.v2
	switch e.ID {
	case ike.EventNegotiationErr:
		if c.isUp() {
			return // a rekey the engine retries, or a child we refused
		}
		err := fmt.Errorf("%w: %s", ErrIKE, e.Message)
		if (e.Reason == "authentication-failed" && c.cfg.User != "") || e.Reason == "no-address" {
			err = fmt.Errorf("%w: %s", ErrRefused, e.Message)
		}
		c.end(err)
	case ike.EventChildUp:
		if e.Child == nil || v.up[e.Peer] {
			if e.Peer == peerName && e.Child != nil {
				c.setChild(e.Child) // a rekey: the data path's key stays
			}
			return
		}
		// Our traffic selector is the address the server gave (the
		// engine's VirtualAddress would look through every SA: a load
		// test's calls made that quadratic).
		addr := e.Child.LocalTS.Prefix.Addr()
		if !addr.IsValid() {
			return
		}
		v.up[e.Peer] = true
		v.inflight--
		c.upCalls = append(c.upCalls, addr)
		if e.Peer == peerName {
			c.setChild(e.Child)
			c.childUp = time.Now()
			if !c.installV2(e.Child, addr) {
				return
			}
			if c.cfg.DHCPInform && c.cfg.IO == nil {
				go c.askRoutes(addr)
			}
			_, dns, _ := v.mgr.VirtualAddress(e.Peer)
			c.mu.Lock()
			c.info.DNS = dns
			c.mu.Unlock()
		}
		c.startCalls()
		if len(c.upCalls) == c.cfg.Calls && c.child != nil {
			c.v2Up()
		}
	case ike.EventIKEDown:
		if v.up[e.Peer] && e.Peer == peerName {
			c.end(fmt.Errorf("%w: the server ended the IKEv2 connection: %s", ErrIKE, e.Message))
		}
	}
}

// setChild makes ch the first call's child (Counters reads it).
func (c *Conn) setChild(ch *ike.ChildSA) {
	c.mu.Lock()
	c.child = ch
	c.mu.Unlock()
}

// v2Up reports the connection up.
func (c *Conn) v2Up() {
	now := time.Now()
	ch := c.child
	addr := ch.LocalTS.Prefix.Addr()
	c.mu.Lock()
	c.info = Info{Address: addr, DNS: c.info.DNS, Local: ch.Local, Server: ch.Remote, NAT: ch.UDP, ESP: ch.Suite.String(),
		Addresses: c.upCalls, Setup: now.Sub(c.began), CallSetup: now.Sub(c.began), Routes: c.v2Routes(ch)}
	info := c.info
	c.mu.Unlock()
	c.up <- info
}

// v2Routes are the networks the server's traffic selectors name, and the
// configured routes.
func (c *Conn) v2Routes(ch *ike.ChildSA) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ch.AllPairs() {
		if p.Remote.Prefix != limitedBroadcast { // there for DHCPINFORM, not a network
			out = append(out, p.Remote.Prefix)
		}
	}
	return append(out, c.cfg.Routes...)
}

var limitedBroadcast = netip.MustParsePrefix("255.255.255.255/32")

// askRoutes asks the server for split-tunnel routes as Windows does once
// connected: a DHCPINFORM from our address to 255.255.255.255 out of the
// TUN, into the tunnel (the server's traffic selectors let it through),
// three tries two seconds apart. The answer is logged; the routes are
// the traffic selectors' already.
func (c *Conn) askRoutes(addr netip.Addr) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); serr == nil {
				serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, c.cfg.TUN)
			}
		})
		return cmp.Or(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(addr, dhcp.ClientPort).String())
	if err != nil {
		c.log.Warn("DHCPINFORM not sent", zap.Error(err))
		return
	}
	defer pc.Close()
	conn := pc.(*net.UDPConn)
	var id [10]byte
	rand.Read(id[:])
	hw, xid := [6]byte(id[:6]), binary.BigEndian.Uint32(id[6:])
	hw[0] = 0x02 // locally administered
	inform := dhcp.AppendInform(nil, addr, hw, xid)
	buf := make([]byte, 1500)
	for range 3 {
		if _, err := conn.WriteToUDPAddrPort(inform, netip.AddrPortFrom(limitedBroadcast.Addr(), dhcp.ServerPort)); err != nil {
			c.log.Warn("DHCPINFORM not sent", zap.Error(err))
			return
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			n, _, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				break // the next try
			}
			if ack, err := dhcp.Parse(buf[:n]); err == nil && ack.Type == dhcp.Ack && ack.XID == xid {
				c.log.Info("routes from DHCP", zap.Stringers("routes", ack.Routes), zap.String("domain", ack.Domain), zap.Stringer("server", ack.ServerID))
				return
			}
		}
	}
	c.log.Warn("no answer to DHCPINFORM: Windows would get no split-tunnel routes from this server")
}

// installV2 gives the data path a policy that sends what goes from our
// address to the server's networks through the child, and sets up the
// TUN with the address and the routes.
func (c *Conn) installV2(ch *ike.ChildSA, addr netip.Addr) bool {
	rule := &policy.Rule{Name: v2OutKey(ch).Rule, Origin: "ikev2", Tunnel: c.cfg.Server, Dir: policy.Outbound,
		Action: policy.FilterAction{Name: "ikev2", Action: policy.Negotiate}}
	for _, p := range ch.AllPairs() {
		rule.Filters = append(rule.Filters, policy.Filter{Src: policy.Addr{Prefix: netip.PrefixFrom(addr, 32)}, Dst: policy.Addr{Prefix: p.Remote.Prefix}})
	}
	c.plane.SetPolicy(policy.New([]*policy.Rule{rule}, "", nil, []netip.Addr{c.local}))
	return c.setupTUN(addr, c.v2Routes(ch))
}

// v2OutKey is where the data path finds a call's outbound SA: under its
// policy rule and the server's address.
func v2OutKey(ch *ike.ChildSA) sad.OutKey {
	return sad.OutKey{Rule: "ikev2/" + ch.Peer, Peer: ch.Remote.Addr().Unmap()}
}

// v2Meta describes a call's tunnel-mode SA; inbound, what may arrive on it
// (RFC 4301 section 5.2).
func v2Meta(ch *ike.ChildSA, inbound bool) sad.Meta {
	m := sad.Meta{Name: ch.Peer, Rule: v2OutKey(ch).Rule, Mode: sad.Tunnel, Local: ch.Local, Peer: ch.Remote, UDPEncap: ch.UDP}
	for _, p := range ch.AllPairs() {
		if inbound {
			m.Selectors = append(m.Selectors, sad.Selector{Src: p.Remote.Prefix, Dst: p.Local.Prefix})
		} else {
			m.Selectors = append(m.Selectors, sad.Selector{Src: p.Local.Prefix, Dst: p.Remote.Prefix})
		}
	}
	return m
}

// v2Counters are the first call's traffic: its current child's SAs.
func (c *Conn) v2Counters() dataplane.L2TPCounters {
	var t dataplane.L2TPCounters
	c.mu.Lock()
	ch := c.child
	c.mu.Unlock()
	if ch == nil {
		return t
	}
	if in := c.db.Inbound(ch.InSPI); in != nil && in.ESP != nil {
		t.BytesIn, t.PacketsIn = in.ESP.Counters().Bytes.Load(), in.ESP.Counters().Packets.Load()
	}
	if out := c.db.Outbound(v2OutKey(ch)); out != nil && out.ESP != nil {
		t.BytesOut, t.PacketsOut = out.ESP.Counters().Bytes.Load(), out.ESP.Counters().Packets.Load()
	}
	return t
}

// terminateV2 deletes every call's IKE SA (the server is told), at most
// terminateBurst at a time: 10,000 deletes sent at once overflowed the
// server's receive buffer, and the sessions whose delete was lost stayed
// until their liveness checks failed.
func (c *Conn) terminateV2() {
	for c.v2.mgr.TerminateSome(terminateBurst) == terminateBurst {
		time.Sleep(terminatePause)
	}
}

const (
	terminateBurst = 256
	terminatePause = 20 * time.Millisecond
)

// terminateTime is how long terminateV2 pauses in all.
func (c *Conn) terminateTime() time.Duration {
	if c.v2 == nil {
		return 0
	}
	return time.Duration(c.cfg.Calls/terminateBurst) * terminatePause
}

// installV2Child puts a call's SAs in the database.
func (h *host) installV2Child(ch *ike.ChildSA, inbound bool) error {
	if inbound {
		in, err := esp.NewInbound(espConfig(ch, ch.InSPI, ch.InEnc, ch.InInteg))
		if err != nil {
			return err
		}
		return h.db.AddInbound(&sad.InSA{Meta: v2Meta(ch, true), ESP: in})
	}
	out, err := esp.NewOutbound(espConfig(ch, ch.OutSPI, ch.OutEnc, ch.OutInteg))
	if err != nil {
		return err
	}
	h.db.SetOutbound(v2OutKey(ch), &sad.OutSA{Meta: v2Meta(ch, false), ESP: out})
	return nil
}

// SignDigest signs IKEv2's AUTH with our certificate's key.
func (h *host) SignDigest(_ *ike.PeerConfig, _ uint16, scheme string, digest []byte) ([]byte, error) {
	if h.cfg.Cert == nil {
		return nil, errNoCert
	}
	return ike.SignDigest(h.cfg.Cert.Key, scheme, digest)
}

var _ ikev2.DigestSigner = (*host)(nil)
