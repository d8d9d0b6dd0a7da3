package netns

import (
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// Sites is a test's TwoSites lab.
type Sites struct {
	*Lab
	*TwoSites
}

// SitesForTest builds the two-site topology for a test and tears it down
// with it.
func SitesForTest(t testing.TB) *Sites {
	t.Helper()
	l := ForTest(t)
	s, err := l.TwoSites()
	if err != nil {
		t.Fatal(err)
	}
	return &Sites{Lab: l, TwoSites: s}
}

// Gateway is gatehoused running in a namespace.
type Gateway struct {
	NS     *NS
	Proc   *Proc
	Socket string
	bin    string
}

// StartGateway runs bin/gatehoused on config in ns, with extra
// arguments if any, and waits until its admin socket exists. The test's
// cleanup stops it and, when the test failed, logs what it printed.
func StartGateway(t testing.TB, ns *NS, bin, config, socket string, extra ...string) *Gateway {
	t.Helper()
	p, err := ns.Start(filepath.Join(bin, "gatehoused"), append([]string{"-c", config}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	g := &Gateway{NS: ns, Proc: p, Socket: socket, bin: bin}
	t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("gatehoused in %s:\n%s", ns.Name, p.Output())
		}
	})
	await.State(t, 10*time.Second, "gatehoused in "+ns.Name+" to open "+socket, func() (bool, string) {
		select {
		case <-p.Done():
			t.Fatalf("gatehoused in %s exited: %v\n%s", ns.Name, p.Err(), p.Output())
		default:
		}
		_, err := os.Stat(socket)
		return err == nil, p.Output()
	})
	ns.lab.mu.Lock()
	ns.lab.gateways = append(ns.lab.gateways, g)
	ns.lab.mu.Unlock()
	return g
}

// Gateways are the gatehoused instances running in ns's lab.
func (ns *NS) Gateways() []*Gateway {
	ns.lab.mu.Lock()
	defer ns.lab.mu.Unlock()
	var out []*Gateway
	for _, g := range ns.lab.gateways {
		select {
		case <-g.Proc.Done():
		default:
			out = append(out, g)
		}
	}
	return out
}

// Traffic is a data path's packet counters (gatehouse sa --json).
type Traffic struct {
	Sent           uint64 `json:"sent,string"`
	Received       uint64 `json:"received,string"`
	ClearForwarded uint64 `json:"clearForwarded,string"`
}

// Traffic reads the gateway's data-path counters.
func (g *Gateway) Traffic(t testing.TB) Traffic {
	t.Helper()
	var tr Traffic
	out := g.CLI(t, "sa", "--json")
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("gatehouse sa --json in %s: %v\n%s", g.NS.Name, err, out)
	}
	return tr
}

// PingThrough pings to from `from` until a first answer (the first
// packets may start IKE), then three times, all of which must be
// answered; every gatehoused of the lab must have sealed and opened at
// least the three pings' packets in that time and forwarded nothing in
// clear, so that an answer cannot have come around the tunnel.
func PingThrough(t testing.TB, from *NS, to string) {
	t.Helper()
	PingThroughFrom(t, from, "", to)
}

// PingThroughFrom is PingThrough from the source address src (empty: the
// one the route picks).
func PingThroughFrom(t testing.TB, from *NS, src, to string) {
	t.Helper()
	ping := func(args ...string) []string {
		if src != "" {
			args = append([]string{"-I", src}, args...)
		}
		return append(args, to)
	}
	var out string
	var err error
	if ok, _ := await.Poll(20*time.Second, func() (bool, string) {
		out, err = from.Output(5*time.Second, "ping", ping("-c", "1", "-W", "1")...)
		return err == nil, ""
	}); !ok {
		t.Fatalf("ping %s from %s (%s): no answer in 20 s: %v\n%s", to, from.Name, cmp.Or(src, "routed source"), err, out)
	}
	gws := from.Gateways()
	before := make([]Traffic, len(gws))
	for i, g := range gws {
		before[i] = g.Traffic(t)
	}
	if out, err = from.Output(10*time.Second, "ping", ping("-c", "3", "-i", "0.2", "-W", "1")...); err != nil || !strings.Contains(out, " 3 received") {
		t.Fatalf("ping %s from %s through the tunnel: %v\n%s", to, from.Name, err, out)
	}
	for i, g := range gws {
		after := g.Traffic(t)
		if after.Sent-before[i].Sent < 3 || after.Received-before[i].Received < 3 || after.ClearForwarded != before[i].ClearForwarded {
			t.Fatalf("gatehoused in %s, over three pings: %d sent and %d received through SAs, %d forwarded in clear; want at least 3, 3 and none",
				g.NS.Name, after.Sent-before[i].Sent, after.Received-before[i].Received, after.ClearForwarded-before[i].ClearForwarded)
		}
	}
}

// CLI runs bin/gatehouse against the gateway and returns its output.
func (g *Gateway) CLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := g.NS.Output(20*time.Second, filepath.Join(g.bin, "gatehouse"), append([]string{"--socket", g.Socket}, args...)...)
	if err != nil {
		t.Fatalf("gatehouse %v: %v\n%s", args, err, out)
	}
	return out
}

// NoSecrets fails the test if any secret appears in any of the texts
// (named for the message): keys and passwords never reach logs.
func NoSecrets(t testing.TB, texts map[string]string, secrets ...string) {
	t.Helper()
	for name, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a secret (%d bytes, starting %q) appears in %s", len(s), s[:min(3, len(s))], name)
			}
		}
	}
}
