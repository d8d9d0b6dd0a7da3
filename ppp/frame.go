package ppp

import (
	"encoding/binary"
	"fmt"
)

// PPP protocol numbers (IANA "PPP DLL Protocol Numbers").
const (
	ProtoIPv4   uint16 = 0x0021
	ProtoIPv6   uint16 = 0x0057
	ProtoIPCP   uint16 = 0x8021
	ProtoIPv6CP uint16 = 0x8057
	ProtoCCP    uint16 = 0x80fd
	ProtoLCP    uint16 = 0xc021
	ProtoPAP    uint16 = 0xc023
	ProtoCHAP   uint16 = 0xc223
	ProtoEAP    uint16 = 0xc227
)

// ParseFrame reads a PPP frame as it arrives over L2TP (RFC 2661 section
// 5.4: no flags, no FCS). The address and control bytes FF 03 may be
// there or not (RFC 1662 section 3.2, ACFC), and the protocol may be
// one byte (RFC 1661 section 6.5, PFC): a first byte with its low bit set
// is a whole protocol number.
func ParseFrame(b []byte) (proto uint16, payload []byte, err error) {
	if len(b) >= 2 && b[0] == 0xff && b[1] == 0x03 {
		b = b[2:]
	}
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if b[0]&1 == 1 {
		return uint16(b[0]), b[1:], nil
	}
	if len(b) < 2 || b[1]&1 == 0 {
		return 0, nil, fmt.Errorf("%w: invalid protocol field % x", ErrMalformed, b[:min(2, len(b))])
	}
	return binary.BigEndian.Uint16(b), b[2:], nil
}

// AppendFrameHeader writes FF 03 (unless acfc) and the protocol, in one
// byte where pfc allows it.
func AppendFrameHeader(b []byte, proto uint16, acfc, pfc bool) []byte {
	if !acfc {
		b = append(b, 0xff, 0x03)
	}
	if pfc && proto < 0x100 && proto&1 == 1 {
		return append(b, byte(proto))
	}
	return binary.BigEndian.AppendUint16(b, proto)
}

// Control packet codes shared by LCP, IPCP and the other control
// protocols (RFC 1661 section 5), and CHAP/PAP's (RFC 1994, RFC 1334).
const (
	CodeConfigureRequest = 1
	CodeConfigureAck     = 2
	CodeConfigureNak     = 3
	CodeConfigureReject  = 4
	CodeTerminateRequest = 5
	CodeTerminateAck     = 6
	CodeCodeReject       = 7
	CodeProtocolReject   = 8 // LCP only
	CodeEchoRequest      = 9
	CodeEchoReply        = 10
	CodeDiscardRequest   = 11
)

// Packet is a control packet: code, identifier and data (RFC 1661
// section 5).
type Packet struct {
	Code, ID byte
	Data     []byte
}

// ParsePacket decodes a control packet. Bytes past its Length are padding
// and ignored (RFC 1661 section 5).
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 4 {
		return Packet{}, fmt.Errorf("%w: control packet of %d bytes", ErrMalformed, len(b))
	}
	l := int(binary.BigEndian.Uint16(b[2:]))
	if l < 4 || l > len(b) {
		return Packet{}, fmt.Errorf("%w: control packet says %d bytes, has %d", ErrMalformed, l, len(b))
	}
	return Packet{Code: b[0], ID: b[1], Data: b[4:l]}, nil
}

// Append encodes the packet.
func (p Packet) Append(b []byte) []byte {
	b = append(b, p.Code, p.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(4+len(p.Data)))
	return append(b, p.Data...)
}

// Option is a configuration option (RFC 1661 section 6).
type Option struct {
	Type byte
	Data []byte
}

// ParseOptions decodes the options of a Configure-Request, -Ack, -Nak or
// -Reject.
func ParseOptions(b []byte) ([]Option, error) {
	var out []Option
	for len(b) > 0 {
		if len(b) < 2 || b[1] < 2 || int(b[1]) > len(b) {
			return nil, fmt.Errorf("%w: option % x", ErrMalformed, b[:min(2, len(b))])
		}
		out = append(out, Option{Type: b[0], Data: b[2:b[1]]})
		b = b[b[1]:]
		if len(out) > 64 {
			return nil, fmt.Errorf("%w: more than 64 options", ErrMalformed)
		}
	}
	return out, nil
}

// AppendOptions encodes options.
func AppendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = append(b, o.Type, byte(2+len(o.Data)))
		b = append(b, o.Data...)
	}
	return b
}

// CHAP codes (RFC 1994 section 4).
const (
	CHAPChallenge = 1
	CHAPResponse  = 2
	CHAPSuccess   = 3
	CHAPFailure   = 4
)

// ParseCHAPValue splits a Challenge or Response: Value-Size, Value, Name.
func ParseCHAPValue(data []byte) (value []byte, name string, err error) {
	if len(data) < 1 || int(data[0]) > len(data)-1 || data[0] == 0 {
		return nil, "", fmt.Errorf("%w: CHAP value", ErrMalformed)
	}
	return data[1 : 1+data[0]], string(data[1+data[0]:]), nil
}

// AppendCHAPValue encodes Value-Size, Value, Name.
func AppendCHAPValue(b, value []byte, name string) []byte {
	b = append(b, byte(len(value)))
	return append(append(b, value...), name...)
}

// PAP codes (RFC 1334 section 2.2).
const (
	PAPRequest = 1
	PAPAck     = 2
	PAPNak     = 3
)

// ParsePAPRequest reads Peer-ID and Password.
func ParsePAPRequest(data []byte) (user, password string, err error) {
	if len(data) < 1 || int(data[0]) > len(data)-1 {
		return "", "", fmt.Errorf("%w: PAP peer-id", ErrMalformed)
	}
	user, rest := string(data[1:1+data[0]]), data[1+data[0]:]
	if len(rest) < 1 || int(rest[0]) != len(rest)-1 {
		return "", "", fmt.Errorf("%w: PAP password", ErrMalformed)
	}
	return user, string(rest[1:]), nil
}

// AppendPAPRequest encodes Peer-ID and Password.
func AppendPAPRequest(b []byte, user, password string) []byte {
	b = append(append(b, byte(len(user))), user...)
	return append(append(b, byte(len(password))), password...)
}

// ParsePAPMessage reads an Ack's or Nak's message. Some servers send an
// empty Ack without even the Msg-Length byte: that is an empty message.
func ParsePAPMessage(data []byte) string {
	if len(data) < 1 || int(data[0]) > len(data)-1 {
		return ""
	}
	return string(data[1 : 1+data[0]])
}
