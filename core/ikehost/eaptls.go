package ikehost

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	stdx509 "crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/gatehouse/gatehouse/auth/eap"
	"github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/ikev2"
)

// EAP-TLS (RFC 5216) for IKEv2 road warriors (remote_access.ikev2.eap:
// tls): TLS 1.2 with the server's certificate of remote_access.auth,
// whose key stays in the x509 plugin (pluginSigner), and a user
// certificate checked against the CAs and CRLs of eap_tls (or the x509
// entry's). The user is the certificate's e-mail address or common name.

// eapTLS makes the EAP-TLS sessions for the road-warrior peer p.
func eapTLS(h *host, p *ikev2.Peer, ra *config.RemoteAccess) (func(netip.AddrPort) ikev2.EAPSession, error) {
	var x *config.X509
	for _, a := range ra.Auth {
		if a.X509 != nil {
			x = a.X509
			break
		}
	}
	if x == nil {
		return nil, errors.New("EAP-TLS needs an x509 entry in remote_access.auth")
	}
	chain, err := x509.ReadCerts(x.CertFile)
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS: %w", err)
	}
	method, err := ike.SignatureMethod(chain[0].PublicKey)
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS: %s: %w", x.CertFile, err)
	}
	cas, crls := x.CAFiles, x.CRLFiles
	if c := ra.IKEv2.EAPTLS; c != nil {
		cas, crls = c.CAFiles, c.CRLFiles
	}
	store, err := x509.Load(cas, crls)
	if err != nil {
		return nil, fmt.Errorf("EAP-TLS: %w", err)
	}
	cert := tls.Certificate{PrivateKey: &pluginSigner{h: h, peer: p.PeerConfig, method: method, pub: chain[0].PublicKey}, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	// The plugin signs PKCS #1 v1.5 and ECDSA, not RSA-PSS.
	if _, ok := chain[0].PublicKey.(*rsa.PublicKey); ok {
		cert.SupportedSignatureAlgorithms = []tls.SignatureScheme{tls.PKCS1WithSHA256, tls.PKCS1WithSHA384, tls.PKCS1WithSHA512}
	} else {
		cert.SupportedSignatureAlgorithms = []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256, tls.ECDSAWithP384AndSHA384, tls.ECDSAWithP521AndSHA512}
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: store.Pool(),
		// CRLs, which crypto/tls does not read.
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*stdx509.Certificate) error {
			_, err := store.Verify(raw, time.Now())
			return err
		}}
	return func(netip.AddrPort) ikev2.EAPSession { return eap.NewTLSServer(cfg, rand.Reader) }, nil
}

// pluginSigner signs TLS handshakes with the key the x509 plugin holds
// for the road-warrior peer: never in the core.
type pluginSigner struct {
	h      *host
	peer   *ike.PeerConfig
	method uint16
	pub    crypto.PublicKey
}

func (s *pluginSigner) Public() crypto.PublicKey { return s.pub }

func (s *pluginSigner) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	scheme := "ecdsa-der"
	switch s.pub.(type) {
	case *rsa.PublicKey:
		if _, pss := opts.(*rsa.PSSOptions); pss {
			return nil, errors.New("RSA-PSS is not offered")
		}
		if scheme = ike.PKCS1Scheme(opts.HashFunc()); scheme == "" {
			return nil, fmt.Errorf("no RSA scheme for %v", opts.HashFunc())
		}
	case *ecdsa.PublicKey:
	default:
		return nil, fmt.Errorf("a %T key", s.pub)
	}
	return s.h.SignDigest(s.peer, s.method, scheme, digest)
}
