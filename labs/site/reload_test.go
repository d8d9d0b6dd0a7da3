package site

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// saState is what identifies the running SAs: the IKE SA's cookies and
// every SPI.
func saState(t *testing.T, g *gw) string {
	t.Helper()
	var r struct {
		IkeSas []struct{ Tunnel, Cookies string }
		Sas    []struct {
			Name string
			Spi  uint32
		}
	}
	if err := json.Unmarshal([]byte(g.CLI(t, "--json", "sa")), &r); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// TestReloadKeepsUntouchedTunnel: while a ping runs through tunnel site,
// reloads add a tunnel, refuse a broken file and remove the tunnel again;
// not one packet is lost and site keeps its very SAs. Then a reload that
// changes site deletes its SAs, telling the peer, and traffic brings it
// up again with the new proposal. With each IKE version.
func TestReloadKeepsUntouchedTunnel(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("IKEv%d", v), func(t *testing.T) {
			l := newLab(t)
			dir := t.TempDir()
			a := netns.StartGateway(t, l.GWA, bin, writeGatehouseConfig(t, dir, siteA, tunnelOpts{version: v}), dir+"/admin.sock")
			// B takes either suite, so that A can change its own.
			b := startGatehouse(t, l.GWB, siteB, tunnelOpts{version: v, start: "passive", esp: "aes128gcm16, aes256-sha256"})
			netns.PingThrough(t, l.HA, "10.2.0.10")
			before := saState(t, a)

			ping, err := l.HA.Start("ping", "-c", "100", "-i", "0.05", "-W", "1", "10.2.0.10")
			if err != nil {
				t.Fatal(err)
			}
			branch := "  - {name: branch, local: {address: 192.0.2.1, subnets: [10.1.0.0/24]}, remote: {address: 198.51.100.9, subnets: [10.9.0.0/24]}, auth: [{psk_file: " + dir + "/site.psk}], start: passive}\n"
			writeGatehouseConfig(t, dir, siteA, tunnelOpts{version: v, moreTunnels: branch})
			if out := a.CLI(t, "reload"); !strings.Contains(out, "tunnel branch added") {
				t.Fatalf("reload adding branch: %s", out)
			}
			if routes, _ := l.GWA.Output(5*time.Second, "ip", "route", "show", "table", "4747"); !strings.Contains(routes, "10.9.0.0/24") {
				t.Fatalf("no route for the added tunnel:\n%s", routes)
			}
			path := filepath.Join(dir, "gatehouse.yaml")
			good, _ := os.ReadFile(path)
			if err := os.WriteFile(path, []byte("tunnels: [{name: broken\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := l.GWA.Output(20*time.Second, filepath.Join(bin, "gatehouse"), "--socket", a.Socket, "reload"); err == nil || !strings.Contains(out, "not valid YAML") {
				t.Fatalf("a broken file was not refused: %v\n%s", err, out)
			}
			os.WriteFile(path, good, 0o644)
			writeGatehouseConfig(t, dir, siteA, tunnelOpts{version: v})
			if out := a.CLI(t, "reload"); !strings.Contains(out, "tunnel branch removed") {
				t.Fatalf("reload removing branch: %s", out)
			}
			select {
			case <-ping.Done():
			case <-time.After(20 * time.Second):
				t.Fatal("ping did not end")
			}
			if out := ping.Output(); !strings.Contains(out, " 0% packet loss") {
				t.Fatalf("traffic through the untouched tunnel was lost across the reloads:\n%s", out)
			}
			if after := saState(t, a); after != before {
				t.Fatalf("the untouched tunnel's SAs changed:\nbefore %s\nafter  %s", before, after)
			}

			writeGatehouseConfig(t, dir, siteA, tunnelOpts{version: v, esp: "aes256-sha256"})
			if out := a.CLI(t, "reload"); !strings.Contains(out, "tunnel site changed") || !strings.Contains(out, "tunnel site: SAs deleted") {
				t.Fatalf("reload changing site: %s", out)
			}
			told := map[int]string{1: "deleted by the peer", 2: "the peer deleted the IKE SA"}[v]
			if !b.Proc.WaitLine(10*time.Second, told) {
				t.Fatalf("B was not told:\n%s", b.Proc.Output())
			}
			netns.PingThrough(t, l.HA, "10.2.0.10")
			checkSA(t, a, fmt.Sprintf("site established initiator IKEv%d", v), "tunnel ESP aes256-sha256")
		})
	}
}
