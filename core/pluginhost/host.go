// Package pluginhost starts the plugins named in the configuration, checks
// their handshake and version, finds which plugin kinds each serves, health-
// checks them, and restarts a crashed plugin with backoff, logging why it
// died. Data already installed in the core never depends on a plugin being up.
package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"go.uber.org/zap"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// State of a managed plugin.
type State string

const (
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateBackoff  State = "backoff"
	StateStopped  State = "stopped"
)

// Spec names a plugin binary.
type Spec struct {
	Name string
	Path string
}

// Options tune supervision; zero values take the defaults.
type Options struct {
	HealthInterval time.Duration // default 5s
	StartTimeout   time.Duration // handshake and discovery; default 10s
	// Backoff before restart number n (n from 1) is BackoffBase << (n-2),
	// capped at BackoffMax; the first restart is immediate. A plugin that
	// stayed up for StableAfter has its count of quick failures reset.
	BackoffBase time.Duration // default 250ms
	BackoffMax  time.Duration // default 30s
	StableAfter time.Duration // default 60s
	// OnRestart, when set, hears of each plugin brought back after it
	// died, with how its last process ended (for the audit log).
	OnRestart func(name, lastExit string, restarts int)
}

func (o *Options) fill() {
	if o.HealthInterval == 0 {
		o.HealthInterval = 5 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 10 * time.Second
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = 250 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.StableAfter == 0 {
		o.StableAfter = 60 * time.Second
	}
}

// ConfigureFunc is run after every start and restart of a plugin, and on
// reload, to hand the plugin its configuration.
type ConfigureFunc func(ctx context.Context, p *Plugin) error

// ErrNotServed is returned when no running plugin serves a kind or method.
var ErrNotServed = errors.New("no running plugin serves this")

// Status is a snapshot for `gatehouse plugins`.
type Status struct {
	Name      string
	Path      string
	Kinds     []string
	State     State
	PID       int
	Restarts  int
	LastExit  string
	LastError string
	Since     time.Time
}

// Plugin is one supervised plugin process.
type Plugin struct {
	spec Spec
	host *Host
	log  *zap.Logger

	mu        sync.Mutex
	state     State
	client    *plugin.Client
	runner    *procRunner
	kinds     []string
	auth      sdk.Authenticator
	authInfo  sdk.AuthenticatorInfo
	l2tp      sdk.L2TPClient
	interop   sdk.Interop
	restarts  int
	failures  int // quick failures in a row, for backoff
	lastExit  string
	lastError string
	since     time.Time
	stop      chan struct{}
	done      chan struct{}
}

// Host supervises every plugin.
type Host struct {
	log       *zap.Logger
	opts      Options
	configure ConfigureFunc

	mu      sync.Mutex
	plugins map[string]*Plugin
}

// New makes a host. configure may be nil.
func New(log *zap.Logger, opts Options, configure ConfigureFunc) *Host {
	opts.fill()
	return &Host{log: log, opts: opts, configure: configure, plugins: map[string]*Plugin{}}
}

func (h *Host) configureFunc() ConfigureFunc {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.configure
}

// Start launches a plugin and waits for its first start to succeed. A plugin
// that cannot start returns one error naming the binary and the reason, and
// is not supervised.
func (h *Host) Start(ctx context.Context, spec Spec) error {
	if err := CheckBinary(spec); err != nil {
		return err
	}
	p := &Plugin{spec: spec, host: h, log: h.log.With(zap.String("plugin", spec.Name)), state: StateStarting,
		stop: make(chan struct{}), done: make(chan struct{})}
	// The name is taken while the plugin starts, so it is never started twice.
	h.mu.Lock()
	if _, ok := h.plugins[spec.Name]; ok {
		h.mu.Unlock()
		return fmt.Errorf("plugin %s is already running", spec.Name)
	}
	h.plugins[spec.Name] = p
	h.mu.Unlock()
	if err := p.launch(ctx); err != nil {
		h.mu.Lock()
		delete(h.plugins, spec.Name)
		h.mu.Unlock()
		return fmt.Errorf("plugin %s (%s): %w", spec.Name, spec.Path, err)
	}
	go p.supervise()
	return nil
}

// CheckBinary reports whether spec's binary exists and is safe to run:
// a regular executable file that only root or gatehoused's own user can
// change, in a folder that only they can change either (through a
// symbolic link, both the link's folder and the file's). Anyone who could
// replace the binary would run code as gatehoused. Checked at start and at
// every restart.
func CheckBinary(spec Spec) error {
	resolved, err := filepath.EvalSymlinks(spec.Path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("plugin %s: binary %s does not exist (check plugins.dir, or give plugins.load[].path)", spec.Name, spec.Path)
	}
	if err != nil {
		return fmt.Errorf("plugin %s: %w", spec.Name, err)
	}
	st, err := os.Stat(resolved)
	switch {
	case err != nil:
		return fmt.Errorf("plugin %s: %w", spec.Name, err)
	case !st.Mode().IsRegular():
		return fmt.Errorf("plugin %s: %s is not a regular file", spec.Name, spec.Path)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("plugin %s: %s is not executable (chmod 755 it)", spec.Name, spec.Path)
	}
	if err := safeFromOthers(resolved, st); err != nil {
		return fmt.Errorf("plugin %s: %w", spec.Name, err)
	}
	for _, dir := range slices.Compact([]string{filepath.Dir(spec.Path), filepath.Dir(resolved)}) {
		dst, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", spec.Name, err)
		}
		if err := safeFromOthers(dir, dst); err != nil {
			return fmt.Errorf("plugin %s: its folder: %w", spec.Name, err)
		}
	}
	return nil
}

// safeFromOthers: path is owned by root or by us, and neither group nor
// others may write it.
func safeFromOthers(path string, st os.FileInfo) error {
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o); refusing to run it (chmod go-w %s)", path, st.Mode().Perm(), path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, neither root nor gatehoused's user (uid %d), who could replace it; refusing to run it (chown root %s)",
			path, sys.Uid, os.Geteuid(), path)
	}
	return nil
}

// launch starts the process, completes the handshake, discovers kinds and
// configures the plugin. On error nothing is left running.
func (p *Plugin) launch(ctx context.Context) (err error) {
	if err := CheckBinary(p.spec); err != nil {
		return err // the binary may have changed since the last start
	}
	ctx, cancel := context.WithTimeout(ctx, p.host.opts.StartTimeout)
	defer cancel()
	var pr *procRunner
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          sdk.PluginSet(sdk.Impl{}),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Mutual TLS with certificates made for this process pair: only
		// the plugin we started can answer on its socket, and only we can
		// call it (go-plugin's AutoMTLS).
		AutoMTLS:     true,
		SkipHostEnv:  true,
		StartTimeout: p.host.opts.StartTimeout,
		Logger:       newHCLog(p.log),
		RunnerFunc: func(_ hclog.Logger, cmd *exec.Cmd, _ string) (runner.Runner, error) {
			cmd.Path = p.spec.Path
			cmd.Args = []string{p.spec.Path}
			cmd.Env = append(cmd.Env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
			r, err := newProcRunner(cmd)
			pr = r
			return r, err
		},
	})
	defer func() {
		if err != nil {
			client.Kill()
		}
	}()
	rpc, err := client.Client()
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if v := client.NegotiatedVersion(); v != sdk.ProtocolVersion {
		return fmt.Errorf("speaks plugin protocol %d, this core speaks %d", v, sdk.ProtocolVersion)
	}
	var (
		kinds   []string
		auth    sdk.Authenticator
		info    sdk.AuthenticatorInfo
		l2tp    sdk.L2TPClient
		interop sdk.Interop
	)
	for _, kind := range sdk.Kinds {
		raw, err := rpc.Dispense(kind)
		if err != nil {
			return fmt.Errorf("dispense %s: %w", kind, err)
		}
		var ierr error
		switch c := raw.(type) {
		case sdk.Authenticator:
			info, ierr = c.Info(ctx)
			auth = c
		case sdk.L2TPClient:
			_, ierr = c.Info(ctx)
			l2tp = c
		case sdk.CryptoOffload:
			_, ierr = c.Info(ctx)
		case sdk.Interop:
			_, ierr = c.Info(ctx)
			interop = c
		}
		switch {
		case errors.Is(ierr, sdk.ErrUnsupported):
			continue
		case ierr != nil:
			return fmt.Errorf("%s info: %w", kind, ierr)
		}
		kinds = append(kinds, kind)
	}
	if len(kinds) == 0 {
		return fmt.Errorf("serves none of the plugin kinds (%v)", sdk.Kinds)
	}
	p.mu.Lock()
	p.client, p.runner, p.kinds = client, pr, kinds
	p.auth, p.authInfo, p.l2tp, p.interop = nil, sdk.AuthenticatorInfo{}, nil, nil
	for _, k := range kinds {
		switch k {
		case sdk.KindAuthenticator:
			p.auth, p.authInfo = auth, info
		case sdk.KindL2TP:
			p.l2tp = l2tp
		case sdk.KindInterop:
			p.interop = interop
		}
	}
	p.mu.Unlock()
	if f := p.host.configureFunc(); f != nil {
		if err := f(ctx, p); err != nil {
			return fmt.Errorf("configure: %w", err)
		}
	}
	p.mu.Lock()
	p.state, p.since, p.lastError = StateRunning, time.Now(), ""
	p.mu.Unlock()
	p.log.Info("plugin running", zap.String("path", p.spec.Path), zap.Int("pid", pr.pid), zap.Strings("kinds", kinds))
	return nil
}

// supervise waits for the plugin to die or fail health checks and restarts
// it with backoff, until Stop.
func (p *Plugin) supervise() {
	defer close(p.done)
	for {
		reason, ok := p.watch()
		if !ok {
			return
		}
		p.mu.Lock()
		up := time.Since(p.since)
		if up >= p.host.opts.StableAfter {
			p.failures = 0
		}
		p.failures++
		p.lastExit = reason
		p.state = StateBackoff
		p.auth, p.l2tp, p.interop = nil, nil, nil
		failures := p.failures
		p.mu.Unlock()
		p.log.Error("plugin died; restarting", zap.String("reason", reason), zap.Duration("uptime", up.Round(time.Millisecond)), zap.Int("failures_in_a_row", failures),
			zap.Duration("restart_in", p.host.opts.backoff(failures)))
		for attempt := failures; ; attempt++ {
			if !p.sleep(p.host.opts.backoff(attempt)) {
				return
			}
			p.mu.Lock()
			p.state = StateStarting
			p.mu.Unlock()
			err := p.launch(context.Background())
			if err == nil {
				p.mu.Lock()
				p.restarts++
				n := p.restarts
				p.mu.Unlock()
				p.log.Info("plugin restarted", zap.Int("restarts", n))
				if f := p.host.opts.OnRestart; f != nil {
					f(p.spec.Name, reason, n)
				}
				break
			}
			p.mu.Lock()
			p.lastError, p.state = err.Error(), StateBackoff
			p.failures++
			p.mu.Unlock()
			p.log.Error("plugin restart failed", zap.Error(err), zap.Duration("next_try_in", p.host.opts.backoff(attempt+1)))
		}
	}
}

func (o Options) backoff(attempt int) time.Duration {
	if attempt <= 1 {
		return 0
	}
	d := o.BackoffBase
	for i := 2; i < attempt && d < o.BackoffMax; i++ {
		d *= 2
	}
	return min(d, o.BackoffMax)
}

func (p *Plugin) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-p.stop:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.stop:
		return false
	case <-t.C:
		return true
	}
}

// watch blocks until the running instance dies (reason, true) or Stop
// (false). Two failed health checks in a row count as death.
func (p *Plugin) watch() (string, bool) {
	p.mu.Lock()
	client, r := p.client, p.runner
	p.mu.Unlock()
	tick := time.NewTicker(p.host.opts.HealthInterval)
	defer tick.Stop()
	misses := 0
	for {
		select {
		case <-p.stop:
			return "", false
		case <-r.exited:
			client.Kill()
			return exitReason(r.exitErr), true
		case <-tick.C:
			if err := ping(client, max(p.host.opts.HealthInterval/2, 100*time.Millisecond)); err != nil {
				misses++
				p.log.Warn("plugin health check failed", zap.Error(err), zap.Int("misses", misses))
				if misses >= 2 {
					kill(client, r, 0)
					return "stopped answering health checks: " + err.Error(), true
				}
				continue
			}
			misses = 0
		}
	}
}

// ping asks the plugin's gRPC health service, which go-plugin registers in
// every plugin. go-plugin's own Ping has no deadline, so a hung (stopped,
// deadlocked) plugin would block supervision forever.
func ping(c *plugin.Client, timeout time.Duration) error {
	rpc, err := c.Client()
	if err != nil {
		return err
	}
	g, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return errors.New("plugin does not speak gRPC")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, err = grpc_health_v1.NewHealthClient(g.Conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	return err
}

// Stop ends supervision and the process.
func (p *Plugin) Stop() {
	p.mu.Lock()
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.mu.Unlock()
	<-p.done
	p.mu.Lock()
	client, r := p.client, p.runner
	p.state = StateStopped
	p.mu.Unlock()
	if client != nil {
		kill(client, r, 2*time.Second)
	}
}

// kill ends an instance: go-plugin's graceful Kill, bounded by grace, then
// SIGKILL. The graceful path sends a gRPC shutdown with no deadline, which a
// hung plugin never answers.
func kill(client *plugin.Client, r *procRunner, grace time.Duration) {
	done := make(chan struct{})
	if grace > 0 {
		go func() { client.Kill(); close(done) }()
		select {
		case <-done:
			return
		case <-r.exited:
		case <-time.After(grace):
		}
	}
	r.Kill(context.Background())
	<-r.exited
	if grace <= 0 {
		client.Kill() // the process is gone; this only cleans up
	}
}

// Name is the plugin's configured name.
func (p *Plugin) Name() string { return p.spec.Name }

// Authenticator returns the running authenticator and what it serves.
func (p *Plugin) Authenticator() (sdk.Authenticator, sdk.AuthenticatorInfo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.auth, p.authInfo, p.auth != nil
}

// L2TP returns the running L2TP sessions client (it changes when the
// plugin restarts).
func (p *Plugin) L2TP() (sdk.L2TPClient, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l2tp, p.l2tp != nil
}

// Interop returns the running interop client.
func (p *Plugin) Interop() (sdk.Interop, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.interop, p.interop != nil
}

// Status snapshots the plugin.
func (p *Plugin) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Status{Name: p.spec.Name, Path: p.spec.Path, Kinds: append([]string(nil), p.kinds...), State: p.state,
		Restarts: p.restarts, LastExit: p.lastExit, LastError: p.lastError, Since: p.since}
	if p.runner != nil && p.state == StateRunning {
		s.PID = p.runner.pid
	}
	return s
}

// Plugins lists every supervised plugin, by name.
func (h *Host) Plugins() []*Plugin {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Plugin, 0, len(h.plugins))
	for _, p := range h.plugins {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

// Get returns a plugin by name.
func (h *Host) Get(name string) (*Plugin, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.plugins[name]
	return p, ok
}

// Remove stops and forgets a plugin.
func (h *Host) Remove(name string) {
	h.mu.Lock()
	p, ok := h.plugins[name]
	delete(h.plugins, name)
	h.mu.Unlock()
	if ok {
		p.Stop()
	}
}

// StopAll stops every plugin.
func (h *Host) StopAll() {
	for _, p := range h.Plugins() {
		h.Remove(p.spec.Name)
	}
}

// Authenticator finds the first running authenticator that serves method.
func (h *Host) Authenticator(method sdk.AuthMethod) (sdk.Authenticator, string, error) {
	for _, p := range h.Plugins() {
		a, info, ok := p.Authenticator()
		if !ok {
			continue
		}
		for _, m := range info.Methods {
			if m == method {
				return a, p.spec.Name, nil
			}
		}
	}
	return nil, "", fmt.Errorf("auth method %s: %w", method, ErrNotServed)
}
