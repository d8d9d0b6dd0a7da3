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

// swan sets strongSwan's side to authenticate as name by certificate,
// trusting the lab CA. Its key goes in its private folder, where swanctl
// loads keys from (the secrets section only holds passphrases).
func swanCert(p *netns.PKI, o tunnelOpts, name string) tunnelOpts {
	o.swanAuth = fmt.Sprintf("local {\n      auth = pubkey\n      certs = %s\n    }\n    remote {\n      auth = pubkey\n      cacerts = %s\n    }",
		p.Path(name+".pem"), p.Path("ca.pem"))
	o.swanSecrets = " "
	o.swanFiles = map[string]string{"private/" + name + ".key": p.Path(name + ".key")}
	return o
}

// TestX509WithStrongSwan: site-to-site with strongSwan authenticated by
// RSA and by ECDSA certificates from one CA, each side initiating in turn;
// the SA shows the method and the peer's certificate subject.
func TestX509WithStrongSwan(t *testing.T) {
	for _, c := range []struct{ kind, method string }{{"rsa", "rsa-sig"}, {"ecdsa", "ecdsa-256"}} {
		pki := netns.NewPKI(t, bin)
		pki.Issue("gw-a", c.kind, "--ip", siteA.local)
		pki.Issue("gw-b", c.kind, "--ip", siteB.local)
		t.Run(c.kind+"/gatehouse-initiates", func(t *testing.T) {
			l := newLab(t)
			startStrongSwan(t, l.GWB, siteB, swanCert(pki, tunnelOpts{}, "gw-b"))
			a := startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: "[" + pki.AuthEntry("gw-a") + "]"})
			netns.PingThrough(t, l.HA, "10.2.0.10")
			checkSA(t, a, "site established initiator", c.method+" CN=gw-b,O=Gatehouse", "tunnel/udp ESP aes128gcm16")
		})
		t.Run(c.kind+"/strongswan-initiates", func(t *testing.T) {
			l := newLab(t)
			b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", auth: "[" + pki.AuthEntry("gw-b") + "]"})
			sw := startStrongSwan(t, l.GWA, siteA, swanCert(pki, tunnelOpts{}, "gw-a"))
			if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
				t.Fatalf("swanctl --initiate: %v\n%s", err, out)
			}
			netns.PingThrough(t, l.HA, "10.2.0.10")
			checkSA(t, b, "site established responder", c.method+" CN=gw-a,O=Gatehouse")
			if !strings.Contains(sw.Log(), `authentication of 'O=Gatehouse, CN=gw-b' with `) {
				t.Fatalf("strongSwan did not check our signature:\n%s", sw.Log())
			}
		})
	}
}

// TestX509RefusesRevokedAndExpired: gatehoused refuses a strongSwan peer
// whose certificate is on the CA's CRL, then one whose certificate has
// expired, then one with a good certificate of the same CA that is not the
// one remote.id names, each with an event that says so, and keeps serving:
// the same peer with its own certificate gets through.
func TestX509RefusesRevokedAndExpired(t *testing.T) {
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-b", "ecdsa", "--ip", siteB.local)
	pki.Issue("gw-a-revoked", "ecdsa", "--ip", siteA.local)
	pki.Issue("gw-a-expired", "ecdsa", "--ip", siteA.local, "--start", time.Now().AddDate(0, -2, 0).Format(time.DateOnly), "--days", "30")
	pki.Issue("gw-a", "ecdsa", "--ip", siteA.local)
	pki.Issue("gw-z", "ecdsa", "--ip", siteA.local) // the CA's, but not the tunnel's peer
	crl := pki.Revoke("gw-a-revoked")
	l := newLab(t)
	b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", auth: "[" + pki.AuthEntry("gw-b", crl) + "]",
		remoteExtra: `, id: "dn:CN=gw-a,O=Gatehouse"`})
	for _, c := range []struct{ cert, text string }{
		{"gw-a-revoked", "certificate revoked"},
		{"gw-a-expired", "certificate expired"},
		{"gw-z", "does not name dn:cn=gw-a,o=gatehouse, the tunnel's remote.id"},
	} {
		t.Run(c.cert, func(t *testing.T) {
			o := swanCert(pki, tunnelOpts{}, c.cert)
			sw := startStrongSwan(t, l.GWA, siteA, o)
			sw.Swanctl(15*time.Second, "--initiate", "--child", "net", "--timeout", "10")
			waitLog(t, b.Proc, `"reason": "authentication-failed"`, "CN="+c.cert, c.text)
			if sa := b.CLI(t, "sa"); strings.Contains(sa, "established") {
				t.Fatalf("an SA with a refused certificate:\n%s", sa)
			}
		})
	}
	sw := startStrongSwan(t, l.GWA, siteA, swanCert(pki, tunnelOpts{}, "gw-a"))
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, b, "site established responder", "CN=gw-a,O=Gatehouse")
}

// TestX509AggressiveModeWithStrongSwan: aggressive mode with certificates
// (RFC 2409 section 5.1), turned on for the tunnel on both sides, each
// side initiating in turn; no identities configured: the certificates
// name the gateways.
func TestX509AggressiveModeWithStrongSwan(t *testing.T) {
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-a", "ecdsa", "--ip", siteA.local)
	pki.Issue("gw-b", "ecdsa", "--ip", siteB.local)
	swan := func(name string) tunnelOpts {
		o := swanCert(pki, tunnelOpts{}, name)
		o.swanExtra = "aggressive = yes"
		return o
	}
	t.Run("gatehouse-initiates", func(t *testing.T) {
		l := newLab(t)
		sw := startStrongSwan(t, l.GWB, siteB, swan("gw-b"))
		a := startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: "[" + pki.AuthEntry("gw-a") + "]", ikeExtra: ", aggressive_mode: true"})
		netns.PingThrough(t, l.HA, "10.2.0.10")
		checkSA(t, a, "site established initiator", "ecdsa-256 CN=gw-b,O=Gatehouse")
		if !strings.Contains(sw.Log(), "parsed AGGRESSIVE request 0 [ SA KE No ID CERTREQ") {
			t.Fatalf("strongSwan saw no aggressive mode with a certificate request:\n%s", sw.Log())
		}
	})
	t.Run("strongswan-initiates", func(t *testing.T) {
		l := newLab(t)
		b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", auth: "[" + pki.AuthEntry("gw-b") + "]", ikeExtra: ", aggressive_mode: true"})
		sw := startStrongSwan(t, l.GWA, siteA, swan("gw-a"))
		if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
			t.Fatalf("swanctl --initiate: %v\n%s", err, out)
		}
		netns.PingThrough(t, l.HA, "10.2.0.10")
		checkSA(t, b, "site established responder", "ecdsa-256 CN=gw-a,O=Gatehouse")
		if !strings.Contains(sw.Log(), "parsed AGGRESSIVE response 0 [ SA KE No ID CERT SIG") || !strings.Contains(sw.Log(), `authentication of 'O=Gatehouse, CN=gw-b' with `) {
			t.Fatalf("strongSwan did not check our signature in aggressive mode:\n%s", sw.Log())
		}
	})
}

// TestFragmentationWithStrongSwan: with a 576-byte fragment size on both
// sides, RSA main mode's CERT and SIG messages go in IKE fragments each
// way (strongSwan's and ours), are reassembled, and the tunnel carries
// traffic.
func TestFragmentationWithStrongSwan(t *testing.T) {
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-a", "rsa", "--ip", siteA.local)
	pki.Issue("gw-b", "rsa", "--ip", siteB.local)
	extra := filepath.Join(t.TempDir(), "charon-extra.conf")
	if err := os.WriteFile(extra, []byte("fragment_size = 576\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := newLab(t)
	o := swanCert(pki, tunnelOpts{}, "gw-b")
	o.swanFiles["charon-extra.conf"] = extra
	sw := startStrongSwan(t, l.GWB, siteB, o)
	a := startGatehouse(t, l.GWA, siteA, tunnelOpts{auth: "[" + pki.AuthEntry("gw-a") + "]", ikeExtra: ", fragment_size: 576"})
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, a, "site established initiator", "rsa-sig CN=gw-b,O=Gatehouse")
	waitLog(t, a.Proc, "IKE message sent in fragments")
	waitLog(t, a.Proc, "IKE message reassembled from fragments")
	if log := sw.Log(); !strings.Contains(log, "received fragment #") {
		t.Fatalf("strongSwan saw no fragments:\n%s", log)
	}
	if log := sw.Log(); !strings.Contains(log, "splitting IKE message") {
		t.Fatalf("strongSwan sent no fragments:\n%s", log)
	}
}
