package ikev2

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func spi(b byte) SPI { return SPI{b, 2, 3, 4, 5, 6, 7, 8} }

// everyPayload is a chain with one of each payload we know (and an
// unknown one sent without the critical bit), as an IKE_AUTH's inner
// payloads and an IKE_SA_INIT's would carry them.
func everyPayload() []Payload {
	return []Payload{
		&SA{Proposals: []SAProposal{
			{Num: 1, Protocol: ProtoIKE, Transforms: []Transform{WithKeyBits(TransformEncr, 12, 256), {Type: TransformPRF, ID: 5},
				{Type: TransformInteg, ID: 12}, {Type: TransformDH, ID: 19}}},
			{Num: 2, Protocol: ProtoIKE, Transforms: []Transform{WithKeyBits(TransformEncr, 20, 128), {Type: TransformPRF, ID: 5}, {Type: TransformDH, ID: 31}}},
		}},
		&KE{Group: 19, Data: bytes.Repeat([]byte{0x42}, 64)},
		&Nonce{Data: bytes.Repeat([]byte{0x17}, 32)},
		&Notify{Kind: NotifyNATDetectionSourceIP, Data: bytes.Repeat([]byte{1}, 20)},
		&Notify{Protocol: ProtoESP, SPI: []byte{1, 2, 3, 4}, Kind: NotifyRekeySA},
		&VendorID{Data: []byte("gatehouse")},
		&ID{T: PayloadIDi, IDType: IDFQDN, Data: []byte("gw-a.example.net")},
		&ID{T: PayloadIDr, IDType: IDIPv4, Data: []byte{192, 0, 2, 1}},
		&Cert{Encoding: CertX509Sig, Data: []byte{0x30, 0x82, 0x01, 0x00}},
		&CertReq{Encoding: CertX509Sig, Authority: bytes.Repeat([]byte{9}, 40)},
		&Auth{Method: AuthPSK, Data: bytes.Repeat([]byte{0xaa}, 32)},
		&SA{Proposals: []SAProposal{{Num: 1, Protocol: ProtoESP, SPI: []byte{0xc0, 0, 0, 1},
			Transforms: []Transform{WithKeyBits(TransformEncr, 20, 256), {Type: TransformESN, ID: 0}}}}},
		&TS{T: PayloadTSi, Selectors: []Selector{
			{StartPort: 0, EndPort: 65535, StartAddr: netip.MustParseAddr("10.1.0.0"), EndAddr: netip.MustParseAddr("10.1.0.255")},
			{Protocol: 17, StartPort: 1701, EndPort: 1701, StartAddr: netip.MustParseAddr("2001:db8::"), EndAddr: netip.MustParseAddr("2001:db8::ffff")}}},
		&TS{T: PayloadTSr, Selectors: []Selector{{EndPort: 65535, StartAddr: netip.MustParseAddr("10.2.0.0"), EndAddr: netip.MustParseAddr("10.2.255.255")}}},
		&CP{CfgType: CfgRequest, Attrs: []CPAttr{{Type: 1}, {Type: 3, Data: []byte{10, 1, 0, 53}}}},
		&EAP{Data: []byte{2, 7, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'}},
		&Delete{Protocol: ProtoESP, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
		&Delete{Protocol: ProtoIKE},
		&Unknown{T: 200, Data: []byte("skip me")},
	}
}

// Every payload goes out and comes back unchanged, also inside an SK
// payload's chain and as an SKF fragment.
func TestRoundTrip(t *testing.T) {
	for _, tail := range []Payload{nil, &Encrypted{T: PayloadSK, Inner: PayloadIDi, Data: []byte{1, 2, 3}},
		&Encrypted{T: PayloadSKF, Inner: PayloadIDi, Number: 1, Total: 3, Data: []byte{4, 5}}} {
		ps := everyPayload()
		if tail != nil {
			ps = append(ps, tail)
		}
		m := &Message{Header: Header{SPIi: spi(1), SPIr: spi(9), Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}, Payloads: ps}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if got.Version != Version || got.Exchange != ExchangeIKEAuth || !got.FromInitiator() || got.Response() || got.MessageID != 1 ||
			int(got.Length) != len(b) || got.NextPayload != PayloadSA {
			t.Errorf("header %+v", got.Header)
		}
		if !reflect.DeepEqual(got.Payloads, ps) {
			for i := range ps {
				if i >= len(got.Payloads) || !reflect.DeepEqual(got.Payloads[i], ps[i]) {
					t.Fatalf("payload %d: sent %#v, got %#v", i, ps[i], got.Payloads[min(i, len(got.Payloads)-1)])
				}
			}
			t.Fatalf("%d payloads sent, %d back", len(ps), len(got.Payloads))
		}
	}
}

// wireIKESAInit is an IKE_SA_INIT request written out by hand from
// section 3's diagrams.
var wireIKESAInit = strings.Join([]string{
	// IKE header: SPIi, SPIr, next payload SA, version 2.0,
	// IKE_SA_INIT, flags I, message ID 0, length 88.
	"0102030405060708", "0000000000000000", "21", "20", "22", "08", "00000000", "00000058",
	// SA: next Nonce, not critical, length 40.
	"28", "00", "0028",
	// SAProposal: last, length 36, #1, IKE, no SPI, 3 transforms.
	"00", "00", "0024", "01", "01", "00", "03",
	// ENCR AES-CBC (12), Key Length 256: more, length 12.
	"03", "00", "000c", "01", "00", "000c", "800e0100",
	// PRF HMAC-SHA2-256 (5).
	"03", "00", "0008", "02", "00", "0005",
	// D-H ECP256 (19): last.
	"00", "00", "0008", "04", "00", "0013",
	// Nonce: next none, length 20, 16 bytes.
	"00", "00", "0014", "000102030405060708090a0b0c0d0e0f",
}, "")

// The hand-written message decodes to what it says, and encoding the
// result gives the same bytes.
func TestWireLayout(t *testing.T) {
	b, err := hex.DecodeString(wireIKESAInit)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	sa, ok := m.Payloads[0].(*SA)
	if !ok || len(m.Payloads) != 2 || m.Exchange != ExchangeIKESAInit || m.SPIr != (SPI{}) {
		t.Fatalf("decoded %+v %#v", m.Header, m.Payloads)
	}
	p := sa.Proposals[0]
	if p.Num != 1 || p.Protocol != ProtoIKE || len(p.Transforms) != 3 || p.Transforms[0].KeyBits() != 256 || p.Transforms[0].ID != 12 ||
		p.Transforms[1].Type != TransformPRF || p.Transforms[2].ID != 19 || !p.Transforms[0].Understood() {
		t.Fatalf("proposal %+v", p)
	}
	if n := m.Payloads[1].(*Nonce); len(n.Data) != 16 || n.Data[15] != 0x0f {
		t.Fatalf("nonce %x", n.Data)
	}
	again, err := m.Encode()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoded:\n%x\nwant\n%x (%v)", again, b, err)
	}
	if PeekVersion(b) != 2 || PeekVersion(b[:10]) != 0 {
		t.Fatal("PeekVersion")
	}
}

// Section 2.5: an unknown payload is skipped, unless it is critical, when
// the message is refused naming it; a known payload's critical bit is
// ignored.
func TestCriticalBit(t *testing.T) {
	build := func(typ PayloadType, critical bool) []byte {
		m := &Message{Header: Header{SPIi: spi(1), Exchange: ExchangeIKESAInit}, Payloads: []Payload{
			&Nonce{Data: make([]byte, 16)}, &Unknown{T: typ, Data: []byte{1, 2}}}}
		b, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if critical {
			b[HeaderLen+GenericHeaderLen+16+1] |= flagCritical
		}
		return b
	}
	if m, err := Decode(build(200, false)); err != nil || m.Payloads[1].(*Unknown).T != 200 {
		t.Fatalf("unknown, not critical: %v", err)
	}
	_, err := Decode(build(200, true))
	var uc *UnsupportedCriticalError
	if !errors.As(err, &uc) || uc.Type != 200 {
		t.Fatalf("unknown and critical: %v", err)
	}
	b := build(200, false)
	b[HeaderLen+1] |= flagCritical // the Nonce, which we know
	if _, err := Decode(b); err != nil {
		t.Fatalf("known payload with the critical bit: %v", err)
	}
}

// Each limit of section 3 is enforced with ErrMalformed (ErrVersion for
// another major version).
func TestRefusals(t *testing.T) {
	enc := func(ps ...Payload) []byte {
		b, err := (&Message{Header: Header{SPIi: spi(1), Exchange: ExchangeIKESAInit}, Payloads: ps}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := enc(&Nonce{Data: make([]byte, 16)})
	mutate := func(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }
	ike := []Transform{{Type: TransformPRF, ID: 5}}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short header", good[:20], ErrMalformed},
		{"length past the datagram", mutate(good, func(b []byte) []byte { b[27]++; return b }), ErrMalformed},
		{"zero SPIi", mutate(good, func(b []byte) []byte { clear(b[:8]); return b }), ErrMalformed},
		{"IKEv1", mutate(good, func(b []byte) []byte { b[17] = 0x10; return b }), ErrVersion},
		{"payload length past the end", mutate(good, func(b []byte) []byte { b[HeaderLen+3]++; return b }), ErrMalformed},
		{"bytes after the last payload", mutate(good, func(b []byte) []byte {
			b = append(b, 0)
			b[27]++
			return b
		}), ErrMalformed},
		{"nonce of 15 bytes", enc(&Nonce{Data: make([]byte, 15)}), ErrMalformed},
		{"nonce of 257 bytes", enc(&Nonce{Data: make([]byte, 257)}), ErrMalformed},
		{"proposal number 0", enc(&SA{Proposals: []SAProposal{{Num: 0, Protocol: ProtoIKE, Transforms: ike}}}), ErrMalformed},
		{"ESP proposal with an 8-byte SPI", enc(&SA{Proposals: []SAProposal{{Num: 1, Protocol: ProtoESP, SPI: make([]byte, 8), Transforms: ike}}}), ErrMalformed},
		{"proposal without transforms", enc(&SA{Proposals: []SAProposal{{Num: 1, Protocol: ProtoIKE}}}), ErrMalformed},
		{"empty SA", enc(&SA{}), ErrMalformed},
		{"empty KE", enc(&KE{Group: 19}), ErrMalformed},
		{"ID_IPV4_ADDR of 5 bytes", enc(&ID{T: PayloadIDi, IDType: IDIPv4, Data: make([]byte, 5)}), ErrMalformed},
		{"ID type 4", enc(&ID{T: PayloadIDi, IDType: 4, Data: []byte{1}}), ErrMalformed},
		{"CERTREQ of 21 bytes", enc(&CertReq{Encoding: CertX509Sig, Authority: make([]byte, 21)}), ErrMalformed},
		{"notify with a 3-byte SPI", enc(&Notify{SPI: make([]byte, 3), Kind: NotifyRekeySA}), ErrMalformed},
		{"IKE delete with SPIs", enc(&Delete{Protocol: ProtoIKE, SPIs: [][]byte{{1, 2, 3, 4}}}), ErrMalformed},
		{"ESP delete without SPIs", enc(&Delete{Protocol: ProtoESP}), ErrMalformed},
		{"TS ports backwards", enc(&TS{T: PayloadTSi, Selectors: []Selector{{StartPort: 9, EndPort: 8,
			StartAddr: netip.MustParseAddr("10.0.0.0"), EndAddr: netip.MustParseAddr("10.0.0.1")}}}), ErrMalformed},
		{"TS addresses backwards", enc(&TS{T: PayloadTSr, Selectors: []Selector{{EndPort: 1,
			StartAddr: netip.MustParseAddr("10.0.0.2"), EndAddr: netip.MustParseAddr("10.0.0.1")}}}), ErrMalformed},
		{"TS without selectors", enc(&TS{T: PayloadTSi}), ErrMalformed},
		{"CP type 5", enc(&CP{CfgType: 5}), ErrMalformed},
		{"EAP length wrong", enc(&EAP{Data: []byte{2, 1, 0, 9, 1}}), ErrMalformed},
		{"EAP response without a type", enc(&EAP{Data: []byte{2, 1, 0, 4}}), ErrMalformed},
		{"fragment 0", enc(&Encrypted{T: PayloadSKF, Number: 0, Total: 1}), ErrMalformed},
		{"fragment 3 of 2", enc(&Encrypted{T: PayloadSKF, Number: 3, Total: 2}), ErrMalformed},
		{"SK not last", mutate(enc(&Encrypted{T: PayloadSK, Inner: PayloadNonce, Data: []byte{1}}), func(b []byte) []byte {
			b = append(b, 0, 0, 0, 4)
			b[27] += 4
			return b
		}), ErrMalformed},
		{"too many payloads", enc(func() []Payload {
			var ps []Payload
			for range maxPayloads + 1 {
				ps = append(ps, &VendorID{Data: []byte{1}})
			}
			return ps
		}()...), ErrMalformed},
	} {
		if _, err := Decode(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
