package x509

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/auth/psk"
	"github.com/gatehouse/gatehouse/ike"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// pki makes a lab PKI: a root CA, an intermediate, and leaves.
type pki struct {
	t      testing.TB
	dir    string
	serial int64
}

type issued struct {
	cert *stdx509.Certificate
	key  crypto.Signer
}

func newKey(t testing.TB, ec bool) crypto.Signer {
	t.Helper()
	if ec {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// issue signs tmpl with parent (nil: self-signed).
func (p *pki) issue(tmpl *stdx509.Certificate, parent *issued, ec bool) *issued {
	p.t.Helper()
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-24*time.Hour), now.Add(365*24*time.Hour)
	}
	key := newKey(p.t, ec)
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := stdx509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := stdx509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return &issued{c, key}
}

func ca(name string) *stdx509.Certificate {
	return &stdx509.Certificate{Subject: pkix.Name{CommonName: name, Organization: []string{"Gatehouse lab"}}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: stdx509.KeyUsageCertSign | stdx509.KeyUsageCRLSign}
}

func leaf(cn string) *stdx509.Certificate {
	return &stdx509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: []string{"Gatehouse lab"}},
		DNSNames: []string{cn}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}, EmailAddresses: []string{"ops@" + cn},
		KeyUsage: stdx509.KeyUsageDigitalSignature}
}

func (p *pki) writePEM(name, typ string, der ...[]byte) string {
	p.t.Helper()
	var b []byte
	for _, d := range der {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

func (p *pki) crl(name string, issuer *issued, revoked ...*issued) string {
	p.t.Helper()
	var entries []stdx509.RevocationListEntry
	for _, r := range revoked {
		entries = append(entries, stdx509.RevocationListEntry{SerialNumber: r.cert.SerialNumber, RevocationTime: now.Add(-time.Hour)})
	}
	der, err := stdx509.CreateRevocationList(rand.Reader, &stdx509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-2 * time.Hour),
		NextUpdate: now.Add(7 * 24 * time.Hour), RevokedCertificateEntries: entries}, issuer.cert, issuer.key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.writePEM(name, "X509 CRL", der)
}

// lab: root -> intermediate -> leaves; a second, unconfigured root.
type lab struct {
	*pki
	root, inter, other *issued
	caFile             string
}

func newLab(t testing.TB) *lab {
	p := &pki{t: t, dir: t.TempDir()}
	l := &lab{pki: p}
	l.root = p.issue(ca("Gatehouse Lab Root"), nil, false)
	l.inter = p.issue(ca("Gatehouse Lab Issuing CA"), l.root, true)
	l.other = p.issue(ca("Someone Else's Root"), nil, false)
	l.caFile = p.writePEM("ca.pem", "CERTIFICATE", l.root.cert.Raw, l.inter.cert.Raw)
	return l
}

func TestVerifyRSAAndECDSALeaves(t *testing.T) {
	l := newLab(t)
	s, err := Load([]string{l.caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, ec := range []bool{false, true} {
		gw := l.issue(leaf("gw-b.example.net"), l.inter, ec)
		v, err := s.Verify([][]byte{gw.cert.Raw}, now)
		if err != nil {
			t.Fatalf("ec=%v: %v", ec, err)
		}
		if len(v.Chain) != 3 || !strings.Contains(v.Subject(), "CN=gw-b.example.net") {
			t.Fatalf("chain of %d, subject %q", len(v.Chain), v.Subject())
		}
		// The peer may send the intermediate itself.
		s2, err := Load([]string{l.writePEM("root.pem", "CERTIFICATE", l.root.cert.Raw)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Verify([][]byte{gw.cert.Raw, l.inter.cert.Raw}, now); err != nil {
			t.Fatalf("with the intermediate sent by the peer: %v", err)
		}
		if _, err := s2.Verify([][]byte{gw.cert.Raw}, now); !errors.Is(err, ErrUnknownCA) {
			t.Fatalf("without the intermediate: %v", err)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	l := newLab(t)
	revoked := l.issue(leaf("revoked.example.net"), l.inter, true)
	crl := l.crl("inter.crl", l.inter, revoked)
	s, err := Load([]string{l.caFile}, []string{crl})
	if err != nil {
		t.Fatal(err)
	}
	old := leaf("old.example.net")
	old.NotBefore, old.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour)
	future := leaf("future.example.net")
	future.NotBefore, future.NotAfter = now.Add(time.Hour), now.Add(48*time.Hour)
	for _, tc := range []struct {
		name  string
		chain [][]byte
		want  error
		says  string
	}{
		{"expired", [][]byte{l.issue(old, l.inter, false).cert.Raw}, ErrExpired, "old.example.net,O=Gatehouse lab\" expired 2026-11-22T11:00:00Z"},
		{"not yet valid", [][]byte{l.issue(future, l.inter, false).cert.Raw}, ErrNotYetValid, "valid from 2026-11-22T13:00:00Z (check both clocks)"},
		{"unknown CA", [][]byte{l.issue(leaf("stranger.example.net"), l.other, false).cert.Raw}, ErrUnknownCA, "issued by \"CN=Someone Else's Root"},
		{"revoked", [][]byte{revoked.cert.Raw}, ErrRevoked, "on \"CN=Gatehouse Lab Issuing CA,O=Gatehouse lab\"'s CRL since 2026-11-22T11:00:00Z"},
		{"garbage", [][]byte{[]byte("not a certificate")}, ErrMalformed, ""},
		{"empty", nil, ErrMalformed, "no certificate"},
	} {
		_, err := s.Verify(tc.chain, now)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.want, tc.says)
		}
	}
	// A revoked intermediate takes its leaves with it.
	good := l.issue(leaf("gw.example.net"), l.inter, true)
	s2, err := Load([]string{l.caFile}, []string{l.crl("root.crl", l.root, l.inter)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Verify([][]byte{good.cert.Raw}, now); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "Issuing CA") {
		t.Fatalf("leaf under a revoked intermediate: %v", err)
	}
	if stale := s2.StaleCRLs(now.Add(8 * 24 * time.Hour)); len(stale) != 1 || !strings.Contains(stale[0], "Lab Root") {
		t.Fatalf("stale CRLs a week on: %v", stale)
	}
}

func TestLoadRefusals(t *testing.T) {
	l := newLab(t)
	gw := l.issue(leaf("gw.example.net"), l.inter, false)
	for _, tc := range []struct {
		name       string
		cas, crls  []string
		says       string
		wantLoaded bool
	}{
		{"a leaf as CA", []string{l.writePEM("leaf.pem", "CERTIFICATE", gw.cert.Raw)}, nil, "is not a CA certificate", false},
		{"CRL from an unconfigured CA", []string{l.caFile}, []string{l.crl("other.crl", l.other)}, "not a configured CA", false},
		{"no CA", nil, nil, "no CA certificate configured", false},
		{"missing file", []string{filepath.Join(l.dir, "nope.pem")}, nil, "no such file", false},
	} {
		_, err := Load(tc.cas, tc.crls)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.says)
		}
	}
	// A CRL claiming a configured CA's name but signed by another key.
	forged := &issued{cert: l.inter.cert, key: l.other.key}
	if _, err := Load([]string{l.caFile}, []string{l.crl("forged.crl", forged)}); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Fatalf("forged CRL: %v", err)
	}
}

func TestMatchID(t *testing.T) {
	l := newLab(t)
	c := l.issue(leaf("gw-b.example.net"), l.inter, true).cert
	ok := []struct {
		typ  uint8
		data []byte
	}{
		{ike.IDIPv4Addr, netip.MustParseAddr("192.0.2.1").AsSlice()},
		{ike.IDFQDN, []byte("GW-B.example.net")},
		{ike.IDUserFQDN, []byte("ops@gw-b.example.net")},
		{ike.IDDERASN1DN, c.RawSubject},
	}
	for _, tc := range ok {
		if err := MatchID(c, tc.typ, tc.data); err != nil {
			t.Errorf("%s: %v", ike.FormatID(tc.typ, tc.data), err)
		}
	}
	other := l.issue(leaf("gw-c.example.net"), l.inter, true).cert
	bad := []struct {
		typ  uint8
		data []byte
		says string
	}{
		{ike.IDIPv4Addr, netip.MustParseAddr("192.0.2.99").AsSlice(), "ipv4:192.0.2.99 is not among the certificate's IP addresses"},
		{ike.IDFQDN, []byte("gw-c.example.net"), "fqdn:gw-c.example.net is not among the certificate's DNS names [gw-b.example.net]"},
		{ike.IDUserFQDN, []byte("root@gw-b.example.net"), "e-mail addresses"},
		{ike.IDDERASN1DN, other.RawSubject, "certificate subject \"CN=gw-b.example.net"},
		{ike.IDDERASN1DN, []byte{0x30, 0x03, 0x01}, "not a DER distinguished name"},
		{ike.IDKeyID, []byte("key"), "cannot name a certificate"},
	}
	for _, tc := range bad {
		err := MatchID(c, tc.typ, tc.data)
		if !errors.Is(err, ErrIDMismatch) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want %q", ike.FormatID(tc.typ, tc.data), err, tc.says)
		}
	}
}

func TestLoadIdentity(t *testing.T) {
	l := newLab(t)
	for _, ec := range []bool{false, true} {
		gw := l.issue(leaf("gw-a.example.net"), l.inter, ec)
		der, err := stdx509.MarshalPKCS8PrivateKey(gw.key)
		if err != nil {
			t.Fatal(err)
		}
		name := map[bool]string{false: "gw-rsa", true: "gw-ecdsa"}[ec]
		certFile := l.writePEM(name+".pem", "CERTIFICATE", gw.cert.Raw, l.inter.cert.Raw)
		keyFile := l.writePEM(name+".key", "PRIVATE KEY", der)
		id, err := LoadIdentity(certFile, keyFile)
		if err != nil {
			t.Fatalf("ec=%v: %v", ec, err)
		}
		if len(id.Chain) != 2 || !id.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(gw.cert.PublicKey) {
			t.Fatalf("ec=%v: chain %d", ec, len(id.Chain))
		}
		// Another certificate's key.
		otherKey, _ := stdx509.MarshalPKCS8PrivateKey(l.issue(leaf("x"), l.inter, ec).key)
		if _, err := LoadIdentity(certFile, l.writePEM("other.key", "PRIVATE KEY", otherKey)); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("ec=%v, mismatched key: %v", ec, err)
		}
		if err := os.Chmod(keyFile, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(certFile, keyFile); !errors.Is(err, psk.ErrKeyFileMode) {
			t.Fatalf("ec=%v, world-readable key: %v", ec, err)
		}
	}
}

// FuzzVerify: whatever a peer sends as its certificates, Verify answers
// with an error or a chain, and never panics.
func FuzzVerify(f *testing.F) {
	l := newLab(f)
	s, err := Load([]string{l.caFile}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(l.issue(leaf("gw.example.net"), l.inter, true).cert.Raw, l.inter.cert.Raw)
	f.Add([]byte{0x30, 0x82, 0x01}, []byte{})
	f.Fuzz(func(t *testing.T, leafDER, interDER []byte) {
		v, err := s.Verify([][]byte{leafDER, interDER}, now)
		if (v == nil) == (err == nil) {
			t.Fatalf("result %v with error %v", v, err)
		}
	})
}
