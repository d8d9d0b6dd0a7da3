package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/throttle"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// metrics is the Prometheus side (github.com/prometheus/client_golang):
// counters of events as they happen, and gauges and totals read from the
// daemon's state at each scrape, so the data path pays nothing for them.
type metrics struct {
	reg *prometheus.Registry

	ikeUp, ikeDown, childUp, rekeys, dpdDead prometheus.Counter
	failures                                 *prometheus.CounterVec
	users                                    *prometheus.CounterVec
	limits                                   *prometheus.CounterVec
	reloads                                  *prometheus.CounterVec
	auditLost                                prometheus.Counter
}

func newMetrics(d *Daemon) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "gatehouse_" + name, Help: help})
	}
	m := &metrics{
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
			Help: "Remote-access user logins, by result (events 5410 and 5412)."}, []string{"result"}),
		limits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_login_limits_reached_total",
			Help: "Failed logins after which a user or client address has to wait, or a user is locked out (event 5413), by kind."}, []string{"kind"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gatehouse_reloads_total",
			Help: "Configuration reloads, by result."}, []string{"result"}),
	}
	m.reg.MustRegister(m.ikeUp, m.ikeDown, m.childUp, m.rekeys, m.dpdDead, m.auditLost, m.failures, m.users, m.limits, m.reloads,
		&stateCollector{d: d}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// event counts one audit event.
func (m *metrics) event(r AuditRecord) {
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
		m.users.WithLabelValues("connected").Inc()
	case sdk.EventUserAuthFailed:
		m.users.WithLabelValues("auth-failed").Inc()
	case EventLoginThrottled:
		m.limits.WithLabelValues(r.Reason).Inc()
	case EventReloadApplied:
		m.reloads.WithLabelValues("applied").Inc()
	case EventReloadRefused:
		m.reloads.WithLabelValues("refused").Inc()
	}
}

// serve runs the endpoint until ctx ends. A listen error is returned at
// once, so a wrong metrics_listen stops the start.
func (m *metrics) serve(ctx context.Context, addr string, log *zap.Logger) error {
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

// stateCollector reads gauges and traffic totals at scrape time.
type stateCollector struct{ d *Daemon }

var (
	descIKESAs = prometheus.NewDesc("gatehouse_ike_sas", "IKE SAs by state.", []string{"state"}, nil)
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
	descSessions = prometheus.NewDesc("gatehouse_sessions", "Remote-access sessions up.", nil, nil)
	descPoolUsed = prometheus.NewDesc("gatehouse_pool_used_addresses", "Addresses of the remote-access pool in use.", nil, nil)
	descPoolSize = prometheus.NewDesc("gatehouse_pool_size_addresses", "Addresses of the remote-access pool.", nil, nil)
	descRestarts = prometheus.NewDesc("gatehouse_plugin_restarts_total", "Plugin restarts since gatehoused started, by plugin.", []string{"plugin"}, nil)
	descPluginUp = prometheus.NewDesc("gatehouse_plugin_up", "1 when the plugin is running.", []string{"plugin"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIKESAs, descHalfOpen, descFlood, descIKEDrops, descIPsec, descBytes, descPackets, descDrops, descOuter, descSessions, descUnchecked, descLocked, descPoolUsed,
		descPoolSize, descRestarts, descPluginUp} {
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
	d := c.d
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	count := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	states := map[string]int{"established": 0, "negotiating": 0, "expired": 0}
	for _, s := range d.IKESAs() {
		switch {
		case s.Expired:
			states["expired"]++
		case s.Established:
			states["established"]++
		default:
			states["negotiating"]++
		}
	}
	for st, n := range states {
		gauge(descIKESAs, float64(n), st)
	}
	if m := d.ikeManager(); m != nil {
		n, dropped := m.HalfOpen()
		gauge(descHalfOpen, float64(n))
		count(descFlood, dropped)
		for reason, v := range m.Drops() {
			count(descIKEDrops, v, reason)
		}
	}
	d.mu.RLock()
	dp := d.dp
	d.mu.RUnlock()
	if dp != nil {
		gauge(descIPsec, float64(dp.db.Len()))
		for _, t := range dp.db.Totals() {
			count(descBytes, t.Bytes, t.Mode.String(), direction(t.Inbound))
			count(descPackets, t.Packets, t.Mode.String(), direction(t.Inbound))
		}
		cs := dp.plane.Counters()
		count(descOuter, cs.Sent, "out")
		count(descOuter, cs.Received, "in")
		for reason, n := range cs.Drops {
			count(descDrops, n, reason)
		}
	}
	if d.ra != nil {
		used, size := d.ra.pool.Usage()
		gauge(descSessions, float64(len(d.ra.table.All())))
		gauge(descPoolUsed, float64(used))
		gauge(descPoolSize, float64(size))
		count(descUnchecked, d.ra.throttled[0].Load(), string(throttle.KindUser))
		count(descUnchecked, d.ra.throttled[1].Load(), string(throttle.KindAddress))
		gauge(descLocked, float64(d.ra.limits.Locked(d.ra.now())))
	}
	for _, p := range d.plugins.Plugins() {
		s := p.Status()
		count(descRestarts, uint64(s.Restarts), s.Name)
		up := 0.0
		if s.State == pluginhost.StateRunning {
			up = 1
		}
		gauge(descPluginUp, up, s.Name)
	}
}
