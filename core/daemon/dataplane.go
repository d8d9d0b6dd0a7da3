package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
)

// dataplaneState is the running data path, when the configuration has SAs
// to carry (today: manual_sas; IKE will add its own).
type dataplaneState struct {
	plane   *dataplane.Plane
	ike     *ikeState // nil without tunnels
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
			meta.Selectors = []sad.Selector{{Src: netip.PrefixFrom(peer, 32), Dst: netip.PrefixFrom(local, 32)}}
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
// addresses in the local subnets as the source for traffic this host
// originates.
func subnetRoutes(local, remote []config.Prefix) []dataplane.Route {
	var src netip.Addr
	for _, ls := range local {
		if src = localAddrIn(ls.Prefix); src.IsValid() {
			break
		}
	}
	var out []dataplane.Route
	for _, r := range remote {
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

// outerAddr is what the ESP sockets bind to: the listen address when
// there is one IPv4 address. Bound to 0.0.0.0, they would send from the
// outgoing route's source address, and a client that talks to another
// one (a failover address added beside the interface's own, or the
// server's address on lo with the clients routed through another
// interface) drops our ESP: its SA names the address it dialled.
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
		log.Warn("several listen addresses: ESP leaves from the outgoing route's source address, which must be the one each peer dialled",
			zap.Stringers("listen", v4))
	}
	return netip.IPv4Unspecified()
}

func (d *Daemon) startDataplane(l *Loaded) (err error) {
	c := l.Config
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
	dp := c.Dataplane
	open := dataplane.OpenTUN
	if dp.Offload {
		open = dataplane.OpenOffloadTUN
	}
	tun, err := open(dp.TUN)
	if err != nil {
		if dp.Offload {
			err = fmt.Errorf("%w (this kernel may lack TUN offloads: set dataplane.offload: false to use a plain TUN)", err)
		}
		return err
	}
	var conns []dataplane.Conn
	defer func() {
		if err != nil {
			tun.Close()
			for _, cn := range conns {
				cn.Close()
			}
		}
	}()
	outer := outerAddr(c, log)
	raw, err := dataplane.ListenRawESP(outer, int(dp.Mark))
	if err != nil {
		return err
	}
	conns = append(conns, raw)
	udp, err := dataplane.ListenUDP(netip.AddrPortFrom(outer, esp.NATTPort), int(dp.Mark))
	if err != nil {
		return err
	}
	conns = append(conns, udp)
	clear, err := dataplane.OpenClear(int(dp.Mark))
	if err != nil {
		return err
	}
	conns = append(conns, clear)
	var ah dataplane.Conn
	for _, in := range ins {
		if in.AH != nil && ah == nil {
			if ah, err = dataplane.ListenRawAH(netip.IPv4Unspecified()); err != nil {
				return err
			}
			conns = append(conns, ah)
		}
	}
	var routes []dataplane.Route
	for _, t := range c.Tunnels {
		routes = append(routes, subnetRoutes(t.Local.Subnets, t.Remote.Subnets)...)
	}
	for _, m := range c.ManualSAs {
		if m.Mode == "transport" {
			routes = append(routes, dataplane.Route{Dst: netip.PrefixFrom(m.Peer.Unmap(), 32), Src: m.Local.Unmap()})
			continue
		}
		routes = append(routes, subnetRoutes(m.LocalSubnets, m.RemoteSubnets)...)
	}
	var addrs []netip.Prefix
	if d.ra != nil {
		// Clients are reached through the TUN, and reach this host at the
		// pool's gateway address.
		gw := d.ra.pool.Gateway()
		routes = append(routes, dataplane.Route{Dst: d.ra.pool.Prefix(), Src: gw})
		addrs = append(addrs, hostPrefix(gw))
	}
	if d.ra != nil {
		gw, tun, table := d.ra.pool.Gateway(), dp.TUN, dp.Table
		d.ra.hostRoute = func(a netip.Addr, add bool) error { return dataplane.HostRoute(tun, table, a, gw, !add) }
	}
	netCleanup, err := dataplane.SetupNetwork(dataplane.NetConfig{TUN: dp.TUN, MTU: dp.MTU, Table: dp.Table, Mark: int(dp.Mark), Routes: routes, Addrs: addrs})
	if err != nil {
		return err
	}
	// Cleartext the kernel would forward or deliver past us is dropped when
	// a negotiate rule covers it (RFC 4301 section 5.2; docs/dataplane.md).
	if err := dataplane.ApplyNft(dataplane.CleartextRules(l.Policy, dp.TUN)); err != nil {
		netCleanup()
		return err
	}
	st.cleanup = func() {
		dataplane.RemoveNft()
		netCleanup()
	}
	if st.ike, err = d.startIKE(c, st.db, udp, st.expired); err != nil {
		st.cleanup()
		return err
	}
	pcfg := dataplane.Config{Log: log, TUN: tun, Raw: raw, UDP: udp, Clear: clear, AH: ah, SAD: st.db, MTU: dp.MTU,
		OnAcquire: func(a dataplane.Acquire) {
			log.Info("traffic needs an SA that does not exist, and no tunnel starts on traffic for it; dropping", zap.String("rule", a.Rule.Name),
				zap.Stringer("peer", a.Peer), zap.Stringer("src", a.Src), zap.Stringer("dst", a.Dst))
		}}
	if st.ike != nil {
		ik := st.ike
		pcfg.OnAcquire = ik.onAcquire
		pcfg.OnIKE = func(msg []byte, from netip.AddrPort) {
			ik.deliver(msg, netip.AddrPortFrom(netip.IPv4Unspecified(), esp.NATTPort), from)
		}
	}
	if d.ra != nil {
		pcfg.L2TP, pcfg.OnL2TPControl = d.ra.table, d.ra.onControl
	}
	st.plane = dataplane.New(pcfg, l.Policy)
	if d.ra != nil {
		d.ra.setSender(st.plane.SendL2TP)
	}
	st.plane.Start()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-st.stop:
				return
			case now := <-t.C:
				st.db.Tick(now)
				if d.ra != nil {
					d.ra.expireIdle(now)
					if d.ra.acct != nil {
						d.ra.acct.tick(now, d.ra.table)
					}
				}
			case e := <-st.expired:
				// Removed here, not in the event callback: Tick holds a
				// shard lock while it runs callbacks.
				if st.db.RemoveSPI(e.SPI) {
					log.Warn("SA removed: hard lifetime reached", zap.String("spi", fmt.Sprintf("%#x", e.SPI)), zap.String("reason", e.Reason))
				}
			}
		}
	}()
	d.dp = st
	log.Info("data path running", zap.String("tun", dp.TUN), zap.Int("mtu", dp.MTU), zap.Bool("offload", dp.Offload), zap.Int("sas", st.db.Len()), zap.Int("routes", len(routes)))
	return nil
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
		d.dp.ike.close()
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
func (d *Daemon) ikeManager() *ike.Manager {
	d.mu.RLock()
	st := d.dp
	d.mu.RUnlock()
	if st == nil || st.ike == nil {
		return nil
	}
	return st.ike.mgr
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
	Sessions   []*dataplane.L2TPSession
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
	used, size := d.ra.pool.Usage()
	return SessionsInfo{Sessions: d.ra.table.All(), Pool: d.ra.pool.Prefix(), Used: used, Size: size, ControlDropped: d.ra.dropped.Load()}, nil
}

// Disconnect ends the sessions of a user or a client address.
func (d *Daemon) Disconnect(target string) ([]*dataplane.L2TPSession, error) {
	if d.ra == nil {
		return nil, ErrNoRemoteAccess
	}
	return d.ra.disconnect(target), nil
}
