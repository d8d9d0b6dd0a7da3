package ike

import (
	"crypto"
	"errors"
	"net/netip"
)

// LocalCredentials is what we authenticate with by signature.
type LocalCredentials struct {
	// Chain is our certificate and any intermediates, DER, ours first:
	// one CERT payload each.
	Chain [][]byte
	// ID is the identity to send (nil: our address); it must name the
	// certificate (RFC 4945 section 3.1), usually its subject DN.
	ID *ID
	// CANames are the subject DNs of the CAs we trust, one CERTREQ each
	// (RFC 4945 section 3.2); none sends one CERTREQ for any CA.
	CANames [][]byte
	// CAKeyIDs are the same CAs' SHA-1 public key hashes, which IKEv2's
	// CERTREQ lists (RFC 7296 section 3.7).
	CAKeyIDs [][]byte
}

// PeerCredentials is a peer's accepted certificate.
type PeerCredentials struct {
	PublicKey crypto.PublicKey
	// Subject names the peer in logs and events (its certificate's DN).
	Subject string
	// Names are every identity the certificate holds, in FormatID's form
	// ("dn:...", "fqdn:...", "ipv4:...", "user:..."): remote.id must be
	// one of them.
	Names []string
}

// ErrNoCertificate: the peer authenticated by signature but sent no
// certificate, and we keep none of its certificates.
var ErrNoCertificate = errors.New("the peer sent no certificate")

func addressID(a netip.Addr) *ID {
	a = a.Unmap()
	if a.Is6() {
		return &ID{IDType: IDIPv6Addr, Data: a.AsSlice()}
	}
	return &ID{IDType: IDIPv4Addr, Data: a.AsSlice()}
}

// credentials fetches our chain, identity and CAs once per exchange.
func (t *mainMode) credentials(sa *IKESA) (*LocalCredentials, error) {
	if t.cred != nil {
		return t.cred, nil
	}
	c, err := sa.m.host.LocalCredentials(sa.Peer, sa.phase1.Auth, t.peerCAs)
	if err != nil {
		return nil, fail("authentication-failed", NotifyAuthenticationFailed, "%s: our certificate for %s: %v", t.label(), MethodName(sa.phase1.Auth), err)
	}
	if len(c.Chain) == 0 {
		return nil, fail("authentication-failed", NotifyAuthenticationFailed, "%s: no certificate of ours for %s", t.label(), MethodName(sa.phase1.Auth))
	}
	t.cred = c
	return c, nil
}

// label names the exchange in errors: main mode's code also serves
// aggressive mode with signatures.
func (t *mainMode) label() string {
	if t.aggressive {
		return "aggressive mode"
	}
	return "main mode"
}

// sigID is the ID we send with a signature: the certificate's (usually
// its subject DN), else our address.
func (t *mainMode) sigID(sa *IKESA) (*ID, error) {
	c, err := t.credentials(sa)
	if err != nil {
		return nil, err
	}
	if c.ID != nil {
		return c.ID, nil
	}
	return addressID(sa.Local.Addr()), nil
}

// addCertReqs asks for a certificate from our CAs (message 3 or 4).
func (t *mainMode) addCertReqs(sa *IKESA, out *msg) error {
	c, err := t.credentials(sa)
	if err != nil {
		return err
	}
	if len(c.CANames) == 0 {
		out.add(&CertReq{CertType: CertX509Sig})
	}
	for _, n := range c.CANames {
		out.add(&CertReq{CertType: CertX509Sig, Authority: n})
	}
	return nil
}

// readCertReqs notes the CAs the peer asked for.
func (t *mainMode) readCertReqs(in *msg) {
	for _, p := range in.all(PayloadCertReq) {
		if cr := p.(*CertReq); cr.CertType == CertX509Sig && len(cr.Authority) > 0 {
			t.peerCAs = append(t.peerCAs, cr.Authority)
		}
	}
}

// addSignature adds IDii or IDir, our CERTs and SIG_I or SIG_R (RFC 2409
// section 5.1).
func (t *mainMode) addSignature(sa *IKESA, out *msg) error {
	id, err := t.sigID(sa)
	if err != nil {
		return err
	}
	out.add(id)
	return t.addCertsAndSig(sa, out, id.appendBody(nil))
}

// addCertsAndSig adds our CERTs and the signature over the hash of our
// ID body idB. Our chain goes even unasked: a peer that holds no
// certificate of ours can then still check us.
func (t *mainMode) addCertsAndSig(sa *IKESA, out *msg, idB []byte) error {
	c, err := t.credentials(sa)
	if err != nil {
		return err
	}
	for _, der := range c.Chain {
		out.add(&Cert{Encoding: CertX509Sig, Data: der})
	}
	sig, err := sa.m.host.Sign(sa.Peer, sa.phase1.Auth, t.hash(sa, sa.Initiator, idB))
	if err != nil {
		return fail("authentication-failed", NotifyAuthenticationFailed, "%s: signing with our %s key: %v", t.label(), MethodName(sa.phase1.Auth), err)
	}
	out.add(&Data{T: PayloadSig, Data: sig})
	return nil
}

// checkSignature validates the peer's certificate and its identity id
// (whose payload body, idB, the hash covers), then its SIG over HASH_I
// or HASH_R.
func (t *mainMode) checkSignature(sa *IKESA, in *msg, id *ID, idB []byte) error {
	sig, ok := in.get(PayloadSig).(*Data)
	if !ok {
		return fail("malformed", NotifyPayloadMalformed, "%s: the peer's authentication message lacks a SIG payload", t.label())
	}
	var chain [][]byte
	for _, p := range in.all(PayloadCert) {
		if c := p.(*Cert); c.Encoding == CertX509Sig {
			chain = append(chain, c.Data)
		}
	}
	who := FormatID(id.IDType, id.Data)
	if len(chain) == 0 {
		return refusedProof(NotifyInvalidCertificate, "%s: %w (ID %s); have it send its certificate", t.label(), ErrNoCertificate, who)
	}
	pc, err := sa.m.host.VerifyPeer(sa.Peer, sa.phase1.Auth, chain, id)
	if err != nil {
		return refusedProof(NotifyInvalidCertificate, "%s: certificate of %s (ID %s) refused: %w", t.label(), sa.Remote.Addr(), who, err)
	}
	if err := VerifyHash(pc.PublicKey, sa.phase1.Auth, t.hash(sa, !sa.Initiator, idB), sig.Data); err != nil {
		return refusedProof(NotifyInvalidSignature, "%s: %s (%s): %w", t.label(), pc.Subject, who, err)
	}
	in.authed = true
	sa.peerID = pc.Subject
	if p := sa.Peer; p.RemoteID != "" && !AnyID(p.RemoteID, append(pc.Names, FormatID(id.IDType, id.Data))) {
		// Any certificate of the CA would do otherwise (RFC 4945 section
		// 3.1 leaves the binding of a certificate to a peer to us).
		return fail("authentication-failed", NotifyInvalidIDInformation, "%s: the certificate of %s (%s) does not name %s, the tunnel's remote.id",
			t.label(), sa.Remote.Addr(), pc.Subject, p.RemoteID)
	}
	return nil
}
