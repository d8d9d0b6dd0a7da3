package l2tp

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
)

// MessageType is a control message type (RFC 2661 section 3.2).
type MessageType uint16

const (
	MsgSCCRQ   MessageType = 1
	MsgSCCRP   MessageType = 2
	MsgSCCCN   MessageType = 3
	MsgStopCCN MessageType = 4
	MsgHello   MessageType = 6
	MsgOCRQ    MessageType = 7
	MsgOCRP    MessageType = 8
	MsgOCCN    MessageType = 9
	MsgICRQ    MessageType = 10
	MsgICRP    MessageType = 11
	MsgICCN    MessageType = 12
	MsgCDN     MessageType = 14
	MsgWEN     MessageType = 15
	MsgSLI     MessageType = 16
	// MsgZLB is not a wire type: a control header with no AVPs (section 5.8).
	MsgZLB MessageType = 0
)

var msgNames = map[MessageType]string{MsgZLB: "ZLB", MsgSCCRQ: "SCCRQ", MsgSCCRP: "SCCRP", MsgSCCCN: "SCCCN",
	MsgStopCCN: "StopCCN", MsgHello: "HELLO", MsgOCRQ: "OCRQ", MsgOCRP: "OCRP", MsgOCCN: "OCCN", MsgICRQ: "ICRQ",
	MsgICRP: "ICRP", MsgICCN: "ICCN", MsgCDN: "CDN", MsgWEN: "WEN", MsgSLI: "SLI"}

func (t MessageType) String() string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return fmt.Sprintf("message-type-%d", uint16(t))
}

// sessionMessage reports whether a message type belongs to a session
// (and so an unknown mandatory AVP in it clears the session, not the
// tunnel: section 4.1).
func (t MessageType) sessionMessage() bool {
	switch t {
	case MsgOCRQ, MsgOCRP, MsgOCCN, MsgICRQ, MsgICRP, MsgICCN, MsgCDN, MsgWEN, MsgSLI:
		return true
	}
	return false
}

// AVPType is an attribute type of the IETF vendor (section 4.4; 46 is RFC
// 3145's).
type AVPType uint16

const (
	AVPMessageType        AVPType = 0
	AVPResultCode         AVPType = 1
	AVPProtocolVersion    AVPType = 2
	AVPFramingCaps        AVPType = 3
	AVPBearerCaps         AVPType = 4
	AVPTieBreaker         AVPType = 5
	AVPFirmwareRevision   AVPType = 6
	AVPHostName           AVPType = 7
	AVPVendorName         AVPType = 8
	AVPAssignedTunnelID   AVPType = 9
	AVPReceiveWindowSize  AVPType = 10
	AVPChallenge          AVPType = 11
	AVPQ931Cause          AVPType = 12
	AVPChallengeResponse  AVPType = 13
	AVPAssignedSessionID  AVPType = 14
	AVPCallSerialNumber   AVPType = 15
	AVPMinimumBPS         AVPType = 16
	AVPMaximumBPS         AVPType = 17
	AVPBearerType         AVPType = 18
	AVPFramingType        AVPType = 19
	AVPCalledNumber       AVPType = 21
	AVPCallingNumber      AVPType = 22
	AVPSubAddress         AVPType = 23
	AVPTxConnectSpeed     AVPType = 24
	AVPPhysicalChannelID  AVPType = 25
	AVPInitialRecvLCP     AVPType = 26
	AVPLastSentLCP        AVPType = 27
	AVPLastRecvLCP        AVPType = 28
	AVPProxyAuthType      AVPType = 29
	AVPProxyAuthName      AVPType = 30
	AVPProxyAuthChallenge AVPType = 31
	AVPProxyAuthID        AVPType = 32
	AVPProxyAuthResponse  AVPType = 33
	AVPCallErrors         AVPType = 34
	AVPACCM               AVPType = 35
	AVPRandomVector       AVPType = 36
	AVPPrivateGroupID     AVPType = 37
	AVPRxConnectSpeed     AVPType = 38
	AVPSequencingRequired AVPType = 39
	AVPPPPDisconnectCause AVPType = 46
)

// avpSpec is what section 4.4 says of an AVP's value: its name and length
// bounds (max 0: up to the 1023-byte AVP limit), and whether it may be
// hidden.
type avpSpec struct {
	name     string
	min, max int
	noHide   bool
}

const maxAVPValue = 1023 - 6

var avpSpecs = map[AVPType]avpSpec{
	AVPMessageType:        {"Message Type", 2, 2, true},
	AVPResultCode:         {"Result Code", 2, 0, true},
	AVPProtocolVersion:    {"Protocol Version", 2, 2, true},
	AVPFramingCaps:        {"Framing Capabilities", 4, 4, false},
	AVPBearerCaps:         {"Bearer Capabilities", 4, 4, false},
	AVPTieBreaker:         {"Tie Breaker", 8, 8, true},
	AVPFirmwareRevision:   {"Firmware Revision", 2, 2, false},
	AVPHostName:           {"Host Name", 1, 0, true},
	AVPVendorName:         {"Vendor Name", 0, 0, false},
	AVPAssignedTunnelID:   {"Assigned Tunnel ID", 2, 2, false},
	AVPReceiveWindowSize:  {"Receive Window Size", 2, 2, true},
	AVPChallenge:          {"Challenge", 1, 0, false},
	AVPQ931Cause:          {"Q.931 Cause Code", 3, 0, true},
	AVPChallengeResponse:  {"Challenge Response", 16, 16, false},
	AVPAssignedSessionID:  {"Assigned Session ID", 2, 2, false},
	AVPCallSerialNumber:   {"Call Serial Number", 4, 4, true},
	AVPMinimumBPS:         {"Minimum BPS", 4, 4, true},
	AVPMaximumBPS:         {"Maximum BPS", 4, 4, true},
	AVPBearerType:         {"Bearer Type", 4, 4, false},
	AVPFramingType:        {"Framing Type", 4, 4, false},
	AVPCalledNumber:       {"Called Number", 0, 0, false},
	AVPCallingNumber:      {"Calling Number", 0, 0, false},
	AVPSubAddress:         {"Sub-Address", 0, 0, false},
	AVPTxConnectSpeed:     {"Tx Connect Speed", 4, 4, false},
	AVPPhysicalChannelID:  {"Physical Channel ID", 4, 4, false},
	AVPInitialRecvLCP:     {"Initial Received LCP CONFREQ", 0, 0, false},
	AVPLastSentLCP:        {"Last Sent LCP CONFREQ", 0, 0, false},
	AVPLastRecvLCP:        {"Last Received LCP CONFREQ", 0, 0, false},
	AVPProxyAuthType:      {"Proxy Authen Type", 2, 2, false},
	AVPProxyAuthName:      {"Proxy Authen Name", 0, 0, false},
	AVPProxyAuthChallenge: {"Proxy Authen Challenge", 1, 0, false},
	AVPProxyAuthID:        {"Proxy Authen ID", 2, 2, false},
	AVPProxyAuthResponse:  {"Proxy Authen Response", 0, 0, false},
	AVPCallErrors:         {"Call Errors", 26, 26, false},
	AVPACCM:               {"ACCM", 10, 10, false},
	AVPRandomVector:       {"Random Vector", 1, 0, true},
	AVPPrivateGroupID:     {"Private Group ID", 0, 0, false},
	AVPRxConnectSpeed:     {"Rx Connect Speed", 4, 4, false},
	AVPSequencingRequired: {"Sequencing Required", 0, 0, true},
	AVPPPPDisconnectCause: {"PPP Disconnect Cause Code", 5, 0, false},
}

func (t AVPType) String() string {
	if s, ok := avpSpecs[t]; ok {
		return s.name
	}
	return fmt.Sprintf("AVP %d", uint16(t))
}

// AVP is one attribute-value pair (section 4.1). Value is the clear value:
// a hidden AVP is revealed when parsed and hidden when appended.
type AVP struct {
	Mandatory bool
	Hidden    bool
	Vendor    uint16
	Type      AVPType
	Value     []byte
}

const (
	avpM       = 0x8000
	avpH       = 0x4000
	avpRsvd    = 0x3c00
	avpLenMask = 0x03ff
)

// ErrUnknownMandatory is an unrecognised AVP with the M bit: the tunnel
// (or, in a session message, the session) must be cleared (section 4.1).
var ErrUnknownMandatory = errors.New("unknown mandatory AVP")

// ErrNoSecret is a hidden AVP or a challenge where no tunnel secret is
// configured.
var ErrNoSecret = errors.New("no tunnel secret configured")

// parseAVPs decodes the AVPs of a control message, revealing hidden ones
// with secret (section 4.3). Unknown AVPs without the M bit are skipped;
// with it, the error wraps ErrUnknownMandatory.
func parseAVPs(b []byte, secret []byte) ([]AVP, error) {
	var out []AVP
	var rv []byte // the last Random Vector seen (section 4.3)
	for len(b) > 0 {
		if len(b) < 6 {
			return nil, fmt.Errorf("%w: %d stray bytes after the AVPs", ErrMalformed, len(b))
		}
		w := binary.BigEndian.Uint16(b)
		n := int(w & avpLenMask)
		if n < 6 || n > len(b) {
			return nil, fmt.Errorf("%w: AVP length %d with %d bytes left", ErrMalformed, n, len(b))
		}
		a := AVP{Mandatory: w&avpM != 0, Hidden: w&avpH != 0, Vendor: binary.BigEndian.Uint16(b[2:]),
			Type: AVPType(binary.BigEndian.Uint16(b[4:])), Value: b[6:n]}
		b = b[n:]
		spec, known := avpSpecs[a.Type]
		if a.Vendor != 0 || !known || w&avpRsvd != 0 {
			// Reserved bits set make an AVP unrecognised (section 4.1).
			if a.Mandatory {
				return nil, fmt.Errorf("%w: vendor %d type %d", ErrUnknownMandatory, a.Vendor, a.Type)
			}
			continue
		}
		if a.Hidden && spec.noHide {
			return nil, fmt.Errorf("%w: %v AVP must not be hidden (section 4.4)", ErrMalformed, a.Type)
		}
		if a.Hidden {
			if len(secret) == 0 {
				return nil, fmt.Errorf("%w: hidden %v AVP", ErrNoSecret, a.Type)
			}
			if rv == nil {
				return nil, fmt.Errorf("%w: hidden %v AVP with no Random Vector before it", ErrMalformed, a.Type)
			}
			v, err := reveal(a.Type, a.Value, secret, rv)
			if err != nil {
				return nil, err
			}
			a.Value = v
		}
		if len(a.Value) < spec.min || (spec.max > 0 && len(a.Value) > spec.max) {
			return nil, fmt.Errorf("%w: %v AVP of %d bytes", ErrMalformed, a.Type, len(a.Value))
		}
		if a.Type == AVPRandomVector {
			rv = a.Value
		}
		out = append(out, a)
	}
	return out, nil
}

// hideStream XORs b in place with the section 4.3 key stream: MD5(type |
// secret | RV) for the first 16 bytes, then MD5(secret | previous
// ciphertext block). decrypt says whether b is ciphertext.
func hideStream(t AVPType, b, secret, rv []byte, decrypt bool) {
	h := md5.New()
	h.Write([]byte{byte(t >> 8), byte(t)})
	h.Write(secret)
	h.Write(rv)
	var key [16]byte
	h.Sum(key[:0])
	for i := 0; i < len(b); i += 16 {
		blk := b[i:min(i+16, len(b))]
		var cipher [16]byte
		if decrypt {
			copy(cipher[:], blk)
		}
		for j := range blk {
			blk[j] ^= key[j]
		}
		if !decrypt {
			copy(cipher[:], blk)
		}
		h.Reset()
		h.Write(secret)
		h.Write(cipher[:len(blk)])
		h.Sum(key[:0])
	}
}

func reveal(t AVPType, v, secret, rv []byte) ([]byte, error) {
	clear := append([]byte(nil), v...)
	hideStream(t, clear, secret, rv, true)
	if len(clear) < 2 {
		return nil, fmt.Errorf("%w: hidden %v AVP of %d bytes", ErrMalformed, t, len(v))
	}
	n := int(binary.BigEndian.Uint16(clear))
	if n > len(clear)-2 {
		// Most likely a wrong secret: the length came out as noise.
		return nil, fmt.Errorf("%w: hidden %v AVP does not decode (tunnel secrets differ?)", ErrMalformed, t)
	}
	return clear[2 : 2+n], nil
}

// appendAVP encodes a; a hidden one is hidden with secret and rv, which
// the caller has sent in a Random Vector AVP just before.
func appendAVP(b []byte, a AVP, secret, rv []byte, pad int) []byte {
	v := a.Value
	if a.Hidden {
		h := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(v)+pad), uint16(len(v)))
		h = append(h, v...)
		h = append(h, make([]byte, pad)...)
		hideStream(a.Type, h, secret, rv, false)
		v = h
	}
	w := uint16(6 + len(v))
	if a.Mandatory {
		w |= avpM
	}
	if a.Hidden {
		w |= avpH
	}
	b = binary.BigEndian.AppendUint16(b, w)
	b = binary.BigEndian.AppendUint16(b, a.Vendor)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Type))
	return append(b, v...)
}

// ChallengeResponse is section 4.4.3's response to a tunnel challenge:
// MD5 over the message type of the message carrying the response (2 in
// an SCCRP, 3 in an SCCCN), the secret, and the challenge, as CHAP does.
func ChallengeResponse(t MessageType, secret, challenge []byte) [16]byte {
	h := md5.New()
	h.Write([]byte{byte(t)})
	h.Write(secret)
	h.Write(challenge)
	var out [16]byte
	h.Sum(out[:0])
	return out
}
