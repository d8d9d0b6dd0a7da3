package site

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// TestFirewallTunnelOnly: the rules of gatehouse firewall --tunnel-only
// pass nft -c, load in B's namespace and leave the tunnel working. Once
// gatehoused on B stops (and its own table with it), a packet in clear
// between the protected subnets is still dropped and counted; without the
// rules, B forwards it.
func TestFirewallTunnelOnly(t *testing.T) {
	l := newLab(t)
	startGatehouse(t, l.GWA, siteA, tunnelOpts{})
	b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive"})
	rules := b.CLI(t, "firewall", "--tunnel-only")
	path := filepath.Join(t.TempDir(), "gatehouse.nft")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	nft := func(ns *netns.NS, args ...string) string {
		t.Helper()
		out, err := ns.Output(10*time.Second, "nft", args...)
		if err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	nft(l.GWB, "-c", "-f", path)
	nft(l.GWB, "-f", path)
	netns.PingThrough(t, l.HA, "10.2.0.10")
	t.Logf("iperf3 through the tunnel with the rules loaded: %.0f Mbit/s", iperf(t, l))

	// HB counts the echo requests in clear from A's inside address (sent
	// around A's tunnel with the data path's own mark) that reach it.
	nft(l.HB, "add", "table", "inet", "probe")
	nft(l.HB, "add", "chain", "inet", "probe", "in", "{ type filter hook input priority 0; }")
	nft(l.HB, "add", "rule", "inet", "probe", "in", "ip", "saddr", "10.1.0.1", "icmp", "type", "echo-request", "counter")
	if out, err := l.GWA.Output(5*time.Second, "ip", "route", "add", "10.2.0.0/24", "via", "192.0.2.2"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	counter := regexp.MustCompile(`counter packets (\d+)`)
	clear := func() int {
		n := func() int {
			m := counter.FindStringSubmatch(nft(l.HB, "list", "table", "inet", "probe"))
			v, _ := strconv.Atoi(m[1])
			return v
		}
		before := n()
		l.GWA.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-m", strconv.Itoa(0x4748), "-I", "10.1.0.1", "10.2.0.10")
		return n() - before
	}
	b.Proc.Stop(5 * time.Second)
	if out, _ := l.GWB.Output(5*time.Second, "nft", "list", "tables"); strings.Contains(out, "inet gatehouse\n") || !strings.Contains(out, "inet gatehouse_host") {
		t.Fatalf("after gatehoused stopped, the tables are:\n%s", out)
	}
	if n := clear(); n != 0 {
		t.Fatalf("%d of 3 echo requests in clear between the protected subnets passed the tunnel-only rules", n)
	}
	fwd := nft(l.GWB, "list", "chain", "inet", "gatehouse_host", "tunnel_only_forward")
	if m := regexp.MustCompile(`ip saddr 10\.1\.0\.0/24 ip daddr 10\.2\.0\.0/24 counter packets (\d+)`).FindStringSubmatch(fwd); m == nil || m[1] == "0" {
		t.Fatalf("the drop rule counted nothing:\n%s", fwd)
	}
	nft(l.GWB, "delete", "table", "inet", "gatehouse_host")
	if n := clear(); n != 3 {
		t.Fatalf("without the rules %d of 3 echo requests in clear reached HB; the test needs B to forward them", n)
	}
}
