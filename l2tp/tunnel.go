package l2tp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A Tunnel is one control connection (RFC 2661 section 5.1) with its
// sessions, for either end: the LNS answers SCCRQ and ICRQ, the LAC sends
// them. It carries control messages reliably (section 5.8: Ns/Nr, the
// peer's receive window, retransmission with backoff, ZLB acks,
// duplicates), runs the state machines of section 7, and keeps the link
// alive with HELLO. It does no I/O and reads no clock: the caller feeds
// packets and the time and sends what Config.Send is given. Not safe for
// concurrent use.

// Role is the end a Tunnel plays.
type Role int

const (
	LNS Role = iota
	LAC
)

func (r Role) String() string { return [...]string{"LNS", "LAC"}[r] }

// Config configures a Tunnel. Send is required; the On* callbacks may be
// nil.
type Config struct {
	Role       Role
	HostName   string
	VendorName string
	// Secret enables tunnel authentication (section 5.1.1) and hidden
	// AVPs (section 4.3).
	Secret []byte
	// RecvWindow is the window we advertise (default 16).
	RecvWindow uint16
	// Hello is the idle time after which we send a HELLO (section 6.5;
	// default 60 s, negative: never).
	Hello time.Duration
	// Retransmit: the first interval (1 s), its cap (8 s, section 5.8)
	// and the number of retransmissions before the peer is declared
	// gone (5).
	RetransmitInitial time.Duration
	RetransmitCap     time.Duration
	RetransmitMax     int
	// Linger is how long a closed tunnel stays to acknowledge the
	// peer's retransmissions (section 5.7: a full retransmission cycle;
	// 31 s by default).
	Linger time.Duration
	Random func([]byte)

	// Send transmits one control packet.
	Send func([]byte)
	// OnUp: the control connection is established.
	OnUp func(t *Tunnel)
	// OnDown: the tunnel is gone (StopCCN either way, or the peer went
	// silent); its sessions have had OnSessionDown first.
	OnDown func(t *Tunnel, r Result, why string)
	// AcceptSession (LNS) may refuse an incoming call with a CDN result.
	AcceptSession func(t *Tunnel, s *Session) (ok bool, r Result)
	// OnSessionUp: ICCN received (LNS) or sent (LAC); PPP may start.
	OnSessionUp func(s *Session)
	// OnSessionDown: the session is cleared; cause is the peer's RFC
	// 3145 cause when it sent one.
	OnSessionDown func(s *Session, r Result, cause *PPPCause, why string)
}

type tunnelState int

const (
	tunnelIdle tunnelState = iota
	tunnelWaitReply
	tunnelWaitConn
	tunnelEstablished
	tunnelClosing // StopCCN sent or received: acks only, until Linger
	tunnelDead
)

var tunnelStateNames = [...]string{"idle", "wait-ctl-reply", "wait-ctl-conn", "established", "closing", "dead"}

// Errors callers test.
var (
	ErrNotEstablished = errors.New("L2TP tunnel not established")
	ErrWrongTunnel    = errors.New("control message for another tunnel")
)

// Tunnel is one control connection.
type Tunnel struct {
	cfg      Config
	LocalID  uint16
	PeerID   uint16
	PeerHost string
	state    tunnelState

	ns, nr  uint16 // next to send; next expected
	peerRWS uint16
	queue   []*pending // sent and unacknowledged, then waiting for the window
	rcvBuf  map[uint16][]byte

	challenge []byte // ours, awaiting the peer's response
	sessions  map[uint16]*Session
	serial    uint32

	now        time.Time
	lastRx     time.Time
	lingerEnd  time.Time
	ackPending bool
	sentSince  bool
	downCalled bool
}

type pending struct {
	pkt      []byte
	ns       uint16
	onSent   func() // after the first transmission
	sent     bool
	tries    int
	due      time.Time
	interval time.Duration
}

// NewTunnel makes a tunnel with our tunnel id local (nonzero).
func NewTunnel(cfg Config, local uint16) *Tunnel {
	if cfg.Random == nil {
		cfg.Random = func(b []byte) { _, _ = rand.Read(b) }
	}
	if cfg.RecvWindow == 0 {
		cfg.RecvWindow = 16
	}
	if cfg.Hello == 0 {
		cfg.Hello = 60 * time.Second
	}
	if cfg.RetransmitInitial == 0 {
		cfg.RetransmitInitial = time.Second
	}
	if cfg.RetransmitCap == 0 {
		cfg.RetransmitCap = 8 * time.Second
	}
	if cfg.RetransmitMax == 0 {
		cfg.RetransmitMax = 5
	}
	if cfg.Linger == 0 {
		cfg.Linger = 31 * time.Second
	}
	if cfg.HostName == "" {
		cfg.HostName = "gatehouse"
	}
	if cfg.VendorName == "" {
		cfg.VendorName = "Gatehouse"
	}
	return &Tunnel{cfg: cfg, LocalID: local, peerRWS: 4, sessions: map[uint16]*Session{}, rcvBuf: map[uint16][]byte{}}
}

// State names the tunnel's state.
func (t *Tunnel) State() string { return tunnelStateNames[t.state] }

// Established reports whether the control connection is up.
func (t *Tunnel) Established() bool { return t.state == tunnelEstablished }

// Dead reports that the tunnel is finished and may be forgotten.
func (t *Tunnel) Dead() bool { return t.state == tunnelDead }

// Sessions returns the tunnel's sessions.
func (t *Tunnel) Sessions() []*Session {
	out := make([]*Session, 0, len(t.sessions))
	for _, s := range t.sessions {
		out = append(out, s)
	}
	return out
}

// Session returns the session with our id.
func (t *Tunnel) Session(local uint16) *Session { return t.sessions[local] }

// Start sends the SCCRQ (LAC).
func (t *Tunnel) Start(now time.Time) {
	t.now, t.lastRx = now, now
	m := t.startMessage(MsgSCCRQ)
	t.challengePeer(m)
	t.state = tunnelWaitReply
	t.send(m, 0)
}

// startMessage builds the common body of SCCRQ and SCCRP (section 6.1,
// 6.2).
func (t *Tunnel) startMessage(typ MessageType) *Message {
	m := &Message{Type: typ}
	m.Add(AVPProtocolVersion, true, []byte{1, 0})
	m.AddUint32(AVPFramingCaps, true, 3) // synchronous and asynchronous
	m.AddUint32(AVPBearerCaps, false, 0)
	m.AddUint16(AVPFirmwareRevision, false, 0x0100)
	m.Add(AVPHostName, true, []byte(t.cfg.HostName))
	m.Add(AVPVendorName, false, []byte(t.cfg.VendorName))
	m.AddUint16(AVPAssignedTunnelID, true, t.LocalID)
	m.AddUint16(AVPReceiveWindowSize, true, t.cfg.RecvWindow)
	return m
}

// Close ends the tunnel with a StopCCN (section 5.7).
func (t *Tunnel) Close(now time.Time, r Result, why string) {
	t.now = now
	if t.state >= tunnelClosing {
		return
	}
	if t.state != tunnelIdle || t.cfg.Role == LNS { // an LNS refusing an SCCRQ answers it
		m := &Message{Type: MsgStopCCN}
		m.AddUint16(AVPAssignedTunnelID, true, t.LocalID)
		m.Add(AVPResultCode, true, r.Bytes())
		t.send(m, 0)
	}
	t.down(r, why)
}

// Abandon ends the tunnel without a word to the peer, which cannot be
// reached any more (its IPsec SA is gone): sessions and tunnel are
// reported down, and nothing is sent or retransmitted.
func (t *Tunnel) Abandon(now time.Time, why string) {
	t.now = now
	t.queue = nil
	if t.state < tunnelClosing {
		t.down(Result{Result: StopClearConnection, Message: why}, why)
	}
	t.state = tunnelDead
}

// down clears the sessions, reports the tunnel down and lingers.
func (t *Tunnel) down(r Result, why string) {
	for id, s := range t.sessions {
		delete(t.sessions, id)
		t.sessionDown(s, Result{Result: CDNLostCarrier, Message: "tunnel closed"}, nil, "tunnel closed: "+why)
	}
	t.state = tunnelClosing
	t.lingerEnd = t.now.Add(t.cfg.Linger)
	if !t.downCalled {
		t.downCalled = true
		if t.cfg.OnDown != nil {
			t.cfg.OnDown(t, r, why)
		}
	}
}

func (t *Tunnel) sessionDown(s *Session, r Result, cause *PPPCause, why string) {
	s.state = sessionDead
	if t.cfg.OnSessionDown != nil {
		t.cfg.OnSessionDown(s, r, cause, why)
	}
}

// send queues a message for reliable delivery (section 5.8) and
// transmits it when the peer's window allows.
func (t *Tunnel) send(m *Message, session uint16) { t.sendThen(m, session, nil) }

// sendThen is send, calling onSent once the message has gone out.
func (t *Tunnel) sendThen(m *Message, session uint16, onSent func()) {
	pkt := m.AppendAVPs(make([]byte, controlHeaderLen, 128), t.cfg.Secret, t.cfg.Random)
	AppendControlHeader(pkt[:0], t.PeerID, session, t.ns, 0, len(pkt)-controlHeaderLen) // fills the space left for it
	t.queue = append(t.queue, &pending{pkt: pkt, ns: t.ns, interval: t.cfg.RetransmitInitial, onSent: onSent})
	t.ns++
	t.pump()
}

// pump transmits queued messages the window has room for.
func (t *Tunnel) pump() {
	var sent []func()
	for i, p := range t.queue {
		if i >= int(t.peerRWS) {
			break
		}
		if !p.sent {
			p.sent = true
			p.due = t.now.Add(p.interval)
			t.transmit(p)
			if p.onSent != nil {
				sent = append(sent, p.onSent)
			}
		}
	}
	for _, f := range sent { // after the loop: f may queue more
		f()
	}
}

// transmit sends a queued packet with our current Nr (section 5.8:
// retransmissions carry the latest Nr).
func (t *Tunnel) transmit(p *pending) {
	binary.BigEndian.PutUint16(p.pkt[10:], t.nr)
	t.sentSince = true
	t.cfg.Send(p.pkt)
}

func (t *Tunnel) sendZLB() {
	t.sentSince = true
	t.cfg.Send(AppendControlHeader(nil, t.PeerID, 0, t.ns, t.nr, 0))
}

// Input handles one control packet addressed to this tunnel.
func (t *Tunnel) Input(b []byte, now time.Time) error {
	t.now = now
	if t.state == tunnelDead {
		return nil
	}
	h, payload, err := ParseHeader(b)
	if err != nil {
		return err
	}
	if !h.Control {
		return fmt.Errorf("%w: a data message fed to the control channel", ErrMalformed)
	}
	// Tunnel id 0 is the peer's SCCRQ: the first one, or, at an LNS, a
	// retransmission because our SCCRP was late or lost (Server routes
	// only those here); it is a duplicate, answered by an ack.
	if h.TunnelID != t.LocalID && !(h.TunnelID == 0 && (t.state == tunnelIdle || t.cfg.Role == LNS)) {
		return fmt.Errorf("%w: tunnel id %d, ours is %d", ErrWrongTunnel, h.TunnelID, t.LocalID)
	}
	t.lastRx = now
	t.ackPending, t.sentSince = false, false
	t.acknowledge(h.Nr)
	if len(payload) > 0 {
		switch d := h.Ns - t.nr; {
		case d == 0:
			t.nr++
			err = t.handle(h, payload)
			for t.state < tunnelDead {
				next, ok := t.rcvBuf[t.nr]
				if !ok {
					break
				}
				delete(t.rcvBuf, t.nr)
				t.nr++
				nh, np, _ := ParseHeader(next)
				if herr := t.handle(nh, np); err == nil {
					err = herr
				}
			}
			t.ackPending = true
		case seqLess(h.Ns, t.nr):
			t.ackPending = true // a duplicate: our ack was lost (section 5.8)
		case d < t.cfg.RecvWindow:
			if _, dup := t.rcvBuf[h.Ns]; !dup {
				t.rcvBuf[h.Ns] = append([]byte(nil), b...)
			}
		}
	}
	t.pump()
	if t.ackPending && !t.sentSince && t.PeerID != 0 {
		t.sendZLB()
	}
	return err
}

// acknowledge drops our messages the peer's Nr covers.
func (t *Tunnel) acknowledge(nr uint16) {
	n := 0
	for n < len(t.queue) && t.queue[n].sent && seqLess(t.queue[n].ns, nr) {
		n++
	}
	if n > 0 {
		t.queue = append(t.queue[:0], t.queue[n:]...)
	}
}

// handle runs one in-order control message through the state machines.
func (t *Tunnel) handle(h Header, payload []byte) error {
	m, err := ParseMessage(payload, t.cfg.Secret)
	if err != nil {
		return t.refuse(h, m, err)
	}
	if t.state == tunnelClosing {
		return nil // acknowledged, nothing more (section 5.7)
	}
	if m.Type.sessionMessage() {
		return t.handleSession(h, &m)
	}
	switch m.Type {
	case MsgSCCRQ:
		return t.sccrq(&m)
	case MsgSCCRP:
		return t.sccrp(&m)
	case MsgSCCCN:
		return t.scccn(&m)
	case MsgStopCCN:
		r, _ := m.Result()
		t.down(r, "the peer closed the tunnel (StopCCN: "+r.String()+")")
		return nil
	case MsgHello:
		return nil
	}
	if _, known := msgNames[m.Type]; !known {
		return nil // unknown, not mandatory: ignored (section 4.4.1)
	}
	return t.fsmError(fmt.Sprintf("%v in state %s", m.Type, t.State()))
}

// refuse answers a message that could not be parsed: a session message
// clears its session, anything else the tunnel (section 4.1).
func (t *Tunnel) refuse(h Header, m Message, err error) error {
	code := uint16(ErrCodeLength)
	if errors.Is(err, ErrUnknownMandatory) {
		code = ErrCodeUnknownMandat
	}
	if s := t.sessions[h.SessionID]; s != nil && h.SessionID != 0 {
		t.CloseSession(t.now, s, Result{Result: CDNGeneralError, Error: code, Message: err.Error()}, nil, "refused a bad message: "+err.Error())
		return err
	}
	if m.Type.sessionMessage() && t.state == tunnelEstablished {
		return err // a session we do not know: nothing to clear
	}
	t.Close(t.now, Result{Result: StopGeneralError, Error: code, Message: err.Error()}, "refused a bad message: "+err.Error())
	return err
}

func (t *Tunnel) fsmError(why string) error {
	t.Close(t.now, Result{Result: StopFSMError, Message: why}, "protocol error: "+why)
	return fmt.Errorf("%w: %s", ErrMalformed, why)
}

func (t *Tunnel) peerInfo(m *Message) error {
	if err := m.require(AVPProtocolVersion, AVPHostName, AVPFramingCaps, AVPAssignedTunnelID); err != nil {
		return err
	}
	if v, _ := m.Get(AVPProtocolVersion); v[0] != 1 || v[1] != 0 {
		t.Close(t.now, Result{Result: StopBadVersion, Error: 0x0100, Message: "we speak L2TP version 1 revision 0"}, fmt.Sprintf("the peer speaks version %d.%d", v[0], v[1]))
		return fmt.Errorf("%w: protocol version %d.%d", ErrMalformed, v[0], v[1])
	}
	id, _ := m.Uint16(AVPAssignedTunnelID)
	if id == 0 {
		return fmt.Errorf("%w: Assigned Tunnel ID 0", ErrMalformed)
	}
	t.PeerID = id
	t.PeerHost = m.String(AVPHostName)
	if w, ok := m.Uint16(AVPReceiveWindowSize); ok && w > 0 {
		t.peerRWS = w
	}
	return nil
}

// checkResponse verifies the peer's answer to our challenge.
func (t *Tunnel) checkResponse(m *Message, in MessageType) error {
	if t.challenge == nil {
		return nil
	}
	got, ok := m.Get(AVPChallengeResponse)
	want := ChallengeResponse(in, t.cfg.Secret, t.challenge)
	if !ok || subtle.ConstantTimeCompare(got, want[:]) != 1 {
		why := "the peer's challenge response is wrong (tunnel secrets differ)"
		if !ok {
			why = "the peer did not answer our challenge (it has no tunnel secret?)"
		}
		t.Close(t.now, Result{Result: StopNotAuthorized, Message: "tunnel authentication failed"}, why)
		return errors.New(why)
	}
	t.challenge = nil
	return nil
}

// challengePeer adds our challenge to an SCCRQ or SCCRP when we have a
// secret (section 5.1.1).
func (t *Tunnel) challengePeer(m *Message) {
	if len(t.cfg.Secret) == 0 {
		return
	}
	t.challenge = make([]byte, 16)
	t.cfg.Random(t.challenge)
	m.Add(AVPChallenge, true, t.challenge)
}

// answerChallenge adds our response to the peer's challenge, if any.
func (t *Tunnel) answerChallenge(in, out *Message) error {
	c, ok := in.Get(AVPChallenge)
	if !ok {
		return nil
	}
	if len(t.cfg.Secret) == 0 {
		t.Close(t.now, Result{Result: StopNotAuthorized, Message: "no tunnel secret configured here"}, "the peer sent a tunnel challenge but we have no tunnel secret")
		return ErrNoSecret
	}
	r := ChallengeResponse(out.Type, t.cfg.Secret, c)
	out.Add(AVPChallengeResponse, true, r[:])
	return nil
}

func (t *Tunnel) sccrq(m *Message) error {
	if t.cfg.Role != LNS || t.state != tunnelIdle {
		return t.fsmError("SCCRQ in state " + t.State())
	}
	if err := t.peerInfo(m); err != nil {
		if t.state == tunnelIdle {
			t.Close(t.now, Result{Result: StopGeneralError, Error: ErrCodeLength, Message: err.Error()}, err.Error())
		}
		return err
	}
	out := t.startMessage(MsgSCCRP)
	if err := t.answerChallenge(m, out); err != nil {
		return err
	}
	t.challengePeer(out)
	t.state = tunnelWaitConn
	t.send(out, 0)
	return nil
}

func (t *Tunnel) sccrp(m *Message) error {
	if t.cfg.Role != LAC || t.state != tunnelWaitReply {
		return t.fsmError("SCCRP in state " + t.State())
	}
	if err := t.peerInfo(m); err != nil {
		t.Close(t.now, Result{Result: StopGeneralError, Error: ErrCodeLength, Message: err.Error()}, err.Error())
		return err
	}
	if err := t.checkResponse(m, MsgSCCRP); err != nil {
		return err
	}
	out := &Message{Type: MsgSCCCN}
	if err := t.answerChallenge(m, out); err != nil {
		return err
	}
	t.send(out, 0)
	t.established()
	return nil
}

func (t *Tunnel) scccn(m *Message) error {
	if t.cfg.Role != LNS || t.state != tunnelWaitConn {
		return t.fsmError("SCCCN in state " + t.State())
	}
	if err := t.checkResponse(m, MsgSCCCN); err != nil {
		return err
	}
	t.established()
	return nil
}

func (t *Tunnel) established() {
	t.state = tunnelEstablished
	if t.cfg.OnUp != nil {
		t.cfg.OnUp(t)
	}
}

// Tick runs retransmissions, HELLO and the linger timer.
func (t *Tunnel) Tick(now time.Time) {
	t.now = now
	switch t.state {
	case tunnelDead:
		return
	case tunnelClosing:
		if !now.Before(t.lingerEnd) {
			t.state = tunnelDead
			return
		}
	}
	for _, p := range t.queue {
		if !p.sent || now.Before(p.due) {
			continue
		}
		if p.tries >= t.cfg.RetransmitMax {
			t.queue = nil
			if t.state == tunnelClosing {
				t.state = tunnelDead
				return
			}
			t.down(Result{Result: StopGeneralError, Message: "peer not responding"},
				fmt.Sprintf("the peer acknowledged nothing after %d retransmissions", p.tries))
			t.state = tunnelDead
			return
		}
		p.tries++
		p.interval = min(2*p.interval, t.cfg.RetransmitCap)
		p.due = now.Add(p.interval)
		t.transmit(p)
	}
	if t.state == tunnelEstablished && t.cfg.Hello > 0 && len(t.queue) == 0 && now.Sub(t.lastRx) >= t.cfg.Hello {
		t.lastRx = now // one HELLO per idle period; its ack counts as traffic
		t.send(&Message{Type: MsgHello}, 0)
	}
}
