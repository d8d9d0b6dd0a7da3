package ikev2

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ike/alg"
	"github.com/gatehouse/gatehouse/internal/must"
)

func mustProposals(t *testing.T, names ...string) []Proposal {
	return must.ParseAll(t, ParseProposal, names...)
}

// Names go in and come out the same; each suite's transforms carry the
// IKEv2 numbers (RFC 7296 3.3.2, RFC 4868, RFC 5282, RFC 7634).
func TestParseProposal(t *testing.T) {
	for name, want := range map[string][]Transform{
		"aes256-sha256-modp2048": {WithKeyBits(TransformEncr, 12, 256), {Type: TransformPRF, ID: 5}, {Type: TransformInteg, ID: 12}, {Type: TransformDH, ID: 14}},
		"aes128-sha1-prfsha256-ecp256": {WithKeyBits(TransformEncr, 12, 128), {Type: TransformPRF, ID: 5}, {Type: TransformInteg, ID: 2},
			{Type: TransformDH, ID: 19}},
		"aes128gcm16-prfsha256-ecp256":          {WithKeyBits(TransformEncr, 20, 128), {Type: TransformPRF, ID: 5}, {Type: TransformDH, ID: 19}},
		"chacha20poly1305-prfsha512-curve25519": {{Type: TransformEncr, ID: 28}, {Type: TransformPRF, ID: 7}, {Type: TransformDH, ID: 31}},
		"3des-sha1-modp1024":                    {{Type: TransformEncr, ID: 3}, {Type: TransformPRF, ID: 2}, {Type: TransformInteg, ID: 2}, {Type: TransformDH, ID: 2}},
	} {
		p, err := ParseProposal(strings.ToUpper(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.String() != name || !reflect.DeepEqual(p.Transforms(), want) {
			t.Errorf("%s: %s, %+v", name, p, p.Transforms())
		}
	}
	for in, want := range map[string]error{
		"aes128gcm16-ecp256":          nil, // needs a PRF
		"aes256-sha256":               nil,
		"aes256-sha256-sha1-ecp256":   nil,
		"aes256-md5-modp2048":         alg.ErrWeakAlgorithm,
		"aes256-sha256-prfmd5-ecp256": alg.ErrWeakAlgorithm,
		"aes192-sha256-modp2048":      alg.ErrUnknownAlgorithm,
	} {
		_, err := ParseProposal(in)
		if err == nil || (want != nil && !errors.Is(err, want)) {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
	}
	if _, err := ParseProposal("aes128gcm16-ecp256"); err == nil || !strings.Contains(err.Error(), "aes128gcm16-prfsha256-ecp256") {
		t.Errorf("the AEAD refusal does not say what to write: %v", err)
	}
}

// strongSwan's default offer style: one proposal per cipher kind, many
// transforms of each type as alternatives.
func swanOffer() []SAProposal {
	return []SAProposal{
		{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{
			WithKeyBits(TransformEncr, 12, 128), WithKeyBits(TransformEncr, 12, 256),
			{Type: TransformInteg, ID: 12}, {Type: TransformInteg, ID: 2},
			{Type: TransformPRF, ID: 5}, {Type: TransformPRF, ID: 2},
			{Type: TransformDH, ID: 31}, {Type: TransformDH, ID: 19}, {Type: TransformDH, ID: 14}}},
		{Num: 2, Protocol: ProtoIKE, Transforms: []Transform{
			WithKeyBits(TransformEncr, 20, 128), WithKeyBits(TransformEncr, 20, 256), {Type: TransformEncr, ID: 28},
			{Type: TransformPRF, ID: 5}, {Type: TransformDH, ID: 31}, {Type: TransformDH, ID: 19}}},
	}
}

// The responder takes its own first suite the peer offers, answers with
// the peer's proposal number and one transform of each type, and says
// what both sides had when nothing matches.
func TestChoose(t *testing.T) {
	ours := mustProposals(t, "aes256gcm16-prfsha256-ecp256", "aes256-sha256-modp2048")
	got, suite, err := Choose(swanOffer(), ours, nil)
	if err != nil || suite.String() != "aes256gcm16-prfsha256-ecp256" || got.Num != 2 || !reflect.DeepEqual(got.Transforms, ours[0].Transforms()) {
		t.Fatalf("chose %+v %s %v", got, suite, err)
	}
	got, suite, err = Choose(swanOffer()[:1], ours, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil || suite.String() != "aes256-sha256-modp2048" || got.Num != 1 || len(got.SPI) != 8 || len(got.Transforms) != 4 {
		t.Fatalf("chose %+v %s %v", got, suite, err)
	}
	// An AEAD proposal that also names an integrity algorithm mixes what
	// RFC 7296 3.3 keeps apart: refused.
	mixed := swanOffer()[1:]
	mixed[0].Transforms = append(mixed[0].Transforms, Transform{Type: TransformInteg, ID: 12})
	if _, _, err := Choose(mixed, ours[:1], nil); !errors.Is(err, ErrNoProposalChosen) {
		t.Errorf("mixed AEAD proposal: %v", err)
	}
	// A transform with an attribute we do not know spoils its proposal.
	odd := swanOffer()[:1]
	odd[0].Transforms[1].Attrs = append(odd[0].Transforms[1].Attrs, Attribute{Type: 99, TV: true, Value: 1})
	if _, _, err := Choose(odd, ours[1:], nil); !errors.Is(err, ErrNoProposalChosen) {
		t.Errorf("unknown attribute: %v", err)
	}
	_, _, err = Choose(swanOffer()[:1], mustProposals(t, "aes256-sha512-ecp384"), nil)
	if !errors.Is(err, ErrNoProposalChosen) || !strings.Contains(err.Error(), "#1 aes128/aes256 sha256/sha1 prfsha256/prfsha1 curve25519/ecp256/modp2048") ||
		!strings.Contains(err.Error(), "we accept aes256-sha512-ecp384") {
		t.Errorf("refusal: %v", err)
	}
}
