package ikev2

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"testing"

	"github.com/gatehouse/gatehouse/ike"
)

// Every way we sign verifies, by the method it names, with the signer's
// key only, and a changed byte of the signed octets fails.
func TestSignatures(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	octets := []byte("IKE_SA_INIT message, peer's nonce, prf(SK_p, ID)")
	for _, c := range []struct {
		key     crypto.Signer
		method  uint16
		digital bool
		want    uint8
	}{
		{rsaKey, ike.AuthRSASig, false, AuthRSA}, {rsaKey, ike.AuthRSASig, true, AuthDigSig},
		{p256, ike.AuthECDSA256, false, AuthECDSA256}, {p256, ike.AuthECDSA256, true, AuthDigSig},
		{p384, ike.AuthECDSA384, false, AuthECDSA384}, {p384, ike.AuthECDSA384, true, AuthDigSig},
	} {
		auth, err := signAuth(c.method, c.digital, octets, func(scheme string, digest []byte) ([]byte, error) {
			return ike.SignDigest(c.key, scheme, digest)
		})
		if err != nil || auth.Method != c.want {
			t.Fatalf("%s digital %v: method %v, %v", ike.MethodName(c.method), c.digital, auth, err)
		}
		if err := verifyAuth(c.key.Public(), auth, octets); err != nil {
			t.Errorf("%s digital %v: %v", ike.MethodName(c.method), c.digital, err)
		}
		changed := append([]byte(nil), octets...)
		changed[3] ^= 1
		if err := verifyAuth(c.key.Public(), auth, changed); !errors.Is(err, ErrSignature) {
			t.Errorf("%s digital %v: changed octets verify: %v", ike.MethodName(c.method), c.digital, err)
		}
		other := p384.Public()
		if c.key == p384 {
			other = rsaKey.Public()
		}
		if err := verifyAuth(other, auth, octets); !errors.Is(err, ErrSignature) {
			t.Errorf("%s digital %v: another key verifies: %v", ike.MethodName(c.method), c.digital, err)
		}
	}
	if err := verifyAuth(p256.Public(), &Auth{Method: AuthDigSig, Data: []byte{40, 1}}, octets); !errors.Is(err, ErrMalformed) {
		t.Errorf("a cut RFC 7427 signature: %v", err)
	}
}
