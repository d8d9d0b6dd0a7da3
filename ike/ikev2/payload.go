package ikev2

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/ike/wire"
)

// PayloadType is an IKEv2 payload type (RFC 7296 section 3.2, RFC 7383).
type PayloadType uint8

// Payload types.
const (
	PayloadNone     PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCert     PayloadType = 37
	PayloadCertReq  PayloadType = 38
	PayloadAuth     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48
	PayloadSKF      PayloadType = 53 // RFC 7383
)

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr", PayloadCert: "CERT",
	PayloadCertReq: "CERTREQ", PayloadAuth: "AUTH", PayloadNonce: "N(nonce)", PayloadNotify: "N", PayloadDelete: "D",
	PayloadVendorID: "V", PayloadTSi: "TSi", PayloadTSr: "TSr", PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP",
	PayloadSKF: "SKF",
}

func (t PayloadType) String() string { return wire.Name(payloadNames, t, "payload") }

// flagCritical is the generic header's critical bit (section 3.2).
const flagCritical = 0x80

// UnsupportedCriticalError is a payload of a type we do not know with
// the critical bit set: the whole message is refused, and a request is
// answered with UNSUPPORTED_CRITICAL_PAYLOAD naming Type (section 2.5).
type UnsupportedCriticalError struct{ Type PayloadType }

func (e *UnsupportedCriticalError) Error() string {
	return fmt.Sprintf("unsupported critical payload %v", e.Type)
}

// Payload is a payload of section 3; once decoded, its byte fields are
// slices of the datagram.
type Payload interface {
	appendBody(b []byte) []byte // all after the generic header
	verify() error              // section 3's limits on the fields
	Type() PayloadType
}

// Protocol identifiers (section 3.3.1).
const (
	ProtoIKE uint8 = 1
	ProtoAH  uint8 = 2
	ProtoESP uint8 = 3
)

// Transform types (section 3.3.2).
const (
	TransformEncr  uint8 = 1
	TransformPRF   uint8 = 2
	TransformInteg uint8 = 3
	TransformDH    uint8 = 4
	TransformESN   uint8 = 5
)

// attrKeyLength is the only transform attribute (section 3.3.5), in TV
// form.
const attrKeyLength = 14

// Attribute is a transform attribute: TV (AF set, a 16-bit Value) or
// TLV (Data).
type Attribute struct {
	Type  uint16 // without the AF bit
	TV    bool
	Value uint16
	Data  []byte
}

// Transform is one transform substructure (section 3.3.2).
type Transform struct {
	Type  uint8
	ID    uint16
	Attrs []Attribute
}

// KeyBits is the Key Length attribute, 0 when there is none.
func (t *Transform) KeyBits() uint16 {
	for _, a := range t.Attrs {
		if a.TV && a.Type == attrKeyLength {
			return a.Value
		}
	}
	return 0
}

// Understood reports whether every attribute is one we know: a proposal
// with a transform that has another must be refused (section 3.3.6).
func (t *Transform) Understood() bool {
	for _, a := range t.Attrs {
		if !a.TV || a.Type != attrKeyLength {
			return false
		}
	}
	return true
}

// WithKeyBits is a transform with a Key Length attribute.
func WithKeyBits(typ uint8, id, bits uint16) Transform {
	return Transform{Type: typ, ID: id, Attrs: []Attribute{{Type: attrKeyLength, TV: true, Value: bits}}}
}

// SAProposal is one proposal substructure (section 3.3.1).
type SAProposal struct {
	Num        uint8
	Protocol   uint8
	SPI        []byte
	Transforms []Transform
}

// SA is the Security Association payload (section 3.3).
type SA struct{ Proposals []SAProposal }

func (*SA) Type() PayloadType { return PayloadSA }

// Substructure types in the Last Substruc field.
const (
	moreProposals  = 2
	moreTransforms = 3
)

func parseSA(b []byte) (*SA, error) {
	sa := &SA{}
	for len(b) > 0 {
		if len(sa.Proposals) == maxPayloads {
			return nil, fmt.Errorf("%w: more than %d proposals", ErrMalformed, maxPayloads)
		}
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: proposal of %d bytes", ErrMalformed, len(b))
		}
		last, l := b[0], int(binary.BigEndian.Uint16(b[2:]))
		if l < 8 || l > len(b) {
			return nil, fmt.Errorf("%w: proposal length %d with %d bytes left", ErrMalformed, l, len(b))
		}
		p, err := parseProposal(b[4:l])
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, p)
		b = b[l:]
		if last == 0 && len(b) > 0 {
			return nil, fmt.Errorf("%w: %d bytes after the last proposal", ErrMalformed, len(b))
		}
		if last != 0 && last != moreProposals {
			return nil, fmt.Errorf("%w: proposal's last substructure field %d", ErrMalformed, last)
		}
		if last == moreProposals && len(b) == 0 {
			return nil, fmt.Errorf("%w: a proposal announced and missing", ErrMalformed)
		}
	}
	return sa, nil
}

// parseProposal decodes a proposal after its first four bytes.
func parseProposal(b []byte) (SAProposal, error) {
	p := SAProposal{Num: b[0], Protocol: b[1]}
	spiLen, n := int(b[2]), int(b[3])
	if 4+spiLen > len(b) {
		return p, fmt.Errorf("%w: SPI of %d bytes in a proposal of %d", ErrMalformed, spiLen, len(b)+4)
	}
	p.SPI, b = orNil(b[4:4+spiLen]), b[4+spiLen:]
	for i := 0; i < n; i++ {
		if len(b) < 8 {
			return p, fmt.Errorf("%w: transform %d of %d missing", ErrMalformed, i+1, n)
		}
		last, l := b[0], int(binary.BigEndian.Uint16(b[2:]))
		if l < 8 || l > len(b) {
			return p, fmt.Errorf("%w: transform length %d with %d bytes left", ErrMalformed, l, len(b))
		}
		if (last == 0) != (i == n-1) || (last != 0 && last != moreTransforms) {
			return p, fmt.Errorf("%w: transform %d of %d says last substructure %d", ErrMalformed, i+1, n, last)
		}
		t := Transform{Type: b[4], ID: binary.BigEndian.Uint16(b[6:])}
		attrs, err := parseAttributes(b[8:l])
		if err != nil {
			return p, err
		}
		t.Attrs = attrs
		p.Transforms = append(p.Transforms, t)
		b = b[l:]
	}
	if len(b) != 0 {
		return p, fmt.Errorf("%w: %d bytes after the proposal's transforms", ErrMalformed, len(b))
	}
	return p, nil
}

func parseAttributes(b []byte) ([]Attribute, error) {
	var out []Attribute
	for len(b) > 0 {
		if len(b) < 4 || len(out) == 16 {
			return nil, fmt.Errorf("%w: transform attributes", ErrMalformed)
		}
		t := binary.BigEndian.Uint16(b)
		if t&0x8000 != 0 {
			out = append(out, Attribute{Type: t &^ 0x8000, TV: true, Value: binary.BigEndian.Uint16(b[2:])})
			b = b[4:]
			continue
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if 4+l > len(b) {
			return nil, fmt.Errorf("%w: attribute of %d bytes with %d left", ErrMalformed, l, len(b)-4)
		}
		out = append(out, Attribute{Type: t, Data: orNil(b[4 : 4+l])})
		b = b[4+l:]
	}
	return out, nil
}

func (sa *SA) verify() error {
	if len(sa.Proposals) == 0 {
		return errors.New("SA without proposals")
	}
	for _, p := range sa.Proposals {
		if p.Num == 0 {
			return errors.New("proposal number 0 (section 3.3.1: they start at 1)")
		}
		switch {
		case p.Protocol == ProtoIKE && len(p.SPI) != 0 && len(p.SPI) != 8:
			return fmt.Errorf("IKE proposal with a %d-byte SPI (0 or 8 allowed)", len(p.SPI))
		case (p.Protocol == ProtoAH || p.Protocol == ProtoESP) && len(p.SPI) != 4:
			return fmt.Errorf("AH or ESP proposal with a %d-byte SPI (4 required)", len(p.SPI))
		case p.Protocol != ProtoIKE && p.Protocol != ProtoAH && p.Protocol != ProtoESP:
			return fmt.Errorf("proposal for protocol %d", p.Protocol)
		}
		if len(p.Transforms) == 0 {
			return fmt.Errorf("proposal %d without transforms", p.Num)
		}
	}
	return nil
}

func (sa *SA) appendBody(b []byte) []byte {
	for i, p := range sa.Proposals {
		start := len(b)
		last := byte(moreProposals)
		if i == len(sa.Proposals)-1 {
			last = 0
		}
		b = append(b, last, 0, 0, 0, p.Num, p.Protocol, byte(len(p.SPI)), byte(len(p.Transforms)))
		b = append(b, p.SPI...)
		for j, t := range p.Transforms {
			ts := len(b)
			tl := byte(moreTransforms)
			if j == len(p.Transforms)-1 {
				tl = 0
			}
			b = append(b, tl, 0, 0, 0, t.Type, 0)
			b = binary.BigEndian.AppendUint16(b, t.ID)
			for _, a := range t.Attrs {
				if a.TV {
					b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
					b = binary.BigEndian.AppendUint16(b, a.Value)
					continue
				}
				b = binary.BigEndian.AppendUint16(b, a.Type)
				b = binary.BigEndian.AppendUint16(b, uint16(len(a.Data)))
				b = append(b, a.Data...)
			}
			binary.BigEndian.PutUint16(b[ts+2:], uint16(len(b)-ts))
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	}
	return b
}

// KE is the Key Exchange payload (section 3.4).
type KE struct {
	Group uint16
	Data  []byte
}

func (*KE) Type() PayloadType { return PayloadKE }

func (k *KE) verify() error {
	if len(k.Data) == 0 {
		return errors.New("KE without key exchange data")
	}
	return nil
}

func (k *KE) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, k.Group)
	return append(append(b, 0, 0), k.Data...)
}

// Identification types (section 3.5).
const (
	IDIPv4    uint8 = 1
	IDFQDN    uint8 = 2
	IDRFC822  uint8 = 3
	IDIPv6    uint8 = 5
	IDDERDN   uint8 = 9
	IDDERGN   uint8 = 10
	IDKeyID   uint8 = 11
	idFCNname uint8 = 12 // RFC 4595, never ours
)

// ID is the Identification payload, the initiator's (IDi) or the
// responder's (IDr) (section 3.5).
type ID struct {
	T      PayloadType
	IDType uint8
	Data   []byte
}

func (id *ID) Type() PayloadType { return id.T }

func (id *ID) verify() error {
	switch id.IDType {
	case IDIPv4:
		if len(id.Data) != 4 {
			return fmt.Errorf("ID_IPV4_ADDR of %d bytes", len(id.Data))
		}
	case IDIPv6:
		if len(id.Data) != 16 {
			return fmt.Errorf("ID_IPV6_ADDR of %d bytes", len(id.Data))
		}
	case IDFQDN, IDRFC822, IDDERDN, IDDERGN, IDKeyID, idFCNname:
		if len(id.Data) == 0 {
			return fmt.Errorf("empty identification of type %d", id.IDType)
		}
	default:
		return fmt.Errorf("identification type %d", id.IDType)
	}
	return nil
}

func (id *ID) appendBody(b []byte) []byte { return append(append(b, id.IDType, 0, 0, 0), id.Data...) }

// Body is the ID payload's body, which AUTH covers (section 2.15).
func (id *ID) Body() []byte { return id.appendBody(nil) }

// Cert is the Certificate payload (section 3.6).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// Certificate encodings we use.
const (
	CertX509Sig uint8 = 4  // a DER X.509 certificate
	CertHashURL uint8 = 12 // hash and URL of an X.509 certificate
)

func (*Cert) Type() PayloadType { return PayloadCert }

func (c *Cert) verify() error {
	if len(c.Data) == 0 {
		return errors.New("empty CERT")
	}
	return nil
}

func (c *Cert) appendBody(b []byte) []byte { return append(append(b, c.Encoding), c.Data...) }

// CertReq is the Certificate Request payload (section 3.7): for X.509,
// the SHA-1 hashes of the public keys of the CAs the sender trusts.
type CertReq struct {
	Encoding  uint8
	Authority []byte
}

func (*CertReq) Type() PayloadType { return PayloadCertReq }

func (c *CertReq) verify() error {
	if c.Encoding == CertX509Sig && len(c.Authority)%20 != 0 {
		return fmt.Errorf("CERTREQ of %d bytes: not a list of 20-byte SHA-1 hashes", len(c.Authority))
	}
	return nil
}

func (c *CertReq) appendBody(b []byte) []byte { return append(append(b, c.Encoding), c.Authority...) }

// Authentication methods (section 3.8, RFC 7427).
const (
	AuthRSA      uint8 = 1
	AuthPSK      uint8 = 2
	AuthDSS      uint8 = 3
	AuthECDSA256 uint8 = 9
	AuthECDSA384 uint8 = 10
	AuthECDSA521 uint8 = 11
	AuthDigSig   uint8 = 14 // RFC 7427
)

// Auth is the Authentication payload (section 3.8).
type Auth struct {
	Method uint8
	Data   []byte
}

func (*Auth) Type() PayloadType { return PayloadAuth }

func (a *Auth) verify() error {
	if a.Method == 0 || len(a.Data) == 0 {
		return fmt.Errorf("AUTH with method %d and %d bytes", a.Method, len(a.Data))
	}
	return nil
}

func (a *Auth) appendBody(b []byte) []byte { return append(append(b, a.Method, 0, 0, 0), a.Data...) }

// Nonce is the Nonce payload (section 3.9).
type Nonce struct{ Data []byte }

// Nonce sizes (section 2.10 and 3.9).
const (
	MinNonce = 16
	MaxNonce = 256
)

func (*Nonce) Type() PayloadType { return PayloadNonce }

func (n *Nonce) verify() error {
	if len(n.Data) < MinNonce || len(n.Data) > MaxNonce {
		return fmt.Errorf("nonce of %d bytes (%d to %d allowed)", len(n.Data), MinNonce, MaxNonce)
	}
	return nil
}

func (n *Nonce) appendBody(b []byte) []byte { return append(b, n.Data...) }

// Notify is the Notify payload (section 3.10).
type Notify struct {
	Protocol uint8
	SPI      []byte
	Kind     NotifyType
	Data     []byte
}

func (*Notify) Type() PayloadType { return PayloadNotify }

func (n *Notify) verify() error {
	if l := len(n.SPI); l != 0 && l != 4 && l != 8 {
		return fmt.Errorf("notify %v with a %d-byte SPI", n.Kind, l)
	}
	return nil
}

func (n *Notify) appendBody(b []byte) []byte {
	b = append(b, n.Protocol, byte(len(n.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(n.Kind))
	return append(append(b, n.SPI...), n.Data...)
}

// Delete is the Delete payload (section 3.11).
type Delete struct {
	Protocol uint8
	SPIs     [][]byte // 4 bytes each for AH and ESP; none for IKE
}

func (*Delete) Type() PayloadType { return PayloadDelete }

func (d *Delete) verify() error {
	switch d.Protocol {
	case ProtoIKE:
		if len(d.SPIs) != 0 {
			return errors.New("IKE SA delete with SPIs (the header names the SA)")
		}
	case ProtoAH, ProtoESP:
		if len(d.SPIs) == 0 {
			return errors.New("delete without SPIs")
		}
	default:
		return fmt.Errorf("delete for protocol %d", d.Protocol)
	}
	return nil
}

func (d *Delete) appendBody(b []byte) []byte {
	size := 0
	if d.Protocol != ProtoIKE {
		size = 4
	}
	b = append(b, d.Protocol, byte(size))
	b = binary.BigEndian.AppendUint16(b, uint16(len(d.SPIs)))
	for _, s := range d.SPIs {
		b = append(b, s...)
	}
	return b
}

// VendorID is the Vendor ID payload (section 3.12).
type VendorID struct{ Data []byte }

func (*VendorID) Type() PayloadType { return PayloadVendorID }

func (v *VendorID) verify() error {
	if len(v.Data) == 0 {
		return errors.New("empty vendor ID")
	}
	return nil
}

func (v *VendorID) appendBody(b []byte) []byte { return append(b, v.Data...) }

// Traffic selector types (section 3.13.1).
const (
	TSIPv4Range uint8 = 7
	TSIPv6Range uint8 = 8
)

// Selector is one traffic selector: a protocol (0: any), a port range and
// an address range (section 3.13.1).
type Selector struct {
	Protocol           uint8
	StartPort, EndPort uint16
	StartAddr, EndAddr netip.Addr
}

// TS is the Traffic Selector payload, the initiator's (TSi) or the
// responder's (TSr) (section 3.13).
type TS struct {
	T         PayloadType
	Selectors []Selector
}

func (ts *TS) Type() PayloadType { return ts.T }

func parseTS(t PayloadType, b []byte) (*TS, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %v of %d bytes", ErrMalformed, t, len(b))
	}
	ts := &TS{T: t}
	n := int(b[0])
	b = b[4:]
	for i := 0; i < n; i++ {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: traffic selector %d of %d missing", ErrMalformed, i+1, n)
		}
		typ, l := b[0], int(binary.BigEndian.Uint16(b[2:]))
		want := map[uint8]int{TSIPv4Range: 16, TSIPv6Range: 40}[typ]
		if want == 0 {
			return nil, fmt.Errorf("%w: traffic selector type %d", ErrMalformed, typ)
		}
		if l != want || l > len(b) {
			return nil, fmt.Errorf("%w: traffic selector of type %d and length %d with %d bytes left", ErrMalformed, typ, l, len(b))
		}
		alen := (l - 8) / 2
		s := Selector{Protocol: b[1], StartPort: binary.BigEndian.Uint16(b[4:]), EndPort: binary.BigEndian.Uint16(b[6:])}
		s.StartAddr, _ = netip.AddrFromSlice(b[8 : 8+alen])
		s.EndAddr, _ = netip.AddrFromSlice(b[8+alen : l])
		ts.Selectors = append(ts.Selectors, s)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the traffic selectors", ErrMalformed, len(b))
	}
	return ts, nil
}

func (ts *TS) verify() error {
	if len(ts.Selectors) == 0 {
		return fmt.Errorf("%v without selectors", ts.T)
	}
	for _, s := range ts.Selectors {
		if s.StartPort > s.EndPort {
			return fmt.Errorf("traffic selector ports %d-%d", s.StartPort, s.EndPort)
		}
		if s.StartAddr.Is4() != s.EndAddr.Is4() || s.EndAddr.Less(s.StartAddr) {
			return fmt.Errorf("traffic selector addresses %v-%v", s.StartAddr, s.EndAddr)
		}
	}
	return nil
}

func (ts *TS) appendBody(b []byte) []byte {
	b = append(b, byte(len(ts.Selectors)), 0, 0, 0)
	for _, s := range ts.Selectors {
		typ, l := TSIPv4Range, 16
		if !s.StartAddr.Is4() {
			typ, l = TSIPv6Range, 40
		}
		b = append(b, typ, s.Protocol)
		b = binary.BigEndian.AppendUint16(b, uint16(l))
		b = binary.BigEndian.AppendUint16(b, s.StartPort)
		b = binary.BigEndian.AppendUint16(b, s.EndPort)
		b = append(b, s.StartAddr.AsSlice()...)
		b = append(b, s.EndAddr.AsSlice()...)
	}
	return b
}

// Encrypted is the Encrypted and Authenticated payload (SK, section
// 3.14) or one fragment of it (SKF, RFC 7383 section 2.5): the IV, the
// ciphertext and the ICV as they are on the wire. Inner is the type of
// the first payload inside (the generic header's Next Payload; 0 in
// fragments after the first). It is always the message's last payload.
type Encrypted struct {
	T             PayloadType
	Inner         PayloadType
	Number, Total uint16 // SKF only
	Data          []byte
}

func (e *Encrypted) Type() PayloadType { return e.T }

// Next is what the generic header's next payload field names: the first
// payload inside, not the next outside (it is the last).
func (e *Encrypted) Next() PayloadType { return e.Inner }

func (e *Encrypted) verify() error {
	if e.T == PayloadSKF && (e.Number == 0 || e.Number > e.Total) {
		return fmt.Errorf("fragment %d of %d", e.Number, e.Total)
	}
	if e.T == PayloadSKF && e.Number > 1 && e.Inner != PayloadNone {
		return fmt.Errorf("fragment %d names an inner payload (%v)", e.Number, e.Inner)
	}
	return nil
}

func (e *Encrypted) appendBody(b []byte) []byte {
	if e.T == PayloadSKF {
		b = binary.BigEndian.AppendUint16(b, e.Number)
		b = binary.BigEndian.AppendUint16(b, e.Total)
	}
	return append(b, e.Data...)
}

// Configuration payload types (section 3.15).
const (
	CfgRequest uint8 = 1
	CfgReply   uint8 = 2
	CfgSet     uint8 = 3
	CfgAck     uint8 = 4
)

// CPAttr is one configuration attribute (section 3.15.1).
type CPAttr struct {
	Type uint16 // 15 bits
	Data []byte
}

// CP is the Configuration payload (section 3.15).
type CP struct {
	CfgType uint8
	Attrs   []CPAttr
}

func (*CP) Type() PayloadType { return PayloadCP }

func parseCP(b []byte) (*CP, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: CP of %d bytes", ErrMalformed, len(b))
	}
	cp := &CP{CfgType: b[0]}
	for b = b[4:]; len(b) > 0; {
		if len(b) < 4 || len(cp.Attrs) == maxPayloads {
			return nil, fmt.Errorf("%w: configuration attributes", ErrMalformed)
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if 4+l > len(b) {
			return nil, fmt.Errorf("%w: configuration attribute of %d bytes with %d left", ErrMalformed, l, len(b)-4)
		}
		cp.Attrs = append(cp.Attrs, CPAttr{Type: binary.BigEndian.Uint16(b) & 0x7fff, Data: orNil(b[4 : 4+l])})
		b = b[4+l:]
	}
	return cp, nil
}

func (cp *CP) verify() error {
	if cp.CfgType < CfgRequest || cp.CfgType > CfgAck {
		return fmt.Errorf("CFG type %d", cp.CfgType)
	}
	return nil
}

func (cp *CP) appendBody(b []byte) []byte {
	b = append(b, cp.CfgType, 0, 0, 0)
	for _, a := range cp.Attrs {
		b = binary.BigEndian.AppendUint16(b, a.Type&0x7fff)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Data)))
		b = append(b, a.Data...)
	}
	return b
}

// EAP is the EAP payload (section 3.16): one EAP message (RFC 3748).
type EAP struct{ Data []byte }

func (*EAP) Type() PayloadType { return PayloadEAP }

func (e *EAP) verify() error {
	if len(e.Data) < 4 {
		return fmt.Errorf("EAP message of %d bytes", len(e.Data))
	}
	if l := int(binary.BigEndian.Uint16(e.Data[2:])); l != len(e.Data) {
		return fmt.Errorf("EAP message says %d bytes, payload holds %d", l, len(e.Data))
	}
	code := e.Data[0]
	if code < 1 || code > 4 || (code <= 2 && len(e.Data) < 5) {
		return fmt.Errorf("EAP code %d in %d bytes", code, len(e.Data))
	}
	return nil
}

func (e *EAP) appendBody(b []byte) []byte { return append(b, e.Data...) }

// Unknown is a payload of a type we do not know, sent without the
// critical bit: it is skipped (section 2.5) but kept for what covers the
// message whole.
type Unknown struct {
	T    PayloadType
	Data []byte
}

func (u *Unknown) Type() PayloadType          { return u.T }
func (u *Unknown) verify() error              { return nil }
func (u *Unknown) appendBody(b []byte) []byte { return append(b, u.Data...) }

// orNil makes an empty field nil, so that a decoded payload equals the
// one that was encoded.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
