package ikev2

import (
	"encoding/binary"
	"fmt"

	"github.com/gatehouse/gatehouse/ike/wire"
)

// NotifyType is a Notify Message Type (section 3.10.1, RFC 7383, RFC
// 7427).
type NotifyType uint16

// Notify types: errors below 16384, status at or above it.
const (
	NotifyUnsupportedCriticalPayload NotifyType = 1
	NotifyInvalidIKESPI              NotifyType = 4
	NotifyInvalidMajorVersion        NotifyType = 5
	NotifyInvalidSyntax              NotifyType = 7
	NotifyInvalidMessageID           NotifyType = 9
	NotifyInvalidSPI                 NotifyType = 11
	NotifyNoProposalChosen           NotifyType = 14
	NotifyInvalidKEPayload           NotifyType = 17
	NotifyAuthenticationFailed       NotifyType = 24
	NotifySinglePairRequired         NotifyType = 34
	NotifyNoAdditionalSAs            NotifyType = 35
	NotifyInternalAddressFailure     NotifyType = 36
	NotifyFailedCPRequired           NotifyType = 37
	NotifyTSUnacceptable             NotifyType = 38
	NotifyInvalidSelectors           NotifyType = 39
	NotifyTemporaryFailure           NotifyType = 43
	NotifyChildSANotFound            NotifyType = 44

	NotifyInitialContact            NotifyType = 16384
	NotifySetWindowSize             NotifyType = 16385
	NotifyAdditionalTSPossible      NotifyType = 16386
	NotifyIPCompSupported           NotifyType = 16387
	NotifyNATDetectionSourceIP      NotifyType = 16388
	NotifyNATDetectionDestinationIP NotifyType = 16389
	NotifyCookie                    NotifyType = 16390
	NotifyUseTransportMode          NotifyType = 16391
	NotifyHTTPCertLookupSupported   NotifyType = 16392
	NotifyRekeySA                   NotifyType = 16393
	NotifyESPTFCPaddingNotSupported NotifyType = 16394
	NotifyNonFirstFragmentsAlso     NotifyType = 16395
	NotifyMobikeSupported           NotifyType = 16396 // RFC 4555
	NotifyAdditionalIP4Address      NotifyType = 16397
	NotifyAdditionalIP6Address      NotifyType = 16398
	NotifyNoAdditionalAddresses     NotifyType = 16399
	NotifyUpdateSAAddresses         NotifyType = 16400
	NotifyCookie2                   NotifyType = 16401
	NotifyNoNATsAllowed             NotifyType = 16402
	NotifyFragmentationSupported    NotifyType = 16430 // RFC 7383
	NotifySignatureHashAlgorithms   NotifyType = 16431 // RFC 7427
)

var notifyNames = map[NotifyType]string{
	NotifyUnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD", NotifyInvalidIKESPI: "INVALID_IKE_SPI",
	NotifyInvalidMajorVersion: "INVALID_MAJOR_VERSION", NotifyInvalidSyntax: "INVALID_SYNTAX",
	NotifyInvalidMessageID: "INVALID_MESSAGE_ID", NotifyInvalidSPI: "INVALID_SPI", NotifyNoProposalChosen: "NO_PROPOSAL_CHOSEN",
	NotifyInvalidKEPayload: "INVALID_KE_PAYLOAD", NotifyAuthenticationFailed: "AUTHENTICATION_FAILED",
	NotifySinglePairRequired: "SINGLE_PAIR_REQUIRED", NotifyNoAdditionalSAs: "NO_ADDITIONAL_SAS",
	NotifyInternalAddressFailure: "INTERNAL_ADDRESS_FAILURE", NotifyFailedCPRequired: "FAILED_CP_REQUIRED",
	NotifyTSUnacceptable: "TS_UNACCEPTABLE", NotifyInvalidSelectors: "INVALID_SELECTORS",
	NotifyTemporaryFailure: "TEMPORARY_FAILURE", NotifyChildSANotFound: "CHILD_SA_NOT_FOUND",
	NotifyInitialContact: "INITIAL_CONTACT", NotifySetWindowSize: "SET_WINDOW_SIZE",
	NotifyAdditionalTSPossible: "ADDITIONAL_TS_POSSIBLE", NotifyIPCompSupported: "IPCOMP_SUPPORTED",
	NotifyNATDetectionSourceIP: "NAT_DETECTION_SOURCE_IP", NotifyNATDetectionDestinationIP: "NAT_DETECTION_DESTINATION_IP",
	NotifyCookie: "COOKIE", NotifyUseTransportMode: "USE_TRANSPORT_MODE", NotifyHTTPCertLookupSupported: "HTTP_CERT_LOOKUP_SUPPORTED",
	NotifyRekeySA: "REKEY_SA", NotifyESPTFCPaddingNotSupported: "ESP_TFC_PADDING_NOT_SUPPORTED",
	NotifyNonFirstFragmentsAlso: "NON_FIRST_FRAGMENTS_ALSO", NotifyFragmentationSupported: "IKEV2_FRAGMENTATION_SUPPORTED",
	NotifyMobikeSupported: "MOBIKE_SUPPORTED", NotifyAdditionalIP4Address: "ADDITIONAL_IP4_ADDRESS",
	NotifyAdditionalIP6Address: "ADDITIONAL_IP6_ADDRESS", NotifyNoAdditionalAddresses: "NO_ADDITIONAL_ADDRESSES",
	NotifyUpdateSAAddresses: "UPDATE_SA_ADDRESSES", NotifyCookie2: "COOKIE2", NotifyNoNATsAllowed: "NO_NATS_ALLOWED",
	NotifySignatureHashAlgorithms: "SIGNATURE_HASH_ALGORITHMS",
}

func (n NotifyType) String() string { return wire.Name(notifyNames, n, "notify") }

// IsError reports whether the notify is an error (section 3.10.1).
func (n NotifyType) IsError() bool { return n < 16384 }

// DecodePayloads decodes the payload chain that starts with type first
// and verifies each payload. An unknown payload is skipped (kept as
// Unknown) unless its critical bit is set: then the message is refused
// with an *UnsupportedCriticalError (section 2.5). An Encrypted payload
// ends the chain: its next payload field names the first payload inside.
// Inside a decrypted SK payload, padding has already been removed.
func DecodePayloads(first PayloadType, b []byte) ([]Payload, error) {
	var out []Payload
	for t := first; t != PayloadNone; {
		if len(out) == maxPayloads {
			return nil, fmt.Errorf("%w: more than %d payloads", ErrMalformed, maxPayloads)
		}
		body, rest, np, flags, err := wire.SplitPayload(b, ErrMalformed)
		if err != nil {
			return nil, fmt.Errorf("%v payload: %w", t, err)
		}
		next, critical := PayloadType(np), flags&flagCritical != 0
		p, err := decodePayload(t, body, next)
		if err != nil {
			return nil, fmt.Errorf("%v payload: %w", t, err)
		}
		if _, unknown := p.(*Unknown); unknown && critical {
			return nil, &UnsupportedCriticalError{Type: t}
		}
		if err := p.verify(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		out = append(out, p)
		b = rest
		if t == PayloadSK || t == PayloadSKF {
			if len(b) != 0 {
				return nil, fmt.Errorf("%w: %d bytes after the %v payload, which must be last", ErrMalformed, len(b), t)
			}
			return out, nil
		}
		t = next
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last payload", ErrMalformed, len(b))
	}
	return out, nil
}

func decodePayload(t PayloadType, b []byte, next PayloadType) (Payload, error) {
	short := func(min int) error {
		if len(b) < min {
			return fmt.Errorf("%w: %v of %d bytes", ErrMalformed, t, len(b))
		}
		return nil
	}
	switch t {
	case PayloadSA:
		return parseSA(b)
	case PayloadKE:
		if err := short(4); err != nil {
			return nil, err
		}
		return &KE{Group: binary.BigEndian.Uint16(b), Data: b[4:]}, nil
	case PayloadIDi, PayloadIDr:
		if err := short(4); err != nil {
			return nil, err
		}
		return &ID{T: t, IDType: b[0], Data: b[4:]}, nil
	case PayloadCert:
		if err := short(1); err != nil {
			return nil, err
		}
		return &Cert{Encoding: b[0], Data: b[1:]}, nil
	case PayloadCertReq:
		if err := short(1); err != nil {
			return nil, err
		}
		return &CertReq{Encoding: b[0], Authority: b[1:]}, nil
	case PayloadAuth:
		if err := short(4); err != nil {
			return nil, err
		}
		return &Auth{Method: b[0], Data: b[4:]}, nil
	case PayloadNonce:
		return &Nonce{Data: b}, nil
	case PayloadNotify:
		if err := short(4); err != nil {
			return nil, err
		}
		spi := int(b[1])
		if 4+spi > len(b) {
			return nil, fmt.Errorf("%w: notify with a %d-byte SPI in %d bytes", ErrMalformed, spi, len(b))
		}
		return &Notify{Protocol: b[0], Kind: NotifyType(binary.BigEndian.Uint16(b[2:])), SPI: orNil(b[4 : 4+spi]), Data: orNil(b[4+spi:])}, nil
	case PayloadDelete:
		if err := short(4); err != nil {
			return nil, err
		}
		d := &Delete{Protocol: b[0]}
		size, n := int(b[1]), int(binary.BigEndian.Uint16(b[2:]))
		if (size == 0) != (n == 0) || (size != 0 && size != 4) || len(b)-4 != n*size {
			return nil, fmt.Errorf("%w: delete says %d SPIs of %d bytes in %d bytes", ErrMalformed, n, size, len(b)-4)
		}
		for i := 0; i < n; i++ {
			d.SPIs = append(d.SPIs, b[4+i*size:4+(i+1)*size])
		}
		return d, nil
	case PayloadVendorID:
		return &VendorID{Data: b}, nil
	case PayloadTSi, PayloadTSr:
		return parseTS(t, b)
	case PayloadSK:
		return &Encrypted{T: t, Inner: next, Data: orNil(b)}, nil
	case PayloadSKF:
		if err := short(4); err != nil {
			return nil, err
		}
		return &Encrypted{T: t, Inner: next, Number: binary.BigEndian.Uint16(b), Total: binary.BigEndian.Uint16(b[2:]), Data: orNil(b[4:])}, nil
	case PayloadCP:
		return parseCP(b)
	case PayloadEAP:
		return &EAP{Data: b}, nil
	}
	return &Unknown{T: t, Data: orNil(b)}, nil
}

// Message is a decoded message: the header and its payloads. A protected
// message ends with an *Encrypted payload, which the caller opens and
// decodes with DecodePayloads(e.Inner, plaintext).
type Message struct {
	Header
	Payloads []Payload
}

// Decode decodes a datagram holding one IKEv2 message.
func Decode(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	m := &Message{Header: h}
	if m.Payloads, err = DecodePayloads(h.NextPayload, b[HeaderLen:h.Length]); err != nil {
		return nil, err
	}
	return m, nil
}

// Encode builds the message; Length and NextPayload are filled in.
func (m *Message) Encode() ([]byte, error) {
	h := m.Header
	h.NextPayload = wire.First(m.Payloads)
	h.Version = Version
	b := h.Append(make([]byte, 0, 512))
	return wire.Finish(wire.AppendChain(b, m.Payloads, Payload.appendBody))
}

// Find returns the first payload of type t, or nil.
func Find(ps []Payload, t PayloadType) Payload { return wire.Find(ps, t) }

// Notifies returns the Notify payloads of kind k.
func Notifies(ps []Payload, k NotifyType) []*Notify {
	var out []*Notify
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.Kind == k {
			out = append(out, n)
		}
	}
	return out
}
