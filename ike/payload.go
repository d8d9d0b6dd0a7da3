package ike

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Payload is one decoded ISAKMP payload. Decoded payloads hold slices of
// the message they came from.
type Payload interface {
	Type() PayloadType
	// verify holds the limits the RFCs put on the payload's fields.
	verify() error
	appendBody(b []byte) []byte
}

// Protocol identifiers (RFC 2407 section 4.4.1).
const (
	ProtoISAKMP uint8 = 1
	ProtoAH     uint8 = 2
	ProtoESP    uint8 = 3
	ProtoIPComp uint8 = 4
)

// DOIIPsec is the IPsec domain of interpretation (RFC 2407 section 4.2);
// SitIdentityOnly the only situation we accept (section 4.2.1).
const (
	DOIIPsec        = 1
	SitIdentityOnly = 1
)

// Attribute is a data attribute (RFC 2408 section 3.3): basic (TV, a
// 16-bit value) or variable (TLV).
type Attribute struct {
	Type  uint16 // without the AF bit
	Basic bool
	Value uint16 // basic
	Data  []byte // variable
}

// Uint returns the attribute's value as a number: a basic value, or a
// variable one of at most 8 bytes (lifetimes may come either way, RFC 2407
// section 4.5).
func (a Attribute) Uint() (uint64, bool) {
	if a.Basic {
		return uint64(a.Value), true
	}
	if len(a.Data) == 0 || len(a.Data) > 8 {
		return 0, false
	}
	var v uint64
	for _, c := range a.Data {
		v = v<<8 | uint64(c)
	}
	return v, true
}

// BasicAttr and VarAttr build attributes.
func BasicAttr(t, v uint16) Attribute      { return Attribute{Type: t, Basic: true, Value: v} }
func VarAttr(t uint16, d []byte) Attribute { return Attribute{Type: t, Data: d} }

// UintAttr encodes a number in the shortest form: basic if it fits in 16
// bits, else variable with 4 bytes (how lifetimes are usually sent).
func UintAttr(t uint16, v uint64) Attribute {
	if v <= 0xffff {
		return BasicAttr(t, uint16(v))
	}
	if v <= 0xffffffff {
		return VarAttr(t, binary.BigEndian.AppendUint32(nil, uint32(v)))
	}
	return VarAttr(t, binary.BigEndian.AppendUint64(nil, v))
}

func parseAttributes(b []byte) ([]Attribute, error) {
	var attrs []Attribute
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: %d bytes of attribute", ErrMalformed, len(b))
		}
		t := binary.BigEndian.Uint16(b)
		v := binary.BigEndian.Uint16(b[2:])
		if t&0x8000 != 0 {
			attrs = append(attrs, Attribute{Type: t &^ 0x8000, Basic: true, Value: v})
			b = b[4:]
			continue
		}
		if int(v) > len(b)-4 {
			return nil, fmt.Errorf("%w: attribute %d says %d bytes, %d left", ErrMalformed, t, v, len(b)-4)
		}
		attrs = append(attrs, Attribute{Type: t, Data: b[4 : 4+v]})
		b = b[4+v:]
		if len(attrs) > 256 {
			return nil, fmt.Errorf("%w: more than 256 attributes", ErrMalformed)
		}
	}
	return attrs, nil
}

func appendAttributes(b []byte, attrs []Attribute) []byte {
	for _, a := range attrs {
		if a.Basic {
			b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
			b = binary.BigEndian.AppendUint16(b, a.Value)
			continue
		}
		b = binary.BigEndian.AppendUint16(b, a.Type&^0x8000)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Data)))
		b = append(b, a.Data...)
	}
	return b
}

// Transform is a transform within a proposal (RFC 2408 section 3.6).
type Transform struct {
	Number, ID uint8
	Attributes []Attribute
}

// Attr returns the first attribute of type t.
func (t *Transform) Attr(typ uint16) (Attribute, bool) {
	for _, a := range t.Attributes {
		if a.Type == typ {
			return a, true
		}
	}
	return Attribute{}, false
}

// SAProposal is a proposal within an SA payload (RFC 2408 section 3.5).
type SAProposal struct {
	Number     uint8
	Protocol   uint8
	SPI        []byte
	Transforms []Transform
}

// SA is the Security Association payload (RFC 2408 section 3.4, RFC 2407
// section 4.6.1).
type SA struct {
	DOI, Situation uint32
	Proposals      []SAProposal
}

func (*SA) Type() PayloadType { return PayloadSA }

func parseSA(b []byte) (*SA, error) {
	if len(b) < 8 {
		return nil, fmt.Errorf("%w: SA payload of %d bytes", ErrMalformed, len(b))
	}
	sa := &SA{DOI: binary.BigEndian.Uint32(b), Situation: binary.BigEndian.Uint32(b[4:])}
	b = b[8:]
	next := PayloadProposal
	for next != PayloadNone {
		if next != PayloadProposal {
			return nil, fmt.Errorf("%w: %v inside an SA payload", ErrMalformed, next)
		}
		body, rest, np, err := splitGeneric(b)
		if err != nil {
			return nil, fmt.Errorf("proposal: %w", err)
		}
		p, err := parseProposal(body)
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, p)
		if len(sa.Proposals) > 64 {
			return nil, fmt.Errorf("%w: more than 64 proposals", ErrMalformed)
		}
		b, next = rest, np
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last proposal", ErrMalformed, len(b))
	}
	return sa, nil
}

func parseProposal(b []byte) (SAProposal, error) {
	if len(b) < 4 {
		return SAProposal{}, fmt.Errorf("%w: proposal of %d bytes", ErrMalformed, len(b))
	}
	p := SAProposal{Number: b[0], Protocol: b[1]}
	spiSize, count := int(b[2]), int(b[3])
	if len(b) < 4+spiSize {
		return SAProposal{}, fmt.Errorf("%w: proposal SPI of %d bytes does not fit", ErrMalformed, spiSize)
	}
	p.SPI = b[4 : 4+spiSize]
	b = b[4+spiSize:]
	next := PayloadTransform
	for next != PayloadNone {
		if next != PayloadTransform {
			return SAProposal{}, fmt.Errorf("%w: %v inside a proposal", ErrMalformed, next)
		}
		body, rest, np, err := splitGeneric(b)
		if err != nil {
			return SAProposal{}, fmt.Errorf("transform: %w", err)
		}
		if len(body) < 4 {
			return SAProposal{}, fmt.Errorf("%w: transform of %d bytes", ErrMalformed, len(body))
		}
		attrs, err := parseAttributes(body[4:])
		if err != nil {
			return SAProposal{}, fmt.Errorf("transform %d: %w", body[0], err)
		}
		p.Transforms = append(p.Transforms, Transform{Number: body[0], ID: body[1], Attributes: attrs})
		b, next = rest, np
		if len(p.Transforms) > 255 {
			return SAProposal{}, fmt.Errorf("%w: more than 255 transforms", ErrMalformed)
		}
	}
	if len(b) != 0 {
		return SAProposal{}, fmt.Errorf("%w: %d bytes after the last transform", ErrMalformed, len(b))
	}
	if len(p.Transforms) != count {
		return SAProposal{}, fmt.Errorf("%w: proposal %d says %d transforms, has %d", ErrMalformed, p.Number, count, len(p.Transforms))
	}
	return p, nil
}

func (sa *SA) verify() error {
	if sa.DOI != DOIIPsec {
		return fmt.Errorf("SA: DOI %d, want %d (IPsec)", sa.DOI, DOIIPsec) // RFC 2407 section 4.2
	}
	if sa.Situation != SitIdentityOnly {
		return fmt.Errorf("SA: situation %#x, only SIT_IDENTITY_ONLY is supported", sa.Situation)
	}
	if len(sa.Proposals) == 0 {
		return fmt.Errorf("SA: no proposal")
	}
	for i, p := range sa.Proposals {
		// RFC 2408 section 4.2: numbers increase; equal numbers are one
		// proposal made of several protocols.
		if i > 0 && p.Number < sa.Proposals[i-1].Number {
			return fmt.Errorf("SA: proposal numbers decrease (%d after %d)", p.Number, sa.Proposals[i-1].Number)
		}
		if len(p.Transforms) == 0 {
			return fmt.Errorf("SA: proposal %d has no transform", p.Number)
		}
		switch p.Protocol {
		case ProtoISAKMP:
			if len(p.SPI) != 0 && len(p.SPI) != 16 {
				return fmt.Errorf("SA: ISAKMP proposal with a %d-byte SPI", len(p.SPI))
			}
		case ProtoAH, ProtoESP:
			if len(p.SPI) != 4 {
				return fmt.Errorf("SA: %s proposal with a %d-byte SPI, want 4", protoName(p.Protocol), len(p.SPI))
			}
		case ProtoIPComp:
			if len(p.SPI) != 2 && len(p.SPI) != 4 {
				return fmt.Errorf("SA: IPComp proposal with a %d-byte CPI", len(p.SPI))
			}
		default:
			return fmt.Errorf("SA: proposal %d for unknown protocol %d", p.Number, p.Protocol)
		}
	}
	return nil
}

func (sa *SA) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, sa.DOI)
	b = binary.BigEndian.AppendUint32(b, sa.Situation)
	for i, p := range sa.Proposals {
		next := PayloadProposal
		if i == len(sa.Proposals)-1 {
			next = PayloadNone
		}
		b = appendGeneric(b, next, func(b []byte) []byte {
			b = append(b, p.Number, p.Protocol, byte(len(p.SPI)), byte(len(p.Transforms)))
			b = append(b, p.SPI...)
			for j, t := range p.Transforms {
				tn := PayloadTransform
				if j == len(p.Transforms)-1 {
					tn = PayloadNone
				}
				b = appendGeneric(b, tn, func(b []byte) []byte {
					b = append(b, t.Number, t.ID, 0, 0)
					return appendAttributes(b, t.Attributes)
				})
			}
			return b
		})
	}
	return b
}

func protoName(p uint8) string {
	switch p {
	case ProtoISAKMP:
		return "ISAKMP"
	case ProtoAH:
		return "AH"
	case ProtoESP:
		return "ESP"
	case ProtoIPComp:
		return "IPComp"
	}
	return fmt.Sprintf("protocol %d", p)
}

// Data is the payloads that are one opaque field: KE, HASH, SIG, nonce,
// vendor ID and NAT-D in both numberings.
type Data struct {
	T    PayloadType
	Data []byte
}

func (d *Data) Type() PayloadType { return d.T }

// Nonce lengths (RFC 2409 section 5: 8 to 256 bytes).
const (
	MinNonceLen = 8
	MaxNonceLen = 256
)

func (d *Data) verify() error {
	switch {
	case d.T == PayloadNonce && (len(d.Data) < MinNonceLen || len(d.Data) > MaxNonceLen):
		return fmt.Errorf("nonce of %d bytes, want %d to %d (RFC 2409 section 5)", len(d.Data), MinNonceLen, MaxNonceLen)
	case len(d.Data) == 0:
		return fmt.Errorf("empty %v payload", d.T)
	}
	return nil
}

func (d *Data) appendBody(b []byte) []byte { return append(b, d.Data...) }

// Identification types (RFC 2407 section 4.6.2.1).
const (
	IDIPv4Addr       = 1
	IDFQDN           = 2
	IDUserFQDN       = 3
	IDIPv4AddrSubnet = 4
	IDIPv6Addr       = 5
	IDIPv6AddrSubnet = 6
	IDIPv4AddrRange  = 7
	IDIPv6AddrRange  = 8
	IDDERASN1DN      = 9
	IDDERASN1GN      = 10
	IDKeyID          = 11
)

// ID is the Identification payload (RFC 2407 section 4.6.2), in phase 1
// the peer's identity and in quick mode a traffic selector.
type ID struct {
	IDType   uint8
	Protocol uint8
	Port     uint16
	Data     []byte
}

func (*ID) Type() PayloadType { return PayloadID }

// idLen is the fixed data length of each address type; 0: variable, at
// least one byte.
var idLen = map[uint8]int{IDIPv4Addr: 4, IDIPv4AddrSubnet: 8, IDIPv6Addr: 16, IDIPv6AddrSubnet: 32,
	IDIPv4AddrRange: 8, IDIPv6AddrRange: 32, IDFQDN: 0, IDUserFQDN: 0, IDDERASN1DN: 0, IDDERASN1GN: 0, IDKeyID: 0}

func (id *ID) verify() error {
	want, ok := idLen[id.IDType]
	switch {
	case !ok:
		return fmt.Errorf("ID: unknown type %d", id.IDType)
	case want == 0 && len(id.Data) == 0:
		return fmt.Errorf("ID: empty identity of type %d", id.IDType)
	case want != 0 && len(id.Data) != want:
		return fmt.Errorf("ID: type %d with %d bytes, want %d", id.IDType, len(id.Data), want)
	}
	if id.IDType == IDIPv4AddrSubnet || id.IDType == IDIPv6AddrSubnet {
		if _, err := id.Prefix(); err != nil {
			return err
		}
	}
	return nil
}

func (id *ID) appendBody(b []byte) []byte {
	b = append(b, id.IDType, id.Protocol)
	b = binary.BigEndian.AppendUint16(b, id.Port)
	return append(b, id.Data...)
}

// Prefix returns an address or subnet identity as a prefix; a subnet mask
// must be contiguous.
func (id *ID) Prefix() (netip.Prefix, error) {
	switch id.IDType {
	case IDIPv4Addr, IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return netip.PrefixFrom(a, a.BitLen()), nil
		}
	case IDIPv4AddrSubnet, IDIPv6AddrSubnet:
		n := len(id.Data) / 2
		a, ok1 := netip.AddrFromSlice(id.Data[:n])
		m, ok2 := netip.AddrFromSlice(id.Data[n:])
		if ok1 && ok2 {
			bits, ok := maskBits(m.AsSlice())
			if !ok {
				return netip.Prefix{}, fmt.Errorf("ID: subnet mask %v is not contiguous", m)
			}
			return netip.PrefixFrom(a, bits).Masked(), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("ID: type %d is not an address or subnet", id.IDType)
}

func maskBits(m []byte) (int, bool) {
	bits, seenZero := 0, false
	for _, c := range m {
		for i := 7; i >= 0; i-- {
			if c>>i&1 == 1 {
				if seenZero {
					return 0, false
				}
				bits++
			} else {
				seenZero = true
			}
		}
	}
	return bits, true
}

// IDFromPrefix builds a quick-mode identity: an address for a host prefix,
// a subnet otherwise.
func IDFromPrefix(p netip.Prefix, proto uint8, port uint16) *ID {
	a := p.Addr()
	if p.Bits() == a.BitLen() {
		t := uint8(IDIPv4Addr)
		if a.Is6() {
			t = IDIPv6Addr
		}
		return &ID{IDType: t, Protocol: proto, Port: port, Data: a.AsSlice()}
	}
	t := uint8(IDIPv4AddrSubnet)
	if a.Is6() {
		t = IDIPv6AddrSubnet
	}
	mask := make([]byte, len(a.AsSlice()))
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return &ID{IDType: t, Protocol: proto, Port: port, Data: append(p.Masked().Addr().AsSlice(), mask...)}
}

// Cert is the Certificate payload (RFC 2408 section 3.9); CertReq the
// Certificate Request payload (section 3.10).
type Cert struct {
	Encoding uint8
	Data     []byte
}

func (*Cert) Type() PayloadType { return PayloadCert }

func (c *Cert) verify() error {
	if c.Encoding == 0 || len(c.Data) == 0 {
		return fmt.Errorf("CERT: encoding %d with %d bytes", c.Encoding, len(c.Data))
	}
	return nil
}

func (c *Cert) appendBody(b []byte) []byte { return append(append(b, c.Encoding), c.Data...) }

// Certificate encodings used by IKEv1 peers (RFC 2408 section 3.9).
const (
	CertX509Sig = 4
	CertCRL     = 7
)

type CertReq struct {
	CertType  uint8
	Authority []byte // DER distinguished name; empty: any CA
}

func (*CertReq) Type() PayloadType { return PayloadCertReq }

func (c *CertReq) verify() error {
	if c.CertType == 0 {
		return fmt.Errorf("CR: certificate type 0")
	}
	return nil
}

func (c *CertReq) appendBody(b []byte) []byte { return append(append(b, c.CertType), c.Authority...) }

// Notify is the Notification payload (RFC 2408 section 3.14).
type Notify struct {
	DOI      uint32
	Protocol uint8
	Kind     NotifyType
	SPI      []byte
	Data     []byte
}

func (*Notify) Type() PayloadType { return PayloadNotify }

func (n *Notify) verify() error {
	if n.DOI > DOIIPsec {
		return fmt.Errorf("N: DOI %d", n.DOI) // 0 (ISAKMP) or 1 (IPsec)
	}
	switch len(n.SPI) {
	case 0, 4, 8, 16:
	default:
		return fmt.Errorf("N: %d-byte SPI", len(n.SPI))
	}
	if n.Kind == 0 {
		return fmt.Errorf("N: notify type 0")
	}
	return nil
}

func (n *Notify) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, n.DOI)
	b = append(b, n.Protocol, byte(len(n.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(n.Kind))
	return append(append(b, n.SPI...), n.Data...)
}

// Delete is the Delete payload (RFC 2408 section 3.15).
type Delete struct {
	DOI      uint32
	Protocol uint8
	SPISize  uint8
	SPIs     [][]byte
}

func (*Delete) Type() PayloadType { return PayloadDelete }

func (d *Delete) verify() error {
	want := 4
	if d.Protocol == ProtoISAKMP {
		want = 16 // the two cookies
	} else if d.Protocol != ProtoESP && d.Protocol != ProtoAH && d.Protocol != ProtoIPComp {
		return fmt.Errorf("D: protocol %d", d.Protocol)
	}
	if d.Protocol == ProtoIPComp {
		want = int(d.SPISize)
	}
	if int(d.SPISize) != want || len(d.SPIs) == 0 {
		return fmt.Errorf("D: %d SPIs of %d bytes for %s", len(d.SPIs), d.SPISize, protoName(d.Protocol))
	}
	return nil
}

func (d *Delete) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, d.DOI)
	b = append(b, d.Protocol, d.SPISize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SPIs)))
	for _, s := range d.SPIs {
		b = append(b, s...)
	}
	return b
}

// NATOA is the NAT original address payload (RFC 3947 section 5.2), in
// either numbering.
type NATOA struct {
	T    PayloadType // PayloadNATOA or PayloadNATOADraft
	Addr netip.Addr
}

func (n *NATOA) Type() PayloadType { return n.T }

func (n *NATOA) verify() error {
	if !n.Addr.IsValid() {
		return fmt.Errorf("NAT-OA: no address")
	}
	return nil
}

func (n *NATOA) appendBody(b []byte) []byte {
	t := uint8(IDIPv4Addr)
	if n.Addr.Is6() {
		t = IDIPv6Addr
	}
	return append(append(b, t, 0, 0, 0), n.Addr.AsSlice()...)
}

// Unknown is a payload type we do not decode; the exchange decides
// whether that is an error (RFC 2408 section 5.1: INVALID-PAYLOAD-TYPE).
type Unknown struct {
	T    PayloadType
	Data []byte
}

func (u *Unknown) Type() PayloadType          { return u.T }
func (u *Unknown) verify() error              { return nil }
func (u *Unknown) appendBody(b []byte) []byte { return append(b, u.Data...) }
