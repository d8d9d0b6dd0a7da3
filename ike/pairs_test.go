package ike

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// A tunnel with several subnets on each side gets one child SA per
// (local, remote) pair, one quick mode each (IKEv1 carries one pair per
// quick mode), on one IKE SA.

var (
	netsA = []string{"10.1.0.0/24", "10.3.0.0/24"}
	netsB = []string{"10.2.0.0/24", "10.4.0.0/24"}
)

// crossPairs is every local subnet with every remote one, as the daemon
// builds a tunnel's pairs.
func crossPairs(local, remote []string) []TSPair {
	var out []TSPair
	for _, l := range local {
		for _, r := range remote {
			out = append(out, TSPair{Selector{Prefix: netip.MustParsePrefix(l)}, Selector{Prefix: netip.MustParsePrefix(r)}})
		}
	}
	return out
}

// fourPairs: two subnets behind each gateway.
func fourPairs(t *testing.T) *pair {
	p := newPair(t, true)
	p.pa.Pairs, p.pb.Pairs = crossPairs(netsA, netsB), crossPairs(netsB, netsA)
	return p
}

func mirror(t TSPair) TSPair { return TSPair{t.Remote, t.Local} }

// childrenByPair indexes a side's installed children by pair, failing on
// two for one pair.
func childrenByPair(t *testing.T, h *testHost) map[TSPair]*ChildSA {
	t.Helper()
	out := map[TSPair]*ChildSA{}
	for _, c := range h.children {
		if out[c.pair] != nil {
			t.Fatalf("%s: two children for %v", h.name, c.pair)
		}
		if c.pair != (TSPair{c.LocalTS, c.RemoteTS}) {
			t.Fatalf("%s: child %v carries identities %v <-> %v", h.name, c, c.LocalTS, c.RemoteTS)
		}
		out[c.pair] = c
	}
	return out
}

// checkPairs: A has a child for each of want, B its mirror, they cross
// and their keys work; and nothing else is installed.
func checkPairs(t *testing.T, p *pair, want ...TSPair) map[TSPair]*ChildSA {
	t.Helper()
	ca, cb := childrenByPair(t, p.ha), childrenByPair(t, p.hb)
	if len(ca) != len(want) || len(cb) != len(want) {
		t.Fatalf("children: A %d, B %d, want %d each (A %v)", len(ca), len(cb), len(want), p.ha.events)
	}
	for _, w := range want {
		a, b := ca[w], cb[mirror(w)]
		if a == nil || b == nil || a.OutSPI != b.InSPI || b.OutSPI != a.InSPI {
			t.Fatalf("pair %v: A %v, B %v", w, a, b)
		}
		checkCrossing(t, a, b)
	}
	return ca
}

// TestEveryPairItsOwnChild: starting the tunnel brings up all four pairs,
// each in its own quick mode, on one IKE SA.
func TestEveryPairItsOwnChild(t *testing.T) {
	p := fourPairs(t)
	p.mainMode()
	ids := map[uint32]bool{}
	for _, d := range p.wire {
		if h, _ := ParseHeader(d.b); h.Exchange == ExchangeQuick {
			ids[h.MessageID] = true
		}
	}
	if len(p.wire) != 4 || len(ids) != 4 {
		t.Fatalf("after main mode A sent %d messages, %d quick modes; want 4 (one per pair)", len(p.wire), len(ids))
	}
	p.deliverAll()
	p.noViolations()
	checkPairs(t, p, p.pa.Pairs...)
	if n := countEvents(p.ha, EventChildUp); n != 4 {
		t.Fatalf("A: %d child-up events, want 4", n)
	}
	if sas := p.a.SAs(); len(sas) != 1 || sas[0].Children != 4 {
		t.Fatalf("IKE SAs: %+v", sas)
	}
	if ev := p.ha.event(EventChildUp); !strings.Contains(ev.Message, "10.1.0.0/24 <-> 10.2.0.0/24") {
		t.Fatalf("the event does not name the pair: %q", ev.Message)
	}
}

// TestPairsOnTraffic: traffic for one pair brings up that pair only; the
// next pair's traffic reuses the IKE SA; a pair that is up, or not the
// tunnel's, starts nothing.
func TestPairsOnTraffic(t *testing.T) {
	p := fourPairs(t)
	second, third := p.pa.Pairs[1], p.pa.Pairs[2]
	if err := p.a.InitiatePair("to-b", &second); err != nil {
		t.Fatal(err)
	}
	p.deliverAll()
	checkPairs(t, p, second)
	if err := p.a.InitiatePair("to-b", &third); err != nil {
		t.Fatal(err)
	}
	h := p.step("A", ExchangeQuick, true)
	if h.MessageID == 0 {
		t.Fatal("not a quick mode on the IKE SA")
	}
	p.deliverAll()
	checkPairs(t, p, second, third)
	if err := p.a.InitiatePair("to-b", &second); err != nil || len(p.wire) != 0 {
		t.Fatalf("a pair that is up: %v, %d messages sent", err, len(p.wire))
	}
	other := crossPairs([]string{"10.9.0.0/24"}, netsB)[0]
	if err := p.a.InitiatePair("to-b", &other); !errors.Is(err, ErrNoPair) {
		t.Fatalf("a pair not the tunnel's: %v", err)
	}
	if len(p.a.SAs()) != 1 {
		t.Fatalf("IKE SAs: %+v", p.a.SAs())
	}
}

// TestBothSidesInitiatePairs: each gateway starts pairs of its own on
// the same IKE SA at the same moment; all come up once.
func TestBothSidesInitiatePairs(t *testing.T) {
	p := fourPairs(t)
	first := p.pa.Pairs[0]
	if err := p.a.InitiatePair("to-b", &first); err != nil {
		t.Fatal(err)
	}
	p.deliverAll()
	mine, theirs := p.pa.Pairs[1], mirror(p.pa.Pairs[3])
	if err := p.a.InitiatePair("to-b", &mine); err != nil {
		t.Fatal(err)
	}
	if err := p.b.InitiatePair("to-a", &theirs); err != nil {
		t.Fatal(err)
	}
	if len(p.wire) != 2 {
		t.Fatalf("%d messages in flight, want both quick modes", len(p.wire))
	}
	p.deliverAll()
	p.noViolations()
	checkPairs(t, p, first, mine, mirror(theirs))
}

// TestPairRefusedKeepsTheOthers: B has only three of A's four pairs. The
// fourth is refused with INVALID-ID-INFORMATION naming what B has; the
// IKE SA and the other three stay.
func TestPairRefusedKeepsTheOthers(t *testing.T) {
	p := fourPairs(t)
	p.pb.Pairs = slices.DeleteFunc(p.pb.Pairs, func(t TSPair) bool { return t == mirror(p.pa.Pairs[3]) })
	p.mainMode()
	p.deliverAll()
	checkPairs(t, p, p.pa.Pairs[:3]...)
	ev := p.hb.event(EventNegotiationErr)
	if ev == nil || !strings.Contains(ev.Message, "peer proposed 10.3.0.0/24 <-> 10.4.0.0/24") {
		t.Fatalf("B's event: %+v", ev)
	}
	if ev := p.ha.event(EventNegotiationErr); ev == nil || ev.Reason != "peer-error" || !strings.Contains(ev.Message, "INVALID-ID-INFORMATION") {
		t.Fatalf("A's event: %+v", ev)
	}
	for _, m := range []*Manager{p.a, p.b} {
		if sas := m.SAs(); len(sas) != 1 || !sas[0].Established || sas[0].Children != 3 {
			t.Fatalf("IKE SAs: %+v", sas)
		}
	}
}

// TestPairRekeyAlone: one pair reaching its rekey point is replaced on
// its own; the other pairs keep their SAs untouched.
func TestPairRekeyAlone(t *testing.T) {
	p := fourPairs(t)
	p.mainMode()
	p.deliverAll()
	before := checkPairs(t, p, p.pa.Pairs...)
	target := p.pa.Pairs[2]
	p.a.mu.Lock()
	before[target].rekeyAt = p.now.Add(time.Second)
	p.a.mu.Unlock()
	for range 5 {
		p.tick(time.Second)
		p.deliverAll()
	}
	p.noViolations()
	after := checkPairs(t, p, p.pa.Pairs...)
	for _, w := range p.pa.Pairs {
		if changed := after[w].InSPI != before[w].InSPI; changed != (w == target) {
			t.Errorf("pair %v: SA %v, was %v", w, after[w], before[w])
		}
	}
	if n := countEvents(p.ha, EventChildDown); n != 1 {
		t.Fatalf("A: %d child-down events, want 1 (the rekeyed pair's old SA)", n)
	}
}

// TestReauthCarriesEveryPair: the IKE SA's replacement brings up every
// pair before the old SA and its children go; no pair is ever without
// an SA, even when a quick mode of the new SA is lost twice and comes up
// seconds after the others.
func TestReauthCarriesEveryPair(t *testing.T) {
	for _, n := range []int{0, 2} {
		lose := n
		p := fourPairs(t)
		for _, c := range []*PeerConfig{p.pa, p.pb} {
			c.Lifetime = 60 * time.Second
		}
		p.mainMode()
		p.deliverAll()
		checkPairs(t, p, p.pa.Pairs...)
		first := p.a.SAs()[0].SPIi
		lost := uint32(0) // the message ID of the quick mode we lose
		for range 60 {
			p.tick(time.Second)
			for range 100 {
				if len(p.wire) == 0 {
					break
				}
				d := p.wire[0]
				p.wire = p.wire[1:]
				h, _ := ParseHeader(d.b)
				if lose > 0 && h.SPIi != first && h.Exchange == ExchangeQuick && d.from.Addr() == p.pa.Local && (lost == 0 || lost == h.MessageID) {
					lost = h.MessageID
					lose--
					continue
				}
				to := p.b
				if d.from.Addr() == p.pb.Local {
					to = p.a
				}
				to.Receive(d.b, d.to, d.from)
			}
			for _, h := range []*testHost{p.ha, p.hb} {
				pairs := map[TSPair]bool{}
				for _, c := range h.children {
					pairs[c.pair] = true
				}
				if len(pairs) != 4 {
					t.Fatalf("losing %d: %s at %v: SAs for %d pairs, want 4", n, h.name, p.now, len(pairs))
				}
			}
		}
		if lose != 0 {
			t.Fatalf("the quick mode to lose was never seen (%d left)", lose)
		}
		p.noViolations()
		checkPairs(t, p, p.pa.Pairs...)
		for _, m := range []*Manager{p.a, p.b} {
			if sas := m.SAs(); len(sas) != 1 || sas[0].SPIi == first || sas[0].Children != 4 {
				t.Fatalf("IKE SAs after reauthentication: %+v", sas)
			}
		}
	}
}
