package site

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// A tunnel with two subnets behind each gateway: 10.1.0.0/24 and
// 10.3.0.0/24 behind A, 10.2.0.0/24 and 10.4.0.0/24 behind B. Four pairs,
// an IPsec SA pair each.
var (
	pairsA = side{"192.0.2.1", "192.0.2.2", "10.1.0.0/24, 10.3.0.0/24", "10.2.0.0/24, 10.4.0.0/24"}
	pairsB = side{"192.0.2.2", "192.0.2.1", "10.2.0.0/24, 10.4.0.0/24", "10.1.0.0/24, 10.3.0.0/24"}
)

// hostPair is one pair as the hosts see it: a source behind A, a
// destination behind B.
type hostPair struct{ a, b string }

func (p hostPair) String() string { return p.a + " <-> " + p.b }

// net is the /24 an address is in, as the selectors name it.
func net24(addr string) string { return addr[:strings.LastIndex(addr, ".")] + ".0/24" }

var fourPairs = []hostPair{{"10.1.0.10", "10.2.0.10"}, {"10.3.0.10", "10.4.0.10"}, {"10.1.0.10", "10.4.0.10"}, {"10.3.0.10", "10.2.0.10"}}

// saList is what `gatehouse sa --json` says of IPsec and IKE SAs.
type saList struct {
	Sas []struct {
		Name      string   `json:"name"`
		Direction string   `json:"direction"`
		Spi       uint32   `json:"spi"`
		Selectors []string `json:"selectors"`
		Packets   uint64   `json:"packets,string"`
	} `json:"sas"`
	IkeSas []struct {
		Established bool `json:"established"`
		Children    int  `json:"children"`
	} `json:"ikeSas"`
}

func listSAs(t *testing.T, g *gw) saList {
	t.Helper()
	var l saList
	out := g.CLI(t, "sa", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("gatehouse sa --json: %v\n%s", err, out)
	}
	return l
}

// pairSAs is one pair's SAs at B: the outbound one, and the inbound ones
// (after a rekey the peer may keep the old one a while).
type pairSAs struct {
	out uint32
	in  string // the inbound SPIs, sorted
}

// pairSPIs lists each pair's SAs at B, failing unless each pair has one
// outbound SA and, with oneIn, one inbound SA, all of which carried
// packets.
func pairSPIs(t *testing.T, g *gw, oneIn bool) map[hostPair]pairSAs {
	t.Helper()
	l := listSAs(t, g)
	out := map[hostPair]pairSAs{}
	for _, p := range fourPairs {
		inSel, outSel := net24(p.a)+" > "+net24(p.b), net24(p.b)+" > "+net24(p.a) // B's view
		var got pairSAs
		var ins []string
		for _, s := range l.Sas {
			if s.Name != "site" || len(s.Selectors) != 1 {
				continue
			}
			mine := (s.Direction == "in" && s.Selectors[0] == inSel) || (s.Direction == "out" && s.Selectors[0] == outSel)
			if !mine {
				continue
			}
			if s.Packets == 0 || (s.Direction == "out" && got.out != 0) {
				t.Fatalf("pair %v: a second outbound SA, or one that carried nothing:\n%s", p, g.CLI(t, "sa"))
			}
			if s.Direction == "out" {
				got.out = s.Spi
			} else {
				ins = append(ins, fmt.Sprintf("%#08x", s.Spi))
			}
		}
		if got.out == 0 || len(ins) == 0 || (oneIn && len(ins) != 1) {
			t.Fatalf("pair %v has not one SA pair of its own:\n%s", p, g.CLI(t, "sa"))
		}
		slices.Sort(ins)
		got.in = strings.Join(ins, ",")
		out[p] = got
	}
	return out
}

// TestFourPairsWithStrongSwan: strongSwan on A, with one child per pair
// (its IKEv1 negotiates one pair per child); Gatehouse on B, with one
// tunnel listing both subnets each side. strongSwan starts two pairs,
// traffic from B's host the other two (Gatehouse initiates, on the IKE
// SA strongSwan made). Each pair gets
// an SA pair of its own and carries pings and iperf3; then one pair is
// rekeyed under load while the other three lose not one ping.
func TestFourPairsWithStrongSwan(t *testing.T) {
	l := newLab(t)
	if err := l.SecondSubnets(); err != nil {
		t.Fatal(err)
	}
	o := tunnelOpts{pairs: true}
	b := startGatehouse(t, l.GWB, pairsB, o)
	sw := startStrongSwan(t, l.GWA, pairsA, o)
	for i, p := range fourPairs {
		if i < 2 {
			// kernel-libipsec raises no acquires: strongSwan starts its
			// pairs by hand, as traffic would with the kernel's ESP.
			if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", pairChild(net24(p.a), net24(p.b))); err != nil {
				t.Fatalf("swanctl --initiate %v: %v\n%s", p, err, out)
			}
			netns.PingThroughFrom(t, l.HA, p.a, p.b)
		} else {
			netns.PingThroughFrom(t, l.HB, p.b, p.a)
		}
	}
	log := b.Proc.Output()
	if up := strings.Count(log, "IPsec SA up"); up != 4 {
		t.Fatalf("Gatehouse brought up %d IPsec SA pairs, want 4", up)
	}
	swanLog := sw.Log()
	// Messages 1 and 3 of a quick mode are both "requests": count the
	// exchanges by message ID.
	if n := quickModes(swanLog, "parsed"); n != 2 {
		t.Fatalf("strongSwan answered %d quick modes, want Gatehouse's 2", n)
	}
	if n := quickModes(swanLog, "generating"); n != 2 {
		t.Fatalf("strongSwan started %d quick modes, want 2", n)
	}
	if ike := listSAs(t, b).IkeSas; len(ike) != 1 || !ike[0].Established || ike[0].Children != 4 {
		t.Fatalf("IKE SAs: %+v, want one with four children", ike)
	}
	before := pairSPIs(t, b, true)
	for _, p := range fourPairs {
		mbps, err := netns.IperfFrom(l.HB, l.HA, p.b, p.a, 2*time.Second)
		if err != nil {
			t.Fatalf("iperf3 through %v: %v", p, err)
		}
		t.Logf("iperf3 through %v: %.0f Mbit/s", p, mbps)
	}

	// Rekey 10.1 <-> 10.2 (strongSwan's child) under iperf3 while the
	// other three pairs carry 40 pings each.
	target := fourPairs[0]
	var wg sync.WaitGroup
	results := make([]string, len(fourPairs))
	var iperfErr error
	wg.Add(len(fourPairs))
	go func() {
		defer wg.Done()
		_, iperfErr = netns.IperfFrom(l.HB, l.HA, target.b, target.a, 6*time.Second)
	}()
	for i, p := range fourPairs[1:] {
		go func() {
			defer wg.Done()
			out, err := l.HA.Output(30*time.Second, "ping", "-c", "40", "-i", "0.1", "-W", "2", "-I", p.a, p.b)
			results[i+1] = fmt.Sprintf("%v: %v\n%s", p, err, out)
		}()
	}
	time.Sleep(2 * time.Second)
	if out, err := sw.Swanctl(30*time.Second, "--rekey", "--child", pairChild(net24(target.a), net24(target.b))); err != nil {
		t.Fatalf("swanctl --rekey: %v\n%s", err, out)
	}
	wg.Wait()
	if iperfErr != nil {
		t.Fatalf("iperf3 through the pair being rekeyed: %v", iperfErr)
	}
	for _, r := range results[1:] {
		if !strings.Contains(r, " 40 received") {
			t.Fatalf("a pair that was not rekeyed lost pings:\n%s", r)
		}
	}
	after := pairSPIs(t, b, false)
	for _, p := range fourPairs {
		if changed := after[p].out != before[p].out; changed != (p == target) || (p != target && after[p] != before[p]) {
			t.Errorf("pair %v: SAs %+v, were %+v (only %v was rekeyed)", p, after[p], before[p], target)
		}
	}
	// As the responder of strongSwan's rekey, Gatehouse sees a new SA
	// pair for the same subnets come up.
	if up := strings.Count(b.Proc.Output(), "IPsec SA up"); up != 5 {
		t.Fatalf("Gatehouse brought up %d IPsec SA pairs, want the 4 and the rekeyed one", up)
	}
}

// quickModes counts the quick mode exchanges whose requests strongSwan's
// log shows it parsing or generating.
func quickModes(log, verb string) int {
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(verb+` QUICK_MODE request (\d+) \[`).FindAllStringSubmatch(log, -1) {
		ids[m[1]] = true
	}
	return len(ids)
}
