package sad

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/esp"
)

var gcm, _ = esp.ParseSuite("aes128gcm16")

func espCfg(spi uint32, events func(esp.Event)) esp.Config {
	return esp.Config{SPI: spi, Suite: gcm, EncKey: make([]byte, 20), OnEvent: events, Limits: esp.Limits{SoftTime: time.Minute, HardTime: time.Hour}}
}

func inSA(t testing.TB, spi uint32, name string) *InSA {
	in, err := esp.NewInbound(espCfg(spi, nil))
	if err != nil {
		t.Fatal(err)
	}
	return &InSA{Meta: Meta{Name: name, Mode: Tunnel}, ESP: in}
}

func outSA(t testing.TB, spi uint32, name string) *OutSA {
	o, err := esp.NewOutbound(espCfg(spi, nil))
	if err != nil {
		t.Fatal(err)
	}
	return &OutSA{Meta: Meta{Name: name, Mode: Tunnel}, ESP: o}
}

func TestInboundAndOutbound(t *testing.T) {
	db := New()
	if err := db.AddInbound(inSA(t, 0x100, "t")); err != nil {
		t.Fatal(err)
	}
	if err := db.AddInbound(inSA(t, 0x100, "t")); !errors.Is(err, ErrSPIInUse) {
		t.Fatalf("duplicate SPI: %v", err)
	}
	if db.Inbound(0x100) == nil || db.Inbound(0x101) != nil {
		t.Fatal("inbound lookup")
	}
	k := OutKey{Rule: "t/out", Peer: netip.MustParseAddr("198.51.100.2")}
	if old := db.SetOutbound(k, outSA(t, 0x200, "t")); old != nil {
		t.Fatal("replaced nothing")
	}
	// Rekey: the new outbound SA replaces the old in one step.
	if old := db.SetOutbound(k, outSA(t, 0x201, "t")); old == nil || old.SPI() != 0x200 {
		t.Fatalf("rekey replaced %v", old)
	}
	if db.Outbound(k).SPI() != 0x201 || db.Len() != 2 {
		t.Fatalf("after rekey: %08x, len %d", db.Outbound(k).SPI(), db.Len())
	}
	// A late delete of the old SA must not remove its successor.
	if _, err := db.RemoveOutbound(k, 0x200); !errors.Is(err, ErrNotFound) || db.Outbound(k) == nil {
		t.Fatalf("stale delete: %v", err)
	}
	if _, err := db.RemoveOutbound(k, 0x201); err != nil || db.Outbound(k) != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := db.RemoveInbound(0x100); err != nil || db.Len() != 0 {
		t.Fatalf("remove inbound: %v len %d", err, db.Len())
	}
	if _, err := db.RemoveInbound(0x100); !errors.Is(err, ErrNotFound) {
		t.Fatal("double remove")
	}
}

func TestRemoveSPI(t *testing.T) {
	db := New()
	db.AddInbound(inSA(t, 0x10, "x"))
	db.SetOutbound(OutKey{Rule: "r", Peer: netip.MustParseAddr("192.0.2.2")}, outSA(t, 0x20, "x"))
	if !db.RemoveSPI(0x20) || !db.RemoveSPI(0x10) || db.RemoveSPI(0x30) || db.Len() != 0 {
		t.Fatalf("RemoveSPI: len %d", db.Len())
	}
}

func TestSelectors(t *testing.T) {
	m := Meta{Selectors: []Selector{
		{Src: netip.MustParsePrefix("10.2.0.0/16"), Dst: netip.MustParsePrefix("10.1.0.0/16")},
		{Src: netip.MustParsePrefix("198.51.100.2/32"), Dst: netip.MustParsePrefix("203.0.113.1/32"), Proto: 17, SrcPort: 1701},
	}}
	a := netip.MustParseAddr
	for _, c := range []struct {
		src, dst     string
		proto        uint8
		sport, dport uint16
		ok           bool
	}{
		{"10.2.0.7", "10.1.0.5", 6, 1, 2, true},
		{"10.3.0.7", "10.1.0.5", 6, 1, 2, false},
		{"198.51.100.2", "203.0.113.1", 17, 1701, 1701, true},
		{"198.51.100.2", "203.0.113.1", 17, 1702, 1701, false},
		{"198.51.100.2", "203.0.113.1", 6, 1701, 1701, false},
	} {
		if got := m.AllowsInner(a(c.src), a(c.dst), c.proto, c.sport, c.dport); got != c.ok {
			t.Errorf("%+v: %v", c, got)
		}
	}
}

func TestListHasNoKeysAndTickExpires(t *testing.T) {
	db := New()
	var mu sync.Mutex
	var events []esp.Event
	in, _ := esp.NewInbound(espCfg(0xabc, func(e esp.Event) { mu.Lock(); events = append(events, e); mu.Unlock() }))
	db.AddInbound(&InSA{Meta: Meta{Name: "b"}, ESP: in})
	db.SetOutbound(OutKey{Rule: "a/out"}, outSA(t, 0xdef, "a"))
	list := db.List(time.Now())
	if len(list) != 2 || list[0].Name != "a" || list[0].Inbound || !list[1].Inbound || list[1].Suite != "aes128gcm16" || list[1].Backend != "software" {
		t.Fatalf("list: %+v", list)
	}
	if s := fmt.Sprintf("%+v", list); strings.Contains(s, "EncKey") {
		t.Fatal("snapshot exposes keys")
	}
	db.Tick(time.Now().Add(2 * time.Minute))
	db.Tick(time.Now().Add(2 * time.Hour))
	if len(events) != 2 || events[0].Kind != esp.SoftExpire || events[1].Kind != esp.HardExpire || events[1].SPI != 0xabc {
		t.Fatalf("events: %+v", events)
	}
}

func TestConcurrentUse(t *testing.T) {
	db := New()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				spi := uint32(w<<16 | i + 1)
				db.AddInbound(inSA(t, spi, "c"))
				db.Inbound(spi)
				db.SetOutbound(OutKey{Rule: fmt.Sprint("r", w), Peer: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}, outSA(t, spi, "c"))
				if i%50 == 0 {
					db.List(time.Now())
				}
			}
		}(w)
	}
	wg.Wait()
	if db.Len() != 4000 {
		t.Fatalf("len %d", db.Len())
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	db := New()
	db.AddInbound(inSA(t, 7, "x"))
	k := OutKey{Rule: "r", Peer: netip.MustParseAddr("10.0.0.1")}
	db.SetOutbound(k, outSA(t, 8, "x"))
	if n := testing.AllocsPerRun(100, func() { db.Inbound(7); db.Outbound(k) }); n != 0 {
		t.Fatalf("%.0f allocations", n)
	}
}

// BenchmarkLookup100k: SPI and outbound-key lookups with 100,000 SAs each
// way installed (target for the scale issue: under 100 ns).
func BenchmarkLookup100k(b *testing.B) {
	db := New()
	cfgIn, _ := esp.NewInbound(espCfg(1, nil))
	cfgOut, _ := esp.NewOutbound(espCfg(1, nil))
	const n = 100000
	var names [50]string
	for i := range names {
		names[i] = fmt.Sprintf("tunnel-%d/out", i)
	}
	for i := 0; i < n; i++ {
		// Share the crypto state: the benchmark measures the index only.
		db.in[spiShard(uint32(i+1))].m[uint32(i+1)] = &InSA{ESP: cfgIn}
		k := OutKey{Rule: names[i%50], Peer: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}
		db.out[keyShard(k)].m[k] = &OutSA{ESP: cfgOut}
	}
	b.Run("inbound-spi", func(b *testing.B) {
		b.ReportAllocs()
		i := uint32(0)
		for b.Loop() {
			i = (i*7919 + 1) % n
			if db.Inbound(i+1) == nil {
				b.Fatal("miss")
			}
		}
	})
	b.Run("outbound-key", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			i = (i*7919 + 1) % n
			if db.Outbound(OutKey{Rule: names[i%50], Peer: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}) == nil {
				b.Fatal("miss")
			}
		}
	})
}

// Totals count removed and replaced SAs' traffic too: they never go down.
func TestTotalsNeverGoDown(t *testing.T) {
	db := New()
	in, out := inSA(t, 0x100, "a"), outSA(t, 0x200, "a")
	if err := db.AddInbound(in); err != nil {
		t.Fatal(err)
	}
	k := OutKey{Rule: "r", Peer: netip.MustParseAddr("192.0.2.2")}
	db.SetOutbound(k, out)
	in.ESP.Counters().Bytes.Add(1000)
	in.ESP.Counters().Packets.Add(10)
	out.ESP.Counters().Bytes.Add(500)
	want := func(inB, outB uint64) {
		t.Helper()
		tot := db.Totals()
		if tot[2].Mode != Tunnel || tot[2].Inbound || tot[2].Bytes != outB || !tot[3].Inbound || tot[3].Bytes != inB {
			t.Fatalf("totals %+v, want tunnel in %d out %d", tot, inB, outB)
		}
	}
	want(1000, 500)
	next := outSA(t, 0x201, "a")
	db.SetOutbound(k, next) // a rekey
	next.ESP.Counters().Bytes.Add(7)
	if _, err := db.RemoveInbound(0x100); err != nil {
		t.Fatal(err)
	}
	want(1000, 507)
	if !db.RemoveSPI(0x201) {
		t.Fatal("not removed")
	}
	want(1000, 507)
	if tot := db.Totals(); tot[3].Packets != 10 {
		t.Fatalf("packets %+v", tot)
	}
}

// TestRetiredSAsAreWiped: an SA's key bytes are zeroed when it leaves the
// SAD by any road: removed, replaced by a rekey, or expired by SPI. The
// current outbound SA keeps its keys.
func TestRetiredSAsAreWiped(t *testing.T) {
	keyed := func(spi uint32) (esp.Config, []byte) {
		c := espCfg(spi, nil)
		for i := range c.EncKey {
			c.EncKey[i] = byte(i + 1)
		}
		return c, c.EncKey
	}
	wiped := func(k []byte) bool { return !slices.ContainsFunc(k, func(b byte) bool { return b != 0 }) }
	db := New()
	k := OutKey{Rule: "t/out", Peer: netip.MustParseAddr("198.51.100.2")}
	var keys [][]byte
	for _, spi := range []uint32{0x301, 0x302} {
		c, key := keyed(spi)
		o, err := esp.NewOutbound(c)
		if err != nil {
			t.Fatal(err)
		}
		db.SetOutbound(k, &OutSA{Meta: Meta{Name: "t", Mode: Tunnel}, ESP: o})
		keys = append(keys, key)
	}
	if !wiped(keys[0]) || wiped(keys[1]) {
		t.Fatalf("after a rekey: old % x, current % x", keys[0], keys[1])
	}
	for _, spi := range []uint32{0x101, 0x102} {
		c, key := keyed(spi)
		in, err := esp.NewInbound(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AddInbound(&InSA{Meta: Meta{Name: "t", Mode: Tunnel}, ESP: in}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	if _, err := db.RemoveInbound(0x101); err != nil || !db.RemoveSPI(0x102) || !db.RemoveSPI(0x302) {
		t.Fatal("remove")
	}
	for i, key := range keys {
		if !wiped(key) {
			t.Fatalf("SA %d left the SAD with its key: % x", i, key)
		}
	}
}

// An outbound SA for several subnet pairs (an IKEv2 child) is one SA
// under several keys: counted, listed and retired once.
func TestOutboundUnderSeveralKeys(t *testing.T) {
	db := New()
	peer := netip.MustParseAddr("198.51.100.2")
	k1, k2 := OutKey{Rule: "t/out", Peer: peer, Pair: 1}, OutKey{Rule: "t/out", Peer: peer, Pair: 2}
	sa := outSA(t, 0x300, "t")
	db.SetOutbound(k1, sa)
	db.SetOutbound(k2, sa)
	db.SetOutbound(k2, sa) // again: no change
	if db.Len() != 1 || len(db.List(time.Now())) != 1 || db.Outbound(k1) != sa || db.Outbound(k2) != sa {
		t.Fatalf("len %d, listed %d", db.Len(), len(db.List(time.Now())))
	}
	// A rekey replaces it under both keys; it is retired once, with the second.
	next := outSA(t, 0x301, "t")
	db.SetOutbound(k1, next)
	if db.Len() != 2 || sa.keys.Load() != 1 {
		t.Fatalf("half replaced: len %d, keys %d", db.Len(), sa.keys.Load())
	}
	db.SetOutbound(k2, next)
	if db.Len() != 1 || sa.keys.Load() != 0 || len(db.List(time.Now())) != 1 {
		t.Fatalf("replaced: len %d", db.Len())
	}
	if !db.RemoveSPI(0x301) || db.Len() != 0 || db.Outbound(k1) != nil || db.Outbound(k2) != nil {
		t.Fatalf("RemoveSPI left len %d", db.Len())
	}
}

// Move (MOBIKE) changes a child's outer addresses and encapsulation in
// place: the same ESP state (keys, counters) under new entries, the
// database's size and totals unchanged, the keys not wiped; an SPI that
// is not there, or an outbound SA that is not the child's, is refused.
func TestMove(t *testing.T) {
	db := New()
	k := OutKey{Rule: "rw/out", Peer: netip.MustParseAddr("10.8.0.2")}
	in, out := inSA(t, 0x100, "rw"), outSA(t, 0x200, "rw")
	in.Peer, out.Peer = netip.MustParseAddrPort("192.0.2.1:4500"), netip.MustParseAddrPort("192.0.2.1:4500")
	if err := db.AddInbound(in); err != nil {
		t.Fatal(err)
	}
	db.SetOutbound(k, out)
	out.ESP.Counters().Bytes.Add(1000)
	before := db.Totals()
	to, local := netip.MustParseAddrPort("192.0.2.5:4501"), netip.MustParseAddrPort("203.0.113.1:4500")
	if err := db.Move(0x100, k, 0x200, local, to, true); err != nil {
		t.Fatal(err)
	}
	gotIn, gotOut := db.Inbound(0x100), db.Outbound(k)
	if gotIn.Peer != to || gotIn.Local != local || !gotIn.UDPEncap || gotIn.ESP != in.ESP || gotOut.Peer != to || !gotOut.UDPEncap || gotOut.ESP != out.ESP {
		t.Fatalf("after the move: in %+v, out %+v", gotIn.Meta, gotOut.Meta)
	}
	if in.Peer.Port() != 4500 {
		t.Error("the old inbound entry was changed in place; the data path may still hold it")
	}
	if db.Len() != 2 || !slices.Equal(db.Totals(), before) {
		t.Fatalf("len %d, totals %v (were %v)", db.Len(), db.Totals(), before)
	}
	if err := db.Move(0x101, k, 0x200, local, to, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown inbound SPI: %v", err)
	}
	if err := db.Move(0x100, k, 0x201, local, to, true); !errors.Is(err, ErrNotFound) {
		t.Errorf("another outbound SPI: %v", err)
	}
	// Deleting the moved child retires it once.
	if _, err := db.RemoveOutbound(k, 0x200); err != nil || db.Len() != 1 {
		t.Fatalf("remove: %v, len %d", err, db.Len())
	}
}
