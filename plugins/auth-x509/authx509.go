package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	ghx509 "github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const version = "0.1.0"

// expiryWarning: our own certificate ending within this long earns a
// warning at every (re)configuration.
const expiryWarning = 30 * 24 * time.Hour

// profile is one x509 entry of the configuration: the CAs and CRLs that
// judge peers, and our certificate and key.
type profile struct {
	store *ghx509.Store
	id    *ghx509.Identity
	chain [][]byte // id.Chain as DER
	idDN  []byte   // our subject, the ID we send (ID_DER_ASN1_DN)
}

// x509Auth serves IKE certificate authentication: peers' chains checked
// against the profile's CAs and CRLs, our signatures made with its key.
type x509Auth struct {
	sdk.UnimplementedAuthenticator
	log hclog.Logger
	now func() time.Time

	mu       sync.RWMutex
	profiles map[string]*profile
}

var _ sdk.Authenticator = (*x509Auth)(nil)

func newX509Auth(log hclog.Logger) *x509Auth { return &x509Auth{log: log, now: time.Now} }

func (a *x509Auth) Info(context.Context) (sdk.AuthenticatorInfo, error) {
	return sdk.AuthenticatorInfo{
		Info:    sdk.Info{Name: "auth-x509", Version: version, Description: "IKE authentication with X.509 certificates (RSA and ECDSA signatures)"},
		Methods: []sdk.AuthMethod{sdk.MethodX509},
	}, nil
}

// Configure loads every profile: CA files, CRL files (read again on every
// reload, which is how new CRLs take effect), our certificate and key. Any
// error refuses the whole new configuration and keeps the old one.
func (a *x509Auth) Configure(_ context.Context, cfg sdk.AuthConfig) ([]string, error) {
	profiles := map[string]*profile{}
	var warnings []string
	now := a.now()
	for _, pc := range cfg.X509 {
		store, err := ghx509.Load(pc.CAFiles, pc.CRLFiles)
		if err != nil {
			return nil, a.refuse(pc.Name, err)
		}
		id, err := ghx509.LoadIdentity(pc.CertFile, pc.KeyFile)
		if err != nil {
			return nil, a.refuse(pc.Name, err)
		}
		method, err := ike.SignatureMethod(id.Key.Public())
		if err != nil {
			return nil, a.refuse(pc.Name, fmt.Errorf("%s: %w", pc.CertFile, err))
		}
		leaf := id.Chain[0]
		if len(leaf.Subject.ToRDNSequence()) == 0 {
			return nil, a.refuse(pc.Name, fmt.Errorf("%s: our certificate has an empty subject; IKE identifies us by it", pc.CertFile))
		}
		p := &profile{store: store, id: id, chain: id.DER(), idDN: leaf.RawSubject}
		switch {
		case now.After(leaf.NotAfter):
			warnings = append(warnings, fmt.Sprintf("%s: our certificate %q expired on %s; peers will refuse it", pc.Name, leaf.Subject, leaf.NotAfter.UTC().Format(time.DateOnly)))
		case leaf.NotAfter.Sub(now) < expiryWarning:
			warnings = append(warnings, fmt.Sprintf("%s: our certificate %q expires on %s; renew it", pc.Name, leaf.Subject, leaf.NotAfter.UTC().Format(time.DateOnly)))
		}
		if _, err := store.Verify(p.chain, now); err != nil {
			// Not fatal: the peers may trust another CA than we do.
			warnings = append(warnings, fmt.Sprintf("%s: our own certificate does not verify against our CA files (%v); peers with the same CAs will refuse it", pc.Name, err))
		}
		for _, s := range store.StaleCRLs(now) {
			warnings = append(warnings, fmt.Sprintf("%s: %s; fetch a new one and reload", pc.Name, s))
		}
		profiles[pc.Name] = p
		a.log.Info("certificate profile loaded", "profile", pc.Name, "subject", leaf.Subject.String(),
			"method", ike.MethodName(method), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339),
			"cas", len(store.CANames()), "crls", len(pc.CRLFiles))
	}
	a.mu.Lock()
	a.profiles = profiles
	a.mu.Unlock()
	for _, w := range warnings {
		a.log.Warn(w)
	}
	if len(cfg.PSK) > 0 || len(cfg.Kerberos) > 0 {
		warnings = append(warnings, "auth-x509 serves certificates only; preshared keys and Kerberos need their own plugins")
	}
	return warnings, nil
}

func (a *x509Auth) refuse(name string, err error) error {
	a.log.Error("configuration refused; keeping the previous one", "profile", name, "error", err)
	return fmt.Errorf("%w: %s: %v", sdk.ErrInvalid, name, err)
}

func (a *x509Auth) profile(name string) (*profile, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.profiles == nil {
		return nil, fmt.Errorf("%w: not configured yet", sdk.ErrUnavailable)
	}
	p, ok := a.profiles[name]
	if !ok {
		return nil, fmt.Errorf("%w: no certificate profile %q", sdk.ErrNotFound, name)
	}
	return p, nil
}

// VerifyCertificate checks the peer's chain and that its ID payload names
// the certificate. A refusal is an answer (OK false, with the reason an
// operator can act on), not an error.
func (a *x509Auth) VerifyCertificate(_ context.Context, req sdk.VerifyCertRequest) (sdk.VerifyCertResult, error) {
	p, err := a.profile(req.Profile)
	if err != nil {
		return sdk.VerifyCertResult{}, err
	}
	var id *ike.ID
	if req.PeerID != nil {
		id = &ike.ID{IDType: req.PeerID.Type, Data: req.PeerID.Data}
	}
	v, err := p.store.VerifyPeer(req.Chain, id, a.now())
	if err != nil {
		// The reason names the certificate.
		a.log.Warn("peer certificate refused", "profile", req.Profile, "reason", err.Error())
		r := sdk.VerifyCertResult{Reason: err.Error()}
		if v != nil {
			r.Subject = v.Subject()
		}
		return r, nil
	}
	pub, err := x509.MarshalPKIXPublicKey(v.Leaf.PublicKey)
	if err != nil {
		return sdk.VerifyCertResult{Subject: v.Subject(), Reason: fmt.Sprintf("the certificate's key cannot be used: %v", err)}, nil
	}
	return sdk.VerifyCertResult{OK: true, Subject: v.Subject(), PublicKey: pub}, nil
}

// Sign signs for IKE: IKEv1's HASH_I or HASH_R, algorithm being the
// method's name (ike.MethodName); or an IKEv2 AUTH digest, algorithm
// being a scheme of ike.SignDigest (rsa-pkcs1-sha256, ecdsa-der...).
func (a *x509Auth) Sign(_ context.Context, name string, data []byte, algorithm string) ([]byte, error) {
	p, err := a.profile(name)
	if err != nil {
		return nil, err
	}
	sig, err := ike.SignDigest(p.id.Key, algorithm, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sdk.ErrInvalid, err)
	}
	return sig, nil
}

// LocalCertificate returns our chain, our subject as the ID to send, and
// our CAs for the certificate requests the core sends.
func (a *x509Auth) LocalCertificate(_ context.Context, name string, caNames [][]byte) (sdk.LocalCert, error) {
	p, err := a.profile(name)
	if err != nil {
		return sdk.LocalCert{}, err
	}
	if len(caNames) > 0 && !issuedUnder(p.id.Chain, caNames) {
		// We send our certificate anyway: the peer may still accept it.
		a.log.Warn("the peer asks for certificates from CAs that did not issue ours", "profile", name,
			"ours_from", p.id.Chain[len(p.id.Chain)-1].Issuer.String())
	}
	return sdk.LocalCert{Chain: p.chain, ID: &sdk.Identity{Type: ike.IDDERASN1DN, Data: p.idDN}, CANames: p.store.CANames(),
		CAKeyIDs: p.store.CAKeyIDs()}, nil
}

// issuedUnder reports whether any certificate of our chain was issued by
// one of the named CAs.
func issuedUnder(chain []*x509.Certificate, names [][]byte) bool {
	for _, c := range chain {
		for _, n := range names {
			if string(c.RawIssuer) == string(n) {
				return true
			}
		}
	}
	return false
}
