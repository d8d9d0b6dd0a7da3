package pki_test

import (
	stdx509 "crypto/x509"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/auth/x509/pki"
)

// TestLabPKI: what the package makes, auth/x509 accepts, revokes and
// refuses as it should.
func TestLabPKI(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }
	caKey, err := pki.NewKey("ecdsa")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewRoot(pki.Request{CommonName: "Lab CA", Key: caKey})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCerts(path("ca.pem"), ca.Cert); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKey(path("ca.key"), ca.Key); err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKey(path("ca.key"), ca.Key); !errors.Is(err, os.ErrExist) {
		t.Fatalf("a key was overwritten: %v", err)
	}
	again, err := pki.LoadAuthority(path("ca.pem"), path("ca.key"))
	if err != nil {
		t.Fatal(err)
	}

	var certs = map[string]string{}
	for _, kind := range pki.KeyTypes {
		key, err := pki.NewKey(kind)
		if err != nil {
			t.Fatal(err)
		}
		c, err := again.Issue(pki.Request{CommonName: "gw-" + kind, IPs: []netip.Addr{netip.MustParseAddr("198.51.100.2")}, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		certs[kind] = path(kind + ".pem")
		if err := pki.WriteCerts(certs[kind], c); err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteKey(path(kind+".key"), key); err != nil {
			t.Fatal(err)
		}
		id, err := x509.LoadIdentity(certs[kind], path(kind+".key"))
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if err := x509.MatchID(id.Chain[0], 1, []byte{198, 51, 100, 2}); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}

	// Revoke the RSA one; update the CRL with the P-384 one.
	rsaCert := first(t, certs["rsa"])
	now := time.Now()
	der, err := again.CRL(nil, []*stdx509.Certificate{rsaCert}, now, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCRL(path("crl.pem"), der); err != nil {
		t.Fatal(err)
	}
	prev, err := x509.ReadCRL(path("crl.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p384 := first(t, certs["ecdsa384"])
	der, err = again.CRL(prev, []*stdx509.Certificate{p384, rsaCert}, now, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path("crl.pem"))
	if err := pki.WriteCRL(path("crl.pem"), der); err != nil {
		t.Fatal(err)
	}
	crl, _ := x509.ReadCRL(path("crl.pem"))
	if crl.Number.Int64() != 2 || len(crl.RevokedCertificateEntries) != 2 {
		t.Fatalf("updated CRL: number %v, %d entries", crl.Number, len(crl.RevokedCertificateEntries))
	}

	store, err := x509.Load([]string{path("ca.pem")}, []string{path("crl.pem")})
	if err != nil {
		t.Fatal(err)
	}
	for kind, want := range map[string]error{"rsa": x509.ErrRevoked, "ecdsa384": x509.ErrRevoked, "ecdsa": nil, "rsa3072": nil} {
		c := first(t, certs[kind])
		if _, err := store.Verify([][]byte{c.Raw}, now); !errors.Is(err, want) && !(want == nil && err == nil) {
			t.Errorf("%s: %v, want %v", kind, err, want)
		}
	}

	// An expired certificate, as the lab makes one.
	key, _ := pki.NewKey("ecdsa")
	old, err := again.Issue(pki.Request{CommonName: "gw-old", Key: key, NotBefore: now.Add(-60 * 24 * time.Hour), NotAfter: now.Add(-30 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Verify([][]byte{old.Raw}, now); !errors.Is(err, x509.ErrExpired) {
		t.Fatalf("expired: %v", err)
	}

	// Another CA cannot revoke ours; a key that is not the CA's is refused.
	otherKey, _ := pki.NewKey("ecdsa")
	other, _ := pki.NewRoot(pki.Request{CommonName: "Other CA", Key: otherKey})
	if _, err := other.CRL(nil, []*stdx509.Certificate{rsaCert}, now, time.Hour); err == nil {
		t.Fatal("another CA revoked our certificate")
	}
	if _, err := pki.LoadAuthority(path("ca.pem"), path("ecdsa.key")); err == nil {
		t.Fatal("a leaf's key loaded as the CA's")
	}
	if _, err := pki.NewKey("dsa"); err == nil {
		t.Fatal("unknown key type accepted")
	}
}

// first is a file's first certificate.
func first(t *testing.T, path string) *stdx509.Certificate {
	t.Helper()
	certs, err := x509.ReadCerts(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}
