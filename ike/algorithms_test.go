package ike

import (
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/esp"
)

func TestParseProposal(t *testing.T) {
	p, err := ParseProposal("AES256-sha256-modp2048")
	if err != nil || p.String() != "aes256-sha256-modp2048" || p.Group.Number != 14 || p.Cipher.Attribute != 7 || p.Cipher.KeyBits != 256 || p.Hash.Attribute != 4 || p.Legacy() {
		t.Fatalf("ParseProposal = %+v, %v", p, err)
	}
	for text, group := range map[string]uint16{"aes128-sha1-ecp256": 19, "aes256-sha384-ecp384": 20, "aes128-sha512-curve25519": 31, "aes256-sha256-modp4096": 16} {
		if p, err := ParseProposal(text); err != nil || p.Group.Number != group {
			t.Errorf("%s: %+v, %v", text, p, err)
		}
	}
	if p, _ := ParseProposal("3des-sha1-modp1024"); !p.Legacy() {
		t.Error("3des/modp1024 not legacy")
	}
	for in, want := range map[string]error{"des-sha1-modp2048": ErrWeakAlgorithm, "aes128-md5-modp2048": ErrWeakAlgorithm, "aes128-sha1-modp768": ErrWeakAlgorithm, "aes192-sha1-modp2048": ErrUnknownAlgorithm, "aes128-sha1-ecp521": ErrUnknownAlgorithm,
		"aes128gcm16-sha256-ecp256": ErrUnknownAlgorithm} { // an AEAD cipher IKEv1 has no number for
		if _, err := ParseProposal(in); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
	}
	for _, in := range []string{"", "aes128-sha1", "aes128-sha1-modp2048-x"} {
		if _, err := ParseProposal(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// What a refused quick mode says names everything: the suite, the
// encapsulation and the PFS group, no numbers.
func TestPhase2Names(t *testing.T) {
	s, _ := esp.ParseSuite("aes256-sha1")
	if got := (Phase2{Suite: s, Encap: EncapUDPTransport}).String(); got != "aes256-sha1 (udp-transport, no PFS)" {
		t.Errorf("%q", got)
	}
	if got := (Phase2{Suite: s, Encap: EncapTunnel, Group: 14}).String(); got != "aes256-sha1 (tunnel, PFS modp2048)" {
		t.Errorf("%q", got)
	}
	if got := EncapName(7); got != "encapsulation mode 7" {
		t.Errorf("%q", got)
	}
	gcm, _ := esp.ParseSuite("aes128gcm16")
	offer := Phase2Offer([]esp.Suite{s}, 0x1234, EncapUDPTransport, 0, 0, 0)
	_, _, err := SelectPhase2(offer, []esp.Suite{gcm}, func(uint16) bool { return true }, 0)
	if err == nil || !strings.Contains(err.Error(), "peer offered aes256-sha1 (udp-transport, no PFS)") {
		t.Fatalf("%v", err)
	}
}
