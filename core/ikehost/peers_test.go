package ikehost

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/auth/x509/pki"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/ike"
)

// TestSetAuth: the ordered auth list becomes IKE methods in order, each
// with the plugin profile that serves it; a certificate's key sets its
// method.
func TestSetAuth(t *testing.T) {
	dir := t.TempDir()
	cert := func(name, kind string) string {
		key, err := pki.NewKey(kind)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := pki.NewRoot(pki.Request{CommonName: name, Key: key}) // any certificate will do
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".pem")
		if err := pki.WriteCerts(p, ca.Cert); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ec, rsa := cert("ec", "ecdsa"), cert("rsa", "rsa")
	x := func(p string) config.AuthMethod { return config.AuthMethod{X509: &config.X509{CertFile: p}} }
	psk := config.AuthMethod{PSKFile: "/k"}

	p := &ike.PeerConfig{Name: "site"}
	profiles := Profiles{}
	if err := setAuth(p, "tunnels[2]", []config.AuthMethod{x(ec), psk, x(rsa)}, profiles); err != nil {
		t.Fatal(err)
	}
	if len(p.Auth) != 3 || p.Auth[0] != ike.AuthECDSA256 || p.Auth[1] != ike.AuthPSK || p.Auth[2] != ike.AuthRSASig {
		t.Fatalf("methods %v", p.Auth)
	}
	if profiles["site"][ike.AuthRSASig] != "tunnels[2].auth[2]" || profiles["site"][ike.AuthECDSA256] != "tunnels[2].auth[0]" {
		t.Fatalf("profiles %v", profiles)
	}

	// Kerberos: the GSS method, our principal as our GSS identity, the
	// configured target and Windows knobs.
	krb := config.AuthMethod{Kerberos: &config.Kerberos{Keytab: "/kt", Principal: "host/gw-a.example.test@EXAMPLE.TEST",
		PeerPrincipal: "host/gw-b.example.test", IdentityAttribute: 32001, RawTokens: true, AllowedPeers: []string{"host/gw-b.example.test@EXAMPLE.TEST"}}}
	q := &ike.PeerConfig{Name: "k"}
	if err := setAuth(q, "tunnels[0]", []config.AuthMethod{krb, psk}, profiles); err != nil {
		t.Fatal(err)
	}
	if len(q.Auth) != 2 || q.Auth[0] != ike.AuthGSS || profiles["k"][ike.AuthGSS] != "tunnels[0].auth[0]" ||
		!reflect.DeepEqual(q.GSS, ike.GSSOptions{Identity: "host/gw-a.example.test@EXAMPLE.TEST", Target: "host/gw-b.example.test", IdentityAttr: 32001, RawTokens: true,
			AllowedPeers: []string{"host/gw-b.example.test@EXAMPLE.TEST"}}) {
		t.Fatalf("kerberos: %v %+v %v", q.Auth, q.GSS, profiles)
	}
	// Aggressive mode takes one certificate as well as one key.
	if err := setAuth(&ike.PeerConfig{Name: "aggr", Aggressive: true}, "tunnels[1]", []config.AuthMethod{x(rsa)}, profiles); err != nil {
		t.Fatalf("aggressive mode with a certificate: %v", err)
	}
	for what, c := range map[string]struct {
		list []config.AuthMethod
		aggr bool
		want string
	}{
		"two ECDSA certificates": {[]config.AuthMethod{x(ec), x(ec)}, false, "a second ecdsa-256 entry"},
		"two Kerberos entries":   {[]config.AuthMethod{krb, krb}, false, "a second gss-krb5 entry"},
		"aggressive Kerberos":    {[]config.AuthMethod{krb}, true, "use main mode for several methods and for Kerberos"},
		"aggressive with two":    {[]config.AuthMethod{x(ec), psk}, true, "aggressive mode works with a single psk_file or x509 entry"},
		"not a certificate":      {[]config.AuthMethod{x(filepath.Join(dir, "missing.pem"))}, false, "auth[0].x509"},
	} {
		err := setAuth(&ike.PeerConfig{Name: "t", Aggressive: c.aggr}, "tunnels[0]", c.list, Profiles{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", what, err, c.want)
		}
	}
}
