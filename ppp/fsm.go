package ppp

import (
	"fmt"
	"time"
)

// The option negotiation automaton of RFC 1661 section 4, shared by LCP
// and IPCP. The transition table below is the RFC's (section 4.1), state
// by state; the protocol-specific parts (which options to ask for, how to
// judge the peer's) come from a Handler.

// State is an automaton state (RFC 1661 section 4.2).
type State int

const (
	Initial State = iota
	Starting
	Closed
	Stopped
	Closing
	Stopping
	ReqSent
	AckRcvd
	AckSent
	Opened
)

var stateNames = [...]string{"Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened"}

func (s State) String() string { return stateNames[s] }

// Verdict is a Handler's judgement of a Configure-Request.
type Verdict int

const (
	Ack    Verdict = iota // all options acceptable: Configure-Ack
	Nak                   // some values unacceptable: Configure-Nak with ours
	Reject                // some options unknown: Configure-Reject
)

// Handler is the protocol that runs on the automaton.
type Handler interface {
	// Options returns our Configure-Request's options.
	Options() []Option
	// Check judges the peer's options and returns the options to send
	// back with a Nak or Reject (nil with Ack).
	Check(opts []Option) (Verdict, []Option)
	// Nakked and Rejected adjust our next request after the peer's Nak
	// or Reject of it.
	Nakked(opts []Option)
	Rejected(opts []Option)
	// Up and Down are This-Layer-Up and This-Layer-Down; Finished is
	// This-Layer-Finished (the layer below may go).
	Up()
	Down()
	Finished()
	// Send sends a control packet of this protocol.
	Send(p Packet)
}

// Restart timer and counters (RFC 1661 section 4.6).
const (
	DefaultRestart      = 3 * time.Second
	DefaultMaxTerminate = 2
	DefaultMaxConfigure = 10
	DefaultMaxFailure   = 5
)

// FSM is one automaton. It is not safe for concurrent use: the caller
// serialises events (one session goroutine, or a lock).
type FSM struct {
	h       Handler
	state   State
	id      byte // identifier of our last Configure-Request
	restart int  // restart counter
	failure int  // Nak counter before we turn Naks into Rejects
	timer   bool // the restart timer runs
	lastReq []Option
}

// NewFSM makes an automaton in the Initial state.
func NewFSM(h Handler) *FSM { return &FSM{h: h} }

// State is the current state.
func (f *FSM) State() State { return f.state }

// TimerRunning reports whether the caller should call Timeout after the
// restart interval.
func (f *FSM) TimerRunning() bool { return f.timer }

// Actions (RFC 1661 section 4.4).
func (f *FSM) tlu() { f.h.Up() }
func (f *FSM) tld() { f.h.Down() }
func (f *FSM) tls() {}
func (f *FSM) tlf() { f.h.Finished() }

func (f *FSM) irc(configure bool) {
	f.restart = DefaultMaxTerminate
	if configure {
		f.restart = DefaultMaxConfigure
		f.failure = DefaultMaxFailure
	}
	f.timer = true
}

func (f *FSM) zrc() { f.restart, f.timer = 0, true }

func (f *FSM) scr() {
	f.id++
	f.lastReq = f.h.Options()
	f.restart--
	f.timer = true
	f.h.Send(Packet{Code: CodeConfigureRequest, ID: f.id, Data: AppendOptions(nil, f.lastReq)})
}

func (f *FSM) str() {
	f.id++
	f.restart--
	f.timer = true
	f.h.Send(Packet{Code: CodeTerminateRequest, ID: f.id})
}

func (f *FSM) sta(id byte) { f.h.Send(Packet{Code: CodeTerminateAck, ID: id}) }

// Up, Down, Open and Close are the administrative and lower-layer events.
func (f *FSM) Up() {
	switch f.state {
	case Initial:
		f.state = Closed
	case Starting:
		f.irc(true)
		f.scr()
		f.state = ReqSent
	}
}

func (f *FSM) Down() {
	switch f.state {
	case Closed:
		f.state = Initial
	case Stopped:
		f.tls()
		f.state = Starting
	case Closing:
		f.state = Initial
	case Stopping, ReqSent, AckRcvd, AckSent:
		f.state = Starting
	case Opened:
		f.tld()
		f.state = Starting
	}
	f.timer = false
}

func (f *FSM) Open() {
	switch f.state {
	case Initial:
		f.tls()
		f.state = Starting
	case Closed:
		f.irc(true)
		f.scr()
		f.state = ReqSent
	case Closing:
		f.state = Stopping
	}
}

func (f *FSM) Close() {
	switch f.state {
	case Starting:
		f.tlf()
		f.state = Initial
	case Stopped:
		f.state = Closed
	case Stopping:
		f.state = Closing
	case ReqSent, AckRcvd, AckSent:
		f.irc(false)
		f.str()
		f.state = Closing
	case Opened:
		f.tld()
		f.irc(false)
		f.str()
		f.state = Closing
	}
}

// Timeout is the restart timer's expiry: TO+ while the counter lasts,
// else TO-.
func (f *FSM) Timeout() {
	if !f.timer {
		return
	}
	if f.restart > 0 {
		switch f.state {
		case Closing, Stopping:
			f.str()
		case ReqSent, AckRcvd:
			f.scr()
			f.state = ReqSent
		case AckSent:
			f.scr()
		}
		return
	}
	f.timer = false
	switch f.state {
	case Closing:
		f.tlf()
		f.state = Closed
	case Stopping, ReqSent, AckRcvd, AckSent:
		f.tlf()
		f.state = Stopped
	}
}

// Input feeds a received control packet of this protocol. Codes the
// automaton does not know are answered with Code-Reject (RUC).
func (f *FSM) Input(p Packet) error {
	switch p.Code {
	case CodeConfigureRequest:
		opts, err := ParseOptions(p.Data)
		if err != nil {
			return err
		}
		f.rcr(p.ID, opts)
	case CodeConfigureAck:
		if p.ID != f.id || !samePayload(p.Data, AppendOptions(nil, f.lastReq)) {
			return nil // not an answer to our request (RFC 1661 section 5.2)
		}
		f.rca()
	case CodeConfigureNak, CodeConfigureReject:
		if p.ID != f.id {
			return nil
		}
		opts, err := ParseOptions(p.Data)
		if err != nil {
			return err
		}
		if p.Code == CodeConfigureNak {
			f.h.Nakked(opts)
		} else {
			f.h.Rejected(opts)
		}
		f.rcn()
	case CodeTerminateRequest:
		f.rtr(p.ID)
	case CodeTerminateAck:
		f.rta()
	case CodeCodeReject, CodeProtocolReject:
		f.rxj(p)
	case CodeEchoRequest, CodeEchoReply, CodeDiscardRequest:
		// RXR: LCP's handler answers echoes itself; the state stays.
	default:
		f.h.Send(Packet{Code: CodeCodeReject, ID: f.id + 1, Data: p.Append(nil)})
	}
	return nil
}

func samePayload(a, b []byte) bool { return string(a) == string(b) }

// afterRequest is the state after answering a request: Ack-Sent when we
// acked it (RCR+), Req-Sent when we did not (RCR-).
func afterRequest(good bool) State {
	if good {
		return AckSent
	}
	return ReqSent
}

// rcr: RCR+ when the handler acks the request, RCR- otherwise.
func (f *FSM) rcr(id byte, opts []Option) {
	verdict, reply := f.h.Check(opts)
	good := verdict == Ack
	if !good && verdict == Nak {
		// RFC 1661 section 4.6: after Max-Failure Naks, Reject instead,
		// so a peer that insists cannot keep us going round.
		if f.failure <= 0 {
			verdict = Reject
		} else {
			f.failure--
		}
	}
	answer := func() {
		switch verdict {
		case Ack:
			f.h.Send(Packet{Code: CodeConfigureAck, ID: id, Data: AppendOptions(nil, opts)})
		case Nak:
			f.h.Send(Packet{Code: CodeConfigureNak, ID: id, Data: AppendOptions(nil, reply)})
		case Reject:
			f.h.Send(Packet{Code: CodeConfigureReject, ID: id, Data: AppendOptions(nil, reply)})
		}
	}
	switch f.state {
	case Closed:
		f.sta(id)
	case Stopped:
		f.irc(true)
		f.scr()
		answer()
		f.state = afterRequest(good)
	case ReqSent, AckSent:
		answer()
		f.state = afterRequest(good)
	case AckRcvd:
		answer()
		if good {
			f.tlu()
			f.timer = false
			f.state = Opened
		}
	case Opened:
		f.tld()
		f.scr()
		answer()
		f.state = afterRequest(good)
	}
}

func (f *FSM) rca() {
	switch f.state {
	case Closed, Stopped:
		f.sta(f.id)
	case ReqSent:
		f.irc(true)
		f.state = AckRcvd
	case AckRcvd:
		f.scr() // crossed connection
		f.state = ReqSent
	case AckSent:
		f.irc(true)
		f.tlu()
		f.timer = false
		f.state = Opened
	case Opened:
		f.tld()
		f.scr()
		f.state = ReqSent
	}
}

func (f *FSM) rcn() {
	switch f.state {
	case Closed, Stopped:
		f.sta(f.id)
	case ReqSent, AckSent:
		f.irc(true)
		f.scr()
	case AckRcvd:
		f.scr()
		f.state = ReqSent
	case Opened:
		f.tld()
		f.scr()
		f.state = ReqSent
	}
}

func (f *FSM) rtr(id byte) {
	switch f.state {
	case Closed, Stopped, Closing, Stopping, ReqSent:
		f.sta(id)
	case AckRcvd, AckSent:
		f.sta(id)
		f.state = ReqSent
	case Opened:
		f.tld()
		f.zrc()
		f.sta(id)
		f.state = Stopping
	}
}

func (f *FSM) rta() {
	switch f.state {
	case Closing:
		f.tlf()
		f.timer = false
		f.state = Closed
	case Stopping:
		f.tlf()
		f.timer = false
		f.state = Stopped
	case AckRcvd:
		f.state = ReqSent
	case Opened:
		f.tld()
		f.scr()
		f.state = ReqSent
	}
}

// rxj: a Code-Reject or Protocol-Reject. Rejecting a code the automaton
// needs (Configure-* or Terminate-*) is catastrophic (RXJ-); anything
// else is fine (RXJ+).
func (f *FSM) rxj(p Packet) {
	rejected := byte(0)
	if len(p.Data) > 0 {
		rejected = p.Data[0]
	}
	if p.Code == CodeProtocolReject || rejected < CodeConfigureRequest || rejected > CodeTerminateAck {
		return // RXJ+: nothing changes (the caller stops sending that protocol)
	}
	switch f.state {
	case Closed, Stopped:
		f.tlf()
	case Closing:
		f.tlf()
		f.state = Closed
	case Stopping, ReqSent, AckRcvd, AckSent:
		f.tlf()
		f.state = Stopped
	case Opened:
		f.tld()
		f.irc(false)
		f.str()
		f.state = Stopping
	}
	f.timer = f.state == Stopping
}

// String shows the state, for logs.
func (f *FSM) String() string { return fmt.Sprintf("fsm(%v, id %d)", f.state, f.id) }
