package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/auth/x509/pki"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// lab writes a CA and certificates with pki into a temporary folder.
type lab struct {
	t   *testing.T
	dir string
	ca  *pki.Authority
}

func newLab(t *testing.T) *lab {
	key, err := pki.NewKey("ecdsa")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.NewRoot(pki.Request{CommonName: "Lab CA", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, dir: t.TempDir(), ca: ca}
	if err := pki.WriteCerts(l.path("ca.pem"), ca.Cert); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *lab) path(n string) string { return filepath.Join(l.dir, n) }

// issue writes name.pem and name.key; r's Key is made from kind.
func (l *lab) issue(name, kind string, r pki.Request) *x509.Certificate {
	l.t.Helper()
	key, err := pki.NewKey(kind)
	if err != nil {
		l.t.Fatal(err)
	}
	r.Key = key
	if r.CommonName == "" {
		r.CommonName = name
	}
	c, err := l.ca.Issue(r)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := pki.WriteCerts(l.path(name+".pem"), c); err != nil {
		l.t.Fatal(err)
	}
	if err := pki.WriteKey(l.path(name+".key"), key); err != nil {
		l.t.Fatal(err)
	}
	return c
}

func (l *lab) profile(name string, crls ...string) sdk.X509Profile {
	return sdk.X509Profile{Name: "tunnels[0].auth[0]", CAFiles: []string{l.path("ca.pem")}, CRLFiles: crls,
		CertFile: l.path(name + ".pem"), KeyFile: l.path(name + ".key")}
}

func TestVerifyAndSign(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	l.issue("gw-a", "ecdsa", pki.Request{IPs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	peer := l.issue("gw-b", "rsa", pki.Request{DNSNames: []string{"gw-b.example.net"}})
	revoked := l.issue("gw-revoked", "ecdsa", pki.Request{})
	expired := l.issue("gw-expired", "ecdsa", pki.Request{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	crl, err := l.ca.CRL(nil, []*x509.Certificate{revoked}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCRL(l.path("crl.pem"), crl); err != nil {
		t.Fatal(err)
	}
	other := newLab(t)
	stranger := other.issue("gw-stranger", "ecdsa", pki.Request{})

	a := newX509Auth(hclog.NewNullLogger())
	if _, err := a.VerifyCertificate(ctx, sdk.VerifyCertRequest{Profile: "x"}); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("before configure: %v", err)
	}
	if _, err := a.Configure(ctx, sdk.AuthConfig{X509: []sdk.X509Profile{l.profile("gw-a", l.path("crl.pem"))}}); err != nil {
		t.Fatal(err)
	}
	name := "tunnels[0].auth[0]"
	dn := func(c *x509.Certificate) *sdk.Identity {
		return &sdk.Identity{Type: ike.IDDERASN1DN, Data: c.RawSubject}
	}
	for _, c := range []struct {
		what   string
		cert   *x509.Certificate
		id     *sdk.Identity
		reason string
	}{
		{"good, by DN", peer, dn(peer), ""},
		{"good, by FQDN", peer, &sdk.Identity{Type: ike.IDFQDN, Data: []byte("gw-b.example.net")}, ""},
		{"ID names someone else", peer, &sdk.Identity{Type: ike.IDFQDN, Data: []byte("gw-c.example.net")}, "does not match"},
		{"revoked", revoked, dn(revoked), "revoked"},
		{"expired", expired, dn(expired), "expired"},
		{"unknown CA", stranger, dn(stranger), "not issued by a configured CA"},
	} {
		r, err := a.VerifyCertificate(ctx, sdk.VerifyCertRequest{Profile: name, Chain: [][]byte{c.cert.Raw}, PeerID: c.id})
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		if c.reason == "" && (!r.OK || !strings.Contains(r.Subject, "CN="+c.cert.Subject.CommonName) || len(r.PublicKey) == 0) {
			t.Errorf("%s: %+v", c.what, r)
		}
		if c.reason != "" && (r.OK || !strings.Contains(r.Reason, c.reason)) {
			t.Errorf("%s: want a refusal saying %q: %+v", c.what, c.reason, r)
		}
	}

	// Our side: the chain, our DN as ID, our CA for CERTREQs, and a
	// signature the peer can check with our certificate's key.
	lc, err := a.LocalCertificate(ctx, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	ours, _ := x509.ParseCertificate(lc.Chain[0])
	if ours.Subject.CommonName != "gw-a" || lc.ID.Type != ike.IDDERASN1DN || string(lc.ID.Data) != string(ours.RawSubject) ||
		len(lc.CANames) != 1 || string(lc.CANames[0]) != string(l.ca.Cert.RawSubject) {
		t.Fatalf("local certificate: %+v", lc)
	}
	if keyID := sha1.Sum(l.ca.Cert.RawSubjectPublicKeyInfo); len(lc.CAKeyIDs) != 1 || string(lc.CAKeyIDs[0]) != string(keyID[:]) {
		t.Fatalf("CA key hashes for IKEv2's CERTREQ: %x", lc.CAKeyIDs)
	}
	// An IKEv2 signature by RFC 7427: an ASN.1 ECDSA signature of a digest.
	digest := sha256.Sum256([]byte("signed octets"))
	der, err := a.Sign(ctx, name, digest[:], "ecdsa-der")
	if err != nil || !ecdsa.VerifyASN1(ours.PublicKey.(*ecdsa.PublicKey), digest[:], der) {
		t.Fatalf("ecdsa-der signature: %v", err)
	}
	if _, err := a.Sign(ctx, name, digest[:], "rsa-pkcs1-sha256"); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("an ECDSA key signed rsa-pkcs1-sha256: %v", err)
	}
	hash := sha1.Sum([]byte("HASH_I"))
	sig, err := a.Sign(ctx, name, hash[:], "ecdsa-256")
	if err != nil {
		t.Fatal(err)
	}
	if err := ike.VerifyHash(ours.PublicKey, ike.AuthECDSA256, hash[:], sig); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Sign(ctx, name, hash[:], "rsa-sig"); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("an ECDSA key signed for rsa-sig: %v", err)
	}
	if _, err := a.Sign(ctx, "no such profile", hash[:], "ecdsa-256"); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("unknown profile: %v", err)
	}

	// A reload reads the CRL again: revoking gw-b takes effect.
	crl, err = l.ca.CRL(nil, []*x509.Certificate{revoked, peer}, time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(l.path("crl.pem"))
	if err := pki.WriteCRL(l.path("crl.pem"), crl); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Configure(ctx, sdk.AuthConfig{X509: []sdk.X509Profile{l.profile("gw-a", l.path("crl.pem"))}}); err != nil {
		t.Fatal(err)
	}
	if r, _ := a.VerifyCertificate(ctx, sdk.VerifyCertRequest{Profile: name, Chain: [][]byte{peer.Raw}}); r.OK || !strings.Contains(r.Reason, "revoked") {
		t.Fatalf("after reload with a new CRL: %+v", r)
	}
}

func TestConfigureRefusals(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	l.issue("gw-a", "rsa", pki.Request{})
	l.issue("gw-soon", "ecdsa", pki.Request{NotAfter: time.Now().Add(7 * 24 * time.Hour)})
	a := newX509Auth(hclog.NewNullLogger())
	if _, err := a.Configure(ctx, sdk.AuthConfig{X509: []sdk.X509Profile{l.profile("gw-a")}}); err != nil {
		t.Fatal(err)
	}
	bad := map[string]sdk.X509Profile{}
	p := l.profile("gw-a")
	p.KeyFile = l.path("gw-soon.key")
	bad["key of another certificate"] = p
	p = l.profile("gw-a")
	p.CAFiles = []string{l.path("gw-a.pem")}
	bad["a leaf as CA"] = p
	p = l.profile("gw-a")
	os.Chmod(l.path("gw-soon.key"), 0o644)
	p.KeyFile, p.CertFile = l.path("gw-soon.key"), l.path("gw-soon.pem")
	bad["key readable by others"] = p
	for what, prof := range bad {
		if _, err := a.Configure(ctx, sdk.AuthConfig{X509: []sdk.X509Profile{prof}}); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("%s: accepted (%v)", what, err)
		}
	}
	// The old profile still serves.
	if _, err := a.LocalCertificate(ctx, "tunnels[0].auth[0]", nil); err != nil {
		t.Fatalf("previous configuration lost: %v", err)
	}
	// A certificate near its end is accepted with a warning.
	os.Chmod(l.path("gw-soon.key"), 0o600)
	w, err := a.Configure(ctx, sdk.AuthConfig{X509: []sdk.X509Profile{l.profile("gw-soon")}})
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "renew") {
		t.Fatalf("warnings %q, %v", w, err)
	}
}
