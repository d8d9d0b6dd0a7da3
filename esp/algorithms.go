package esp

import (
	"errors"
	"fmt"
	"strings"
)

// Protocol is the IPsec protocol of an offer.
type Protocol uint8

// IP protocol numbers (IANA) double as our protocol identifiers.
const (
	ProtoESP Protocol = 50
	ProtoAH  Protocol = 51
)

func (p Protocol) String() string {
	switch p {
	case ProtoESP:
		return "esp"
	case ProtoAH:
		return "ah"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Encryption describes an ESP cipher. TransformID is the IKEv1 ESP transform
// identifier (RFC 2407 section 4.4.4, RFC 4106 section 8.4), 0 for a
// cipher IKEv1 has none for; IKEv2ID is the IKEv2 one where it differs in
// meaning (ChaCha20-Poly1305, RFC 7634 section 2, is IKEv2 only).
type Encryption struct {
	Name        string
	TransformID uint16
	IKEv2ID     uint16
	KeyBits     int
	SaltBytes   int
	AEAD        bool
	// Legacy ciphers are refused unless the operator enables legacy algorithms.
	Legacy bool
}

// IKEv2Encr is the cipher's IKEv2 Transform Type 1 ID: IANA numbers ESP
// transforms and IKEv2 ciphers alike, but for the ciphers IKEv1 never had.
func (e *Encryption) IKEv2Encr() uint16 {
	if e.IKEv2ID != 0 {
		return e.IKEv2ID
	}
	return e.TransformID
}

// Integrity describes an HMAC for ESP or AH. AuthAlgorithm is the IKEv1 phase 2
// "Authentication Algorithm" attribute value (RFC 2407 section 4.5); AHTransform
// is the AH transform identifier (RFC 2407 section 4.4.3); IKEv2ID is IKEv2's
// Transform Type 3 ID (RFC 7296 section 3.3.2, RFC 4868).
type Integrity struct {
	Name          string
	AuthAlgorithm uint16
	AHTransform   uint16
	IKEv2ID       uint16
	KeyBytes      int
	ICVBytes      int
}

var encryptions = []Encryption{
	{Name: "aes128gcm16", TransformID: 20, KeyBits: 128, SaltBytes: 4, AEAD: true},
	{Name: "aes256gcm16", TransformID: 20, KeyBits: 256, SaltBytes: 4, AEAD: true},
	{Name: "chacha20poly1305", IKEv2ID: 28, KeyBits: 256, SaltBytes: 4, AEAD: true},
	{Name: "aes128", TransformID: 12, KeyBits: 128},
	{Name: "aes256", TransformID: 12, KeyBits: 256},
	{Name: "3des", TransformID: 3, KeyBits: 192, Legacy: true},
	{Name: "null", TransformID: 11},
}

var integrities = []Integrity{
	{Name: "sha1", AuthAlgorithm: 2, AHTransform: 3, IKEv2ID: 2, KeyBytes: 20, ICVBytes: 12},
	{Name: "sha256", AuthAlgorithm: 5, AHTransform: 5, IKEv2ID: 12, KeyBytes: 32, ICVBytes: 16},
}

// ErrUnknownAlgorithm is returned for names outside the catalogue.
var ErrUnknownAlgorithm = errors.New("unknown algorithm")

// ErrWeakAlgorithm is returned for algorithms RFC 8221 says must not be used.
var ErrWeakAlgorithm = errors.New("algorithm refused as too weak")

// weak names are recognised only to refuse them with a clear reason.
var weak = map[string]string{
	"des": "DES (56-bit keys) is broken (RFC 8221 section 5)",
	"md5": "HMAC-MD5 is not allowed (RFC 8221 section 6)",
}

// Suite is one parsed ESP or AH offer.
type Suite struct {
	Protocol   Protocol
	Encryption *Encryption // nil for AH
	Integrity  *Integrity  // nil for AEAD ciphers
}

func (s Suite) String() string {
	if s.Protocol == ProtoAH {
		return "ah-" + s.Integrity.Name
	}
	if s.Integrity == nil {
		return s.Encryption.Name
	}
	return s.Encryption.Name + "-" + s.Integrity.Name
}

// Legacy reports whether the suite needs legacy algorithms enabled.
func (s Suite) Legacy() bool { return s.Encryption != nil && s.Encryption.Legacy }

// IKEv1 reports whether IKEv1 can negotiate the suite (its cipher has an
// IKEv1 transform identifier; AH has no cipher).
func (s Suite) IKEv1() bool { return s.Encryption == nil || s.Encryption.TransformID != 0 }

// ErrNotIKEv1 is a suite IKEv1 cannot negotiate.
var ErrNotIKEv1 = errors.New("no IKEv1 transform")

// CheckIKEv1 says why IKEv1 cannot negotiate s, and what to use instead
// (nil when it can).
func CheckIKEv1(s Suite) error {
	if s.IKEv1() {
		return nil
	}
	return fmt.Errorf("%w for %s: RFC 7634 defines it for IKEv2 only, and IKEv1 peers such as strongSwan refuse it (NO-PROPOSAL-CHOSEN); use aes128gcm16 or aes256gcm16",
		ErrNotIKEv1, s)
}

// EncryptionNames lists the cipher names ParseSuite accepts.
func EncryptionNames() []string {
	out := make([]string, len(encryptions))
	for i, e := range encryptions {
		out[i] = e.Name
	}
	return out
}

// IntegrityNames lists the integrity names ParseSuite accepts.
func IntegrityNames() []string {
	out := make([]string, len(integrities))
	for i, a := range integrities {
		out[i] = a.Name
	}
	return out
}

// ParseSuite parses an offer in strongSwan-like notation: "aes128gcm16",
// "aes256-sha256", "esp-aes128-sha1", "ah-sha256". AEAD ciphers take no
// integrity; CBC and NULL ciphers need one.
func ParseSuite(text string) (Suite, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(text)), "-")
	proto := ProtoESP
	switch parts[0] {
	case "esp":
		parts = parts[1:]
	case "ah":
		proto = ProtoAH
		parts = parts[1:]
	}
	if len(parts) == 0 || parts[0] == "" {
		return Suite{}, fmt.Errorf("%q: empty offer", text)
	}
	for _, p := range parts {
		if why, ok := weak[p]; ok {
			return Suite{}, fmt.Errorf("%q: %w: %s", text, ErrWeakAlgorithm, why)
		}
	}
	if proto == ProtoAH {
		if len(parts) != 1 {
			return Suite{}, fmt.Errorf("%q: AH takes one integrity algorithm (ah-sha1, ah-sha256)", text)
		}
		integ, err := lookupIntegrity(parts[0])
		if err != nil {
			return Suite{}, fmt.Errorf("%q: %w", text, err)
		}
		return Suite{Protocol: ProtoAH, Integrity: integ}, nil
	}
	enc, err := lookupEncryption(parts[0])
	if err != nil {
		return Suite{}, fmt.Errorf("%q: %w", text, err)
	}
	s := Suite{Protocol: ProtoESP, Encryption: enc}
	switch {
	case enc.AEAD && len(parts) == 1:
	case enc.AEAD:
		return Suite{}, fmt.Errorf("%q: %s is an AEAD cipher and takes no integrity algorithm", text, enc.Name)
	case len(parts) == 2:
		if s.Integrity, err = lookupIntegrity(parts[1]); err != nil {
			return Suite{}, fmt.Errorf("%q: %w", text, err)
		}
	default:
		return Suite{}, fmt.Errorf("%q: %s needs one integrity algorithm (one of %s)", text, enc.Name, strings.Join(IntegrityNames(), ", "))
	}
	return s, nil
}

func lookupEncryption(name string) (*Encryption, error) {
	for i := range encryptions {
		if encryptions[i].Name == name {
			return &encryptions[i], nil
		}
	}
	return nil, fmt.Errorf("%w: cipher %q (known: %s)", ErrUnknownAlgorithm, name, strings.Join(EncryptionNames(), ", "))
}

func lookupIntegrity(name string) (*Integrity, error) {
	for i := range integrities {
		if integrities[i].Name == name {
			return &integrities[i], nil
		}
	}
	return nil, fmt.Errorf("%w: integrity %q (known: %s)", ErrUnknownAlgorithm, name, strings.Join(IntegrityNames(), ", "))
}

// LookupESP finds the ESP suite an IKEv1 transform describes: transform
// id, key length in bits (0 when the attribute is absent) and
// authentication algorithm (0 for none).
func LookupESP(transformID uint16, keyBits int, authAlg uint16) (Suite, error) {
	var s Suite
	for i := range encryptions {
		e := &encryptions[i]
		if e.TransformID != 0 && e.TransformID == transformID && (e.KeyBits == keyBits || (keyBits == 0 && (e.Name == "3des" || e.Name == "null"))) {
			s = Suite{Protocol: ProtoESP, Encryption: e}
			break
		}
	}
	if s.Encryption == nil {
		return Suite{}, fmt.Errorf("%w: ESP transform %d with a %d-bit key", ErrUnknownAlgorithm, transformID, keyBits)
	}
	switch {
	case s.Encryption.AEAD && authAlg == 0:
		return s, nil
	case s.Encryption.AEAD:
		return Suite{}, fmt.Errorf("%w: %s with authentication algorithm %d", ErrUnknownAlgorithm, s.Encryption.Name, authAlg)
	}
	for i := range integrities {
		if integrities[i].AuthAlgorithm == authAlg {
			s.Integrity = &integrities[i]
			return s, nil
		}
	}
	return Suite{}, fmt.Errorf("%w: ESP authentication algorithm %d", ErrUnknownAlgorithm, authAlg)
}
