// Command gatehoused is the Gatehouse VPN server.
//
// EAP-TLS (remote_access.ikev2.eap: tls) keys IKEv2 with TLS's exported
// keys (RFC 5216). Clients whose TLS 1.2 lacks Extended Master Secret
// (RFC 7627), strongSwan's among them, get no export from crypto/tls
// unless this setting allows it; gatehoused exports nothing else.
//
//go:debug tlsunsafeekm=1
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/admin"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/daemon"
	"github.com/gatehouse/gatehouse/core/pluginhost"
)

// Exit codes (documented in README.md).
const (
	exitOK      = 0
	exitFailure = 1 // could not start, or the check found errors
	exitUsage   = 2
)

// defaultGCPercent is the garbage collector's target unless GOGC says
// otherwise: the heap may grow half its live size between collections,
// not all of it. Sessions are long-lived and the data path allocates
// nothing per packet, so collections are rare; at 10,000 IKEv2 sessions
// this cut the resident size per session from 13.9 to 11.2 KiB for about
// 2 % more CPU per setup (docs/admin-guide.md, "Memory").
const defaultGCPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	var opts daemon.Options
	var check bool
	var cpuprofile, memprofile string
	cmd := &cobra.Command{
		Use:   "gatehoused -c FILE [--check]",
		Short: "Gatehouse VPN server: L2TP/IPsec remote access and site-to-site IPsec",
		Long: `gatehoused is the Gatehouse server. It reads one YAML configuration file,
builds the IPsec policy from it, starts the plugins the configuration needs
(authentication, L2TP/PPP, vendor interop) and serves the
admin API on a unix socket (admin_socket, mode 0600) for the gatehouse CLI.

Signals:
  SIGHUP           re-read the configuration; a bad file is refused and the
                   configuration in force keeps running (as 'gatehouse reload')
  SIGINT, SIGTERM  stop: plugins are stopped and the socket removed
  SIGUSR1          with --memprofile, write the heap profile

Environment:
  GOGC             the garbage collector's target (Go's); without it,
                   gatehoused collects when the heap has grown by half (50)
  GOMEMLIMIT       a soft limit on the server's memory (Go's)

Exit status:
  0  stopped cleanly, or --check found no error
  1  the configuration is invalid, or the server could not start
  2  bad command line

See docs/configuration.md for every setting and its default.`,
		Example: `  # Check a configuration without starting anything
  gatehoused --check -c /etc/gatehouse/gatehouse.yaml

  # Run in the foreground, with plugins from the build tree
  gatehoused -c contrib/examples/gatehouse.yaml --plugin-dir bin/plugins`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if check {
				return runCheck(opts)
			}
			if cpuprofile != "" {
				f, err := os.Create(cpuprofile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			if memprofile != "" {
				stop := heapProfileOnSignal(memprofile)
				defer stop()
			}
			return run(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.ConfigFile, "config", "c", "/etc/gatehouse/gatehouse.yaml", "configuration file")
	cmd.Flags().BoolVar(&check, "check", false, "validate the configuration and exit; starts nothing")
	cmd.Flags().StringVar(&opts.PluginDir, "plugin-dir", "", "folder of plugin binaries (overrides plugins.dir)")
	cmd.Flags().StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file until the server stops (for go tool pprof)")
	cmd.Flags().StringVar(&memprofile, "memprofile", "", "on SIGUSR1, write a heap profile (live objects, after a collection) to this file,\nreplacing the last (for go tool pprof -sample_index=inuse_space); every allocation\nis recorded, which slows the server")
	cmd.Flags().StringVar(&opts.KeyLog, "keylog", "", "append every negotiated ESP SA's keys to this file (mode 0600), for tshark;\nfor debugging only: whoever reads it can decrypt the tunnels")
	cmd.Version = daemon.Version
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "gatehoused:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(exitUsage)
		}
		os.Exit(exitFailure)
	}
	os.Exit(exitOK)
}

type usageError struct{ error }

func runCheck(opts daemon.Options) error {
	l, err := daemon.Load(opts)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			return fmt.Errorf("%d error(s) in the configuration:\n%w", len(list), err)
		}
		return err
	}
	fmt.Printf("%s: configuration OK\n", l.Config.File)
	for _, w := range l.Config.Warnings {
		fmt.Printf("  warning: %v\n", w)
	}
	fmt.Printf("  %d rules, %d filters applied, exemptions %s\n", len(l.Policy.Rules), len(l.Policy.Entries), l.Policy.ExemptName)
	bad := 0
	for _, p := range l.Plugins {
		state := "present"
		if err := pluginhost.CheckBinary(p); err != nil {
			state, bad = err.Error(), bad+1
		}
		fmt.Printf("  plugin %s: %s (%s)\n", p.Name, p.Path, state)
	}
	if bad > 0 {
		return fmt.Errorf("%d plugin binary(ies) cannot be run; the server would not start", bad)
	}
	return nil
}

func run(opts daemon.Options) error {
	l, err := daemon.Load(opts)
	if err != nil {
		return err
	}
	log, level, err := daemon.NewLogger(l.Config.Log.Level, l.Config.Log.Format)
	if err != nil {
		return err
	}
	defer log.Sync()
	log.Info("gatehoused starting", zap.String("version", daemon.Version), zap.String("config", l.Config.File))

	d := daemon.New(log, opts, l)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Start(ctx); err != nil {
		log.Error("cannot start", zap.Error(err))
		return err
	}
	defer d.Stop()

	ln, err := admin.Listen(l.Config.AdminSocket)
	if err != nil {
		return err
	}
	srv := admin.New(d, log.Named("admin"))
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	defer srv.Stop()
	log.Info("gatehoused ready", zap.String("admin_socket", l.Config.AdminSocket), zap.Int("rules", len(l.Policy.Rules)))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	for {
		select {
		case err := <-serveErr:
			return fmt.Errorf("admin API: %w", err)
		case s := <-sigs:
			if s != syscall.SIGHUP {
				log.Info("stopping", zap.String("signal", s.String()))
				return nil
			}
			log.Info("SIGHUP: reloading configuration")
			if _, err := d.Reload(ctx); err == nil {
				if lv, err := zap.ParseAtomicLevel(d.Current().Config.Log.Level); err == nil {
					level.SetLevel(lv.Level())
				}
			}
		}
	}
}

// heapProfileOnSignal writes the heap profile to path on every SIGUSR1
// until stop is called: memory per session is measured with every
// session up, not at exit.
func heapProfileOnSignal(path string) (stop func()) {
	// Every allocation sampled: exact figures per session, at a cost in
	// speed that only a profiling run pays.
	runtime.MemProfileRate = 1
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-sigs:
				runtime.GC() // the profile shows the heap as of the last collection
				f, err := os.Create(path)
				if err == nil {
					err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "gatehoused: heap profile:", err)
				}
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}
