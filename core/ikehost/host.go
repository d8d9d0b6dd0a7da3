// Package ikehost runs the IKEv1 engine (package ike) inside gatehoused:
// Engine owns the UDP 500 sockets, the queue of datagrams and acquires,
// and the goroutine that feeds them to ike.Manager. host is the engine's
// ike.Host: keys and certificates from the auth plugins, SAs installed
// into the SAD, events to the audit log. PeerConfigs turns the
// configuration's tunnels and remote_access into the engine's peers;
// interop.go asks the interop plugins about each new peer. Start with
// Start and PeerConfigs.
package ikehost

import (
	"context"
	"crypto/rand"
	stdx509 "crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/events"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/remote"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// Engine runs the IKE engines for the configured tunnels, IKEv1's and
// IKEv2's: the UDP 500 sockets, the IKE messages the data path hands
// over from port 4500 (each to its engine by the header's version), the
// acquires, and one goroutine that feeds them all to the engines.
type Engine struct {
	mgr     *ike.Manager
	mgr2    *ikev2.Manager
	log     *zap.Logger
	socks   []ikeSocket
	udp4500 dataplane.Conn
	in      chan ikeDatagram
	acquire chan startReq
	// onTraffic: tunnels an acquire may start (not start: passive);
	// versions: each tunnel's IKE version. A reload replaces both.
	onTraffic atomic.Pointer[map[string]bool]
	versions  atomic.Pointer[map[string]int]
	host      *host
	stop      chan struct{}
	done      chan struct{}
}

// ikeSocket is a UDP 500 socket bound to one listen address, so replies
// leave from the address the peer knows us by, and a peer is found by
// both addresses.
type ikeSocket struct {
	addr netip.Addr
	conn dataplane.Conn
}

type ikeDatagram struct {
	b             []byte
	local, remote netip.AddrPort
}

// host is the engine's view of the daemon (ike.Host).
type host struct {
	log     *zap.Logger
	plugins *pluginhost.Host
	events  *events.Log
	db      *sad.DB
	socks   []ikeSocket
	udp4500 dataplane.Conn
	onSA    func(esp.Event)
	// peerGone ends a road warrior's sessions; nil without remote access.
	peerGone func(peer netip.AddrPort, why string)
	// clients keeps the IKEv2 road warriors' sessions; nil without
	// remote access.
	clients *remote.Access
	keyLog  io.Writer
	// cfgMu guards what a reload replaces: tunnels, and profiles (which
	// auth plugin profile serves a peer's method).
	cfgMu    sync.RWMutex
	tunnels  map[string]config.Tunnel
	profiles Profiles
	// creds caches our certificate chain per auth plugin profile (when no
	// CA was asked for): every IKE_SA_INIT answer with a CERTREQ and every
	// IKE_AUTH with a signature needs it, and a gRPC call each cost road
	// warriors' setups a third of the core's time. Entries last
	// credsTTL, and a reload empties the cache.
	credsMu sync.Mutex
	creds   map[string]credsEntry
}

type credsEntry struct {
	lc *ike.LocalCredentials
	at time.Time
}

// credsTTL bounds how long a cached chain is used: a certificate the
// plugin reloads from disk is sent within this time.
const credsTTL = 30 * time.Second

// Profiles names, per peer and IKE auth method, the auth plugin
// profile that holds the credentials (authUse.where).
type Profiles map[string]map[uint16]string

// Peers are the two engines' peers.
type Peers struct {
	V1 []*ike.PeerConfig
	V2 []*ikev2.Peer
}

// Names lists every peer's name with its IKE version.
func (p Peers) versions() map[string]int {
	m := map[string]int{}
	for _, q := range p.V1 {
		m[q.Name] = 1
	}
	for _, q := range p.V2 {
		m[q.Name] = 2
	}
	return m
}

// PeerConfigs turns the tunnels into the engines' peers, each for the
// IKE version it speaks, and remote access into IKEv1's wildcard peer
// (and IKEv2's, with remote_access.ikev2; Start connects it to the
// pool and the users).
func PeerConfigs(c *config.Config) (Peers, Profiles, error) {
	var out Peers
	profiles := Profiles{}
	for i, t := range c.Tunnels {
		k := c.IKEFor(&t)
		p := &ike.PeerConfig{Name: t.Name, Local: t.Local.Address.Unmap(), Remote: t.Remote.Address.Unmap(),
			Lifetime: k.Lifetime.Duration, ESPLifetime: t.ESP.Lifetime.Duration, ESPLifeKB: t.ESP.LifetimeKB,
			DPDInterval: k.DPD.Interval.Duration, DPDTimeout: k.DPD.Timeout.Duration, Restart: t.Start == "always",
			NoFragmentation: !k.FragmentationOn(), FragmentSize: k.FragmentSize, ForceEncap: t.ESP.UDPEncap, Interop: t.Interop}
		// remote.id pins the peer in every mode (its ID payload with a
		// preshared key, its certificate's names with a signature);
		// local.id is what we call ourselves with a preshared key.
		// Validation made sure aggressive mode with a key has remote.id.
		p.Aggressive = k.AggressiveMode
		var err error
		if t.Remote.ID != "" {
			if p.RemoteID, err = ike.ParseID(t.Remote.ID); err != nil {
				return Peers{}, nil, fmt.Errorf("tunnels[%d] %s: remote.id: %w", i, t.Name, err)
			}
		}
		if t.Local.ID != "" {
			if p.LocalID, err = ike.IDFromText(t.Local.ID); err != nil {
				return Peers{}, nil, fmt.Errorf("tunnels[%d] %s: local.id: %w", i, t.Name, err)
			}
		}
		where := fmt.Sprintf("tunnels[%d]", i)
		if err := setESP(p, t.ESP, k.Version); err != nil {
			return Peers{}, nil, fmt.Errorf("%s %s: %w", where, t.Name, err)
		}
		if err := setAuth(p, where, t.Auth, profiles); err != nil {
			return Peers{}, nil, fmt.Errorf("%s %s: %w", where, t.Name, err)
		}
		// Every local subnet with every remote one of its family: IKEv1
		// makes a child SA each, in the order the policy lists the
		// filters; IKEv2 one child with them all in its traffic selectors.
		for _, sp := range t.SubnetPairs() {
			p.Pairs = append(p.Pairs, ike.TSPair{Local: ike.Selector{Prefix: sp.Local}, Remote: ike.Selector{Prefix: sp.Remote}})
		}
		if k.Version == 2 {
			v2 := &ikev2.Peer{PeerConfig: p}
			if v2.Suites, err = v2Suites(k.Proposals); err != nil {
				return Peers{}, nil, fmt.Errorf("%s %s: %w", where, t.Name, err)
			}
			out.V2 = append(out.V2, v2)
			continue
		}
		if err := setProposals(p, k); err != nil {
			return Peers{}, nil, fmt.Errorf("%s %s: %w", where, t.Name, err)
		}
		out.V1 = append(out.V1, p)
	}
	if ra := c.RemoteAccess; ra != nil {
		p, err := remoteAccessPeer(c, ra)
		if err != nil {
			return Peers{}, nil, err
		}
		if err := setAuth(p, "remote_access", ra.Auth, profiles); err != nil {
			return Peers{}, nil, fmt.Errorf("remote_access: %w", err)
		}
		out.V1 = append(out.V1, p)
		if ra.IKEv2 != nil {
			v2, err := roadWarriorPeer(c, ra, profiles)
			if err != nil {
				return Peers{}, nil, fmt.Errorf("remote_access.ikev2: %w", err)
			}
			out.V2 = append(out.V2, v2)
		}
	}
	return out, profiles, nil
}

// roadWarriorPeer is IKEv2's wildcard peer for road warriors: tunnel
// mode from each client's virtual address to the inside networks, the
// server proving itself as remote_access.auth says.
func roadWarriorPeer(c *config.Config, ra *config.RemoteAccess, profiles Profiles) (*ikev2.Peer, error) {
	k, x := ra.IKE, ra.IKEv2
	p := &ike.PeerConfig{Name: remote.RuleIKEv2, Local: c.Listen[0].Addr.Unmap(),
		Lifetime: k.Lifetime.Duration, ESPLifetime: x.ESP.Lifetime.Duration, ESPLifeKB: x.ESP.LifetimeKB,
		DPDInterval: k.DPD.Interval.Duration, DPDTimeout: k.DPD.Timeout.Duration,
		NoFragmentation: !k.FragmentationOn(), FragmentSize: k.FragmentSize, ForceEncap: x.ESP.UDPEncap}
	if err := setESP(p, x.ESP, 2); err != nil {
		return nil, err
	}
	if err := setAuth(p, "remote_access", ra.Auth, profiles); err != nil {
		return nil, err
	}
	v2 := &ikev2.Peer{PeerConfig: p, RemoteAccess: &ikev2.RemoteAccess{DNSDomains: x.DNSDomains, SlowEAP: true}}
	var err error
	if v2.Suites, err = v2Suites(x.Proposals); err != nil {
		return nil, err
	}
	v2.RemoteAccess.NBNS = config.Addrs(ra.NBNS)
	for _, n := range x.Inside {
		v2.RemoteAccess.Inside = append(v2.RemoteAccess.Inside, n.Prefix.Masked())
	}
	return v2, nil
}

// serveRoadWarriors connects IKEv2's road-warrior peer to remote access:
// addresses from the shared pool, users checked where L2TP's are, or by
// EAP-TLS.
func serveRoadWarriors(h *host, peers []*ikev2.Peer, ra *config.RemoteAccess, access *remote.Access) error {
	for _, p := range peers {
		rw := p.RemoteAccess
		if rw == nil {
			continue
		}
		if access == nil {
			return errors.New("remote_access.ikev2 is set, but remote access is not running")
		}
		rw.Lease, rw.Release = access.IKEv2Lease, access.IKEv2Release
		switch ra.IKEv2.EAP {
		case "mschapv2":
			rw.EAP = access.IKEv2EAP
		case "radius":
			rw.EAP = access.IKEv2EAPRelay
		case "tls":
			var err error
			if rw.EAP, err = eapTLS(h, p, ra); err != nil {
				return fmt.Errorf("remote_access.ikev2: %w", err)
			}
		}
	}
	return nil
}

// setAuth turns a rule's ordered auth list into IKE methods: a preshared
// key is AuthPSK; a certificate signs with the method of its key (RSA,
// or ECDSA on its curve), so the certificate file is read here for its
// public key. The plugin reads it again, with the private key.
func setAuth(p *ike.PeerConfig, where string, list []config.AuthMethod, profiles Profiles) error {
	for i, a := range list {
		var m uint16
		switch a.Kind() {
		case "psk":
			m = ike.AuthPSK
		case "x509":
			var err error
			if m, err = x509.CertMethod(a.X509.CertFile); err != nil {
				return fmt.Errorf("auth[%d].x509: %w", i, err)
			}
		case "kerberos":
			m = ike.AuthGSS
			k := a.Kerberos
			p.GSS = ike.GSSOptions{Identity: k.Principal, Target: k.PeerPrincipal, IdentityAttr: uint16(k.IdentityAttribute), RawTokens: k.RawTokens,
				AllowedPeers: k.AllowedPeers}
		default:
			return fmt.Errorf("auth[%d]: unknown method %s", i, a.Kind())
		}
		if slices.Contains(p.Auth, m) {
			return fmt.Errorf("auth[%d]: a second %s entry; a rule can offer each method once", i, ike.MethodName(m))
		}
		p.Auth = append(p.Auth, m)
		if profiles[p.Name] == nil {
			profiles[p.Name] = map[uint16]string{}
		}
		profiles[p.Name][m] = fmt.Sprintf("%s.auth[%d]", where, i)
	}
	if p.Aggressive && (len(p.Auth) != 1 || p.Auth[0] == ike.AuthGSS) {
		// Its first message carries our ID, which depends on the method.
		return errors.New("aggressive mode works with a single psk_file or x509 entry; use main mode for several methods and for Kerberos")
	}
	return nil
}

// remoteAccessPeer is the wildcard peer that answers road warriors:
// transport mode for L2TP (RFC 3193), at our first listen address.
func remoteAccessPeer(c *config.Config, ra *config.RemoteAccess) (*ike.PeerConfig, error) {
	k := ra.IKE
	p := &ike.PeerConfig{Name: remote.Rule, Local: c.Listen[0].Addr.Unmap(), Transport: true, L2TP: true,
		Lifetime: k.Lifetime.Duration, ESPLifetime: ra.ESP.Lifetime.Duration, ESPLifeKB: ra.ESP.LifetimeKB,
		DPDInterval: k.DPD.Interval.Duration, DPDTimeout: k.DPD.Timeout.Duration,
		NoFragmentation: !k.FragmentationOn(), FragmentSize: k.FragmentSize, ForceEncap: ra.ESP.UDPEncap}
	err := setProposals(p, *k)
	if err == nil {
		err = setESP(p, ra.ESP, 1)
	}
	if err != nil {
		return nil, fmt.Errorf("remote_access: %w", err)
	}
	return p, nil
}

// v2Suites parses IKEv2's IKE SA suites.
func v2Suites(list []string) ([]ikev2.Proposal, error) {
	var out []ikev2.Proposal
	for _, s := range list {
		p, err := ikev2.ParseProposal(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// setProposals fills an IKEv1 peer's phase 1 offers.
func setProposals(p *ike.PeerConfig, k config.IKE) error {
	for _, s := range k.Proposals {
		pr, err := ike.ParseProposal(s)
		if err != nil {
			return err
		}
		p.Proposals = append(p.Proposals, pr)
	}
	return nil
}

// setESP fills a peer's child SA offers and PFS group, for the IKE
// version that negotiates them.
func setESP(p *ike.PeerConfig, e config.ESP, version int) error {
	for _, s := range e.Proposals {
		su, err := esp.ParseSuite(s)
		if err == nil && version == 1 {
			err = esp.CheckIKEv1(su)
		}
		if err != nil {
			return err
		}
		p.ESP = append(p.ESP, su)
	}
	if e.PFS != "" && e.PFS != "none" {
		g, err := ike.ParseGroup(e.PFS)
		if err != nil {
			return fmt.Errorf("pfs: %w", err)
		}
		p.PFS = g.Number
	}
	return nil
}

func (h *host) Send(b []byte, local, remote netip.AddrPort) error {
	if local.Port() == esp.NATTPort {
		// RFC 3948 section 2.2: IKE on 4500 starts with the non-ESP
		// marker. From the SA's address: the socket may be on 0.0.0.0.
		return dataplane.WriteFrom(h.udp4500, append(make([]byte, 4, 4+len(b)), b...), local.Addr(), remote)
	}
	for _, s := range h.socks {
		if s.addr == local.Addr() {
			return s.conn.WriteTo(b, remote)
		}
	}
	return h.socks[0].conn.WriteTo(b, remote)
}

func (h *host) SendKeepalive(local, remote netip.AddrPort) error {
	return dataplane.WriteFrom(h.udp4500, []byte{0xff}, local.Addr(), remote)
}

func (h *host) PSK(peer *ike.PeerConfig, remote netip.Addr, id *ike.ID) ([]byte, error) {
	a, _, err := h.plugins.Authenticator(sdk.MethodPSK)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), authCallTimeout)
	defer cancel()
	req := sdk.PSKRequest{Local: netip.AddrPortFrom(peer.Local, 500), Peer: netip.AddrPortFrom(remote, 500)}
	if id != nil {
		req.PeerID = &sdk.Identity{Type: id.IDType, Data: id.Data}
	}
	res, err := a.LookupPSK(ctx, req)
	if err != nil {
		return nil, err
	}
	if !res.Found {
		return nil, errors.New("the auth plugin has no key for this peer")
	}
	return res.Key, nil
}

// authCallTimeout bounds an auth plugin call, made with the IKE engine's
// lock held: a hung plugin fails one negotiation, not the engine.
const authCallTimeout = 2 * time.Second

// gssCallTimeout bounds a GSS step: an initiator's first step may go to
// the KDC for a ticket (a TGT, then the service ticket).
const gssCallTimeout = 5 * time.Second

// credAuth finds the plugin and the profile of a peer's certificate or
// Kerberos method.
func (h *host) credAuth(peer *ike.PeerConfig, method uint16) (sdk.Authenticator, string, error) {
	h.cfgMu.RLock()
	profile, ok := h.profiles[peer.Name][method]
	h.cfgMu.RUnlock()
	if !ok {
		return nil, "", fmt.Errorf("%s is not configured for %s", peer.Name, ike.MethodName(method))
	}
	kind := sdk.MethodX509
	if method == ike.AuthGSS {
		kind = sdk.MethodKerberos
	}
	a, _, err := h.plugins.Authenticator(kind)
	return a, profile, err
}

func (h *host) LocalCredentials(peer *ike.PeerConfig, method uint16, peerCAs [][]byte) (*ike.LocalCredentials, error) {
	a, profile, err := h.credAuth(peer, method)
	if err != nil {
		return nil, err
	}
	if len(peerCAs) == 0 {
		h.credsMu.Lock()
		e, ok := h.creds[profile]
		h.credsMu.Unlock()
		if ok && time.Since(e.at) < credsTTL {
			return e.lc, nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), authCallTimeout)
	defer cancel()
	lc, err := a.LocalCertificate(ctx, profile, peerCAs)
	if err != nil {
		return nil, err
	}
	out := &ike.LocalCredentials{Chain: lc.Chain, CANames: lc.CANames, CAKeyIDs: lc.CAKeyIDs}
	if lc.ID != nil {
		out.ID = &ike.ID{IDType: lc.ID.Type, Data: lc.ID.Data}
	}
	if len(peerCAs) == 0 {
		h.credsMu.Lock()
		if h.creds == nil {
			h.creds = map[string]credsEntry{}
		}
		h.creds[profile] = credsEntry{out, time.Now()}
		h.credsMu.Unlock()
	}
	return out, nil
}

func (h *host) Sign(peer *ike.PeerConfig, method uint16, hash []byte) ([]byte, error) {
	a, profile, err := h.credAuth(peer, method)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), authCallTimeout)
	defer cancel()
	return a.Sign(ctx, profile, hash, ike.MethodName(method))
}

// SignDigest signs an IKEv2 AUTH digest with the tunnel's key
// (ikev2.DigestSigner), by a scheme the x509 plugin knows.
func (h *host) SignDigest(peer *ike.PeerConfig, method uint16, scheme string, digest []byte) ([]byte, error) {
	a, profile, err := h.credAuth(peer, method)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), authCallTimeout)
	defer cancel()
	return a.Sign(ctx, profile, digest, scheme)
}

func (h *host) VerifyPeer(peer *ike.PeerConfig, method uint16, chain [][]byte, id *ike.ID) (*ike.PeerCredentials, error) {
	a, profile, err := h.credAuth(peer, method)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), authCallTimeout)
	defer cancel()
	r, err := a.VerifyCertificate(ctx, sdk.VerifyCertRequest{Profile: profile, Chain: chain, PeerID: &sdk.Identity{Type: id.IDType, Data: id.Data}})
	if err != nil {
		return nil, err
	}
	if !r.OK {
		return nil, errors.New(r.Reason)
	}
	pub, err := stdx509.ParsePKIXPublicKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("the auth plugin returned an unreadable key: %w", err)
	}
	// The plugin verified chain[0], the peer's own certificate; its names
	// are what remote.id is checked against.
	leaf, err := stdx509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("the peer's certificate: %w", err)
	}
	return &ike.PeerCredentials{PublicKey: pub, Subject: r.Subject, Names: ike.CertNames(leaf)}, nil
}

func (h *host) GSSStep(peer *ike.PeerConfig, c *ike.GSSContext, token []byte) ([]byte, error) {
	a, profile, err := h.credAuth(peer, ike.AuthGSS)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), gssCallTimeout)
	defer cancel()
	role := sdk.GSSAcceptor
	if c.Initiator {
		role = sdk.GSSInitiator
	}
	r, err := a.GSSStep(ctx, sdk.GSSStepRequest{Profile: profile, ContextID: c.ID, Role: role, Target: c.Target, Token: token})
	if err != nil {
		return nil, err
	}
	c.ID, c.Complete, c.Peer = r.ContextID, r.Complete, r.PeerPrincipal
	return r.Token, nil
}

func (h *host) GSSWrap(peer *ike.PeerConfig, c *ike.GSSContext, data []byte) ([]byte, error) {
	return h.gssCall(peer, func(ctx context.Context, a sdk.Authenticator) ([]byte, error) { return a.GSSWrap(ctx, c.ID, data) })
}

func (h *host) GSSUnwrap(peer *ike.PeerConfig, c *ike.GSSContext, token []byte) ([]byte, error) {
	return h.gssCall(peer, func(ctx context.Context, a sdk.Authenticator) ([]byte, error) { return a.GSSUnwrap(ctx, c.ID, token) })
}

// gssCall makes one Kerberos plugin call for peer, bounded in time.
func (h *host) gssCall(peer *ike.PeerConfig, f func(context.Context, sdk.Authenticator) ([]byte, error)) ([]byte, error) {
	a, _, err := h.credAuth(peer, ike.AuthGSS)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), authCallTimeout)
	defer cancel()
	return f(ctx, a)
}

// GSSRelease frees the plugin's context; a plugin that restarted has
// lost it already, so an error is only logged.
func (h *host) GSSRelease(peer *ike.PeerConfig, c *ike.GSSContext) {
	_, err := h.gssCall(peer, func(ctx context.Context, a sdk.Authenticator) ([]byte, error) { return nil, a.GSSRelease(ctx, c.ID) })
	if err != nil {
		h.log.Debug("GSS context release failed", zap.String("peer", peer.Name), zap.Error(err))
	}
}

func (h *host) AllocSPI() (uint32, error) { return h.db.NewSPI() }

func (h *host) espConfig(c *ike.ChildSA, spi uint32, enc, integ []byte) esp.Config {
	lim := esp.Limits{HardTime: c.Lifetime, SoftTime: c.Lifetime * 9 / 10, HardBytes: c.LifeKB * 1024, SoftBytes: c.LifeKB * 1024 * 9 / 10}
	return esp.Config{SPI: spi, Suite: c.Suite, EncKey: enc, IntegKey: integ, Limits: lim, OnEvent: h.onSA}
}

// raMeta describes a road warrior's transport SA: its selectors are the
// two hosts, and NATOA its own address behind a NAT.
func raMeta(c *ike.ChildSA, dir string) sad.Meta {
	m := sad.Meta{Name: remote.Rule, Rule: remote.Rule + "/" + dir, Mode: sad.Transport, Local: c.Local, Peer: c.Remote, UDPEncap: c.UDP, NATOA: c.NATOA}
	if dir == "in" {
		m.Selectors = []sad.Selector{{Src: sad.HostPrefix(c.Remote.Addr()), Dst: sad.HostPrefix(c.Local.Addr())}}
	}
	return m
}

// clientMeta describes an IKEv2 road warrior's tunnel-mode SA: what
// arrives must come from its virtual address to the inside networks.
func clientMeta(c *ike.ChildSA, dir string) sad.Meta {
	return sad.Meta{Name: remote.RuleIKEv2, Rule: remote.RuleIKEv2 + "/" + dir, Mode: sad.Tunnel, Local: c.Local, Peer: c.Remote, UDPEncap: c.UDP,
		Selectors: childSelectors(c, dir == "in")}
}

// childSelectors are a tunnel-mode child's selector pairs as the SA
// database keeps them: inbound, from their side to ours (what may arrive,
// RFC 4301 section 5.2); outbound, from ours to theirs.
func childSelectors(c *ike.ChildSA, inbound bool) []sad.Selector {
	var out []sad.Selector
	for _, p := range c.AllPairs() {
		if inbound {
			out = append(out, sad.Selector{Src: p.Remote.Prefix, Dst: p.Local.Prefix})
		} else {
			out = append(out, sad.Selector{Src: p.Local.Prefix, Dst: p.Remote.Prefix})
		}
	}
	return out
}

// clientAddr is a road warrior child's virtual address: its traffic
// selector, one address (RFC 7296 section 3.15.1).
func clientAddr(c *ike.ChildSA) netip.Addr { return c.AllPairs()[0].Remote.Prefix.Addr() }

// MoveChild follows a road warrior that moved (MOBIKE): its SAs keep
// their keys and counters, with new outer addresses.
func (h *host) MoveChild(c *ike.ChildSA) error {
	if c.Peer != remote.RuleIKEv2 {
		return fmt.Errorf("%s: only road warriors move", c.Peer)
	}
	a := clientAddr(c)
	if err := h.db.Move(c.InSPI, remote.ClientOutKey(a), c.OutSPI, c.Local, c.Remote, c.UDP); err != nil {
		return err
	}
	if h.clients != nil {
		h.clients.IKEv2Child(a, c.InSPI, c.Remote)
	}
	return nil
}

// tunnel is a tunnel's configuration by name.
func (h *host) tunnel(name string) (config.Tunnel, bool) {
	h.cfgMu.RLock()
	defer h.cfgMu.RUnlock()
	t, ok := h.tunnels[name]
	return t, ok
}

func (h *host) meta(c *ike.ChildSA) (config.Tunnel, sad.Meta, error) {
	t, ok := h.tunnel(c.Peer)
	if !ok {
		return t, sad.Meta{}, fmt.Errorf("no tunnel %q", c.Peer)
	}
	meta := sad.Meta{Name: t.Name, Mode: sad.Tunnel, Local: c.Local, Peer: c.Remote, UDPEncap: c.UDP}
	if !c.Tunnel {
		meta.Mode = sad.Transport
	}
	return t, meta, nil
}

func (h *host) InstallInbound(c *ike.ChildSA) error {
	in, err := esp.NewInbound(h.espConfig(c, c.InSPI, c.InEnc, c.InInteg))
	if err != nil {
		return err
	}
	if c.Peer == remote.Rule {
		return h.db.AddInbound(&sad.InSA{Meta: raMeta(c, "in"), ESP: in})
	}
	if c.Peer == remote.RuleIKEv2 {
		return h.db.AddInbound(&sad.InSA{Meta: clientMeta(c, "in"), ESP: in})
	}
	t, meta, err := h.meta(c)
	if err != nil {
		return err
	}
	meta.Rule, meta.Selectors = t.Name+"/in", childSelectors(c, true)
	return h.db.AddInbound(&sad.InSA{Meta: meta, ESP: in})
}

func (h *host) InstallOutbound(c *ike.ChildSA) error {
	out, err := esp.NewOutbound(h.espConfig(c, c.OutSPI, c.OutEnc, c.OutInteg))
	if err != nil {
		return err
	}
	if c.Peer == remote.Rule {
		h.db.SetOutbound(remote.OutKey(c.Remote), &sad.OutSA{Meta: raMeta(c, "out"), ESP: out})
		return nil
	}
	if c.Peer == remote.RuleIKEv2 {
		// A rekey replaces the old SA here; its counts stay the session's.
		a := clientAddr(c)
		if old := h.db.SetOutbound(remote.ClientOutKey(a), &sad.OutSA{Meta: clientMeta(c, "out"), ESP: out}); old != nil && h.clients != nil {
			h.clients.IKEv2ChildGone(a, 0, nil, old)
		}
		if h.clients != nil {
			h.clients.IKEv2Child(a, c.InSPI, c.Remote)
		}
		return nil
	}
	t, meta, err := h.meta(c)
	if err != nil {
		return err
	}
	meta.Rule, meta.Selectors = t.Name+"/out", childSelectors(c, false)
	pairs := c.AllPairs()
	// The new outbound SA replaces the old in one step (rekeying), under
	// each subnet pair it carries.
	sa := &sad.OutSA{Meta: meta, ESP: out}
	for _, p := range pairs {
		h.db.SetOutbound(tunnelOutKey(t, p), sa)
	}
	return nil
}

// tunnelOutKey is where the data path finds a tunnel's outbound SA for
// one subnet pair: the tunnel's rule, its peer and the pair.
func tunnelOutKey(t config.Tunnel, p ike.TSPair) sad.OutKey {
	return sad.OutKey{Rule: t.Name + "/out", Peer: t.Remote.Address.Unmap(), Pair: policy.PairID(p.Local.Prefix, p.Remote.Prefix)}
}

func (h *host) DeleteChild(c *ike.ChildSA) {
	if c.Peer == remote.RuleIKEv2 {
		a := clientAddr(c)
		in, _ := h.db.RemoveInbound(c.InSPI)
		out, _ := h.db.RemoveOutbound(remote.ClientOutKey(a), c.OutSPI)
		if h.clients != nil {
			h.clients.IKEv2ChildGone(a, c.InSPI, in, out)
		}
		return
	}
	h.db.RemoveInbound(c.InSPI)
	if c.Peer == remote.Rule {
		key := remote.OutKey(c.Remote)
		h.db.RemoveOutbound(key, c.OutSPI)
		// The last SA to a client takes its sessions with it; a rekeyed
		// one has its successor installed first.
		if h.peerGone != nil && h.db.Outbound(key) == nil {
			h.peerGone(c.Remote, "its last IPsec SA was deleted")
		}
		return
	}
	if t, ok := h.tunnel(c.Peer); ok {
		for _, p := range c.AllPairs() {
			h.db.RemoveOutbound(tunnelOutKey(t, p), c.OutSPI)
		}
	}
}

func (h *host) Event(e ike.Event) {
	if e.ID == ike.EventChildUp && e.Child != nil && h.keyLog != nil {
		if err := ike.WriteKeyLog(h.keyLog, e.Child); err != nil {
			h.log.Warn("key log not written", zap.Error(err))
		}
	}
	h.events.Emit(events.FromIKE(e))
	fields := []zap.Field{zap.Int("event_id", e.ID), zap.String("tunnel", e.Peer), zap.Stringer("remote", e.Remote)}
	if e.Reason != "" {
		fields = append(fields, zap.String("reason", e.Reason))
	}
	if e.ID == ike.EventNegotiationErr {
		h.log.Warn(e.Message, fields...)
		return
	}
	h.log.Info(e.Message, fields...)
}

// Config wires the engine into the daemon.
type Config struct {
	Log, InteropLog *zap.Logger
	Config          *config.Config
	Plugins         *pluginhost.Host
	Events          *events.Log
	SAD             *sad.DB
	// UDP4500 is the data path's RFC 3948 socket, shared for IKE after
	// NAT-T floats.
	UDP4500 dataplane.Conn
	// OnSAEvent receives the lifetime events of the SAs IKE installs; it
	// runs on the packet path and must not block.
	OnSAEvent func(esp.Event)
	// PeerGone ends a road warrior's sessions when its last transport SA
	// goes; nil without remote access. It runs under the engine's lock.
	PeerGone func(peer netip.AddrPort, why string)
	// RemoteAccess serves IKEv2 road warriors (remote_access.ikev2):
	// their addresses, logins and sessions. Nil without remote access.
	RemoteAccess *remote.Access
	// Interops lists the running interop plugins in load order, and the
	// configuration in force.
	Interops func() (c *config.Config, names []string, list []sdk.Interop)
	// KeyLog, when set, receives every new child SA's ESP keys
	// (ike.WriteKeyLog): gatehoused --keylog, for debugging only.
	KeyLog io.Writer
}

// Start starts the engine when tunnels or remote access are configured
// (nil, nil when neither is).
func Start(cfg Config) (*Engine, error) {
	c := cfg.Config
	if len(c.Tunnels) == 0 && c.RemoteAccess == nil {
		return nil, nil
	}
	peers, profiles, err := PeerConfigs(c)
	if err != nil {
		return nil, err
	}
	addrs := []netip.Addr{netip.IPv4Unspecified()}
	if len(c.Listen) > 0 {
		addrs = addrs[:0]
		for _, l := range c.Listen {
			addrs = append(addrs, l.Addr.Unmap())
		}
	}
	var socks []ikeSocket
	for _, a := range addrs {
		conn, err := dataplane.ListenUDP(netip.AddrPortFrom(a, 500), int(c.Dataplane.Mark))
		if err != nil {
			for _, s := range socks {
				s.conn.Close()
			}
			return nil, fmt.Errorf("IKE: %w (is another IKE daemon running? is %s an address of this host?)", err, a)
		}
		socks = append(socks, ikeSocket{a, conn})
	}
	h := &host{log: cfg.Log, plugins: cfg.Plugins, events: cfg.Events, db: cfg.SAD, socks: socks, udp4500: cfg.UDP4500, onSA: cfg.OnSAEvent,
		peerGone: cfg.PeerGone, clients: cfg.RemoteAccess, keyLog: cfg.KeyLog, tunnels: tunnelsByName(c.Tunnels), profiles: profiles}
	if err := serveRoadWarriors(h, peers.V2, c.RemoteAccess, cfg.RemoteAccess); err != nil {
		for _, s := range socks {
			s.conn.Close()
		}
		return nil, err
	}
	st := &Engine{log: cfg.Log, socks: socks, udp4500: cfg.UDP4500, in: make(chan ikeDatagram, 256), acquire: make(chan startReq, 64),
		host: h, stop: make(chan struct{}), done: make(chan struct{})}
	st.onTraffic.Store(onTrafficOf(c.Tunnels))
	v := peers.versions()
	st.versions.Store(&v)
	interop := newInteropHost(cfg.InteropLog, cfg.Interops)
	st.mgr = ike.NewManager(ike.Config{Log: cfg.Log, Host: h, Rand: rand.Reader, Interop: interop})
	st.mgr.SetPeers(peers.V1)
	if st.mgr2, err = ikev2.NewManager(ikev2.Config{Log: cfg.Log.Named("v2"), Host: h, Rand: rand.Reader, Interop: interop}); err != nil {
		for _, s := range socks {
			s.conn.Close()
		}
		return nil, err
	}
	st.mgr2.SetPeers(peers.V2)
	for _, s := range socks {
		go st.read500(s)
	}
	go st.run()
	for _, t := range c.Tunnels {
		if t.Start == "always" {
			st.acquire <- startReq{name: t.Name}
		}
	}
	cfg.Log.Info("IKE running", zap.Int("ikev1_peers", len(peers.V1)), zap.Int("ikev2_peers", len(peers.V2)))
	return st, nil
}

func tunnelsByName(ts []config.Tunnel) map[string]config.Tunnel {
	m := make(map[string]config.Tunnel, len(ts))
	for _, t := range ts {
		m[t.Name] = t
	}
	return m
}

// onTrafficOf lists the tunnels an acquire may start.
func onTrafficOf(ts []config.Tunnel) *map[string]bool {
	m := map[string]bool{}
	for _, t := range ts {
		m[t.Name] = t.Start != "passive"
	}
	return &m
}

// Peers are the peers in force, both versions.
func (st *Engine) Peers() Peers {
	return Peers{V1: st.mgr.Peers(), V2: st.mgr2.Peers()}
}

// SAs lists the IKE SAs of both versions.
func (st *Engine) SAs() []ike.SAInfo { return append(st.mgr.SAs(), st.mgr2.SAs()...) }

// Drops counts the IKE messages dropped without a change of state, by
// reason, both versions together.
func (st *Engine) Drops() map[string]uint64 {
	out := st.mgr.Drops()
	for k, n := range st.mgr2.Drops() {
		out[k] += n
	}
	return out
}

// HalfOpen is how many IKE SAs we answer are not authenticated yet, and
// how many first messages IKEv1 dropped for them.
func (st *Engine) HalfOpen() (int, uint64) {
	n, dropped := st.mgr.HalfOpen()
	return n + st.mgr2.HalfOpen(), dropped
}

// DisconnectClient ends the IKEv2 road warrior holding addr (gatehouse
// disconnect), telling it; false if none does.
func (st *Engine) DisconnectClient(addr netip.Addr, why string) bool {
	return st.mgr2.Disconnect(addr, why)
}

// Initiate brings a tunnel up (gatehouse up), with its IKE version.
func (st *Engine) Initiate(name string) error {
	if (*st.versions.Load())[name] == 2 {
		return st.mgr2.Initiate(name)
	}
	return st.mgr.Initiate(name)
}

// Terminate deletes a tunnel's SAs (gatehouse down; a reload that drops
// or changes it), in whichever engine holds them.
func (st *Engine) Terminate(name string) error {
	err1, err2 := st.mgr.Terminate(name), st.mgr2.Terminate(name)
	if err1 == nil || err2 == nil {
		return nil
	}
	return err1
}

// Reconfigure gives the engine a reload's tunnels: their configuration,
// which plugin profiles serve them, and the peers (SAs already up keep
// the peer they point at).
func (st *Engine) Reconfigure(tunnels []config.Tunnel, peers Peers, profiles Profiles) {
	st.host.cfgMu.Lock()
	st.host.tunnels, st.host.profiles = tunnelsByName(tunnels), profiles
	st.host.cfgMu.Unlock()
	st.host.credsMu.Lock()
	clear(st.host.creds) // a reload may have changed a certificate
	st.host.credsMu.Unlock()
	st.mgr.SetPeers(peers.V1)
	st.mgr2.SetPeers(peers.V2)
	v := peers.versions()
	st.versions.Store(&v)
	st.onTraffic.Store(onTrafficOf(tunnels))
}

// StartTunnel queues a tunnel's negotiation; it never blocks (a full
// queue already holds work the engine is behind on).
func (st *Engine) StartTunnel(name string) {
	select {
	case st.acquire <- startReq{name: name}:
	default:
	}
}

// startReq asks the engine to bring up a tunnel: one subnet pair (pair
// set: traffic for it arrived) or all of them.
type startReq struct {
	name string
	pair *ike.TSPair
}

func (st *Engine) read500(s ikeSocket) {
	buf := make([]byte, 65535)
	for {
		b, from, err := s.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-st.stop:
			default:
				st.log.Error("IKE socket read failed; IKE on port 500 stopped", zap.Error(err))
			}
			return
		}
		st.Deliver(b, netip.AddrPortFrom(s.addr, 500), from)
	}
}

// Deliver queues a datagram for the engine; a full queue drops it (IKE
// retransmits), so no socket reader ever blocks on IKE.
func (st *Engine) Deliver(b []byte, local, remote netip.AddrPort) {
	select {
	case st.in <- ikeDatagram{append([]byte(nil), b...), local, remote}:
	default:
		st.log.Debug("IKE input queue full; datagram dropped", zap.Stringer("from", remote))
	}
}

// OnAcquire is the data path's acquire callback: it must not block.
func (st *Engine) OnAcquire(a dataplane.Acquire) {
	name, ok := strings.CutSuffix(a.Rule.Name, "/out")
	if !ok || !(*st.onTraffic.Load())[name] {
		return
	}
	req := startReq{name: name}
	if a.Local.IsValid() && a.Remote.IsValid() {
		req.pair = &ike.TSPair{Local: ike.Selector{Prefix: a.Local}, Remote: ike.Selector{Prefix: a.Remote}}
	}
	select {
	case st.acquire <- req:
	default:
	}
}

func (st *Engine) run() {
	defer close(st.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case d := <-st.in:
			// RFC 7296 section 3.1: the major version tells the engines
			// apart on the shared ports.
			if ikev2.PeekVersion(d.b) == 2 {
				st.mgr2.Receive(d.b, d.local, d.remote)
			} else {
				st.mgr.Receive(d.b, d.local, d.remote)
			}
		case r := <-st.acquire:
			var err error
			if (*st.versions.Load())[r.name] == 2 {
				err = st.mgr2.Initiate(r.name) // one child carries every pair
			} else {
				err = st.mgr.InitiatePair(r.name, r.pair)
			}
			if err != nil {
				st.log.Warn("cannot start the tunnel", zap.String("tunnel", r.name), zap.Error(err))
			}
		case <-t.C:
			st.mgr.Tick()
			st.mgr2.Tick()
		}
	}
}

// Close stops the engine and closes its UDP 500 sockets.
func (st *Engine) Close() {
	close(st.stop)
	for _, s := range st.socks {
		s.conn.Close()
	}
	<-st.done
}
