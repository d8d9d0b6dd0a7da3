package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/gatehouse/gatehouse/esp"
)

// bigPolicy builds n rules shaped like a large site-to-site hub: tunnel rule
// pairs between /24s, with every tenth rule a port-specific block.
func bigPolicy(n int) *Policy {
	suite, _ := esp.ParseSuite("aes128gcm16")
	action := FilterAction{Action: Negotiate, Offers: []Offer{{Suite: suite}}}
	local := netip.MustParseAddr("203.0.113.1")
	var rules []*Rule
	for i := 0; len(rules) < n; i++ {
		l := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24)
		r := netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(i>>8&15), byte(i), 0}), 24)
		if i%10 == 9 {
			rules = append(rules, &Rule{Name: "block", Action: FilterAction{Action: Block},
				Filters: []Filter{{Src: Addr{Any: true}, Dst: Addr{Prefix: l}, Proto: 6, DstPort: uint16(1000 + i), Mirrored: true}}})
			continue
		}
		rules = append(rules,
			&Rule{Name: "out", Tunnel: netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), Dir: Outbound, Action: action, Filters: []Filter{{Src: Addr{Prefix: l}, Dst: Addr{Prefix: r}}}},
			&Rule{Name: "in", Tunnel: local, Dir: Inbound, Action: action, Filters: []Filter{{Src: Addr{Prefix: r}, Dst: Addr{Prefix: l}}}})
	}
	for i, r := range rules {
		r.Seq = i
	}
	return New(rules[:n], "windows2003", []string{"ike"}, []netip.Addr{local})
}

// linear is the reference: scan entries in weight order.
func linear(p *Policy, dir Direction, pkt Packet) *Entry {
	match := func(a Addr, x netip.Addr) bool {
		return a.Any || a.Prefix.Contains(x)
	}
	for _, e := range p.Entries {
		if e.Dir != dir || !match(e.Src, pkt.Src) || !match(e.Dst, pkt.Dst) {
			continue
		}
		if (e.Proto != 0 && e.Proto != pkt.Proto) || (e.SrcPort != 0 && e.SrcPort != pkt.SrcPort) || (e.DstPort != 0 && e.DstPort != pkt.DstPort) {
			continue
		}
		if accepts(e, &pkt, false) {
			return e
		}
	}
	return nil
}

func randomPacket(r *rand.Rand) Packet {
	i := r.IntN(1200)
	p := Packet{Proto: 6, SrcPort: uint16(r.IntN(65536)), DstPort: uint16(1000 + r.IntN(1200))}
	src := netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(r.IntN(256))})
	dst := netip.AddrFrom4([4]byte{172, 16 + byte(i>>8&15), byte(r.IntN(256)), byte(r.IntN(256))})
	if r.IntN(2) == 0 {
		src, dst = dst, src
	}
	p.Src, p.Dst = src, dst
	return p
}

func TestIndexAgreesWithLinearScan(t *testing.T) {
	p := bigPolicy(2000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		pkt := randomPacket(r)
		for _, dir := range []Direction{Outbound, Inbound} {
			got := p.Lookup(dir, pkt).Entry
			if want := linear(p, dir, pkt); got != want {
				t.Fatalf("%s %s: index %+v, linear %+v", dir, pkt, got, want)
			}
		}
	}
}

func BenchmarkLookup10000Rules(b *testing.B) {
	p := bigPolicy(10000)
	hit := Packet{Src: netip.MustParseAddr("10.3.200.5"), Dst: netip.MustParseAddr("172.19.200.9"), Proto: 6, SrcPort: 4000, DstPort: 443}
	miss := Packet{Src: netip.MustParseAddr("192.0.2.5"), Dst: netip.MustParseAddr("198.51.100.9"), Proto: 17, SrcPort: 4000, DstPort: 53}
	if p.Lookup(Outbound, hit).Entry == nil {
		b.Fatal("hit packet does not match")
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Lookup(Outbound, hit)
		}
	})
	b.Run("miss", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Lookup(Outbound, miss)
		}
	})
	b.Run("linear-reference", func(b *testing.B) {
		for b.Loop() {
			linear(p, Outbound, hit)
		}
	})
}

func BenchmarkBuild10000Rules(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		bigPolicy(10000)
	}
}
