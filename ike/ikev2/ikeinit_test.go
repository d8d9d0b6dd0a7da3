package ikev2

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ike/alg"
)

var (
	iAddr = netip.MustParseAddrPort("192.0.2.1:500")
	rAddr = netip.MustParseAddrPort("192.0.2.2:500")
)

// initPair runs IKE_SA_INIT between an initiator with its suites and a
// responder with its own, message by message through the codec. seen is
// where the responder sees the request come from (another address than
// iAddr: a NAT). It returns both sides' tasks (the responder's nil if it
// refused) and the initiator's outcome of each round.
type initPair struct {
	t       *testing.T
	i       *ikeInit
	r       *ikeInit
	rOurs   []Proposal
	cookies *Cookies
	seen    netip.AddrPort
	reqs    []*Message
}

func (p *initPair) round() error {
	p.t.Helper()
	reqB, err := (&Message{Header: Header{SPIi: p.i.spii, Exchange: ExchangeIKESAInit, Flags: FlagInitiator},
		Payloads: p.i.request(iAddr, rAddr)}).Encode()
	if err != nil {
		p.t.Fatal(err)
	}
	req, err := Decode(reqB)
	if err != nil {
		p.t.Fatalf("request: %v", err)
	}
	p.reqs = append(p.reqs, req)
	r, ps, err := respond(p.rOurs, req, rAddr, p.seen, spi(0x77), p.cookies, rand.Reader)
	h := Header{SPIi: req.SPIi, Exchange: ExchangeIKESAInit, Flags: FlagResponse}
	var ne *NotifyError
	switch {
	case errors.As(err, &ne):
		ps = []Payload{&Notify{Kind: ne.Kind, Data: ne.Data}}
	case err != nil:
		p.t.Fatalf("responder: %v", err)
	default:
		h.SPIr, p.r = r.spir, r
	}
	respB, err := (&Message{Header: h, Payloads: ps}).Encode()
	if err != nil {
		p.t.Fatal(err)
	}
	resp, err := Decode(respB)
	if err != nil {
		p.t.Fatalf("response: %v", err)
	}
	return p.i.response(resp, iAddr, rAddr)
}

func newInitPair(t *testing.T, iOurs, rOurs []Proposal) *initPair {
	i, err := newInitiator(iOurs, spi(0x11), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &initPair{t: t, i: i, rOurs: rOurs, seen: iAddr}
}

func sameKeys(t *testing.T, p *initPair) {
	t.Helper()
	if p.r == nil || p.i.keys == nil || p.r.keys == nil {
		t.Fatal("no keys")
	}
	if !reflect.DeepEqual(p.i.keys, p.r.keys) || len(p.i.keys.D) == 0 || p.i.spir != p.r.spir || p.i.chosen.String() != p.r.chosen.String() {
		t.Fatalf("the sides disagree: %s and %s", p.i.chosen, p.r.chosen)
	}
	if !p.i.dh.Wiped() || !p.r.dh.Wiped() {
		t.Fatal("a Diffie-Hellman private value outlived the exchange")
	}
}

// Both sides derive the same seven keys for the suite the responder
// picks from the initiator's offer, in the responder's order, and learn
// each other's fragmentation and RFC 7427 support.
func TestIKESAInit(t *testing.T) {
	for _, c := range []struct{ i, r []string }{
		{[]string{"aes256-sha256-ecp256"}, []string{"aes256-sha256-ecp256"}},
		{[]string{"aes128gcm16-prfsha256-ecp256", "aes256-sha384-ecp384"}, []string{"aes256-sha384-ecp384", "aes128gcm16-prfsha256-ecp256"}},
		{[]string{"chacha20poly1305-prfsha256-curve25519"}, []string{"chacha20poly1305-prfsha256-curve25519"}},
	} {
		p := newInitPair(t, mustProposals(t, c.i...), mustProposals(t, c.r...))
		err := p.round()
		if errors.Is(err, ErrRetry) { // the responder prefers a suite in another group
			err = p.round()
		}
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		sameKeys(t, p)
		if p.i.chosen.String() != c.r[0] {
			t.Errorf("%v: chose %s", c, p.i.chosen)
		}
		if !p.i.fragmentation || !p.r.fragmentation || !p.i.signatureHashes || p.i.nat.PeerBehind || p.i.nat.WeBehind || !p.i.nat.Supported {
			t.Errorf("%v: support %+v %+v", c, p.i, p.r)
		}
	}
}

// A key exchange in a group the responder did not choose gets
// INVALID_KE_PAYLOAD naming its group; the initiator sends again in that
// group, once.
func TestIKESAInitInvalidKE(t *testing.T) {
	p := newInitPair(t, mustProposals(t, "aes256-sha256-ecp256", "aes256-sha256-modp2048"), mustProposals(t, "aes256-sha256-modp2048"))
	if err := p.round(); !errors.Is(err, ErrRetry) || p.i.group != 14 {
		t.Fatalf("first round: %v, group %d", err, p.i.group)
	}
	if err := p.round(); err != nil {
		t.Fatalf("second round: %v", err)
	}
	sameKeys(t, p)
	if ke := Find(p.reqs[1].Payloads, PayloadKE).(*KE); ke.Group != 14 || len(ke.Data) != 256 {
		t.Fatalf("retried KE: group %d, %d bytes", ke.Group, len(ke.Data))
	}
	// A group we never offered is not chased, nor a second change.
	i, _ := newInitiator(mustProposals(t, "aes256-sha256-ecp256"), spi(0x12), rand.Reader)
	askFor := func(group uint16) error {
		return i.response(&Message{Header: Header{SPIi: i.spii, Exchange: ExchangeIKESAInit, Flags: FlagResponse},
			Payloads: []Payload{&Notify{Kind: NotifyInvalidKEPayload, Data: []byte{byte(group >> 8), byte(group)}}}}, iAddr, rAddr)
	}
	var ne *NotifyError
	if err := askFor(20); !errors.As(err, &ne) || ne.Kind != NotifyInvalidKEPayload || i.group != 19 {
		t.Fatalf("a group we did not offer: %v", err)
	}
	if err := p.i.response(&Message{Header: Header{SPIi: p.i.spii, Exchange: ExchangeIKESAInit, Flags: FlagResponse},
		Payloads: []Payload{&Notify{Kind: NotifyInvalidKEPayload, Data: []byte{0, 19}}}}, iAddr, rAddr); !errors.As(err, &ne) {
		t.Fatalf("a second change of group: %v", err)
	}
}

// Under load the responder answers with a cookie; the initiator sends
// its request again with the cookie first, and gets in.
func TestIKESAInitCookie(t *testing.T) {
	p := newInitPair(t, mustProposals(t, "aes256-sha256-ecp256"), mustProposals(t, "aes256-sha256-ecp256"))
	var err error
	if p.cookies, err = NewCookies(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if err := p.round(); !errors.Is(err, ErrRetry) || p.r != nil {
		t.Fatalf("first round: %v", err)
	}
	if err := p.round(); err != nil {
		t.Fatalf("with the cookie: %v", err)
	}
	if n, ok := p.reqs[1].Payloads[0].(*Notify); !ok || n.Kind != NotifyCookie {
		t.Fatalf("the cookie is not the first payload: %#v", p.reqs[1].Payloads[0])
	}
	sameKeys(t, p)
	// A request with a forged cookie is asked for a real one.
	p2 := newInitPair(t, mustProposals(t, "aes256-sha256-ecp256"), mustProposals(t, "aes256-sha256-ecp256"))
	p2.cookies, p2.i.cookie = p.cookies, make([]byte, CookieLen)
	if err := p2.round(); err == nil || p2.r != nil {
		t.Fatalf("forged cookie: %v", err)
	}
}

// NAT detection: the responder sees the initiator from another address
// (masquerade), and both sides find the initiator behind a NAT.
func TestIKESAInitNAT(t *testing.T) {
	p := newInitPair(t, mustProposals(t, "aes256-sha256-ecp256"), mustProposals(t, "aes256-sha256-ecp256"))
	p.seen = netip.MustParseAddrPort("198.51.100.7:40500")
	if err := p.round(); err != nil {
		t.Fatal(err)
	}
	if !p.r.nat.PeerBehind || p.r.nat.WeBehind {
		t.Errorf("responder: %+v", p.r.nat)
	}
	// The responder's NAT-D hashes name the address it saw; the
	// initiator's own address differs, so it is behind a NAT.
	if !p.i.nat.WeBehind || p.i.nat.PeerBehind {
		t.Errorf("initiator: %+v", p.i.nat)
	}
}

// The initiator refuses a response choosing a suite it did not offer.
func TestIKESAInitRefusesForeignChoice(t *testing.T) {
	p := newInitPair(t, mustProposals(t, "aes256-sha256-ecp256"), mustProposals(t, "aes256-sha256-ecp256"))
	evil := mustProposals(t, "aes128-sha1-ecp256")[0]
	resp := &Message{Header: Header{SPIi: p.i.spii, SPIr: spi(9), Exchange: ExchangeIKESAInit, Flags: FlagResponse},
		Payloads: []Payload{&SA{Proposals: []SAProposal{{Num: 1, Protocol: ProtoIKE, Transforms: evil.Transforms()}}},
			&KE{Group: 19, Data: make([]byte, 64)}, &Nonce{Data: make([]byte, 32)}}}
	var ne *NotifyError
	if err := p.i.response(resp, iAddr, rAddr); !errors.As(err, &ne) || ne.Kind != NotifyNoProposalChosen {
		t.Fatalf("foreign choice: %v", err)
	}
}

// A MODP1024-only offer, as Windows' built-in client makes by default, is
// refused with what to change on the client.
func TestMODP1024OfferNamesTheRegistryValue(t *testing.T) {
	offer, err := ParseProposal("aes256-sha256-modp2048")
	if err != nil {
		t.Fatal(err)
	}
	windows := offer
	windows.Group, err = alg.ParseGroup("modp1024")
	if err != nil {
		t.Fatal(err)
	}
	req := &Message{Header: Header{SPIi: SPI{1}, Exchange: ExchangeIKESAInit, Flags: FlagInitiator},
		Payloads: []Payload{&SA{Proposals: []SAProposal{{Num: 1, Protocol: ProtoIKE, Transforms: windows.Transforms()}}},
			&KE{Group: 2, Data: make([]byte, 128)}, &Nonce{Data: make([]byte, 32)}}}
	_, _, err = respond([]Proposal{offer}, req, netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500"), SPI{2}, nil, rand.Reader)
	var ne *NotifyError
	if !errors.As(err, &ne) || ne.Kind != NotifyNoProposalChosen || !strings.Contains(ne.Why, "NegotiateDH2048_AES256") {
		t.Fatalf("%v", err)
	}
}
