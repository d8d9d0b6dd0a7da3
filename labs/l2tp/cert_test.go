package l2tp

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// TestClientCertificate: the server offers certificates first, then the
// PSK (an ordered method list). A laptop with a certificate from the CA
// connects with it, passes traffic and shows in `gatehouse sa` by its
// subject; a laptop whose certificate is revoked is refused, and says
// why; a PSK client still gets in through the second method.
func TestClientCertificate(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	pki := netns.NewPKI(t, bin)
	pki.Issue("vpn", "ecdsa", "--ip", "192.0.2.1")
	pki.Issue("laptop-1", "ecdsa")
	pki.Issue("laptop-2", "ecdsa")
	crl := pki.Revoke("laptop-2")
	x.auth = "[" + pki.AuthEntry("vpn", crl) + ", {psk_file: " + x.dir + "/l2tp.psk}]"
	x.serve("mschapv2")

	laptop := func(name string) []string {
		return []string{"--cert", pki.Path(name + ".pem"), "--key", pki.Path(name + ".key"), "--ca", pki.Path("ca.pem")}
	}
	c := x.dial(cli, "alice", "correct horse", laptop("laptop-1")...)
	ping(t, cli, "10.1.0.10")
	if sa := netns.Flat(x.gw.CLI(t, "sa")); !strings.Contains(sa, "ecdsa-256 CN=laptop-1,O=Gatehouse") {
		t.Fatalf("gatehouse sa should show the laptop's method and subject:\n%s", x.gw.CLI(t, "sa"))
	}
	c.hangUp(t)

	_, out, err := x.try(cli, "alice", "correct horse", laptop("laptop-2")...)
	if exitCode(err) != 4 || !strings.Contains(out, "IKE failed") || !strings.Contains(out, "INVALID-CERTIFICATE") {
		t.Fatalf("revoked laptop: exit %v, want 4 and the server's INVALID-CERTIFICATE:\n%s", err, out)
	}
	if !x.waitLog(`"reason": "authentication-failed"`, "CN=laptop-2", "certificate revoked") {
		t.Fatalf("the server did not say why it refused the laptop:\n%s", x.gw.Proc.Output())
	}

	c = x.dial(cli, "bob", "battery staple")
	if sa := netns.Flat(x.gw.CLI(t, "sa")); !strings.Contains(sa, " psk ipv4:192.0.2.10") {
		t.Fatalf("the PSK client should come in by the second method:\n%s", x.gw.CLI(t, "sa"))
	}
	c.hangUp(t)
}
