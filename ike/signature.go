package ike

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// ErrBadSignature: the SIG payload does not verify with the peer's key.
var ErrBadSignature = errors.New("signature does not verify")

// IsSignature reports whether an auth method authenticates with
// signatures (and so uses SKEYID = prf(Ni_b | Nr_b, g^xy), CERT and CR).
func IsSignature(method uint16) bool {
	switch method {
	case AuthRSASig, AuthECDSA256, AuthECDSA384, AuthECDSA521:
		return true
	}
	return false
}

// SignatureMethod is the auth method a key signs with: RSA signatures for
// RSA keys, the RFC 4754 method of the curve for ECDSA keys.
func SignatureMethod(pub crypto.PublicKey) (uint16, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return AuthRSASig, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return AuthECDSA256, nil
		case elliptic.P384():
			return AuthECDSA384, nil
		case elliptic.P521():
			return AuthECDSA521, nil
		}
		return 0, fmt.Errorf("ECDSA key on curve %s: IKE signs with P-256, P-384 or P-521 only", k.Curve.Params().Name)
	}
	return 0, fmt.Errorf("%T keys cannot sign IKE messages; use RSA or ECDSA", pub)
}

var methodNames = map[uint16]string{AuthPSK: "psk", AuthRSASig: "rsa-sig", AuthECDSA256: "ecdsa-256",
	AuthECDSA384: "ecdsa-384", AuthECDSA521: "ecdsa-521", AuthGSS: "gss-krb5"}

// MethodName names an auth method for logs, and for a plugin's Sign.
func MethodName(method uint16) string {
	if n, ok := methodNames[method]; ok {
		return n
	}
	return fmt.Sprintf("auth%d", method)
}

// MethodByName is MethodName's inverse.
func MethodByName(name string) (uint16, bool) {
	for m, n := range methodNames {
		if n == name {
			return m, true
		}
	}
	return 0, false
}

// SignHash makes the SIG payload's contents over HASH_I or HASH_R (RFC
// 2409 section 5.1). RSA: PKCS #1 v1.5 over the bare hash, without the
// DigestInfo wrapper, as racoon, strongSwan and Windows sign in IKEv1.
// ECDSA: the hash itself is signed and the signature is r and s, each as
// wide as the curve's order (RFC 4754 section 7).
func SignHash(key crypto.Signer, method uint16, hash []byte) ([]byte, error) {
	m, err := SignatureMethod(key.Public())
	if err != nil {
		return nil, err
	}
	if m != method {
		return nil, fmt.Errorf("the negotiated method is %s but our key signs with %s", MethodName(method), MethodName(m))
	}
	if method == AuthRSASig {
		// crypto.Hash(0) tells the signer the input is not a digest to
		// wrap in DigestInfo.
		return key.Sign(rand.Reader, hash, crypto.Hash(0))
	}
	der, err := key.Sign(rand.Reader, hash, crypto.Hash(0))
	if err != nil {
		return nil, err
	}
	var rs struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &rs); err != nil {
		return nil, fmt.Errorf("ECDSA signer returned no DER signature: %w", err)
	}
	n := curveBytes(key.Public().(*ecdsa.PublicKey))
	out := make([]byte, 2*n)
	rs.R.FillBytes(out[:n])
	rs.S.FillBytes(out[n:])
	return out, nil
}

// pkcs1Hashes are SignDigest's PKCS #1 v1.5 schemes, by name.
var pkcs1Hashes = map[string]crypto.Hash{"rsa-pkcs1-sha1": crypto.SHA1, "rsa-pkcs1-sha256": crypto.SHA256, "rsa-pkcs1-sha384": crypto.SHA384,
	"rsa-pkcs1-sha512": crypto.SHA512}

// PKCS1Scheme names SignDigest's PKCS #1 v1.5 scheme for a hash ("" for
// none).
func PKCS1Scheme(h crypto.Hash) string {
	for name, x := range pkcs1Hashes {
		if x == h {
			return name
		}
	}
	return ""
}

// SignDigest signs a digest for IKEv2's AUTH (RFC 7296 section 3.8, RFC
// 7427): "rsa-pkcs1-sha1", "rsa-pkcs1-sha256", "rsa-pkcs1-sha384" and
// "rsa-pkcs1-sha512" are PKCS #1 v1.5 with the DigestInfo of that hash;
// "ecdsa-der" an ECDSA signature as an ASN.1 ECDSA-Sig-Value; IKEv1's
// method names sign as SignHash does.
func SignDigest(key crypto.Signer, scheme string, digest []byte) ([]byte, error) {
	if m, ok := MethodByName(scheme); ok && IsSignature(m) {
		return SignHash(key, m, digest)
	}
	switch h, isRSA := pkcs1Hashes[scheme]; {
	case isRSA:
		if _, ok := key.Public().(*rsa.PublicKey); !ok || len(digest) != h.Size() {
			return nil, fmt.Errorf("%s needs an RSA key and a %d-byte digest", scheme, h.Size())
		}
		return key.Sign(rand.Reader, digest, h)
	case scheme == "ecdsa-der":
		if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
			return nil, fmt.Errorf("%s needs an ECDSA key", scheme)
		}
		return key.Sign(rand.Reader, digest, crypto.Hash(0))
	}
	return nil, fmt.Errorf("unknown signature scheme %q", scheme)
}

// VerifyHash checks a SIG payload against HASH_I or HASH_R with the
// peer's public key, for the negotiated method.
func VerifyHash(pub crypto.PublicKey, method uint16, hash, sig []byte) error {
	m, err := SignatureMethod(pub)
	if err != nil {
		return err
	}
	if m != method {
		return fmt.Errorf("%w: the negotiated method is %s but the peer's certificate holds a key for %s", ErrBadSignature, MethodName(method), MethodName(m))
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, crypto.Hash(0), hash, sig); err != nil {
			return fmt.Errorf("%w (RSA, %d-bit key)", ErrBadSignature, k.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		n := curveBytes(k)
		if len(sig) != 2*n {
			return fmt.Errorf("%w: ECDSA signature of %d bytes, want %d", ErrBadSignature, len(sig), 2*n)
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		if !ecdsa.Verify(k, hash, r, s) {
			return fmt.Errorf("%w (ECDSA %s)", ErrBadSignature, k.Curve.Params().Name)
		}
		return nil
	}
	return fmt.Errorf("%T keys cannot sign IKE messages", pub)
}

func curveBytes(k *ecdsa.PublicKey) int { return (k.Curve.Params().N.BitLen() + 7) / 8 }
