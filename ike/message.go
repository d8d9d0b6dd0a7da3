package ike

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/ike/wire"
)

// NotifyType is a notify message type (RFC 2408 section 3.14.1, RFC 2407
// section 4.6.3, RFC 3706).
type NotifyType uint16

// Notify types Gatehouse sends or acts on.
const (
	NotifyInvalidPayloadType     NotifyType = 1
	NotifyDOINotSupported        NotifyType = 2
	NotifySituationNotSupported  NotifyType = 3
	NotifyInvalidCookie          NotifyType = 4
	NotifyInvalidMajorVersion    NotifyType = 5
	NotifyInvalidExchangeType    NotifyType = 7
	NotifyInvalidFlags           NotifyType = 8
	NotifyInvalidMessageID       NotifyType = 9
	NotifyInvalidProtocolID      NotifyType = 10
	NotifyInvalidSPI             NotifyType = 11
	NotifyInvalidTransformID     NotifyType = 12
	NotifyAttributesNotSupported NotifyType = 13
	NotifyNoProposalChosen       NotifyType = 14
	NotifyBadProposalSyntax      NotifyType = 15
	NotifyPayloadMalformed       NotifyType = 16
	NotifyInvalidKeyInformation  NotifyType = 17
	NotifyInvalidIDInformation   NotifyType = 18
	NotifyInvalidCertificate     NotifyType = 20
	NotifyInvalidHashInformation NotifyType = 23
	NotifyAuthenticationFailed   NotifyType = 24
	NotifyInvalidSignature       NotifyType = 25
	NotifyUnsupportedExchange    NotifyType = 29
	NotifyResponderLifetime      NotifyType = 24576
	NotifyReplayStatus           NotifyType = 24577
	NotifyInitialContact         NotifyType = 24578
	NotifyRUThere                NotifyType = 36136 // RFC 3706
	NotifyRUThereAck             NotifyType = 36137
)

var notifyNames = map[NotifyType]string{
	NotifyInvalidPayloadType: "INVALID-PAYLOAD-TYPE", NotifyDOINotSupported: "DOI-NOT-SUPPORTED",
	NotifySituationNotSupported: "SITUATION-NOT-SUPPORTED", NotifyInvalidCookie: "INVALID-COOKIE",
	NotifyInvalidMajorVersion: "INVALID-MAJOR-VERSION", NotifyInvalidExchangeType: "INVALID-EXCHANGE-TYPE",
	NotifyInvalidFlags: "INVALID-FLAGS", NotifyInvalidMessageID: "INVALID-MESSAGE-ID",
	NotifyInvalidProtocolID: "INVALID-PROTOCOL-ID", NotifyInvalidSPI: "INVALID-SPI",
	NotifyInvalidTransformID: "INVALID-TRANSFORM-ID", NotifyAttributesNotSupported: "ATTRIBUTES-NOT-SUPPORTED",
	NotifyNoProposalChosen: "NO-PROPOSAL-CHOSEN", NotifyBadProposalSyntax: "BAD-PROPOSAL-SYNTAX",
	NotifyPayloadMalformed: "PAYLOAD-MALFORMED", NotifyInvalidKeyInformation: "INVALID-KEY-INFORMATION",
	NotifyInvalidIDInformation: "INVALID-ID-INFORMATION", NotifyInvalidCertificate: "INVALID-CERTIFICATE",
	NotifyInvalidHashInformation: "INVALID-HASH-INFORMATION", NotifyAuthenticationFailed: "AUTHENTICATION-FAILED",
	NotifyInvalidSignature: "INVALID-SIGNATURE", NotifyUnsupportedExchange: "UNSUPPORTED-EXCHANGE-TYPE",
	NotifyResponderLifetime: "RESPONDER-LIFETIME", NotifyReplayStatus: "REPLAY-STATUS",
	NotifyInitialContact: "INITIAL-CONTACT", NotifyRUThere: "R-U-THERE", NotifyRUThereAck: "R-U-THERE-ACK",
}

func (n NotifyType) String() string { return wire.Name(notifyNames, n, "notify") }

// IsError reports whether the notify is an error (types below 8192, RFC
// 2408 section 3.14.1).
func (n NotifyType) IsError() bool { return n < 8192 }

// splitGeneric cuts the payload at the front of b: its body, what follows,
// and the next payload type from its generic header. The reserved byte
// should be zero; RFC 2408 section 3.2 asks receivers to check it, but
// peers have sent junk there, and nothing depends on it: we ignore it.
func splitGeneric(b []byte) (body, rest []byte, next PayloadType, err error) {
	body, rest, np, _, err := wire.SplitPayload(b, ErrMalformed)
	return body, rest, PayloadType(np), err
}

// appendGeneric writes a generic header, then the body, then the length.
func appendGeneric(b []byte, next PayloadType, body func([]byte) []byte) []byte {
	return wire.AppendPayload(b, uint8(next), body)
}

// DecodePayloads decodes the payload chain that starts with type first.
// Each payload is verified. Bytes after the last payload are an error
// unless padded is set (decrypted bodies carry cipher padding, RFC 2408
// section 3.1).
func DecodePayloads(first PayloadType, b []byte, padded bool) ([]Payload, error) {
	var out []Payload
	for next := first; next != PayloadNone; {
		if len(out) == maxPayloadsPerMsg {
			return nil, fmt.Errorf("%w: more than %d payloads", ErrMalformed, maxPayloadsPerMsg)
		}
		body, rest, np, err := splitGeneric(b)
		if err != nil {
			return nil, fmt.Errorf("%v payload: %w", next, err)
		}
		p, err := decodePayload(next, body)
		if err != nil {
			return nil, fmt.Errorf("%v payload: %w", next, err)
		}
		if err := p.verify(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		out = append(out, p)
		b, next = rest, np
	}
	if len(b) != 0 && !padded {
		return nil, fmt.Errorf("%w: %d bytes after the last payload", ErrMalformed, len(b))
	}
	return out, nil
}

func decodePayload(t PayloadType, b []byte) (Payload, error) {
	switch t {
	case PayloadSA:
		return parseSA(b)
	case PayloadGSS:
		return ParseGSS(b)
	case PayloadFragment:
		return ParseFragment(b)
	case PayloadKE, PayloadHash, PayloadSig, PayloadNonce, PayloadVendorID, PayloadNATD, PayloadNATDDraft:
		return &Data{T: t, Data: b}, nil
	case PayloadID:
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: ID of %d bytes", ErrMalformed, len(b))
		}
		return &ID{IDType: b[0], Protocol: b[1], Port: binary.BigEndian.Uint16(b[2:]), Data: b[4:]}, nil
	case PayloadCert:
		if len(b) < 1 {
			return nil, fmt.Errorf("%w: empty CERT", ErrMalformed)
		}
		return &Cert{Encoding: b[0], Data: b[1:]}, nil
	case PayloadCertReq:
		if len(b) < 1 {
			return nil, fmt.Errorf("%w: empty CR", ErrMalformed)
		}
		return &CertReq{CertType: b[0], Authority: b[1:]}, nil
	case PayloadNotify:
		if len(b) < 8 || len(b) < 8+int(b[5]) {
			return nil, fmt.Errorf("%w: notify of %d bytes", ErrMalformed, len(b))
		}
		spi := int(b[5])
		return &Notify{DOI: binary.BigEndian.Uint32(b), Protocol: b[4], Kind: NotifyType(binary.BigEndian.Uint16(b[6:])),
			SPI: b[8 : 8+spi], Data: b[8+spi:]}, nil
	case PayloadDelete:
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: delete of %d bytes", ErrMalformed, len(b))
		}
		d := &Delete{DOI: binary.BigEndian.Uint32(b), Protocol: b[4], SPISize: b[5]}
		n, size := int(binary.BigEndian.Uint16(b[6:])), int(d.SPISize)
		if size == 0 || len(b)-8 != n*size {
			return nil, fmt.Errorf("%w: delete says %d SPIs of %d bytes in %d bytes", ErrMalformed, n, size, len(b)-8)
		}
		for i := 0; i < n; i++ {
			d.SPIs = append(d.SPIs, b[8+i*size:8+(i+1)*size])
		}
		return d, nil
	case PayloadNATOA, PayloadNATOADraft:
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: NAT-OA of %d bytes", ErrMalformed, len(b))
		}
		want := map[uint8]int{IDIPv4Addr: 4, IDIPv6Addr: 16}[b[0]]
		if want == 0 || len(b)-4 != want {
			return nil, fmt.Errorf("%w: NAT-OA of type %d with %d address bytes", ErrMalformed, b[0], len(b)-4)
		}
		a, _ := netip.AddrFromSlice(b[4:])
		return &NATOA{T: t, Addr: a}, nil
	case PayloadProposal, PayloadTransform:
		return nil, fmt.Errorf("%w: %v outside an SA payload", ErrMalformed, t)
	}
	return &Unknown{T: t, Data: b}, nil
}

// AppendPayloads encodes a payload chain; the caller puts the first type
// in whatever precedes it (the header's next payload).
func AppendPayloads(b []byte, ps []Payload) []byte {
	return wire.AppendChain(b, ps, Payload.appendBody)
}

// FirstType is the type to put in the header for a chain.
func FirstType(ps []Payload) PayloadType { return wire.First(ps) }

// Message is a decoded message: the header and, for a cleartext message,
// its payloads. An encrypted message's Body is the ciphertext.
type Message struct {
	Header
	Payloads []Payload
	Body     []byte
}

// Decode decodes a datagram. An encrypted message (FlagEncryption) is
// left as ciphertext in Body; the caller decrypts it and calls
// DecodePayloads with padded set.
func Decode(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	m := &Message{Header: h, Body: b[HeaderLen:h.Length]}
	if h.Flags&FlagEncryption != 0 {
		return m, nil
	}
	if m.Payloads, err = DecodePayloads(h.NextPayload, m.Body, false); err != nil {
		return nil, err
	}
	return m, nil
}

// Encode builds a cleartext message from its header and payloads; Length
// and NextPayload are filled in.
func (m *Message) Encode() ([]byte, error) {
	h := m.Header
	h.NextPayload = FirstType(m.Payloads)
	h.Flags &^= FlagEncryption
	b := h.Append(make([]byte, 0, 512))
	return wire.Finish(AppendPayloads(b, m.Payloads))
}

// Find returns the first payload of type t, or nil.
func Find(ps []Payload, t PayloadType) Payload { return wire.Find(ps, t) }

// PayloadBodies walks a decoded chain again and returns each payload's
// body as it was on the wire, and where the chain ends in b. Hashes cover
// payloads as sent (SAi_b, IDii_b, the quick mode payloads), which a
// re-encoding might not reproduce. Call it only on a chain DecodePayloads
// accepted.
func PayloadBodies(first PayloadType, b []byte) (bodies [][]byte, end int) {
	off := 0
	for next := first; next != PayloadNone; {
		body, rest, np, err := splitGeneric(b[off:])
		if err != nil {
			break
		}
		bodies = append(bodies, body)
		off = len(b) - len(rest)
		next = np
	}
	return bodies, off
}
