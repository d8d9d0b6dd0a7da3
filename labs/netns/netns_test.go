package netns

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestLabLinkNATAndLoss builds client - router - server, proves the router
// masquerades (the server has no route back to the client's subnet, so
// replies arrive only if NAT rewrote the source), that loss drops, and that
// Close leaves nothing behind.
func TestLabLinkNATAndLoss(t *testing.T) {
	l := ForTest(t)
	client := l.MustNS(t, "cli")
	router := l.MustNS(t, "nat")
	server := l.MustNS(t, "srv")
	l.MustLink(t, client, "10.9.0.2/24", router, "10.9.0.1/24")
	rout, _ := l.MustLink(t, router, "198.51.100.1/24", server, "198.51.100.2/24")
	if err := client.Route("default", "10.9.0.1"); err != nil {
		t.Fatal(err)
	}
	if err := router.Masquerade(rout); err != nil {
		t.Fatal(err)
	}
	if out, err := client.Output(10*time.Second, "ping", "-c", "2", "-W", "2", "198.51.100.2"); err != nil {
		t.Fatalf("ping through NAT: %v\n%s", err, out)
	}
	if err := router.Loss(rout, 100); err != nil {
		t.Fatal(err)
	}
	if out, err := client.Output(10*time.Second, "ping", "-c", "2", "-W", "1", "198.51.100.2"); err == nil {
		t.Fatalf("ping passed through 100%% loss:\n%s", out)
	}
	p, err := server.Start("sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	names := []string{client.Full, router.Full, server.Full}
	l.Close()
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("process survived Close")
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Fatalf("namespace %s survived Close", n)
		}
	}
}

func TestParallelLabsDoNotCollide(t *testing.T) {
	a, b := ForTest(t), ForTest(t)
	na := a.MustNS(t, "x")
	nb := b.MustNS(t, "x")
	if na.Full == nb.Full {
		t.Fatalf("two labs made the same namespace %s", na.Full)
	}
}
