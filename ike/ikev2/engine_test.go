package ikev2

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse/gatehouse/auth/eap"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/alg"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/ppp"
)

// engineHost is a daemon for one engine: what it sends goes to an
// outbox, what it installs is recorded.
type engineHost struct {
	psk []byte
	// cert, when set, is this side's certificate, key and CA.
	cert    *testCert
	nextSPI uint32
	// out is what was sent; outMu guards it against an EAP round
	// answered from its own goroutine (SlowEAP).
	outMu   sync.Mutex
	out     []datagram
	in      map[uint32]*ike.ChildSA // inbound SAs by SPI
	outSA   map[string]*ike.ChildSA // the outbound SA per tunnel
	deleted []uint32
	events  []ike.Event
	moved   []*ike.ChildSA
}

type datagram struct {
	b             []byte
	local, remote netip.AddrPort
}

func newEngineHost(psk string, spiBase uint32) *engineHost {
	return &engineHost{psk: []byte(psk), nextSPI: spiBase, in: map[uint32]*ike.ChildSA{}, outSA: map[string]*ike.ChildSA{}}
}

var errNoCerts = errors.New("no certificates here")

func (h *engineHost) Send(b []byte, local, remote netip.AddrPort) error {
	h.outMu.Lock()
	h.out = append(h.out, datagram{append([]byte(nil), b...), local, remote})
	h.outMu.Unlock()
	return nil
}

// take returns what was sent, and forgets it.
func (h *engineHost) take() []datagram {
	h.outMu.Lock()
	defer h.outMu.Unlock()
	out := h.out
	h.out = nil
	return out
}

// waitSent waits until something was sent, for at most 5 s.
func (h *engineHost) waitSent(t *testing.T) {
	t.Helper()
	for range 500 {
		h.outMu.Lock()
		n := len(h.out)
		h.outMu.Unlock()
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("nothing was sent in 5 s")
}

func (h *engineHost) SendKeepalive(local, remote netip.AddrPort) error { return nil }
func (h *engineHost) PSK(*ike.PeerConfig, netip.Addr, *ike.ID) ([]byte, error) {
	return bytes.Clone(h.psk), nil
}
func (h *engineHost) LocalCredentials(*ike.PeerConfig, uint16, [][]byte) (*ike.LocalCredentials, error) {
	if h.cert == nil || h.cert.leaf == nil {
		return nil, errNoCerts
	}
	return &ike.LocalCredentials{Chain: [][]byte{h.cert.leaf.Raw}, ID: &ike.ID{IDType: ike.IDDERASN1DN, Data: h.cert.leaf.RawSubject},
		CAKeyIDs: [][]byte{h.cert.caKeyID}}, nil
}
func (h *engineHost) Sign(*ike.PeerConfig, uint16, []byte) ([]byte, error) { return nil, errNoCerts }
func (h *engineHost) SignDigest(_ *ike.PeerConfig, _ uint16, scheme string, digest []byte) ([]byte, error) {
	if h.cert == nil || h.cert.key == nil {
		return nil, errNoCerts
	}
	return ike.SignDigest(h.cert.key, scheme, digest)
}
func (h *engineHost) VerifyPeer(_ *ike.PeerConfig, _ uint16, chain [][]byte, _ *ike.ID) (*ike.PeerCredentials, error) {
	if h.cert == nil {
		return nil, errNoCerts
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, err
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: h.cert.roots}); err != nil {
		return nil, err
	}
	return &ike.PeerCredentials{PublicKey: leaf.PublicKey, Subject: leaf.Subject.String(), Names: ike.CertNames(leaf)}, nil
}
func (h *engineHost) GSSStep(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errNoCerts
}
func (h *engineHost) GSSWrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errNoCerts
}
func (h *engineHost) GSSUnwrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errNoCerts
}
func (h *engineHost) GSSRelease(*ike.PeerConfig, *ike.GSSContext) {}
func (h *engineHost) AllocSPI() (uint32, error) {
	h.nextSPI++
	return h.nextSPI, nil
}
func (h *engineHost) InstallInbound(c *ike.ChildSA) error  { h.in[c.InSPI] = c; return nil }
func (h *engineHost) InstallOutbound(c *ike.ChildSA) error { h.outSA[c.Peer] = c; return nil }
func (h *engineHost) DeleteChild(c *ike.ChildSA) {
	delete(h.in, c.InSPI)
	if h.outSA[c.Peer] == c {
		delete(h.outSA, c.Peer)
	}
	h.deleted = append(h.deleted, c.InSPI)
}
func (h *engineHost) Event(e ike.Event) { h.events = append(h.events, e) }
func (h *engineHost) MoveChild(c *ike.ChildSA) error {
	h.moved = append(h.moved, c)
	return nil
}

// eventWith is the last event with an ID, or nil.
func (h *engineHost) eventWith(id int) *ike.Event {
	for i := len(h.events) - 1; i >= 0; i-- {
		if h.events[i].ID == id {
			return &h.events[i]
		}
	}
	return nil
}

func (h *engineHost) count(id int) int {
	n := 0
	for _, e := range h.events {
		if e.ID == id {
			n++
		}
	}
	return n
}

// enginePair is two gateways, a (198.51.100.1, 10.1.0.0/24 and
// 10.3.0.0/24) and b (203.0.113.2, 10.2.0.0/24), each with one IKEv2
// tunnel to the other, on one fake clock.
type enginePair struct {
	t      *testing.T
	now    time.Time
	a, b   *Manager
	ha, hb *engineHost
	pa, pb *Peer
	lose   func(d datagram, fromA bool) bool
	// mutate, when set, may change a datagram before it is delivered
	// (the fuzz target's hook); it reports whether it did.
	mutate   func(n int, d *datagram) bool
	received int
	// whenMutated checks the receiver of a changed datagram.
	whenMutated func(to *Manager, before, after string)
}

func newEnginePair(t *testing.T, pskA, pskB string) *enginePair {
	return newEnginePairLog(t, pskA, pskB, zap.NewNop())
}

func newEnginePairLog(t *testing.T, pskA, pskB string, log *zap.Logger) *enginePair {
	t.Helper()
	e := &enginePair{t: t, now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), ha: newEngineHost(pskA, 0xa000), hb: newEngineHost(pskB, 0xb000)}
	addrA, addrB := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("203.0.113.2")
	suites := []Proposal{mustProposal(t, "aes256-sha256-ecp256"), mustProposal(t, "aes128gcm16-prfsha256-modp2048")}
	su, err := esp.ParseSuite("aes128gcm16")
	if err != nil {
		t.Fatal(err)
	}
	peer := func(name string, local, remote netip.Addr, locals, remotes []string) *Peer {
		p := &ike.PeerConfig{Name: name, Local: local, Remote: remote, ESP: []esp.Suite{su}, ESPLifetime: time.Hour, Lifetime: 8 * time.Hour, Auth: []uint16{ike.AuthPSK},
			DPDInterval: 30 * time.Second, Restart: true}
		for _, l := range locals {
			for _, r := range remotes {
				p.Pairs = append(p.Pairs, ike.TSPair{Local: ike.Selector{Prefix: netip.MustParsePrefix(l)}, Remote: ike.Selector{Prefix: netip.MustParsePrefix(r)}})
			}
		}
		return &Peer{PeerConfig: p, Suites: suites}
	}
	e.pa = peer("to-b", addrA, addrB, []string{"10.1.0.0/24", "10.3.0.0/24"}, []string{"10.2.0.0/24"})
	e.pb = peer("to-a", addrB, addrA, []string{"10.2.0.0/24"}, []string{"10.1.0.0/24", "10.3.0.0/24"})
	clock := func() time.Time { return e.now }
	if e.a, err = NewManager(Config{Host: e.ha, Now: clock, Log: log}); err != nil {
		t.Fatal(err)
	}
	if e.b, err = NewManager(Config{Host: e.hb, Now: clock, Log: log}); err != nil {
		t.Fatal(err)
	}
	e.a.SetPeers([]*Peer{e.pa})
	e.b.SetPeers([]*Peer{e.pb})
	return e
}

func mustProposal(t *testing.T, s string) Proposal {
	t.Helper()
	p, err := ParseProposal(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pump moves datagrams both ways until none are left (bounded).
func (e *enginePair) pump() {
	e.t.Helper()
	for range 100 {
		e.ha.outMu.Lock()
		e.hb.outMu.Lock()
		quiet := len(e.ha.out) == 0 && len(e.hb.out) == 0
		e.hb.outMu.Unlock()
		e.ha.outMu.Unlock()
		if quiet {
			return
		}
		for _, side := range []struct {
			from *engineHost
			to   *Manager
			a    bool
		}{{e.ha, e.b, true}, {e.hb, e.a, false}} {
			out := side.from.take()
			for _, d := range out {
				if e.lose != nil && e.lose(d, side.a) {
					continue
				}
				e.received++
				if e.mutate != nil && e.mutate(e.received, &d) {
					before := established(side.to)
					side.to.Receive(d.b, d.remote, d.local)
					e.whenMutated(side.to, before, established(side.to))
					continue
				}
				side.to.Receive(d.b, d.remote, d.local)
			}
		}
	}
	e.t.Fatal("the engines never went quiet")
}

// established describes what an engine holds up: its established IKE
// SAs and their children, by SPI.
func established(m *Manager) string {
	var out []string
	for _, i := range m.SAs() {
		if i.Established {
			out = append(out, fmt.Sprintf("ike %x/%x", i.SPIi, i.SPIr))
		}
	}
	for _, c := range m.Children() {
		out = append(out, fmt.Sprintf("child %#x/%#x", c.InSPI, c.OutSPI))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// advance moves the clock in steps of a second, ticking both engines and
// moving their datagrams.
func (e *enginePair) advance(d time.Duration) {
	for end := e.now.Add(d); e.now.Before(end); {
		e.now = e.now.Add(time.Second)
		e.a.Tick()
		e.b.Tick()
		e.pump()
	}
}

// up brings the tunnel up from a and checks both sides agree.
func (e *enginePair) up() {
	e.t.Helper()
	if err := e.a.Initiate("to-b"); err != nil {
		e.t.Fatal(err)
	}
	e.pump()
	e.checkAgree(1)
}

// checkAgree checks each side has n children, each side's outbound keys
// being the other's inbound ones.
func (e *enginePair) checkAgree(n int) {
	e.t.Helper()
	ca, cb := e.a.Children(), e.b.Children()
	if len(ca) != n || len(cb) != n {
		e.t.Fatalf("children: a %d, b %d; want %d each (a events %+v)", len(ca), len(cb), n, e.ha.events)
	}
	oa, ob := e.ha.outSA["to-b"], e.hb.outSA["to-a"]
	if oa == nil || ob == nil {
		e.t.Fatalf("outbound SAs: a %v, b %v", oa, ob)
	}
	ib, ia := e.hb.in[oa.OutSPI], e.ha.in[ob.OutSPI]
	if ib == nil || ia == nil {
		e.t.Fatalf("a sends on %#x, b on %#x: not inbound SAs of the other (a in %v, b in %v)", oa.OutSPI, ob.OutSPI, e.ha.in, e.hb.in)
	}
	if !bytes.Equal(oa.OutEnc, ib.InEnc) || !bytes.Equal(ob.OutEnc, ia.InEnc) || bytes.Equal(oa.OutEnc, ob.OutEnc) {
		e.t.Fatal("the two sides' keys do not pair up")
	}
}

func TestEngineSetsUpATunnel(t *testing.T) {
	e := newEnginePair(t, "same key", "same key")
	e.up()
	c := e.ha.outSA["to-b"]
	if len(c.Pairs) != 2 || c.Pairs[0].Local.Prefix.String() != "10.1.0.0/24" || c.Pairs[1].Local.Prefix.String() != "10.3.0.0/24" ||
		c.Pairs[0].Remote.Prefix.String() != "10.2.0.0/24" || !c.Tunnel || c.UDP {
		t.Errorf("a's child: %+v", c)
	}
	if cb := e.hb.outSA["to-a"]; len(cb.Pairs) != 2 || cb.Pairs[1].Remote.Prefix.String() != "10.3.0.0/24" {
		t.Errorf("b's child pairs: %+v", cb.Pairs)
	}
	for _, h := range []*engineHost{e.ha, e.hb} {
		if h.count(ike.EventIKEUp) != 1 || h.count(ike.EventChildUp) != 1 || h.count(ike.EventNegotiationErr) != 0 {
			t.Errorf("events %+v", h.events)
		}
		for _, ev := range h.events {
			if ev.Version != 2 {
				t.Errorf("event without the version: %+v", ev)
			}
		}
	}
	sa := e.a.SAs()
	if len(sa) != 1 || !sa[0].Established || sa[0].Version != 2 || sa[0].PeerID != "ipv4:203.0.113.2" || sa[0].Phase1 != "aes256-sha256-ecp256" {
		t.Errorf("a's SAs: %+v", sa)
	}
	if e.a.HalfOpen() != 0 || e.b.HalfOpen() != 0 {
		t.Error("an established SA still counts as half open")
	}
	// A second start is a no-op: the tunnel is up.
	if err := e.a.Initiate("to-b"); err != nil || len(e.ha.out) != 0 {
		t.Errorf("second Initiate: %v, %d datagrams", err, len(e.ha.out))
	}
}

func TestEngineWrongKey(t *testing.T) {
	e := newEnginePair(t, "one key", "another key")
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	if len(e.a.SAs()) != 0 || len(e.b.SAs()) != 0 || len(e.ha.in) != 0 || len(e.hb.in) != 0 {
		t.Fatalf("after a failed authentication: a %+v, b %+v", e.a.SAs(), e.b.SAs())
	}
	for _, h := range []*engineHost{e.ha, e.hb} {
		if h.count(ike.EventNegotiationErr) != 1 || h.events[0].Reason != "authentication-failed" {
			t.Errorf("events %+v", h.events)
		}
	}
	if e.b.HalfOpen() != 0 {
		t.Error("the failed SA still counts as half open")
	}
}

// Lost messages are sent again by the requester; the responder answers
// a retransmission from its cache, and each side still ends with one SA.
func TestEngineRetransmits(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	lost := map[bool]int{}
	e.lose = func(d datagram, fromA bool) bool {
		// The first answer of each exchange from b is lost once.
		if !fromA && lost[false] < 2 {
			lost[false]++
			return true
		}
		return false
	}
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	e.advance(4 * time.Second)
	e.checkAgree(1)
	if n := len(e.b.SAs()); n != 1 {
		t.Fatalf("b holds %d SAs", n)
	}
}

func TestEngineRekeysChildAndIKESA(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.up()
	first := e.ha.outSA["to-b"].OutSPI
	e.advance(52 * time.Minute) // a rekeys its child at 80-85 % of the hour
	e.checkAgree(1)
	second := e.ha.outSA["to-b"]
	if second.OutSPI == first || len(e.ha.deleted) != 1 || len(e.hb.deleted) != 1 {
		t.Fatalf("after the child's lifetime: a sends on %#x (was %#x); deleted a %v, b %v", second.OutSPI, first, e.ha.deleted, e.hb.deleted)
	}
	if e.ha.count(ike.EventChildUp) != 2 || !e.ha.events[len(e.ha.events)-2].Rekey {
		t.Errorf("a's events %+v", e.ha.events)
	}
	oldSPI := e.a.SAs()[0].SPIi
	e.advance(6*time.Hour + 50*time.Minute) // the IKE SA at 80-85 % of 8 hours; children twice more
	sas := e.a.SAs()
	if len(sas) != 1 || sas[0].SPIi == oldSPI || len(e.b.SAs()) != 1 {
		t.Fatalf("after the IKE SA's rekey: a %+v, b %+v", sas, e.b.SAs())
	}
	e.checkAgree(1)
	if e.ha.count(ike.EventIKEDown) != 0 || e.hb.count(ike.EventIKEDown) != 0 || e.ha.count(ike.EventNegotiationErr) != 0 {
		t.Errorf("events a %+v", e.ha.events)
	}
	// The rekeyed IKE SA carries on: liveness checks are answered.
	e.advance(2 * time.Minute)
	e.checkAgree(1)
}

// A peer that vanishes is found by the liveness check; its SAs go, and an
// always-up tunnel tries again.
func TestEngineLivenessFindsADeadPeer(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.up()
	e.lose = func(datagram, bool) bool { return true }
	e.advance(30*time.Second + 70*time.Second)
	if len(e.ha.in) != 0 || e.ha.outSA["to-b"] != nil || e.ha.count(ike.EventIKEDown) != 1 {
		t.Fatalf("after the peer died: in %v out %v events %+v", e.ha.in, e.ha.outSA, e.ha.events)
	}
	// Restarted (and lost): an SA is being made again.
	if sas := e.a.SAs(); len(sas) != 1 || sas[0].Established {
		t.Fatalf("no restart: %+v", sas)
	}
	e.lose = nil
	e.b.Terminate("to-a") // b's half forgot a too
	e.advance(70 * time.Second)
	e.checkAgree(1)
}

// Garbage and replays change nothing established.
func TestEngineDropsBadInput(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	var seen [][]byte
	e.lose = func(d datagram, fromA bool) bool { seen = append(seen, d.b); return false }
	e.up()
	e.lose = nil
	from := netip.MustParseAddrPort("198.51.100.1:500")
	to := netip.MustParseAddrPort("203.0.113.2:500")
	for _, b := range seen {
		e.b.Receive(b, to, from) // every old message again
		flip := bytes.Clone(b)
		flip[len(flip)-1] ^= 1
		e.b.Receive(flip, to, from)
		e.b.Receive(b[:len(b)/2], to, from)
	}
	// IKE_AUTH's request made to look like the next one: its ICV fails.
	auth := bytes.Clone(seen[2])
	binary.BigEndian.PutUint32(auth[20:], 2)
	e.b.Receive(auth, to, from)
	e.hb.out = nil
	e.checkAgree(1)
	d := e.b.Drops()
	if d["unauthenticated"] != 1 || d["malformed"] == 0 || d["unexpected"] == 0 {
		t.Errorf("drops %v", d)
	}
	// A stranger's IKE_SA_INIT is not answered.
	in, err := NewInitiator(InitiatorConfig{Proposals: e.pa.Suites, SPIi: SPI{1}, Local: from, Remote: to, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := in.Start()
	e.b.Receive(first, to, netip.MustParseAddrPort("192.0.2.9:500"))
	if len(e.hb.out) != 0 || e.b.Drops()["no-peer"] != 1 {
		t.Errorf("a stranger got %d answers; drops %v", len(e.hb.out), e.b.Drops())
	}
}

// only is the one IKE SA of an engine.
func only(t *testing.T, m *Manager) *ikeSA {
	t.Helper()
	if len(m.sas) != 1 {
		t.Fatalf("%d IKE SAs", len(m.sas))
	}
	for _, s := range m.sas {
		return s
	}
	return nil
}

// Both sides rekey the same child at once (section 2.8.1): the exchange
// with the lowest nonce loses, its initiator deletes what it made, and
// each side ends with the same single child.
func TestEngineSimultaneousChildRekey(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	for i := range 8 { // the nonces decide who wins: both ways, several times
		e := newEnginePairLog(t, "k", "k", zap.New(core))
		e.up()
		sa, sb := only(t, e.a), only(t, e.b)
		ca, cb := sa.children[0], sb.children[0]
		ca.rekeying, cb.rekeying = true, true
		sa.queueTask(&childTask{old: ca})
		sb.queueTask(&childTask{old: cb})
		e.pump()
		e.checkAgree(1)
		for _, h := range []*engineHost{e.ha, e.hb} {
			if h.count(ike.EventNegotiationErr) != 0 || len(h.in) != 1 {
				t.Fatalf("round %d: inbound SAs %v, events %+v", i, h.in, h.events)
			}
		}
		// Nothing waits to become the outbound SA later.
		e.advance(15 * time.Second)
		e.checkAgree(1)
		redundant := 0
		for _, l := range logs.TakeAll() {
			if strings.Contains(l.Message, "ours is redundant") {
				redundant++
			}
		}
		if redundant != 1 {
			t.Fatalf("round %d: %d sides found their rekey redundant, want 1", i, redundant)
		}
	}
}

// Both sides rekey the IKE SA at once: each answers TEMPORARY_FAILURE
// (section 2.25.2), and tries again after its own random delay.
func TestEngineSimultaneousIKERekey(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.up()
	sa, sb := only(t, e.a), only(t, e.b)
	sa.rekeying, sb.rekeying = true, true
	sa.queueTask(&ikeRekeyTask{})
	sb.queueTask(&ikeRekeyTask{})
	e.pump()
	if len(e.a.sas) != 1 || len(e.b.sas) != 1 || sa.rekeyAt.IsZero() {
		t.Fatalf("after the collision: %d and %d SAs", len(e.a.sas), len(e.b.sas))
	}
	e.advance(time.Minute) // should the retries collide again, there is a next time
	na, nb := only(t, e.a), only(t, e.b)
	if na == sa || nb == sb {
		t.Fatal("the IKE SA was not rekeyed after the collision")
	}
	e.checkAgree(1)
	if e.ha.count(ike.EventNegotiationErr)+e.hb.count(ike.EventNegotiationErr) != 0 {
		t.Errorf("events a %+v b %+v", e.ha.events, e.hb.events)
	}
}

// udp_encap on the responder alone: its faked NAT detection hash makes
// the initiator see a NAT, so both carry IKE and ESP on port 4500.
func TestEngineForcedEncap(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.pb.ForceEncap = true
	e.up()
	ca, cb := e.ha.outSA["to-b"], e.hb.outSA["to-a"]
	if !ca.UDP || !cb.UDP || ca.Remote.Port() != 4500 || cb.Remote.Port() != 4500 {
		t.Fatalf("children: a %v %v, b %v %v", ca.UDP, ca.Remote, cb.UDP, cb.Remote)
	}
	if sa := e.a.SAs(); !sa[0].NAT || sa[0].Local.Port() != 4500 {
		t.Fatalf("a's IKE SA %+v", sa[0])
	}
}

// isFragment reports whether a datagram is an SKF fragment.
func isFragment(b []byte) bool { return len(b) > 16 && PayloadType(b[16]) == PayloadSKF }

// Small fragments on both sides (RFC 7383): IKE_AUTH and a child rekey
// with a MODP2048 key exchange go in fragments, one of them lost once,
// and everything still agrees; with fragmentation off on one side,
// nothing is cut.
func TestEngineFragments(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.pa.FragmentSize, e.pb.FragmentSize = 220, 220
	e.pa.PFS, e.pb.PFS = 14, 14
	frags, lost := 0, 0
	e.lose = func(d datagram, fromA bool) bool {
		if !isFragment(d.b) {
			return false
		}
		frags++
		if frags == 2 && lost == 0 {
			lost++
			return true
		}
		if len(d.b) > 220-28 {
			t.Errorf("a fragment of %d bytes, past the 192 a 220-byte datagram leaves", len(d.b))
		}
		return false
	}
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	e.advance(2 * time.Second) // the request that lost a fragment is sent again
	e.checkAgree(1)
	if frags < 3 {
		t.Fatalf("IKE_AUTH went in %d fragments", frags)
	}
	before := frags
	s := only(t, e.a)
	s.children[0].rekeying = true
	s.queueTask(&childTask{old: s.children[0]})
	e.pump()
	e.checkAgree(1)
	if frags-before < 4 {
		t.Fatalf("the rekey with PFS went in %d fragments", frags-before)
	}

	e = newEnginePair(t, "k", "k")
	e.pa.FragmentSize, e.pb.FragmentSize = 220, 220
	e.pb.NoFragmentation = true
	e.lose = func(d datagram, fromA bool) bool {
		if isFragment(d.b) {
			t.Errorf("a fragment with fragmentation off")
		}
		return false
	}
	e.up()
}

// testCert is a certificate and key issued by a test CA, and that CA.
type testCert struct {
	leaf    *x509.Certificate
	key     crypto.Signer
	roots   *x509.CertPool
	caKeyID []byte // SHA-1 of the CA's public key info
}

// testPKI issues one certificate per key from a fresh CA.
func testPKI(t *testing.T, keys ...crypto.Signer) []*testCert {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	var out []*testCert
	for i, k := range keys {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: fmt.Sprintf("gw-%d", i), Organization: []string{"Test"}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{fmt.Sprintf("gw-%d.example.net", i)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		id := sha1.Sum(ca.RawSubjectPublicKeyInfo)
		out = append(out, &testCert{leaf: leaf, key: k, roots: roots, caKeyID: id[:]})
	}
	return out
}

// Certificates each way: a with an RSA key, b with ECDSA P-256, signing
// by RFC 7427 (both announce signature hashes); remote.id pins the
// other's certificate, and a certificate it does not name is refused.
func TestEngineCertificates(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	setup := func(remoteB string) *enginePair {
		e := newEnginePair(t, "", "")
		certs := testPKI(t, rsaKey, ecKey)
		e.ha.cert, e.hb.cert = certs[0], certs[1]
		e.pa.Auth, e.pb.Auth = []uint16{ike.AuthRSASig}, []uint16{ike.AuthECDSA256}
		var err error
		if e.pa.RemoteID, err = ike.ParseID("fqdn:gw-1.example.net"); err == nil {
			e.pb.RemoteID, err = ike.ParseID(remoteB)
		}
		if err != nil {
			t.Fatal(err)
		}
		var asked []byte
		e.lose = func(d datagram, fromA bool) bool {
			if m, err := Decode(d.b); err == nil && !fromA && m.Exchange == ExchangeIKESAInit {
				if cr, ok := Find(m.Payloads, PayloadCertReq).(*CertReq); ok {
					asked = cr.Authority
				}
			}
			return false
		}
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		if !bytes.Equal(asked, certs[1].caKeyID) {
			t.Errorf("b's CERTREQ names %x, want its CA's key hash %x", asked, certs[1].caKeyID)
		}
		return e
	}
	e := setup("dn:CN=gw-0,O=Test")
	e.checkAgree(1)
	if sa := e.a.SAs(); sa[0].PeerID != "CN=gw-1,O=Test" || sa[0].Auth != "ecdsa-256" {
		t.Errorf("a's SA: %+v", sa[0])
	}
	if sb := e.b.SAs(); sb[0].PeerID != "CN=gw-0,O=Test" || sb[0].Auth != "rsa-sig" {
		t.Errorf("b's SA: %+v", sb[0])
	}
	e = setup("dn:CN=somebody-else")
	if len(e.b.SAs()) != 0 || len(e.hb.events) == 0 || !strings.Contains(e.hb.events[0].Message, "does not name dn:cn=somebody-else") {
		t.Fatalf("a certificate remote.id does not name: b %+v, events %+v", e.b.SAs(), e.hb.events)
	}
}

// A gateway that restarts says INITIAL_CONTACT in its new IKE_AUTH: the
// other side drops what it still held from before, children included,
// without waiting for a liveness check.
func TestEngineInitialContact(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.up()
	old := e.hb.outSA["to-a"].InSPI
	restarted, err := NewManager(Config{Host: e.ha, Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	restarted.SetPeers([]*Peer{e.pa})
	e.a = restarted
	clear(e.ha.in)
	clear(e.ha.outSA)
	e.up()
	if len(e.b.SAs()) != 1 || e.hb.in[old] != nil || e.hb.count(ike.EventIKEDown) != 1 {
		t.Fatalf("b after a's restart: %+v, old SA %#x still in: %v", e.b.SAs(), old, e.hb.in[old] != nil)
	}
}

// Under load (half the half-open limit in use) the responder asks for a
// cookie (section 2.6) and the initiator comes back with it; past the
// limit from one address, IKE_SA_INIT is dropped and counted.
func TestEngineCookiesAndHalfOpenLimits(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	b, err := NewManager(Config{Host: e.hb, Now: func() time.Time { return e.now }, MaxHalfOpen: 2, MaxHalfOpenPerSource: 2})
	if err != nil {
		t.Fatal(err)
	}
	b.SetPeers([]*Peer{e.pb})
	e.b = b
	// One half-open SA from a stranger's SPI at a's address fills half.
	from, to := netip.MustParseAddrPort("198.51.100.1:500"), netip.MustParseAddrPort("203.0.113.2:500")
	in, err := NewInitiator(InitiatorConfig{Proposals: e.pa.Suites, SPIi: SPI{9}, Local: from, Remote: to, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := in.Start()
	b.Receive(first, to, from)
	e.hb.out = nil
	if b.HalfOpen() != 1 {
		t.Fatalf("half open: %d", b.HalfOpen())
	}
	cookies := 0
	e.lose = func(d datagram, fromA bool) bool {
		if m, err := Decode(d.b); err == nil && !fromA && len(Notifies(m.Payloads, NotifyCookie)) > 0 {
			cookies++
		}
		return false
	}
	e.up()
	if cookies != 1 {
		t.Fatalf("%d cookie requests, want 1", cookies)
	}
	// Past the limit for one address, IKE_SA_INIT is dropped and counted.
	c, err := NewManager(Config{Host: newEngineHost("k", 0xc000), Now: func() time.Time { return e.now }, MaxHalfOpenPerSource: 1})
	if err != nil {
		t.Fatal(err)
	}
	c.SetPeers([]*Peer{e.pb})
	for i := range 2 {
		in, _ := NewInitiator(InitiatorConfig{Proposals: e.pa.Suites, SPIi: SPI{byte(10 + i)}, Local: from, Remote: to, Rand: rand.Reader})
		first, _ := in.Start()
		c.Receive(first, to, from)
	}
	if c.HalfOpen() != 1 || c.Drops()["half-open"] != 1 {
		t.Errorf("half open %d, drops %v", c.HalfOpen(), c.Drops())
	}
	// Half-open SAs that never authenticate go after 30 s.
	e.advance(31 * time.Second)
	if b.HalfOpen() != 0 {
		t.Errorf("%d half-open SAs after 31 s", b.HalfOpen())
	}
	e.checkAgree(1)
}

// An IKE SA whose rekeys are all refused goes when its lifetime (and a
// tenth more) runs out, children included.
func TestEngineIKESAExpires(t *testing.T) {
	e := newEnginePair(t, "k", "k")
	e.pa.Lifetime, e.pb.Lifetime = time.Hour, 0 // b never rekeys
	e.up()
	e.pb.Suites = []Proposal{mustProposal(t, "aes128-sha1-modp2048")} // and refuses a's rekeys
	e.pa.Restart = false
	e.advance(67 * time.Minute)
	if len(e.a.SAs()) != 0 || len(e.ha.in) != 0 || e.ha.count(ike.EventIKEDown) != 1 {
		t.Fatalf("after the lifetime: SAs %+v, inbound %v, events %+v", e.a.SAs(), e.ha.in, e.ha.events)
	}
}

// eapPair is a's client dialling b's remote-access server: b answers any
// address (a wildcard peer) with its RSA certificate and EAP-MSCHAPv2
// against a users file of one (User / clientPass), leasing 10.8.0.x.
func eapPair(t *testing.T, password string) (*enginePair, map[netip.Addr]string) {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return eapPairWith(t, password, rsaKey)
}

// eapPairWith is eapPair with the server's key given.
func eapPairWith(t *testing.T, password string, key crypto.Signer) (*enginePair, map[netip.Addr]string) {
	t.Helper()
	e := newEnginePair(t, "", "")
	certs := testPKI(t, key)
	e.ha.cert, e.hb.cert = &testCert{roots: certs[0].roots}, certs[0]
	e.pa.Auth, e.pa.EAPClient = []uint16{ike.AuthRSASig}, &EAPClient{Identity: "User", Password: password}
	leases := map[netip.Addr]string{}
	e.pb.Remote, e.pb.Pairs, e.pb.Auth = netip.Addr{}, nil, []uint16{ike.AuthRSASig}
	e.pb.RemoteAccess = roadWarriors(leases)
	e.pb.RemoteAccess.EAP = MSCHAPv2("gw", eap.NTHashVerifier(users), rand.Reader)
	return e, leases
}

// roadWarriors leases 10.8.0.2 and up, recording who has which address.
func roadWarriors(leases map[netip.Addr]string) *RemoteAccess {
	next := netip.MustParseAddr("10.8.0.2")
	return &RemoteAccess{Inside: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/24")},
		Lease: func(user string, _ netip.AddrPort, want netip.Addr) (netip.Addr, []netip.Addr, error) {
			a := next
			if want.IsValid() {
				a = want
			} else {
				next = next.Next()
			}
			leases[a] = user
			return a, []netip.Addr{netip.MustParseAddr("10.2.0.53")}, nil
		},
		Release: func(a netip.Addr, _ string) { delete(leases, a) }}
}

func users(user string) ([16]byte, bool) { return ppp.NTPasswordHash("clientPass"), user == "User" }

// A road warrior by EAP-MSCHAPv2 (RFC 7296 section 2.16): the server
// proves itself by certificate, the user by password, both AUTHs after
// EAP come from the MSK, and the client leaves with a virtual address,
// the DNS server and a child from that address to the inside network.
func TestEngineEAPRemoteAccess(t *testing.T) {
	e, leases := eapPair(t, "clientPass")
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	addr, dns, ok := e.a.VirtualAddress("to-b")
	if !ok || addr.String() != "10.8.0.2" || len(dns) != 1 || dns[0].String() != "10.2.0.53" || leases[addr] != "User" {
		t.Fatalf("virtual address %v %v %v; leases %v; a events %+v; b events %+v", addr, dns, ok, leases, e.ha.events, e.hb.events)
	}
	e.checkAgree(1)
	c := e.ha.outSA["to-b"]
	if c.LocalTS.Prefix.String() != "10.8.0.2/32" || c.RemoteTS.Prefix.String() != "10.2.0.0/24" {
		t.Errorf("the client's child: %v", c)
	}
	if sb := e.b.SAs(); len(sb) != 1 || sb[0].PeerID != "User" || sb[0].Auth != "eap" {
		t.Errorf("the server's SA: %+v", sb)
	}
	// The client hangs up: its address goes back.
	e.a.Terminate("to-b")
	e.pump()
	if len(leases) != 0 || len(e.b.SAs()) != 0 {
		t.Fatalf("after hang-up: leases %v, server SAs %+v", leases, e.b.SAs())
	}
}

// The operator disconnects a road warrior by its address: the client is
// told (its SA goes too) and the address goes back; an address nobody
// holds is reported as not found. The server was told to put ESP in UDP
// (as behind a NAT): the child EAP made carries it so.
func TestEngineDisconnectRoadWarrior(t *testing.T) {
	e, leases := eapPair(t, "clientPass")
	e.pb.ForceEncap = true
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	addr, _, ok := e.a.VirtualAddress("to-b")
	if !ok {
		t.Fatalf("not up: %+v", e.hb.events)
	}
	for _, c := range e.hb.in {
		if !c.UDP {
			t.Fatalf("the server's child after EAP is not UDP-encapsulated: %v", c)
		}
	}
	if e.b.Disconnect(netip.MustParseAddr("10.8.0.99"), "test") {
		t.Fatal("a client that is not there was disconnected")
	}
	if !e.b.Disconnect(addr, "disconnected by the operator") {
		t.Fatal("the client was not found")
	}
	e.pump()
	if len(leases) != 0 || len(e.b.SAs()) != 0 || len(e.a.SAs()) != 0 || len(e.hb.in) != 0 {
		t.Fatalf("after disconnect: leases %v, server SAs %+v, client SAs %+v", leases, e.b.SAs(), e.a.SAs())
	}
}

func TestEngineEAPWrongPassword(t *testing.T) {
	e, leases := eapPair(t, "wrong")
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	if len(e.a.SAs()) != 0 || len(e.b.SAs()) != 0 || len(leases) != 0 || len(e.ha.in)+len(e.hb.in) != 0 {
		t.Fatalf("a: %+v, b: %+v, leases %v", e.a.SAs(), e.b.SAs(), leases)
	}
	if e.hb.count(ike.EventNegotiationErr) != 1 || !strings.Contains(e.hb.events[0].Message, "refused") {
		t.Errorf("b's events %+v", e.hb.events)
	}
}

// With SlowEAP the check of the user's password runs outside the engine's
// lock: while it waits (a RADIUS server) the engine answers other calls,
// ignores the client's retransmission, and sends the answer once the
// check is done; the client then comes up as usual.
func TestEngineSlowEAP(t *testing.T) {
	e, leases := eapPair(t, "clientPass")
	gate, entered := make(chan struct{}), make(chan struct{}, 1)
	check := eap.NTHashVerifier(users)
	e.pb.RemoteAccess.SlowEAP = true
	e.pb.RemoteAccess.EAP = MSCHAPv2("gw", func(u string, ac, pc [16]byte, nt [24]byte) (string, []byte, error) {
		entered <- struct{}{}
		<-gate
		return check(u, ac, pc, nt)
	}, rand.Reader)
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump() // quiet while the server answers EAP-Identity on its own goroutine
	e.hb.waitSent(t)
	e.pump() // quiet: the server holds the client's MS-CHAPv2 response
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the password check never started")
	}
	if sas := e.b.SAs(); len(sas) != 1 || sas[0].Established {
		t.Fatalf("the server's SAs while the check waits: %+v", sas)
	}
	e.advance(2 * time.Second) // the client retransmits; the server stays silent
	e.pump()
	if sent := e.hb.take(); len(sent) != 0 {
		t.Fatalf("the server answered %d times before the check was done", len(sent))
	}
	close(gate)
	// The client acknowledges the MS-CHAPv2 Success (answered on a
	// goroutine too), then sends its AUTH.
	for range 2 {
		e.hb.waitSent(t)
		e.pump()
	}
	if addr, _, ok := e.a.VirtualAddress("to-b"); !ok || leases[addr] != "User" {
		t.Fatalf("virtual address %v %v; leases %v; b events %+v", addr, ok, leases, e.hb.events)
	}
	e.checkAgree(1)
}

// A road warrior by preshared key (Android's "IKEv2/IPSec PSK"): no EAP,
// the address asked for in IKE_AUTH's configuration payload, leased for
// the identity it proves; a wrong key leases nothing.
func TestEnginePSKRoadWarrior(t *testing.T) {
	for _, key := range []string{"k", "wrong"} {
		e := newEnginePair(t, key, "k")
		leases := map[netip.Addr]string{}
		e.pa.AskAddress, e.pa.LocalID = true, &ike.ID{IDType: ike.IDFQDN, Data: []byte("phone.example.net")}
		e.pb.Remote, e.pb.Pairs, e.pb.RemoteAccess = netip.Addr{}, nil, roadWarriors(leases)
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		addr, dns, ok := e.a.VirtualAddress("to-b")
		if key == "wrong" {
			if ok || len(leases) != 0 || len(e.b.SAs()) != 0 {
				t.Fatalf("wrong key: address %v, leases %v, server SAs %+v", addr, leases, e.b.SAs())
			}
			continue
		}
		if !ok || addr.String() != "10.8.0.2" || len(dns) != 1 || leases[addr] != "fqdn:phone.example.net" {
			t.Fatalf("address %v %v %v, leases %v; b events %+v", addr, dns, ok, leases, e.hb.events)
		}
		e.checkAgree(1)
		if c := e.hb.outSA["to-a"]; c.RemoteTS.Prefix.String() != "10.8.0.2/32" || c.LocalTS.Prefix.String() != "10.2.0.0/24" {
			t.Errorf("the server's child: %v", c)
		}
	}
}

// MOBIKE (RFC 4555): a road warrior that moves to another address says
// so with UPDATE_SA_ADDRESSES; the server's IKE SA and child follow it in
// place (the host moves the SAs, keys and counters kept), and traffic
// then flows on the same child.
func TestEngineMOBIKE(t *testing.T) {
	e, _ := eapPair(t, "clientPass")
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	e.checkAgree(1)
	before := e.hb.outSA["to-a"].OutSPI
	moved := netip.MustParseAddrPort("192.0.2.77:4500")
	if err := e.a.Roam("to-b", moved); err != nil {
		t.Fatal(err)
	}
	e.pump()
	c := e.hb.outSA["to-a"]
	if len(e.hb.moved) != 1 || c.Remote != moved || c.OutSPI != before {
		t.Fatalf("the server's child after the move: %v (moved %d)", c, len(e.hb.moved))
	}
	if sb := e.b.SAs(); sb[0].Remote != moved {
		t.Errorf("the server's IKE SA is at %v", sb[0].Remote)
	}
	// Liveness checks and deletes now go to the new address.
	e.advance(35 * time.Second)
	e.checkAgree(1)
}

// framedSession is an EAP method whose server chose the user's address,
// as a RADIUS server's Framed-IP-Address does.
type framedSession struct {
	*eap.Server
	addr netip.Addr
}

func (f framedSession) FramedAddress() netip.Addr { return f.addr }

// The address an EAP server chose for the user is the one leased.
func TestEngineFramedAddress(t *testing.T) {
	e, leases := eapPair(t, "clientPass")
	e.pb.RemoteAccess.EAP = func(netip.AddrPort) EAPSession {
		return framedSession{eap.NewServer("gw", eap.NTHashVerifier(users), rand.Reader), netip.MustParseAddr("10.8.0.77")}
	}
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	if addr, _, ok := e.a.VirtualAddress("to-b"); !ok || addr.String() != "10.8.0.77" || leases[addr] != "User" {
		t.Fatalf("address %v %v, leases %v", addr, ok, leases)
	}
}

// The configuration reply (section 3.15.1) carries the address and DNS
// servers always, and the netmask, WINS servers and split-DNS domains
// (RFC 8598) only when asked, as Windows asks NBNS and Apple MASK and
// INTERNAL_DNS_DOMAIN.
func TestCPReply(t *testing.T) {
	s := &ikeSA{peer: &Peer{PeerConfig: &ike.PeerConfig{}, RemoteAccess: &RemoteAccess{NBNS: []netip.Addr{netip.MustParseAddr("10.2.0.5")},
		DNSDomains: []string{"corp.example.net"}}}, eap: &eapState{addr: netip.MustParseAddr("10.8.0.2"), dns: []netip.Addr{netip.MustParseAddr("10.2.0.53")}}}
	types := func(cp *CP) []uint16 {
		var out []uint16
		for _, a := range cp.Attrs {
			out = append(out, a.Type)
		}
		return out
	}
	plain := s.cpReply([]Payload{cpRequest()})
	if got := types(plain); !slices.Equal(got, []uint16{CfgInternalIP4Address, CfgInternalIP4DNS}) {
		t.Errorf("asked for an address and DNS: %v", got)
	}
	all := &CP{CfgType: CfgRequest, Attrs: []CPAttr{{Type: CfgInternalIP4Address}, {Type: CfgInternalIP4Netmask}, {Type: CfgInternalIP4DNS},
		{Type: CfgInternalIP4NBNS}, {Type: CfgInternalDNSDomain}}}
	got := s.cpReply([]Payload{all})
	want := []uint16{CfgInternalIP4Address, CfgInternalIP4Netmask, CfgInternalIP4DNS, CfgInternalIP4NBNS, CfgInternalDNSDomain}
	if !slices.Equal(types(got), want) || string(got.Attrs[4].Data) != "corp.example.net" || !bytes.Equal(got.Attrs[1].Data, []byte{255, 255, 255, 255}) {
		t.Errorf("asked for everything: %+v", got.Attrs)
	}
}

// A server that signs answers with the name the client asked for as IDr
// when its certificate names it (macOS, iOS and strongSwan check that),
// else with its subject; with a preshared key the IDr asked for changes
// nothing.
func TestNameAs(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := testPKI(t, key)[0]
	dn := &ID{IDType: ike.IDDERASN1DN, Data: c.leaf.RawSubject}
	for _, tc := range []struct {
		name  string
		certs [][]byte
		asked *ID
		want  string
	}{
		{"its DNS name", [][]byte{c.leaf.Raw}, &ID{T: PayloadIDr, IDType: ike.IDFQDN, Data: []byte("gw-0.example.net")}, "fqdn:gw-0.example.net"},
		{"a name it lacks", [][]byte{c.leaf.Raw}, &ID{T: PayloadIDr, IDType: ike.IDFQDN, Data: []byte("vpn.example.org")}, ike.FormatID(dn.IDType, dn.Data)},
		{"nothing asked", [][]byte{c.leaf.Raw}, nil, ike.FormatID(dn.IDType, dn.Data)},
		{"a preshared key", nil, &ID{T: PayloadIDr, IDType: ike.IDFQDN, Data: []byte("gw-0.example.net")}, ike.FormatID(dn.IDType, dn.Data)},
	} {
		me := AuthSide{ID: dn, Certs: tc.certs}
		var req []Payload
		if tc.asked != nil {
			req = []Payload{tc.asked}
		}
		nameAs(&me, req)
		if got := ike.FormatID(me.ID.IDType, me.ID.Data); got != tc.want {
			t.Errorf("%s: IDr %s, want %s", tc.name, got, tc.want)
		}
	}
}

// Road warriors and INITIAL_CONTACT: the same user from another address
// (a laptop and a phone) keeps both SAs; a client that restarts at the
// same address replaces its old SA; and a client that already holds an
// SA with the server sends no INITIAL_CONTACT for the next (a load test's
// many SAs from one host all stay).
func TestEngineRoadWarriorInitialContact(t *testing.T) {
	e, leases := eapPair(t, "clientPass")
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	client := func(local string) *Manager {
		pc := *e.pa.PeerConfig
		pc.Local = netip.MustParseAddr(local)
		m, err := NewManager(Config{Host: e.ha, Now: func() time.Time { return e.now }})
		if err != nil {
			t.Fatal(err)
		}
		m.SetPeers([]*Peer{{PeerConfig: &pc, Suites: e.pa.Suites, EAPClient: e.pa.EAPClient}})
		if err := m.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.a = m
		e.pump()
		return m
	}
	phone := client("198.51.100.7")
	if len(e.b.SAs()) != 2 || len(leases) != 2 {
		t.Fatalf("the same user from two addresses: server SAs %+v, leases %v", e.b.SAs(), leases)
	}
	client("198.51.100.7") // the phone restarted
	if len(e.b.SAs()) != 2 || len(leases) != 2 {
		t.Fatalf("after the phone's restart: server SAs %+v, leases %v", e.b.SAs(), leases)
	}
	e.a = phone
	pc := *phone.Peers()[0].PeerConfig
	pc.Name = "to-b-2"
	phone.SetPeers([]*Peer{phone.Peers()[0], {PeerConfig: &pc, Suites: e.pa.Suites, EAPClient: e.pa.EAPClient}})
	if err := phone.Initiate("to-b-2"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	if len(e.b.SAs()) != 3 || len(leases) != 3 {
		t.Fatalf("a second SA from one client: server SAs %+v, leases %v", e.b.SAs(), leases)
	}
}

// BenchmarkRoadWarriorMemory brings up road warriors (EAP-MSCHAPv2,
// certificate, child) against one server, 200 per iteration, and reports
// the server's live heap per established SA. The hosts keep the child
// SAs' keys only (no data path), so this is the engine's own cost.
func BenchmarkRoadWarriorMemory(b *testing.B) {
	const n = 200
	if os.Getenv("GATEHOUSE_HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	t := &testing.T{}
	var perSA float64
	for range b.N {
		e, leases := eapPair(t, "clientPass")
		peers := make([]*Peer, n)
		for i := range peers {
			pc := *e.pa.PeerConfig
			pc.Name = fmt.Sprintf("to-b-%d", i)
			peers[i] = &Peer{PeerConfig: &pc, Suites: e.pa.Suites, EAPClient: e.pa.EAPClient}
		}
		e.a.SetPeers(peers)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := range peers {
			if err := e.a.Initiate(peers[i].Name); err != nil {
				b.Fatal(err)
			}
			e.pump()
		}
		e.ha.out, e.hb.out = nil, nil
		e.a.Tick() // as the daemon does every second: the setup's state goes
		e.b.Tick()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if len(leases) != n || len(e.b.SAs()) != n {
			b.Fatalf("%d leases, %d server SAs", len(leases), len(e.b.SAs()))
		}
		// Half the growth is the clients' (the same engine, the same
		// state), so the server's share is about half.
		perSA = float64(after.HeapInuse-before.HeapInuse) / n / 2
		if f := os.Getenv("GATEHOUSE_HEAP_PROFILE"); f != "" {
			// What the SAs hold, for go tool pprof -sample_index=inuse_space.
			if w, err := os.Create(f); err == nil {
				pprof.WriteHeapProfile(w)
				w.Close()
			}
		}
		runtime.KeepAlive(e)
	}
	b.ReportMetric(perSA, "B/SA")
}

// A Windows road warrior (MS NT5 ISAKMPOAKLEY in IKE_SA_INIT) behind a
// NAT refuses the server's child rekeys: the server shows the built-in
// flags, with no interop plugin, makes none, and keeps the child a tenth past its lifetime for the
// client's own; another road warrior is rekeyed by the server at 93 %.
func TestEngineWindowsRoadWarrior(t *testing.T) {
	for _, windows := range []bool{true, false} {
		e, _ := eapPair(t, "clientPass")
		if windows {
			e.pa.VendorIDs = [][]byte{clients.MSNT5(9)}
		}
		e.pa.ForceEncap = true           // the server sees the client behind a NAT
		e.pa.ESPLifetime = 8 * time.Hour // the client would rekey late
		e.pb.ESPLifetime = time.Hour
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		sas := e.b.SAs()
		if len(sas) != 1 || slices.Contains(sas[0].Flags, "client-rekeys-children") != windows || sas[0].Family != "" {
			t.Fatalf("windows %v: the server's SA %+v", windows, sas)
		}
		var first uint32
		for spi := range e.hb.in {
			first = spi
		}
		e.advance(58 * time.Minute) // past 93 % of the server's hour
		_, still := e.hb.in[first]
		if windows != still || len(e.hb.in) != 1 {
			t.Fatalf("windows %v: at 58 min the first child is there: %v, %d inbound SAs", windows, still, len(e.hb.in))
		}
		if windows {
			e.advance(5 * time.Minute) // 63 min: within the tenth more
			if len(e.hb.in) != 1 {
				t.Fatalf("the Windows client's child went before its time was up: %d", len(e.hb.in))
			}
			e.advance(4 * time.Minute) // 67 min: past it
			if len(e.hb.in) != 0 {
				t.Fatalf("the Windows client's child outlived its lifetime and a tenth: %d", len(e.hb.in))
			}
		}
	}
}

// The server's IKE SA rekey for Windows offers MODP2048 first, keeping
// the order otherwise.
func TestMODP2048First(t *testing.T) {
	var ps []Proposal
	for _, s := range []string{"aes256-sha1-modp1024", "aes256gcm16-prfsha256-ecp256", "aes256-sha256-modp2048", "aes128-sha256-modp2048"} {
		ps = append(ps, mustProposal(t, s))
	}
	var got []string
	for _, p := range modp2048First(ps) {
		got = append(got, p.String())
	}
	if want := "aes256-sha256-modp2048 aes128-sha256-modp2048 aes256-sha1-modp1024 aes256gcm16-prfsha256-ecp256"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
}

// TerminateSome ends at most n SAs a call, telling each peer, until none
// is left.
func TestTerminateSome(t *testing.T) {
	e, leases := eapPair(t, "clientPass")
	var peers []*Peer
	for i := range 5 {
		pc := *e.pa.PeerConfig
		pc.Name = fmt.Sprintf("to-b-%d", i)
		peers = append(peers, &Peer{PeerConfig: &pc, Suites: e.pa.Suites, EAPClient: e.pa.EAPClient})
	}
	e.a.SetPeers(peers)
	for _, p := range peers {
		if err := e.a.Initiate(p.Name); err != nil {
			t.Fatal(err)
		}
		e.pump()
	}
	if len(leases) != 5 {
		t.Fatalf("%d leases", len(leases))
	}
	for _, want := range []int{2, 2, 1, 0} {
		if got := e.a.TerminateSome(2); got != want {
			t.Fatalf("TerminateSome(2) = %d, want %d", got, want)
		}
		e.pump()
	}
	if len(leases) != 0 || len(e.b.SAs()) != 0 {
		t.Fatalf("after: leases %v, server SAs %+v", leases, e.b.SAs())
	}
}

// A user who logs in when no address is left is told so, not that the
// password was wrong (section 3.15.4): the server's AUTH and
// INTERNAL_ADDRESS_FAILURE, an event that says why, and the IKE SA goes.
func TestEngineNoAddressLeft(t *testing.T) {
	e, _ := eapPair(t, "clientPass")
	e.pb.RemoteAccess.Lease = func(string, netip.AddrPort, netip.Addr) (netip.Addr, []netip.Addr, error) {
		return netip.Addr{}, nil, errors.New("all 253 addresses of 10.8.0.0/24 are leased")
	}
	if err := e.a.Initiate("to-b"); err != nil {
		t.Fatal(err)
	}
	e.pump()
	e.advance(5 * time.Second)
	if len(e.a.SAs()) != 0 || len(e.b.SAs()) != 0 {
		t.Fatalf("SAs left: client %+v, server %+v", e.a.SAs(), e.b.SAs())
	}
	var said bool
	for _, ev := range e.hb.events {
		if ev.ID == ike.EventNegotiationErr && ev.Reason == "no-address" && strings.Contains(ev.Message, "INTERNAL_ADDRESS_FAILURE") && strings.Contains(ev.Message, "are leased") {
			said = true
		}
		if ev.Reason == "authentication-failed" {
			t.Errorf("the server called it an authentication failure: %+v", ev)
		}
	}
	if !said {
		t.Fatalf("the server's events: %+v", e.hb.events)
	}
	said = false
	for _, ev := range e.ha.events {
		said = said || (ev.ID == ike.EventNegotiationErr && ev.Reason == "no-address")
	}
	if !said {
		t.Fatalf("the client was not told: %+v", e.ha.events)
	}
}

// fakeInterop answers every IKE_SA_INIT with one answer, recording the
// questions.
type fakeInterop struct {
	answer *InteropAnswer
	asked  []InteropQuery
}

func (f *fakeInterop) ClassifyV2(q InteropQuery) *InteropAnswer {
	f.asked = append(f.asked, q)
	return f.answer
}

// The interop plugins' answer about a road warrior's IKE_SA_INIT: its
// suites replace the server's for that SA (here a MODP1024 suite only
// Windows is let in with), `gatehouse sa` names the family, and the
// answer's hint, not the built-in guess, goes into a refusal.
func TestEngineInteropV2(t *testing.T) {
	legacy := mustProposal(t, "aes256-sha1-modp1024")
	for _, accepted := range []bool{true, false} {
		e, _ := eapPair(t, "clientPass")
		e.pa.Suites = []Proposal{legacy}
		e.pa.VendorIDs = [][]byte{clients.MSNT5(9)}
		f := &fakeInterop{answer: &InteropAnswer{Family: "windows", Detail: "Windows 8 to 11, IKEv2", Plugin: "interop-windows",
			Hint: "set NegotiateDH2048_AES256"}}
		if accepted {
			f.answer.Suites = append([]Proposal{legacy}, e.pb.Suites...)
		}
		e.b.interop = f
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		if len(f.asked) != 1 || f.asked[0].Peer != e.pb || len(f.asked[0].Offered) != 1 || f.asked[0].Offered[0].String() != legacy.String() ||
			len(f.asked[0].VendorIDs) != 1 {
			t.Fatalf("asked %+v", f.asked)
		}
		sas := e.b.SAs()
		if !accepted {
			refusal := e.hb.eventWith(ike.EventNegotiationErr)
			if len(sas) != 0 || refusal == nil || !strings.Contains(refusal.Message, "set NegotiateDH2048_AES256") ||
				strings.Contains(refusal.Message, "Rasman") {
				t.Fatalf("SAs %+v; refusal %+v", sas, refusal)
			}
			continue
		}
		if len(sas) != 1 || !sas[0].Established || sas[0].Family != "windows" || sas[0].Plugin != "interop-windows" ||
			sas[0].Phase1 != legacy.String() || !slices.Contains(sas[0].Flags, "rekey-modp2048-first") {
			t.Fatalf("the server's SA %+v", sas)
		}
	}
}

// An offer is read as suites in the peer's order, AEAD ciphers without
// integrity, unknown transforms skipped, at most MaxOfferedSuites.
func TestOfferedSuites(t *testing.T) {
	gcm, cbc := mustProposal(t, "aes128gcm16-prfsha256-curve25519"), mustProposal(t, "aes256-sha256-modp2048")
	one := SAProposal{Num: 1, Protocol: ProtoIKE, Transforms: append(cbc.Transforms(), Transform{Type: TransformDH, ID: 31},
		Transform{Type: TransformDH, ID: 999}, Transform{Type: TransformEncr, ID: 99})}
	two := SAProposal{Num: 2, Protocol: ProtoIKE, Transforms: gcm.Transforms()}
	var got []string
	for _, p := range OfferedSuites([]SAProposal{one, two}) {
		got = append(got, p.String())
	}
	if want := "aes256-sha256-modp2048 aes256-sha256-curve25519 aes128gcm16-prfsha256-curve25519"; strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s", got, want)
	}
	var big SAProposal
	big.Protocol = ProtoIKE
	for _, c := range alg.Ciphers() {
		if c.Encr != 0 && !c.AEAD {
			big.Transforms = append(big.Transforms, Proposal{Cipher: &c}.encr())
		}
	}
	for _, h := range alg.Hashes() {
		if h.Integ != 0 {
			big.Transforms = append(big.Transforms, Transform{Type: TransformInteg, ID: h.Integ}, Transform{Type: TransformPRF, ID: h.PRFID})
		}
	}
	for _, g := range alg.Groups() {
		big.Transforms = append(big.Transforms, Transform{Type: TransformDH, ID: g.Number})
	}
	if n := len(OfferedSuites([]SAProposal{big})); n != MaxOfferedSuites {
		t.Fatalf("%d suites read of a large offer", n)
	}
}

// A road warrior flagged dhcp-inform (Windows, by interop-windows) gets
// 255.255.255.255/32 among its split tunnel's selectors, for the
// DHCPINFORM that asks for its routes; others do not.
func TestEngineDHCPInformSelector(t *testing.T) {
	for _, flagged := range []bool{true, false} {
		e, _ := eapPair(t, "clientPass")
		if flagged {
			e.b.interop = &fakeInterop{answer: &InteropAnswer{Family: "windows", Flags: ike.FlagDHCPInform}}
		}
		if err := e.a.Initiate("to-b"); err != nil {
			t.Fatal(err)
		}
		e.pump()
		var remotes []string
		for _, p := range e.ha.outSA["to-b"].AllPairs() {
			remotes = append(remotes, p.Remote.Prefix.String())
		}
		want := "10.2.0.0/24"
		if flagged {
			want += " 255.255.255.255/32"
		}
		if strings.Join(remotes, " ") != want {
			t.Fatalf("flagged %v: the client's child reaches %v, want %s", flagged, remotes, want)
		}
	}
}

// Two gateways over IPv6, with IPv6 and IPv4 networks behind them: the
// IKE SA comes up over the IPv6 addresses (NAT detection hashes them, RFC
// 7296 section 2.23), the child carries every pair of the two families
// (TS_IPV6_ADDR_RANGE beside TS_IPV4_ADDR_RANGE, section 3.13.1), and
// with UDP encapsulation forced it goes to port 4500 over IPv6.
func TestEngineIPv6(t *testing.T) {
	for _, encap := range []bool{false, true} {
		e := newEnginePair(t, "k", "k")
		a6, b6 := netip.MustParseAddr("2001:db8:a::1"), netip.MustParseAddr("2001:db8:b::2")
		pairs := func(locals, remotes []string) []ike.TSPair {
			var out []ike.TSPair
			for _, l := range locals {
				for _, r := range remotes {
					out = append(out, ike.TSPair{Local: ike.Selector{Prefix: netip.MustParsePrefix(l)}, Remote: ike.Selector{Prefix: netip.MustParsePrefix(r)}})
				}
			}
			return out
		}
		e.pa.Local, e.pa.Remote, e.pa.Pairs = a6, b6, pairs([]string{"fd00:1::/64", "10.1.0.0/24"}, []string{"fd00:2::/64"})
		e.pb.Local, e.pb.Remote, e.pb.Pairs = b6, a6, pairs([]string{"fd00:2::/64"}, []string{"fd00:1::/64", "10.1.0.0/24"})
		e.pb.ForceEncap = encap
		e.up()
		ca, cb := e.ha.outSA["to-b"], e.hb.outSA["to-a"]
		var got []string
		for _, p := range ca.AllPairs() {
			got = append(got, p.Local.Prefix.String()+">"+p.Remote.Prefix.String())
		}
		if want := "fd00:1::/64>fd00:2::/64 10.1.0.0/24>fd00:2::/64"; strings.Join(got, " ") != want {
			t.Errorf("encap %v: a's child carries %v, want %s", encap, got, want)
		}
		if ca.Remote.Addr() != b6 || cb.Remote.Addr() != a6 || ca.UDP != encap || (encap && ca.Remote.Port() != 4500) {
			t.Errorf("encap %v: a's child to %v (UDP %v), b's to %v", encap, ca.Remote, ca.UDP, cb.Remote)
		}
		if sa := e.a.SAs(); len(sa) != 1 || !sa[0].Established || sa[0].NAT != encap || sa[0].PeerID != "ipv6:2001:db8:b::2" {
			t.Errorf("encap %v: a's IKE SA %+v", encap, sa)
		}
	}
}
