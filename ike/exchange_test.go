package ike

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/internal/must"
)

// Two in-process IKE peers, A (192.0.2.1, NetA 10.1.0.0/24) and B
// (192.0.2.2, NetB 10.2.0.0/24), with a wire the test drives one message
// at a time, as strongSwan's exchange tests do.

type datagram struct {
	b        []byte
	from, to netip.AddrPort
}

type testHost struct {
	name     string
	wire     *[]datagram
	psk      string
	nextSPI  uint32
	children map[uint32]*ChildSA // fully installed, by inbound SPI
	inbound  map[uint32]*ChildSA
	outbound uint32 // the SPI we send with
	events   []Event
	peer     *testHost
	// violations: sending before the peer could receive.
	violations []string
	// Signatures (sigauth_test.go): our credentials and key, the CA we
	// trust.
	cred *LocalCredentials
	key  crypto.Signer
	ca   *x509.Certificate
	// gss is the fake GSS-API mechanism (gss_test.go).
	gss *fakeGSS
	// given are the preshared key copies handed to the engine.
	given [][]byte
}

func (h *testHost) Send(b []byte, local, remote netip.AddrPort) error {
	*h.wire = append(*h.wire, datagram{append([]byte(nil), b...), local, remote})
	return nil
}

func (h *testHost) SendKeepalive(local, remote netip.AddrPort) error {
	return h.Send([]byte{0xff}, local, remote)
}

func (h *testHost) PSK(*PeerConfig, netip.Addr, *ID) ([]byte, error) {
	if h.psk == "" {
		return nil, errors.New("no key")
	}
	k := []byte(h.psk)
	h.given = append(h.given, k)
	return k, nil
}

func (h *testHost) LocalCredentials(*PeerConfig, uint16, [][]byte) (*LocalCredentials, error) {
	if h.cred == nil {
		return nil, errors.New("no certificate")
	}
	return h.cred, nil
}

func (h *testHost) Sign(_ *PeerConfig, method uint16, hash []byte) ([]byte, error) {
	return SignHash(h.key, method, hash)
}

// VerifyPeer accepts a leaf signed by our CA whose subject is the ID.
func (h *testHost) VerifyPeer(_ *PeerConfig, _ uint16, chain [][]byte, id *ID) (*PeerCredentials, error) {
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, err
	}
	if h.ca == nil || leaf.CheckSignatureFrom(h.ca) != nil {
		return nil, fmt.Errorf("%q is not issued by a configured CA", leaf.Subject)
	}
	if id.IDType != IDDERASN1DN || !bytes.Equal(id.Data, leaf.RawSubject) {
		return nil, fmt.Errorf("ID %s does not name %q", FormatID(id.IDType, id.Data), leaf.Subject)
	}
	return &PeerCredentials{PublicKey: leaf.PublicKey, Subject: leaf.Subject.String(), Names: CertNames(leaf)}, nil
}

func (h *testHost) AllocSPI() (uint32, error) { h.nextSPI++; return h.nextSPI, nil }

func (h *testHost) InstallInbound(c *ChildSA) error { h.inbound[c.InSPI] = c; return nil }

// InstallOutbound checks the rule that makes rekeying lossless: the peer
// already has the inbound SA we are about to send on.
func (h *testHost) InstallOutbound(c *ChildSA) error {
	if h.peer != nil && h.peer.inbound[c.OutSPI] == nil {
		h.violations = append(h.violations, fmt.Sprintf("%s sends on %#x before the peer can receive it", h.name, c.OutSPI))
	}
	h.children[c.InSPI] = c
	h.outbound = c.OutSPI
	return nil
}

func (h *testHost) DeleteChild(c *ChildSA) {
	delete(h.children, c.InSPI)
	delete(h.inbound, c.InSPI)
}
func (h *testHost) Event(e Event) { h.events = append(h.events, e) }

func (h *testHost) event(id int) *Event {
	for i := range h.events {
		if h.events[i].ID == id {
			return &h.events[i]
		}
	}
	return nil
}

func countEvents(h *testHost, id int) int {
	n := 0
	for _, e := range h.events {
		if e.ID == id {
			n++
		}
	}
	return n
}

type pair struct {
	t      *testing.T
	wire   []datagram
	a, b   *Manager
	ha, hb *testHost
	pa, pb *PeerConfig
	now    time.Time
	nat    bool   // A is behind a NAT (translate)
	natOff uint16 // the NAT's port offset (0: 40000)
	// fragmented counts messages step delivered in fragments.
	fragmented int
}

func mustProposals(t *testing.T, names ...string) []Proposal {
	return must.ParseAll(t, ParseProposal, names...)
}

func mustSuites(t *testing.T, names ...string) []esp.Suite {
	return must.ParseAll(t, esp.ParseSuite, names...)
}

func newPair(t *testing.T, tunnel bool) *pair {
	p := &pair{t: t, now: time.Unix(1_800_000_000, 0)}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	mk := func(name string, local, remote netip.Addr, lnet, rnet string) *PeerConfig {
		c := &PeerConfig{Name: name, Local: local, Remote: remote, Auth: []uint16{AuthPSK}, Lifetime: 8 * time.Hour,
			Proposals: mustProposals(t, "aes256-sha256-modp2048", "aes128-sha1-ecp256"),
			ESP:       mustSuites(t, "aes128gcm16", "aes128-sha1"), ESPLifetime: time.Hour}
		if tunnel {
			c.Pairs = []TSPair{{Selector{Prefix: netip.MustParsePrefix(lnet)}, Selector{Prefix: netip.MustParsePrefix(rnet)}}}
		} else {
			c.Transport = true
		}
		return c
	}
	p.pa, p.pb = mk("to-b", a, b, "10.1.0.0/24", "10.2.0.0/24"), mk("to-a", b, a, "10.2.0.0/24", "10.1.0.0/24")
	p.ha = &testHost{name: "A", wire: &p.wire, psk: "correct horse battery staple", nextSPI: 0xa000, children: map[uint32]*ChildSA{}, inbound: map[uint32]*ChildSA{}}
	p.hb = &testHost{name: "B", wire: &p.wire, psk: "correct horse battery staple", nextSPI: 0xb000, children: map[uint32]*ChildSA{}, inbound: map[uint32]*ChildSA{}}
	p.ha.peer, p.hb.peer = p.hb, p.ha
	clock := func() time.Time { return p.now }
	p.a = NewManager(Config{Host: p.ha, Rand: rand.Reader, Now: clock})
	p.b = NewManager(Config{Host: p.hb, Rand: rand.Reader, Now: clock})
	p.a.SetPeers([]*PeerConfig{p.pa})
	p.b.SetPeers([]*PeerConfig{p.pb})
	return p
}

// step delivers the one message in flight, checks what it is, and returns
// its header. want: exchange type, encrypted, and (for cleartext) the
// payload types in order.
func (p *pair) step(from string, xt ExchangeType, encrypted bool, types ...PayloadType) Header {
	p.t.Helper()
	to := p.b
	if from == "B" {
		to = p.a
	}
	// A message sent in fragments (fragment.go) is delivered whole, one
	// fragment after another, and checked as the message it makes.
	var pieces []datagram
	for len(p.wire) > 0 {
		m, err := Decode(p.wire[0].b)
		if err != nil || len(m.Payloads) != 1 || m.Payloads[0].Type() != PayloadFragment {
			break
		}
		pieces = append(pieces, p.wire[0])
		p.wire = p.wire[1:]
		if m.Payloads[0].(*Fragment).Last {
			break
		}
	}
	if len(pieces) > 0 {
		var whole []byte
		for _, f := range pieces {
			m, _ := Decode(f.b)
			whole = append(whole, m.Payloads[0].(*Fragment).Data...)
		}
		p.fragmented++
		p.wire = append([]datagram{{whole, pieces[0].from, pieces[0].to}}, p.wire...)
	}
	if len(p.wire) != 1 {
		p.t.Fatalf("%d messages in flight, want 1 from %s", len(p.wire), from)
	}
	d := p.wire[0]
	p.wire = p.wire[1:]
	h, err := ParseHeader(d.b)
	if err != nil {
		p.t.Fatalf("message from %s: %v", from, err)
	}
	if h.Exchange != xt || (h.Flags&FlagEncryption != 0) != encrypted {
		p.t.Fatalf("message from %s: %v encrypted=%v, want %v encrypted=%v", from, h.Exchange, h.Flags&FlagEncryption != 0, xt, encrypted)
	}
	if !encrypted && len(types) > 0 {
		m, err := Decode(d.b)
		if err != nil {
			p.t.Fatalf("message from %s: %v", from, err)
		}
		var got []PayloadType
		for _, pl := range m.Payloads {
			got = append(got, pl.Type())
		}
		if !equalTypes(got, types) {
			p.t.Fatalf("message from %s carries %v, want %v", from, got, types)
		}
	}
	if len(pieces) == 0 {
		pieces = []datagram{d}
	}
	for _, f := range pieces {
		f = p.translate(f)
		to.Receive(f.b, f.to, f.from)
	}
	return h
}

// translate applies the NAT in front of A, when there is one: A's
// 10.0.0.5 appears as 198.51.100.1, its ports 500 and 4500 as 40500 and
// 44500.
func (p *pair) translate(d datagram) datagram {
	if !p.nat {
		return d
	}
	priv, pub := netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("198.51.100.1")
	off := p.natOff
	if off == 0 {
		off = 40000
	}
	if d.from.Addr() == priv {
		d.from = netip.AddrPortFrom(pub, off+d.from.Port())
	}
	if d.to.Addr() == pub {
		d.to = netip.AddrPortFrom(priv, d.to.Port()-off)
	}
	return d
}

func equalTypes(a, b []PayloadType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// drop removes the message in flight, as a lossy network would.
func (p *pair) drop() {
	p.t.Helper()
	if len(p.wire) != 1 {
		p.t.Fatalf("%d messages in flight, want 1 to drop", len(p.wire))
	}
	p.wire = p.wire[:0]
}

func (p *pair) tick(d time.Duration) {
	p.now = p.now.Add(d)
	p.a.Tick()
	p.b.Tick()
}

// The cleartext main mode messages' payloads.
var (
	msg1 = []PayloadType{PayloadSA, PayloadVendorID, PayloadVendorID, PayloadVendorID, PayloadVendorID} // NAT-T (3), fragmentation
	msg2 = []PayloadType{PayloadSA, PayloadVendorID, PayloadVendorID}                                   // NAT-T, fragmentation
	msg3 = []PayloadType{PayloadKE, PayloadNonce, PayloadNATD, PayloadNATD}
)

// mainMode runs the six main mode messages.
func (p *pair) mainMode() {
	p.t.Helper()
	if err := p.a.Initiate("to-b"); err != nil {
		p.t.Fatal(err)
	}
	m1, m2 := msg1, msg2
	if p.pa.DPDInterval > 0 && p.pb.DPDInterval > 0 {
		m1, m2 = append(msg1, PayloadVendorID), append(msg2, PayloadVendorID) // and DPD's
	}
	p.step("A", ExchangeMain, false, m1...)   // HDR, SA, VID (NAT-T)
	p.step("B", ExchangeMain, false, m2...)   // HDR, SA, VID
	p.step("A", ExchangeMain, false, msg3...) // HDR, KE, Ni, NAT-D, NAT-D
	p.step("B", ExchangeMain, false, msg3...) // HDR, KE, Nr, NAT-D, NAT-D
	p.step("A", ExchangeMain, true)           // HDR*, IDii, HASH_I
	p.step("B", ExchangeMain, true)           // HDR*, IDir, HASH_R
	for _, h := range []*testHost{p.ha, p.hb} {
		if h.event(EventIKEUp) == nil {
			p.t.Fatalf("%s: no IKE SA up event: %+v", h.name, h.events)
		}
	}
}

// quickMode runs the three quick mode messages that follow.
func (p *pair) quickMode() {
	p.t.Helper()
	h1 := p.step("A", ExchangeQuick, true) // HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
	h2 := p.step("B", ExchangeQuick, true) // HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
	p.step("A", ExchangeQuick, true)       // HDR*, HASH(3)
	if h1.MessageID == 0 || h1.MessageID != h2.MessageID {
		p.t.Fatalf("quick mode message IDs %d and %d", h1.MessageID, h2.MessageID)
	}
}

// checkChildren: each side has one child, their SPIs cross, and what A
// seals B opens, both ways.
func (p *pair) checkChildren(suite string, tunnel bool) (ca, cb *ChildSA) {
	p.t.Helper()
	if len(p.ha.children) != 1 || len(p.hb.children) != 1 {
		p.t.Fatalf("children: A %d, B %d, want 1 each (events A %+v B %+v)", len(p.ha.children), len(p.hb.children), p.ha.events, p.hb.events)
	}
	for _, c := range p.ha.children {
		ca = c
	}
	for _, c := range p.hb.children {
		cb = c
	}
	if ca.OutSPI != cb.InSPI || cb.OutSPI != ca.InSPI || ca.Suite.String() != suite || ca.Tunnel != tunnel || cb.Tunnel != tunnel {
		p.t.Fatalf("children do not match: A %v, B %v", ca, cb)
	}
	checkCrossing(p.t, ca, cb)
	return ca, cb
}

// checkCrossing: what a seals b opens, both ways.
func checkCrossing(t *testing.T, a, b *ChildSA) {
	t.Helper()
	for _, dir := range [][2]*ChildSA{{a, b}, {b, a}} {
		out, err := esp.NewOutbound(esp.Config{SPI: dir[0].OutSPI, Suite: dir[0].Suite, EncKey: dir[0].OutEnc, IntegKey: dir[0].OutInteg})
		if err != nil {
			t.Fatal(err)
		}
		in, err := esp.NewInbound(esp.Config{SPI: dir[1].InSPI, Suite: dir[1].Suite, EncKey: dir[1].InEnc, IntegKey: dir[1].InInteg})
		if err != nil {
			t.Fatal(err)
		}
		payload := []byte("a packet through the negotiated SA")
		buf := make([]byte, out.Headroom()+len(payload)+64)
		copy(buf[out.Headroom():], payload)
		sealed, err := out.Seal(buf[:out.Headroom()+len(payload)], len(payload), 4)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := in.Open(append([]byte(nil), sealed...))
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("ESP with the negotiated keys of %v: %v", dir[0], err)
		}
	}
}

func TestMainAndQuickModeTunnel(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.quickMode()
	ca, _ := p.checkChildren("aes128gcm16", true)
	if ca.LocalTS.Prefix.String() != "10.1.0.0/24" || ca.RemoteTS.Prefix.String() != "10.2.0.0/24" || ca.Lifetime != time.Hour {
		t.Fatalf("child A: %+v", ca)
	}
	if ev := p.hb.event(EventChildUp); ev == nil || !strings.Contains(ev.Message, "aes128gcm16") {
		t.Fatalf("B: no child up event naming the suite: %+v", p.hb.events)
	}
	if sas := p.a.SAs(); len(sas) != 1 || !sas[0].Established || sas[0].Phase1 != "aes256-sha256-modp2048" || sas[0].Children != 1 {
		t.Fatalf("A's IKE SAs: %+v", sas)
	}
	if len(p.wire) != 0 {
		t.Fatalf("%d messages left in flight", len(p.wire))
	}
}

func TestQuickModePFSTransport(t *testing.T) {
	p := newPair(t, false)
	for _, c := range []*PeerConfig{p.pa, p.pb} {
		c.PFS = 14
		c.ESP = mustSuites(t, "aes256-sha256")
	}
	p.pb.ESP = mustSuites(t, "aes128-sha1", "aes256-sha256") // B's order; A offers one
	p.mainMode()
	p.quickMode()
	p.checkChildren("aes256-sha256", false)
}

// TestResponderOrderDecides: B picks by its own order among what A offers.
func TestResponderOrderDecides(t *testing.T) {
	p := newPair(t, true)
	p.pb.Proposals = mustProposals(t, "aes128-sha1-ecp256", "aes256-sha256-modp2048")
	p.pb.ESP = mustSuites(t, "aes128-sha1", "aes128gcm16")
	p.mainMode()
	p.quickMode()
	p.checkChildren("aes128-sha1", true)
	if sas := p.b.SAs(); sas[0].Phase1 != "aes128-sha1-ecp256" {
		t.Fatalf("B chose %s", sas[0].Phase1)
	}
}

func TestNoProposalChosen(t *testing.T) {
	p := newPair(t, true)
	p.pb.Proposals = mustProposals(t, "aes256-sha512-modp4096")
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, msg1...)
	p.step("B", ExchangeInformational, false, PayloadNotify) // HDR, N(NO-PROPOSAL-CHOSEN)
	for _, c := range []struct {
		h      *testHost
		reason string
		text   string
	}{{p.hb, "no-proposal-chosen", "aes256-sha256-modp2048"}, {p.ha, "peer-error", "NO-PROPOSAL-CHOSEN"}} {
		ev := c.h.event(EventNegotiationErr)
		if ev == nil || ev.Reason != c.reason || !strings.Contains(ev.Message, c.text) {
			t.Fatalf("%s: want a %s event naming %q: %+v", c.h.name, c.reason, c.text, c.h.events)
		}
	}
	if len(p.a.SAs()) != 0 || len(p.b.SAs()) != 0 {
		t.Fatal("failed SAs left behind")
	}
}

// TestRefusedPeerQuickModeKeepsTheRest: on an established IKE SA, B
// starts a quick mode of its own with a suite A does not take (as some
// servers do for the other direction, or to rekey): A answers
// NO-PROPOSAL-CHOSEN and keeps its IKE SA and its IPsec SAs, and its
// event says the refused exchange was the peer's.
func TestRefusedPeerQuickModeKeepsTheRest(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
	p.pb.ESP = mustSuites(t, "aes256-sha256")
	p.b.mu.Lock()
	for _, sa := range p.b.sas {
		if err := p.b.startQuickMode(sa, p.pb.Pairs[0]); err != nil {
			t.Fatal(err)
		}
	}
	p.b.mu.Unlock()
	p.step("B", ExchangeQuick, true)         // HDR*, HASH(1), SA, Ni, IDs
	p.step("A", ExchangeInformational, true) // HDR*, HASH, N(NO-PROPOSAL-CHOSEN)
	ev := p.ha.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "no-proposal-chosen" || ev.Exchange != ExchangeQuick || ev.Initiator ||
		!strings.Contains(ev.Message, "aes256-sha256 (tunnel, no PFS)") {
		t.Fatalf("A's event: %+v", ev)
	}
	for _, c := range []struct {
		name string
		m    *Manager
		h    *testHost
	}{{"A", p.a, p.ha}, {"B", p.b, p.hb}} {
		sas := c.m.SAs()
		if len(sas) != 1 || !sas[0].Established || len(c.h.children) != 1 {
			t.Fatalf("%s after the refused quick mode: IKE SAs %+v, %d children", c.name, sas, len(c.h.children))
		}
		if c.h.event(EventIKEDown) != nil || c.h.event(EventChildDown) != nil {
			t.Fatalf("%s took something down: %+v", c.name, c.h.events)
		}
	}
	if ev := p.hb.event(EventNegotiationErr); ev == nil || !ev.Initiator || ev.Exchange != ExchangeQuick {
		t.Fatalf("B's event: %+v", ev)
	}
}

// TestWrongPSK: B cannot read A's message 5. Such a message could as well
// be a forgery, so B drops it, counts it and changes nothing; both sides
// give up when the retransmissions run out, and B's event says why.
func TestWrongPSK(t *testing.T) {
	p := newPair(t, true)
	p.hb.psk = "another key altogether"
	p.toMessage5() // B cannot read it
	if len(p.wire) != 0 || len(p.hb.events) != 0 || p.b.Drops()[DropUnauthenticated] != 1 || len(p.b.SAs()) != 1 {
		t.Fatalf("B answered or gave up at once: %d in flight, events %+v, drops %v", len(p.wire), p.hb.events, p.b.Drops())
	}
	p.expire()
	ev := p.hb.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "preshared keys differ") || !strings.Contains(ev.Message, "no valid answer") {
		t.Fatalf("B: want an authentication-failed event: %+v", p.hb.events)
	}
	if ev := p.ha.event(EventNegotiationErr); ev == nil || ev.Reason != "timeout" {
		t.Fatalf("A: want a timeout event: %+v", p.ha.events)
	}
	if len(p.a.SAs()) != 0 || len(p.b.SAs()) != 0 {
		t.Fatal("failed SAs left behind")
	}
}

// TestRemoteIDPinsPSKPeer: with remote.id set, a main mode peer that
// proves the key but names itself otherwise is refused, and told; named
// right (local.id on its side), it gets in.
func TestRemoteIDPinsPSKPeer(t *testing.T) {
	p := newPair(t, true)
	p.pb.RemoteID = "fqdn:gw-a.example.net"
	p.toMessage5() // HDR*, IDii (ipv4:192.0.2.1), HASH_I
	ev := p.hb.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "calls itself ipv4:192.0.2.1, the tunnel expects fqdn:gw-a.example.net") {
		t.Fatalf("B: %+v", p.hb.events)
	}
	p.step("B", ExchangeInformational, true)
	if ev := p.ha.event(EventNegotiationErr); ev == nil || !strings.Contains(ev.Message, "INVALID-ID-INFORMATION") {
		t.Fatalf("A: %+v", p.ha.events)
	}
	if len(p.a.SAs()) != 0 || len(p.b.SAs()) != 0 {
		t.Fatal("failed SAs left behind")
	}

	p.ha.events, p.hb.events = nil, nil
	p.pa.LocalID = &ID{IDType: IDFQDN, Data: []byte("gw-a.example.net")}
	p.mainMode()
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
	if sas := p.b.SAs(); sas[0].PeerID != "fqdn:gw-a.example.net" {
		t.Fatalf("B's peer: %+v", sas[0])
	}
}

// toMessage5 runs main mode with a preshared key through A's message 5.
func (p *pair) toMessage5() {
	p.t.Helper()
	if err := p.a.Initiate("to-b"); err != nil {
		p.t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, msg1...)
	p.step("B", ExchangeMain, false, msg2...)
	p.step("A", ExchangeMain, false, msg3...)
	p.step("B", ExchangeMain, false, msg3...)
	p.step("A", ExchangeMain, true)
}

// expire lets every exchange in progress run out of retransmissions,
// dropping what they send.
func (p *pair) expire() {
	for range 8 {
		p.tick(20 * time.Second)
		p.wire = p.wire[:0]
	}
}

// TestLostMessages: a lost request is retransmitted on time; a lost answer
// is re-sent when the request comes again.
func TestLostMessages(t *testing.T) {
	p := newPair(t, true)
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.drop() // message 1 lost
	p.tick(500 * time.Millisecond)
	if len(p.wire) != 0 {
		t.Fatal("retransmitted too early")
	}
	p.tick(600 * time.Millisecond)
	p.step("A", ExchangeMain, false, msg1...) // retransmitted message 1
	p.step("B", ExchangeMain, false, msg2...)
	p.step("A", ExchangeMain, false, msg3...)
	p.drop() // message 4 lost
	p.tick(1100 * time.Millisecond)
	// Both retransmit: A message 3, B message 4. B answers A's
	// duplicate with message 4 again.
	if len(p.wire) != 2 {
		t.Fatalf("%d messages in flight after the timeout, want A's 3 and B's 4", len(p.wire))
	}
	p.wire = p.wire[:1] // B's own retransmission (ticked second): drop it too
	p.step("A", ExchangeMain, false, msg3...)
	p.step("B", ExchangeMain, false, msg3...)
	p.step("A", ExchangeMain, true)
	p.step("B", ExchangeMain, true)
	p.step("A", ExchangeQuick, true)
	p.step("B", ExchangeQuick, true)
	p.drop() // HASH(3) lost: B has not installed yet
	if len(p.hb.children) != 0 {
		t.Fatal("B installed before HASH(3)")
	}
	p.tick(1100 * time.Millisecond)
	p.step("B", ExchangeQuick, true) // B retransmits message 2
	p.step("A", ExchangeQuick, true) // A answers with HASH(3) again
	p.checkChildren("aes128gcm16", true)
}

func TestTerminateDeletesOnBothSides(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.quickMode()
	if err := p.a.Terminate("to-b"); err != nil {
		t.Fatal(err)
	}
	if len(p.wire) != 2 {
		t.Fatalf("%d messages, want a delete for the child and one for the IKE SA", len(p.wire))
	}
	for len(p.wire) > 0 {
		d := p.wire[0]
		p.wire = p.wire[1:]
		p.b.Receive(d.b, d.to, d.from)
	}
	if len(p.ha.children) != 0 || len(p.hb.children) != 0 || len(p.a.SAs()) != 0 || len(p.b.SAs()) != 0 {
		t.Fatalf("left after delete: children A %d B %d, IKE SAs A %d B %d", len(p.ha.children), len(p.hb.children), len(p.a.SAs()), len(p.b.SAs()))
	}
	for _, h := range []*testHost{p.ha, p.hb} {
		if h.event(EventIKEDown) == nil || h.event(EventChildDown) == nil {
			t.Fatalf("%s: want IKE and child down events: %+v", h.name, h.events)
		}
	}
}

// TestGarbageDoesNotHurt: junk and forged messages at an established SA
// are dropped; the SA keeps working.
func TestGarbageDoesNotHurt(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	sa := p.b.SAs()[0]
	from := netip.MustParseAddrPort("192.0.2.1:500")
	to := netip.MustParseAddrPort("192.0.2.2:500")
	h := Header{SPIi: sa.SPIi, SPIr: sa.SPIr, Version: Version, Exchange: ExchangeQuick, Flags: FlagEncryption, MessageID: 77}
	forged := append(h.Append(nil), make([]byte, 48)...)
	binLen(forged)
	for _, b := range [][]byte{nil, {1, 2, 3}, forged, bytes.Repeat([]byte{0xff}, 100)} {
		p.b.Receive(b, to, from)
	}
	// Nothing answered the garbage; the real quick mode A started after
	// main mode still works.
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
}

func binLen(b []byte) {
	b[24], b[25], b[26], b[27] = byte(len(b)>>24), byte(len(b)>>16), byte(len(b)>>8), byte(len(b))
}

// FuzzReceive feeds datagrams to a responder: nothing may panic, and an
// established SA must survive whatever arrives.
func FuzzReceive(f *testing.F) {
	mm, _ := mainMode1().Encode()
	f.Add(mm)
	f.Add(bytes.Repeat([]byte{0}, 40))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newPair(t, true)
		// ECP: the MODP arithmetic is too slow under the fuzzer's
		// instrumentation for more than a few runs a minute.
		p.pa.Proposals = mustProposals(t, "aes128-sha256-ecp256")
		p.pb.Proposals = p.pa.Proposals
		p.mainMode()
		p.wire = p.wire[:0]
		from, to := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
		// Also aimed at the live SA: put its cookies in front.
		sa := p.b.SAs()[0]
		aimed := append(append(append([]byte(nil), sa.SPIi[:]...), sa.SPIr[:]...), b...)
		p.b.Receive(b, to, from)
		p.b.Receive(aimed, to, from)
		for _, s := range p.b.SAs() {
			if s.SPIi == sa.SPIi && s.Established {
				return
			}
		}
		t.Fatalf("the established SA did not survive: %+v", p.b.SAs())
	})
}

// TestNATTraversal: A behind a NAT. Both sides see it in the NAT-D
// payloads, main mode moves to port 4500 at message 5, and the child SAs
// are UDP-encapsulated (RFC 3947) with the NAT's port on B's side.
func TestNATTraversal(t *testing.T) {
	p := newPair(t, true)
	p.nat = true
	p.pa.Local = netip.MustParseAddr("10.0.0.5")
	p.pb.Remote = netip.MustParseAddr("198.51.100.1")
	p.mainModeFloated()
	p.quickMode()
	ca, cb := p.checkChildren("aes128gcm16", true)
	if !ca.UDP || !cb.UDP || ca.Remote != netip.MustParseAddrPort("192.0.2.2:4500") || cb.Remote != netip.MustParseAddrPort("198.51.100.1:44500") {
		t.Fatalf("children: A %+v -> %v, B %+v -> %v", ca.UDP, ca.Remote, cb.UDP, cb.Remote)
	}
	sa := p.b.sas[p.b.SAs()[0].SPIi]
	if !sa.nat.remote || sa.nat.local || sa.nat.dialect != nattRFC {
		t.Fatalf("B's view: peer behind NAT %v, we behind NAT %v, dialect %d", sa.nat.remote, sa.nat.local, sa.nat.dialect)
	}
	// Only A, behind the NAT, keeps the mapping alive.
	p.tick(21 * time.Second)
	if len(p.wire) != 1 || !bytes.Equal(p.wire[0].b, []byte{0xff}) || p.wire[0].to != netip.MustParseAddrPort("192.0.2.2:4500") {
		t.Fatalf("want one NAT keepalive from A, got %d datagrams", len(p.wire))
	}
}

// mainModeFloated runs main mode and checks that the quick mode which
// follows goes on port 4500 (NAT-T floated, RFC 3947 section 4).
func (p *pair) mainModeFloated() {
	p.t.Helper()
	p.mainMode()
	if d := p.wire[0]; d.from.Port() != 4500 || d.to.Port() != 4500 {
		p.t.Fatalf("quick mode not on port 4500: %v -> %v", d.from, d.to)
	}
}

// TestForcedEncapsulation: with ForceEncap on either side and no NAT,
// both sides see "a NAT", move to 4500 and UDP-encapsulate ESP.
func TestForcedEncapsulation(t *testing.T) {
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			p := newPair(t, true)
			forcer := p.pa
			if side == "responder" {
				forcer = p.pb
			}
			forcer.ForceEncap = true
			p.mainModeFloated()
			p.quickMode()
			ca, cb := p.checkChildren("aes128gcm16", true)
			if !ca.UDP || !cb.UDP || ca.Remote != netip.MustParseAddrPort("192.0.2.2:4500") || cb.Remote != netip.MustParseAddrPort("192.0.2.1:4500") {
				t.Fatalf("children: A %v -> %v, B %v -> %v", ca.UDP, ca.Remote, cb.UDP, cb.Remote)
			}
		})
	}
}

// TestInitialContact: A restarts and negotiates afresh; its
// INITIAL-CONTACT makes B drop the SAs it still held from before.
func TestInitialContact(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.quickMode()
	old := p.b.SAs()[0].SPIi
	// A comes back with no memory: a new engine, no SAs.
	p.a = NewManager(Config{Host: p.ha, Rand: rand.Reader, Now: func() time.Time { return p.now }})
	p.a.SetPeers([]*PeerConfig{p.pa})
	clear(p.ha.children)
	clear(p.ha.inbound)
	p.ha.events = nil
	p.mainMode()
	p.quickMode()
	sas := p.b.SAs()
	if len(sas) != 1 || sas[0].SPIi == old {
		t.Fatalf("B still holds the SA from before the restart: %+v", sas)
	}
	if len(p.hb.children) != 1 {
		t.Fatalf("B has %d children, want only the new one", len(p.hb.children))
	}
}

func TestNATTVendorIDs(t *testing.T) {
	for _, c := range []struct {
		vid  []byte
		want string
	}{{vidRFC3947, "4a131c81070358455c5728f20e95452f"}, {vidDraft02, "cd60464335df21f87cfdb2fc68b6a448"},
		{vidDraft02N, "90cb80913ebb696e086381b5ec427b1f"}, {vidDraft03, "7d9419a65310ca6f2c179d9215529d56"}} {
		if !bytes.Equal(c.vid, mustHex(c.want)) {
			t.Errorf("vendor ID %x, want %s", c.vid, c.want)
		}
	}
}

func TestAggressiveModeRefused(t *testing.T) {
	p := newPair(t, true)
	h := Header{SPIi: Cookie{9}, Version: Version, Exchange: ExchangeAggressive}
	m := &Message{Header: h, Payloads: []Payload{Phase1Offer(p.pa.Proposals, []uint16{AuthPSK}, time.Hour), &Data{T: PayloadKE, Data: make([]byte, 256)},
		&Data{T: PayloadNonce, Data: make([]byte, 16)}, &ID{IDType: IDIPv4Addr, Data: []byte{192, 0, 2, 1}}}}
	b, _ := m.Encode()
	from, to := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
	p.b.Receive(b, to, from)
	p.b.Receive(b, to, from) // a retransmission: reported once
	n := 0
	for _, e := range p.hb.events {
		if e.Reason == "aggressive-mode-disabled" && e.Peer == "to-a" && strings.Contains(e.Message, "aggressive mode is off") {
			n++
		}
	}
	if n != 1 || len(p.b.SAs()) != 0 || len(p.wire) != 0 {
		t.Fatalf("want one event, no SA, no answer: %d events %+v, %d SAs, %d sent", n, p.hb.events, len(p.b.SAs()), len(p.wire))
	}
	// Main mode from the same peer still works.
	p.mainMode()
}

// TestDPD: silent peers are probed (R-U-THERE, answered with
// R-U-THERE-ACK); a peer that stops answering is declared dead after the
// timeout, its SAs are cleared, and a tunnel that must stay up starts again.
func TestDPD(t *testing.T) {
	p := newPair(t, true)
	for _, c := range []*PeerConfig{p.pa, p.pb} {
		c.DPDInterval, c.DPDTimeout = 10*time.Second, 30*time.Second
	}
	p.pa.Restart = true
	p.mainMode()
	p.quickMode()
	p.tick(11 * time.Second) // both probe
	for range 4 {            // two R-U-THEREs, two ACKs
		if len(p.wire) == 0 {
			t.Fatal("fewer DPD messages than expected")
		}
		d := p.translate(p.wire[0])
		p.wire = p.wire[1:]
		to := p.b
		if d.from.Addr() == netip.MustParseAddr("192.0.2.2") {
			to = p.a
		}
		to.Receive(d.b, d.to, d.from)
	}
	if len(p.wire) != 0 || p.ha.event(EventNegotiationErr) != nil {
		t.Fatalf("after the probes: %d in flight, events %+v", len(p.wire), p.ha.events)
	}
	// B dies: nothing it would say arrives any more.
	for range 4 {
		p.tick(10 * time.Second)
		p.wire = p.wire[:0]
	}
	ev := p.ha.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "dead-peer" || len(p.ha.children) != 0 {
		t.Fatalf("A did not declare B dead: %+v, %d children", p.ha.events, len(p.ha.children))
	}
	// Restart: A is negotiating again after a pause.
	p.tick(6 * time.Second)
	if sas := p.a.SAs(); len(sas) != 1 || sas[0].Established {
		t.Fatalf("A did not start again: %+v", sas)
	}
}

// deliverAll delivers everything in flight, and what it causes, until the
// wire is quiet (bounded).
func (p *pair) deliverAll() {
	p.t.Helper()
	for range 100 {
		if len(p.wire) == 0 {
			return
		}
		d := p.translate(p.wire[0])
		p.wire = p.wire[1:]
		to := p.b
		if d.from.Addr() == p.pb.Local {
			to = p.a
		}
		to.Receive(d.b, d.to, d.from)
	}
	p.t.Fatal("the wire never went quiet")
}

func (p *pair) noViolations() {
	p.t.Helper()
	for _, h := range []*testHost{p.ha, p.hb} {
		if len(h.violations) > 0 {
			p.t.Fatalf("%s: %v", h.name, h.violations)
		}
	}
}

// TestChildRekey: at about 80-85 % of its lifetime the initiator replaces
// the child; nobody sends on an SA the peer cannot yet receive; the old
// pair goes two seconds later, on both sides.
func TestChildRekey(t *testing.T) {
	p := newPair(t, true)
	for _, c := range []*PeerConfig{p.pa, p.pb} {
		c.ESPLifetime = 20 * time.Second
	}
	p.mainMode()
	p.quickMode()
	old, _ := p.checkChildren("aes128gcm16", true)
	for range 20 { // one second at a time up to 20 s
		p.tick(time.Second)
		p.deliverAll()
	}
	p.noViolations()
	ca, cb := p.checkChildren("aes128gcm16", true)
	if ca.InSPI == old.InSPI {
		t.Fatal("the child was not replaced")
	}
	if p.ha.outbound != ca.OutSPI || p.hb.outbound != cb.OutSPI {
		t.Fatal("not sending on the new SAs")
	}
	if ev := p.ha.event(EventChildUp); ev == nil || !strings.Contains(fmt.Sprint(p.ha.events), "IPsec SA rekeyed") {
		t.Fatalf("no rekey event: %+v", p.ha.events)
	}
}

// TestIKEReauth: at about 80-85 % of the IKE SA's lifetime the initiator
// runs a new main mode and quick mode; then the old IKE SA and its child
// are deleted on both sides, and the tunnel never lacks an SA.
func TestIKEReauth(t *testing.T) {
	p := newPair(t, true)
	for _, c := range []*PeerConfig{p.pa, p.pb} {
		c.Lifetime = 60 * time.Second
	}
	p.mainMode()
	p.quickMode()
	first := p.a.SAs()[0].SPIi
	for range 60 {
		p.tick(time.Second)
		p.deliverAll()
		if len(p.ha.children) == 0 || len(p.hb.children) == 0 {
			t.Fatalf("a moment without a child SA: A %d, B %d", len(p.ha.children), len(p.hb.children))
		}
	}
	p.noViolations()
	p.checkChildren("aes128gcm16", true)
	for _, m := range []*Manager{p.a, p.b} {
		sas := m.SAs()
		if len(sas) != 1 || sas[0].SPIi == first || !sas[0].Established {
			t.Fatalf("IKE SAs after reauthentication: %+v", sas)
		}
	}
}

// TestRekeyCollision: both gateways rekey the same child at the same
// moment. Both new pairs come up; whatever each side sends on, the other
// can receive, before and after the old pair is deleted.
func TestRekeyCollision(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.quickMode()
	oldA, oldB := p.checkChildren("aes128gcm16", true)
	for _, side := range []struct {
		m *Manager
		c *ChildSA
	}{{p.a, oldA}, {p.b, oldB}} {
		side.m.mu.Lock()
		for _, sa := range side.m.sas {
			side.c.rekeying = true
			side.m.startQuickModeFor(sa, side.c, side.c.pair)
		}
		side.m.mu.Unlock()
	}
	p.deliverAll()
	check := func(when string) {
		t.Helper()
		p.noViolations()
		if p.hb.inbound[p.ha.outbound] == nil || p.ha.inbound[p.hb.outbound] == nil {
			t.Fatalf("%s: A sends on %#x, B on %#x; A receives %v, B receives %v", when, p.ha.outbound, p.hb.outbound, keys(p.ha.inbound), keys(p.hb.inbound))
		}
	}
	check("after the collision")
	for range 5 {
		p.tick(time.Second)
		p.deliverAll()
	}
	check("after the old pair went")
	if p.ha.inbound[oldA.InSPI] != nil || p.hb.inbound[oldB.InSPI] != nil {
		t.Fatal("the old pair was not deleted")
	}
}

func keys(m map[uint32]*ChildSA) []string {
	var out []string
	for k := range m {
		out = append(out, fmt.Sprintf("%#x", k))
	}
	return out
}

func aggressivePair(t *testing.T) *pair {
	p := newPair(t, true)
	p.pa.Aggressive, p.pa.RemoteID = true, "ipv4:192.0.2.2"
	p.pb.Aggressive, p.pb.RemoteID = true, "fqdn:gw-a.example.net"
	p.pa.LocalID = &ID{IDType: IDFQDN, Data: []byte("gw-a.example.net")}
	return p
}

// TestAggressiveMode: with aggressive mode on for the tunnel and the
// peer's identity configured, three messages make the IKE SA.
func TestAggressiveMode(t *testing.T) {
	p := aggressivePair(t)
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeAggressive, false, PayloadSA, PayloadKE, PayloadNonce, PayloadID, PayloadVendorID, PayloadVendorID, PayloadVendorID, PayloadVendorID)
	p.step("B", ExchangeAggressive, false, PayloadSA, PayloadKE, PayloadNonce, PayloadID, PayloadHash, PayloadVendorID, PayloadNATD, PayloadNATD, PayloadVendorID)
	// A is done once it sends HDR*, HASH_I, NAT-D, NAT-D, and starts its
	// quick mode at once: two messages in flight.
	if len(p.wire) != 2 {
		t.Fatalf("%d messages in flight, want A's third and its quick mode", len(p.wire))
	}
	if h, _ := ParseHeader(p.wire[0].b); h.Exchange != ExchangeAggressive || h.Flags&FlagEncryption == 0 {
		t.Fatalf("third message: %v, encrypted %v", h.Exchange, h.Flags&FlagEncryption != 0)
	}
	d := p.wire[0]
	p.wire = p.wire[1:]
	p.b.Receive(d.b, d.to, d.from)
	for _, h := range []*testHost{p.ha, p.hb} {
		if h.event(EventIKEUp) == nil {
			t.Fatalf("%s: no IKE SA: %+v", h.name, h.events)
		}
	}
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
}

// TestAggressiveModeWrongIdentity: the responder refuses an initiator that
// names itself otherwise than the tunnel says, with the two names in its
// event, and answers nothing at all: no hash to crack, and no notify that
// would tell a prober the name is wrong rather than absent.
func TestAggressiveModeWrongIdentity(t *testing.T) {
	p := aggressivePair(t)
	p.pa.LocalID = &ID{IDType: IDFQDN, Data: []byte("impostor.example.net")}
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeAggressive, false)
	if len(p.wire) != 0 {
		t.Fatalf("B answered a wrong identity with %d message(s)", len(p.wire))
	}
	ev := p.hb.event(EventNegotiationErr)
	if ev == nil || ev.Reason != "authentication-failed" || !strings.Contains(ev.Message, "fqdn:impostor.example.net") || !strings.Contains(ev.Message, "fqdn:gw-a.example.net") {
		t.Fatalf("want an event naming both identities: %+v", p.hb.events)
	}
	if len(p.b.SAs()) != 0 {
		t.Fatal("a refused SA left behind")
	}
}

// remoteAccessPair: A is an L2TP client behind a NAT; B answers any
// client with a wildcard config.
func remoteAccessPair(t *testing.T) *pair {
	p := newPair(t, false)
	p.nat = true
	p.pa.Local = netip.MustParseAddr("10.0.0.5")
	p.pa.L2TP = true
	p.pb.Name, p.pb.Remote, p.pb.L2TP = "remote-access", netip.Addr{}, true
	return p
}

// TestRemoteAccessBehindNAT: transport mode with UDP 1701 identities, the
// client naming itself by its private address, and NAT-OA payloads that
// give the responder that address for checksum fixes.
func TestRemoteAccessBehindNAT(t *testing.T) {
	p := remoteAccessPair(t)
	p.mainMode()
	p.quickMode()
	ca, cb := p.checkChildren("aes128gcm16", false)
	if !ca.UDP || !cb.UDP || cb.Peer != "remote-access" || cb.Remote != netip.MustParseAddrPort("198.51.100.1:44500") {
		t.Fatalf("B's child: %+v", cb)
	}
	if cb.NATOA != netip.MustParseAddr("10.0.0.5") || ca.NATOA.IsValid() {
		t.Fatalf("NAT-OA: B has %v (want the client's 10.0.0.5), A has %v (want none: B is not behind a NAT)", cb.NATOA, ca.NATOA)
	}
	want := Selector{Prefix: netip.MustParsePrefix("10.0.0.5/32"), Proto: 17, Port: 1701}
	if cb.RemoteTS != want || ca.LocalTS != want || cb.LocalTS.Prefix.String() != "192.0.2.2/32" {
		t.Fatalf("selectors: A %v <-> %v, B %v <-> %v", ca.LocalTS, ca.RemoteTS, cb.LocalTS, cb.RemoteTS)
	}
	if err := p.b.Initiate("remote-access"); !errors.Is(err, ErrWildcard) {
		t.Fatalf("initiating a wildcard config: %v", err)
	}
}

// TestRemoteAccessTwoClientsBehindOneNAT: a second client behind the same
// NAT (same public address, other ports) gets an IKE SA of its own and
// does not replace the first one's, INITIAL-CONTACT or not.
func TestRemoteAccessTwoClientsBehindOneNAT(t *testing.T) {
	p := remoteAccessPair(t)
	p.mainMode()
	p.quickMode()
	first := p.ha
	p.ha = &testHost{name: "A2", wire: &p.wire, psk: first.psk, nextSPI: 0xc000, children: map[uint32]*ChildSA{}, inbound: map[uint32]*ChildSA{}}
	p.hb.peer = p.ha
	p.a = NewManager(Config{Host: p.ha, Rand: rand.Reader, Now: func() time.Time { return p.now }})
	p.a.SetPeers([]*PeerConfig{p.pa})
	p.natOff = 30000
	p.mainMode()
	p.quickMode()
	if sas := p.b.SAs(); len(sas) != 2 {
		t.Fatalf("B holds %d IKE SAs, want one per client: %+v", len(sas), sas)
	}
	if len(p.hb.children) != 2 || len(first.children) != 1 || len(p.ha.children) != 1 {
		t.Fatalf("children: B %d (want 2), first client %d, second %d", len(p.hb.children), len(first.children), len(p.ha.children))
	}
	remotes := map[netip.AddrPort]bool{}
	for _, c := range p.hb.children {
		remotes[c.Remote] = true
	}
	if !remotes[netip.MustParseAddrPort("198.51.100.1:44500")] || !remotes[netip.MustParseAddrPort("198.51.100.1:34500")] {
		t.Fatalf("B's children go to %v, want both NAT ports", remotes)
	}
	// Ticks past the responder's reauthentication point start nothing:
	// a road warrior renews its own IKE SA.
	p.tick(8 * time.Hour)
	for _, d := range p.wire {
		if d.from.Addr() == netip.MustParseAddr("192.0.2.2") {
			if h, err := ParseHeader(d.b); err == nil && h.Exchange == ExchangeMain {
				t.Fatalf("B started a main mode towards a road warrior")
			}
		}
	}
}

// TestRoadWarriorIKESAExpires: a client that lets its IKE SA run out
// (racoon does) is told with a Delete; the responder takes no more quick
// modes on the SA but keeps its IPsec SA to that SA's own lifetime, then
// forgets both.
func TestRoadWarriorIKESAExpires(t *testing.T) {
	p := remoteAccessPair(t)
	p.pa.ESPLifetime, p.pb.ESPLifetime = 10*time.Hour, 10*time.Hour // outlives the IKE SA's 8 h
	p.mainMode()
	p.quickMode()
	start := p.now
	p.now = start.Add(8*time.Hour + time.Second)
	p.b.Tick() // the client is not ticked: it does not renew
	if len(p.wire) != 1 {
		t.Fatalf("B sent %d messages at the lifetime's end, want a Delete", len(p.wire))
	}
	if h, err := ParseHeader(p.wire[0].b); err != nil || h.Exchange != ExchangeInformational {
		t.Fatalf("B sent %v (%v) at the lifetime's end, want a Delete", h.Exchange, err)
	}
	p.drop() // lost: the client still believes in the SA
	if sas := p.b.SAs(); len(sas) != 1 || !sas[0].Expired || sas[0].Children != 1 || len(p.hb.children) != 1 {
		t.Fatalf("after the lifetime: B's SAs %+v, %d children installed", sas, len(p.hb.children))
	}
	// A quick mode on the expired SA is dropped unanswered.
	for _, sa := range p.a.sas {
		p.a.mu.Lock()
		err := p.a.startQuickModeFor(sa, nil, TSPair{})
		p.a.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.step("A", ExchangeQuick, true)
	if len(p.wire) != 0 || len(p.hb.children) != 1 {
		t.Fatalf("B answered a quick mode on an expired SA: %d messages, %d children", len(p.wire), len(p.hb.children))
	}
	p.now = start.Add(10*time.Hour + time.Second)
	p.b.Tick()
	if sas := p.b.SAs(); len(sas) != 0 || len(p.hb.children) != 0 {
		t.Fatalf("after the IPsec SA's lifetime: B's SAs %+v, %d children", sas, len(p.hb.children))
	}
	var downs []string
	for _, e := range p.hb.events {
		if e.ID == EventIKEDown || e.ID == EventChildDown {
			downs = append(downs, e.Message)
		}
	}
	if len(downs) != 2 || !strings.Contains(downs[0], "lifetime expired") || !strings.Contains(downs[1], "deleted: lifetime expired") {
		t.Fatalf("B's events: %q", downs)
	}
}

// TestL2TPIdentityRefused: a transport mode offer for other traffic than
// L2TP is refused by an L2TP config.
func TestL2TPIdentityRefused(t *testing.T) {
	p := remoteAccessPair(t)
	p.pa.L2TP = false
	p.pa.Pairs = []TSPair{{Selector{Prefix: netip.MustParsePrefix("10.0.0.5/32"), Proto: 6, Port: 22}, Selector{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Proto: 6}}}
	p.mainMode()
	p.step("A", ExchangeQuick, true)
	if ev := p.hb.event(EventNegotiationErr); ev == nil || !strings.Contains(ev.Message, "not L2TP") {
		t.Fatalf("B: want a refusal naming L2TP, got %+v", p.hb.events)
	}
}

// TestKeysWipedWhenSAsDie: when an IKE SA and its child go, SKEYID and
// its children, the phase 1 IV and the child's KEYMAT are zeroed.
func TestKeysWipedWhenSAsDie(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.quickMode()
	var keys [][]byte
	p.a.mu.Lock()
	for _, sa := range p.a.sas {
		keys = append(keys, sa.keys.SKEYID, sa.keys.D, sa.keys.A, sa.keys.E, sa.p1iv)
	}
	p.a.mu.Unlock()
	for _, c := range p.ha.children {
		keys = append(keys, c.InEnc, c.InInteg, c.OutEnc, c.OutInteg)
	}
	if len(keys) != 9 {
		t.Fatalf("%d key slices, want 9 (one IKE SA, one child)", len(keys))
	}
	for i, k := range keys {
		if len(k) > 0 && bytes.Equal(k, make([]byte, len(k))) {
			t.Fatalf("key %d is zero while the SAs live", i)
		}
	}
	if err := p.a.Terminate("to-b"); err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if !bytes.Equal(k, make([]byte, len(k))) {
			t.Fatalf("key %d left after the SAs died: % x", i, k)
		}
	}
}

// TestEphemeralSecretsWiped: the copy of the preshared key the engine was
// given is zeroed once SKEYID is made, and each exchange's private DH
// values (main mode's, quick mode's with PFS) once the exchange is over.
func TestEphemeralSecretsWiped(t *testing.T) {
	p := newPair(t, true)
	for _, c := range []*PeerConfig{p.pa, p.pb} {
		c.PFS = 14 // MODP2048: an exponent to zero
		c.Proposals = mustProposals(t, "aes256-sha256-modp2048")
	}
	p.mainMode()
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
	for _, h := range []*testHost{p.ha, p.hb} {
		if len(h.given) != 1 || !bytes.Equal(h.given[0], make([]byte, len(h.given[0]))) {
			t.Fatalf("%s: the preshared key copies are not zero: %q", h.name, h.given)
		}
	}
	for _, m := range []*Manager{p.a, p.b} {
		m.mu.Lock()
		for _, sa := range m.sas {
			for id, x := range sa.xs {
				for _, task := range x.tasks {
					var dh DH
					switch tk := task.(type) {
					case *mainMode:
						dh = tk.dh
					case *quickMode:
						dh = tk.dh
					}
					if dh != nil && dh.Group() <= 16 && !dh.Wiped() { // MODP groups: 2, 5, 14 to 16
						t.Errorf("exchange %#x: a MODP private exponent outlived its exchange", id)
					}
				}
			}
		}
		m.mu.Unlock()
	}
}

// TestResponderLifetime: B keeps shorter limits than A proposes and says
// so in RESPONDER-LIFETIME (RFC 2407 section 4.6.3.1), so A's SAs end
// when B's do; limits longer than A's change nothing on A.
func TestResponderLifetime(t *testing.T) {
	for _, c := range []struct {
		name         string
		aLife, bLife time.Duration
		aKB, bKB     uint64
		wantLife     time.Duration
		wantKB       uint64
	}{
		{"B shorter", 8 * time.Hour, time.Hour, 0, 500_000, time.Hour, 500_000},
		{"B shorter in kilobytes only", time.Hour, 2 * time.Hour, 4_000_000, 1_000_000, time.Hour, 1_000_000},
		{"B longer", 20 * time.Minute, time.Hour, 100_000, 0, 20 * time.Minute, 100_000},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t, true)
			p.pa.ESPLifetime, p.pa.ESPLifeKB = c.aLife, c.aKB
			p.pb.ESPLifetime, p.pb.ESPLifeKB = c.bLife, c.bKB
			p.mainMode()
			p.quickMode()
			ca, cb := p.checkChildren("aes128gcm16", true)
			if ca.Lifetime != c.wantLife || ca.LifeKB != c.wantKB {
				t.Errorf("A's SA: %v, %d KB; want %v, %d KB", ca.Lifetime, ca.LifeKB, c.wantLife, c.wantKB)
			}
			if cb.Lifetime != c.wantLife || cb.LifeKB != c.wantKB {
				t.Errorf("B's SA: %v, %d KB; want %v, %d KB", cb.Lifetime, cb.LifeKB, c.wantLife, c.wantKB)
			}
		})
	}
}

func TestShorterLimits(t *testing.T) {
	for _, c := range []struct {
		offered, kept Phase2
		life          time.Duration
		kb            uint64
	}{
		{Phase2{}, Phase2{Lifetime: time.Hour}, time.Hour, 0}, // no lifetime proposed: eight hours
		{Phase2{}, Phase2{Lifetime: DefaultPhase2Lifetime}, 0, 0},
		{Phase2{Lifetime: time.Hour}, Phase2{Lifetime: time.Hour}, 0, 0},
		{Phase2{Lifetime: time.Hour}, Phase2{Lifetime: time.Minute, LifeKB: 10}, time.Minute, 10},
		{Phase2{LifeKB: 10}, Phase2{LifeKB: 10, Lifetime: DefaultPhase2Lifetime}, 0, 0},
		{Phase2{LifeKB: 10}, Phase2{LifeKB: 5}, 0, 5},
	} {
		if life, kb := shorterLimits(c.offered, c.kept); life != c.life || kb != c.kb {
			t.Errorf("offered %v/%d KB, kept %v/%d KB: reported %v/%d KB, want %v/%d KB",
				c.offered.Lifetime, c.offered.LifeKB, c.kept.Lifetime, c.kept.LifeKB, life, kb, c.life, c.kb)
		}
	}
}

// Main mode and quick mode over IPv6 (RFC 2409), for an IPv6 tunnel and
// for one that carries IPv4 networks between IPv6 gateways: the quick
// mode IDs are ID_IPV6_ADDR_SUBNET or ID_IPV4_ADDR_SUBNET (RFC 2407
// section 4.6.2), and the child's endpoints the IPv6 addresses. Transport
// mode between the two IPv6 gateways too.
func TestMainAndQuickModeIPv6(t *testing.T) {
	a6, b6 := netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:b::2")
	for _, c := range []struct {
		name         string
		tunnel       bool
		local, other string
	}{
		{"v6 in v6", true, "fd00:1::/64", "fd00:2::/64"},
		{"v4 in v6", true, "10.1.0.0/24", "10.2.0.0/24"},
		{"transport", false, "", ""},
	} {
		p := newPair(t, c.tunnel)
		p.pa.Local, p.pa.Remote, p.pb.Local, p.pb.Remote = a6, b6, b6, a6
		if c.tunnel {
			l, r := netip.MustParsePrefix(c.local), netip.MustParsePrefix(c.other)
			p.pa.Pairs = []TSPair{{Selector{Prefix: l}, Selector{Prefix: r}}}
			p.pb.Pairs = []TSPair{{Selector{Prefix: r}, Selector{Prefix: l}}}
		}
		p.mainMode()
		p.quickMode()
		ca, cb := p.checkChildren("aes128gcm16", c.tunnel)
		if ca.Remote.Addr() != b6 || cb.Remote.Addr() != a6 {
			t.Errorf("%s: children between %v and %v", c.name, ca.Remote, cb.Remote)
		}
		if c.tunnel && (ca.LocalTS.Prefix.String() != c.local || ca.RemoteTS.Prefix.String() != c.other) {
			t.Errorf("%s: A's child %v > %v", c.name, ca.LocalTS, ca.RemoteTS)
		}
		if sas := p.a.SAs(); len(sas) != 1 || !sas[0].Established || sas[0].Remote.Addr() != b6 {
			t.Errorf("%s: A's IKE SAs %+v", c.name, sas)
		}
	}
}
