// Package x509 checks IKE peers' certificates: chains to configured CAs,
// validity dates, revocation by CRL files, and whether the peer's ID
// payload names the certificate (RFC 4945 section 3: subject DN, SAN IP
// address, SAN DNS name, SAN e-mail). It also loads our own certificate
// and private key. The auth-x509 plugin wraps it; IKE signatures use the
// loaded key.
package x509

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	stdx509 "crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/auth/secretfile"
	"github.com/gatehouse/gatehouse/ike"
)

// Why a certificate is refused; callers test with errors.Is and log the
// wrapped message, which names the certificate and the dates or serial.
var (
	ErrExpired     = errors.New("certificate expired")
	ErrNotYetValid = errors.New("certificate not yet valid")
	ErrUnknownCA   = errors.New("certificate not issued by a configured CA")
	ErrRevoked     = errors.New("certificate revoked")
	ErrIDMismatch  = errors.New("the peer's ID does not match its certificate")
	ErrMalformed   = errors.New("malformed certificate")
	ErrKeyMismatch = errors.New("private key does not match the certificate")
)

// Store holds the configured CAs and their CRLs.
type Store struct {
	roots         *stdx509.CertPool
	intermediates *stdx509.CertPool
	cas           []*stdx509.Certificate
	// crls by the raw subject of the CA that signed them.
	crls map[string][]*stdx509.RevocationList
}

// Load reads CA certificates and CRLs (PEM or DER). Self-signed
// certificates become trust anchors, others intermediates. Every CRL must
// be signed by one of the CAs: an unverifiable CRL is an error, not
// something to skip, since skipping it would accept revoked peers.
func Load(caFiles, crlFiles []string) (*Store, error) {
	s := &Store{roots: stdx509.NewCertPool(), intermediates: stdx509.NewCertPool(), crls: map[string][]*stdx509.RevocationList{}}
	for _, f := range caFiles {
		certs, err := ReadCerts(f)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			if !c.IsCA {
				return nil, fmt.Errorf("CA file %s: %q is not a CA certificate (basicConstraints CA:FALSE)", f, c.Subject)
			}
			if bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil {
				s.roots.AddCert(c)
			} else {
				s.intermediates.AddCert(c)
			}
			s.cas = append(s.cas, c)
		}
	}
	if len(s.cas) == 0 {
		return nil, errors.New("no CA certificate configured")
	}
	for _, f := range crlFiles {
		crl, err := ReadCRL(f)
		if err != nil {
			return nil, err
		}
		issuer := s.caFor(crl.RawIssuer)
		if issuer == nil {
			return nil, fmt.Errorf("CRL %s: issued by %q, which is not a configured CA", f, crl.Issuer)
		}
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("CRL %s: signature does not verify with %q: %w", f, issuer.Subject, err)
		}
		s.crls[string(crl.RawIssuer)] = append(s.crls[string(crl.RawIssuer)], crl)
	}
	return s, nil
}

func (s *Store) caFor(rawSubject []byte) *stdx509.Certificate {
	for _, c := range s.cas {
		if bytes.Equal(c.RawSubject, rawSubject) {
			return c
		}
	}
	return nil
}

// Pool holds every configured CA, as trust anchors: for a TLS server's
// ClientCAs, with Verify checking the chain and the CRLs after it.
func (s *Store) Pool() *stdx509.CertPool {
	p := stdx509.NewCertPool()
	for _, c := range s.cas {
		p.AddCert(c)
	}
	return p
}

// CANames are the DER subjects of the configured CAs, for certificate
// requests (RFC 4945 section 3.2.7: a CERTREQ names a CA by its DN).
func (s *Store) CANames() [][]byte {
	out := make([][]byte, 0, len(s.cas))
	for _, c := range s.cas {
		out = append(out, c.RawSubject)
	}
	return out
}

// CAKeyIDs are the SHA-1 hashes of the configured CAs' public key info,
// as IKEv2's certificate requests name CAs (RFC 7296 section 3.7).
func (s *Store) CAKeyIDs() [][]byte {
	out := make([][]byte, 0, len(s.cas))
	for _, c := range s.cas {
		h := sha1.Sum(c.RawSubjectPublicKeyInfo)
		out = append(out, h[:])
	}
	return out
}

// StaleCRLs names the CRLs whose next update has passed at now: they
// still revoke what they list, but newer revocations are unknown.
func (s *Store) StaleCRLs(now time.Time) []string {
	var out []string
	for _, list := range s.crls {
		for _, crl := range list {
			if !crl.NextUpdate.IsZero() && now.After(crl.NextUpdate) {
				out = append(out, fmt.Sprintf("CRL of %q (next update was due %s)", crl.Issuer, crl.NextUpdate.UTC().Format(time.RFC3339)))
			}
		}
	}
	return out
}

// Verified is an accepted peer certificate and the chain to its anchor.
type Verified struct {
	Leaf  *stdx509.Certificate
	Chain []*stdx509.Certificate // leaf first, anchor last
}

// Subject is the leaf's subject DN, for logs and audit events.
func (v *Verified) Subject() string { return v.Leaf.Subject.String() }

// Verify checks a peer's certificates (DER, the end-entity certificate
// first, then any intermediates it sent) at time now.
func (s *Store) Verify(chain [][]byte, now time.Time) (*Verified, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: no certificate", ErrMalformed)
	}
	leaf, err := stdx509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Dates first: crypto/x509 folds them into one generic error, and an
	// operator must see which date is wrong.
	if err := checkDates(leaf, now); err != nil {
		return nil, err
	}
	inter := s.intermediates.Clone()
	for i, der := range chain[1:] {
		c, err := stdx509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: intermediate %d: %v", ErrMalformed, i+1, err)
		}
		inter.AddCert(c)
	}
	// IKE certificates often carry no extended key usage, or ipsecIKE
	// (RFC 4945 section 5.1.3.12 says not to require one).
	chains, err := leaf.Verify(stdx509.VerifyOptions{Roots: s.roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []stdx509.ExtKeyUsage{stdx509.ExtKeyUsageAny}})
	if err != nil {
		var ua stdx509.UnknownAuthorityError
		var inv stdx509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			return nil, fmt.Errorf("%w: %q issued by %q", ErrUnknownCA, leaf.Subject, leaf.Issuer)
		case errors.As(err, &inv) && inv.Reason == stdx509.Expired:
			// An intermediate or the CA itself is out of its dates.
			return nil, fmt.Errorf("%w: in the chain of %q: %v", ErrExpired, leaf.Subject, err)
		}
		return nil, fmt.Errorf("certificate %q refused: %w", leaf.Subject, err)
	}
	v := &Verified{Leaf: leaf, Chain: chains[0]}
	for i, c := range v.Chain[:len(v.Chain)-1] { // the anchor is trusted as configured
		if err := s.checkRevoked(c, v.Chain[i+1]); err != nil {
			return nil, err
		}
	}
	return v, nil
}

func checkDates(c *stdx509.Certificate, now time.Time) error {
	switch {
	case now.After(c.NotAfter):
		return fmt.Errorf("%w: %q expired %s", ErrExpired, c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(c.NotBefore):
		return fmt.Errorf("%w: %q is valid from %s (check both clocks)", ErrNotYetValid, c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
	}
	return nil
}

func (s *Store) checkRevoked(c, issuer *stdx509.Certificate) error {
	for _, crl := range s.crls[string(issuer.RawSubject)] {
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber != nil && e.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return fmt.Errorf("%w: %q (serial %x) on %q's CRL since %s", ErrRevoked, c.Subject, c.SerialNumber,
					issuer.Subject, e.RevocationTime.UTC().Format(time.RFC3339))
			}
		}
	}
	return nil
}

// VerifyPeer is Verify, then MatchID of the peer's ID payload (nil: no
// ID to check): what IKE asks of a peer's certificate. On an ID mismatch
// it returns the verified certificate with the error, for the logs.
func (s *Store) VerifyPeer(chain [][]byte, id *ike.ID, now time.Time) (*Verified, error) {
	v, err := s.Verify(chain, now)
	if err != nil {
		return nil, err
	}
	if id != nil {
		if err := MatchID(v.Leaf, id.IDType, id.Data); err != nil {
			return v, err
		}
	}
	return v, nil
}

// DER is the chain as DER, ours first: what goes in CERT payloads.
func (id *Identity) DER() [][]byte {
	out := make([][]byte, 0, len(id.Chain))
	for _, c := range id.Chain {
		out = append(out, c.Raw)
	}
	return out
}

// MatchID checks that an ISAKMP ID payload (RFC 2407 section 4.6.2) names
// the certificate, as RFC 4945 section 3.1 asks: an IP address or DNS
// name or e-mail address among the subjectAltNames, or the subject DN
// itself.
func MatchID(c *stdx509.Certificate, idType uint8, data []byte) error {
	id := ike.FormatID(idType, data)
	switch idType {
	case ike.IDIPv4Addr, ike.IDIPv6Addr:
		a, ok := netip.AddrFromSlice(data)
		if ok {
			for _, ip := range c.IPAddresses {
				if b, ok := netip.AddrFromSlice(ip); ok && b.Unmap() == a.Unmap() {
					return nil
				}
			}
		}
		return fmt.Errorf("%w: %s is not among the certificate's IP addresses %v", ErrIDMismatch, id, c.IPAddresses)
	case ike.IDFQDN:
		for _, n := range c.DNSNames {
			if strings.EqualFold(n, string(data)) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is not among the certificate's DNS names %v", ErrIDMismatch, id, c.DNSNames)
	case ike.IDUserFQDN:
		for _, n := range c.EmailAddresses {
			if strings.EqualFold(n, string(data)) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is not among the certificate's e-mail addresses %v", ErrIDMismatch, id, c.EmailAddresses)
	case ike.IDDERASN1DN:
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(data, &rdn); err != nil || len(rest) > 0 {
			return fmt.Errorf("%w: the ID is not a DER distinguished name", ErrIDMismatch)
		}
		if bytes.Equal(data, c.RawSubject) {
			return nil
		}
		var name pkix.Name
		name.FillFromRDNSequence(&rdn)
		if name.String() == c.Subject.String() { // same names, other string encodings
			return nil
		}
		return fmt.Errorf("%w: ID %q, certificate subject %q", ErrIDMismatch, name.String(), c.Subject)
	}
	return fmt.Errorf("%w: ID type %d (%s) cannot name a certificate; use an address, FQDN, e-mail or DN", ErrIDMismatch, idType, id)
}

// CertMethod is the IKE auth method the key of a certificate file (its
// first certificate) signs with; it needs no private key.
func CertMethod(certFile string) (uint16, error) {
	certs, err := ReadCerts(certFile)
	if err != nil {
		return 0, err
	}
	if len(certs) == 0 {
		return 0, fmt.Errorf("certificate file %s holds no certificate", certFile)
	}
	m, err := ike.SignatureMethod(certs[0].PublicKey)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", certFile, err)
	}
	return m, nil
}

// Identity is our certificate chain and its private key.
type Identity struct {
	Chain []*stdx509.Certificate // ours first
	Key   crypto.Signer
}

// LoadIdentity reads our certificate file (ours first, then any
// intermediates to send) and the private key, which group and others
// must not be able to read, and checks that they belong together.
func LoadIdentity(certFile, keyFile string) (*Identity, error) {
	return readIdentity(certFile, keyFile, secretfile.Read)
}

// ReadIdentity is LoadIdentity without the key file's checks, for tools
// that read a key the operator keeps elsewhere (gatehouse pki and its CA
// key).
func ReadIdentity(certFile, keyFile string) (*Identity, error) {
	return readIdentity(certFile, keyFile, os.ReadFile)
}

func readIdentity(certFile, keyFile string, read func(string) ([]byte, error)) (*Identity, error) {
	chain, err := ReadCerts(certFile)
	if err != nil {
		return nil, err
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("certificate file %s holds no certificate", certFile)
	}
	b, err := read(keyFile)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("private key %s: %w", keyFile, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("%w: %s and %s (%q)", ErrKeyMismatch, keyFile, certFile, chain[0].Subject)
	}
	return &Identity{Chain: chain, Key: key}, nil
}

func parseKey(b []byte) (crypto.Signer, error) {
	der := b
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Headers["Proc-Type"] != "" {
			return nil, errors.New("encrypted PEM keys are not supported; store it unencrypted with mode 0600")
		}
		der = blk.Bytes
	}
	if k, err := stdx509.ParsePKCS8PrivateKey(der); err == nil {
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("%T keys are not supported (RSA or ECDSA)", k)
	}
	if k, err := stdx509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := stdx509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not an RSA or ECDSA private key (PKCS#8, PKCS#1 or SEC 1, PEM or DER)")
}

// ReadCerts reads every certificate of a PEM file, or one DER certificate.
func ReadCerts(path string) ([]*stdx509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := parseCerts(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return certs, nil
}

func parseCerts(b []byte) ([]*stdx509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		c, err := stdx509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("neither PEM nor a DER certificate: %w", err)
		}
		return []*stdx509.Certificate{c}, nil
	}
	var out []*stdx509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue // keys and parameters may share the file
		}
		c, err := stdx509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block")
	}
	return out, nil
}

// ReadCRL reads a CRL, PEM or DER.
func ReadCRL(path string) (*stdx509.RevocationList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(b); blk != nil {
		if blk.Type != "X509 CRL" {
			return nil, fmt.Errorf("CRL %s: PEM block %q, want X509 CRL", path, blk.Type)
		}
		b = blk.Bytes
	}
	crl, err := stdx509.ParseRevocationList(b)
	if err != nil {
		return nil, fmt.Errorf("CRL %s: %w", path, err)
	}
	return crl, nil
}
