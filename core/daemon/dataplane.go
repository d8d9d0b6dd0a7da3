package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/ikehost"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/remote"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// dataplaneState is the running data path, when the configuration has SAs
// to carry (manual_sas, tunnels or remote access).
type dataplaneState struct {
	plane   *dataplane.Plane
	ike     *ikehost.Engine // nil without tunnels or remote access
	db      *sad.DB
	cleanup func()
	stop    chan struct{}
	expired chan esp.Event // hard lifetimes, handled off the packet path
}

// needsDataplane reports whether the configuration has SAs to carry.
func needsDataplane(c *config.Config) bool {
	return len(c.ManualSAs) > 0 || len(c.Tunnels) > 0 || c.RemoteAccess != nil
}

// manualSAs builds the SAD entries of every manual SA.
func manualSAs(c *config.Config, log *zap.Logger, expired chan<- esp.Event) ([]*sad.InSA, map[sad.OutKey]*sad.OutSA, error) {
	var ins []*sad.InSA
	outs := map[sad.OutKey]*sad.OutSA{}
	for i, m := range c.ManualSAs {
		suite, err := esp.ParseSuite(m.Suite)
		if err != nil {
			return nil, nil, err
		}
		el, il := esp.KeyLengths(suite)
		mk := func(k config.ManualKey) (esp.Config, error) {
			key, err := config.ReadManualKey(k.KeyFile)
			if err != nil {
				return esp.Config{}, fmt.Errorf("manual_sas[%d] %s: %w", i, m.Name, err)
			}
			if len(key) != el+il { // checked at load; the file may have changed since
				return esp.Config{}, fmt.Errorf("manual_sas[%d] %s: %s holds %d bytes of key, %s needs %d", i, m.Name, k.KeyFile, len(key), suite, el+il)
			}
			// Soft limits at 90 % of hard ones, so the log warns first.
			lim := esp.Limits{HardTime: m.Lifetime.Duration, HardBytes: m.LifetimeKB * 1024, HardPackets: m.LifetimePkt,
				SoftTime: m.Lifetime.Duration * 9 / 10, SoftBytes: m.LifetimeKB * 1024 * 9 / 10, SoftPackets: m.LifetimePkt * 9 / 10}
			return esp.Config{SPI: k.SPI, Suite: suite, EncKey: key[:el], IntegKey: key[el:], ESN: m.ESN, Window: m.ReplayWindow, Limits: lim,
				OnEvent: func(e esp.Event) {
					log.Warn("SA lifetime reached", zap.String("sa", m.Name), zap.String("spi", fmt.Sprintf("%#x", e.SPI)), zap.Stringer("kind", e.Kind), zap.String("reason", e.Reason))
					passHardExpiry(expired, e)
				}}, nil
		}
		outCfg, err := mk(m.Out)
		if err != nil {
			return nil, nil, err
		}
		inCfg, err := mk(m.In)
		if err != nil {
			return nil, nil, err
		}
		var o *esp.Outbound
		var in *esp.Inbound
		var ahOut, ahIn *esp.AH
		if suite.Protocol == esp.ProtoAH {
			if m.UDPEncap {
				return nil, nil, fmt.Errorf("manual_sas[%d] %s: AH cannot be UDP-encapsulated (RFC 3948 covers ESP only)", i, m.Name)
			}
			if ahOut, err = esp.NewAH(outCfg, false); err == nil {
				ahIn, err = esp.NewAH(inCfg, true)
			}
		} else if o, err = esp.NewOutbound(outCfg); err == nil {
			in, err = esp.NewInbound(inCfg)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("manual_sas[%d] %s: %w", i, m.Name, err)
		}
		port := uint16(0)
		if m.UDPEncap {
			port = esp.NATTPort
		}
		local, peer := m.Local.Unmap(), m.Peer.Unmap()
		meta := sad.Meta{Name: m.Name, Mode: sad.Tunnel, Local: netip.AddrPortFrom(local, port), Peer: netip.AddrPortFrom(peer, port), UDPEncap: m.UDPEncap}
		outName, inName := policy.ManualRuleNames(m)
		if m.Mode == "transport" {
			meta.Mode = sad.Transport
			meta.Selectors = []sad.Selector{{Src: netip.PrefixFrom(peer, peer.BitLen()), Dst: netip.PrefixFrom(local, local.BitLen())}}
		} else {
			for _, r := range m.RemoteSubnets {
				for _, l := range m.LocalSubnets {
					meta.Selectors = append(meta.Selectors, sad.Selector{Src: r.Prefix, Dst: l.Prefix})
				}
			}
		}
		outMeta := meta
		outMeta.Rule = outName
		outMeta.Selectors = nil
		inMeta := meta
		inMeta.Rule = inName
		outs[sad.OutKey{Rule: outName, Peer: peer}] = &sad.OutSA{Meta: outMeta, ESP: o, AH: ahOut}
		ins = append(ins, &sad.InSA{Meta: inMeta, ESP: in, AH: ahIn})
	}
	return ins, outs, nil
}

// passHardExpiry hands a hard expiry to the remover, off the packet path.
// It never blocks: if the remover is behind, the SA refuses packets anyway.
func passHardExpiry(expired chan<- esp.Event, e esp.Event) {
	if e.Kind != esp.HardExpire {
		return
	}
	select {
	case expired <- e:
	default:
	}
}

// subnetRoutes routes the remote subnets into the TUN, with one of our
// addresses in the local subnets of the same family as the source for
// traffic this host originates.
func subnetRoutes(local, remote []config.Prefix) []dataplane.Route {
	var src4, src6 netip.Addr
	for _, ls := range local {
		if a := localAddrIn(ls.Prefix); a.Is4() && !src4.IsValid() {
			src4 = a
		} else if a.Is6() && !src6.IsValid() {
			src6 = a
		}
	}
	var out []dataplane.Route
	for _, r := range remote {
		src := src4
		if r.Prefix.Addr().Is6() {
			src = src6
		}
		out = append(out, dataplane.Route{Dst: r.Prefix, Src: src})
	}
	return out
}

// localAddrIn finds one of this host's addresses inside p, to use as the
// source of locally originated packets routed into the tunnel.
func localAddrIn(p netip.Prefix) netip.Addr {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP); ok && p.Contains(ip.Unmap()) {
				return ip.Unmap()
			}
		}
	}
	return netip.Addr{}
}

// outerAddr is what the outer sockets (raw ESP, UDP 4500, cleartext
// L2TP) bind to: the listen address when there is one IPv4 address, else
// 0.0.0.0. Every packet must leave from the address its peer dialled (an
// SA names it), not the outgoing route's source: a failover address added
// beside the interface's own, the server's address on lo, or a second
// listen address would otherwise lose the peer. Bound to one address the
// socket sends from it; bound to 0.0.0.0 each send names its source
// (IP_PKTINFO) and each read tells which address it came to.
func outerAddr(c *config.Config, log *zap.Logger) netip.Addr {
	var v4 []netip.Addr
	for _, l := range c.Listen {
		if a := l.Addr.Unmap(); a.Is4() {
			v4 = append(v4, a)
		}
	}
	if len(v4) == 1 {
		return v4[0]
	}
	if len(v4) > 1 {
		log.Info("several listen addresses: the outer sockets are on 0.0.0.0 and send each packet from the address its SA names", zap.Stringers("listen", v4))
	}
	return netip.IPv4Unspecified()
}

// outerAddr6 is the IPv6 listen address, where the IPv6 outer sockets
// are bound (one at most: the configuration allows no more).
func outerAddr6(c *config.Config) netip.Addr {
	for _, l := range c.Listen {
		if a := l.Addr.Unmap(); a.Is6() {
			return a
		}
	}
	return netip.Addr{}
}

// dataplaneSockets are what the data path reads and writes: the TUN and
// the outer sockets (raw ESP, UDP 4500, cleartext, and raw AH when a
// manual SA uses AH).
type dataplaneSockets struct {
	tun                 dataplane.Device
	raw, udp, clear, ah dataplane.Conn
	// raw6 and udp6 are the outer sockets for IPv6 peers, on the IPv6
	// listen address (nil without one).
	raw6, udp6 dataplane.Conn
	// l2tp is UDP 1701 for L2TP without IPsec (allow_cleartext_l2tp);
	// l2tpLocal is where it is bound.
	l2tp      dataplane.Conn
	l2tpLocal netip.AddrPort
}

func (s *dataplaneSockets) close() {
	if s.tun != nil {
		s.tun.Close()
	}
	for _, c := range []dataplane.Conn{s.raw, s.udp, s.clear, s.ah, s.l2tp, s.raw6, s.udp6} {
		if c != nil {
			c.Close()
		}
	}
}

// openSockets opens the TUN and the outer sockets; on error, what it
// opened is closed.
func openSockets(c *config.Config, ins []*sad.InSA, log *zap.Logger) (_ *dataplaneSockets, err error) {
	dp := c.Dataplane
	s := &dataplaneSockets{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	open := dataplane.OpenTUN
	if dp.TUNSegmentation {
		open = dataplane.OpenSegmentingTUN
	}
	if s.tun, err = open(dp.TUN); err != nil {
		if dp.TUNSegmentation {
			err = fmt.Errorf("%w (this kernel may lack TUN segmentation: set dataplane.tun_segmentation: false to use a plain TUN)", err)
		}
		return nil, err
	}
	outer := outerAddr(c, log)
	if s.raw, err = dataplane.ListenRawESP(outer, int(dp.Mark)); err != nil {
		return nil, err
	}
	if s.udp, err = dataplane.ListenUDP(netip.AddrPortFrom(outer, esp.NATTPort), int(dp.Mark)); err != nil {
		return nil, err
	}
	if s.clear, err = dataplane.OpenClear(int(dp.Mark)); err != nil {
		return nil, err
	}
	if a := outerAddr6(c); a.IsValid() {
		if s.raw6, err = dataplane.ListenRawESP(a, int(dp.Mark)); err != nil {
			return nil, err
		}
		if s.udp6, err = dataplane.ListenUDP(netip.AddrPortFrom(a, esp.NATTPort), int(dp.Mark)); err != nil {
			return nil, err
		}
	}
	if ra := c.RemoteAccess; ra != nil && ra.AllowCleartextL2TP {
		s.l2tpLocal = netip.AddrPortFrom(outer, l2tp.Port)
		if s.l2tp, err = dataplane.ListenUDP(s.l2tpLocal, int(dp.Mark)); err != nil {
			return nil, fmt.Errorf("cleartext L2TP (remote_access.allow_cleartext_l2tp): %w", err)
		}
		log.Warn("cleartext L2TP is on: clients may connect without IPsec, and their traffic and PPP logins cross the network unencrypted "+
			"(remote_access.allow_cleartext_l2tp; remove it once the troubleshooting is done)", zap.Stringer("socket", s.l2tpLocal))
	}
	if slices.ContainsFunc(ins, func(in *sad.InSA) bool { return in.AH != nil }) {
		if s.ah, err = dataplane.ListenRawAH(netip.IPv4Unspecified()); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// routesOf lists what the TUN routes (the tunnels' and manual SAs'
// remote subnets, the remote-access pool) and the addresses it holds
// (the pool's gateway).
func routesOf(c *config.Config, ra *remote.Access) (routes []dataplane.Route, addrs []netip.Prefix) {
	for _, t := range c.Tunnels {
		routes = append(routes, subnetRoutes(t.Local.Subnets, t.Remote.Subnets)...)
	}
	for _, m := range c.ManualSAs {
		if m.Mode == "transport" {
			routes = append(routes, dataplane.Route{Dst: netip.PrefixFrom(m.Peer.Unmap(), m.Peer.Unmap().BitLen()), Src: m.Local.Unmap()})
			continue
		}
		routes = append(routes, subnetRoutes(m.LocalSubnets, m.RemoteSubnets)...)
	}
	if ra != nil {
		// Clients are reached through the TUN, and reach this host at the
		// pool's gateway address.
		gw := ra.Pool().Gateway()
		routes = append(routes, dataplane.Route{Dst: ra.Pool().Prefix(), Src: gw})
		addrs = append(addrs, sad.HostPrefix(gw))
	}
	return routes, addrs
}

func (d *Daemon) startDataplane(l *Loaded) (err error) {
	c, dp := l.Config, l.Config.Dataplane
	log := d.log.Named("esp")
	st := &dataplaneState{db: sad.New(), stop: make(chan struct{}), expired: make(chan esp.Event, 64)}
	ins, outs, err := manualSAs(c, log, st.expired)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if err := st.db.AddInbound(in); err != nil {
			return err
		}
	}
	for k, o := range outs {
		st.db.SetOutbound(k, o)
	}
	socks, err := openSockets(c, ins, log)
	if err != nil {
		return err
	}
	routes, addrs := routesOf(c, d.ra)
	if d.ra != nil {
		gw, tun, table := d.ra.Pool().Gateway(), dp.TUN, dp.Table
		d.ra.SetHostRoute(func(a netip.Addr, add bool) error { return dataplane.HostRoute(tun, table, a, gw, !add) })
	}
	netCleanup, err := dataplane.SetupNetwork(dataplane.NetConfig{TUN: dp.TUN, MTU: dp.MTU, Table: dp.Table, Mark: int(dp.Mark), Routes: routes, Addrs: addrs})
	if err != nil {
		socks.close()
		return err
	}
	// Cleartext the kernel would forward or deliver past us is dropped when
	// a negotiate rule covers it (RFC 4301 section 5.2; docs/dataplane.md).
	if err := dataplane.ApplyNft(dataplane.CleartextRules(l.Policy, dp.TUN)); err != nil {
		netCleanup()
		socks.close()
		return err
	}
	st.cleanup = func() {
		dataplane.RemoveNft()
		netCleanup()
	}
	if st.ike, err = d.startIKE(c, st, dataplane.ByFamily(socks.udp, socks.udp6)); err != nil {
		st.cleanup()
		socks.close()
		return err
	}
	st.plane = dataplane.New(d.planeConfig(log, st, socks), l.Policy)
	if d.ra != nil {
		var clear func(from, to netip.AddrPort, msg []byte) error
		if socks.l2tp != nil {
			clear = st.plane.SendL2TPClear
		}
		d.ra.SetSender(st.plane.SendL2TP, clear)
		if st.ike != nil {
			d.ra.SetIKEv2(st.ike.DisconnectClient, st.db, st.plane.SendToClient)
		}
	}
	st.plane.Start()
	go d.maintain(st, log)
	d.dp = st
	log.Info("data path running", zap.String("tun", dp.TUN), zap.Int("mtu", dp.MTU), zap.Bool("tun_segmentation", dp.TUNSegmentation), zap.Int("sas", st.db.Len()), zap.Int("routes", len(routes)))
	return nil
}

// startIKE starts the IKE engine (nil without tunnels or remote access).
func (d *Daemon) startIKE(c *config.Config, st *dataplaneState, udp4500 dataplane.Conn) (*ikehost.Engine, error) {
	cfg := ikehost.Config{Log: d.log.Named("ike"), InteropLog: d.log.Named("interop"), Config: c, Plugins: d.plugins, Events: d.events,
		SAD: st.db, UDP4500: udp4500, OnSAEvent: func(e esp.Event) { passHardExpiry(st.expired, e) }, Interops: d.interops}
	if d.ra != nil {
		cfg.PeerGone, cfg.RemoteAccess = d.ra.PeerGone, d.ra
	}
	if d.opts.KeyLog != "" && d.keyLog == nil {
		f, err := os.OpenFile(d.opts.KeyLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--keylog: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("--keylog: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			f.Close()
			return nil, fmt.Errorf("--keylog %s: others may read it (mode %v): chmod 600 it, or name a new file", d.opts.KeyLog, fi.Mode().Perm())
		}
		d.keyLog = f
		d.log.Warn("ESP keys are appended to the key log: whoever reads it can decrypt the tunnels; use it for debugging only",
			zap.String("keylog", d.opts.KeyLog))
	}
	if d.keyLog != nil {
		cfg.KeyLog = d.keyLog
	}
	return ikehost.Start(cfg)
}

// interops lists the running interop plugins in plugins.load order, with
// the configuration in force.
func (d *Daemon) interops() (*config.Config, []string, []sdk.Interop) {
	l := d.Current()
	var names []string
	var list []sdk.Interop
	for _, s := range l.Plugins {
		if p, ok := d.plugins.Get(s.Name); ok {
			if i, ok := p.Interop(); ok {
				names, list = append(names, s.Name), append(list, i)
			}
		}
	}
	return l.Config, names, list
}

// planeConfig connects the data path to its sockets, the SAD, IKE (acquires,
// IKE on port 4500) and remote access (L2TP sessions and control).
func (d *Daemon) planeConfig(log *zap.Logger, st *dataplaneState, s *dataplaneSockets) dataplane.Config {
	pcfg := dataplane.Config{Log: log, TUN: s.tun, Raw: s.raw, UDP: s.udp, Raw6: s.raw6, UDP6: s.udp6, Clear: s.clear, AH: s.ah, SAD: st.db,
		MTU: d.Current().Config.Dataplane.MTU,
		OnAcquire: func(a dataplane.Acquire) {
			log.Info("traffic needs an SA that does not exist, and no tunnel starts on traffic for it; dropping", zap.String("rule", a.Rule.Name),
				zap.Stringer("peer", a.Peer), zap.Stringer("src", a.Src), zap.Stringer("dst", a.Dst))
		}}
	if ik := st.ike; ik != nil {
		pcfg.OnAcquire = ik.OnAcquire
		pcfg.OnIKE = func(msg []byte, local netip.Addr, from netip.AddrPort) {
			// local is set when the socket is bound to 0.0.0.0 (several
			// listen addresses): IKE answers from the address dialled.
			if !local.IsValid() {
				local = netip.IPv4Unspecified()
			}
			ik.Deliver(msg, netip.AddrPortFrom(local, esp.NATTPort), from)
		}

	}
	if d.ra != nil {
		pcfg.L2TP, pcfg.OnL2TPControl = d.ra.Table(), d.ra.OnControl
		if d.ra.ServesIKEv2() {
			pcfg.ClientRule, pcfg.OnDHCP = remote.ClientOutKey(netip.Addr{}).Rule, d.ra.OnDHCP
		}
		pcfg.L2TPClear, pcfg.L2TPClearLocal = s.l2tp, s.l2tpLocal
	}
	return pcfg
}

// maintain runs the data path's housekeeping until it stops: SA
// lifetimes every second, remote access's idle sessions and accounting,
// and the removal of SAs past their hard lifetime.
func (d *Daemon) maintain(st *dataplaneState, log *zap.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case now := <-t.C:
			st.db.Tick(now)
			if d.ra != nil {
				d.ra.Tick(now)
			}
		case e := <-st.expired:
			// Removed here, not in the event callback: Tick holds a
			// shard lock while it runs callbacks.
			if st.db.RemoveSPI(e.SPI) {
				log.Warn("SA removed: hard lifetime reached", zap.String("spi", fmt.Sprintf("%#x", e.SPI)), zap.String("reason", e.Reason))
			}
		}
	}
}

func (d *Daemon) stopDataplane() {
	if d.dp == nil {
		return
	}
	c := d.dp.plane.Counters()
	d.log.Named("esp").Info("data path stopping", zap.Uint64("sent", c.Sent), zap.Uint64("received", c.Received),
		zap.Uint64("tun_reads", c.TUNReads), zap.Uint64("tun_packets", c.TUNPackets),
		zap.Uint64("tun_writes", c.TUNWrites), zap.Uint64("tun_written", c.TUNWritten), zap.Any("drops", c.Drops))
	close(d.dp.stop)
	if d.dp.ike != nil {
		d.dp.ike.Close()
	}
	d.dp.plane.Close()
	d.dp.cleanup()
	d.dp = nil
}

// remoteAccessUnchanged reports whether a reload leaves remote_access as
// it was, positions in the file aside.
func remoteAccessUnchanged(a, b *config.Config) bool {
	strip := func(ra *config.RemoteAccess) *config.RemoteAccess {
		if ra == nil {
			return nil
		}
		r := *ra
		r.Meta, r.PPP.Meta, r.ESP.Meta = config.Meta{}, config.Meta{}, config.Meta{}
		if r.IKE != nil {
			k := *r.IKE
			k.Meta, k.DPD.Meta = config.Meta{}, config.Meta{}
			r.IKE = &k
		}
		r.Auth = stripAuth(r.Auth)
		if r.PPP.Radius != nil {
			// The servers may change on reload: the plugin takes them.
			// The Disconnect-Request listener is set up at start.
			r.PPP.Radius = &config.Radius{DisconnectListen: r.PPP.Radius.DisconnectListen, DisconnectWindow: r.PPP.Radius.DisconnectWindow}
		}
		return &r
	}
	return reflect.DeepEqual(strip(a.RemoteAccess), strip(b.RemoteAccess))
}

// stripAuth drops file positions from an auth list.
func stripAuth(list []config.AuthMethod) []config.AuthMethod {
	out := make([]config.AuthMethod, len(list))
	for j, m := range list {
		m.Meta = config.Meta{}
		if m.X509 != nil {
			x := *m.X509
			x.Meta = config.Meta{}
			m.X509 = &x
		}
		if m.Kerberos != nil {
			k := *m.Kerberos
			k.Meta = config.Meta{}
			m.Kerberos = &k
		}
		out[j] = m
	}
	return out
}

// manualUnchanged reports whether a reload leaves manual SAs as they are;
// they cannot be replaced without dropping traffic, so a change needs a
// restart.
func manualUnchanged(a, b *config.Config) bool {
	strip := func(list []config.ManualSA) []config.ManualSA {
		out := make([]config.ManualSA, len(list))
		for i, m := range list {
			m.Meta, m.In.Meta, m.Out.Meta = config.Meta{}, config.Meta{}, config.Meta{}
			out[i] = m
		}
		return out
	}
	da, db := a.Dataplane, b.Dataplane
	da.Meta, db.Meta = config.Meta{}, config.Meta{}
	return reflect.DeepEqual(strip(a.ManualSAs), strip(b.ManualSAs)) && reflect.DeepEqual(da, db)
}

// ikeManager is the running IKE engine, nil without tunnels.
func (d *Daemon) ikeManager() *ikehost.Engine {
	d.mu.RLock()
	st := d.dp
	d.mu.RUnlock()
	if st == nil {
		return nil
	}
	return st.ike
}

// IKESAs lists the IKE SAs; nil without tunnels.
func (d *Daemon) IKESAs() []ike.SAInfo {
	if m := d.ikeManager(); m != nil {
		return m.SAs()
	}
	return nil
}

// ErrNoTunnels: up or down without tunnels configured.
var ErrNoTunnels = errors.New("no tunnels are configured")

// TunnelUp starts a tunnel's negotiation (gatehouse up).
func (d *Daemon) TunnelUp(name string) error {
	if m := d.ikeManager(); m != nil {
		return m.Initiate(name)
	}
	return ErrNoTunnels
}

// TunnelDown deletes a tunnel's SAs (gatehouse down).
func (d *Daemon) TunnelDown(name string) error {
	if m := d.ikeManager(); m != nil {
		return m.Terminate(name)
	}
	return ErrNoTunnels
}

// SAs lists installed SAs and the data path's counters; ok is false when no
// data path runs.
func (d *Daemon) SAs() ([]sad.Snapshot, dataplane.Counters, bool) {
	d.mu.RLock()
	st := d.dp
	d.mu.RUnlock()
	if st == nil {
		return nil, dataplane.Counters{}, false
	}
	return st.db.List(time.Now()), st.plane.Counters(), true
}

// ErrNoRemoteAccess: sessions asked for without remote_access.
var ErrNoRemoteAccess = errors.New("remote_access is not configured")

// SessionsInfo is remote access's state for `gatehouse sessions`.
type SessionsInfo struct {
	Sessions   []remote.Session
	Pool       netip.Prefix
	Used, Size int // the pool's addresses
	// ControlDropped counts L2TP and PPP control packets the relay to
	// the l2tp plugin dropped (queue full, plugin away); peers retransmit.
	ControlDropped uint64
}

// Sessions lists the remote-access sessions and the pool's use.
func (d *Daemon) Sessions() (SessionsInfo, error) {
	if d.ra == nil {
		return SessionsInfo{}, ErrNoRemoteAccess
	}
	used, size := d.ra.Pool().Usage()
	return SessionsInfo{Sessions: d.ra.Sessions(), Pool: d.ra.Pool().Prefix(), Used: used, Size: size, ControlDropped: d.ra.ControlDropped()}, nil
}

// Disconnect ends the sessions of a user or a client address.
func (d *Daemon) Disconnect(target string) ([]remote.Session, error) {
	if d.ra == nil {
		return nil, ErrNoRemoteAccess
	}
	return d.ra.Disconnect(target), nil
}
