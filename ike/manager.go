package ike

import (
	"cmp"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// SA states.
type saState int

const (
	stateMainMode saState = iota
	stateEstablished
	stateDead
)

// IKESA is an IKE (ISAKMP) SA.
type IKESA struct {
	SPIi, SPIr    Cookie
	Initiator     bool
	Local, Remote netip.AddrPort
	Peer          *PeerConfig
	state         saState
	created       time.Time

	phase1 Phase1
	prf    PRF
	keys   Keys
	crypt  *crypter
	// p1iv is the main mode CBC chain; once established, the last
	// phase 1 block, from which quick mode and informational IVs come.
	p1iv []byte

	// p1encrypt is set once main mode has reached its encrypted
	// messages (5 and 6).
	p1encrypt bool

	nat  natState
	life lifeState

	// gss is main mode's GSS-API context while it lives (gss.go).
	gss *GSSContext

	// peerID is who the peer proved to be: its certificate's subject, or
	// its ID payload with a preshared key.
	peerID string

	vendor vendorState

	// halfOpenFrom is set while a responder SA counts as half-open: the
	// address it is counted under.
	halfOpenFrom netip.Addr

	// initialContact: the peer said it holds no other SA with us.
	initialContact bool

	dpd dpdState

	xs       map[uint32]*exchange
	children []*ChildSA
	// wanted are the pairs an initiator negotiates, one quick mode each,
	// once main mode is done.
	wanted []TSPair
	m      *Manager
	msgIDs usedMsgIDs
}

// natState is NAT traversal's (natt.go): the dialect both sides speak,
// whether we or the peer are behind a NAT, and our last keepalive.
type natState struct {
	dialect       int
	local, remote bool
	lastKeepalive time.Time
}

// lifeState is the SA's end (rekey.go): the fraction of the lifetime at
// which this side replaces it, whether that has started, whether this SA
// replaces older ones, and when an old SA goes.
type lifeState struct {
	soft          float64
	reauthStarted bool
	replaces      bool
	retireAt      time.Time
	// expired: a road warrior's SA past its lifetime (expireTick); it
	// only holds its IPsec SAs until they run out.
	expired bool
}

// vendorState is the peer's features and quirks, read from its first
// message (vendor.go), and what the interop plugins made of it.
type vendorState struct {
	classified bool
	flags      Flags
	interop    InteropAnswer
}

// dpdState is dead peer detection's (dpd.go): our probe, and when we
// last heard from the peer.
type dpdState struct {
	seq       uint32
	sent      time.Time
	lastHeard time.Time
}

// usedMsgIDs are the quick mode message IDs an SA has run, oldest first
// in order, so a replayed quick mode is refused after its exchange is
// forgotten (bounded: maxUsedMsgIDs).
type usedMsgIDs struct {
	used  map[uint32]struct{}
	order []uint32
}

// maxUsedMsgIDs bounds the quick mode message IDs an IKE SA remembers:
// far more quick modes than one IKE SA runs in its life (a rekey an hour
// for a day is 24), and only ones that authenticated take a place.
const maxUsedMsgIDs = 1024

func (sa *IKESA) usedMsgID(id uint32) bool { _, ok := sa.msgIDs.used[id]; return ok }

// useMsgID remembers a quick mode message ID for the SA's life.
func (sa *IKESA) useMsgID(id uint32) {
	if sa.usedMsgID(id) {
		return
	}
	if sa.msgIDs.used == nil {
		sa.msgIDs.used = map[uint32]struct{}{}
	}
	if len(sa.msgIDs.order) >= maxUsedMsgIDs {
		delete(sa.msgIDs.used, sa.msgIDs.order[0])
		sa.msgIDs.order = sa.msgIDs.order[1:]
	}
	sa.msgIDs.used[id] = struct{}{}
	sa.msgIDs.order = append(sa.msgIDs.order, id)
}

// Manager runs IKE: it owns the IKE SAs, answers and starts exchanges,
// and retransmits. Receive, Initiate and Tick may be called from any
// goroutine.
type Manager struct {
	log  *zap.Logger
	host Host
	rand io.Reader
	now  func() time.Time

	mu      sync.Mutex
	peers   []*PeerConfig
	sas     map[Cookie]*IKESA // by initiator cookie
	refused map[netip.Addr]time.Time
	// restarts: tunnels that must always be up, and when to start them
	// again after their IKE SA went away.
	restarts map[*PeerConfig]time.Time
	// frags: messages being reassembled from fragments (fragment.go);
	// fragSize: the datagram size past which we fragment.
	interop Interop
	// Half-open responder SAs: how many, from whom, the limits, and the
	// first messages dropped for them.
	halfOpen                          int
	halfOpenBy                        map[netip.Addr]int
	maxHalfOpen, maxHalfOpenPerSource int
	halfOpenDrops                     uint64
	halfOpenLogged                    time.Time
	frags                             map[fragKey]*fragBuffer
	fragSize                          int
	// drops counts messages dropped without a change of state, by
	// reason (dropNames).
	drops [dropReasons]uint64
}

// restartDelay paces re-initiation of always-up tunnels whose peer is
// down, so a dead peer costs one main mode every few seconds.
const restartDelay = 5 * time.Second

// Config wires a Manager.
type Config struct {
	Log  *zap.Logger
	Host Host
	Rand io.Reader
	Now  func() time.Time
	// FragmentSize is the IP datagram size past which messages go in
	// fragments to peers that take them (0: 1280).
	FragmentSize int
	// Interop classifies peers (nil: the built-in vendor IDs only).
	Interop Interop
	// MaxHalfOpen bounds the IKE SAs we answer that are not established
	// yet, in all (default 4096) and from one address (default 64): a flood
	// of first messages, spoofed or not, costs bounded memory and leaves
	// established SAs alone.
	MaxHalfOpen, MaxHalfOpenPerSource int
}

const (
	defaultMaxHalfOpen          = 4096
	defaultMaxHalfOpenPerSource = 64
)

// NewManager makes a manager; SetPeers gives it peers.
func NewManager(c Config) *Manager {
	if c.Log == nil {
		c.Log = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.MaxHalfOpen = cmp.Or(c.MaxHalfOpen, defaultMaxHalfOpen)
	c.MaxHalfOpenPerSource = cmp.Or(c.MaxHalfOpenPerSource, defaultMaxHalfOpenPerSource)
	return &Manager{log: c.Log, host: c.Host, rand: c.Rand, now: c.Now, sas: map[Cookie]*IKESA{}, refused: map[netip.Addr]time.Time{},
		maxHalfOpen: c.MaxHalfOpen, maxHalfOpenPerSource: c.MaxHalfOpenPerSource, halfOpenBy: map[netip.Addr]int{},
		restarts: map[*PeerConfig]time.Time{}, frags: map[fragKey]*fragBuffer{}, fragSize: c.FragmentSize, interop: c.Interop}
}

// SetPeers replaces the peer list (on load and reload).
func (m *Manager) SetPeers(p []*PeerConfig) {
	m.mu.Lock()
	m.peers = p
	m.mu.Unlock()
}

// Peers returns the peer list in force.
func (m *Manager) Peers() []*PeerConfig {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.peers)
}

// whyOperator and whyReplaced are the removal reasons that must not
// restart a tunnel.
const (
	whyOperator = "stopped by the operator"
	whyReplaced = "replaced by a reauthenticated IKE SA"
)

// hasPeer reports whether p is still configured (a reload may drop it).
func (m *Manager) hasPeer(p *PeerConfig) bool {
	for _, q := range m.peers {
		if q == p {
			return true
		}
	}
	return false
}

// peerUp reports whether an IKE SA with p exists or is being made.
func (m *Manager) peerUp(p *PeerConfig) bool {
	for _, sa := range m.sas {
		if sa.Peer == p && sa.state != stateDead {
			return true
		}
	}
	return false
}

// peerFor finds the peer for a pair of addresses (PeerFor).
func (m *Manager) peerFor(local, remote netip.Addr) *PeerConfig {
	p, _ := PeerFor(m.peers, func(p *PeerConfig) *PeerConfig { return p }, local, remote)
	return p
}

// PeerFor finds the peer for a pair of addresses among peers (config
// gives each one's PeerConfig), for either IKE version: the one whose
// remote and local addresses match; with local unspecified (a wildcard
// socket), the first whose remote matches; else a wildcard config, which
// answers road warriors. A peer configured at another of our addresses
// is not found.
func PeerFor[P any](peers []P, config func(P) *PeerConfig, local, remote netip.Addr) (P, bool) {
	local, remote = local.Unmap(), remote.Unmap()
	var byRemote, none P
	found := false
	for _, p := range peers {
		c := config(p)
		if c.Remote != remote {
			continue
		}
		if c.Local == local {
			return p, true
		}
		if !found {
			byRemote, found = p, true
		}
	}
	if found && local.IsValid() && !local.IsUnspecified() && config(byRemote).Local.IsValid() {
		return none, false // the peer is known, but at another of our addresses
	}
	if found {
		return byRemote, true
	}
	for _, p := range peers {
		if config(p).Wildcard() {
			return p, true
		}
	}
	return none, false
}

// samePeer reports whether two IKE SAs are with the same peer. Behind a
// wildcard config every client is a peer of its own, told apart by its
// address and port as we see them (clients behind one NAT share the
// address, never the port).
func samePeer(a, b *IKESA) bool {
	return a.Peer == b.Peer && (!a.Peer.Wildcard() || a.Remote == b.Remote)
}

func (m *Manager) random(n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(m.rand, b); err != nil {
		panic(fmt.Sprintf("ike: random source failed: %v", err)) // crypto/rand does not fail
	}
	return b
}

func (m *Manager) cookie() Cookie {
	var c Cookie
	for c == (Cookie{}) {
		copy(c[:], m.random(8))
	}
	return c
}

// ErrNoPeer: an address we have no tunnel for.
var ErrNoPeer = errors.New("no peer configured for this address")

// ErrWildcard: a config that answers any peer has no peer to start with.
var ErrWildcard = errors.New("remote access answers clients and does not initiate")

// ErrNoPair: the traffic to start a child SA for is not one of the
// peer's subnet pairs.
var ErrNoPair = errors.New("not one of the peer's subnet pairs")

// Initiate brings up all of a peer's pairs: main mode, then a quick mode
// per pair; if an IKE SA is already up, only the quick modes for pairs
// without a child run. It returns at once.
func (m *Manager) Initiate(name string) error {
	return m.InitiatePair(name, nil)
}

// InitiatePair brings up one of a peer's pairs (traffic for it arrived):
// nil is every pair. An established IKE SA carries the quick mode; else
// one is made first.
func (m *Manager) InitiatePair(name string, pair *TSPair) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var peer *PeerConfig
	for _, p := range m.peers {
		if p.Name == name {
			peer = p
		}
	}
	if peer == nil {
		return fmt.Errorf("initiate %q: %w", name, ErrNoPeer)
	}
	if peer.Wildcard() {
		return fmt.Errorf("initiate %q: %w", name, ErrWildcard)
	}
	pairs := peer.allPairs()
	if pair != nil {
		if !peer.has(*pair) {
			return fmt.Errorf("initiate %q for %v: %w", name, *pair, ErrNoPair)
		}
		pairs = []TSPair{*pair}
	}
	return m.initiateLocked(peer, pairs)
}

// initiateLocked starts what it takes to bring up pairs with peer: quick
// modes on an established IKE SA for the pairs without a child or one on
// its way; else the pairs join (or start) a main mode.
func (m *Manager) initiateLocked(peer *PeerConfig, pairs []TSPair) error {
	for _, sa := range m.sas {
		if sa.Peer == peer && sa.state == stateEstablished && sa.life.retireAt.IsZero() {
			var errs []error
			for _, t := range pairs {
				if !sa.covers(t) {
					errs = append(errs, m.startQuickMode(sa, t))
				}
			}
			return errors.Join(errs...)
		}
	}
	for _, sa := range m.sas {
		if sa.Peer == peer && sa.state == stateMainMode && sa.Initiator {
			for _, t := range pairs {
				if !slices.Contains(sa.wanted, t) {
					sa.wanted = append(sa.wanted, t)
				}
			}
			return nil // on its way
		}
	}
	return m.startMainMode(peer, nil, pairs)
}

// covers reports whether a pair has a live child on the SA, or a quick
// mode of ours on its way.
func (sa *IKESA) covers(t TSPair) bool {
	for _, c := range sa.children {
		if c.pair == t && !c.superseded && c.deleteAt.IsZero() {
			return true
		}
	}
	for _, x := range sa.xs {
		if x.typ != ExchangeQuick || !x.initiator || !x.finished.IsZero() {
			continue
		}
		for _, tk := range x.tasks {
			if q, ok := tk.(*quickMode); ok && q.rekeys == nil && q.pair == t {
				return true
			}
		}
	}
	return false
}

// livePairs lists the pairs of an SA's children that are in use.
func (sa *IKESA) livePairs() []TSPair {
	var out []TSPair
	for _, c := range sa.children {
		if !c.superseded && c.deleteAt.IsZero() && !slices.Contains(out, c.pair) {
			out = append(out, c.pair)
		}
	}
	return out
}

// startMainMode starts a new IKE SA with a peer, to carry pairs; old is
// the SA it is to replace (reauthentication), or nil.
func (m *Manager) startMainMode(peer *PeerConfig, old *IKESA, pairs []TSPair) error {
	sa := &IKESA{SPIi: m.cookie(), Initiator: true, Local: netip.AddrPortFrom(peer.Local, 500),
		Remote: netip.AddrPortFrom(peer.Remote, 500), Peer: peer, created: m.now(), xs: map[uint32]*exchange{}, m: m,
		life: lifeState{soft: SoftPoint(true), replaces: old != nil}, wanted: slices.Clone(pairs)}
	m.sas[sa.SPIi] = sa
	if m.interop != nil {
		sa.vendor.interop.VendorIDs = m.interop.VendorIDs(peer, sa.Remote)
	}
	if peer.Aggressive {
		return m.send(m.newExchange(sa, ExchangeAggressive, 0, true, newAggressiveMode(), &natt{aggressive: true}, dpdVendor(), fragVendor(), extraVendorIDs{}))
	}
	x := m.newExchange(sa, ExchangeMain, 0, true, &mainMode{}, &natt{}, dpdVendor(), fragVendor(), extraVendorIDs{})
	return m.send(x)
}

// phase1 reports whether the exchange builds an IKE SA (main or
// aggressive mode): its messages share the phase 1 IV chain, and its
// failure ends the IKE SA.
func (e ExchangeType) phase1() bool { return e == ExchangeMain || e == ExchangeAggressive }

func (m *Manager) newExchange(sa *IKESA, typ ExchangeType, id uint32, initiator bool, tasks ...task) *exchange {
	x := &exchange{sa: sa, typ: typ, msgID: id, initiator: initiator, tasks: tasks, done: make([]bool, len(tasks))}
	if typ != ExchangeMain && sa.crypt != nil {
		x.iv = MessageIV(sa.prf, sa.p1iv, id, sa.crypt.blockSize())
	}
	sa.xs[id] = x
	return x
}

// send builds the exchange's next message and sends it.
func (m *Manager) send(x *exchange) error {
	var out msg
	// Whether this message is encrypted is settled before the tasks run:
	// main mode's responder gets its keys before message 4, which is
	// still cleartext.
	encrypt := x.sa.crypt != nil && (!x.typ.phase1() || x.sa.p1encrypt)
	if err := x.build(&out); err != nil {
		m.failed(x, err)
		return err
	}
	if len(out.payloads) == 0 {
		return nil
	}
	b, err := m.encode(x, &out, encrypt)
	if err != nil {
		m.failed(x, err)
		return err
	}
	x.lastSent = b
	if !x.finishedAll() {
		x.retry.Arm(m.now()) // an answer is due; both roles retransmit
	} else {
		x.retry.Stop()
	}
	if x.finishedAll() && x.finished.IsZero() {
		x.finished = m.now()
	}
	if err := m.transmit(x.sa, b); err != nil {
		// A datagram the host could not send is a lost one (a local
		// firewall's drop is EPERM): the retransmission timer covers it,
		// and a lasting failure ends as a timeout that names the peer.
		m.log.Info("IKE message not sent; it will be retransmitted", zap.String("peer", x.sa.Peer.Name),
			zap.Stringer("remote", x.sa.Remote), zap.Error(err))
	}
	return nil
}

// encode writes the message, encrypting it once the SA has keys (main
// mode from message 5 on, everything after).
func (m *Manager) encode(x *exchange, out *msg, encrypt bool) ([]byte, error) {
	sa := x.sa
	h := Header{SPIi: sa.SPIi, SPIr: sa.SPIr, Version: Version, Exchange: x.typ, MessageID: x.msgID,
		NextPayload: FirstType(out.payloads)}
	body := AppendPayloads(nil, out.payloads)
	if encrypt {
		h.Flags |= FlagEncryption
		iv := x.iv
		if x.typ.phase1() {
			iv = sa.p1iv
		}
		ct, next := sa.crypt.encrypt(iv, body)
		if x.typ.phase1() {
			sa.p1iv = next
		} else {
			x.iv = next
		}
		body = ct
	}
	if HeaderLen+len(body) > MaxMessageLen {
		return nil, fmt.Errorf("%v message of %d bytes is too large", x.typ, HeaderLen+len(body))
	}
	h.Length = uint32(HeaderLen + len(body))
	return append(h.Append(make([]byte, 0, h.Length)), body...), nil
}

// Receive handles an IKE datagram (the marker already removed on 4500).
// Malformed input is logged and dropped; it never disturbs other SAs.
func (m *Manager) Receive(b []byte, local, remote netip.AddrPort) {
	h, err := ParseHeader(b)
	if err != nil {
		m.log.Debug("IKE datagram dropped", zap.Stringer("from", remote), zap.Error(err))
		return
	}
	b = b[:h.Length]
	m.mu.Lock()
	if h.NextPayload == PayloadFragment {
		// Fragments are for messages of an IKE SA that exists, from its
		// peer: fragmentation is announced in messages 1 and 2, so no
		// first message comes in pieces, and nobody else's fragments take
		// reassembly space.
		sa := m.sas[h.SPIi]
		if sa == nil || sa.Remote.Addr() != remote.Addr() || (sa.SPIr != (Cookie{}) && sa.SPIr != h.SPIr) {
			m.drop(DropFragments, sa, h, errors.New("fragments for no IKE SA of this peer"))
			m.mu.Unlock()
			return
		}
		whole := m.reassemble(h, b, remote)
		if whole == nil {
			m.mu.Unlock()
			return
		}
		wh, err := ParseHeader(whole)
		if err != nil || wh.SPIi != h.SPIi || wh.SPIr != h.SPIr || wh.NextPayload == PayloadFragment {
			m.mu.Unlock()
			m.log.Info("reassembled IKE message dropped: it does not match its fragments", zap.Stringer("from", remote), zap.Error(err))
			return
		}
		h, b = wh, whole[:wh.Length]
	}
	// The interop plugins are asked about a peer's first message over
	// gRPC, which may take seconds: never with the engine's lock held.
	var pre *preClassified
	if q, ok := m.classifyQuery(h, b, local, remote); ok {
		m.mu.Unlock()
		pre = &preClassified{peer: q.Peer, answer: m.interop.Classify(q)}
		m.mu.Lock()
	}
	defer m.mu.Unlock()
	sa := m.sas[h.SPIi]
	if sa == nil {
		if h.Exchange == ExchangeAggressive && h.SPIr == (Cookie{}) {
			if p := m.peerFor(local.Addr(), remote.Addr()); p == nil || !p.Aggressive {
				m.refuseAggressive(remote)
				return
			}
		} else if h.Exchange != ExchangeMain || h.SPIr != (Cookie{}) || h.MessageID != 0 {
			m.log.Debug("IKE message for no SA dropped", zap.Stringer("from", remote), zap.Stringer("exchange", h.Exchange))
			return
		}
		m.respond(h, b, local, remote, pre)
		return
	}
	if sa.Remote.Addr() != remote.Addr() {
		m.drop(DropUnauthenticated, sa, h, fmt.Errorf("from %s, not the SA's peer", remote.Addr()))
		return
	}
	// An initiator learns the responder's cookie from message 2, and
	// keeps it only if that message is accepted (handle).
	learning := sa.Initiator && sa.SPIr == (Cookie{})
	if !learning && subtle.ConstantTimeCompare(sa.SPIr[:], h.SPIr[:]) != 1 && !(h.SPIr == (Cookie{}) && h.Exchange == ExchangeInformational) {
		m.drop(DropUnauthenticated, sa, h, errors.New("wrong responder cookie"))
		return
	}
	m.handle(sa, h, b, false, pre, local, remote)
}

// floatTo follows the peer to the address and port an accepted message
// came from: IKE moved to 4500 (RFC 3947 section 4), and a NAT may have
// changed the peer's port since. Only accepted messages move it: a forged
// source port would otherwise steer our answers away.
func (sa *IKESA) floatTo(local, remote netip.AddrPort) {
	if local.Port() == natPort && sa.natDetected() && remote.Addr() == sa.Remote.Addr() {
		sa.Local = netip.AddrPortFrom(sa.Local.Addr(), natPort)
		sa.Remote = remote
	}
}

// refuseAggressive reports an aggressive mode attempt, at most once a
// minute per address (the peer retransmits). Aggressive mode with a
// preshared key sends a hash an eavesdropper can crack offline (RFC 9395
// section 3), so it is off unless configured.
func (m *Manager) refuseAggressive(remote netip.AddrPort) {
	now := m.now()
	if last, ok := m.refused[remote.Addr()]; ok && now.Sub(last) < time.Minute {
		return
	}
	if len(m.refused) > 4096 {
		clear(m.refused) // bounded: a flood of sources cannot grow it
	}
	m.refused[remote.Addr()] = now
	name := ""
	if p := m.peerFor(netip.Addr{}, remote.Addr()); p != nil {
		name = p.Name
	}
	m.log.Warn("aggressive mode refused", zap.Stringer("from", remote), zap.String("tunnel", name))
	m.host.Event(Event{ID: EventNegotiationErr, Peer: name, Remote: remote.Addr(), Reason: "aggressive-mode-disabled",
		Message: fmt.Sprintf("aggressive mode from %s refused: aggressive mode is off (with a preshared key it exposes a hash that can be cracked offline); configure the peer for main mode", remote.Addr())})
}

// respond starts a responder SA for a main mode first message.
func (m *Manager) respond(h Header, b []byte, local, remote netip.AddrPort, pre *preClassified) {
	peer := m.peerFor(local.Addr(), remote.Addr())
	if peer == nil {
		m.log.Info("main mode from an unknown peer refused", zap.Stringer("from", remote))
		m.host.Event(Event{ID: EventNegotiationErr, Remote: remote.Addr(), Reason: "unknown-peer",
			Message: fmt.Sprintf("main mode from %s refused: no tunnel is configured for this address", remote.Addr())})
		return
	}
	if !local.Addr().IsValid() || local.Addr().IsUnspecified() {
		local = netip.AddrPortFrom(peer.Local, local.Port()) // a wildcard socket: our address is the tunnel's
	}
	if m.halfOpenFull(remote.Addr()) {
		m.halfOpenDrops++
		if now := m.now(); now.Sub(m.halfOpenLogged) >= 10*time.Second {
			m.halfOpenLogged = now
			m.log.Warn("IKE first messages dropped: too many negotiations not yet established (a flood?); established SAs are not affected",
				zap.Int("half_open", m.halfOpen), zap.Int("from_this_address", m.halfOpenBy[remote.Addr()]), zap.Stringer("latest_from", remote),
				zap.Uint64("dropped_so_far", m.halfOpenDrops))
		}
		return
	}
	sa := &IKESA{SPIi: h.SPIi, SPIr: m.cookie(), Local: local, Remote: remote, Peer: peer, created: m.now(), xs: map[uint32]*exchange{}, m: m,
		life: lifeState{soft: SoftPoint(false)}, halfOpenFrom: remote.Addr()}
	m.halfOpen++
	m.halfOpenBy[sa.halfOpenFrom]++
	// A peer that reauthenticates: once this SA has a child, the older
	// ones with the peer go.
	for _, old := range m.sas {
		if samePeer(old, sa) && old.state == stateEstablished {
			sa.life.replaces = true
		}
	}
	m.sas[sa.SPIi] = sa
	if h.Exchange == ExchangeAggressive {
		m.newExchange(sa, ExchangeAggressive, 0, false, newAggressiveMode(), &natt{aggressive: true}, dpdVendor(), fragVendor(), extraVendorIDs{})
	} else {
		m.newExchange(sa, ExchangeMain, 0, false, &mainMode{}, &natt{}, dpdVendor(), fragVendor(), extraVendorIDs{})
	}
	m.handle(sa, h, b, true, pre, local, remote)
}

// halfOpenFull reports whether a first message from addr is past the
// half-open limits.
func (m *Manager) halfOpenFull(addr netip.Addr) bool {
	return m.halfOpen >= m.maxHalfOpen || m.halfOpenBy[addr] >= m.maxHalfOpenPerSource
}

// handle runs a message through its exchange. created: the message made
// this (responder) IKE SA; pre: the interop plugins' answer, when this is
// the peer's first message.
func (m *Manager) handle(sa *IKESA, h Header, b []byte, created bool, pre *preClassified, local, remote netip.AddrPort) {
	if h.Exchange == ExchangeInformational {
		m.informational(sa, h, b, local, remote)
		return
	}
	if sa.Initiator && sa.SPIr == (Cookie{}) {
		// Message 2: its cookie is the SA's while it is processed, and
		// stays only if it is accepted.
		sa.SPIr = h.SPIr
		defer func() {
			if x0 := sa.xs[0]; sa.state == stateMainMode && (x0 == nil || !x0.accepted) {
				sa.SPIr = Cookie{}
			}
		}()
	}
	x := sa.xs[h.MessageID]
	digest := hashDatagram(b)
	if x != nil && x.lastRecvHash == digest {
		// A retransmission: answer it with what we answered before.
		if x.lastSent != nil {
			m.transmit(sa, x.lastSent)
		}
		return
	}
	fresh := false // this message starts the exchange (a quick mode we answer)
	if x == nil {
		if h.Exchange != ExchangeQuick || sa.state != stateEstablished {
			m.log.Debug("unexpected IKE exchange dropped", zap.Stringer("exchange", h.Exchange), zap.Stringer("from", sa.Remote))
			return
		}
		if sa.life.expired {
			m.log.Info("quick mode on an expired IKE SA dropped: the client must make a new main mode", zap.String("peer", sa.Peer.Name),
				zap.Stringer("from", sa.Remote))
			return
		}
		if sa.usedMsgID(h.MessageID) {
			// A quick mode this IKE SA has already run (RFC 2408 section
			// 3.1: message IDs are unique per SA): a replay.
			m.drop(DropReplayed, sa, h, errors.New("quick mode message ID already used on this IKE SA"))
			return
		}
		x = m.newExchange(sa, ExchangeQuick, h.MessageID, false, &quickMode{})
		fresh = true
	}
	if x.typ != h.Exchange || !x.finished.IsZero() {
		return
	}
	in, err := m.decode(x, h, b)
	if err != nil && x.typ.phase1() && h.Flags&FlagEncryption != 0 {
		err = fail("authentication-failed", 0, "%v: could not read the peer's encrypted message (preshared keys differ?): %v", x.typ, err)
	}
	var unclassify func()
	if err == nil {
		if x.typ.phase1() && !sa.vendor.classified {
			unclassify = m.classify(sa, in, pre)
		}
		err = x.process(in)
	}
	if err != nil {
		switch {
		case created:
			// The first message of an SA it made: refusing it ends
			// nothing else (no proposal chosen, and the like).
			m.failed(x, err)
		case in != nil && in.authed:
			// The peer proved itself and still cannot go on (identity,
			// proposal): the exchange ends, and the peer hears why under
			// the IV chain the message moved on.
			m.acceptIV(x, in)
			x.accepted = true
			if x.typ == ExchangeQuick {
				sa.useMsgID(x.msgID)
			}
			m.failed(x, err)
		case fresh:
			// A quick mode that did not verify: nothing was agreed, and
			// the ID stays free.
			delete(sa.xs, x.msgID)
			m.drop(DropUnauthenticated, sa, h, err)
		default:
			if unclassify != nil {
				unclassify() // the genuine answer is still to come
			}
			m.refuse(x, in, h, err)
		}
		return
	}
	m.acceptIV(x, in)
	if x.typ == ExchangeQuick {
		sa.useMsgID(x.msgID)
	}
	sa.floatTo(local, remote)
	x.accepted = true
	x.lastRecvHash = digest
	x.retry.Stop()
	x.refused = nil
	sa.dpd.lastHeard = m.now()
	if x.finishedAll() {
		x.finished = m.now()
		m.completed(x)
		return
	}
	m.send(x)
	if x.finishedAll() {
		m.completed(x)
	}
}

// refuse drops a message of a running exchange that did not prove where it
// came from: it did not decrypt, decode, or verify, or it made no sense at
// this step. Anyone who sees the cookies and message ID (they travel in
// clear) can send such a message, so it changes nothing: not the
// exchange, its IV or the SA. The reason is kept, and if no valid message
// comes before the retransmissions run out, the exchange fails with it
// (a wrong preshared key ends so, after about a minute, as with strongSwan).
// A refused proof in a well-formed message is told to the peer once.
func (m *Manager) refuse(x *exchange, in *msg, h Header, err error) {
	sa := x.sa
	m.drop(DropUnauthenticated, sa, h, err)
	x.refused = err
	var f *failure
	errors.As(err, &f)
	// Telling the peer is safe where it gives a forger nothing: the
	// message decrypted under the SA's keys, or encryption has not
	// started and a cleartext notify would end the exchange anyway.
	if f != nil && f.badProof && !x.told && (h.Flags&FlagEncryption != 0 || !sa.p1encrypt) {
		x.told = true
		m.log.Warn("IKE peer's proof refused; the negotiation waits for a valid message until its retransmissions run out",
			zap.String("peer", sa.Peer.Name), zap.Stringer("remote", sa.Remote.Addr()), zap.Stringer("exchange", x.typ), zap.Error(err))
		m.host.Event(Event{ID: EventNegotiationErr, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(), Reason: f.reason,
			Message: fmt.Sprintf("negotiation with %s (%s): %v", sa.Peer.Name, sa.Remote.Addr(), err)})
		if f.notify != 0 {
			// The peer derives the IV of our notify from its own chain,
			// which went past the message it sent.
			iv := sa.p1iv
			if in != nil && in.nextIV != nil && x.typ.phase1() {
				iv = in.nextIV
			}
			m.sendInformationalFrom(sa, iv, []Payload{sa.isakmpNotify(f.notify, nil)})
		}
		return
	}
	if !x.noted {
		x.noted = true
		m.log.Info("IKE message refused: it did not decrypt, decode or verify (a wrong preshared key, or a forgery); waiting for a valid one",
			zap.String("peer", sa.Peer.Name), zap.Stringer("remote", sa.Remote.Addr()), zap.Stringer("exchange", x.typ), zap.Error(err))
	}
}

// Reasons an IKE message is dropped without touching any state
// (Manager.Drops).
const (
	DropUnauthenticated = "unauthenticated" // inside an exchange: did not decrypt, decode or verify
	DropReplayed        = "replayed"        // a quick mode message ID the IKE SA has used
	DropFragments       = "fragments"       // fragments past the reassembly limits, or for no IKE SA
	dropReasons         = 3
)

var dropNames = [dropReasons]string{DropUnauthenticated, DropReplayed, DropFragments}

// drop counts and logs (at debug: anyone can send these) a dropped message.
func (m *Manager) drop(reason string, sa *IKESA, h Header, err error) {
	for i, n := range dropNames {
		if n == reason {
			m.drops[i]++
		}
	}
	peer := ""
	if sa != nil {
		peer = sa.Peer.Name
	}
	m.log.Debug("IKE message dropped", zap.String("reason", reason), zap.String("peer", peer), zap.Stringer("exchange", h.Exchange),
		zap.Uint32("message_id", h.MessageID), zap.Error(err))
}

// Drops reports the IKE messages dropped without any change of state, by
// reason.
func (m *Manager) Drops() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, dropReasons)
	for i, n := range dropNames {
		out[n] = m.drops[i]
	}
	return out
}

// decode decrypts and decodes a message of exchange x. Nothing of the
// exchange changes here: the IV moves on in acceptIV, once the message is
// accepted.
func (m *Manager) decode(x *exchange, h Header, b []byte) (*msg, error) {
	sa := x.sa
	body := b[HeaderLen:]
	padded := false
	var nextIV []byte
	if h.Flags&FlagEncryption != 0 {
		if sa.crypt == nil {
			return nil, fmt.Errorf("%w: encrypted before keys exist", ErrMalformed)
		}
		iv := x.iv
		if x.typ.phase1() {
			iv = sa.p1iv
		}
		plain, next, err := sa.crypt.decrypt(iv, body)
		if err != nil {
			return nil, err
		}
		body, padded, nextIV = plain, true, next
		if h.NextPayload == PayloadNone {
			// The next payload type travels in clear: an empty encrypted
			// message is a forgery's easiest shape.
			return nil, fmt.Errorf("%w: an encrypted %v message with no payloads", ErrMalformed, x.typ)
		}
	} else if sa.crypt != nil && (!x.typ.phase1() || sa.p1encrypt) && x.typ != ExchangeAggressive {
		// (Aggressive mode's third message is accepted in clear too: RFC
		// 2409's figure shows it so, RFC 2408's encrypted.)
		return nil, fmt.Errorf("%w: cleartext %v message after keys were set", ErrMalformed, x.typ)
	}
	ps, err := DecodePayloads(h.NextPayload, body, padded)
	if err != nil {
		return nil, err
	}
	bodies, end := PayloadBodies(h.NextPayload, body)
	in := &msg{payloads: ps, bodies: bodies, nextIV: nextIV}
	if len(ps) > 0 && ps[0].Type() == PayloadHash {
		start := GenericHeaderLen + len(bodies[0])
		in.afterHash = body[start:end]
	}
	return in, nil
}

// acceptIV moves the exchange's CBC chain past an accepted message.
func (m *Manager) acceptIV(x *exchange, in *msg) {
	if in == nil || in.nextIV == nil {
		return
	}
	if x.typ.phase1() {
		x.sa.p1iv = in.nextIV
	} else {
		x.iv = in.nextIV
	}
}

// completed runs when an exchange has finished.
func (m *Manager) completed(x *exchange) {
	x.wipe()
	x.retry.Stop()
	if x.finished.IsZero() {
		x.finished = m.now()
	}
	sa := x.sa
	if x.typ.phase1() && sa.state == stateMainMode {
		m.releaseHalfOpen(sa)
		sa.releaseGSS()
		sa.state = stateEstablished
		sa.dpd.lastHeard = m.now()
		m.log.Info("IKE SA established", zap.String("peer", sa.Peer.Name), zap.Stringer("remote", sa.Remote),
			zap.Stringer("proposal", sa.phase1), zap.String("auth", MethodName(sa.phase1.Auth)), zap.String("peer_id", sa.peerID),
			zap.Bool("initiator", sa.Initiator))
		m.host.Event(Event{ID: EventIKEUp, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(),
			Message: fmt.Sprintf("IKE SA with %s (%s, %s) established: %v, %s", sa.Peer.Name, sa.Remote.Addr(), sa.peerID, sa.phase1, MethodName(sa.phase1.Auth))})
		if sa.initialContact {
			for _, old := range m.sas {
				if old != sa && samePeer(old, sa) {
					m.remove(old, "the peer restarted (INITIAL-CONTACT)")
				}
			}
		}
		if sa.Initiator {
			for _, t := range sa.wanted {
				m.startQuickMode(sa, t)
			}
		}
	}
}

// releaseHalfOpen takes a responder SA out of the half-open count once it
// is established or gone.
func (m *Manager) releaseHalfOpen(sa *IKESA) {
	if !sa.halfOpenFrom.IsValid() {
		return
	}
	m.halfOpen--
	if m.halfOpenBy[sa.halfOpenFrom]--; m.halfOpenBy[sa.halfOpenFrom] <= 0 {
		delete(m.halfOpenBy, sa.halfOpenFrom)
	}
	sa.halfOpenFrom = netip.Addr{}
}

// HalfOpen reports the responder SAs not established yet, and the first
// messages dropped because there were too many.
func (m *Manager) HalfOpen() (n int, dropped uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.halfOpen, m.halfOpenDrops
}

// peerEstablished reports whether an established IKE SA with p exists.
func (m *Manager) peerEstablished(p *PeerConfig) bool {
	for _, sa := range m.sas {
		if sa.Peer == p && sa.state == stateEstablished {
			return true
		}
	}
	return false
}

// startQuickMode negotiates a child SA for a pair on an established IKE
// SA.
func (m *Manager) startQuickMode(sa *IKESA, t TSPair) error {
	return m.startQuickModeFor(sa, nil, t)
}

// startQuickModeFor negotiates a child for a pair that replaces old (nil:
// a new one).
func (m *Manager) startQuickModeFor(sa *IKESA, old *ChildSA, t TSPair) error {
	var id uint32
	for id == 0 || sa.xs[id] != nil || sa.usedMsgID(id) {
		id = binary.BigEndian.Uint32(m.random(4))
	}
	sa.useMsgID(id)
	return m.send(m.newExchange(sa, ExchangeQuick, id, true, &quickMode{rekeys: old, pair: t}))
}

// failed ends a failed exchange. A main mode failure takes its IKE SA
// with it; a quick mode failure leaves the IKE SA and its other children
// alone. Input nobody has authenticated never gets here (handle refuses
// it), so every failure is reported.
func (m *Manager) failed(x *exchange, err error) {
	sa := x.sa
	reason, notify := "error", NotifyType(0)
	var f *failure
	if errors.As(err, &f) {
		reason, notify = f.reason, f.notify
	}
	x.retry.Stop()
	if x.finished.IsZero() {
		x.finished = m.now()
	}
	x.wipe()
	for _, t := range x.tasks {
		if q, ok := t.(*quickMode); ok {
			q.abort(m)
		}
	}
	m.log.Warn("IKE negotiation failed", zap.String("peer", sa.Peer.Name), zap.Stringer("remote", sa.Remote.Addr()),
		zap.Stringer("exchange", x.typ), zap.String("reason", reason), zap.Error(err))
	if f == nil || !f.reported {
		m.host.Event(Event{ID: EventNegotiationErr, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(), Reason: reason,
			Message: fmt.Sprintf("negotiation with %s (%s) failed: %v", sa.Peer.Name, sa.Remote.Addr(), err), Exchange: x.typ, Initiator: x.initiator})
	}
	switch {
	case notify != 0 && x.typ == ExchangeQuick && sa.vendor.flags.Has(FlagQMNotifyMsgID):
		m.sendInformationalID(sa, x.msgID, []Payload{sa.isakmpNotify(notify, nil)})
	case notify != 0:
		m.sendNotify(sa, notify)
	}
	if x.typ.phase1() {
		m.remove(sa, "negotiation failed")
		return
	}
	if x.typ == ExchangeQuick && sa.life.replaces {
		m.retireReplaced(sa)
	}
}

func (m *Manager) remove(sa *IKESA, why string) {
	if sa.state == stateDead {
		return
	}
	wasUp := sa.state == stateEstablished
	sa.state = stateDead
	m.releaseHalfOpen(sa)
	sa.releaseGSS()
	delete(m.sas, sa.SPIi)
	if sa.Peer.Restart && why != whyOperator && why != whyReplaced {
		m.restarts[sa.Peer] = m.now().Add(restartDelay)
	}
	for _, c := range sa.children {
		m.dropChild(c)
		m.host.Event(Event{ID: EventChildDown, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(), Child: c,
			Message: fmt.Sprintf("IPsec SA %s down: %s", c, why)})
	}
	sa.children = nil
	for _, x := range sa.xs {
		x.wipe()
	}
	sa.keys.wipe()
	clear(sa.p1iv)
	if wasUp {
		m.host.Event(Event{ID: EventIKEDown, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(),
			Message: fmt.Sprintf("IKE SA with %s (%s) deleted: %s", sa.Peer.Name, sa.Remote.Addr(), why)})
	}
}

// dropChild removes a child's SAs from the data path and wipes its keys.
func (m *Manager) dropChild(c *ChildSA) {
	m.host.DeleteChild(c)
	c.wipeKeys()
}

// releaseGSS ends the GSS-API context: after main mode it has no use.
func (sa *IKESA) releaseGSS() {
	if sa.gss != nil && sa.gss.ID != "" {
		sa.m.host.GSSRelease(sa.Peer, sa.gss)
	}
	sa.gss = nil
}

// Tick retransmits and expires; call it every few hundred milliseconds.
func (m *Manager) Tick() {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for p, at := range m.restarts {
		if now.Before(at) {
			continue
		}
		delete(m.restarts, p)
		if m.hasPeer(p) && !m.peerUp(p) {
			m.initiateLocked(p, p.allPairs())
		}
	}
	for _, sa := range m.sas {
		if m.dpdTick(sa, now) {
			continue
		}
		if sa.state == stateEstablished && sa.nat.local && now.Sub(sa.nat.lastKeepalive) >= natKeepalive {
			// Behind a NAT we keep its mapping alive (RFC 3948 section 4).
			sa.nat.lastKeepalive = now
			m.host.SendKeepalive(sa.Local, sa.Remote)
		}
		if sa.state == stateEstablished {
			m.rekeyTick(sa, now)
			if sa.state == stateDead {
				continue
			}
		}
		for id, x := range sa.xs {
			if !x.finished.IsZero() {
				if now.Sub(x.finished) > finishedKeep && id != 0 {
					delete(sa.xs, id)
				}
				continue
			}
			resend, failed := x.retry.Tick(now)
			if failed {
				m.failed(x, m.timedOut(x))
				break
			}
			if resend {
				m.transmit(sa, x.lastSent)
			}
		}
	}
}

// timedOut is the failure of an exchange whose retransmissions ran out:
// no answer, or none that was valid (then the last refusal says why).
func (m *Manager) timedOut(x *exchange) error {
	sa := x.sa
	if x.refused == nil {
		return fail("timeout", 0, "%v: no answer from %s after %d retransmissions", x.typ, sa.Remote.Addr(), x.retry.Tries())
	}
	reason := "timeout"
	var f *failure
	if errors.As(x.refused, &f) {
		reason = f.reason
	}
	return &failure{reason: reason, reported: x.told,
		err: fmt.Errorf("%v: no valid answer from %s after %d retransmissions; the last message was refused: %w", x.typ, sa.Remote.Addr(), x.retry.Tries(), x.refused)}
}

// SAs lists the IKE SAs for `gatehouse sa`.
type SAInfo struct {
	Peer          string
	Local, Remote netip.AddrPort
	SPIi, SPIr    Cookie
	Initiator     bool
	Established   bool
	Phase1        string
	Age           time.Duration
	Children      int
	NAT           bool // UDP-encapsulated: a NAT was detected
	// Expired: past its lifetime, kept only for its IPsec SAs (a road
	// warrior that did not renew).
	Expired bool
	// Auth is the method it authenticated with; PeerID who the peer
	// proved to be (certificate subject, or ID payload with a PSK).
	Auth   string
	PeerID string
	// Family is the client family an interop plugin recognised, Detail
	// what it read; Flags the peer's features and quirks in use.
	Family, Detail, Plugin string
	Flags                  []string
	// Version is the IKE version (0 stands for 1).
	Version int
}

func (m *Manager) SAs() []SAInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []SAInfo
	for _, sa := range m.sas {
		out = append(out, SAInfo{Peer: sa.Peer.Name, Local: sa.Local, Remote: sa.Remote, SPIi: sa.SPIi, SPIr: sa.SPIr,
			Initiator: sa.Initiator, Established: sa.state == stateEstablished, Phase1: sa.phase1.String(),
			Age: m.now().Sub(sa.created), Children: len(sa.children), NAT: sa.natDetected(), Expired: sa.life.expired,
			Auth: MethodName(sa.phase1.Auth), PeerID: sa.peerID, Family: sa.vendor.interop.Family, Detail: sa.vendor.interop.Detail,
			Plugin: sa.vendor.interop.Plugin, Flags: sa.vendor.flags.Names()})
	}
	return out
}
