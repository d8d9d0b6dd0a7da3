package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/gatehouse/gatehouse/esp"
)

// superPacket builds a TCP packet with payloadLen bytes, as the kernel hands
// it to a TUN with TSO: one header, one big payload.
func superPacket(src, dst netip.Addr, payloadLen int, flags uint8) []byte {
	ipHL := 20
	if src.Is6() {
		ipHL = 40
	}
	p := make([]byte, ipHL+20+payloadLen)
	if src.Is4() {
		esp.PutIPv4Header(p, src, dst, esp.ProtoTCP, 64, 50, 20+payloadLen)
	} else {
		p[0] = 0x60
		binary.BigEndian.PutUint16(p[4:], uint16(20+payloadLen))
		p[6], p[7] = esp.ProtoTCP, 64
		copy(p[8:], src.AsSlice())
		copy(p[24:], dst.AsSlice())
	}
	tcp := p[ipHL:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	binary.BigEndian.PutUint32(tcp[4:], 1000)
	binary.BigEndian.PutUint32(tcp[8:], 77)
	tcp[12], tcp[13] = 5<<4, flags
	for i := range tcp[20:] {
		tcp[20+i] = byte(i)
	}
	return p
}

func outBufs(n, size int) ([][]byte, []int) {
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, size)
	}
	return out, make([]int, n)
}

func TestSegmentTCP(t *testing.T) {
	for _, fam := range []struct {
		src, dst netip.Addr
		gso      uint8
		ipHL     int
	}{
		{netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), VirtioNetHdrGSOTCPv4, 20},
		{netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::10"), VirtioNetHdrGSOTCPv6, 40},
	} {
		const mss, total = 1000, 3500
		pkt := superPacket(fam.src, fam.dst, total, 0x80|0x10|0x08|0x01) // CWR ACK PSH FIN
		out, sizes := outBufs(8, 1500)
		n, err := Segment(pkt, VirtioNetHdr{GSOType: fam.gso, GSOSize: mss, Flags: VirtioNetHdrFNeedsCsum}, out, sizes)
		if err != nil || n != 4 {
			t.Fatalf("%s: n=%d err=%v", fam.src, n, err)
		}
		var payload []byte
		for i := 0; i < n; i++ {
			seg := out[i][:sizes[i]]
			info, err := esp.ParseIP(seg)
			if err != nil || info.TotalLen != len(seg) {
				t.Fatalf("segment %d: %+v %v", i, info, err)
			}
			if fam.src.Is4() {
				if esp.Checksum(seg[:20], 0) != 0 || binary.BigEndian.Uint16(seg[4:]) != uint16(50+i) {
					t.Fatalf("segment %d: IPv4 header checksum or ID wrong", i)
				}
			}
			tcp := seg[fam.ipHL:]
			if esp.Checksum(tcp, pseudoSum(fam.src, fam.dst, esp.ProtoTCP, len(tcp))) != 0 {
				t.Fatalf("segment %d: TCP checksum does not verify", i)
			}
			if seq := binary.BigEndian.Uint32(tcp[4:]); seq != uint32(1000+i*mss) {
				t.Fatalf("segment %d: seq %d", i, seq)
			}
			f := tcp[13]
			last, first := i == n-1, i == 0
			if (f&0x01 != 0) != last || (f&0x08 != 0) != last || (f&0x80 != 0) != first || f&0x10 == 0 {
				t.Fatalf("segment %d: flags %08b", i, f)
			}
			payload = append(payload, tcp[20:]...)
		}
		if !bytes.Equal(payload, pkt[fam.ipHL+20:]) || sizes[3] != fam.ipHL+20+500 {
			t.Fatalf("%s: payload not preserved (last size %d)", fam.src, sizes[3])
		}
	}
}

// Without GSO the kernel may still leave the checksum to us.
func TestSegmentCompletesPartialChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10")
	pkt := make([]byte, 20+8+5)
	esp.PutIPv4Header(pkt, src, dst, esp.ProtoUDP, 64, 1, 13)
	udp := pkt[20:]
	binary.BigEndian.PutUint16(udp[4:], 13)
	copy(udp[8:], "hello")
	// CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum.
	ps := esp.PseudoHeaderSum(src, dst, esp.ProtoUDP, 13)
	for ps>>16 != 0 {
		ps = ps&0xffff + ps>>16
	}
	binary.BigEndian.PutUint16(udp[6:], uint16(ps))
	out, sizes := outBufs(1, 1500)
	n, err := Segment(pkt, VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, CsumStart: 20, CsumOffset: 6}, out, sizes)
	if err != nil || n != 1 || sizes[0] != len(pkt) {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if esp.Checksum(out[0][20:sizes[0]], esp.PseudoHeaderSum(src, dst, esp.ProtoUDP, 13)) != 0 {
		t.Fatal("completed checksum does not verify")
	}
}

func TestSegmentRefuses(t *testing.T) {
	v4 := superPacket(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), 3000, 0x10)
	udp := make([]byte, 28)
	esp.PutIPv4Header(udp, netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), esp.ProtoUDP, 64, 1, 8)
	out, sizes := outBufs(2, 1500)
	for name, c := range map[string]struct {
		pkt []byte
		hdr VirtioNetHdr
	}{
		"UDP GSO type":           {v4, VirtioNetHdr{GSOType: 3, GSOSize: 1000}},
		"TCP GSO on UDP":         {udp, VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv4, GSOSize: 1000}},
		"v6 type on v4":          {v4, VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv6, GSOSize: 1000}},
		"MSS zero":               {v4, VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv4}},
		"more segments than out": {v4, VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv4, GSOSize: 500}},
		"checksum offset beyond": {udp, VirtioNetHdr{Flags: VirtioNetHdrFNeedsCsum, CsumStart: 20, CsumOffset: 60}},
		"truncated":              {v4[:30], VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv4, GSOSize: 1000}},
	} {
		if _, err := Segment(c.pkt, c.hdr, out, sizes); !errors.Is(err, ErrGSO) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVirtioNetHdrRoundTrip(t *testing.T) {
	h := VirtioNetHdr{Flags: 1, GSOType: 4, HdrLen: 60, GSOSize: 1388, CsumStart: 40, CsumOffset: 16}
	b := make([]byte, VirtioNetHdrLen)
	h.Encode(b)
	if got, err := DecodeVirtioNetHdr(b); err != nil || got != h {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := DecodeVirtioNetHdr(b[:9]); !errors.Is(err, ErrGSO) {
		t.Fatal("short header accepted")
	}
}

func TestSegmentDoesNotAllocate(t *testing.T) {
	pkt := superPacket(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), 60000, 0x10)
	out, sizes := outBufs(64, 1500)
	hdr := VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv4, GSOSize: 1360}
	if n := testing.AllocsPerRun(50, func() { Segment(pkt, hdr, out, sizes) }); n != 0 {
		t.Fatalf("%.0f allocations", n)
	}
}

func FuzzSegment(f *testing.F) {
	f.Add(superPacket(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), 2500, 0x19), []byte{1, 1, 0, 0, 0xe8, 3, 20, 0, 16, 0})
	f.Add([]byte{0x45, 0, 0, 20}, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	// IPv6 (GSO type 4), 2,500 bytes of payload in MSS-1000 segments.
	f.Add(superPacket(netip.MustParseAddr("2001:db8:1::10"), netip.MustParseAddr("2001:db8:2::10"), 2500, 0x19), []byte{1, 4, 0, 0, 0xe8, 3, 40, 0, 16, 0})
	out, sizes := outBufs(48, 1500)
	f.Fuzz(func(t *testing.T, pkt, hdrBytes []byte) {
		hdr, err := DecodeVirtioNetHdr(hdrBytes)
		if err != nil {
			return
		}
		n, err := Segment(pkt, hdr, out, sizes)
		if err == nil && (n < 1 || n > len(out)) {
			t.Fatalf("n=%d", n)
		}
	})
}

// BenchmarkSegment64K: one 64 KiB TSO super-packet into MSS-1360 segments.
func BenchmarkSegment64K(b *testing.B) {
	pkt := superPacket(netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.2.0.10"), 65000, 0x10)
	out, sizes := outBufs(64, 1500)
	hdr := VirtioNetHdr{GSOType: VirtioNetHdrGSOTCPv4, GSOSize: 1360}
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Segment(pkt, hdr, out, sizes); err != nil {
			b.Fatal(err)
		}
	}
}
