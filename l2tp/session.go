package l2tp

import (
	"fmt"
	"time"
)

// Session is one call in a tunnel (RFC 2661 section 7.4: incoming calls;
// the LAC places them, the LNS answers). Outgoing calls (OCRQ) are
// refused: remote-access clients never ask for them.
type Session struct {
	Tunnel     *Tunnel
	LocalID    uint16
	PeerID     uint16
	CallSerial uint32
	// SendSeq: the peer asked for sequence numbers on data messages
	// (Sequencing Required in ICCN, section 4.4.6).
	SendSeq bool
	// Data is the caller's.
	Data  any
	state sessionState
}

type sessionState int

const (
	sessionWaitReply   sessionState = iota // LAC: ICRQ sent
	sessionWaitSend                        // LAC: ICCN waiting for the peer's window
	sessionWaitConnect                     // LNS: ICRP sent
	sessionEstablished
	sessionDead
)

// Established reports whether the call is up.
func (s *Session) Established() bool { return s.state == sessionEstablished }

func (s *Session) String() string {
	return fmt.Sprintf("session %d/%d in tunnel %d/%d", s.LocalID, s.PeerID, s.Tunnel.LocalID, s.Tunnel.PeerID)
}

// newSessionID picks a random unused nonzero id.
func (t *Tunnel) newSessionID() uint16 {
	var b [2]byte
	for i := 0; ; i++ {
		t.cfg.Random(b[:])
		id := uint16(b[0])<<8 | uint16(b[1])
		if id != 0 && t.sessions[id] == nil {
			return id
		}
		if i > 64 {
			for id := uint16(1); id != 0; id++ { // a nearly full table: scan
				if t.sessions[id] == nil {
					return id
				}
			}
		}
	}
}

// OpenSession places an incoming call (LAC): ICRQ, then ICCN on the ICRP.
func (t *Tunnel) OpenSession(now time.Time) (*Session, error) {
	t.now = now
	if t.state != tunnelEstablished {
		return nil, ErrNotEstablished
	}
	t.serial++
	s := &Session{Tunnel: t, LocalID: t.newSessionID(), CallSerial: t.serial, state: sessionWaitReply}
	t.sessions[s.LocalID] = s
	m := &Message{Type: MsgICRQ}
	m.AddUint16(AVPAssignedSessionID, true, s.LocalID)
	m.AddUint32(AVPCallSerialNumber, true, s.CallSerial)
	m.AddUint32(AVPBearerType, false, 0)
	t.send(m, 0)
	return s, nil
}

// CloseSession clears a call with a CDN (section 5.5): the result, and
// the PPP layer's cause when PPP ended it (RFC 3145).
func (t *Tunnel) CloseSession(now time.Time, s *Session, r Result, cause *PPPCause, why string) {
	t.now = now
	if t.sessions[s.LocalID] != s {
		return
	}
	delete(t.sessions, s.LocalID)
	if t.state == tunnelEstablished {
		t.sendCDN(s.PeerID, s.LocalID, r, cause)
	}
	t.sessionDown(s, r, cause, why)
}

func (t *Tunnel) sendCDN(peer, local uint16, r Result, cause *PPPCause) {
	m := &Message{Type: MsgCDN}
	m.Add(AVPResultCode, true, r.Bytes())
	m.AddUint16(AVPAssignedSessionID, true, local)
	if cause != nil {
		m.Add(AVPPPPDisconnectCause, false, cause.Bytes())
	}
	t.send(m, peer)
}

func (t *Tunnel) handleSession(h Header, m *Message) error {
	if t.state != tunnelEstablished {
		return t.fsmError(fmt.Sprintf("%v before the tunnel is established", m.Type))
	}
	switch m.Type {
	case MsgICRQ:
		return t.icrq(m)
	case MsgOCRQ:
		// We place no outgoing calls (section 7.4.2): refuse for good.
		peer, _ := m.Uint16(AVPAssignedSessionID)
		t.sendCDN(peer, 0, Result{Result: CDNNoFacilitiesPerm, Message: "outgoing calls are not supported"}, nil)
		return nil
	case MsgSLI, MsgWEN:
		return nil // ACCM and error counts: nothing to do without async framing
	}
	s := t.sessions[h.SessionID]
	if s == nil {
		// Section 5.5: a message for a session we do not know is
		// answered with a CDN when it names the peer's session.
		if peer, ok := m.Uint16(AVPAssignedSessionID); ok && m.Type != MsgCDN {
			t.sendCDN(peer, 0, Result{Result: CDNGeneralError, Error: ErrCodeBadSession, Message: "no such session"}, nil)
		}
		return nil
	}
	switch {
	case m.Type == MsgCDN:
		r, _ := m.Result()
		var cause *PPPCause
		if c, ok := m.PPPCause(); ok {
			cause = &c
		}
		delete(t.sessions, s.LocalID)
		why := "the peer cleared the call (CDN: " + r.String() + ")"
		if cause != nil && cause.Message != "" && cause.Message != r.Message {
			why += "; PPP: " + cause.Message
		}
		t.sessionDown(s, r, cause, why)
		return nil
	case m.Type == MsgICRP && t.cfg.Role == LAC && s.state == sessionWaitReply:
		if err := m.require(AVPAssignedSessionID); err != nil {
			t.CloseSession(t.now, s, Result{Result: CDNGeneralError, Error: ErrCodeLength, Message: err.Error()}, nil, err.Error())
			return err
		}
		s.PeerID, _ = m.Uint16(AVPAssignedSessionID)
		out := &Message{Type: MsgICCN}
		out.AddUint32(AVPTxConnectSpeed, true, 100_000_000)
		out.AddUint32(AVPFramingType, true, 1) // synchronous
		// The call is up once the ICCN is on the wire, not when it is
		// queued: PPP frames go outside the control window (section
		// 5.8), and an LNS drops frames for a call it has not yet seen
		// connected (so do we), costing the first Configure-Request a
		// restart timer.
		s.state = sessionWaitSend
		t.sendThen(out, s.PeerID, func() {
			if s.state == sessionWaitSend {
				t.sessionUp(s)
			}
		})
		return nil
	case m.Type == MsgICCN && t.cfg.Role == LNS && s.state == sessionWaitConnect:
		if err := m.require(AVPTxConnectSpeed, AVPFramingType); err != nil {
			t.CloseSession(t.now, s, Result{Result: CDNGeneralError, Error: ErrCodeLength, Message: err.Error()}, nil, err.Error())
			return err
		}
		s.SendSeq = m.Has(AVPSequencingRequired)
		t.sessionUp(s)
		return nil
	}
	why := fmt.Sprintf("%v for a session in the wrong state", m.Type)
	t.CloseSession(t.now, s, Result{Result: CDNGeneralError, Error: ErrCodeOutOfRange, Message: why}, nil, why)
	return fmt.Errorf("%w: %s", ErrMalformed, why)
}

func (t *Tunnel) icrq(m *Message) error {
	if t.cfg.Role != LNS {
		peer, _ := m.Uint16(AVPAssignedSessionID)
		t.sendCDN(peer, 0, Result{Result: CDNNoFacilitiesPerm, Message: "this end takes no calls"}, nil)
		return nil
	}
	if err := m.require(AVPAssignedSessionID, AVPCallSerialNumber); err != nil {
		peer, _ := m.Uint16(AVPAssignedSessionID)
		t.sendCDN(peer, 0, Result{Result: CDNGeneralError, Error: ErrCodeLength, Message: err.Error()}, nil)
		return err
	}
	peer, _ := m.Uint16(AVPAssignedSessionID)
	if peer == 0 {
		return fmt.Errorf("%w: ICRQ with Assigned Session ID 0", ErrMalformed)
	}
	serial, _ := m.Uint32(AVPCallSerialNumber)
	s := &Session{Tunnel: t, LocalID: t.newSessionID(), PeerID: peer, CallSerial: serial, state: sessionWaitConnect}
	if t.cfg.AcceptSession != nil {
		if ok, r := t.cfg.AcceptSession(t, s); !ok {
			t.sendCDN(peer, s.LocalID, r, nil)
			return nil
		}
	}
	t.sessions[s.LocalID] = s
	out := &Message{Type: MsgICRP}
	out.AddUint16(AVPAssignedSessionID, true, s.LocalID)
	t.send(out, peer)
	return nil
}

func (t *Tunnel) sessionUp(s *Session) {
	s.state = sessionEstablished
	if t.cfg.OnSessionUp != nil {
		t.cfg.OnSessionUp(s)
	}
}
