package ike

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testPKI is a CA and leaf certificates made with crypto/x509.
type testPKI struct {
	t      *testing.T
	ca     *x509.Certificate
	caKey  crypto.Signer
	serial int64
}

func newTestPKI(t *testing.T, cn string) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_900_000_000, 0),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return &testPKI{t: t, ca: ca, caKey: key, serial: 1}
}

// leaf issues a certificate for cn with a key of kind rsa, p256 or p384.
func (p *testPKI) leaf(cn, kind string) (*LocalCredentials, crypto.Signer) {
	p.t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case "p256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn, Organization: []string{"Gatehouse test"}},
		NotBefore: time.Unix(1_700_000_000, 0), NotAfter: time.Unix(1_900_000_000, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		DNSNames: []string{cn + ".example.net"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &LocalCredentials{Chain: [][]byte{der}, ID: &ID{IDType: IDDERASN1DN, Data: c.RawSubject}, CANames: [][]byte{p.ca.RawSubject}}, key
}

// certPair is a pair whose gateways authenticate with certificates from
// one CA, keys of the given kind, and the method it implies.
func certPair(t *testing.T, kind string) *pair {
	p := newPair(t, true)
	pki := newTestPKI(t, "Gatehouse Test CA")
	for _, h := range []*testHost{p.ha, p.hb} {
		h.cred, h.key = pki.leaf("gw-"+strings.ToLower(h.name), kind)
		h.ca = pki.ca
		h.psk = "" // a PSK lookup would fail the test
	}
	m, err := SignatureMethod(p.ha.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	p.pa.Auth, p.pb.Auth = []uint16{m}, []uint16{m}
	return p
}

// The cleartext messages 3 and 4 with signatures carry a CERTREQ naming
// the CA.
var msg3Sig = []PayloadType{PayloadKE, PayloadNonce, PayloadCertReq, PayloadNATD, PayloadNATD}

// toMessage5Sig runs main mode with signatures up to A's message 5.
func (p *pair) toMessage5Sig() {
	p.t.Helper()
	if err := p.a.Initiate("to-b"); err != nil {
		p.t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, msg1...)
	p.step("B", ExchangeMain, false, msg2...)
	p.step("A", ExchangeMain, false, msg3Sig...) // HDR, KE, Ni, CR, NAT-D, NAT-D
	p.step("B", ExchangeMain, false, msg3Sig...)
	p.step("A", ExchangeMain, true) // HDR*, IDii, CERT, SIG_I
}

func (p *pair) mainModeSig() {
	p.t.Helper()
	p.toMessage5Sig()
	p.step("B", ExchangeMain, true) // HDR*, IDir, CERT, SIG_R
}

// checkCertSAs: each side has one IKE SA up with method, naming the
// other's certificate subject, and an up event that says both.
func (p *pair) checkCertSAs(method string) {
	p.t.Helper()
	for _, side := range []struct {
		m    *Manager
		h    *testHost
		peer string
	}{{p.a, p.ha, "gw-b"}, {p.b, p.hb, "gw-a"}} {
		sas := side.m.SAs()
		if len(sas) != 1 || !sas[0].Established || sas[0].Auth != method || !strings.Contains(sas[0].PeerID, "CN="+side.peer) {
			p.t.Fatalf("%s: SAs %+v, events %+v", side.h.name, sas, side.h.events)
		}
		if ev := side.h.event(EventIKEUp); ev == nil || !strings.Contains(ev.Message, method) || !strings.Contains(ev.Message, side.peer) {
			p.t.Fatalf("%s: the up event should name the method and the peer's subject: %+v", side.h.name, side.h.events)
		}
	}
}

func TestMainModeCertificates(t *testing.T) {
	for _, c := range []struct{ kind, method string }{{"rsa", "rsa-sig"}, {"p256", "ecdsa-256"}, {"p384", "ecdsa-384"}} {
		t.Run(c.kind, func(t *testing.T) {
			p := certPair(t, c.kind)
			p.mainModeSig()
			p.checkCertSAs(c.method)
			p.quickMode()
			p.checkChildren("aes128gcm16", true)
		})
	}
}

// TestCertificateFromUnknownCA: B refuses A's certificate with an event
// that says why, and tells A, which can read the notify (signature keys do
// not depend on the peer's credentials).
func TestCertificateFromUnknownCA(t *testing.T) {
	p := certPair(t, "p256")
	other := newTestPKI(t, "Someone Else's CA")
	p.ha.cred, p.ha.key = other.leaf("gw-a", "p256")
	p.toMessage5Sig()
	ev := p.hb.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "not issued by a configured CA") ||
		!strings.Contains(ev.Message, "CN=gw-a") {
		t.Fatalf("B: want an authentication-failed event naming the certificate: %+v", p.hb.events)
	}
	p.step("B", ExchangeInformational, true) // N(INVALID-CERTIFICATE)
	if ev := p.ha.event(EventNegotiationErr); ev == nil || !strings.Contains(ev.Message, "INVALID-CERTIFICATE") {
		t.Fatalf("A: want the peer's INVALID-CERTIFICATE: %+v", p.ha.events)
	}
	p.expire()
	if len(p.b.SAs()) != 0 {
		t.Fatal("B kept the failed SA")
	}
}

// TestForgedSignature: a certificate B trusts, but a signature made with
// another key, is refused as INVALID-SIGNATURE.
func TestForgedSignature(t *testing.T) {
	p := certPair(t, "rsa")
	_, p.ha.key = newTestPKI(t, "unused").leaf("x", "rsa")
	p.toMessage5Sig()
	ev := p.hb.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "signature does not verify") {
		t.Fatalf("B: %+v", p.hb.events)
	}
}

// TestOrderedAuthMethods: A offers its methods in its order; B takes the
// first of its own that A offered.
func TestOrderedAuthMethods(t *testing.T) {
	p := certPair(t, "p256")
	p.ha.psk, p.hb.psk = "correct horse battery staple", "correct horse battery staple"
	p.pa.Auth = []uint16{AuthPSK, AuthECDSA256}
	p.pb.Auth = []uint16{AuthECDSA256, AuthPSK}
	p.mainModeSig()
	if sas := p.b.SAs(); len(sas) != 1 || sas[0].Auth != "ecdsa-256" {
		t.Fatalf("B should pick its first method: %+v", sas)
	}

	// B without certificates: PSK is the only method both do.
	q := newPair(t, true)
	q.pa.Auth = []uint16{AuthRSASig, AuthPSK}
	q.pb.Auth = []uint16{AuthECDSA256, AuthPSK}
	q.mainMode()
	if sas := q.a.SAs(); len(sas) != 1 || sas[0].Auth != "psk" {
		t.Fatalf("A: %+v", sas)
	}

	// Nothing in common: the refusal names both sides' methods.
	r := newPair(t, true)
	r.pa.Auth, r.pb.Auth = []uint16{AuthRSASig}, []uint16{AuthPSK}
	if err := r.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	r.step("A", ExchangeMain, false, msg1...)
	if ev := r.hb.event(EventNegotiationErr); ev == nil || !strings.Contains(ev.Message, "rsa-sig") || !strings.Contains(ev.Message, "we accept psk") {
		t.Fatalf("B: %+v", r.hb.events)
	}
}

func TestOfferOrder(t *testing.T) {
	props := mustProposals(t, "aes256-sha256-modp2048", "aes128-sha1-ecp256")
	sa := Phase1Offer(props, []uint16{AuthECDSA256, AuthPSK}, time.Hour)
	var got []string
	for _, tr := range sa.Proposals[0].Transforms {
		p, err := parsePhase1(tr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.String()+"/"+MethodName(p.Auth))
	}
	want := "aes256-sha256-modp2048/ecdsa-256 aes128-sha1-ecp256/ecdsa-256 aes256-sha256-modp2048/psk aes128-sha1-ecp256/psk"
	if strings.Join(got, " ") != want {
		t.Fatalf("offer %v\nwant  %s", got, want)
	}
}

// TestRSASignatureHasNoDigestInfo: the RSA signature opens to PKCS #1
// type 1 padding around the bare hash, as IKEv1 peers expect.
func TestRSASignatureHasNoDigestInfo(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hash := sha1.Sum([]byte("HASH_I stands in here"))
	sig, err := SignHash(key, AuthRSASig, hash[:])
	if err != nil {
		t.Fatal(err)
	}
	m := new(big.Int).Exp(new(big.Int).SetBytes(sig), big.NewInt(int64(key.E)), key.N).FillBytes(make([]byte, key.Size()))
	want := append([]byte{0, 1}, bytes.Repeat([]byte{0xff}, key.Size()-3-len(hash))...)
	want = append(append(want, 0), hash[:]...)
	if !bytes.Equal(m, want) {
		t.Fatalf("opened signature\n%x\nwant\n%x", m, want)
	}
	if err := VerifyHash(&key.PublicKey, AuthRSASig, hash[:], sig); err != nil {
		t.Fatal(err)
	}
	hash[0] ^= 1
	if err := VerifyHash(&key.PublicKey, AuthRSASig, hash[:], sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered hash: %v", err)
	}
}

// TestECDSASignatureFormat: r and s, each the curve's width (RFC 4754
// section 7), over the hash as given.
func TestECDSASignatureFormat(t *testing.T) {
	for _, c := range []struct {
		curve  elliptic.Curve
		method uint16
		size   int
	}{{elliptic.P256(), AuthECDSA256, 64}, {elliptic.P384(), AuthECDSA384, 96}, {elliptic.P521(), AuthECDSA521, 132}} {
		key, err := ecdsa.GenerateKey(c.curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		hash := sha1.Sum([]byte("HASH_R"))
		sig, err := SignHash(key, c.method, hash[:])
		if err != nil || len(sig) != c.size {
			t.Fatalf("%s: %d bytes, %v", c.curve.Params().Name, len(sig), err)
		}
		r, s := new(big.Int).SetBytes(sig[:c.size/2]), new(big.Int).SetBytes(sig[c.size/2:])
		if !ecdsa.Verify(&key.PublicKey, hash[:], r, s) {
			t.Fatalf("%s: r|s does not verify over the bare hash", c.curve.Params().Name)
		}
		if err := VerifyHash(&key.PublicKey, c.method, hash[:], sig); err != nil {
			t.Fatal(err)
		}
		if err := VerifyHash(&key.PublicKey, c.method, hash[:], sig[1:]); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("short signature: %v", err)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := SignHash(key, AuthRSASig, make([]byte, 20)); err == nil {
		t.Fatal("a P-256 key signed for rsa-sig")
	}
	if err := VerifyHash(&key.PublicKey, AuthECDSA384, make([]byte, 20), make([]byte, 96)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("method and key disagree: %v", err)
	}
}

// FuzzVerifyHash: whatever a peer puts in its SIG payload is refused
// with ErrBadSignature, never a panic.
func FuzzVerifyHash(f *testing.F) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	hash := make([]byte, 20)
	s1, _ := SignHash(rsaKey, AuthRSASig, hash)
	s2, _ := SignHash(ecKey, AuthECDSA256, hash)
	f.Add(s1, false)
	f.Add(s2, true)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, sig []byte, ec bool) {
		pub, method := crypto.PublicKey(&rsaKey.PublicKey), uint16(AuthRSASig)
		if ec {
			pub, method = &ecKey.PublicKey, AuthECDSA256
		}
		err := VerifyHash(pub, method, hash, sig)
		if err != nil && !errors.Is(err, ErrBadSignature) {
			t.Fatalf("error outside ErrBadSignature: %v", err)
		}
		if err == nil && !bytes.Equal(sig, s1) && !bytes.Equal(sig, s2) {
			// ECDSA signatures are not unique; only check that it
			// opens for a valid one.
			if !ec {
				t.Fatalf("a different RSA signature verified: %x", sig)
			}
		}
	})
}

// aggressiveCertPair: aggressive mode with certificates, no identities
// configured (the certificates carry them).
func aggressiveCertPair(t *testing.T, kind string) *pair {
	p := certPair(t, kind)
	p.pa.Aggressive, p.pb.Aggressive = true, true
	return p
}

// TestAggressiveModeCertificates: RFC 2409 section 5.1's aggressive mode
// with signatures: A asks for B's certificate in message 1, B signs in 2
// and asks back, A signs in 3 (encrypted); both see the other's subject.
func TestAggressiveModeCertificates(t *testing.T) {
	for _, c := range []struct{ kind, method string }{{"rsa", "rsa-sig"}, {"p256", "ecdsa-256"}} {
		t.Run(c.kind, func(t *testing.T) {
			p := aggressiveCertPair(t, c.kind)
			if err := p.a.Initiate("to-b"); err != nil {
				t.Fatal(err)
			}
			p.step("A", ExchangeAggressive, false, PayloadSA, PayloadKE, PayloadNonce, PayloadID, PayloadCertReq,
				PayloadVendorID, PayloadVendorID, PayloadVendorID, PayloadVendorID)
			p.step("B", ExchangeAggressive, false, PayloadSA, PayloadKE, PayloadNonce, PayloadID, PayloadCert, PayloadSig, PayloadCertReq,
				PayloadVendorID, PayloadNATD, PayloadNATD, PayloadVendorID)
			if len(p.wire) != 2 { // A's third message and its quick mode
				t.Fatalf("%d messages in flight", len(p.wire))
			}
			d := p.wire[0]
			p.wire = p.wire[1:]
			p.b.Receive(d.b, d.to, d.from)
			p.checkCertSAs(c.method)
			p.quickMode()
			p.checkChildren("aes128gcm16", true)
		})
	}
}

// TestAggressiveModeCertificateRefused: B refuses A's certificate from an
// unknown CA in message 3, and a forged SIG_R is caught by A in message 2.
func TestAggressiveModeCertificateRefused(t *testing.T) {
	p := aggressiveCertPair(t, "p256")
	p.ha.cred, p.ha.key = newTestPKI(t, "Someone Else's CA").leaf("gw-a", "p256")
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeAggressive, false)
	p.step("B", ExchangeAggressive, false)
	d := p.wire[0]
	p.wire = p.wire[:0]
	p.b.Receive(d.b, d.to, d.from)
	if ev := p.hb.event(EventNegotiationErr); ev == nil || ev.Reason != "authentication-failed" ||
		!strings.Contains(ev.Message, "aggressive mode: certificate of") || !strings.Contains(ev.Message, "not issued by a configured CA") {
		t.Fatalf("B: %+v", p.hb.events)
	}
	p.expire()
	if len(p.b.SAs()) != 0 {
		t.Fatal("B kept the SA")
	}

	q := aggressiveCertPair(t, "rsa")
	_, q.hb.key = newTestPKI(t, "unused").leaf("x", "rsa")
	if err := q.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	q.step("A", ExchangeAggressive, false)
	q.step("B", ExchangeAggressive, false)
	if ev := q.ha.event(EventNegotiationErr); ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "signature does not verify") {
		t.Fatalf("A: %+v", q.ha.events)
	}
}

// TestAggressiveModeCertificateWrongID: with the peer's identity
// configured, a certificate that does not name it is refused once its
// signature has verified (message 3), and the peer is told.
func TestAggressiveModeCertificateWrongID(t *testing.T) {
	p := aggressiveCertPair(t, "p256")
	p.pb.RemoteID = "fqdn:impostor.example.net"
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeAggressive, false)
	p.step("B", ExchangeAggressive, false)
	d := p.wire[0]
	p.wire = p.wire[:0]
	p.b.Receive(d.b, d.to, d.from)
	if ev := p.hb.event(EventNegotiationErr); ev == nil || !strings.Contains(ev.Message, "does not name fqdn:impostor.example.net") {
		t.Fatalf("B: %+v", p.hb.events)
	}
	if len(p.b.SAs()) != 0 {
		t.Fatal("B kept the SA")
	}
}

// TestRemoteIDPinsCertificate: remote.id in main mode must be the peer
// certificate's subject or one of its alternative names; any other
// certificate of the same CA is refused after its signature verified, and
// the peer hears INVALID-ID-INFORMATION.
func TestRemoteIDPinsCertificate(t *testing.T) {
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"fqdn:gw-a.example.net", true},
		{"dn:cn=GW-A, o=Gatehouse test", true},
		{"dn:CN=gw-a,O=Gatehouse test", true},
		{"fqdn:gw-c.example.net", false},
		{"dn:CN=gw-c,O=Gatehouse test", false},
		{"ipv4:192.0.2.1", false}, // the address, but not in the certificate
	} {
		t.Run(c.id, func(t *testing.T) {
			p := certPair(t, "p256")
			id, err := ParseID(c.id)
			if err != nil {
				t.Fatal(err)
			}
			p.pb.RemoteID = id
			if c.ok {
				p.mainModeSig()
				p.checkCertSAs("ecdsa-256")
				return
			}
			p.toMessage5Sig()
			ev := p.hb.event(EventNegotiationErr)
			if ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "does not name "+id) {
				t.Fatalf("B: %+v", p.hb.events)
			}
			p.step("B", ExchangeInformational, true) // N(INVALID-ID-INFORMATION), under the chain A has
			if ev := p.ha.event(EventNegotiationErr); ev == nil || !strings.Contains(ev.Message, "INVALID-ID-INFORMATION") {
				t.Fatalf("A: %+v", p.ha.events)
			}
			if len(p.a.SAs()) != 0 || len(p.b.SAs()) != 0 {
				t.Fatal("failed SAs left behind")
			}
		})
	}
}
