package ike

import (
	"errors"
	"fmt"

	"github.com/gatehouse/gatehouse/ike/wire"
)

// PayloadType is an ISAKMP payload type (RFC 2408 section 3.1, RFC 3947,
// the NAT-T drafts, draft-ietf-ipsec-isakmp-gss-auth).
type PayloadType uint8

// Payload types.
const (
	PayloadNone       PayloadType = 0
	PayloadSA         PayloadType = 1
	PayloadProposal   PayloadType = 2
	PayloadTransform  PayloadType = 3
	PayloadKE         PayloadType = 4
	PayloadID         PayloadType = 5
	PayloadCert       PayloadType = 6
	PayloadCertReq    PayloadType = 7
	PayloadHash       PayloadType = 8
	PayloadSig        PayloadType = 9
	PayloadNonce      PayloadType = 10
	PayloadNotify     PayloadType = 11
	PayloadDelete     PayloadType = 12
	PayloadVendorID   PayloadType = 13
	PayloadNATD       PayloadType = 20  // RFC 3947
	PayloadNATOA      PayloadType = 21  // RFC 3947
	PayloadGSS        PayloadType = 129 // draft-ietf-ipsec-isakmp-gss-auth
	PayloadNATDDraft  PayloadType = 130 // draft-ietf-ipsec-nat-t-ike-02/03
	PayloadNATOADraft PayloadType = 131
	PayloadFragment   PayloadType = 132 // IKEv1 fragmentation (Cisco/Microsoft)
	maxPayloadsPerMsg             = 64
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadProposal: "P", PayloadTransform: "T", PayloadKE: "KE",
	PayloadID: "ID", PayloadCert: "CERT", PayloadCertReq: "CR", PayloadHash: "HASH", PayloadSig: "SIG",
	PayloadNonce: "No", PayloadNotify: "N", PayloadDelete: "D", PayloadVendorID: "VID", PayloadNATD: "NAT-D",
	PayloadNATOA: "NAT-OA", PayloadGSS: "GSS", PayloadNATDDraft: "NAT-D(draft)", PayloadNATOADraft: "NAT-OA(draft)",
	PayloadFragment: "FRAG",
}

func (t PayloadType) String() string { return wire.Name(payloadNames, t, "payload") }

// ExchangeType is the ISAKMP exchange type (RFC 2408 section 3.1, RFC 2409).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeMain          ExchangeType = 2 // Identity Protection
	ExchangeAggressive    ExchangeType = 4
	ExchangeInformational ExchangeType = 5
	ExchangeTransaction   ExchangeType = 6 // mode config
	ExchangeQuick         ExchangeType = 32
	ExchangeNewGroup      ExchangeType = 33
)

func (e ExchangeType) String() string {
	switch e {
	case ExchangeMain:
		return "main mode"
	case ExchangeAggressive:
		return "aggressive mode"
	case ExchangeInformational:
		return "informational"
	case ExchangeTransaction:
		return "transaction"
	case ExchangeQuick:
		return "quick mode"
	case ExchangeNewGroup:
		return "new group mode"
	}
	return fmt.Sprintf("exchange(%d)", uint8(e))
}

// Header flags (RFC 2408 section 3.1).
const (
	FlagEncryption = 0x01
	FlagCommit     = 0x02
	FlagAuthOnly   = 0x04
)

// HeaderLen is the fixed ISAKMP header; GenericHeaderLen precedes every
// payload (the layout IKEv2 shares, package wire).
const (
	HeaderLen        = wire.HeaderLen
	GenericHeaderLen = wire.GenericHeaderLen
	// Version is major 1, minor 0.
	Version = 0x10
	// MaxMessageLen bounds what we accept and build: one UDP datagram.
	MaxMessageLen = wire.MaxMessageLen
)

// Errors the codec returns; every decode error wraps ErrMalformed.
var (
	ErrMalformed   = errors.New("malformed ISAKMP message")
	ErrVersion     = errors.New("unsupported ISAKMP version")
	ErrPayloadType = errors.New("unknown payload type")
)

// Cookie is an ISAKMP cookie (SPI of an IKEv1 SA).
type Cookie [8]byte

// Header is the ISAKMP header: SPIi and SPIr are the initiator's and
// responder's cookies.
type Header = wire.Header[Cookie, PayloadType, ExchangeType]

// ParseHeader decodes the header at the front of b and checks that the
// message length fits the datagram; another major version is ErrVersion
// (RFC 2408 section 5.1). Bytes after Length are not part of the message.
func ParseHeader(b []byte) (Header, error) {
	return wire.ParseHeader[Cookie, PayloadType, ExchangeType](b, 1, ErrMalformed, ErrVersion)
}
