package site

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// Kerberos computer authentication between two Gatehouse gateways: a real
// MIT KDC (its own realm, started in GWB's namespace on 192.0.2.2) issues
// the tickets; gw-a initiates with its machine keytab, gw-b accepts with
// its own.
const (
	krbRealm = "GATEHOUSE.TEST"
	krbHostA = "host/gw-a.gatehouse.test"
	krbHostB = "host/gw-b.gatehouse.test"
)

type krbLab struct {
	*lab
	kdc      *netns.KDC
	dir      string
	ktA, ktB string
}

func newKrbLab(t *testing.T) *krbLab {
	l := &krbLab{lab: newLab(t), dir: t.TempDir()}
	l.kdc = netns.StartKDC(t, l.GWB, krbRealm, "192.0.2.2")
	l.ktA, l.ktB = filepath.Join(l.dir, "gw-a.keytab"), filepath.Join(l.dir, "gw-b.keytab")
	l.kdc.AddHost(t, krbHostA, l.ktA)
	l.kdc.AddHost(t, krbHostB, l.ktB)
	return l
}

// auth is a gateway's auth list: its principal and keytab, the other
// gateway as its only allowed peer, and extra entries for the kerberos
// block.
func (l *krbLab) auth(host, keytab, extra string) string {
	peer := krbHostA
	if host == krbHostA {
		peer = krbHostB
	}
	if !strings.Contains(extra, "allowed_peers") {
		extra = ", allowed_peers: [" + peer + "]" + extra
	}
	return fmt.Sprintf("[{kerberos: {principal: %s@%s, keytab: %s, krb5_conf: %s%s}}]", host, krbRealm, keytab, l.kdc.Krb5ConfPath(), extra)
}

// TestKerberosGatehouseToGatehouse: gw-a gets a ticket for gw-b (whose
// principal it learns from gw-b's GSS identity attribute), main mode
// authenticates both by their tickets, and traffic passes.
func TestKerberosGatehouseToGatehouse(t *testing.T) {
	l := newKrbLab(t)
	b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", auth: l.auth(krbHostB, l.ktB, "")})
	a := startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: l.auth(krbHostA, l.ktA, "")})
	netns.PingThrough(t, l.HA, "10.2.0.10")
	t.Logf("iperf3 %.0f Mbit/s", iperf(t, l.lab))
	checkSA(t, a, "site established initiator", "gss-krb5", krbHostB+"@"+krbRealm, "tunnel ESP aes128gcm16")
	checkSA(t, b, "site established responder", "gss-krb5", krbHostA+"@"+krbRealm)
}

// TestKerberosRefusals: a gateway whose clock is off by more than the
// realm's five minutes, and one whose keytab is stale, are refused with an
// event that says which; put right, the same gateways connect.
func TestKerberosRefusals(t *testing.T) {
	l := newKrbLab(t)
	trigger := func() { l.HA.Output(5*time.Second, "ping", "-c", "2", "-W", "1", "10.2.0.10") }

	t.Run("clock skew", func(t *testing.T) {
		b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", auth: l.auth(krbHostB, l.ktB, "")})
		a := startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: l.auth(krbHostA, l.ktA, ", clock_offset: 10m")})
		trigger()
		waitLog(t, b.Proc, `"reason": "authentication-failed"`, "clock skew too great", krbHostA+"@"+krbRealm, "10m0s")
		waitLog(t, a.Proc, "AUTHENTICATION-FAILED")
		a.Proc.Stop(5 * time.Second)
		b.Proc.Stop(5 * time.Second)
	})

	t.Run("not an allowed peer", func(t *testing.T) {
		// gw-a's ticket is genuine, but gw-b takes only gw-c.
		b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", auth: l.auth(krbHostB, l.ktB, ", allowed_peers: [host/gw-c.gatehouse.test]")})
		a := startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: l.auth(krbHostA, l.ktA, "")})
		trigger()
		waitLog(t, b.Proc, `"reason": "authentication-failed"`, krbHostA+"@"+krbRealm, "is not among this rule's Kerberos peers", "host/gw-c.gatehouse.test@"+krbRealm)
		waitLog(t, a.Proc, "AUTHENTICATION-FAILED")
		if sa := b.CLI(t, "sa"); strings.Contains(sa, "established") {
			t.Fatalf("an SA with a peer that is not allowed:\n%s", sa)
		}
		a.Proc.Stop(5 * time.Second)
		b.Proc.Stop(5 * time.Second)
	})

	t.Run("stale keytab", func(t *testing.T) {
		// gw-b is re-keyed at the KDC but keeps its old keytab.
		stale := l.kdc.Rekey(t, krbHostB, l.ktB)
		o := tunnelOpts{start: "passive", auth: l.auth(krbHostB, stale, "")}
		b := startGatehouse(t, l.GWB, siteB, o)
		startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: l.auth(krbHostA, l.ktA, "")})
		trigger()
		waitLog(t, b.Proc, `"reason": "authentication-failed"`, "the keytab cannot open the ticket", krbHostB+"@"+krbRealm)

		// The operator installs the new keytab where the old one was and
		// reloads: the plugin reads it again and the same gateways connect.
		fresh, err := os.ReadFile(l.ktB)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stale, fresh, 0o600); err != nil {
			t.Fatal(err)
		}
		b.CLI(t, "reload")
		netns.PingThrough(t, l.HA, "10.2.0.10")
		checkSA(t, b, "site established responder", "gss-krb5")
	})
}
