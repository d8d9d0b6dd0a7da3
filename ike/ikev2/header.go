package ikev2

import (
	"errors"

	"github.com/gatehouse/gatehouse/ike/wire"
)

// ExchangeType is an IKEv2 exchange (RFC 7296 section 3.1).
type ExchangeType uint8

// Exchange types.
const (
	ExchangeIKESAInit     ExchangeType = 34
	ExchangeIKEAuth       ExchangeType = 35
	ExchangeCreateChildSA ExchangeType = 36
	ExchangeInformational ExchangeType = 37
)

var exchangeNames = map[ExchangeType]string{
	ExchangeIKESAInit: "IKE_SA_INIT", ExchangeIKEAuth: "IKE_AUTH", ExchangeCreateChildSA: "CREATE_CHILD_SA",
	ExchangeInformational: "INFORMATIONAL",
}

func (e ExchangeType) String() string { return wire.Name(exchangeNames, e, "exchange") }

// Header flags (section 3.1): the original initiator's, the "higher
// version" and the response bits.
const (
	FlagInitiator = 0x08
	FlagVersion   = 0x10
	FlagResponse  = 0x20
)

// Sizes of the layout IKEv1 shares (package wire).
const (
	HeaderLen        = wire.HeaderLen
	GenericHeaderLen = wire.GenericHeaderLen
	MaxMessageLen    = wire.MaxMessageLen
	// Version is major 2, minor 0.
	Version = 0x20
	// maxPayloads bounds a chain, so a message of tiny payloads cannot
	// make us build thousands of them.
	maxPayloads = 64
)

// Errors the codec returns. Every decode error wraps ErrMalformed, but
// for a major version we do not speak (ErrVersion: answer
// INVALID_MAJOR_VERSION, section 2.5) and a critical payload we do not
// know (an *UnsupportedCriticalError: answer UNSUPPORTED_CRITICAL_PAYLOAD).
var (
	ErrMalformed = errors.New("malformed IKEv2 message")
	ErrVersion   = errors.New("unsupported IKE major version")
)

// SPI is an IKE SA's SPI (section 3.1).
type SPI [8]byte

type wireHeader = wire.Header[SPI, PayloadType, ExchangeType]

// Header is the IKE header (section 3.1).
type Header wireHeader

// Response reports whether the message is a response.
func (h *Header) Response() bool { return h.Flags&FlagResponse != 0 }

// FromInitiator reports whether the original initiator sent it.
func (h *Header) FromInitiator() bool { return h.Flags&FlagInitiator != 0 }

// Append writes the header; Length is taken as given.
func (h *Header) Append(b []byte) []byte { return (*wireHeader)(h).Append(b) }

// PeekVersion returns the major version of the message in b, so that a
// responder on one port can hand it to the IKEv1 or the IKEv2 engine; 0
// if b is too short to hold a header.
func PeekVersion(b []byte) uint8 {
	if len(b) < HeaderLen {
		return 0
	}
	return b[17] >> 4
}

// ParseHeader decodes the header at the front of b and checks that the
// message length fits the datagram. Bytes after Length are not part of the
// message.
func ParseHeader(b []byte) (Header, error) {
	h, err := wire.ParseHeader[SPI, PayloadType, ExchangeType](b, 2, ErrMalformed, ErrVersion)
	return Header(h), err
}
