package esp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func ahPair(t *testing.T, name string, esn bool) (*AH, *AH) {
	t.Helper()
	s, err := ParseSuite(name)
	if err != nil {
		t.Fatal(err)
	}
	_, ik := testKeys(s)
	cfg := Config{SPI: 0x1234, Suite: s, IntegKey: ik, ESN: esn}
	out, err := NewAH(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewAH(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	return out, in
}

func ipv4Packet(payload string) []byte {
	p := make([]byte, IPv4HeaderLen+len(payload))
	PutIPv4Header(p, netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("198.51.100.2"), ProtoUDP, 64, 99, len(payload))
	copy(p[IPv4HeaderLen:], payload)
	return p
}

func TestAHTransportRoundTrip(t *testing.T) {
	for _, name := range []string{"ah-sha1", "ah-sha256"} {
		for _, esn := range []bool{false, true} {
			out, in := ahPair(t, name, esn)
			orig := ipv4Packet("udp header and data")
			buf := make([]byte, out.Len()+len(orig))
			copy(buf[out.Len():], orig)
			pkt, err := out.ProtectTransport(buf)
			if err != nil {
				t.Fatal(err)
			}
			if pkt[9] != 51 || Checksum(pkt[:20], 0) != 0 || len(pkt) != len(orig)+out.Len() {
				t.Fatalf("%s: protected header wrong: %x", name, pkt[:20])
			}
			// Routers change TTL and the checksum on the way: still valid.
			pkt[8]--
			fwd := append([]byte(nil), pkt...)
			got, nh, err := in.Verify(pkt)
			if err != nil || nh != ProtoUDP {
				t.Fatalf("%s: Verify: %v", name, err)
			}
			want := append([]byte(nil), orig...)
			want[8]--
			PutIPv4Header(want, netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("198.51.100.2"), ProtoUDP, 63, 99, len(orig)-20)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: restored\n%x\nwant\n%x", name, got, want)
			}
			if _, _, err := in.Verify(fwd); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay: %v", err)
			}
		}
	}
}

func TestAHTunnelAndTamper(t *testing.T) {
	out, in := ahPair(t, "ah-sha256", false)
	inner := ipv4Packet("inner packet")
	buf := make([]byte, IPv4HeaderLen+out.Len()+len(inner))
	copy(buf[IPv4HeaderLen+out.Len():], inner)
	pkt, err := out.ProtectTunnel(buf, len(inner), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), 64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []int{12, 19, IPv4HeaderLen + 8, len(pkt) - 1} { // src, dst, seq, payload: all covered
		bad := append([]byte(nil), pkt...)
		bad[at] ^= 1
		if at == 12 || at == 19 {
			bad[10], bad[11] = 0, 0 // keep the header checksum irrelevant
		}
		if _, _, err := in.Verify(bad); !errors.Is(err, ErrAuth) {
			t.Fatalf("byte %d changed: %v", at, err)
		}
	}
	got, nh, err := in.Verify(pkt)
	if err != nil || nh != ProtoIPv4 || !bytes.Equal(got, inner) {
		t.Fatalf("tunnel Verify: %v nh=%d", err, nh)
	}
	for _, bad := range [][]byte{pkt[:10], pkt[:IPv4HeaderLen+4], ipv4Packet("not ah")} {
		if _, _, err := in.Verify(append([]byte(nil), bad...)); err == nil {
			t.Fatalf("%x accepted", bad)
		}
	}
	if in.Stats.AuthFailures.Load() != 4 || in.Stats.Packets.Load() != 1 {
		t.Fatalf("counters: auth %d packets %d", in.Stats.AuthFailures.Load(), in.Stats.Packets.Load())
	}
}

func TestAHRejects(t *testing.T) {
	gcm, _ := ParseSuite("aes128gcm16")
	if _, err := NewAH(Config{Suite: gcm}, false); err == nil {
		t.Fatal("ESP suite accepted for AH")
	}
	ah, _ := ParseSuite("ah-sha1")
	if _, err := NewAH(Config{Suite: ah, IntegKey: []byte{1}}, false); !errors.Is(err, ErrKeyLength) {
		t.Fatalf("short key: %v", err)
	}
	out, _ := ahPair(t, "ah-sha1", false)
	opt := ipv4Packet("x")
	opt[0] = 0x46
	if _, err := out.ProtectTransport(append(make([]byte, out.Len()), opt...)); err == nil {
		t.Fatal("IPv4 options accepted")
	}
}

func FuzzAHVerify(f *testing.F) {
	out, _ := ahPair(&testing.T{}, "ah-sha1", false)
	orig := ipv4Packet("seed")
	buf := append(make([]byte, out.Len()), orig...)
	pkt, _ := out.ProtectTransport(buf)
	f.Add(pkt)
	f.Add(pkt[:25])
	f.Fuzz(func(t *testing.T, p []byte) {
		_, in := ahPair(t, "ah-sha1", false)
		got, _, err := in.Verify(p)
		if err == nil && len(got) > len(p) {
			t.Fatal("output longer than input")
		}
	})
}

func TestAHDoesNotAllocate(t *testing.T) {
	out, in := ahPair(t, "ah-sha256", true)
	in.window, _ = NewWindow(MaxWindow)
	orig := ipv4Packet(string(make([]byte, 1400)))
	buf := make([]byte, out.Len()+len(orig))
	allocs := testing.AllocsPerRun(200, func() {
		copy(buf[out.Len():], orig)
		pkt, err := out.ProtectTransport(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := in.Verify(pkt); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet", allocs)
	}
}
