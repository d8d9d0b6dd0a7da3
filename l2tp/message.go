package l2tp

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Message is a decoded control message: its type and its AVPs in order
// (the Message Type AVP itself is not in AVPs). A ZLB has type MsgZLB and
// no AVPs.
type Message struct {
	Type MessageType
	AVPs []AVP
}

// ParseMessage decodes the AVPs of a control message (the payload after
// the header). The first AVP must be the Message Type (section 4.4.1).
// An unknown message type whose Message Type AVP has the M bit is an
// error wrapping ErrUnknownMandatory; without it, the message is returned
// for the caller to ignore.
func ParseMessage(payload []byte, secret []byte) (Message, error) {
	if len(payload) == 0 {
		return Message{Type: MsgZLB}, nil
	}
	avps, err := parseAVPs(payload, secret)
	if err != nil {
		return Message{}, err
	}
	if len(avps) == 0 || avps[0].Type != AVPMessageType {
		return Message{}, fmt.Errorf("%w: the first AVP is not the Message Type", ErrMalformed)
	}
	t := MessageType(binary.BigEndian.Uint16(avps[0].Value))
	if _, ok := msgNames[t]; !ok || t == MsgZLB {
		if avps[0].Mandatory {
			return Message{Type: t}, fmt.Errorf("%w: message type %d", ErrUnknownMandatory, uint16(t))
		}
	}
	return Message{Type: t, AVPs: avps[1:]}, nil
}

// Get returns the first AVP of type t.
func (m *Message) Get(t AVPType) ([]byte, bool) {
	for _, a := range m.AVPs {
		if a.Type == t {
			return a.Value, true
		}
	}
	return nil, false
}

// Has reports whether the message carries t.
func (m *Message) Has(t AVPType) bool { _, ok := m.Get(t); return ok }

// Uint16 returns a 2-byte AVP's value.
func (m *Message) Uint16(t AVPType) (uint16, bool) {
	v, ok := m.Get(t)
	if !ok || len(v) < 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(v), true
}

// Uint32 returns a 4-byte AVP's value.
func (m *Message) Uint32(t AVPType) (uint32, bool) {
	v, ok := m.Get(t)
	if !ok || len(v) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(v), true
}

// String returns a text AVP's value.
func (m *Message) String(t AVPType) string { v, _ := m.Get(t); return string(v) }

// require checks that the AVPs section 6 makes mandatory in this message
// are present.
func (m *Message) require(ts ...AVPType) error {
	var missing []string
	for _, t := range ts {
		if !m.Has(t) {
			missing = append(missing, t.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %v without %s (section 6)", ErrMalformed, m.Type, strings.Join(missing, ", "))
	}
	return nil
}

// Add appends an AVP; mandatory per section 4.4's column.
func (m *Message) Add(t AVPType, mandatory bool, v []byte) *Message {
	m.AVPs = append(m.AVPs, AVP{Mandatory: mandatory, Type: t, Value: v})
	return m
}

// AddUint16 and AddUint32 append numeric AVPs.
func (m *Message) AddUint16(t AVPType, mandatory bool, v uint16) *Message {
	return m.Add(t, mandatory, binary.BigEndian.AppendUint16(nil, v))
}

func (m *Message) AddUint32(t AVPType, mandatory bool, v uint32) *Message {
	return m.Add(t, mandatory, binary.BigEndian.AppendUint32(nil, v))
}

// AppendAVPs encodes the message's AVPs, Message Type first. AVPs marked
// Hidden are hidden with secret (section 4.3) behind a fresh Random
// Vector from random; without a secret they go in the clear.
func (m *Message) AppendAVPs(b []byte, secret []byte, random func([]byte)) []byte {
	if m.Type == MsgZLB {
		return b
	}
	b = appendAVP(b, AVP{Mandatory: true, Type: AVPMessageType, Value: binary.BigEndian.AppendUint16(nil, uint16(m.Type))}, nil, nil, 0)
	var rv []byte
	for _, a := range m.AVPs {
		if a.Hidden && len(secret) == 0 {
			a.Hidden = false
		}
		if a.Hidden && rv == nil {
			rv = make([]byte, 16)
			random(rv)
			b = appendAVP(b, AVP{Mandatory: true, Type: AVPRandomVector, Value: rv}, nil, nil, 0)
		}
		pad := 0
		if a.Hidden {
			// A little random padding hides the true length (section 4.3).
			var p [1]byte
			random(p[:])
			pad = int(p[0] % 16)
			if 6+2+len(a.Value)+pad > 1023 {
				pad = 0
			}
		}
		b = appendAVP(b, a, secret, rv, pad)
	}
	return b
}

// Result Code values (section 4.4.2) for StopCCN...
const (
	StopClearConnection   = 1 // general request to clear the control connection
	StopGeneralError      = 2 // see the error code
	StopAlreadyExists     = 3
	StopNotAuthorized     = 4
	StopBadVersion        = 5
	StopShuttingDown      = 6
	StopFSMError          = 7
	CDNLostCarrier        = 1
	CDNGeneralError       = 2
	CDNAdmin              = 3
	CDNNoFacilitiesTemp   = 4
	CDNNoFacilitiesPerm   = 5
	CDNInvalidDestination = 6
	CDNTimeout            = 10
)

// ...and the general error codes.
const (
	ErrCodeNone          = 0
	ErrCodeNoTunnel      = 1
	ErrCodeLength        = 2
	ErrCodeOutOfRange    = 3
	ErrCodeNoResources   = 4
	ErrCodeBadSession    = 5
	ErrCodeVendor        = 6
	ErrCodeTryAnother    = 7
	ErrCodeUnknownMandat = 8
)

// Result is a Result Code AVP's content.
type Result struct {
	Result, Error uint16
	Message       string
}

func (r Result) String() string {
	s := fmt.Sprintf("result %d", r.Result)
	if r.Error != 0 {
		s += fmt.Sprintf(" error %d", r.Error)
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// Bytes encodes a Result Code AVP value.
func (r Result) Bytes() []byte {
	b := binary.BigEndian.AppendUint16(nil, r.Result)
	if r.Error != 0 || r.Message != "" {
		b = binary.BigEndian.AppendUint16(b, r.Error)
		b = append(b, r.Message...)
	}
	return b
}

// Result returns the message's Result Code.
func (m *Message) Result() (Result, bool) {
	v, ok := m.Get(AVPResultCode)
	if !ok {
		return Result{}, false
	}
	r := Result{Result: binary.BigEndian.Uint16(v)}
	if len(v) >= 4 {
		r.Error = binary.BigEndian.Uint16(v[2:])
		r.Message = string(v[4:])
	}
	return r, true
}

// PPPCause is RFC 3145's PPP Disconnect Cause Code AVP.
type PPPCause struct {
	Code      uint16
	Proto     uint16
	Direction byte
	Message   string
}

// Bytes encodes the AVP value.
func (c PPPCause) Bytes() []byte {
	b := binary.BigEndian.AppendUint16(nil, c.Code)
	b = binary.BigEndian.AppendUint16(b, c.Proto)
	return append(append(b, c.Direction), c.Message...)
}

// PPPCause returns the message's PPP Disconnect Cause Code.
func (m *Message) PPPCause() (PPPCause, bool) {
	v, ok := m.Get(AVPPPPDisconnectCause)
	if !ok {
		return PPPCause{}, false
	}
	return PPPCause{Code: binary.BigEndian.Uint16(v), Proto: binary.BigEndian.Uint16(v[2:]), Direction: v[4], Message: string(v[5:])}, true
}
