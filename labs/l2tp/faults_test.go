package l2tp

import (
	"regexp"
	"strconv"
	"strings"
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
