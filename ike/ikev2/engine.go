package ikev2

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/ike"
)

// Peer is a peer the engine talks IKEv2 with: the configuration both IKE
// versions share (addresses, identities, ESP suites, lifetimes,
// liveness, the tunnel's selectors) and the IKE SA suites it offers.
type Peer struct {
	*ike.PeerConfig
	Suites []Proposal
	// RemoteAccess makes a wildcard peer serve road warriors; EAPClient
	// makes us one that logs in by EAP.
	RemoteAccess *RemoteAccess
	EAPClient    *EAPClient
	// AskAddress makes us a road warrior that authenticates by key or
	// certificate and asks the server for an address.
	AskAddress bool
}

// Config wires a Manager. Host is the daemon, as IKEv1's engine sees it:
// the same sockets, plugins, SA database and audit log.
type Config struct {
	Log  *zap.Logger
	Host ike.Host
	Rand io.Reader
	Now  func() time.Time
	// MaxHalfOpen bounds the IKE SAs we answer that are not authenticated
	// yet, in all (default 4096) and from one address (default 64). Past
	// half the total, IKE_SA_INIT must carry a cookie (section 2.6).
	MaxHalfOpen, MaxHalfOpenPerSource int
	// Interop classifies road warriors and the gateways that name interop
	// plugins (nil: the built-in flags only).
	Interop Interop
}

// Manager runs IKEv2: it owns the IKE SAs, answers and starts exchanges,
// retransmits, checks liveness and rekeys. Receive, Initiate, Tick and
// the rest may be called from any goroutine; the host is called with the
// Manager's lock held and must not call back.
type Manager struct {
	log  *zap.Logger
	host ike.Host
	rand io.Reader
	now  func() time.Time

	mu    sync.Mutex
	peers []*Peer
	sas   map[SPI]*ikeSA // by our SPI
	// opening: responder SAs until IKE_AUTH, by the initiator's SPI and
	// address, so a retransmitted IKE_SA_INIT gets the same answer.
	opening                   map[openKey]*ikeSA
	halfOpenBy                map[netip.Addr]int
	maxHalfOpen, maxPerSource int
	cookies                   *Cookies
	cookiesRotated            time.Time
	restarts                  map[*Peer]time.Time
	drops                     [dropReasons]uint64
	interop                   Interop
}

type openKey struct {
	spii   SPI
	remote netip.AddrPort
}

// Why messages are dropped without a change of state.
const (
	dropMalformed = iota
	dropUnknownSA
	dropUnauthenticated
	dropUnexpected
	dropNoPeer
	dropHalfOpen
	dropReasons
)

var dropNames = [dropReasons]string{"malformed", "unknown-sa", "unauthenticated", "unexpected", "no-peer", "half-open"}

const (
	// restartDelay paces re-initiation of always-up tunnels whose peer is
	// down.
	restartDelay = 5 * time.Second
	// halfOpenLife is how long an IKE SA may take to authenticate.
	halfOpenLife = 30 * time.Second
	// outPendingMax is how long a child we answered a rekey for waits
	// for the old child's delete before it sends anyway.
	outPendingMax = 10 * time.Second
	// natKeepalive is how often the side behind a NAT keeps its mapping
	// (RFC 3948 section 4).
	natKeepalive = 20 * time.Second
)

// NewManager makes an engine with no peers.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	m := &Manager{log: cfg.Log, host: cfg.Host, rand: cfg.Rand, now: cfg.Now, sas: map[SPI]*ikeSA{}, opening: map[openKey]*ikeSA{},
		halfOpenBy: map[netip.Addr]int{}, maxHalfOpen: cfg.MaxHalfOpen, maxPerSource: cfg.MaxHalfOpenPerSource, restarts: map[*Peer]time.Time{},
		interop: cfg.Interop}
	if m.maxHalfOpen == 0 {
		m.maxHalfOpen = 4096
	}
	if m.maxPerSource == 0 {
		m.maxPerSource = 64
	}
	var err error
	if m.cookies, err = NewCookies(cfg.Rand); err != nil {
		return nil, err
	}
	m.cookiesRotated = m.now()
	return m, nil
}

// SetPeers replaces the peer list; SAs already up keep the peer they
// were made with.
func (m *Manager) SetPeers(p []*Peer) {
	m.mu.Lock()
	m.peers = p
	m.mu.Unlock()
}

// Peers returns the peer list in force.
func (m *Manager) Peers() []*Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.peers)
}

func zapPeer(s *ikeSA) zap.Field { return zap.String("peer", s.peer.Name) }
func zapErr(err error) zap.Field { return zap.Error(err) }

func withPort(ap netip.AddrPort, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), port)
}

func hostPrefix(ap netip.AddrPort) netip.Prefix {
	a := ap.Addr().Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}

func (m *Manager) newSPI() SPI {
	for {
		var s SPI
		if _, err := io.ReadFull(m.rand, s[:]); err != nil {
			panic(fmt.Sprintf("IKEv2: no randomness: %v", err))
		}
		if _, taken := m.sas[s]; !taken && s != (SPI{}) {
			return s
		}
	}
}

func (m *Manager) drop(reason int, from netip.AddrPort, err error) {
	m.drops[reason]++
	m.log.Debug("IKEv2 message dropped", zap.String("reason", dropNames[reason]), zap.Stringer("from", from), zap.Error(err))
}

// Drops counts the messages dropped without a change of state, by
// reason.
func (m *Manager) Drops() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]uint64{}
	for i, n := range m.drops {
		if n > 0 {
			out[dropNames[i]] = n
		}
	}
	return out
}

func (m *Manager) event(s *ikeSA, e ike.Event) {
	e.Peer, e.Remote, e.Version = s.peer.Name, s.remote.Addr(), 2
	m.host.Event(e)
}

// peerFor finds the tunnel for a pair of addresses, as IKEv1 does.
func (m *Manager) peerFor(local, remote netip.Addr) *Peer {
	p, _ := ike.PeerFor(m.peers, func(p *Peer) *ike.PeerConfig { return p.PeerConfig }, local, remote)
	return p
}

// Receive takes one IKEv2 datagram (without the non-ESP marker) that
// came from remote to local. Whatever it holds, nothing established is
// lost: a bad message is dropped and counted.
func (m *Manager) Receive(b []byte, local, remote netip.AddrPort) {
	msg, err := Decode(b)
	var asked *Peer
	var answer *InteropAnswer
	if err == nil {
		asked, answer = m.preClassify(msg, local, remote)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.drop(dropMalformed, remote, err)
		return
	}
	b = b[:msg.Length]
	if msg.Exchange == ExchangeIKESAInit && !msg.Response() {
		m.initRequest(msg, b, local, remote, asked, answer)
		return
	}
	// Whose SPI is ours: the I flag says whether the sender is the
	// original initiator (section 3.1).
	spi := msg.SPIi
	if msg.FromInitiator() {
		spi = msg.SPIr
	}
	s := m.sas[spi]
	if s == nil || s.state == stateDead || (s.initiator && s.spir != msg.SPIr && s.state != stateInit) || (!s.initiator && s.spii != msg.SPIi) {
		m.drop(dropUnknownSA, remote, fmt.Errorf("%v for SPIs %x/%x", msg.Exchange, msg.SPIi, msg.SPIr))
		return
	}
	s.receive(msg, b, local, remote)
}

// sendAllTo sends datagrams (a message's fragments) from local to remote.
func (m *Manager) sendAllTo(bs [][]byte, local, remote netip.AddrPort) {
	for _, b := range bs {
		m.host.Send(b, local, remote)
	}
}

// initRequest answers an IKE_SA_INIT: again if it is a retransmission,
// with a cookie request under load, else with a new half-open SA.
func (m *Manager) initRequest(msg *Message, b []byte, local, remote netip.AddrPort, asked *Peer, answer *InteropAnswer) {
	if s := m.opening[openKey{msg.SPIi, remote}]; s != nil {
		if s.msg1 != nil && string(s.msg1) == string(b) {
			m.host.Send(s.msg2, local, remote)
		} else {
			m.drop(dropUnexpected, remote, errors.New("a second IKE_SA_INIT for an SA being made"))
		}
		return
	}
	p := m.peerFor(local.Addr(), remote.Addr())
	if p == nil {
		m.drop(dropNoPeer, remote, errors.New("IKE_SA_INIT from an address no IKEv2 tunnel names"))
		return
	}
	n := len(m.opening)
	if n >= m.maxHalfOpen || m.halfOpenBy[remote.Addr()] >= m.maxPerSource {
		m.drop(dropHalfOpen, remote, fmt.Errorf("%d IKE SAs half open, %d from this address", n, m.halfOpenBy[remote.Addr()]))
		return
	}
	var cookies *Cookies
	if n >= m.maxHalfOpen/2 {
		cookies = m.cookies
	}
	s := &ikeSA{rand: m.rand, m: m, peer: p, spii: msg.SPIi, spir: m.newSPI(), local: local, remote: remote, created: m.now()}
	m.classified(s, vendorIDsOf(msg.Payloads), asked, answer)
	t, ps, err := respond(s.suites(), msg, local, remote, s.spir, cookies, m.rand)
	if ne := (*NotifyError)(nil); errors.As(err, &ne) && ne.Kind == NotifyNoProposalChosen && s.interop != nil && s.interop.Hint != "" {
		// The plugins' hint knows the family; the built-in one guesses.
		sa, _ := Find(msg.Payloads, PayloadSA).(*SA)
		ne.Why = strings.TrimSuffix(ne.Why, modp1024Hint(sa.Proposals)) + "; " + s.interop.Hint
	}
	h := Header{SPIi: msg.SPIi, Exchange: ExchangeIKESAInit, Flags: FlagResponse}
	var ne *NotifyError
	if errors.As(err, &ne) {
		// Refused (or asked for a cookie or another group): no state kept.
		out, eerr := (&Message{Header: h, Payloads: []Payload{&Notify{Kind: ne.Kind, Data: ne.Data}}}).Encode()
		if eerr == nil {
			m.host.Send(out, local, remote)
		}
		if ne.Kind != NotifyCookie && ne.Kind != NotifyInvalidKEPayload {
			m.negotiationError(s, ExchangeIKESAInit, false, err)
		}
		return
	}
	if err != nil {
		m.drop(dropMalformed, remote, err)
		return
	}
	h.SPIr = s.spir
	if method := p.certMethod(); method != 0 {
		// The responder asks for the initiator's certificate here
		// (section 1.2), naming its CAs: peers that send theirs only when
		// asked do so, and pick the one our CAs issued.
		var cas []byte
		if creds, err := m.host.LocalCredentials(p.PeerConfig, method, nil); err == nil {
			cas = bytes.Join(creds.CAKeyIDs, nil)
		}
		ps = append(ps, &CertReq{Encoding: CertX509Sig, Authority: cas})
	}
	if p.NoFragmentation {
		ps = withoutNotify(ps, NotifyFragmentationSupported)
	}
	if p.ForceEncap {
		if err := fakeNATSource(ps, m.rand); err != nil {
			m.drop(dropMalformed, remote, err)
			return
		}
	}
	out, err := (&Message{Header: h, Payloads: ps}).Encode()
	if err != nil {
		m.drop(dropMalformed, remote, err)
		return
	}
	s.init, s.suite, s.keys, s.nat = t, t.chosen, t.keys, t.nat
	s.fragments = t.fragmentation && !p.NoFragmentation
	s.msg1, s.msg2 = append([]byte(nil), b...), out
	if err := s.protectors(); err != nil {
		m.drop(dropMalformed, remote, err)
		return
	}
	s.state, s.lastHeard, s.peerNext, s.halfOpenFrom = stateAuth, m.now(), 1, remote.Addr()
	m.sas[s.spir] = s
	m.opening[openKey{s.spii, remote}] = s
	m.halfOpenBy[remote.Addr()]++
	m.host.Send(out, local, remote)
}

func (m *Manager) releaseHalfOpen(s *ikeSA) {
	if !s.halfOpenFrom.IsValid() {
		return
	}
	for k, o := range m.opening {
		if o == s {
			delete(m.opening, k)
		}
	}
	if m.halfOpenBy[s.halfOpenFrom]--; m.halfOpenBy[s.halfOpenFrom] <= 0 {
		delete(m.halfOpenBy, s.halfOpenFrom)
	}
	s.halfOpenFrom = netip.Addr{}
}

// HalfOpen is how many responder IKE SAs are not authenticated yet.
func (m *Manager) HalfOpen() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.opening)
}

// up marks an SA authenticated.
func (m *Manager) up(s *ikeSA) {
	m.releaseHalfOpen(s)
	s.state, s.established = stateEstablished, m.now()
	s.init.dh = nil
	s.scheduleRekey()
	m.event(s, ike.Event{ID: ike.EventIKEUp, Message: fmt.Sprintf("IKE SA with %s established (IKEv2, %s, peer %s)", s.peer.Name, s.suite, s.peerID)})
}

// trim lets go of what only IKE_SA_INIT and IKE_AUTH needed, once the SA
// is established: the first two messages and the nonces (signed in AUTH),
// the setup's state, the EAP method and the first request it answered. A
// rekeyed SA never had them (BenchmarkRoadWarriorMemory: from about
// 11,000 to 7,500 bytes of heap per road warrior).
func (s *ikeSA) trim() {
	s.msg1, s.msg2, s.init = nil, nil, nil
	if e := s.eap; e != nil {
		// The IDs point into the decrypted IKE_AUTH messages: those go too.
		e.server, e.client, e.first, e.idi, e.idr = nil, nil, nil, nil, nil
	}
	if err := s.establishedKeys(); err != nil {
		// The same suite made protectors from the same keys before: the
		// old ones stay.
		s.m.log.Warn("IKEv2 SA keeps its setup keys", zapPeer(s), zapErr(err))
	}
}

// establishedKeys keeps the keys an established SA needs, compactly, wipes
// the rest (SK_pi and SK_pr with them), and makes the protectors from the
// copies. On an error nothing changed.
func (s *ikeSA) establishedKeys() error {
	all := s.keys
	s.keys = all.Established()
	if err := s.protectors(); err != nil {
		s.keys = all
		return err
	}
	all.Wipe()
	return nil
}

// scheduleRekey sets when we rekey the IKE SA, as for children.
func (s *ikeSA) scheduleRekey() {
	if l := s.peer.Lifetime; l > 0 {
		s.rekeyAt = s.established.Add(time.Duration(float64(l) * ike.SoftPoint(s.initiator)))
	}
}

// Initiate brings a tunnel up: an IKE SA and its child, unless one is up
// or being made.
func (m *Manager) Initiate(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		if p.Name == name {
			return m.initiate(p)
		}
	}
	return fmt.Errorf("no IKEv2 tunnel %q", name)
}

func (m *Manager) initiate(p *Peer) error {
	if m.peerUp(p) {
		return nil
	}
	if !p.Local.IsValid() || !p.Remote.IsValid() {
		return fmt.Errorf("tunnel %s: IKEv2 needs both addresses to initiate", p.Name)
	}
	s := &ikeSA{rand: m.rand, m: m, peer: p, initiator: true, spii: m.newSPI(), local: netip.AddrPortFrom(p.Local.Unmap(), 500),
		remote: netip.AddrPortFrom(p.Remote.Unmap(), 500), created: m.now()}
	var err error
	if s.init, err = newInitiator(p.Suites, s.spii, m.rand); err != nil {
		return fmt.Errorf("tunnel %s: %w", p.Name, err)
	}
	m.sas[s.spii] = s
	m.log.Info("starting IKEv2", zap.String("tunnel", p.Name), zap.Stringer("remote", s.remote))
	s.queueTask(initTask{})
	return nil
}

// peerUp reports whether an IKE SA with p is up or being made.
func (m *Manager) peerUp(p *Peer) bool {
	for _, s := range m.sas {
		if s.peer == p && s.state != stateDead && s.successor == nil {
			return true
		}
	}
	return false
}

// Terminate deletes a tunnel's IKE SAs and their children (gatehouse
// down): the peer is told, and nothing waits for its answer.
func (m *Manager) Terminate(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	found := false
	for _, s := range m.sas {
		if s.peer.Name != name {
			continue
		}
		found = true
		s.tellDeleted()
		m.remove(s, "stopped by the operator", false)
	}
	if !found {
		return fmt.Errorf("no IKEv2 SA with %q", name)
	}
	return nil
}

// Disconnect ends the IKE SA of the road warrior that holds the virtual
// address addr (gatehouse disconnect): the client is told, nothing waits
// for its answer, and the address goes back (RemoteAccess.Release). It
// reports whether such a client was found.
func (m *Manager) Disconnect(addr netip.Addr, why string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sas {
		if s.peer.RemoteAccess == nil || s.eap == nil || s.eap.addr != addr || s.state == stateDead {
			continue
		}
		s.tellDeleted()
		m.remove(s, why, false)
		return true
	}
	return false
}

// TerminateSome deletes up to n IKE SAs, whichever they are, telling
// each peer, and returns how many it ended: a client with many SAs (a
// load test) hangs up in bursts the server can take, without a search by
// name for each.
func (m *Manager) TerminateSome(n int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := 0
	for _, s := range m.sas {
		if k == n {
			break
		}
		if s.state == stateDead {
			continue
		}
		s.tellDeleted()
		m.remove(s, "stopped by the operator", false)
		k++
	}
	return k
}

// tellDeleted tells the peer an established IKE SA goes, without waiting
// for its answer.
func (s *ikeSA) tellDeleted() {
	if s.state == stateEstablished && s.out != nil {
		if b, err := s.out.Seal(s.header(ExchangeInformational, s.nextID, false), []Payload{&Delete{Protocol: ProtoIKE}}, s.rand); err == nil {
			s.send(b)
		}
	}
}

// failIKE ends an IKE SA whose setup failed.
func (m *Manager) failIKE(s *ikeSA, x ExchangeType, err error) {
	m.negotiationError(s, x, s.initiator, err)
	m.remove(s, "negotiation failed", true)
}

// negotiationError tells the operator why an exchange failed, in the
// reason classes IKEv1 uses.
func (m *Manager) negotiationError(s *ikeSA, x ExchangeType, initiator bool, err error) {
	reason := "peer-error"
	var ne *NotifyError
	switch {
	case errors.Is(err, ErrMalformed):
		reason = "malformed"
	case errors.Is(err, errTimeout):
		reason = "timeout"
	case errors.As(err, &ne):
		switch ne.Kind {
		case NotifyNoProposalChosen, NotifyTSUnacceptable, NotifyInvalidKEPayload:
			reason = "no-proposal-chosen"
		case NotifyAuthenticationFailed:
			reason = "authentication-failed"
		case NotifyInternalAddressFailure:
			reason = "no-address"
		}
	}
	m.event(s, ike.Event{ID: ike.EventNegotiationErr, Reason: reason, Initiator: initiator, Exchange: ike.ExchangeType(x),
		Message: fmt.Sprintf("IKEv2 %v with %s failed: %v", x, s.peer.Name, err)})
}

var errTimeout = errors.New("no answer")

// remove ends an IKE SA and its children. restart: an always-up tunnel
// starts again (unless another SA with the peer is up).
func (m *Manager) remove(s *ikeSA, why string, restart bool) {
	if s.state == stateDead {
		return
	}
	wasUp := s.state == stateEstablished
	s.state = stateDead
	m.releaseHalfOpen(s)
	if m.sas[s.ourSPI()] == s {
		delete(m.sas, s.ourSPI())
	}
	for len(s.children) > 0 {
		s.removeChild(s.children[0], "its IKE SA went: "+why)
	}
	if s.init != nil && s.init.dh != nil {
		s.init.dh.Wipe()
	}
	if s.keys != nil {
		s.keys.Wipe()
	}
	if e, ra := s.eap, s.peer.RemoteAccess; e != nil && e.client == nil && e.addr.IsValid() && ra != nil && ra.Release != nil {
		ra.Release(e.addr, why)
	}
	s.req, s.queue = nil, nil
	if wasUp && s.successor == nil {
		m.event(s, ike.Event{ID: ike.EventIKEDown, Message: fmt.Sprintf("IKE SA with %s down (IKEv2): %s", s.peer.Name, why)})
	}
	if restart && s.peer.Restart && slices.Contains(m.peers, s.peer) {
		m.restarts[s.peer] = m.now().Add(restartDelay)
	}
}

// forgetOthers removes, without a word to the peer, every other IKE SA
// with s's peer: it sent INITIAL_CONTACT. For road warriors (a wildcard
// peer) that is the established SAs of the same identity from the same
// address, port aside (a restarted client behind a NAT may get another):
// as strongSwan does, so that one user's laptop and phone from two
// places both stay.
func (m *Manager) forgetOthers(s *ikeSA) {
	for _, o := range m.sas {
		if o == s || o.peer != s.peer || o.state == stateDead {
			continue
		}
		if s.peer.Wildcard() && (o.state != stateEstablished || o.peerID != s.peerID || o.remote.Addr() != s.remote.Addr()) {
			continue
		}
		m.remove(o, "the peer restarted (INITIAL_CONTACT)", false)
	}
}

// othersWith reports whether we hold another IKE SA with s's remote
// address, established or being set up.
func (m *Manager) othersWith(s *ikeSA) bool {
	for _, o := range m.sas {
		if o != s && o.state != stateDead && o.remote.Addr() == s.remote.Addr() {
			return true
		}
	}
	return false
}

// rekeyed makes the IKE SA a rekey agreed on, and moves old's children
// to it (section 2.18); the old SA stays until it is deleted.
func (m *Manager) rekeyed(old *ikeSA, rk *RekeyedIKE, initiator bool) {
	now := m.now()
	n := &ikeSA{suite: rk.Suite, keys: rk.Keys, rand: m.rand, m: m, peer: old.peer, initiator: initiator, spii: rk.SPIi, spir: rk.SPIr,
		local: old.local, remote: old.remote, state: stateEstablished, created: now, established: now, nat: old.nat, encap: old.encap,
		peerID: old.peerID, authName: old.authName, lastHeard: now, children: old.children, fragments: old.fragments, mobike: old.mobike,
		flags: old.flags, interop: old.interop}
	// A rekeyed SA never authenticates: no SK_p.
	if err := n.establishedKeys(); err != nil {
		m.negotiationError(old, ExchangeCreateChildSA, initiator, fmt.Errorf("IKE SA rekey: %w", err))
		return
	}
	for _, c := range n.children {
		c.sa.SPIi, c.sa.SPIr = ike.Cookie(n.spii), ike.Cookie(n.spir)
	}
	n.scheduleRekey()
	n.eap = old.eap // the client's address goes with its IKE SA
	old.children, old.successor, old.rekeyAt, old.eap = nil, n, time.Time{}, nil
	m.sas[n.ourSPI()] = n
	m.log.Info("IKEv2 SA rekeyed", zapPeer(n), zap.String("suite", n.suite.String()))
	m.event(n, ike.Event{ID: ike.EventIKEUp, Message: fmt.Sprintf("IKE SA with %s rekeyed (IKEv2, %s)", n.peer.Name, n.suite)})
}

// retryDelay is how long a side waits before trying a refused or
// failed rekey again: 5 to 15 s, random, so two sides that collided do
// not collide again.
func (m *Manager) retryDelay() time.Duration {
	var b [1]byte
	io.ReadFull(m.rand, b[:])
	return 5*time.Second + time.Duration(b[0])*10*time.Second/255
}

// Tick runs the timers: retransmissions, liveness checks, keepalives,
// rekeys, lifetimes, half-open expiry and restarts. Call it a few times
// a second.
func (m *Manager) Tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.Sub(m.cookiesRotated) > 2*time.Minute {
		m.cookies.Rotate()
		m.cookiesRotated = now
	}
	for p, at := range m.restarts {
		if now.Before(at) {
			continue
		}
		delete(m.restarts, p)
		if slices.Contains(m.peers, p) {
			if err := m.initiate(p); err != nil {
				m.log.Warn("cannot restart the tunnel", zap.String("tunnel", p.Name), zap.Error(err))
			}
		}
	}
	for _, s := range m.sas {
		m.tick(s, now)
	}
}

func (m *Manager) tick(s *ikeSA, now time.Time) {
	if s.state == stateEstablished && s.init != nil {
		s.trim()
	}
	if s.state == stateEstablished && s.req == nil && s.in != nil {
		// Between exchanges: the keyed ciphers go, the keys stay.
		s.in.Release()
		s.out.Release()
	}
	if r := s.req; r != nil {
		resend, failed := r.retry.Tick(now)
		if d := s.peer.DPDTimeout; d > 0 && s.state == stateEstablished && now.Sub(r.sent) >= d {
			failed = true // dpd.timeout: the most a peer may stay silent
		}
		if failed {
			// Section 2.4: a request that is never answered means the
			// peer is gone, with every SA we share.
			err := fmt.Errorf("%w from %s to our %v request in %v (%d retransmissions)", errTimeout, s.remote.Addr(), r.t.exchange(),
				now.Sub(r.sent).Round(time.Second), r.retry.Tries())
			m.negotiationError(s, r.t.exchange(), true, err)
			m.remove(s, "the peer does not answer", true)
			return
		}
		if resend {
			s.sendAll(r.b)
		}
	}
	if s.state != stateEstablished {
		if now.Sub(s.created) > halfOpenLife {
			m.negotiationError(s, ExchangeIKEAuth, s.initiator, fmt.Errorf("%w: not authenticated within %v", errTimeout, halfOpenLife))
			m.remove(s, "not authenticated in time", true)
		}
		return
	}
	if s.successor != nil {
		// Replaced; only its delete is awaited (ours or the peer's).
		if now.Sub(s.successor.established) > halfOpenLife {
			m.remove(s, "replaced by its rekey", false)
		}
		return
	}
	if s.encap && s.nat.WeBehind && now.Sub(s.lastKeepalive) >= natKeepalive {
		s.lastKeepalive = now
		m.host.SendKeepalive(s.local, s.remote)
	}
	if d := s.peer.DPDInterval; d > 0 && s.req == nil && len(s.queue) == 0 && now.Sub(s.lastHeard) >= d {
		s.lastHeard = now // one check per interval
		s.queueTask(livenessTask{})
	}
	for _, c := range slices.Clone(s.children) {
		switch {
		case c.deleting:
		case !c.expiresAt.IsZero() && !now.Before(c.expiresAt):
			s.deleteChild(c, "lifetime expired")
		case c.outPending && now.Sub(c.sa.Established) > outPendingMax:
			c.outPending = false
			m.host.InstallOutbound(c.sa)
		case !c.rekeying && !c.superseded && !c.rekeyAt.IsZero() && !now.Before(c.rekeyAt):
			c.rekeying = true
			m.log.Info("rekeying IPsec SA", zapPeer(s), zap.Stringer("child", c.sa))
			s.queueTask(&childTask{old: c})
		}
	}
	if l := s.peer.Lifetime; l > 0 && now.Sub(s.established) > l+l/10 {
		// Every rekey failed: past its lifetime, the IKE SA and its
		// children go, and an always-up tunnel starts afresh.
		m.negotiationError(s, ExchangeCreateChildSA, true, fmt.Errorf("%w: the IKE SA was not rekeyed within its lifetime of %v", errTimeout, l))
		m.remove(s, "its lifetime ran out", true)
		return
	}
	if !s.rekeying && !s.rekeyAt.IsZero() && !now.Before(s.rekeyAt) {
		s.rekeying = true
		m.log.Info("rekeying IKEv2 SA", zapPeer(s))
		s.queueTask(&ikeRekeyTask{})
	}
}

// SAs lists the IKE SAs for `gatehouse sa`.
func (m *Manager) SAs() []ike.SAInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ike.SAInfo
	for _, s := range m.sas {
		i := ike.SAInfo{Peer: s.peer.Name, Local: s.local, Remote: s.remote, SPIi: ike.Cookie(s.spii), SPIr: ike.Cookie(s.spir),
			Initiator: s.initiator, Established: s.state == stateEstablished, Age: m.now().Sub(s.created), Children: len(s.children),
			NAT: s.encap, PeerID: s.peerID, Version: 2, Flags: s.flags.Names()}
		if s.interop != nil {
			i.Family, i.Detail, i.Plugin = s.interop.Family, s.interop.Detail, s.interop.Plugin
		}
		if s.keys != nil {
			i.Phase1, i.Auth = s.suite.String(), cmp.Or(s.authName, "psk")
		}
		out = append(out, i)
	}
	return out
}

// Children lists every child SA up, for tests and the admin API.
func (m *Manager) Children() []*ike.ChildSA {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*ike.ChildSA
	for _, s := range m.sas {
		for _, c := range s.children {
			out = append(out, c.sa)
		}
	}
	return out
}
