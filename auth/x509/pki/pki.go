// Package pki makes the certificates a lab or a small site needs to run
// IKE with certificates: a CA, gateway and client certificates, and CRLs.
// It backs `gatehouse pki`; tests use it to build their PKIs. A site with
// its own CA does not need it.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"time"

	ghx509 "github.com/gatehouse/gatehouse/auth/x509"
)

// KeyTypes are the key kinds NewKey makes; IKE signs with RSA (method 3)
// or ECDSA on P-256 or P-384 (RFC 4754 methods 9 and 10).
var KeyTypes = []string{"rsa", "rsa3072", "ecdsa", "ecdsa384"}

// NewKey makes a private key: rsa (2048 bits), rsa3072, ecdsa (P-256) or
// ecdsa384 (P-384).
func NewKey(kind string) (crypto.Signer, error) {
	switch kind {
	case "rsa", "rsa2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "ecdsa", "ecdsa256", "p256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ecdsa384", "p384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	return nil, fmt.Errorf("key type %q: want one of rsa, rsa3072, ecdsa, ecdsa384", kind)
}

// Authority is a CA that issues certificates and CRLs.
type Authority struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Request describes a certificate to issue. Zero NotBefore means an hour
// ago (room for clocks that lag); zero NotAfter, NotBefore plus a year.
type Request struct {
	CommonName          string
	Organization        string
	DNSNames, Emails    []string
	IPs                 []netip.Addr
	NotBefore, NotAfter time.Time
	// CA makes an intermediate (or, with a nil parent, a root) CA.
	CA  bool
	Key crypto.Signer
}

func (r *Request) template() (*x509.Certificate, error) {
	if r.CommonName == "" {
		return nil, errors.New("a certificate needs a common name")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	nb, na := r.NotBefore, r.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	if na.IsZero() {
		na = nb.Add(365 * 24 * time.Hour)
	}
	if !na.After(nb) {
		return nil, fmt.Errorf("certificate %q would end (%s) before it starts (%s)", r.CommonName, na.Format(time.RFC3339), nb.Format(time.RFC3339))
	}
	t := &x509.Certificate{SerialNumber: serial, NotBefore: nb, NotAfter: na, DNSNames: r.DNSNames, EmailAddresses: r.Emails,
		Subject: pkix.Name{CommonName: r.CommonName}}
	if r.Organization != "" {
		t.Subject.Organization = []string{r.Organization}
	}
	for _, a := range r.IPs {
		t.IPAddresses = append(t.IPAddresses, net.IP(a.Unmap().AsSlice()))
	}
	if r.CA {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		// RFC 4945 section 5.1.3.2: digitalSignature (or nonRepudiation)
		// for IKE; strongSwan refuses certificates without it.
		t.KeyUsage = x509.KeyUsageDigitalSignature
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	return t, nil
}

// NewRoot makes a self-signed root CA.
func NewRoot(r Request) (*Authority, error) {
	r.CA = true
	t, err := r.template()
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, r.Key.Public(), r.Key)
	if err != nil {
		return nil, fmt.Errorf("root CA %q: %w", r.CommonName, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: c, Key: r.Key}, nil
}

// Issue signs a certificate for r.Key.
func (a *Authority) Issue(r Request) (*x509.Certificate, error) {
	t, err := r.template()
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, a.Cert, r.Key.Public(), a.Key)
	if err != nil {
		return nil, fmt.Errorf("certificate %q: %w", r.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// CRL signs a revocation list of the given certificates (merged with the
// entries of prev, a CRL of ours to update; nil for a new one), valid
// from now for validity. Its number is one more than prev's.
func (a *Authority) CRL(prev *x509.RevocationList, revoke []*x509.Certificate, now time.Time, validity time.Duration) ([]byte, error) {
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(validity)}
	seen := map[string]bool{}
	if prev != nil {
		if err := prev.CheckSignatureFrom(a.Cert); err != nil {
			return nil, fmt.Errorf("the CRL to update is not this CA's: %w", err)
		}
		if prev.Number != nil {
			tmpl.Number = new(big.Int).Add(prev.Number, big.NewInt(1))
		}
		for _, e := range prev.RevokedCertificateEntries {
			seen[e.SerialNumber.String()] = true
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, e)
		}
	}
	for _, c := range revoke {
		if err := c.CheckSignatureFrom(a.Cert); err != nil {
			return nil, fmt.Errorf("%q was not issued by %q, which cannot revoke it", c.Subject, a.Cert.Subject)
		}
		if !seen[c.SerialNumber.String()] {
			seen[c.SerialNumber.String()] = true
			tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
				x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now})
		}
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, a.Cert, a.Key)
}

// WriteCerts writes certificates as PEM, readable by all (they are public).
func WriteCerts(path string, certs ...*x509.Certificate) error {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return writeNew(path, b, 0o644)
}

// WriteKey writes a private key as PKCS #8 PEM that only its owner can
// read, as the auth-x509 plugin requires.
func WriteKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

// WriteCRL writes a CRL as PEM.
func WriteCRL(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// writeNew refuses to overwrite: a CA key written over by mistake cannot
// be got back.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadAuthority reads a CA certificate and its key, for issuing.
func LoadAuthority(certFile, keyFile string) (*Authority, error) {
	id, err := ghx509.ReadIdentity(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if !id.Chain[0].IsCA {
		return nil, fmt.Errorf("%s: %q is not a CA certificate", certFile, id.Chain[0].Subject)
	}
	return &Authority{Cert: id.Chain[0], Key: id.Key}, nil
}
