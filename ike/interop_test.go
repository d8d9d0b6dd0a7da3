package ike

import (
	"bytes"
	"crypto/rand"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestFlagNames(t *testing.T) {
	var all Flags
	for _, n := range FlagNames() {
		f, ok := ParseFlag(n)
		if !ok || f.Names()[0] != n {
			t.Fatalf("%s: %v %v", n, f, ok)
		}
		all |= f
	}
	if !slices.Equal(all.Names(), FlagNames()) {
		t.Fatalf("%v", all.Names())
	}
	if _, ok := ParseFlag("natt-draft02"); ok {
		t.Fatal("an unknown name parsed")
	}
}

// The core knows the standard vendor IDs only; the NAT-T drafts take a
// plugin's flag.
func TestBuiltinFlags(t *testing.T) {
	got := builtinFlags([][]byte{vidRFC3947, vidDPD, vidFragmentation, vidGSSAPI, vidDraft02N, vidDraft03, {1, 2, 3}})
	if got != FlagNATT|FlagDPD|FlagFragmentation|FlagGSSAPI {
		t.Fatalf("flags %v", got)
	}
	if got := builtinFlags([][]byte{vidDraft02N, md5Sum("FRAGMENTATION")}); got != FlagFragmentation {
		t.Fatalf("flags %v: the drafts alone must not turn NAT-T on; the 16-byte fragmentation ID counts", got)
	}
}

type fakeInterop struct {
	vids   [][]byte
	answer InteropAnswer
	got    []InteropQuery
}

func (f *fakeInterop) VendorIDs(*PeerConfig, netip.AddrPort) [][]byte { return f.vids }
func (f *fakeInterop) Classify(q InteropQuery) InteropAnswer {
	f.got = append(f.got, q)
	return f.answer
}

func withInterop(p *pair, name string, f *fakeInterop) {
	host, peer := p.ha, p.pa
	if name == "B" {
		host, peer = p.hb, p.pb
	}
	m := NewManager(Config{Host: host, Rand: rand.Reader, Now: func() time.Time { return p.now }, Interop: f})
	m.SetPeers([]*PeerConfig{peer})
	if name == "B" {
		p.b = m
	} else {
		p.a = m
	}
}

// The interop answer is asked once, on the peer's first message; its
// vendor IDs go out, its ESP list replaces the peer config's, and its
// quick mode notify rule is kept.
func TestInteropAnswerDrivesTheSA(t *testing.T) {
	p := newPair(t, true)
	fa := &fakeInterop{vids: [][]byte{{0xa1}}, answer: InteropAnswer{Family: "test-gw"}}
	fb := &fakeInterop{answer: InteropAnswer{Family: "test-client", Detail: "v1", Plugin: "interop-test", Flags: FlagQMNotifyMsgID | FlagInitialContact,
		VendorIDs: [][]byte{{0xb2}, vidFragmentation}, ESP: mustSuites(t, "aes256-sha256")}}
	withInterop(p, "A", fa)
	withInterop(p, "B", fb)
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, append(slices.Clone(msg1), PayloadVendorID)...) // and A's plugin's
	p.step("B", ExchangeMain, false, append(slices.Clone(msg2), PayloadVendorID)...) // and B's, fragmentation once
	p.step("A", ExchangeMain, false, msg3...)
	p.step("B", ExchangeMain, false, msg3...)
	p.step("A", ExchangeMain, true)
	p.step("B", ExchangeMain, true)
	if len(fa.got) != 1 || len(fb.got) != 1 {
		t.Fatalf("classified %d and %d times, want once each", len(fa.got), len(fb.got))
	}
	q := fb.got[0]
	if q.Initiator || !slices.ContainsFunc(q.VendorIDs, func(v []byte) bool { return bytes.Equal(v, []byte{0xa1}) }) ||
		len(q.Offered) != 2 || q.Offered[0].String() != "aes256-sha256-modp2048" || !q.Builtin.Has(FlagNATT|FlagFragmentation) {
		t.Fatalf("B's query: %+v", q)
	}
	if q := fa.got[0]; !q.Initiator || len(q.Offered) != 1 {
		t.Fatalf("A's query: %+v", q)
	}
	info := p.b.SAs()[0]
	if info.Family != "test-client" || info.Detail != "v1" || info.Plugin != "interop-test" || !slices.Contains(info.Flags, "qm-notify-message-id") {
		t.Fatalf("B's SA: %+v", info)
	}
	if !p.b.sas[info.SPIi].initialContact {
		t.Fatal("the initial-contact flag did not mark the SA")
	}
	// A offers GCM and AES-SHA1; B's family list has AES-SHA256 only: the
	// quick mode fails, and B reports it under the quick mode's ID.
	h1 := p.step("A", ExchangeQuick, true)
	h2 := p.step("B", ExchangeInformational, true)
	if h2.MessageID != h1.MessageID {
		t.Fatalf("notify under message ID %#x, want the quick mode's %#x", h2.MessageID, h1.MessageID)
	}
	if ev := p.hb.event(EventNegotiationErr); ev == nil || ev.Reason != "no-proposal-chosen" {
		t.Fatalf("B: %+v", p.hb.events)
	}
}

// A refusal carries the answer's hint.
func TestInteropHintInRefusal(t *testing.T) {
	p := newPair(t, true)
	p.pb.Proposals = mustProposals(t, "aes256-sha512-modp4096")
	withInterop(p, "B", &fakeInterop{answer: InteropAnswer{Hint: "load interop-test"}})
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, msg1...)
	p.step("B", ExchangeInformational, false, PayloadNotify)
	if ev := p.hb.event(EventNegotiationErr); ev == nil || !bytes.Contains([]byte(ev.Message), []byte("; load interop-test")) {
		t.Fatalf("B: %+v", p.hb.events)
	}
}

// An initiator emulating a client offers its transforms as given, weak
// ones included, and accepts only one of them.
func TestInitiatorOfferAsGiven(t *testing.T) {
	p := newPair(t, true)
	p.pa.Offer = []Phase1{{Cipher: 1, KeyBits: 64, Hash: 1, Group: 2, Auth: AuthPSK, Lifetime: time.Hour},
		{Cipher: cipherAESCBC, KeyBits: 128, Hash: HashSHA1, Group: 19, Auth: AuthPSK, Lifetime: time.Hour}}
	p.pa.VendorIDs = [][]byte{{0xc3}, vidRFC3947} // RFC 3947 goes once
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, append(slices.Clone(msg1), PayloadVendorID)...)
	p.step("B", ExchangeMain, false, msg2...)
	p.step("A", ExchangeMain, false, msg3...)
	p.step("B", ExchangeMain, false, msg3...)
	p.step("A", ExchangeMain, true)
	p.step("B", ExchangeMain, true)
	info := p.a.SAs()[0]
	if info.Phase1 != "aes128-sha1-ecp256" {
		t.Fatalf("chose %s", info.Phase1)
	}
	sa := p.a.sas[info.SPIi]
	if sa.phase1.Lifetime != time.Hour {
		t.Fatalf("lifetime %v", sa.phase1.Lifetime)
	}
	if _, err := p.pa.acceptPhase1Reply(TransformOffer(p.pa.Offer[:1])); err != nil {
		t.Fatalf("our own first transform refused: %v", err)
	}
	if _, err := p.pa.acceptPhase1Reply(Phase1Offer(mustProposals(t, "aes256-sha1-ecp384"), []uint16{AuthPSK}, 0)); err == nil {
		t.Fatal("a transform we did not offer was accepted")
	}
}

// slowInterop's Classify waits until released, as a hung plugin would for
// its whole timeout.
type slowInterop struct {
	entered, release chan struct{}
}

func (s *slowInterop) VendorIDs(*PeerConfig, netip.AddrPort) [][]byte { return nil }
func (s *slowInterop) Classify(InteropQuery) InteropAnswer {
	s.entered <- struct{}{}
	<-s.release
	return InteropAnswer{Family: "slow"}
}

// TestClassifyOutsideTheLock: while the interop plugins are asked about a
// new peer (a gRPC call that may take its full timeout), the engine goes
// on: its SAs can be listed, timers run, other tunnels start. The peer is
// classified once the answer comes.
func TestClassifyOutsideTheLock(t *testing.T) {
	p := newPair(t, true)
	slow := &slowInterop{entered: make(chan struct{}), release: make(chan struct{})}
	m := NewManager(Config{Host: p.hb, Rand: rand.Reader, Now: func() time.Time { return p.now }, Interop: slow})
	m.SetPeers([]*PeerConfig{p.pb})
	done := make(chan struct{})
	go func() {
		m.Receive(firstMessage(t, p), netip.MustParseAddrPort("192.0.2.2:500"), netip.MustParseAddrPort("192.0.2.1:500"))
		close(done)
	}()
	<-slow.entered
	listed := make(chan []SAInfo)
	go func() {
		m.Tick()
		listed <- m.SAs()
	}()
	select {
	case sas := <-listed:
		if len(sas) != 0 {
			t.Fatalf("an SA before its first message was handled: %+v", sas)
		}
	case <-done:
		t.Fatal("Receive returned before the plugin answered")
	case <-time.After(10 * time.Second):
		t.Fatal("the engine was held while a plugin was asked")
	}
	close(slow.release)
	<-done
	if sas := m.SAs(); len(sas) != 1 || sas[0].Family != "slow" {
		t.Fatalf("after the answer: %+v", sas)
	}
}
