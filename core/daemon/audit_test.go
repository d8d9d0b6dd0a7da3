package daemon

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func testDaemon(t *testing.T) *Daemon {
	t.Helper()
	l, err := load(t, "listen: [203.0.113.1]\nmetrics_listen: \"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	return New(zap.NewNop(), Options{}, l)
}

// Every event becomes one JSON line with its stable id and name, and is
// counted for the metrics.
func TestAuditLinesAndCounters(t *testing.T) {
	d := testDaemon(t)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := d.audit.open(path); err != nil {
		t.Fatal(err)
	}
	remote := netip.MustParseAddr("198.51.100.7")
	d.audit.emit(fromIKE(ike.Event{ID: ike.EventIKEUp, Peer: "site", Remote: remote, Message: "IKE SA with site established"}))
	d.audit.emit(fromIKE(ike.Event{ID: ike.EventNegotiationErr, Peer: "site", Remote: remote, Reason: "no-proposal-chosen", Message: "no"}))
	d.audit.emit(fromIKE(ike.Event{ID: ike.EventNegotiationErr, Peer: "site", Remote: remote, Reason: "dead-peer", Message: "dead"}))
	d.audit.emit(AuditRecord{ID: sdk.EventUserConnected, Fields: map[string]string{"user": "alice"}})
	d.audit.emit(AuditRecord{ID: EventReloadRefused, Message: "bad"})
	d.audit.close()
	var recs []AuditRecord
	for end := time.Now().Add(5 * time.Second); len(recs) < 5 && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		recs = recs[:0]
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var r AuditRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			recs = append(recs, r)
		}
		f.Close()
	}
	if len(recs) != 5 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	if r := recs[0]; r.ID != 541 || r.Event != "ike-sa-up" || r.Tunnel != "site" || r.Remote != "198.51.100.7" || r.Time.IsZero() {
		t.Errorf("first record %+v", r)
	}
	if r := recs[3]; r.Event != "user-connected" || r.Fields["user"] != "alice" {
		t.Errorf("fourth record %+v", r)
	}
	m := d.metrics
	for _, c := range []struct {
		got  float64
		want float64
		what string
	}{{testutil.ToFloat64(m.ikeUp), 1, "IKE up"}, {testutil.ToFloat64(m.failures.WithLabelValues("no-proposal-chosen")), 1, "failures"},
		{testutil.ToFloat64(m.dpdDead), 1, "dead peers"}, {testutil.ToFloat64(m.users.WithLabelValues("connected")), 1, "logins"},
		{testutil.ToFloat64(m.reloads.WithLabelValues("refused")), 1, "reloads refused"}} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

// A full disk (/dev/full) loses records, counts them, and says so once,
// without blocking whoever emits.
func TestAuditDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	core, logs := observer.New(zap.InfoLevel)
	d := testDaemon(t)
	d.audit.log = zap.New(core)
	if err := d.audit.open("/dev/full"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 3 * auditQueue {
		d.audit.emit(AuditRecord{ID: ike.EventIKEUp})
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("emitting took %v: the audit writer blocks", time.Since(start))
	}
	d.audit.close()
	for end := time.Now().Add(5 * time.Second); d.audit.lost.Load() < 3*auditQueue && time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
	}
	if n := d.audit.lost.Load(); n != 3*auditQueue || testutil.ToFloat64(d.metrics.auditLost) != float64(n) {
		t.Fatalf("lost %d (metric %v), want %d", n, testutil.ToFloat64(d.metrics.auditLost), 3*auditQueue)
	}
	if got := logs.FilterMessageSnippet("audit log write failed").Len(); got != 1 {
		t.Fatalf("%d error lines, want 1", got)
	}
}

// The scrape has the state series with their conventional names.
func TestMetricsScrape(t *testing.T) {
	d := testDaemon(t)
	suite, err := esp.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	d.audit.emit(fromIKE(ike.Event{ID: ike.EventChildUp, Child: &ike.ChildSA{Suite: suite}, Rekey: true}))
	mfs, err := d.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"gatehouse_ike_sas", "gatehouse_ipsec_sas_established_total", "gatehouse_ipsec_rekeys_total", "go_goroutines"} {
		if !names[n] {
			t.Errorf("no %s in %v", n, strings.Join(func() []string {
				var out []string
				for k := range names {
					out = append(out, k)
				}
				return out
			}(), " "))
		}
	}
	if n := testutil.ToFloat64(d.metrics.rekeys); n != 1 {
		t.Errorf("rekeys %v", n)
	}
}
