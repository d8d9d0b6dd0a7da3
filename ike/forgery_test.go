package ike

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"testing"
	"time"
)

// Forged messages. The cookies and message IDs travel in clear, so anyone
// on the path can send messages that carry them, from the peer's address,
// without any key. Each test below puts such forgeries in front of every
// message of a negotiation: the receiver must drop them, count them, send
// nothing and change nothing, and the negotiation must complete with the
// genuine messages that follow.

// forgeries are the messages an attacker without keys can make for the
// exchange of header h. withKeys: the receiver has started encrypting
// (main mode message 5 on, quick mode, informational).
func forgeries(h Header, withKeys bool) [][]byte {
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	enc := func(h Header, next PayloadType, body []byte) []byte {
		h.Flags |= FlagEncryption
		h.NextPayload = next
		h.Length = uint32(HeaderLen + len(body))
		return append(h.Append(nil), body...)
	}
	plain := func(h Header, ps ...Payload) []byte {
		b, err := (&Message{Header: h, Payloads: ps}).Encode()
		if err != nil {
			panic(err)
		}
		return b
	}
	other := h
	other.SPIr = Cookie{0xba, 0xd0, 0xc0, 0x01, 0xe0, 0, 0, 1}
	info := h
	info.Exchange, info.MessageID = ExchangeInformational, binary.BigEndian.Uint32(random(4))
	out := [][]byte{
		// The attack the review confirmed: encrypted, no payloads.
		enc(h, PayloadNone, random(32)),
		enc(h, PayloadHash, random(64)),
		enc(h, PayloadID, random(48)),
		// Cleartext that does not belong at any step, or is broken.
		plain(h),
		plain(h, &Data{T: PayloadNonce, Data: random(32)}),
		plain(h, &Data{T: PayloadKE, Data: make([]byte, 256)}, &Data{T: PayloadNonce, Data: random(32)}),
		// Another responder cookie (an initiator learns it from message 2).
		plain(other, &Data{T: PayloadNonce, Data: random(32)}),
		enc(info, PayloadHash, random(64)),
		enc(info, PayloadNone, random(16)),
	}
	if withKeys {
		// Once encryption has started, nothing in clear counts: not an
		// error, not a delete.
		cookies := append(append([]byte(nil), h.SPIi[:]...), h.SPIr[:]...)
		out = append(out,
			plain(info, &Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Kind: NotifyAuthenticationFailed, SPI: cookies}),
			plain(info, &Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Kind: NotifyInvalidIDInformation, SPI: cookies}),
			plain(info, &Delete{DOI: DOIIPsec, Protocol: ProtoISAKMP, SPISize: 16, SPIs: [][]byte{cookies}}))
	}
	return out
}

func totalDrops(m *Manager) uint64 {
	var n uint64
	for _, v := range m.Drops() {
		n += v
	}
	return n
}

// forge sends the forgeries for the one message in flight (from the
// sender named) to its receiver, from the sender's address, before that
// message arrives.
func (p *pair) forge(from string, withKeys bool) {
	p.t.Helper()
	if len(p.wire) != 1 {
		p.t.Fatalf("%d messages in flight, want 1", len(p.wire))
	}
	d := p.wire[0]
	h, err := ParseHeader(d.b)
	if err != nil {
		p.t.Fatal(err)
	}
	to, host := p.b, p.hb
	if from == "B" {
		to, host = p.a, p.ha
	}
	events, drops := len(host.events), totalDrops(to)
	fs := forgeries(h, withKeys)
	for i, f := range fs {
		to.Receive(f, d.to, d.from)
		if len(p.wire) != 1 || !bytes.Equal(p.wire[0].b, d.b) {
			p.t.Fatalf("forgery %d to %s drew an answer (%d messages in flight)", i, host.name, len(p.wire))
		}
	}
	if len(host.events) != events {
		p.t.Fatalf("forgeries made %s report: %+v", host.name, host.events[events:])
	}
	if got := totalDrops(to) - drops; got != uint64(len(fs)) {
		p.t.Fatalf("%s counted %d of %d forgeries as dropped: %v", host.name, got, len(fs), to.Drops())
	}
}

// TestForgeriesInMainAndQuickMode: forgeries before each of the six main
// mode messages, the three quick mode messages and after, and the tunnel
// still comes up with the genuine messages.
func TestForgeriesInMainAndQuickMode(t *testing.T) {
	p := newPair(t, true)
	for _, c := range []*PeerConfig{p.pa, p.pb} {
		c.PFS = 14 // quick mode with a KE as well
	}
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, msg1...) // (a forged first message is just another SA)
	p.forge("B", false)
	p.step("B", ExchangeMain, false, msg2...)
	p.forge("A", false)
	p.step("A", ExchangeMain, false, msg3...)
	p.forge("B", false)
	p.step("B", ExchangeMain, false, msg3...)
	p.forge("A", true)
	p.step("A", ExchangeMain, true) // HDR*, IDii, HASH_I
	p.forge("B", true)
	p.step("B", ExchangeMain, true) // HDR*, IDir, HASH_R
	for _, h := range []*testHost{p.ha, p.hb} {
		if h.event(EventIKEUp) == nil {
			t.Fatalf("%s: no IKE SA up: %+v", h.name, h.events)
		}
	}
	p.forge("A", true)
	p.step("A", ExchangeQuick, true) // HASH(1), SA, Ni, KE, IDci, IDcr
	p.forge("B", true)
	p.step("B", ExchangeQuick, true) // HASH(2), SA, Nr, KE, IDci, IDcr
	p.forge("A", true)
	p.step("A", ExchangeQuick, true) // HASH(3)
	p.checkChildren("aes128gcm16", true)

	// Informational: a DPD probe, with forgeries in front of it and of
	// its answer. The SAs stay.
	sa := p.a.sas[p.a.SAs()[0].SPIi]
	p.a.mu.Lock()
	p.a.sendDPD(sa, NotifyRUThere, 7)
	p.a.mu.Unlock()
	p.forge("A", true)
	p.step("A", ExchangeInformational, true)
	p.forge("B", true)
	p.step("B", ExchangeInformational, true)
	p.checkChildren("aes128gcm16", true)
	if len(p.a.SAs()) != 1 || len(p.b.SAs()) != 1 || len(p.wire) != 0 {
		t.Fatalf("after the forgeries: A %d, B %d IKE SAs, %d messages in flight", len(p.a.SAs()), len(p.b.SAs()), len(p.wire))
	}
}

// TestForgeriesInAggressiveMode: the same for aggressive mode's three
// messages.
func TestForgeriesInAggressiveMode(t *testing.T) {
	p := aggressivePair(t)
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeAggressive, false)
	p.forge("B", false)
	p.step("B", ExchangeAggressive, false)
	// A is done and sends HDR*, HASH_I and its quick mode at once.
	d, qm := p.wire[0], append([]datagram(nil), p.wire[1:]...)
	p.wire = []datagram{d}
	p.forge("A", true)
	p.wire = nil
	p.b.Receive(d.b, d.to, d.from)
	p.wire = append(p.wire, qm...)
	for _, h := range []*testHost{p.ha, p.hb} {
		if h.event(EventIKEUp) == nil {
			t.Fatalf("%s: no IKE SA: %+v", h.name, h.events)
		}
	}
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
}

// TestForgedQuickModeKeepsItsMessageID: a forged first quick mode message
// with the ID the genuine one will use does not take the ID: the genuine
// one, right after, still runs.
func TestForgedQuickModeKeepsItsMessageID(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	p.forge("A", true) // before QM1, with its message ID
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
}

// TestReplayedQuickMode: a captured first quick mode message sent again
// after its exchange is forgotten makes no SA and draws no answer.
func TestReplayedQuickMode(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	qm1 := p.wire[0]
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
	p.tick(40 * time.Second) // past finishedKeep: the exchange is forgotten
	p.wire = p.wire[:0]
	inbound := len(p.hb.inbound)
	p.b.Receive(qm1.b, qm1.to, qm1.from)
	if len(p.wire) != 0 || len(p.hb.inbound) != inbound {
		t.Fatalf("the replay drew %d answers and made %d inbound SAs", len(p.wire), len(p.hb.inbound)-inbound)
	}
	if p.b.Drops()[DropReplayed] != 1 {
		t.Fatalf("replay not counted: %v", p.b.Drops())
	}
}
