package netns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// StartGateway runs bin/gatehoused on config in ns and waits until its
// admin socket exists. The test's cleanup stops it and, when the test
// failed, logs what it printed.
func StartGateway(t testing.TB, ns *NS, bin, config, socket string) *Gateway {
	t.Helper()
	p, err := ns.Start(filepath.Join(bin, "gatehoused"), "-c", config)
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
	for range 100 {
		if _, err := os.Stat(socket); err == nil {
			return g
		}
		select {
		case <-p.Done():
			t.Fatalf("gatehoused in %s exited: %v\n%s", ns.Name, p.Err(), p.Output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("gatehoused in %s did not open %s:\n%s", ns.Name, socket, p.Output())
	return nil
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
