// Package metrics is the Prometheus side of gatehoused
// (github.com/prometheus/client_golang): counters of audit events as they
// happen, and gauges and traffic totals read from the daemon's state at
// each scrape through State, so the data path pays nothing for them. The
// series are listed in docs/events.md.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/events"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// Metrics holds the registry and the event counters; it is the audit
// log's events.Counter.
type Metrics struct {
	reg *prometheus.Registry

	ikeUp, ikeDown, childUp, rekeys, dpdDead prometheus.Counter
	failures                                 *prometheus.CounterVec
	users                                    *prometheus.CounterVec
	limits                                   *prometheus.CounterVec
	reloads                                  *prometheus.CounterVec
	auditLost                                prometheus.Counter
}

// New makes the registry; the collector reads st at each scrape.
func New(st State) *Metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_" + name, Help: help})
	}
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		ikeUp:     counter("ike_sas_established_total", "IKE SAs established (event 541)."),
		ikeDown:   counter("ike_sas_ended_total", "IKE SAs ended (event 542)."),
		childUp:   counter("ipsec_sas_established_total", "IPsec SA pairs negotiated, rekeys included (event 5401)."),
		rekeys:    counter("ipsec_rekeys_total", "IPsec SA pairs that replaced an older pair."),
		dpdDead:   counter("dpd_dead_peers_total", "Peers declared dead by dead peer detection."),
		auditLost: counter("audit_records_lost_total", "Audit records not written: queue full or write failed."),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_ike_negotiation_failures_total",
			Help: "IKE negotiations that failed (event 5403), by reason."}, []string{"reason"}),
		users: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_user_logins_total",
			Help: "Remote-access user logins, by result (events 5410 and 5412) and protocol (l2tp, ikev2)."}, []string{"result", "protocol"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_login_limits_reached_total",
			Help: "Failed logins after which a user or client address has to wait, or a user is locked out (event 5413), by kind."}, []string{"kind"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_reloads_total",
			Help: "Configuration reloads, by result."}, []string{"result"}),
	}
	m.reg.MustRegister(m.ikeUp, m.ikeDown, m.childUp, m.rekeys, m.dpdDead, m.auditLost, m.failures, m.users, m.limits, m.reloads,
		&stateCollector{st: st}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Event counts one audit event.
func (m *Metrics) Event(r events.Record) {
	switch r.ID {
	case ike.EventIKEUp:
		m.ikeUp.Inc()
	case ike.EventIKEDown:
		m.ikeDown.Inc()
	case ike.EventChildUp:
		m.childUp.Inc()
		if r.Fields["rekey"] == "true" {
			m.rekeys.Inc()
		}
	case ike.EventNegotiationErr:
		m.failures.WithLabelValues(r.Reason).Inc()
		if r.Reason == "dead-peer" {
			m.dpdDead.Inc()
		}
	case sdk.EventUserConnected:
		m.users.WithLabelValues("connected", protocolOf(r)).Inc()
	case sdk.EventUserAuthFailed:
		m.users.WithLabelValues("auth-failed", protocolOf(r)).Inc()
	case events.LoginThrottled:
		m.limits.WithLabelValues(r.Reason).Inc()
	case events.ReloadApplied:
		m.reloads.WithLabelValues("applied").Inc()
	case events.ReloadRefused:
		m.reloads.WithLabelValues("refused").Inc()
	}
}

// Lost counts an audit record lost.
func (m *Metrics) Lost() { m.auditLost.Inc() }

// Serve runs the endpoint until ctx ends. A listen error is returned at
// once, so a wrong metrics_listen stops the start.
func (m *Metrics) Serve(ctx context.Context, addr string, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics_listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(log)}))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "gatehoused: metrics are at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", zap.Error(err))
		}
	}()
	log.Info("metrics served", zap.String("url", "http://"+ln.Addr().String()+"/metrics"))
	return nil
}

// State is what the collector reads at each scrape; ok false: that part
// is not running (no IKE, no data path, no remote access).
type State interface {
	IKE() (IKE, bool)
	DataPath() (DataPath, bool)
	RemoteAccess() (RemoteAccess, bool)
	PluginStatus() []pluginhost.Status
}

// IKE is the engine's state: its SAs, the half-open ones, and the
// messages it dropped by reason (ike.Manager.Drops).
type IKE struct {
	SAs          []ike.SAInfo
	HalfOpen     int
	FirstDropped uint64
	Drops        map[string]uint64
}

// DataPath is the SAD's size and totals and the plane's counters.
type DataPath struct {
	SAs      int
	Totals   []sad.Total
	Counters dataplane.Counters
}

// RemoteAccess is the sessions, the pool's use, and the login limits'
// doing: attempts refused unchecked by kind (user, address) and users
// locked out.
type RemoteAccess struct {
	// Sessions by protocol (l2tp, ikev2).
	Sessions           map[string]int
	PoolUsed, PoolSize int
	Unchecked          map[string]uint64
	LockedOut          int
}

// stateCollector reads gauges and traffic totals at scrape time.
type stateCollector struct{ st State }

var (
	descIKESAs = prometheus.NewDesc("gatehouse_ike_sas", "IKE SAs by state and IKE version.", []string{"state", "version"}, nil)
	descIPsec  = prometheus.NewDesc("gatehouse_ipsec_sas", "IPsec SAs installed in the data path, both directions.", nil, nil)
	descBytes  = prometheus.NewDesc("gatehouse_ipsec_bytes_total", "Bytes through IPsec SAs (removed ones included), by mode and direction.",
		[]string{"mode", "direction"}, nil)
	descPackets = prometheus.NewDesc("gatehouse_ipsec_packets_total", "Packets through IPsec SAs (removed ones included), by mode and direction.",
		[]string{"mode", "direction"}, nil)
	descHalfOpen = prometheus.NewDesc("gatehouse_ike_half_open_sas", "IKE SAs we answer that are not established yet.", nil, nil)
	descFlood    = prometheus.NewDesc("gatehouse_ike_first_messages_dropped_total",
		"IKE first messages dropped because too many negotiations were half open.", nil, nil)
	descIKEDrops = prometheus.NewDesc("gatehouse_ike_messages_dropped_total",
		"IKE messages dropped without any change of state, by reason: unauthenticated (did not decrypt, decode or verify: a wrong key or a forgery), replayed (a quick mode message ID already used), fragments (past the reassembly limits).",
		[]string{"reason"}, nil)
	descDrops     = prometheus.NewDesc("gatehouse_dataplane_drops_total", "Packets the data path dropped, by reason.", []string{"reason"}, nil)
	descOuter     = prometheus.NewDesc("gatehouse_dataplane_packets_total", "Outer packets sent and received by the data path.", []string{"direction"}, nil)
	descUnchecked = prometheus.NewDesc("gatehouse_logins_refused_unchecked_total",
		"Login attempts refused without checking the password: the user or the client address was waiting after failed logins, by kind.", []string{"kind"}, nil)
	descLocked   = prometheus.NewDesc("gatehouse_users_locked_out", "Users locked out after failed logins now.", nil, nil)
	descSessions = prometheus.NewDesc("gatehouse_sessions", "Remote-access sessions up, by protocol (l2tp, ikev2).", []string{"protocol"}, nil)
	descPoolUsed = prometheus.NewDesc("gatehouse_pool_used_addresses", "Addresses of the remote-access pool in use.", nil, nil)
	descPoolSize = prometheus.NewDesc("gatehouse_pool_size_addresses", "Addresses of the remote-access pool.", nil, nil)
	descRestarts = prometheus.NewDesc("gatehouse_plugin_restarts_total", "Plugin restarts since gatehoused started, by plugin.", []string{"plugin"}, nil)
	descPluginUp = prometheus.NewDesc("gatehouse_plugin_up", "1 when the plugin is running.", []string{"plugin"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIKESAs, descHalfOpen, descFlood, descIKEDrops, descIPsec, descBytes, descPackets, descDrops, descOuter,
		descSessions, descUnchecked, descLocked, descPoolUsed, descPoolSize, descRestarts, descPluginUp} {
		ch <- d
	}
}

func direction(inbound bool) string {
	if inbound {
		return "in"
	}
	return "out"
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	count := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	k, ikeOn := c.st.IKE()
	type stateVersion struct{ state, version string }
	states := map[stateVersion]int{}
	for _, v := range []string{"1", "2"} {
		for _, st := range []string{"established", "negotiating", "expired"} {
			states[stateVersion{st, v}] = 0
		}
	}
	for _, s := range k.SAs {
		key := stateVersion{"negotiating", strconv.Itoa(max(s.Version, 1))}
		switch {
		case s.Expired:
			key.state = "expired"
		case s.Established:
			key.state = "established"
		}
		states[key]++
	}
	for k, n := range states {
		gauge(descIKESAs, float64(n), k.state, k.version)
	}
	if ikeOn {
		gauge(descHalfOpen, float64(k.HalfOpen))
		count(descFlood, k.FirstDropped)
		for reason, v := range k.Drops {
			count(descIKEDrops, v, reason)
		}
	}
	if dp, ok := c.st.DataPath(); ok {
		gauge(descIPsec, float64(dp.SAs))
		for _, t := range dp.Totals {
			count(descBytes, t.Bytes, t.Mode.String(), direction(t.Inbound))
			count(descPackets, t.Packets, t.Mode.String(), direction(t.Inbound))
		}
		count(descOuter, dp.Counters.Sent, "out")
		count(descOuter, dp.Counters.Received, "in")
		for reason, n := range dp.Counters.Drops {
			count(descDrops, n, reason)
		}
	}
	if ra, ok := c.st.RemoteAccess(); ok {
		for _, p := range []string{"l2tp", "ikev2"} {
			gauge(descSessions, float64(ra.Sessions[p]), p)
		}
		gauge(descPoolUsed, float64(ra.PoolUsed))
		gauge(descPoolSize, float64(ra.PoolSize))
		for kind, n := range ra.Unchecked {
			count(descUnchecked, n, kind)
		}
		gauge(descLocked, float64(ra.LockedOut))
	}
	for _, s := range c.st.PluginStatus() {
		count(descRestarts, uint64(s.Restarts), s.Name)
		up := 0.0
		if s.State == pluginhost.StateRunning {
			up = 1
		}
		gauge(descPluginUp, up, s.Name)
	}
}

// protocolOf is a user event's protocol: ikev2 says so, L2TP's (from the
// l2tp plugin) do not.
func protocolOf(r events.Record) string {
	if r.Fields["protocol"] == "ikev2" {
		return "ikev2"
	}
	return "l2tp"
}
