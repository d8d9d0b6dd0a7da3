package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/gatehouse/gatehouse/esp"
)

// segmentsOf cuts a super-packet as a TSO TUN read would, into packets
// with DeviceHeadroom in front, as the inbound path hands them on.
func segmentsOf(t *testing.T, src, dst netip.Addr, total, mss int, flags uint8) []Packet {
	t.Helper()
	gso := uint8(VirtioNetHdrGSOTCPv4)
	if src.Is6() {
		gso = VirtioNetHdrGSOTCPv6
	}
	out, sizes := outBufs(maxGROSegments+8, 1600)
	views := make([][]byte, len(out))
	for i := range out {
		views[i] = out[i][DeviceHeadroom:]
	}
	n, err := Segment(superPacket(src, dst, total, flags), VirtioNetHdr{GSOType: gso, GSOSize: uint16(mss)}, views, sizes)
	if err != nil {
		t.Fatal(err)
	}
	pkts := make([]Packet, n)
	for i := range pkts {
		pkts[i] = Packet{Buf: out[i], Off: DeviceHeadroom, Len: sizes[i]}
	}
	return pkts
}

func bytesOf(p Packet) []byte { return p.Buf[p.Off : p.Off+p.Len] }

// TestGROJoinRoundTrip joins segments and checks that the kernel's view of
// the result (segmenting it again) gives back exactly the same packets.
func TestGROJoinRoundTrip(t *testing.T) {
	for _, fam := range [][2]string{{"10.1.0.10", "10.2.0.10"}, {"2001:db8:1::10", "2001:db8:2::10"}} {
		src, dst := netip.MustParseAddr(fam[0]), netip.MustParseAddr(fam[1])
		pkts := segmentsOf(t, src, dst, 5300, 1000, tcpACK|tcpPSH)
		if n := groRun(pkts); n != len(pkts) {
			t.Fatalf("%s: run of %d, want all %d", src, n, len(pkts))
		}
		dstBuf := make([]byte, VirtioNetHdrLen+65535)
		l := joinTCP(dstBuf, pkts)
		hdr, err := DecodeVirtioNetHdr(dstBuf[:l])
		if err != nil || hdr.GSOSize != 1000 || hdr.Flags != VirtioNetHdrFNeedsCsum || hdr.CsumOffset != 16 {
			t.Fatalf("%s: header %+v %v", src, hdr, err)
		}
		joined := dstBuf[VirtioNetHdrLen:l]
		info, err := esp.ParseIP(joined)
		if err != nil || info.TotalLen != len(joined) {
			t.Fatalf("%s: joined packet %+v %v", src, info, err)
		}
		// Completing the partial checksum gives a valid one.
		full := bytes.Clone(joined)
		if err := completeCsum(full, hdr); err != nil || esp.Checksum(full[hdr.CsumStart:], pseudoSum(src, dst, esp.ProtoTCP, len(full)-int(hdr.CsumStart))) != 0 {
			t.Fatalf("%s: partial checksum does not complete to a valid one: %v", src, err)
		}
		out, sizes := outBufs(16, 1600)
		n, err := Segment(joined, hdr, out, sizes)
		if err != nil || n != len(pkts) {
			t.Fatalf("%s: re-segmented into %d (%v), want %d", src, n, err, len(pkts))
		}
		for i := range pkts {
			if !bytes.Equal(out[i][:sizes[i]], bytesOf(pkts[i])) {
				t.Fatalf("%s: segment %d differs after join and re-segmentation", src, i)
			}
		}
	}
}

func TestGRORunBoundaries(t *testing.T) {
	a, b := netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10")
	base := func() []Packet { return segmentsOf(t, a, b, 6000, 1000, tcpACK) }
	cases := []struct {
		name  string
		edit  func([]Packet) []Packet
		wantN int
	}{
		{"whole run", func(p []Packet) []Packet { return p }, 6},
		{"sequence gap", func(p []Packet) []Packet { return append(p[:2:2], p[3:]...) }, 2},
		{"PSH in the middle ends the run", func(p []Packet) []Packet { bytesOf(p[2])[20+13] |= tcpPSH; return p }, 3},
		{"PSH on the first: alone", func(p []Packet) []Packet { bytesOf(p[0])[20+13] |= tcpPSH; return p }, 1},
		{"SYN is never joined", func(p []Packet) []Packet { bytesOf(p[0])[20+13] |= tcpSYN; return p }, 1},
		{"FIN ends before it", func(p []Packet) []Packet { bytesOf(p[3])[20+13] |= tcpFIN; return p }, 3},
		{"other port", func(p []Packet) []Packet { bytesOf(p[4])[20+1]++; return p }, 4},
		{"other ack", func(p []Packet) []Packet { bytesOf(p[1])[20+11]++; return p }, 1},
		{"other window", func(p []Packet) []Packet { bytesOf(p[1])[20+15]++; return p }, 1},
		{"other TTL", func(p []Packet) []Packet { bytesOf(p[5])[8]--; return p }, 5},
		{"IPv4 fragment", func(p []Packet) []Packet { bytesOf(p[0])[6] |= 0x20; return p }, 1},
		{"a longer segment after", func(p []Packet) []Packet {
			q := segmentsOf(t, a, b, 3000, 1500, tcpACK)
			binary.BigEndian.PutUint32(bytesOf(q[0])[24:], 1000+2000)
			return append(p[:2:2], q[0])
		}, 2},
	}
	for _, c := range cases {
		pkts := c.edit(base())
		if n := groRun(pkts); n != c.wantN {
			t.Errorf("%s: run of %d, want %d", c.name, n, c.wantN)
		}
	}
	// A short segment is joined, and ends the run.
	p := segmentsOf(t, a, b, 2500, 1000, tcpACK)
	p = append(p, segmentsOf(t, a, b, 1000, 1000, tcpACK)...)
	if n := groRun(p); n != 3 {
		t.Errorf("short last segment: run of %d, want 3", n)
	}
	// No more than 64 segments, and never past 64 KiB.
	p = segmentsOf(t, a, b, 70*100, 100, tcpACK)
	if n := groRun(p); n != maxGROSegments {
		t.Errorf("70 small segments: run of %d, want %d", n, maxGROSegments)
	}
	p = segmentsOf(t, a, b, 40*1460, 1460, tcpACK)
	for _, q := range segmentsOf(t, a, b, 10*1460, 1460, tcpACK) {
		seq := bytesOf(q)[24:28]
		binary.BigEndian.PutUint32(seq, binary.BigEndian.Uint32(seq)+40*1460)
		p = append(p, q)
	}
	if n := groRun(p); n != 44 { // 44*1460+40 fits in 65535, 45 would not
		t.Errorf("64 full segments: run of %d does not fit 64 KiB tightly", n)
	}
}

func TestParseTCPSegRejectsJunk(t *testing.T) {
	for _, p := range [][]byte{nil, make([]byte, 19), make([]byte, 60), {0x45, 0, 0, 20, 0, 0, 0, 0, 64, 6}} {
		if parseTCPSeg(p).ok {
			t.Errorf("% x accepted", p)
		}
	}
}

func FuzzGRO(f *testing.F) {
	f.Add(superPacket(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), 100, tcpACK), 2)
	f.Add(superPacket(netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::10"), 100, tcpACK), 3)
	f.Fuzz(func(t *testing.T, data []byte, copies int) {
		copies = 1 + copies&7
		pkts := make([]Packet, copies)
		s := parseTCPSeg(data)
		for i := range pkts {
			b := make([]byte, DeviceHeadroom+len(data))
			copy(b[DeviceHeadroom:], data)
			if s.ok && i > 0 {
				// Each copy follows the one before it in the stream,
				// so that runs form and get joined.
				seq := b[DeviceHeadroom+s.ipHL+4:]
				binary.BigEndian.PutUint32(seq, s.seq+uint32(i*s.payload))
			}
			pkts[i] = Packet{Buf: b, Off: DeviceHeadroom, Len: len(data)}
		}
		n := groRun(pkts)
		if n <= 1 {
			return
		}
		// The super-packet carries every segment's payload in order,
		// behind the first one's headers, with its lengths and (IPv4)
		// header checksum right.
		dst := make([]byte, VirtioNetHdrLen+65535)
		l := joinTCP(dst, pkts[:n])
		pkt := dst[VirtioNetHdrLen:l]
		first := pkts[0].Buf[pkts[0].Off : pkts[0].Off+pkts[0].Len]
		s0 := parseTCPSeg(first)
		want := append([]byte(nil), first[:s0.hl]...)
		for _, p := range pkts[:n] {
			seg := p.Buf[p.Off : p.Off+p.Len]
			want = append(want, seg[parseTCPSeg(seg).hl:][:parseTCPSeg(seg).payload]...)
		}
		if len(pkt) != len(want) || !bytes.Equal(pkt[s0.hl:], want[s0.hl:]) {
			t.Fatalf("joined %d segments into %d bytes, want %d with the payloads in order", n, len(pkt), len(want))
		}
		if s0.v4 && (int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) || esp.Checksum(pkt[:20], 0) != 0) {
			t.Fatalf("IPv4 total length %d for %d bytes, or a bad header checksum", binary.BigEndian.Uint16(pkt[2:]), len(pkt))
		}
		if !s0.v4 && int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-40 {
			t.Fatalf("IPv6 payload length %d for %d bytes", binary.BigEndian.Uint16(pkt[4:]), len(pkt))
		}
	})
}

func TestGSOGroups(t *testing.T) {
	a, b := netip.MustParseAddrPort("192.0.2.2:4500"), netip.MustParseAddrPort("192.0.2.3:4500")
	mk := func(addr netip.AddrPort, sizes ...int) []Msg {
		var m []Msg
		for _, s := range sizes {
			m = append(m, Msg{Buf: make([]byte, s), Addr: addr})
		}
		return m
	}
	var msgs []Msg
	msgs = append(msgs, mk(a, 100, 100, 100, 60, 100)...) // short ends a run
	msgs = append(msgs, mk(b, 100, 120)...)               // other peer; a longer one starts anew
	msgs = append(msgs, mk(a, 0, 1500)...)                // empty: alone
	var got [][3]int
	gsoGroups(msgs, func(s, e, seg int) { got = append(got, [3]int{s, e, seg}) })
	want := [][3]int{{0, 4, 100}, {4, 5, 100}, {5, 6, 100}, {6, 7, 120}, {7, 8, 0}, {8, 9, 1500}}
	if len(got) != len(want) {
		t.Fatalf("groups %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("groups %v, want %v", got, want)
		}
	}
	got = nil
	gsoGroups(mk(a, make([]int, 100)...), func(s, e, seg int) { got = append(got, [3]int{s, e, seg}) })
	for _, g := range got {
		if g[1]-g[0] != 1 {
			t.Fatalf("zero-length datagrams grouped: %v", got)
		}
	}
	got = nil
	sizes := make([]int, 150)
	for i := range sizes {
		sizes[i] = 1400
	}
	gsoGroups(mk(a, sizes...), func(s, e, seg int) { got = append(got, [3]int{s, e, seg}) })
	for _, g := range got {
		if n := g[1] - g[0]; n > maxGSOSegments || n*1400 > maxGSOBytes {
			t.Fatalf("group %v too big", g)
		}
	}
}
