// Package daemon wires gatehoused together: it loads the configuration,
// derives the policy and the auth plugins' configuration, starts the
// plugins, the data path (core/dataplane), IKE (core/ikehost), remote
// access (core/remote), the audit log (core/events) and the metrics
// (core/metrics), and reloads, keeping the old state on any error.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/events"
	"github.com/gatehouse/gatehouse/core/ikehost"
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/remote"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// Version is set at build time (-ldflags "-X ...daemon.Version=...").
var Version = "0.1.0-dev"

// Options come from the command line.
type Options struct {
	ConfigFile string
	// PluginDir, if set, overrides plugins.dir.
	PluginDir string
	// KeyLog, if set, is a file each negotiated ESP SA's keys are
	// appended to (ike.WriteKeyLog), for decrypting captures.
	KeyLog string
}

// Loaded is everything derived from one configuration file; it is built
// whole before anything running is touched.
type Loaded struct {
	Config  *config.Config
	Policy  *policy.Policy
	Auth    sdk.AuthConfig
	Plugins []pluginhost.Spec
	At      time.Time
}

// Load reads and checks a configuration and derives what the daemon runs.
// It starts nothing; `gatehoused --check` is this and nothing more.
func Load(opts Options) (*Loaded, error) {
	c, err := config.Load(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	if opts.PluginDir != "" {
		c.Plugins.Dir = opts.PluginDir
	}
	pol, err := policy.FromConfig(c)
	if err != nil {
		return nil, fmt.Errorf("%s: policy: %w", c.File, err)
	}
	auth, err := authConfig(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.File, err)
	}
	return &Loaded{Config: c, Policy: pol, Auth: auth, Plugins: pluginSpecs(c), At: time.Now()}, nil
}

// pluginSpecs lists plugins.load in its order, then the plugins the
// configuration needs that it does not name (so that loading an interop
// plugin does not mean listing every other).
func pluginSpecs(c *config.Config) []pluginhost.Spec {
	names := slices.Clone(c.Plugins.Load)
	var needed []string
	for _, kind := range authKinds(c) {
		needed = append(needed, kindPlugin[kind])
	}
	if c.RemoteAccess != nil {
		needed = append(needed, "l2tp")
		if c.RemoteAccess.PPP.Radius != nil {
			needed = append(needed, "radius")
		}
	}
	for _, n := range needed {
		if !slices.ContainsFunc(names, func(r config.PluginRef) bool { return r.Name == n }) {
			names = append(names, config.PluginRef{Name: n})
		}
	}
	specs := make([]pluginhost.Spec, 0, len(names))
	for _, n := range names {
		p := n.Path
		if p == "" {
			p = filepath.Join(c.Plugins.Dir, n.Name)
		}
		specs = append(specs, pluginhost.Spec{Name: n.Name, Path: p})
	}
	return specs
}

// peerSel selects the peers a preshared key is for.
type peerSel struct {
	pfx      netip.Prefix
	id       string
	wildcard bool
}

func hostSel(a netip.Addr) peerSel {
	return peerSel{pfx: sad.HostPrefix(a)}
}

// authUse is one place the configuration uses an IKE auth method, and the
// peers it applies to.
type authUse struct {
	where  string
	method config.AuthMethod
	peers  []peerSel
}

// authUses walks every auth list. Tunnels key by the peer gateway's address,
// remote access by the wildcard (road warriors identify with private
// addresses), transport rules by the peers their filters name.
func authUses(c *config.Config) []authUse {
	var out []authUse
	add := func(where string, list []config.AuthMethod, peers []peerSel) {
		for i, a := range list {
			out = append(out, authUse{fmt.Sprintf("%s.auth[%d]", where, i), a, peers})
		}
	}
	for i, t := range c.Tunnels {
		add(fmt.Sprintf("tunnels[%d]", i), t.Auth, []peerSel{hostSel(t.Remote.Address.Addr)})
	}
	if c.RemoteAccess != nil {
		add("remote_access", c.RemoteAccess.Auth, []peerSel{{wildcard: true}})
	}
	for i, r := range c.Rules {
		add(fmt.Sprintf("rules[%d]", i), r.Auth, rulePeers(c, r))
	}
	return out
}

func rulePeers(c *config.Config, r config.Rule) []peerSel {
	if r.Tunnel != nil {
		return []peerSel{hostSel(r.Tunnel.Addr)}
	}
	filters := r.Filters
	if r.FilterList != "" {
		filters = c.FilterLists[r.FilterList]
	}
	var out []peerSel
	for _, f := range filters {
		// The peer of a transport filter is whichever side is not "me".
		for _, a := range []config.Address{f.Dst, f.Src} {
			switch a.Kind {
			case config.AddrAny:
				out = append(out, peerSel{wildcard: true})
			case config.AddrPrefix:
				out = append(out, peerSel{pfx: a.Prefix})
			}
		}
	}
	return out
}

// authKinds lists the IKE auth methods in use: psk, x509, kerberos.
func authKinds(c *config.Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range authUses(c) {
		if k := u.method.Kind(); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// authConfig derives the authenticators' configuration: which key file
// serves which peers, and the certificate and Kerberos profiles.
func authConfig(c *config.Config) (sdk.AuthConfig, error) {
	var out sdk.AuthConfig
	type owner struct{ file, where string }
	owners := map[peerSel]owner{}
	for _, u := range authUses(c) {
		a := u.method
		switch a.Kind() {
		case "x509":
			out.X509 = append(out.X509, sdk.X509Profile{Name: u.where, CAFiles: a.X509.CAFiles, CRLFiles: a.X509.CRLFiles, CertFile: a.X509.CertFile, KeyFile: a.X509.KeyFile})
			continue
		case "kerberos":
			out.Kerberos = append(out.Kerberos, sdk.KerberosProfile{Name: u.where, Keytab: a.Kerberos.Keytab, Principal: a.Kerberos.Principal,
				Ccache: a.Kerberos.Ccache, Krb5Conf: a.Kerberos.Krb5Conf, MaxSkew: a.Kerberos.MaxSkew.Duration, ClockOffset: a.Kerberos.ClockOffset.Duration})
			continue
		}
		peers := u.peers
		if a.PeerID != "" {
			peers = []peerSel{{id: a.PeerID}}
		}
		for _, s := range peers {
			if prev, ok := owners[s]; ok {
				if prev.file == a.PSKFile {
					continue
				}
				return sdk.AuthConfig{}, fmt.Errorf("%s and %s give different key files for the same peers; a peer can have only one preshared key", prev.where, u.where)
			}
			owners[s] = owner{a.PSKFile, u.where}
			out.PSK = append(out.PSK, sdk.PSKEntry{Name: u.where, KeyFile: a.PSKFile, MatchAddress: s.pfx, MatchID: s.id, Wildcard: s.wildcard})
		}
	}
	if ra := c.RemoteAccess; ra != nil && ra.PPP.Radius != nil {
		r := ra.PPP.Radius
		out.Radius = &sdk.RadiusConfig{Timeout: r.Timeout.Duration, Tries: r.Tries, NASIdentifier: r.NASIdentifier,
			RequireMessageAuthenticator: r.MessageAuthenticatorRequired()}
		for _, s := range r.Servers {
			out.Radius.Servers = append(out.Radius.Servers, sdk.RadiusServer{Address: s.Address, SecretFile: s.SecretFile, AccountingAddress: s.AccountingAddress})
		}
	}
	return out, nil
}

// Daemon is a running gatehoused.
type Daemon struct {
	log     *zap.Logger
	opts    Options
	plugins *pluginhost.Host
	started time.Time

	// ra is remote access (nil without it); life ends with Stop.
	ra        *remote.Access
	life      context.Context
	endOfLife context.CancelFunc

	metrics *metrics.Metrics
	events  *events.Log
	keyLog  *os.File // nil without --keylog

	mu            sync.RWMutex
	dp            *dataplaneState
	cur           *Loaded
	reloads       int
	lastReloadErr string
}

// New makes a daemon around a loaded configuration; Start runs it.
func New(log *zap.Logger, opts Options, l *Loaded) *Daemon {
	d := &Daemon{log: log, opts: opts, cur: l, started: time.Now()}
	d.life, d.endOfLife = context.WithCancel(context.Background())
	d.metrics = metrics.New(state{d})
	d.events = events.New(log.Named("audit"), d.metrics)
	d.plugins = pluginhost.New(log.Named("plugin"), pluginhost.Options{HealthInterval: l.Config.Plugins.HealthInterval.Duration,
		OnRestart: func(name, lastExit string, n int) {
			d.events.Emit(events.Record{ID: events.PluginRestarted, Message: fmt.Sprintf("plugin %s restarted (restart %d): %s", name, n, lastExit),
				Fields: map[string]string{"plugin": name, "last_exit": lastExit, "restarts": strconv.Itoa(n)}})
		}}, d.configurePlugin)
	return d
}

// Current returns the configuration in force.
func (d *Daemon) Current() *Loaded {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cur
}

// Plugins is the plugin host.
func (d *Daemon) Plugins() *pluginhost.Host { return d.plugins }

// Started is when the daemon started.
func (d *Daemon) Started() time.Time { return d.started }

// ReloadStats reports reloads done and the last refusal.
func (d *Daemon) ReloadStats() (int, string) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.reloads, d.lastReloadErr
}

func (d *Daemon) configurePlugin(ctx context.Context, p *pluginhost.Plugin) error {
	return d.configureWith(ctx, p, d.Current())
}

func (d *Daemon) configureWith(ctx context.Context, p *pluginhost.Plugin, l *Loaded) error {
	if tc, ok := p.L2TP(); ok {
		if d.ra == nil {
			return fmt.Errorf("plugin %s serves L2TP, but remote_access is not configured", p.Name())
		}
		return d.ra.Attach(ctx, d.life, tc)
	}
	if in, ok := p.Interop(); ok {
		return ikehost.ConfigureInterop(ctx, d.log.Named("interop"), p.Name(), in, l.Config)
	}
	a, _, ok := p.Authenticator()
	if !ok {
		return nil
	}
	warnings, err := a.Configure(ctx, l.Auth)
	for _, w := range warnings {
		d.log.Named("auth").Warn("plugin warning", zap.String("plugin", p.Name()), zap.String("warning", w))
	}
	return err
}

// Start launches the plugins and checks that every auth method in use is
// served. On error everything started is stopped.
func (d *Daemon) Start(ctx context.Context) error {
	l := d.Current()
	d.logWarnings(l.Config)
	if err := d.events.Open(l.Config.Log.Audit); err != nil {
		return err
	}
	// Remote access exists before the metrics endpoint, which reads it.
	if ra := l.Config.RemoteAccess; ra != nil {
		r, err := remote.New(remote.Config{Log: d.log.Named("l2tp"), RemoteAccess: ra, Plugins: d.plugins, Events: d.events})
		if err != nil {
			d.events.Close()
			return fmt.Errorf("remote_access: %w", err)
		}
		if err := r.StartRADIUS(d.life); err != nil {
			d.events.Close()
			return err
		}
		d.ra = r
		go r.Forward(d.life)
	}
	if l.Config.MetricsListen != "" {
		if err := d.metrics.Serve(d.life, l.Config.MetricsListen, d.log.Named("metrics")); err != nil {
			d.events.Close()
			return err
		}
	}
	for _, s := range l.Plugins {
		if err := d.plugins.Start(ctx, s); err != nil {
			d.plugins.StopAll()
			return err
		}
	}
	if err := d.checkServed(l); err != nil {
		d.plugins.StopAll()
		return err
	}
	if needsDataplane(l.Config) {
		if err := d.startDataplane(l); err != nil {
			d.plugins.StopAll()
			return fmt.Errorf("data path: %w", err)
		}
	}
	d.log.Named("policy").Info("policy applied", zap.Int("rules", len(l.Policy.Rules)), zap.Int("filters", len(l.Policy.Entries)),
		zap.String("exemptions", l.Policy.ExemptName))
	return nil
}

var kindMethod = map[string]sdk.AuthMethod{"psk": sdk.MethodPSK, "x509": sdk.MethodX509, "kerberos": sdk.MethodKerberos}

// kindPlugin names the plugin that serves each auth method kind.
var kindPlugin = map[string]string{"psk": "auth-psk", "x509": "auth-x509", "kerberos": "auth-krb5"}

func (d *Daemon) checkServed(l *Loaded) error {
	for _, u := range authUses(l.Config) {
		k := u.method.Kind()
		if _, _, err := d.plugins.Authenticator(kindMethod[k]); err != nil {
			return fmt.Errorf("%s: %s uses %s authentication, but no loaded plugin serves it (add %s to plugins.load)", l.Config.File, u.where, k, kindPlugin[k])
		}
	}
	if ra := l.Config.RemoteAccess; ra != nil && ra.PPP.Radius != nil {
		for _, name := range ra.PPP.Auth {
			m, _ := sdk.ParseAuthMethod(name)
			if _, _, err := d.plugins.Authenticator(m); err != nil {
				return fmt.Errorf("%s: remote_access.ppp.radius is set, but no loaded plugin checks %s users (add radius to plugins.load)", l.Config.File, name)
			}
		}
	}
	return nil
}

// ErrReloadRefused wraps every reason a reload was refused.
var ErrReloadRefused = errors.New("reload refused; the previous configuration stays in force")

// Reload re-reads the configuration. A bad file, a plugin that will not
// start or will not take the new configuration: each refuses the reload and
// leaves the old configuration running.
func (d *Daemon) Reload(ctx context.Context) ([]string, error) {
	changes, err := d.reload(ctx)
	d.mu.Lock()
	if err != nil {
		d.lastReloadErr = err.Error()
	} else {
		d.reloads++
		d.lastReloadErr = ""
	}
	d.mu.Unlock()
	log := d.log.Named("config")
	if err != nil {
		log.Error("reload refused; previous configuration stays in force", zap.Error(err))
		d.events.Emit(events.Record{ID: events.ReloadRefused, Message: err.Error()})
		return nil, fmt.Errorf("%w: %v", ErrReloadRefused, err)
	}
	log.Info("configuration reloaded", zap.Strings("changes", changes))
	d.events.Emit(events.Record{ID: events.ReloadApplied, Message: strings.Join(changes, "; ")})
	return changes, nil
}

func (d *Daemon) reload(ctx context.Context) ([]string, error) {
	old := d.Current()
	next, err := Load(d.opts)
	if err != nil {
		return nil, err
	}
	d.mu.RLock()
	st := d.dp
	d.mu.RUnlock()
	plan, err := planTunnels(st, old.Config, next.Config)
	if err != nil {
		return nil, err
	}
	if !remoteAccessUnchanged(old.Config, next.Config) {
		return nil, fmt.Errorf("%s: remote_access changed; restart gatehoused to apply it (connected users would be cut off)", next.Config.File)
	}
	if !manualUnchanged(old.Config, next.Config) {
		return nil, fmt.Errorf("%s: manual_sas or dataplane changed; manual SAs cannot be replaced without dropping traffic, so restart gatehoused to apply them", next.Config.File)
	}
	var changes []string
	oldSpecs := map[string]pluginhost.Spec{}
	for _, s := range old.Plugins {
		oldSpecs[s.Name] = s
	}
	var started []string
	rollback := func() {
		for _, n := range started {
			d.plugins.Remove(n)
		}
		for _, p := range d.plugins.Plugins() {
			_ = d.configureWith(ctx, p, old)
		}
	}
	// New plugins start with the new configuration.
	d.mu.Lock()
	d.cur = next
	d.mu.Unlock()
	for _, s := range next.Plugins {
		if prev, ok := oldSpecs[s.Name]; ok && prev.Path == s.Path {
			delete(oldSpecs, s.Name)
			continue
		}
		if _, ok := oldSpecs[s.Name]; ok {
			d.plugins.Remove(s.Name)
			changes = append(changes, "plugin "+s.Name+" restarted from "+s.Path)
		} else {
			changes = append(changes, "plugin "+s.Name+" started")
		}
		delete(oldSpecs, s.Name)
		if err := d.plugins.Start(ctx, s); err != nil {
			d.mu.Lock()
			d.cur = old
			d.mu.Unlock()
			rollback()
			return nil, err
		}
		started = append(started, s.Name)
	}
	for _, p := range d.plugins.Plugins() {
		if err := d.configureWith(ctx, p, next); err != nil {
			d.mu.Lock()
			d.cur = old
			d.mu.Unlock()
			rollback()
			return nil, fmt.Errorf("plugin %s refused the new configuration: %w", p.Name(), err)
		}
	}
	if err := d.checkServed(next); err != nil {
		d.mu.Lock()
		d.cur = old
		d.mu.Unlock()
		rollback()
		return nil, err
	}
	// The last step that can fail comes before the ones that cannot be undone.
	if st != nil {
		if err := dataplane.ApplyNft(dataplane.CleartextRules(next.Policy, next.Config.Dataplane.TUN)); err != nil {
			d.mu.Lock()
			d.cur = old
			d.mu.Unlock()
			rollback()
			return nil, err
		}
		st.plane.SetPolicy(next.Policy)
		changes = append(changes, d.applyTunnels(st, plan, next.Config)...)
	}
	for name := range oldSpecs {
		d.plugins.Remove(name)
		changes = append(changes, "plugin "+name+" stopped")
	}
	changes = append(changes, diffPolicy(old.Policy, next.Policy)...)
	if !slices.Equal(old.Config.Listen, next.Config.Listen) {
		changes = append(changes, "listen changed: it takes effect when gatehoused restarts")
	}
	if old.Config.MetricsListen != next.Config.MetricsListen {
		changes = append(changes, "metrics_listen changed: it takes effect when gatehoused restarts")
	}
	if old.Config.Log.Audit != next.Config.Log.Audit {
		changes = append(changes, "log.audit changed: it takes effect when gatehoused restarts")
	}
	d.logWarnings(next.Config)
	return changes, nil
}

// logWarnings logs what the configuration allows but weakens (the same
// lines --check prints), at every start and reload.
func (d *Daemon) logWarnings(c *config.Config) {
	for _, w := range c.Warnings {
		d.log.Warn("configuration: "+w.Msg, zap.String("where", fmt.Sprintf("%s:%d", w.File, w.Line)), zap.String("field", w.Field))
	}
}

// diffPolicy names rules added, removed or changed, for the reload log.
func diffPolicy(a, b *policy.Policy) []string {
	sig := func(p *policy.Policy) map[string]string {
		m := map[string]string{}
		for _, r := range p.Rules {
			m[r.Name] = fmt.Sprintf("%v|%v|%v|%+v|%v", r.Tunnel, r.Dir, r.Filters, r.Action, r.Auth)
		}
		return m
	}
	sa, sb := sig(a), sig(b)
	var out []string
	for n, s := range sb {
		switch prev, ok := sa[n]; {
		case !ok:
			out = append(out, "rule "+n+" added")
		case prev != s:
			out = append(out, "rule "+n+" changed")
		}
	}
	for n := range sa {
		if _, ok := sb[n]; !ok {
			out = append(out, "rule "+n+" removed")
		}
	}
	if a.ExemptName != b.ExemptName || fmt.Sprint(a.Exemptions) != fmt.Sprint(b.Exemptions) {
		out = append(out, "exemptions "+a.ExemptName+" -> "+b.ExemptName)
	}
	sort.Strings(out)
	return out
}

// Stop stops the data path and every plugin.
func (d *Daemon) Stop() {
	d.mu.Lock()
	d.stopDataplane()
	d.mu.Unlock()
	d.plugins.StopAll()
	d.endOfLife()
	d.events.Close()
	if d.keyLog != nil {
		d.keyLog.Close()
	}
}
