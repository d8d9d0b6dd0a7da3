// Package wire is the part of the message layout that IKEv1 (RFC 2408
// section 3) and IKEv2 (RFC 7296 section 3) share: the fixed header, the
// generic payload header and the payload chain's framing. Packages ike
// and ike/ikev2 give the fields their version's meanings.
package wire

import (
	"encoding/binary"
	"fmt"
)

// HeaderLen is the fixed header; GenericHeaderLen precedes every payload;
// MaxMessageLen bounds what we accept and build: one UDP datagram.
const (
	HeaderLen        = 28
	GenericHeaderLen = 4
	MaxMessageLen    = 65535
)

// Header is the fixed header, with the version's own types for the SPIs
// (IKEv1's cookies), payload types and exchange types.
type Header[S ~[8]byte, P ~uint8, E ~uint8] struct {
	SPIi, SPIr  S
	NextPayload P
	Version     uint8
	Exchange    E
	Flags       uint8
	MessageID   uint32
	Length      uint32
}

// ParseHeader decodes the header at the front of b. It refuses, wrapping
// the caller's malformed error, a datagram shorter than the header or
// than the length the header says, and a zero initiator SPI (never sent,
// RFC 2408 section 3.1, RFC 7296 section 3.1); it refuses another major
// version than major with the caller's version error. Bytes after Length
// are not part of the message.
func ParseHeader[S ~[8]byte, P ~uint8, E ~uint8](b []byte, major uint8, malformed, version error) (Header[S, P, E], error) {
	var h Header[S, P, E]
	if len(b) < HeaderLen {
		return h, fmt.Errorf("%w: %d bytes, shorter than the header", malformed, len(b))
	}
	copy(h.SPIi[:], b[0:8])
	copy(h.SPIr[:], b[8:16])
	h.NextPayload = P(b[16])
	h.Version = b[17]
	h.Exchange = E(b[18])
	h.Flags = b[19]
	h.MessageID = binary.BigEndian.Uint32(b[20:24])
	h.Length = binary.BigEndian.Uint32(b[24:28])
	if h.Version>>4 != major {
		return h, fmt.Errorf("%w: %d.%d", version, h.Version>>4, h.Version&0x0f)
	}
	if h.Length < HeaderLen || int64(h.Length) > int64(len(b)) || h.Length > MaxMessageLen {
		return h, fmt.Errorf("%w: header says %d bytes, datagram has %d", malformed, h.Length, len(b))
	}
	if h.SPIi == (S{}) {
		return h, fmt.Errorf("%w: zero initiator SPI", malformed)
	}
	return h, nil
}

// Append writes the header; Length is taken as given.
func (h *Header[S, P, E]) Append(b []byte) []byte {
	b = append(b, h.SPIi[:]...)
	b = append(b, h.SPIr[:]...)
	b = append(b, byte(h.NextPayload), h.Version, byte(h.Exchange), h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// SplitPayload cuts the payload at the front of b: its body, what
// follows, its generic header's next payload type and its second byte
// (reserved in IKEv1; the critical bit in IKEv2). A length that does not
// fit is refused, wrapping the caller's malformed error.
func SplitPayload(b []byte, malformed error) (body, rest []byte, next, flags uint8, err error) {
	if len(b) < GenericHeaderLen {
		return nil, nil, 0, 0, fmt.Errorf("%w: %d bytes, shorter than a payload header", malformed, len(b))
	}
	l := int(binary.BigEndian.Uint16(b[2:]))
	if l < GenericHeaderLen || l > len(b) {
		return nil, nil, 0, 0, fmt.Errorf("%w: payload length %d with %d bytes left", malformed, l, len(b))
	}
	return b[GenericHeaderLen:l], b[l:], b[0], b[1], nil
}

// AppendPayload writes a generic header naming next, then the body, then
// the payload's length.
func AppendPayload(b []byte, next uint8, body func([]byte) []byte) []byte {
	start := len(b)
	b = append(b, next, 0, 0, 0)
	b = body(b)
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// AppendChain encodes a payload chain, each payload's generic header
// naming the next one's type (the last names none). A payload that names
// something else (IKEv2's Encrypted payload names the first payload
// inside it, RFC 7296 section 3.14) says so with Next. The caller puts
// the first type in whatever precedes the chain (First).
func AppendChain[T ~uint8, P interface{ Type() T }](b []byte, ps []P, body func(P, []byte) []byte) []byte {
	for i, p := range ps {
		var next T
		if n, ok := any(p).(interface{ Next() T }); ok {
			next = n.Next()
		} else if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		b = AppendPayload(b, uint8(next), func(b []byte) []byte { return body(p, b) })
	}
	return b
}

// First is the type of a chain's first payload (0 for none), for the
// header or the payload before the chain.
func First[T ~uint8, P interface{ Type() T }](ps []P) T {
	if len(ps) == 0 {
		return 0
	}
	return ps[0].Type()
}

// Finish puts the message's length in its header, refusing a message
// larger than one datagram.
func Finish(b []byte) ([]byte, error) {
	if len(b) > MaxMessageLen {
		return nil, fmt.Errorf("message of %d bytes is too large", len(b))
	}
	binary.BigEndian.PutUint32(b[24:], uint32(len(b)))
	return b, nil
}

// Find returns the first payload of ps whose type is t, or the zero
// value (nil for an interface).
func Find[T comparable, P interface{ Type() T }](ps []P, t T) P {
	for _, p := range ps {
		if p.Type() == t {
			return p
		}
	}
	var zero P
	return zero
}

// Name is a protocol number's name from names, or kind(number) for one
// the table lacks: what the String methods of both IKE versions' payload,
// exchange and notify types print.
func Name[T ~uint8 | ~uint16](names map[T]string, v T, kind string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprintf("%s(%d)", kind, v)
}
