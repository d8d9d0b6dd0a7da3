package ikev2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/ike"
)

// Signatures in IKE_AUTH (RFC 7296 section 3.8): RSA (method 1, PKCS #1
// v1.5 with SHA-1), ECDSA (methods 9 to 11, RFC 4754: r and s over the
// curve's hash), and RFC 7427's Digital Signature (method 14), whose data
// names its algorithm: we sign that way, with SHA2, whenever the peer
// announced SIGNATURE_HASH_ALGORITHMS, and verify any of the three.

var (
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// sigAlgs are the RFC 7427 algorithms we verify: the hash, and whether
// the key is RSA (PKCS #1 v1.5) or ECDSA (an ASN.1 signature).
var sigAlgs = []struct {
	oid  asn1.ObjectIdentifier
	hash crypto.Hash
	rsa  bool
}{
	{oidSHA256WithRSA, crypto.SHA256, true}, {oidSHA384WithRSA, crypto.SHA384, true}, {oidSHA512WithRSA, crypto.SHA512, true},
	{oidSHA1WithRSA, crypto.SHA1, true},
	{oidECDSAWithSHA256, crypto.SHA256, false}, {oidECDSAWithSHA384, crypto.SHA384, false}, {oidECDSAWithSHA512, crypto.SHA512, false},
}

// ErrSignature: the peer's AUTH does not verify with its certificate's
// key, or uses an algorithm we do not take.
var ErrSignature = errors.New("signature does not verify")

// curveHash is the hash RFC 4754 pairs with an ECDSA method.
func curveHash(method uint16) crypto.Hash {
	switch method {
	case ike.AuthECDSA384:
		return crypto.SHA384
	case ike.AuthECDSA521:
		return crypto.SHA512
	}
	return crypto.SHA256
}

// signAuth makes our AUTH by signature: method (IKEv1's numbering, as the
// host and plugins know it) says our key's kind; sign signs a digest by a
// scheme the auth plugin knows ("rsa-pkcs1-sha256", "ecdsa-der", or
// IKEv1's method names for r and s).
func signAuth(method uint16, digital bool, octets []byte, sign func(scheme string, digest []byte) ([]byte, error)) (*Auth, error) {
	digest := func(h crypto.Hash) []byte { d := h.New(); d.Write(octets); return d.Sum(nil) }
	var oid asn1.ObjectIdentifier
	var sig []byte
	var err error
	switch {
	case method == ike.AuthRSASig && digital:
		oid = oidSHA256WithRSA
		sig, err = sign("rsa-pkcs1-sha256", digest(crypto.SHA256))
	case method == ike.AuthRSASig:
		if sig, err = sign("rsa-pkcs1-sha1", digest(crypto.SHA1)); err != nil {
			return nil, err
		}
		return &Auth{Method: AuthRSA, Data: sig}, nil
	case ike.IsSignature(method) && digital: // ECDSA
		h := curveHash(method)
		oid = map[crypto.Hash]asn1.ObjectIdentifier{crypto.SHA256: oidECDSAWithSHA256, crypto.SHA384: oidECDSAWithSHA384, crypto.SHA512: oidECDSAWithSHA512}[h]
		sig, err = sign("ecdsa-der", digest(h))
	case ike.IsSignature(method):
		if sig, err = sign(ike.MethodName(method), digest(curveHash(method))); err != nil {
			return nil, err
		}
		return &Auth{Method: uint8(method), Data: sig}, nil
	default:
		return nil, fmt.Errorf("%s is not a signature method", ike.MethodName(method))
	}
	if err != nil {
		return nil, err
	}
	ai := pkix.AlgorithmIdentifier{Algorithm: oid}
	if method == ike.AuthRSASig {
		ai.Parameters = asn1.NullRawValue // RFC 7427 appendix A: RSA's parameters are NULL
	}
	der, err := asn1.Marshal(ai)
	if err != nil {
		return nil, err
	}
	// Section 3: the AlgorithmIdentifier's length, it, then the signature.
	return &Auth{Method: AuthDigSig, Data: append(append([]byte{byte(len(der))}, der...), sig...)}, nil
}

// verifyAuth checks the peer's AUTH by signature with its certificate's
// key.
func verifyAuth(pub crypto.PublicKey, auth *Auth, octets []byte) error {
	digest := func(h crypto.Hash) []byte { d := h.New(); d.Write(octets); return d.Sum(nil) }
	switch auth.Method {
	case AuthRSA:
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: RSA signature, %T key", ErrSignature, pub)
		}
		if rsa.VerifyPKCS1v15(k, crypto.SHA1, digest(crypto.SHA1), auth.Data) != nil {
			return fmt.Errorf("%w (RSA, %d-bit key)", ErrSignature, k.N.BitLen())
		}
		return nil
	case AuthECDSA256, AuthECDSA384, AuthECDSA521:
		m := uint16(auth.Method)
		k, ok := pub.(*ecdsa.PublicKey)
		want := map[uint16]elliptic.Curve{ike.AuthECDSA256: elliptic.P256(), ike.AuthECDSA384: elliptic.P384(), ike.AuthECDSA521: elliptic.P521()}[m]
		if !ok || k.Curve != want {
			return fmt.Errorf("%w: %s signature, but the certificate's key is not on its curve", ErrSignature, ike.MethodName(m))
		}
		if err := ike.VerifyHash(pub, m, digest(curveHash(m)), auth.Data); err != nil {
			return fmt.Errorf("%w: %v", ErrSignature, err)
		}
		return nil
	case AuthDigSig:
		if len(auth.Data) < 1 || len(auth.Data) < 1+int(auth.Data[0]) {
			return fmt.Errorf("%w: %w: digital signature of %d bytes", ErrSignature, ErrMalformed, len(auth.Data))
		}
		var ai pkix.AlgorithmIdentifier
		rest, err := asn1.Unmarshal(auth.Data[1:1+int(auth.Data[0])], &ai)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("%w: %w: its AlgorithmIdentifier does not decode", ErrSignature, ErrMalformed)
		}
		sig := auth.Data[1+int(auth.Data[0]):]
		for _, a := range sigAlgs {
			if !a.oid.Equal(ai.Algorithm) {
				continue
			}
			switch k := pub.(type) {
			case *rsa.PublicKey:
				if a.rsa && rsa.VerifyPKCS1v15(k, a.hash, digest(a.hash), sig) == nil {
					return nil
				}
			case *ecdsa.PublicKey:
				if !a.rsa && ecdsa.VerifyASN1(k, digest(a.hash), sig) {
					return nil
				}
			}
			return fmt.Errorf("%w (%v with a %T key)", ErrSignature, ai.Algorithm, pub)
		}
		return fmt.Errorf("%w: signature algorithm %v is not one we take (RSA PKCS #1 v1.5 or ECDSA, with SHA2)", ErrSignature, ai.Algorithm)
	}
	return fmt.Errorf("%w: AUTH method %d", ErrSignature, auth.Method)
}
