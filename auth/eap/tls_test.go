package eap

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

// testCA issues TLS certificates.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "EAP test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{c, key, pool}
}

// issue makes a certificate for name, with an RSA key (so the server's
// flight is fragmented) for the server usage or an ECDSA one.
func (ca *testCA) issue(t *testing.T, name string, server bool) tls.Certificate {
	t.Helper()
	var key crypto.Signer
	usage := x509.ExtKeyUsageClientAuth
	if server {
		key, _ = rsa.GenerateKey(rand.Reader, 2048)
		usage = x509.ExtKeyUsageServerAuth
	} else {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// A user with a certificate of the CA logs in: both sides end with the
// same MSK (RFC 5216's key export), the server knows the user by the
// certificate, and the server's flight went in fragments.
func TestEAPTLS(t *testing.T) {
	ca := newCA(t)
	server := NewTLSServer(&tls.Config{Certificates: []tls.Certificate{ca.issue(t, "gw.example.net", true)}, ClientCAs: ca.pool}, rand.Reader)
	peer := NewTLSPeer("alice@example.net", &tls.Config{Certificates: []tls.Certificate{ca.issue(t, "alice", false)}, RootCAs: ca.pool,
		ServerName: "gw.example.net"})
	rounds, _ := run(t, server, peer)
	if !server.Succeeded() || peer.Err() != nil || !bytes.Equal(server.MSK(), peer.MSK()) || len(server.MSK()) != 64 || server.User() != "alice" {
		t.Fatalf("server %v %v user %q, peer %v; MSKs %x %x", server.Succeeded(), server.Err(), server.User(), peer.Err(), server.MSK(), peer.MSK())
	}
	if rounds < 5 {
		t.Errorf("%d rounds: the server's certificate flight was not fragmented", rounds)
	}
}

// A client certificate from another CA is refused, and so is a client
// without one.
func TestEAPTLSRefusals(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	srvCert := ca.issue(t, "gw.example.net", true)
	for _, certs := range [][]tls.Certificate{{other.issue(t, "mallory", false)}, nil} {
		server := NewTLSServer(&tls.Config{Certificates: []tls.Certificate{srvCert}, ClientCAs: ca.pool}, rand.Reader)
		peer := NewTLSPeer("mallory", &tls.Config{Certificates: certs, RootCAs: ca.pool, ServerName: "gw.example.net"})
		run(t, server, peer)
		if server.Succeeded() || !errors.Is(server.Err(), ErrRejected) || peer.MSK() != nil {
			t.Fatalf("server %v %v, peer %v", server.Succeeded(), server.Err(), peer.Err())
		}
	}
}
