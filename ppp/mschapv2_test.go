package ppp

import (
	"encoding/hex"
	"strings"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func h16(s string) (a [16]byte) { copy(a[:], h(s)); return }

// TestRFC2759Vectors is RFC 2759 section 9.2.
func TestRFC2759Vectors(t *testing.T) {
	auth := h16("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
	peer := h16("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
	hash := NTPasswordHash("clientPass")
	if hex.EncodeToString(hash[:]) != "44ebba8d5312b8d611474411f56989ae" {
		t.Fatalf("PasswordHash %x", hash)
	}
	if ch := ChallengeHash(peer, auth, "User"); hex.EncodeToString(ch[:]) != "d02e4386bce91226" {
		t.Fatalf("Challenge %x", ch)
	}
	nt := GenerateNTResponse(auth, peer, "User", hash)
	if hex.EncodeToString(nt[:]) != "82309ecd8d708b5ea08faa3981cd83544233114a3d85d6df" {
		t.Fatalf("NT-Response %x", nt)
	}
	if hh := HashNTPasswordHash(hash); hex.EncodeToString(hh[:]) != "41c00c584bd2d91c4017a2a12fa59f3f" {
		t.Fatalf("PasswordHashHash %x", hh)
	}
	const want = "S=407A5589115FD0D6209F510FE9C04566932CDA56"
	if got := GenerateAuthenticatorResponse(hash, nt, peer, auth, "User"); got != want {
		t.Fatalf("AuthenticatorResponse %s", got)
	}
	if !CheckAuthenticatorResponse(hash, nt, peer, auth, "User", want) || CheckAuthenticatorResponse(hash, nt, peer, auth, "User", "S=00") {
		t.Fatal("CheckAuthenticatorResponse")
	}
	if !VerifyNTResponse(auth, peer, `CORP\User`, hash, nt[:]) {
		t.Fatal("a DOMAIN\\user name must hash as the bare user")
	}
	wrong := NTPasswordHash("clientpass")
	if VerifyNTResponse(auth, peer, "User", wrong, nt[:]) {
		t.Fatal("a wrong password verified")
	}
}

// TestRFC3079Vectors is RFC 3079 section 3.5.3 (128-bit keys).
func TestRFC3079Vectors(t *testing.T) {
	hash := NTPasswordHash("clientPass")
	var nt [24]byte
	copy(nt[:], h("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"))
	m := MasterKey(hash, nt)
	if hex.EncodeToString(m[:]) != "fdece3717a8c838cb388e527ae3cdd31" {
		t.Fatalf("MasterKey %x", m)
	}
	// The RFC's SendStartKey128 is the server's send key, the client's
	// receive key.
	send := AsymmetricStartKey(m, true, true)
	if hex.EncodeToString(send[:]) != "8b7cdc149b993a1ba118cb153f56dccb" {
		t.Fatalf("server send key %x", send)
	}
	if c := AsymmetricStartKey(m, false, false); c != send {
		t.Fatal("the client's receive key is not the server's send key")
	}
	if AsymmetricStartKey(m, true, false) != AsymmetricStartKey(m, false, true) || AsymmetricStartKey(m, true, false) == send {
		t.Fatal("client send / server receive keys wrong")
	}
}

func TestMSCHAPv2ResponseValue(t *testing.T) {
	r := MSCHAPv2Response{PeerChallenge: h16("21402324255E262A28295F2B3A337C7E"), Flags: 0}
	copy(r.NTResponse[:], h("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF"))
	got, err := ParseMSCHAPv2Response(r.Bytes())
	if err != nil || got != r {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := ParseMSCHAPv2Response(make([]byte, 48)); err == nil {
		t.Fatal("48 bytes accepted")
	}
}
