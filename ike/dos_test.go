package ike

import (
	"crypto/rand"
	"net/netip"
	"testing"
	"time"
)

// firstMessage is a main mode message 1 with a fresh cookie.
func firstMessage(t testing.TB, p *pair) []byte {
	t.Helper()
	var ck Cookie
	rand.Read(ck[:])
	m := Message{Header: Header{SPIi: ck, Version: Version, Exchange: ExchangeMain},
		Payloads: []Payload{Phase1Offer(p.pa.Proposals, p.pa.Auth, time.Hour)}}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A flood of first messages, from one address and from many, fills no
// more than the half-open limits, is counted, leaves the established
// client alone, and drains when its negotiations time out.
func TestHalfOpenLimits(t *testing.T) {
	p := remoteAccessPair(t)
	p.mainMode()
	p.quickMode()
	p.b.maxHalfOpen, p.b.maxHalfOpenPerSource = 100, 10
	server := netip.MustParseAddrPort("192.0.2.2:500")
	for range 1000 {
		p.b.Receive(firstMessage(t, p), server, netip.MustParseAddrPort("203.0.113.66:500"))
	}
	if n, dropped := p.b.HalfOpen(); n != 10 || dropped != 990 {
		t.Fatalf("one source: %d half-open, %d dropped; want 10 and 990", n, dropped)
	}
	for i := range 1000 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 500)
		p.b.Receive(firstMessage(t, p), server, src)
	}
	if n, dropped := p.b.HalfOpen(); n != 100 || dropped != 990+910 {
		t.Fatalf("many sources: %d half-open, %d dropped; want 100 and 1900", n, dropped)
	}
	if len(p.b.SAs()) != 101 || len(p.hb.children) != 1 {
		t.Fatalf("%d IKE SAs and %d children: want the client's and 100 half-open, and its child", len(p.b.SAs()), len(p.hb.children))
	}
	p.wire = nil
	// Unanswered, they time out (five retransmissions) and the count drains.
	for range 70 {
		p.tick(time.Second)
	}
	p.wire = nil
	if n, _ := p.b.HalfOpen(); n != 0 || len(p.b.SAs()) != 1 {
		t.Fatalf("after the timeouts: %d half-open, %d IKE SAs", n, len(p.b.SAs()))
	}
	// The client's SA still works: a new quick mode goes through.
	if err := p.a.startQuickMode(p.a.sas[p.a.SAs()[0].SPIi], p.pa.allPairs()[0]); err != nil {
		t.Fatal(err)
	}
	p.quickMode()
	// And a legitimate client gets in again once the flood is over.
	p.b.Receive(firstMessage(t, p), server, netip.MustParseAddrPort("203.0.113.66:500"))
	if n, _ := p.b.HalfOpen(); n != 1 {
		t.Fatalf("after the flood a first message was not taken (%d half-open)", n)
	}
}

// BenchmarkFirstMessageFlood is what one spoofed main mode first message
// costs the responder when the half-open limit is already reached.
func BenchmarkFirstMessageFlood(b *testing.B) {
	p := remoteAccessPair(&testing.T{})
	p.b.maxHalfOpen, p.b.maxHalfOpenPerSource = 10, 10
	server := netip.MustParseAddrPort("192.0.2.2:500")
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = firstMessage(b, p)
	}
	for i := range 10 {
		p.b.Receive(msgs[i], server, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(i)}), 500))
	}
	src := netip.MustParseAddrPort("198.18.1.1:500")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p.b.Receive(msgs[i%len(msgs)], server, src)
		i++
	}
	if _, dropped := p.b.HalfOpen(); dropped == 0 {
		b.Fatal("nothing dropped")
	}
}
