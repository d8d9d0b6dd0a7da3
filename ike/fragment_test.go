package ike

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// TestFragmentedMainMode: with a small fragment size, RSA main mode's
// messages 5 and 6 (CERT, SIG) go in fragments both ways and are
// reassembled; quick mode follows on the SA.
func TestFragmentedMainMode(t *testing.T) {
	p := certPair(t, "rsa")
	p.a.fragSize, p.b.fragSize = 576, 576
	p.mainModeSig()
	if p.fragmented < 2 {
		t.Fatalf("%d messages went in fragments; want messages 5 and 6 at least", p.fragmented)
	}
	p.checkCertSAs("rsa-sig")
	p.quickMode()
	p.checkChildren("aes128gcm16", true)
}

// TestNoFragmentationWithoutVendorID: a peer that does not announce
// fragmentation gets whole messages.
func TestNoFragmentationWithoutVendorID(t *testing.T) {
	p := certPair(t, "rsa")
	p.a.fragSize, p.b.fragSize = 576, 576
	p.pb.NoFragmentation = true
	if err := p.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	p.step("A", ExchangeMain, false, msg1...)
	p.step("B", ExchangeMain, false, PayloadSA, PayloadVendorID) // no fragmentation VID back
	p.step("A", ExchangeMain, false, msg3Sig...)
	p.step("B", ExchangeMain, false, msg3Sig...)
	p.step("A", ExchangeMain, true)
	p.step("B", ExchangeMain, true)
	if p.fragmented != 0 {
		t.Fatalf("%d messages fragmented for a peer that did not ask", p.fragmented)
	}
	p.checkCertSAs("rsa-sig")
}

// fragments cuts a message into n fragment messages, as a peer would.
func fragments(t *testing.T, whole []byte, n int, id uint16) [][]byte {
	h, err := ParseHeader(whole)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	size := (len(whole) + n - 1) / n
	for i := 0; i < n; i++ {
		part := whole[i*size : min((i+1)*size, len(whole))]
		m := &Message{Header: Header{SPIi: h.SPIi, SPIr: h.SPIr, Version: Version, Exchange: ExchangeMain},
			Payloads: []Payload{&Fragment{ID: id, Number: uint8(i + 1), Last: i == n-1, Data: part}}}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// TestReassembly: fragments out of order and repeated make the message
// once; past the limits, or claiming other cookies, they make nothing;
// half-done messages go after the timeout.
func TestReassembly(t *testing.T) {
	p := newPair(t, true)
	m := p.b
	whole, _ := mainMode1().Encode()
	from := netip.MustParseAddrPort("192.0.2.1:500")
	feed := func(b []byte) []byte {
		h, err := ParseHeader(b)
		if err != nil {
			t.Fatal(err)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.reassemble(h, b, from)
	}
	fr := fragments(t, whole, 4, 1)
	for _, i := range []int{2, 0, 0, 3} {
		if got := feed(fr[i]); got != nil {
			t.Fatalf("complete after fragment %d of 4", i+1)
		}
	}
	if got := feed(fr[1]); !bytes.Equal(got, whole) {
		t.Fatalf("reassembled %d bytes, want the %d-byte message", len(got), len(whole))
	}
	if len(m.frags) != 0 {
		t.Fatal("the buffer outlived its message")
	}

	// Seventeen fragments: past the limit, dropped.
	for _, b := range fragments(t, append(bytes.Clone(whole), make([]byte, 200)...), maxFragments+1, 2) {
		if feed(b) != nil {
			t.Fatal("a message of 17 fragments was reassembled")
		}
	}
	// A fragment past the last one ends the buffer.
	fr = fragments(t, whole, 3, 3)
	feed(fr[2])
	h, _ := ParseHeader(fr[0])
	extra := &Message{Header: h, Payloads: []Payload{&Fragment{ID: 3, Number: 5, Data: []byte{1}}}}
	eb, _ := extra.Encode()
	feed(eb)
	if feed(fr[0]) != nil || feed(fr[1]) != nil {
		t.Fatal("reassembled around a fragment numbered past the last")
	}

	// Unfinished buffers expire.
	feed(fragments(t, whole, 2, 4)[0])
	p.now = p.now.Add(fragTimeout + time.Second)
	feed(fragments(t, whole, 2, 5)[0])
	if len(m.frags) != 1 {
		t.Fatalf("%d buffers; the expired one should be gone", len(m.frags))
	}

	// Through Receive: a reassembled message whose cookies differ from
	// its fragments' is dropped, and nothing answers.
	other := bytes.Clone(whole)
	other[0] ^= 0xff
	fr = fragments(t, whole, 2, 6)
	for i := range fr {
		copy(fr[i][:8], other[:8]) // the fragments claim another initiator cookie
	}
	p.wire = nil
	for _, b := range fr {
		m.Receive(b, netip.MustParseAddrPort("192.0.2.2:500"), from)
	}
	if len(p.wire) != 0 || len(m.SAs()) != 0 {
		t.Fatalf("a mismatched reassembly was handled: %d sent, %d SAs", len(p.wire), len(m.SAs()))
	}
}

func TestParseFragment(t *testing.T) {
	f, err := ParseFragment([]byte{0, 1, 2, 1, 0xaa, 0xbb})
	if err != nil || f.ID != 1 || f.Number != 2 || !f.Last || !bytes.Equal(f.Data, []byte{0xaa, 0xbb}) {
		t.Fatalf("%+v %v", f, err)
	}
	if !bytes.Equal(f.appendBody(nil), []byte{0, 1, 2, 1, 0xaa, 0xbb}) {
		t.Fatal("round trip")
	}
	for _, bad := range [][]byte{nil, {0, 1, 1, 0}, {0, 1, 0, 0, 1}} {
		if _, err := ParseFragment(bad); err == nil {
			t.Fatalf("%x accepted", bad)
		}
	}
	if !fragmentVendor(vidFragmentation) || !fragmentVendor(append(md5Sum("FRAGMENTATION"), 0xc0, 0, 0, 0)) || fragmentVendor(vidDPD) {
		t.Fatal("vendor ID recognition")
	}
}

// TestFragmentsNeedTheirSA: fragments take reassembly space only for an
// IKE SA that exists, from its peer's address, and one peer holds at most
// maxFragBuffersPerPeer messages in pieces; the rest are dropped and
// counted.
func TestFragmentsNeedTheirSA(t *testing.T) {
	p := newPair(t, true)
	p.mainMode()
	var sa SAInfo = p.b.SAs()[0]
	whole, _ := (&Message{Header: Header{SPIi: sa.SPIi, SPIr: sa.SPIr, Version: Version, Exchange: ExchangeMain},
		Payloads: []Payload{&Data{T: PayloadNonce, Data: make([]byte, 64)}}}).Encode()
	peer, stranger := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("203.0.113.66:500")
	us := netip.MustParseAddrPort("192.0.2.2:500")
	// For no SA at all, from anyone.
	unknown := bytes.Clone(whole)
	unknown[0] ^= 0xff
	for _, b := range fragments(t, unknown, 2, 1)[:1] {
		p.b.Receive(b, us, stranger)
	}
	// For B's SA, but from another address.
	for _, b := range fragments(t, whole, 2, 2)[:1] {
		p.b.Receive(b, us, stranger)
	}
	if len(p.b.frags) != 0 || p.b.Drops()[DropFragments] != 2 {
		t.Fatalf("%d buffers, %d fragments dropped; want none kept, 2 dropped", len(p.b.frags), p.b.Drops()[DropFragments])
	}
	// From the peer: the first pieces of five messages; four are kept.
	for id := uint16(10); id < 15; id++ {
		p.b.Receive(fragments(t, whole, 2, id)[0], us, peer)
	}
	if len(p.b.frags) != maxFragBuffersPerPeer || p.b.Drops()[DropFragments] != 3 {
		t.Fatalf("%d buffers from one peer (want %d), %d dropped", len(p.b.frags), maxFragBuffersPerPeer, p.b.Drops()[DropFragments])
	}
}
