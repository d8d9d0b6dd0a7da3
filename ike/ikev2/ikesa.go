package ikev2

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/retry"
)

// saState is where an IKE SA is in its life.
type saState int

const (
	stateInit        saState = iota // IKE_SA_INIT under way
	stateAuth                       // IKE_AUTH under way
	stateEstablished                // authenticated; children come and go
	stateDead                       // removed, or being deleted
)

// ikeSA is an IKE SA. The exchange code (CREATE_CHILD_SA's tasks) needs
// only its suite, keys and randomness; the engine keeps the rest: the
// peer, message IDs and windows (section 2.3), the request in flight and
// its retransmissions, the last response for the peer's retransmissions,
// and the child SAs.
type ikeSA struct {
	suite Proposal
	keys  *Keys
	rand  io.Reader

	m    *Manager
	peer *Peer
	// initiator: we are the original initiator (section 2.2; after an
	// IKE SA rekey, whoever started the rekey).
	initiator     bool
	spii, spir    SPI
	local, remote netip.AddrPort
	state         saState
	// flags are the peer's quirks the tasks act on (builtinFlags, and the
	// interop plugins'); interop is the plugins' answer, nil for most
	// peers.
	flags       ike.Flags
	interop     *InteropAnswer
	created     time.Time
	established time.Time

	// IKE_SA_INIT and IKE_AUTH: the exchange, and the IKE_SA_INIT
	// messages as they were on the wire, which AUTH covers.
	init       *ikeInit
	msg1, msg2 []byte
	in, out    *Protector
	nat        NAT
	encap      bool // IKE and ESP on port 4500
	peerID     string
	// authName is how the peer authenticated, in IKEv1's names (psk,
	// rsa-sig, ecdsa-256...), as gatehouse sa shows both versions.
	authName string
	// eap is remote access's EAP exchange and what it gave the client;
	// mobike: both sides announced MOBIKE (mobike.go).
	eap    *eapState
	mobike bool
	// fragments: both sides announced IKE fragmentation; fragsIn are the
	// peer's request and response being joined.
	fragments bool
	fragsIn   [2]*fragBuffer

	// Our requests: the next message ID, the request in flight (window
	// size one), and the tasks waiting for it.
	nextID uint32
	req    *request
	queue  []task
	// The peer's requests: the next message ID we expect, and our
	// answer to the last one (its fragments, if it went in fragments),
	// sent again when it is retransmitted; the request is known again by
	// its digest.
	peerNext   uint32
	lastReqSum [sha256.Size]byte
	lastResp   [][]byte

	lastHeard, lastKeepalive time.Time
	children                 []*child
	// rekeyAt: when we rekey the IKE SA (zero: never); rekeying while a
	// rekey is under way. successor: the SA a rekey made, whose children
	// these became.
	rekeyAt   time.Time
	rekeying  bool
	successor *ikeSA
	// halfOpenFrom is set while a responder SA counts as half open.
	halfOpenFrom netip.Addr
	// pairs are what an initiator brings up once IKE_AUTH is through.
	pairs []ike.TSPair
}

// request is our request in flight, as sent: one datagram, or its
// fragments.
type request struct {
	t     task
	id    uint32
	b     [][]byte
	sent  time.Time
	retry retry.Timer
}

// child is a child SA of an IKE SA: what the host installed, the
// selectors as this side sees them (to rekey with), and its times.
type child struct {
	sa            *ike.ChildSA
	local, remote []Selector
	// The host has the inbound SA; outPending: not yet the outbound one
	// (a rekey we answered waits for the old SA's delete, as the peer
	// installs its inbound SA only when it reads our answer).
	outPending         bool
	rekeyAt, expiresAt time.Time
	rekeying           bool
	superseded         bool
	deleting           bool // our delete is queued or sent
	// peerRekey is the child the peer made by rekeying this one while
	// our own rekey of it was in flight, and the lowest nonce of its
	// exchange (section 2.8.1).
	peerRekey      *child
	peerRekeyNonce []byte
}

// task is one exchange this side starts (strongSwan's tasks): the
// payloads of the request, and what to make of the response. failed is
// called when no valid response comes, or the response is a refusal.
type task interface {
	exchange() ExchangeType
	request(s *ikeSA) ([]Payload, error)
	response(s *ikeSA, inner []Payload) error
	failed(s *ikeSA, err error)
}

// ourSPI is the SPI the engine files the SA under.
func (s *ikeSA) ourSPI() SPI {
	if s.initiator {
		return s.spii
	}
	return s.spir
}

func (s *ikeSA) header(x ExchangeType, id uint32, response bool) Header {
	h := Header{SPIi: s.spii, SPIr: s.spir, Exchange: x, MessageID: id}
	if s.initiator {
		h.Flags |= FlagInitiator
	}
	if response {
		h.Flags |= FlagResponse
	}
	return h
}

// protectors makes the SK protectors from the keys: the initiator's
// keys protect what it sends (section 2.14).
func (s *ikeSA) protectors() error {
	k, su := s.keys, s.suite
	iToR, err := NewProtector(su.Cipher, su.Integ, k.Ei, k.Ai)
	if err != nil {
		return err
	}
	rToI, err := NewProtector(su.Cipher, su.Integ, k.Er, k.Ar)
	if err != nil {
		return err
	}
	s.out, s.in = iToR, rToI
	if !s.initiator {
		s.out, s.in = rToI, iToR
	}
	return nil
}

// queueTask adds an exchange to run once the window is free.
func (s *ikeSA) queueTask(t task) {
	s.queue = append(s.queue, t)
	s.sendNext()
}

// sendNext starts the next queued exchange when none is in flight.
func (s *ikeSA) sendNext() {
	for s.req == nil && len(s.queue) > 0 && s.state != stateDead {
		t := s.queue[0]
		s.queue = s.queue[1:]
		if err := s.startRequest(t); err != nil {
			t.failed(s, err)
		}
	}
}

func (s *ikeSA) startRequest(t task) error {
	ps, err := t.request(s)
	if err != nil {
		return err
	}
	var b [][]byte
	if t.exchange() == ExchangeIKESAInit {
		var one []byte
		one, err = (&Message{Header: s.header(ExchangeIKESAInit, 0, false), Payloads: ps}).Encode()
		b = [][]byte{one}
	} else {
		b, err = s.seal(s.header(t.exchange(), s.nextID, false), ps)
	}
	if err != nil {
		return err
	}
	r := &request{t: t, id: s.nextID, b: b}
	if t.exchange() == ExchangeIKESAInit {
		r.id = 0
	} else {
		s.nextID++
	}
	r.sent = s.m.now()
	r.retry.Arm(r.sent)
	s.req = r
	s.sendAll(b)
	return nil
}

func (s *ikeSA) send(b []byte) {
	if err := s.m.host.Send(b, s.local, s.remote); err != nil {
		s.m.log.Debug("IKEv2 message not sent", zapPeer(s), zapErr(err))
	}
}

// receive takes a message of the peer's on this SA: a fragment is kept
// until its message is whole; a request goes to requestFrom, a response
// to responseTo.
func (s *ikeSA) receive(msg *Message, b []byte, local, remote netip.AddrPort) {
	var inner []Payload
	if len(msg.Payloads) == 0 {
		s.m.drop(dropMalformed, remote, fmt.Errorf("%v without payloads", msg.Exchange))
		return
	}
	if e, ok := msg.Payloads[len(msg.Payloads)-1].(*Encrypted); ok && e.T == PayloadSKF && len(msg.Payloads) == 1 {
		if !msg.Response() && s.lastResp != nil && msg.MessageID == s.peerNext-1 {
			// A retransmitted request: its first fragment has the whole
			// answer sent again (section 2.6.1).
			if e.Number == 1 {
				s.m.sendAllTo(s.lastResp, local, remote)
			}
			return
		}
		var complete bool
		var err error
		if inner, complete, err = s.fragment(msg, b); err != nil {
			s.m.drop(dropUnauthenticated, remote, fmt.Errorf("%v fragment: %w", msg.Exchange, err))
			return
		}
		if !complete {
			return
		}
	}
	if msg.Response() {
		s.responseTo(msg, b, inner)
	} else {
		s.requestFrom(msg, b, inner, local, remote)
	}
}

// responseTo takes the peer's response to our request in flight; inner
// is what its fragments held (nil: the message is whole, to be opened).
func (s *ikeSA) responseTo(msg *Message, b []byte, inner []Payload) {
	r := s.req
	if r == nil || msg.MessageID != r.id || msg.Exchange != r.t.exchange() {
		s.m.drop(dropUnexpected, s.remote, fmt.Errorf("%v response #%d, none awaited", msg.Exchange, msg.MessageID))
		return
	}
	if msg.Exchange == ExchangeIKESAInit {
		s.initResponse(msg, b)
		return
	}
	if inner == nil {
		var err error
		if inner, err = s.open(msg, b); err != nil {
			s.m.drop(dropUnauthenticated, s.remote, err)
			return
		}
	}
	s.lastHeard = s.m.now()
	s.req = nil
	if err := r.t.response(s, inner); err != nil {
		r.t.failed(s, err)
	}
	s.sendNext()
}

func (s *ikeSA) open(msg *Message, b []byte) ([]Payload, error) {
	if len(msg.Payloads) == 0 {
		return nil, fmt.Errorf("%w: %v without an SK payload", ErrMalformed, msg.Exchange)
	}
	e, ok := msg.Payloads[len(msg.Payloads)-1].(*Encrypted)
	if !ok || s.in == nil {
		return nil, fmt.Errorf("%w: %v in clear", ErrMalformed, msg.Exchange)
	}
	return s.in.Open(b, &msg.Header, e)
}

// requestFrom answers the peer's request: a retransmission of the last
// one gets the same answer again (section 2.1); the next one in order
// is opened (unless its fragments were: inner) and answered; anything
// else is dropped.
func (s *ikeSA) requestFrom(msg *Message, b []byte, inner []Payload, local, remote netip.AddrPort) {
	if s.lastResp != nil && msg.MessageID == s.peerNext-1 && inner == nil {
		if sha256.Sum256(b) == s.lastReqSum {
			s.m.sendAllTo(s.lastResp, local, remote)
		} else {
			s.m.drop(dropUnexpected, remote, fmt.Errorf("%v #%d again, with other contents", msg.Exchange, msg.MessageID))
		}
		return
	}
	if msg.MessageID != s.peerNext {
		s.m.drop(dropUnexpected, remote, fmt.Errorf("%v #%d, #%d expected", msg.Exchange, msg.MessageID, s.peerNext))
		return
	}
	if s.eap != nil && s.eap.busy {
		return // a retransmission while its EAP round is checked: answered then
	}
	if inner == nil {
		var err error
		if inner, err = s.open(msg, b); err != nil {
			s.m.drop(dropUnauthenticated, remote, fmt.Errorf("%v: %w", msg.Exchange, err))
			return
		}
	}
	s.lastHeard = s.m.now()
	was := s.remote
	// With MOBIKE only UPDATE_SA_ADDRESSES moves the SA (RFC 4555
	// section 3.5): a client probing a new path is answered there, and
	// stays where it was.
	if s.state == stateAuth || (!s.mobike && (s.encap || s.nat.PeerBehind || s.nat.WeBehind)) {
		// Section 2.23: IKE_AUTH comes from the port the initiator
		// moved to, and behind a NAT the peer is where its latest
		// authenticated request came from. Our address stays the one
		// the SA was made on (a wildcard socket does not tell it).
		if local.Addr().IsUnspecified() {
			local = netip.AddrPortFrom(s.local.Addr(), local.Port())
		}
		s.local, s.remote = local, remote
	}
	var ps []Payload
	after := func() {}
	switch {
	case msg.Exchange == ExchangeIKEAuth && s.state == stateAuth && !s.initiator && s.eapAsync(msg, b, inner, local, remote):
		return // answered when the EAP round is done
	case msg.Exchange == ExchangeIKEAuth && s.state == stateAuth && !s.initiator:
		ps, after = s.answerAuth(inner)
	case msg.Exchange == ExchangeCreateChildSA && s.state == stateEstablished:
		ps, after = s.answerCreateChild(inner)
	case msg.Exchange == ExchangeInformational && s.state != stateInit && len(Notifies(inner, NotifyUpdateSAAddresses)) > 0:
		ps, after = s.answerUpdate(inner, local, remote, was), func() {}
	case msg.Exchange == ExchangeInformational && s.state != stateInit:
		ps, after = s.answerInformational(inner)
	default:
		s.m.drop(dropUnexpected, remote, fmt.Errorf("%v request in state %d", msg.Exchange, s.state))
		return
	}
	s.answer(msg, b, ps, after, local, remote)
}

// answer sends ps as the response to the request msg (b), kept for its
// retransmissions, then runs after and the next request of ours.
func (s *ikeSA) answer(msg *Message, b []byte, ps []Payload, after func(), local, remote netip.AddrPort) {
	out, err := s.seal(s.header(msg.Exchange, msg.MessageID, true), ps)
	if err != nil {
		s.m.log.Warn("IKEv2 answer not sealed", zapPeer(s), zapErr(err))
		return
	}
	s.peerNext++
	s.lastReqSum, s.lastResp = sha256.Sum256(b), kept(out)
	s.m.sendAllTo(out, local, remote)
	after()
	s.sendNext()
}

// kept is a response as the SA keeps it for retransmissions, each
// datagram in a slice of its own length: Seal builds in room for more,
// and an established SA keeps its last response until the next request.
func kept(bs [][]byte) [][]byte {
	out := make([][]byte, len(bs))
	for i, b := range bs {
		out[i] = bytes.Clone(b)
	}
	return out
}

// toHost is a child as the host installs it: the keys by direction, the
// selectors as ours and theirs, the IKE SA's endpoints. initiator: we
// started the exchange that made it (its keys are cut in that order).
func (s *ikeSA) toHost(c *Child, initiator bool) *ike.ChildSA {
	p := s.peer
	out := &ike.ChildSA{Peer: p.Name, Local: s.local, Remote: s.remote, Tunnel: !c.Transport, UDP: s.encap, Suite: c.Suite,
		InSPI: c.InSPI, OutSPI: c.OutSPI, Lifetime: p.ESPLifetime, LifeKB: p.ESPLifeKB, SPIi: ike.Cookie(s.spii), SPIr: ike.Cookie(s.spir),
		Established: s.m.now()}
	k := c.Keys
	out.OutEnc, out.OutInteg, out.InEnc, out.InInteg = k.EncIR, k.IntegIR, k.EncRI, k.IntegRI
	ours, theirs := c.TSi, c.TSr
	if !initiator {
		out.OutEnc, out.OutInteg, out.InEnc, out.InInteg = k.EncRI, k.IntegRI, k.EncIR, k.IntegIR
		ours, theirs = c.TSr, c.TSi
	}
	if !c.Transport {
		for _, l := range hostSelectors(ours) {
			for _, r := range hostSelectors(theirs) {
				out.Pairs = append(out.Pairs, ike.TSPair{Local: l, Remote: r})
			}
		}
		if len(out.Pairs) > 0 {
			out.LocalTS, out.RemoteTS = out.Pairs[0].Local, out.Pairs[0].Remote
		}
	}
	return out
}

// addChild files a child the host has installed and schedules its
// rekey: the side that made it rekeys first, at 80-85 % of its life, the
// other at 93 % if that did not happen (IKEv1's schedule, ike.SoftPoint).
func (s *ikeSA) addChild(h *ike.ChildSA, c *Child, initiator bool) *child {
	ch := &child{sa: h, local: c.TSi, remote: c.TSr}
	if !initiator {
		ch.local, ch.remote = c.TSr, c.TSi
	}
	if h.Lifetime > 0 {
		ch.expiresAt = h.Established.Add(h.Lifetime)
		ch.rekeyAt = h.Established.Add(time.Duration(float64(h.Lifetime) * ike.SoftPoint(initiator)))
		if !initiator && s.clientRekeysChildren() {
			// The client refuses our rekeys and makes its own: it gets a
			// tenth more time to, and none of ours.
			ch.expiresAt, ch.rekeyAt = ch.expiresAt.Add(h.Lifetime/10), time.Time{}
		}
	}
	s.children = append(s.children, ch)
	return ch
}

// install puts a new child into the host, inbound and (unless its
// outbound must wait, see child.outPending) outbound, and tells the
// audit log.
func (s *ikeSA) install(c *Child, initiator, rekey, deferOut bool) (*child, error) {
	h := s.toHost(c, initiator)
	if err := s.m.host.InstallInbound(h); err != nil {
		return nil, fmt.Errorf("installing the inbound SA: %w", err)
	}
	if !deferOut {
		if err := s.m.host.InstallOutbound(h); err != nil {
			s.m.host.DeleteChild(h)
			return nil, fmt.Errorf("installing the outbound SA: %w", err)
		}
	}
	ch := s.addChild(h, c, initiator)
	ch.outPending = deferOut
	msg := fmt.Sprintf("IPsec SA with %s up (IKEv2): %s", s.peer.Name, h)
	if rekey {
		msg = fmt.Sprintf("IPsec SA with %s rekeyed (IKEv2): %s", s.peer.Name, h)
	}
	s.m.event(s, ike.Event{ID: ike.EventChildUp, Message: msg, Child: h, Rekey: rekey})
	return ch, nil
}

// removeChild takes a child out of the host and the SA.
func (s *ikeSA) removeChild(ch *child, why string) {
	for i, c := range s.children {
		if c == ch {
			s.children = append(s.children[:i], s.children[i+1:]...)
			break
		}
	}
	s.m.host.DeleteChild(ch.sa)
	s.m.event(s, ike.Event{ID: ike.EventChildDown, Message: fmt.Sprintf("IPsec SA with %s down (IKEv2): %s", s.peer.Name, why), Child: ch.sa})
}

// childByOutSPI finds a child by the SPI the peer receives on.
func (s *ikeSA) childByOutSPI(spi uint32) *child {
	for _, c := range s.children {
		if c.sa.OutSPI == spi {
			return c
		}
	}
	return nil
}

// answerInformational answers deletes with the other halves of the
// deleted child SAs (section 1.4.1), the IKE SA's delete with nothing
// (and removes it once answered), and a liveness check with nothing.
func (s *ikeSA) answerInformational(inner []Payload) ([]Payload, func()) {
	ikeGone, answer := answerDeletes(inner, func(out uint32) (uint32, bool) {
		c := s.childByOutSPI(out)
		if c == nil {
			return 0, false // already gone: a delete collision (section 1.4.1)
		}
		in := c.sa.InSPI
		s.childDeleted(c)
		return in, true
	})
	if ikeGone {
		return nil, func() { s.m.remove(s, "the peer deleted the IKE SA", s.successor == nil) }
	}
	return answer, func() {}
}

// answerDeletes reads an INFORMATIONAL request's deletes: whether it
// deletes the IKE SA, else the answer naming our halves of the child SAs
// it deletes. gone removes the child the peer receives on with SPI out
// and gives our inbound SPI (false: no such child).
func answerDeletes(inner []Payload, gone func(out uint32) (in uint32, ok bool)) (ikeSA bool, answer []Payload) {
	var ours [][]byte
	for _, p := range inner {
		d, ok := p.(*Delete)
		switch {
		case !ok:
			continue
		case d.Protocol == ProtoIKE:
			return true, nil
		case d.Protocol != ProtoESP:
			continue
		}
		for _, spi := range d.SPIs {
			if in, ok := gone(binary.BigEndian.Uint32(spi)); ok {
				ours = append(ours, spiBytes(in))
			}
		}
	}
	if len(ours) == 0 {
		return false, nil
	}
	return false, []Payload{&Delete{Protocol: ProtoESP, SPIs: ours}}
}

// childDeleted removes a child the peer deleted. A child it replaced by
// a rekey we answered has a successor waiting to be the outbound SA: it
// is now.
func (s *ikeSA) childDeleted(c *child) {
	for _, n := range s.children {
		if n.outPending && !n.deleting && n.replaces(c) {
			n.outPending = false
			if err := s.m.host.InstallOutbound(n.sa); err != nil {
				s.m.log.Warn("rekeyed outbound SA not installed", zapPeer(s), zapErr(err))
			}
		}
	}
	why := "deleted by the peer"
	if c.superseded {
		why = "replaced by a rekeyed SA"
	}
	s.removeChild(c, why)
}

// replaces reports whether n is the rekey of c: the same selectors.
func (n *child) replaces(c *child) bool {
	return n != c && slices.Equal(n.local, c.local) && slices.Equal(n.remote, c.remote)
}

// hostSelectors turns traffic selectors into the host's selectors: an
// address range becomes the prefixes that cover it exactly; a single
// port is kept, a range of ports is any port.
func hostSelectors(ts []Selector) []ike.Selector {
	var out []ike.Selector
	for _, t := range ts {
		var port uint16
		if t.StartPort == t.EndPort {
			port = t.StartPort
		}
		for _, p := range rangePrefixes(t.StartAddr, t.EndAddr) {
			out = append(out, ike.Selector{Prefix: p, Proto: t.Protocol, Port: port})
		}
	}
	return out
}

// rangePrefixes covers [lo, hi] with the fewest prefixes; a range no
// prefix list can hold in 64 entries is cut there (a selector so ragged
// is not one any gateway sends).
func rangePrefixes(lo, hi netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for len(out) < 64 && lo.IsValid() && !hi.Less(lo) {
		bits := lo.BitLen()
		for bits > 0 {
			p := netip.PrefixFrom(lo, bits-1).Masked()
			if p.Addr() != lo || hi.Less(lastAddr(p)) {
				break
			}
			bits--
		}
		p := netip.PrefixFrom(lo, bits)
		out = append(out, p)
		last := lastAddr(p)
		if last == hi {
			break
		}
		lo = last.Next()
	}
	return out
}
