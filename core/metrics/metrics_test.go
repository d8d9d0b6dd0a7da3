package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/events"
	"github.com/gatehouse/gatehouse/core/pluginhost"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// fakeState is a daemon with IKE and a data path, and remote access only
// when ra is set.
type fakeState struct {
	ra *RemoteAccess
}

func (fakeState) IKE() (IKE, bool) {
	return IKE{SAs: []ike.SAInfo{{Established: true}, {Established: true}, {}, {Expired: true}, {Established: true, Version: 2}}, HalfOpen: 1, FirstDropped: 7,
		Drops: map[string]uint64{"unauthenticated": 3}}, true
}

func (fakeState) DataPath() (DataPath, bool) {
	return DataPath{SAs: 4, Totals: []sad.Total{{Mode: sad.Tunnel, Inbound: true, Bytes: 1500, Packets: 1}},
		Counters: dataplane.Counters{Sent: 10, Received: 11, Drops: map[string]uint64{"replay": 2}}}, true
}

func (s fakeState) RemoteAccess() (RemoteAccess, bool) {
	if s.ra == nil {
		return RemoteAccess{}, false
	}
	return *s.ra, true
}

func (fakeState) PluginStatus() []pluginhost.Status {
	return []pluginhost.Status{{Name: "auth-psk", State: pluginhost.StateRunning, Restarts: 2}, {Name: "l2tp", State: pluginhost.StateBackoff}}
}

// Each audit event moves the counter it stands for.
func TestEventCounters(t *testing.T) {
	m := New(fakeState{})
	suite, err := esp.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []ike.Event{
		{ID: ike.EventIKEUp}, {ID: ike.EventIKEDown},
		{ID: ike.EventChildUp, Child: &ike.ChildSA{Suite: suite}}, {ID: ike.EventChildUp, Child: &ike.ChildSA{Suite: suite}, Rekey: true},
		{ID: ike.EventNegotiationErr, Reason: "no-proposal-chosen"}, {ID: ike.EventNegotiationErr, Reason: "dead-peer"},
	} {
		m.Event(events.FromIKE(e))
	}
	m.Event(events.Record{ID: sdk.EventUserConnected})
	m.Event(events.Record{ID: sdk.EventUserConnected, Fields: map[string]string{"protocol": "ikev2"}})
	m.Event(events.Record{ID: sdk.EventUserAuthFailed})
	m.Event(events.Record{ID: sdk.EventUserAuthFailed})
	m.Event(events.Record{ID: events.LoginThrottled, Reason: "user"})
	m.Event(events.Record{ID: events.ReloadApplied})
	m.Event(events.Record{ID: events.ReloadRefused})
	m.Lost()
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"IKE up", testutil.ToFloat64(m.ikeUp), 1}, {"IKE down", testutil.ToFloat64(m.ikeDown), 1},
		{"child up", testutil.ToFloat64(m.childUp), 2}, {"rekeys", testutil.ToFloat64(m.rekeys), 1},
		{"no proposal", testutil.ToFloat64(m.failures.WithLabelValues("no-proposal-chosen")), 1},
		{"dead peers", testutil.ToFloat64(m.dpdDead), 1},
		{"logins", testutil.ToFloat64(m.users.WithLabelValues("connected", "l2tp")), 1},
		{"IKEv2 logins", testutil.ToFloat64(m.users.WithLabelValues("connected", "ikev2")), 1},
		{"failed logins", testutil.ToFloat64(m.users.WithLabelValues("auth-failed", "l2tp")), 2},
		{"limits", testutil.ToFloat64(m.limits.WithLabelValues("user")), 1},
		{"reloads applied", testutil.ToFloat64(m.reloads.WithLabelValues("applied")), 1},
		{"reloads refused", testutil.ToFloat64(m.reloads.WithLabelValues("refused")), 1},
		{"audit lost", testutil.ToFloat64(m.auditLost), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// A scrape reads the state: IKE SAs by state, the data path's totals and
// drops, the plugins; remote access's series only when it runs.
func TestScrapeReadsState(t *testing.T) {
	want := map[string]float64{
		`gatehouse_ike_sas{state="established",version="1"}`:             2,
		`gatehouse_ike_sas{state="negotiating",version="1"}`:             1,
		`gatehouse_ike_sas{state="expired",version="1"}`:                 1,
		`gatehouse_ike_sas{state="established",version="2"}`:             1,
		`gatehouse_ike_sas{state="negotiating",version="2"}`:             0,
		`gatehouse_ike_half_open_sas`:                                    1,
		`gatehouse_ike_first_messages_dropped_total`:                     7,
		`gatehouse_ike_messages_dropped_total{reason="unauthenticated"}`: 3,
		`gatehouse_ipsec_sas`:                                            4,
		`gatehouse_ipsec_bytes_total{direction="in",mode="tunnel"}`:      1500,
		`gatehouse_dataplane_drops_total{reason="replay"}`:               2,
		`gatehouse_dataplane_packets_total{direction="out"}`:             10,
		`gatehouse_plugin_restarts_total{plugin="auth-psk"}`:             2,
		`gatehouse_plugin_up{plugin="auth-psk"}`:                         1,
		`gatehouse_plugin_up{plugin="l2tp"}`:                             0,
		`gatehouse_sessions{protocol="l2tp"}`:                            2,
		`gatehouse_sessions{protocol="ikev2"}`:                           1,
		`gatehouse_pool_used_addresses`:                                  3,
		`gatehouse_pool_size_addresses`:                                  253,
		`gatehouse_logins_refused_unchecked_total{kind="address"}`:       5,
		`gatehouse_users_locked_out`:                                     1,
	}
	ra := &RemoteAccess{Sessions: map[string]int{"l2tp": 2, "ikev2": 1}, PoolUsed: 3, PoolSize: 253, Unchecked: map[string]uint64{"address": 5}, LockedOut: 1}
	got := scrape(t, New(fakeState{ra: ra}))
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	got = scrape(t, New(fakeState{}))
	for series := range got {
		if strings.HasPrefix(series, "gatehouse_sessions") || strings.HasPrefix(series, "gatehouse_pool_") {
			t.Errorf("%s scraped without remote access", series)
		}
	}
}

// scrape serves m on loopback and reads one scrape as series -> value.
func scrape(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // Serve listens itself; it reports a taken port at once
	if err := m.Serve(ctx, addr, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// A metrics_listen that cannot be bound stops the start with its name.
func TestServeReportsListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = New(fakeState{}).Serve(context.Background(), ln.Addr().String(), zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "metrics_listen "+ln.Addr().String()) {
		t.Fatalf("Serve on a taken port: %v", err)
	}
}
