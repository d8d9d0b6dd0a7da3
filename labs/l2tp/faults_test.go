package l2tp

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// TestFivePercentLoss: with 5 % of packets dropped at random each way on
// the outer link (nftables numgen), IKE, L2TP control and PPP still
// complete, connection after connection, and traffic passes.
func TestFivePercentLoss(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("mschapv2")
	out, err := cli.Output(5*time.Second, "ip", "-o", "link", "show")
	must(t, err)
	m := regexp.MustCompile(`\d+: (cli\d+)@`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no client interface in:\n%s", out)
	}
	must(t, x.srv.Loss(x.srvOuter, 5))
	must(t, cli.Loss(m[1], 5))
	received := regexp.MustCompile(`(\d+) received`)
	var setups []string
	for i := range 5 {
		start := time.Now()
		c := x.dial(cli, "alice", "correct horse", "--setup-timeout", "60s")
		setups = append(setups, time.Since(start).Round(100*time.Millisecond).String())
		// The client is up when its IPCP is; the server may still be
		// retransmitting its own last Configure-Request: wait for it.
		for end := time.Now().Add(30 * time.Second); !strings.Contains(netns.Flat(x.gw.CLI(t, "sessions")), "1 sessions"); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("connection %d: the server never had the session:\n%s", i+1, x.gw.CLI(t, "sessions"))
			}
		}
		out, _ := cli.Output(20*time.Second, "ping", "-c", "20", "-i", "0.1", "-W", "1", "10.1.0.10")
		if m := received.FindStringSubmatch(out); m == nil || atoi(m[1]) < 14 {
			t.Fatalf("connection %d: too few pings through at 5%% loss each way:\n%s", i+1, out)
		}
		c.proc.Signal(2)
		select {
		case <-c.proc.Done():
		case <-time.After(30 * time.Second):
			t.Fatalf("connection %d: the client did not hang up", i+1)
		}
		// The server lets the session go (after its own retransmissions if
		// the goodbyes were lost) and the address returns to the pool.
		for end := time.Now().Add(60 * time.Second); !strings.Contains(netns.Flat(x.gw.CLI(t, "sessions")), "0 sessions"); time.Sleep(500 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("connection %d: the session stayed after the client left:\n%s", i+1, x.gw.CLI(t, "sessions"))
			}
		}
	}
	t.Logf("5 connections at 5%% loss each way; setup times %s", strings.Join(setups, ", "))
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestAuditDiskFull: with the audit log on a full disk (/dev/full), a
// client still connects and its traffic passes; the core says once that
// records are being lost, and counts them.
func TestAuditDiskFull(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.audit = "/dev/full"
	x.serve("mschapv2")
	c := x.dial(cli, "alice", "correct horse")
	ping(t, cli, "10.1.0.10")
	if !x.gw.Proc.WaitLine(10*time.Second, "audit log write failed", "forwarding goes on") {
		t.Fatal("gatehoused did not say that audit records are being lost")
	}
	ping(t, cli, "10.1.0.10")
	out, err := x.srv.Output(10*time.Second, "curl", "-sf", "http://127.0.0.1:9273/metrics")
	must(t, err)
	m := regexp.MustCompile(`(?m)^gatehouse_audit_records_lost_total (\d+)$`).FindStringSubmatch(out)
	if m == nil || atoi(m[1]) < 2 {
		t.Fatalf("audit records lost not counted:\n%s", out)
	}
	if n := strings.Count(x.gw.Proc.Output(), "audit log write failed"); n != 1 {
		t.Fatalf("said %d times that audit records are lost, want once (a minute apart at most)", n)
	}
	c.hangUp(t)
	waitSessions(t, x, "0 sessions")
	t.Logf("%s audit records lost, said once; the session connected, passed traffic and ended", m[1])
}

// TestCoreRestart: gatehoused killed with SIGKILL under two sessions
// takes its plugins with it (no orphan keeps a socket or a lease); a new
// gatehoused on the same configuration starts (stale admin socket and
// firewall table replaced), the clients connect again and get addresses
// from a pool that holds only their leases, which hanging up returns.
func TestCoreRestart(t *testing.T) {
	x := newLab(t)
	nss := x.behindNAT(2)
	x.serve("mschapv2")
	before := []*client{x.dial(nss[0], "alice", "correct horse"), x.dial(nss[1], "bob", "battery staple")}
	waitSessions(t, x, "2 sessions")
	plugins := x.pluginPIDs()
	old := x.gw
	must(t, syscall.Kill(old.Proc.Cmd.Process.Pid, syscall.SIGKILL))
	<-old.Proc.Done()
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		alive := slices.DeleteFunc(slices.Clone(plugins), func(pid int) bool { return !running(pid) })
		if len(alive) == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("plugins %v outlived the core by 5 s", alive)
		}
	}
	// The old clients still think they are connected: hang them up, as a
	// user whose connection stalled would, and dial again.
	for _, c := range before {
		c.proc.Signal(syscall.SIGINT)
		select {
		case <-c.proc.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("the client in %s did not hang up:\n%s", c.ns.Name, c.proc.Output())
		}
	}
	x.serve("mschapv2")
	a := x.dial(nss[0], "alice", "correct horse")
	b := x.dial(nss[1], "bob", "battery staple")
	ping(t, nss[0], "10.1.0.10")
	ping(t, nss[1], "10.1.0.10")
	waitSessions(t, x, "2 sessions", "2 of 253")
	a.hangUp(t)
	b.hangUp(t)
	waitSessions(t, x, "0 sessions", "0 of 253")
}

// waitSessions waits up to 30 s for gatehouse sessions to show every want.
func waitSessions(t *testing.T, x *lab, wants ...string) {
	t.Helper()
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		s := netns.Flat(x.gw.CLI(t, "sessions"))
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(s, w) }) {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("gatehouse sessions lacks %q:\n%s", wants, x.gw.CLI(t, "sessions"))
		}
	}
}

// pluginPIDs lists the running plugins' process ids.
func (x *lab) pluginPIDs() []int {
	x.t.Helper()
	var r struct {
		Plugins []struct {
			Pid string `json:"pid"`
		} `json:"plugins"`
	}
	must(x.t, json.Unmarshal([]byte(x.gw.CLI(x.t, "plugins", "--json")), &r))
	var pids []int
	for _, p := range r.Plugins {
		if n := atoi(p.Pid); n > 0 {
			pids = append(pids, n)
		}
	}
	if len(pids) < 2 {
		x.t.Fatalf("want the l2tp and auth plugins running, got pids %v", pids)
	}
	return pids
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}
