// Package eap is EAP (RFC 3748) as IKEv2 carries it in EAP payloads (RFC
// 7296 section 2.16): the packet codec, and the methods a VPN server and
// its clients run, each side as a state machine fed one packet at a time.
// EAP-MSCHAPv2 (mschapv2.go) builds on package ppp's MS-CHAPv2. Nothing
// here knows IKE, users files or RADIUS: the caller moves the packets and
// says whether a user's response is right.
package eap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Codes (RFC 3748 section 4).
const (
	CodeRequest  uint8 = 1
	CodeResponse uint8 = 2
	CodeSuccess  uint8 = 3
	CodeFailure  uint8 = 4
)

// Method types (RFC 3748 section 5, IANA's EAP registry).
const (
	TypeIdentity     uint8 = 1
	TypeNotification uint8 = 2
	TypeNak          uint8 = 3
	TypeTLS          uint8 = 13
	TypeMSCHAPv2     uint8 = 26
)

// ErrMalformed is a packet that does not decode.
var ErrMalformed = errors.New("malformed EAP packet")

// Packet is one EAP packet. Requests and responses carry a Type and its
// Data; Success and Failure carry neither.
type Packet struct {
	Code uint8
	ID   uint8
	Type uint8
	Data []byte
}

// MaxLen bounds what we build and accept: an EAP payload in IKE, and a
// RADIUS EAP-Message run, stay far below it.
const MaxLen = 4096

// Decode reads one packet; bytes past its Length are ignored, as RFC 3748
// section 4.1 says of padding.
func Decode(b []byte) (*Packet, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	p := &Packet{Code: b[0], ID: b[1]}
	l := int(binary.BigEndian.Uint16(b[2:]))
	if l < 4 || l > len(b) || l > MaxLen {
		return nil, fmt.Errorf("%w: length %d in %d bytes", ErrMalformed, l, len(b))
	}
	switch p.Code {
	case CodeRequest, CodeResponse:
		if l < 5 {
			return nil, fmt.Errorf("%w: %s without a type", ErrMalformed, codeName(p.Code))
		}
		p.Type, p.Data = b[4], append([]byte(nil), b[5:l]...)
	case CodeSuccess, CodeFailure:
		if l != 4 {
			return nil, fmt.Errorf("%w: %s of %d bytes", ErrMalformed, codeName(p.Code), l)
		}
	default:
		return nil, fmt.Errorf("%w: code %d", ErrMalformed, p.Code)
	}
	return p, nil
}

// Encode writes the packet.
func (p *Packet) Encode() []byte {
	n := 4
	if p.Code == CodeRequest || p.Code == CodeResponse {
		n += 1 + len(p.Data)
	}
	b := make([]byte, 4, n)
	b[0], b[1] = p.Code, p.ID
	binary.BigEndian.PutUint16(b[2:], uint16(n))
	if n > 4 {
		b = append(append(b, p.Type), p.Data...)
	}
	return b
}

func codeName(c uint8) string {
	switch c {
	case CodeRequest:
		return "Request"
	case CodeResponse:
		return "Response"
	case CodeSuccess:
		return "Success"
	case CodeFailure:
		return "Failure"
	}
	return fmt.Sprintf("code %d", c)
}

func (p *Packet) String() string {
	if p.Code == CodeSuccess || p.Code == CodeFailure {
		return fmt.Sprintf("EAP-%s #%d", codeName(p.Code), p.ID)
	}
	return fmt.Sprintf("EAP %s #%d type %d (%d bytes)", codeName(p.Code), p.ID, p.Type, len(p.Data))
}

// outcome is how an exchange ended, which every method's two sides
// report alike.
type outcome struct {
	done bool
	msk  []byte
	user string
	err  error
}

// Done reports whether the exchange ended; Succeeded whether it ended
// with the peer authenticated (MSK then holds the key); User who the peer
// proved to be (a server's view); Err why it failed.
func (o *outcome) Done() bool      { return o.done }
func (o *outcome) Succeeded() bool { return o.done && o.err == nil && o.msk != nil }
func (o *outcome) MSK() []byte     { return o.msk }
func (o *outcome) User() string    { return o.user }
func (o *outcome) Err() error      { return o.err }

// identityRequest is a server's first packet, EAP-Request/Identity (RFC
// 3748 section 5.1), with a random identifier.
func identityRequest(rand io.Reader) (uint8, []byte, error) {
	var id [1]byte
	if _, err := io.ReadFull(rand, id[:]); err != nil {
		return 0, nil, err
	}
	return id[0], (&Packet{Code: CodeRequest, ID: id[0], Type: TypeIdentity}).Encode(), nil
}

// response answers a request with a packet of type t.
func response(req *Packet, t uint8, data []byte) []byte {
	return (&Packet{Code: CodeResponse, ID: req.ID, Type: t, Data: data}).Encode()
}

// peerStep answers what every peer answers alike (RFC 3748 section 5):
// EAP-Failure ends the exchange, Identity and Notification are answered,
// a request for another method gets a Nak naming ours. handled is false
// for EAP-Success and for our method's requests, which the method takes.
func (o *outcome) peerStep(p *Packet, identity string, method uint8) (resp []byte, handled bool, err error) {
	switch p.Code {
	case CodeSuccess:
		return nil, false, nil
	case CodeFailure:
		o.done = true
		if o.err == nil {
			o.err = ErrRejected
		}
		return nil, true, nil
	case CodeResponse:
		return nil, true, fmt.Errorf("%w: a response sent to the peer", ErrProtocol)
	}
	switch p.Type {
	case method:
		return nil, false, nil
	case TypeIdentity:
		return response(p, TypeIdentity, []byte(identity)), true, nil
	case TypeNotification:
		return response(p, TypeNotification, nil), true, nil
	}
	return response(p, TypeNak, []byte{method}), true, nil
}
