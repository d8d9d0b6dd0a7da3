// Package sad is the security association database (RFC 4301 section
// 4.4.2): inbound SAs by SPI, outbound SAs by the policy rule and peer they
// serve. Lookups take one shard's read lock and allocate nothing; rekeying
// replaces an outbound SA in one step while the old inbound SA stays until
// it is deleted, so no packet is lost. Time lifetimes are checked by Tick.
package sad

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/esp"
)

// Mode of an SA.
type Mode uint8

const (
	Transport Mode = iota + 1
	Tunnel
)

func (m Mode) String() string {
	if m == Tunnel {
		return "tunnel"
	}
	return "transport"
}

// Selector is a traffic selector (RFC 4301 section 4.4.1.1): decrypted
// packets must fall inside one of the SA's selectors.
type Selector struct {
	Src, Dst         netip.Prefix
	Proto            uint8 // 0: any
	SrcPort, DstPort uint16
}

// HostPrefix is the prefix of one address (a /32 or a /128), unmapped.
func HostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

// Matches reports whether a packet's fields fall inside the selector.
func (s Selector) Matches(src, dst netip.Addr, proto uint8, sport, dport uint16) bool {
	return s.Src.Contains(src) && s.Dst.Contains(dst) &&
		(s.Proto == 0 || s.Proto == proto) &&
		(s.SrcPort == 0 || s.SrcPort == sport) && (s.DstPort == 0 || s.DstPort == dport)
}

func (s Selector) String() string {
	out := s.Src.String() + " > " + s.Dst.String()
	if s.Proto != 0 {
		out += fmt.Sprintf(" proto %d", s.Proto)
	}
	if s.SrcPort != 0 || s.DstPort != 0 {
		out += fmt.Sprintf(" ports %d > %d", s.SrcPort, s.DstPort)
	}
	return out
}

// Meta describes an SA beyond its crypto.
type Meta struct {
	Name     string // tunnel or manual SA name, for people
	Mode     Mode
	Local    netip.AddrPort // outer addresses; port 4500 with UDP encapsulation
	Peer     netip.AddrPort
	UDPEncap bool
	// Selectors: what may arrive on an inbound SA; on an outbound one,
	// what it carries, for display (the policy and OutKey choose it).
	Selectors []Selector
	Rule      string     // policy rule name
	NATOA     netip.Addr // peer's original address (transport mode behind NAT)
}

// InSA is an installed inbound SA.
type InSA struct {
	Meta
	ESP *esp.Inbound // or
	AH  *esp.AH
}

// OutSA is an installed outbound SA.
type OutSA struct {
	Meta
	ESP *esp.Outbound // or
	AH  *esp.AH
	// keys counts the OutKeys it is installed under: an IKEv2 child
	// carries several subnet pairs, each a key. It leaves the SAD when
	// the last goes.
	keys atomic.Int32
}

// state is what every SA, ESP or AH, in or out, offers the database.
type state interface {
	SPI() uint32
	Config() esp.Config
	Created() time.Time
	CheckTime(time.Time)
	Counters() *esp.Stats
	WipeKeys()
}

func (s *InSA) state() state {
	if s.AH != nil {
		return s.AH
	}
	return s.ESP
}

func (s *OutSA) state() state {
	if s.AH != nil {
		return s.AH
	}
	return s.ESP
}

// SPI returns the SA's SPI.
func (s *InSA) SPI() uint32 { return s.state().SPI() }

// SPI returns the SA's SPI.
func (s *OutSA) SPI() uint32 { return s.state().SPI() }

// AllowsInner reports whether a decrypted packet matches the SA's selectors.
func (m *Meta) AllowsInner(src, dst netip.Addr, proto uint8, sport, dport uint16) bool {
	for i := range m.Selectors {
		if m.Selectors[i].Matches(src, dst, proto, sport, dport) {
			return true
		}
	}
	return false
}

// OutKey finds the outbound SA for a packet: the rule that matched it, by
// name (stable across reloads, unlike its position), and the peer (tunnel
// endpoint, or the packet's destination in transport mode).
type OutKey struct {
	Rule string
	Peer netip.Addr
	// Pair is the subnet pair of a rule with one SA pair per filter (a
	// negotiated tunnel: policy.Rule.PerPair), as policy.PairID numbers
	// it; 0 otherwise. A number, not two prefixes, keeps the key small:
	// it is hashed for every packet out (and Pair before Port keeps the
	// fields after Rule one run of memory to hash).
	Pair uint32
	// Port tells apart remote-access clients behind one NAT: their
	// NAT-T source port (0 for everything else).
	Port uint16
}

const shards = 64

type inShard struct {
	mu sync.RWMutex
	m  map[uint32]*InSA
}

type outShard struct {
	mu sync.RWMutex
	m  map[OutKey]*OutSA
}

// DB is the SA database.
type DB struct {
	in  [shards]inShard
	out [shards]outShard
	n   atomic.Int64
	// retired keeps the traffic of removed SAs, by mode and direction, so
	// that Totals only ever grow (Prometheus counters).
	retired [2][2]struct{ bytes, packets atomic.Uint64 }
}

// Total is the traffic of every SA of a mode and direction, removed ones
// included.
type Total struct {
	Mode           Mode
	Inbound        bool
	Bytes, Packets uint64
}

func dirIndex(inbound bool) int {
	if inbound {
		return 1
	}
	return 0
}

// counted reports whether an SA's traffic goes into the totals (a known
// mode).
func counted(m Meta) bool { return m.Mode == Transport || m.Mode == Tunnel }

// retire is called as an SA leaves the SAD (deleted, expired or replaced
// by a rekey): its keys are wiped and its traffic kept in the totals.
func (db *DB) retire(m Meta, inbound bool, c state) {
	if c == nil {
		return
	}
	c.WipeKeys()
	if !counted(m) {
		return
	}
	r := &db.retired[m.Mode-1][dirIndex(inbound)]
	st := c.Counters()
	r.bytes.Add(st.Bytes.Load())
	r.packets.Add(st.Packets.Load())
}

// Totals sums the traffic by mode and direction, in a fixed order.
func (db *DB) Totals() []Total {
	var out [2][2]Total
	for m := range 2 {
		for d := range 2 {
			r := &db.retired[m][d]
			out[m][d] = Total{Mode: Mode(m + 1), Inbound: d == 1, Bytes: r.bytes.Load(), Packets: r.packets.Load()}
		}
	}
	db.each(func(meta Meta, inbound bool, c state) {
		if !counted(meta) {
			return
		}
		t := &out[meta.Mode-1][dirIndex(inbound)]
		st := c.Counters()
		t.Bytes += st.Bytes.Load()
		t.Packets += st.Packets.Load()
	})
	return []Total{out[0][0], out[0][1], out[1][0], out[1][1]}
}

// each calls f for every installed SA, shard by shard, under its lock.
func (db *DB) each(f func(meta Meta, inbound bool, c state)) {
	for i := range db.in {
		s := &db.in[i]
		s.mu.RLock()
		for _, sa := range s.m {
			f(sa.Meta, true, sa.state())
		}
		s.mu.RUnlock()
	}
	var seen map[*OutSA]bool // an SA under several keys is one SA
	for i := range db.out {
		o := &db.out[i]
		o.mu.RLock()
		for _, sa := range o.m {
			if sa.keys.Load() > 1 {
				if seen[sa] {
					continue
				}
				if seen == nil {
					seen = map[*OutSA]bool{}
				}
				seen[sa] = true
			}
			f(sa.Meta, false, sa.state())
		}
		o.mu.RUnlock()
	}
}

// unkey is an outbound SA leaving one of its keys; with the last, it
// leaves the SAD.
func (db *DB) unkey(sa *OutSA) {
	if sa.keys.Add(-1) == 0 {
		db.n.Add(-1)
		db.retire(sa.Meta, false, sa.state())
	}
}

// Sentinel errors.
var (
	ErrSPIInUse = errors.New("SPI already installed")
	ErrNotFound = errors.New("no such SA")
)

// New makes an empty database.
func New() *DB {
	db := &DB{}
	for i := range db.in {
		db.in[i].m = map[uint32]*InSA{}
		db.out[i].m = map[OutKey]*OutSA{}
	}
	return db
}

func spiShard(spi uint32) int { return int((spi * 2654435761) >> 26) } // Fibonacci hash, top 6 bits

func keyShard(k OutKey) int {
	a := k.Peer.As16()
	h := uint32(len(k.Rule))
	if len(k.Rule) > 0 {
		h = h*31 + uint32(k.Rule[len(k.Rule)-1])
	}
	h = h*2654435761 ^ uint32(a[12])<<24 ^ uint32(a[13])<<16 ^ uint32(a[14])<<8 ^ uint32(a[15])
	h ^= uint32(k.Port) << 7 // clients behind one NAT differ only here: spread them over the shards
	return int((h * 2654435761) >> 26)
}

// AddInbound installs an inbound SA.
func (db *DB) AddInbound(sa *InSA) error {
	s := &db.in[spiShard(sa.SPI())]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[sa.SPI()]; ok {
		return fmt.Errorf("%w: %08x", ErrSPIInUse, sa.SPI())
	}
	s.m[sa.SPI()] = sa
	db.n.Add(1)
	return nil
}

// Inbound finds the inbound SA for an SPI.
func (db *DB) Inbound(spi uint32) *InSA {
	s := &db.in[spiShard(spi)]
	s.mu.RLock()
	sa := s.m[spi]
	s.mu.RUnlock()
	return sa
}

// RemoveInbound deletes an inbound SA.
func (db *DB) RemoveInbound(spi uint32) (*InSA, error) {
	s := &db.in[spiShard(spi)]
	s.mu.Lock()
	defer s.mu.Unlock()
	sa, ok := s.m[spi]
	if !ok {
		return nil, fmt.Errorf("%w: inbound %08x", ErrNotFound, spi)
	}
	delete(s.m, spi)
	db.n.Add(-1)
	db.retire(sa.Meta, true, sa.state())
	return sa, nil
}

// SetOutbound installs or replaces (rekey) the outbound SA for k and
// returns the one it replaced, if any.
func (db *DB) SetOutbound(k OutKey, sa *OutSA) *OutSA {
	s := &db.out[keyShard(k)]
	s.mu.Lock()
	old := s.m[k]
	s.m[k] = sa
	s.mu.Unlock()
	if old == sa {
		return old
	}
	if sa.keys.Add(1) == 1 {
		db.n.Add(1)
	}
	if old != nil {
		db.unkey(old)
	}
	return old
}

// Outbound finds the outbound SA for k.
func (db *DB) Outbound(k OutKey) *OutSA {
	s := &db.out[keyShard(k)]
	s.mu.RLock()
	sa := s.m[k]
	s.mu.RUnlock()
	return sa
}

// RemoveOutbound deletes the outbound SA for k if its SPI is spi (so a
// late delete of a rekeyed SA does not remove its successor).
func (db *DB) RemoveOutbound(k OutKey, spi uint32) (*OutSA, error) {
	s := &db.out[keyShard(k)]
	s.mu.Lock()
	defer s.mu.Unlock()
	sa, ok := s.m[k]
	if !ok || sa.SPI() != spi {
		return nil, fmt.Errorf("%w: outbound %08x", ErrNotFound, spi)
	}
	delete(s.m, k)
	db.unkey(sa)
	return sa, nil
}

// Move gives a child's inbound SA (spi) and its outbound SA (under k,
// if its SPI is outSPI) new outer addresses and encapsulation: MOBIKE
// (RFC 4555) moves a client without a new negotiation. Keys, sequence
// numbers, replay windows and counters stay; the data path, which may
// hold the old entries a moment longer, sees whole new ones.
func (db *DB) Move(spi uint32, k OutKey, outSPI uint32, local, peer netip.AddrPort, encap bool) error {
	move := func(m *Meta) { m.Local, m.Peer, m.UDPEncap = local, peer, encap }
	s := &db.in[spiShard(spi)]
	s.mu.Lock()
	in, ok := s.m[spi]
	if ok {
		n := *in
		move(&n.Meta)
		s.m[spi] = &n
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: inbound %08x", ErrNotFound, spi)
	}
	o := &db.out[keyShard(k)]
	o.mu.Lock()
	defer o.mu.Unlock()
	out := o.m[k]
	if out == nil || out.SPI() != outSPI {
		return fmt.Errorf("%w: outbound %08x", ErrNotFound, outSPI)
	}
	if out.keys.Load() != 1 {
		return fmt.Errorf("outbound %08x is installed under %d keys; only an SA under one key moves", outSPI, out.keys.Load())
	}
	n := &OutSA{Meta: out.Meta, ESP: out.ESP, AH: out.AH}
	move(&n.Meta)
	n.keys.Store(1)
	o.m[k] = n
	return nil
}

// RemoveSPI removes the inbound or outbound SA with this SPI, wherever it
// is (used when an SA reaches a hard lifetime).
func (db *DB) RemoveSPI(spi uint32) bool {
	if _, err := db.RemoveInbound(spi); err == nil {
		return true
	}
	found := false
	for i := range db.out {
		s := &db.out[i]
		s.mu.Lock()
		for k, sa := range s.m {
			if sa.SPI() == spi {
				delete(s.m, k) // under every key it has
				db.unkey(sa)
				found = true
			}
		}
		s.mu.Unlock()
	}
	return found
}

// Len is the number of installed SAs, both directions.
func (db *DB) Len() int { return int(db.n.Load()) }

// Snapshot is one SA for listing: never keys.
type Snapshot struct {
	Meta
	Inbound     bool
	SPI         uint32
	Protocol    string // esp, ah
	Suite       string
	ESN         bool
	Bytes       uint64
	Packets     uint64
	ReplayDrops uint64
	AuthFails   uint64
	OtherDrops  uint64
	Age         time.Duration
	HardTime    time.Duration
	Backend     string
}

func snap(meta Meta, inbound bool, c state, now time.Time) Snapshot {
	cfg, st := c.Config(), c.Counters()
	backend := cfg.Backend
	if backend == "" {
		backend = esp.SoftwareBackend
	}
	return Snapshot{Meta: meta, Inbound: inbound, SPI: cfg.SPI, Protocol: cfg.Suite.Protocol.String(), Suite: cfg.Suite.String(),
		ESN: cfg.ESN, Bytes: st.Bytes.Load(), Packets: st.Packets.Load(), ReplayDrops: st.ReplayDrops.Load(),
		AuthFails: st.AuthFailures.Load(), OtherDrops: st.OtherDrops.Load(), Age: now.Sub(c.Created()),
		HardTime: cfg.Limits.HardTime, Backend: backend}
}

// List snapshots every SA, ordered by name, direction and SPI.
func (db *DB) List(now time.Time) []Snapshot {
	var out []Snapshot
	db.each(func(meta Meta, inbound bool, c state) { out = append(out, snap(meta, inbound, c, now)) })
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Inbound != b.Inbound {
			return !a.Inbound
		}
		return a.SPI < b.SPI
	})
	return out
}

// Tick applies time lifetimes to every SA; call it about once a second.
// Expiry events go to each SA's OnEvent; the owner removes hard-expired SAs.
func (db *DB) Tick(now time.Time) {
	for i := range db.in {
		s := &db.in[i]
		s.mu.RLock()
		for _, sa := range s.m {
			sa.state().CheckTime(now)
		}
		s.mu.RUnlock()
		o := &db.out[i]
		o.mu.RLock()
		for _, sa := range o.m {
			sa.state().CheckTime(now)
		}
		o.mu.RUnlock()
	}
}

// NewSPI picks an unused inbound SPI at random (256 or more: lower ones
// are reserved, RFC 4303 section 2.1).
func (db *DB) NewSPI() (uint32, error) {
	for range 64 {
		var b [4]byte
		rand.Read(b[:])
		if spi := binary.BigEndian.Uint32(b[:]); spi >= 256 && db.Inbound(spi) == nil {
			return spi, nil
		}
	}
	return 0, errors.New("no free SPI after 64 tries")
}
