package ike

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/pcap"
)

// Phase 1 transform attributes (RFC 2409 appendix A) used by the samples.
const (
	attrEncryption = 1
	attrHash       = 2
	attrAuth       = 3
	attrGroup      = 4
	attrLifeType   = 11
	attrLifeDur    = 12
	attrKeyLength  = 14
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// mainMode1 is a main mode first message shaped as Windows sends it
// (ike/clients): SA with three transforms, then vendor IDs.
func mainMode1() *Message {
	tr := func(n uint8, enc, keyLen, hash, group uint16) Transform {
		return Transform{Number: n, ID: 1 /* KEY_IKE */, Attributes: []Attribute{
			BasicAttr(attrEncryption, enc), BasicAttr(attrKeyLength, keyLen), BasicAttr(attrHash, hash),
			BasicAttr(attrGroup, group), BasicAttr(attrAuth, 1), BasicAttr(attrLifeType, 1), UintAttr(attrLifeDur, 28800),
		}}
	}
	return &Message{
		Header: Header{SPIi: Cookie{1, 2, 3, 4, 5, 6, 7, 8}, Version: Version, Exchange: ExchangeMain},
		Payloads: []Payload{
			&SA{DOI: DOIIPsec, Situation: SitIdentityOnly, Proposals: []SAProposal{{Number: 1, Protocol: ProtoISAKMP,
				Transforms: []Transform{tr(1, 7, 256, 2, 20), tr(2, 7, 128, 2, 19), tr(3, 7, 256, 2, 14)}}}},
			&Data{T: PayloadVendorID, Data: mustHex("1e2b516905991c7d7c96fcbfb587e46100000009")}, // MS NT5 ISAKMPOAKLEY v9
			&Data{T: PayloadVendorID, Data: mustHex("4a131c81070358455c5728f20e95452f")},         // RFC 3947
		},
	}
}

// quickMode1 is the cleartext body of a quick mode first message with PFS,
// subnet IDs and NAT-OA (the encrypted body, before encryption).
func quickMode1() []Payload {
	return []Payload{
		&Data{T: PayloadHash, Data: bytes.Repeat([]byte{0xaa}, 32)},
		&SA{DOI: DOIIPsec, Situation: SitIdentityOnly, Proposals: []SAProposal{
			{Number: 1, Protocol: ProtoESP, SPI: []byte{0xc0, 0, 0, 1}, Transforms: []Transform{{Number: 1, ID: 20, Attributes: []Attribute{
				BasicAttr(4, 2) /* encapsulation: transport */, BasicAttr(1, 1), UintAttr(2, 3600), BasicAttr(6, 128)}}}},
			{Number: 2, Protocol: ProtoESP, SPI: []byte{0xc0, 0, 0, 2}, Transforms: []Transform{{Number: 1, ID: 12, Attributes: []Attribute{
				BasicAttr(4, 1), BasicAttr(5, 2), UintAttr(2, 100000)}}}},
		}},
		&Data{T: PayloadNonce, Data: bytes.Repeat([]byte{0x11}, 32)},
		&Data{T: PayloadKE, Data: bytes.Repeat([]byte{0x22}, 256)},
		IDFromPrefix(netip.MustParsePrefix("10.1.0.0/24"), 0, 0),
		IDFromPrefix(netip.MustParsePrefix("192.0.2.7/32"), 17, 1701),
		&NATOA{T: PayloadNATOA, Addr: netip.MustParseAddr("10.0.0.5")},
		&NATOA{T: PayloadNATOADraft, Addr: netip.MustParseAddr("2001:db8::5")},
	}
}

func informational() []Payload {
	return []Payload{
		&Data{T: PayloadHash, Data: bytes.Repeat([]byte{0xbb}, 20)},
		&Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Kind: NotifyRUThere, SPI: bytes.Repeat([]byte{7}, 16), Data: []byte{0, 0, 0, 9}},
		&Delete{DOI: DOIIPsec, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
		&Delete{DOI: DOIIPsec, Protocol: ProtoISAKMP, SPISize: 16, SPIs: [][]byte{bytes.Repeat([]byte{9}, 16)}},
		&Cert{Encoding: CertX509Sig, Data: selfSigned},
		&CertReq{CertType: CertX509Sig},
		&Data{T: PayloadSig, Data: []byte{1, 2, 3}},
		&Data{T: PayloadNATD, Data: bytes.Repeat([]byte{3}, 20)},
		&Data{T: PayloadNATDDraft, Data: bytes.Repeat([]byte{4}, 20)},
		&GSS{Raw: true, Token: []byte{0x60, 1, 2}},
		&GSS{Encoding: 1, Token: []byte{0x05, 0x04, 2}},
		&ID{IDType: IDFQDN, Data: []byte("gw.example.net")},
		&Unknown{T: 200, Data: []byte{1}},
	}
}

// sameChain compares payload chains by type and encoding (a decoded empty
// field is an empty slice where the original may have had nil).
func sameChain(a, b []Payload) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Type() != b[i].Type() || reflect.TypeOf(a[i]) != reflect.TypeOf(b[i]) {
			return false
		}
	}
	return bytes.Equal(AppendPayloads(nil, a), AppendPayloads(nil, b))
}

// selfSigned is a real DER certificate for the CERT payload samples.
var selfSigned = func() []byte {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw.example.net"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return der
}()

func TestMessageRoundTrip(t *testing.T) {
	m := mainMode1()
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Length != uint32(len(b)) || got.NextPayload != PayloadSA || got.Exchange != ExchangeMain {
		t.Fatalf("header %+v", got.Header)
	}
	if !sameChain(got.Payloads, m.Payloads) {
		t.Fatalf("payloads differ after a round trip:\n%#v\n%#v", got.Payloads, m.Payloads)
	}
	again, _ := got.Encode()
	if !bytes.Equal(again, b) {
		t.Fatal("re-encoding changed the bytes")
	}
	// Trailing bytes after Length are not part of the message.
	if _, err := Decode(append(b, 0, 0, 0)); err != nil {
		t.Fatalf("datagram longer than the message: %v", err)
	}
}

func TestPayloadChainsRoundTrip(t *testing.T) {
	for name, ps := range map[string][]Payload{"quick mode": quickMode1(), "informational": informational()} {
		body := AppendPayloads(nil, ps)
		got, err := DecodePayloads(FirstType(ps), body, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !sameChain(got, ps) {
			t.Fatalf("%s: differs:\n%#v\n%#v", name, got, ps)
		}
		// Cipher padding after the chain is fine only when padded.
		if _, err := DecodePayloads(FirstType(ps), append(body, 0, 0, 0, 7), true); err != nil {
			t.Fatalf("%s padded: %v", name, err)
		}
		if _, err := DecodePayloads(FirstType(ps), append(body, 0, 0, 0, 7), false); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: trailing bytes accepted: %v", name, err)
		}
	}
}

func TestIDPrefixes(t *testing.T) {
	for _, s := range []string{"10.1.0.0/24", "192.0.2.7/32", "2001:db8::/48", "2001:db8::1/128", "0.0.0.0/0"} {
		p := netip.MustParsePrefix(s)
		id := IDFromPrefix(p, 17, 1701)
		if err := id.verify(); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		got, err := id.Prefix()
		if err != nil || got != p {
			t.Fatalf("%s: back as %v, %v", s, got, err)
		}
	}
	holey := &ID{IDType: IDIPv4AddrSubnet, Data: []byte{10, 0, 0, 0, 255, 0, 255, 0}}
	if err := holey.verify(); err == nil {
		t.Fatal("a non-contiguous mask was accepted")
	}
}

func TestAttributeNumbers(t *testing.T) {
	for _, v := range []uint64{0, 3600, 65535, 65536, 28800 * 1000, 1 << 40} {
		a := UintAttr(attrLifeDur, v)
		if got, ok := a.Uint(); !ok || got != v {
			t.Fatalf("%d: back as %d %v", v, got, ok)
		}
	}
	if _, ok := VarAttr(1, make([]byte, 9)).Uint(); ok {
		t.Fatal("a 9-byte number was accepted")
	}
}

// TestDecodeRejects: each input is refused with ErrMalformed (or
// ErrVersion), never accepted, never a panic.
func TestDecodeRejects(t *testing.T) {
	good, _ := mainMode1().Encode()
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	payload := func(ps ...Payload) []byte {
		b, _ := (&Message{Header: Header{SPIi: Cookie{1}, Version: Version, Exchange: ExchangeInformational}, Payloads: ps}).Encode()
		return b
	}
	sa := func(mod func(*SA)) []byte {
		s := mainMode1().Payloads[0].(*SA)
		mod(s)
		return payload(s)
	}
	cases := map[string][]byte{
		"short header":       good[:27],
		"version 2":          mutate(func(b []byte) []byte { b[17] = 0x20; return b }),
		"length too long":    mutate(func(b []byte) []byte { b[27]++; return b }),
		"length too short":   mutate(func(b []byte) []byte { b[24], b[25], b[26], b[27] = 0, 0, 0, 27; return b }),
		"zero cookie":        mutate(func(b []byte) []byte { clear(b[:8]); return b }),
		"payload overruns":   mutate(func(b []byte) []byte { b[HeaderLen+3] = 0xff; return b }),
		"payload length 3":   mutate(func(b []byte) []byte { b[HeaderLen+2], b[HeaderLen+3] = 0, 3; return b }),
		"proposal outside":   mutate(func(b []byte) []byte { b[16] = byte(PayloadProposal); return b }),
		"nonce of 7":         payload(&Data{T: PayloadNonce, Data: make([]byte, 7)}),
		"nonce of 257":       payload(&Data{T: PayloadNonce, Data: make([]byte, 257)}),
		"empty KE":           payload(&Data{T: PayloadKE}),
		"empty hash":         payload(&Data{T: PayloadHash}),
		"ID v4 of 5 bytes":   payload(&ID{IDType: IDIPv4Addr, Data: make([]byte, 5)}),
		"ID type 99":         payload(&ID{IDType: 99, Data: []byte{1}}),
		"ID empty FQDN":      payload(&ID{IDType: IDFQDN}),
		"SA DOI 2":           sa(func(s *SA) { s.DOI = 2 }),
		"SA situation 2":     sa(func(s *SA) { s.Situation = 2 }),
		"SA no proposal":     sa(func(s *SA) { s.Proposals = nil }),
		"proposal no trans":  sa(func(s *SA) { s.Proposals[0].Transforms = nil }),
		"ESP SPI of 3":       sa(func(s *SA) { s.Proposals[0].Protocol, s.Proposals[0].SPI = ProtoESP, []byte{1, 2, 3} }),
		"protocol 9":         sa(func(s *SA) { s.Proposals[0].Protocol = 9 }),
		"proposals decrease": sa(func(s *SA) { s.Proposals = append(s.Proposals, s.Proposals[0]); s.Proposals[0].Number = 2 }),
		"notify SPI of 3":    payload(&Notify{DOI: 1, Kind: NotifyInitialContact, SPI: []byte{1, 2, 3}}),
		"notify type 0":      payload(&Notify{DOI: 1}),
		"notify DOI 7":       payload(&Notify{DOI: 7, Kind: 1}),
		"delete no SPIs":     payload(&Delete{DOI: 1, Protocol: ProtoESP, SPISize: 4}),
		"delete ESP SPI 16":  payload(&Delete{DOI: 1, Protocol: ProtoESP, SPISize: 16, SPIs: [][]byte{make([]byte, 16)}}),
		"delete count lies": func() []byte {
			b := payload(&Delete{DOI: 1, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}}})
			b[HeaderLen+4+7] = 2
			return b
		}(),
		"CERT encoding 0": payload(&Cert{Data: []byte{1}}),
		"NAT-OA type 2":   payload(&Unknown{T: PayloadNATOA, Data: []byte{2, 0, 0, 0, 1, 2, 3, 4}}),
		"NAT-OA short":    payload(&Unknown{T: PayloadNATOA, Data: []byte{1, 0, 0, 0, 1, 2, 3}}),
	}
	// The transform count in a proposal must match what follows.
	b := bytes.Clone(good)
	b[HeaderLen+4+8+4+3] = 2 // SA generic header, DOI+situation, proposal generic header, #transforms
	cases["transform count lies"] = b
	// A variable attribute running past its transform.
	b = bytes.Clone(good)
	i := bytes.Index(b, []byte{0x00, attrLifeDur, 0x00, 0x02}) // TLV life duration, 2 bytes
	if i < 0 {
		i = bytes.Index(b, []byte{0x80, attrLifeDur})
		b[i], b[i+2], b[i+3] = 0x00, 0x00, 0x40
	}
	cases["attribute overruns"] = b
	for name, in := range cases {
		_, err := Decode(in)
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: got %v, want a malformed-message error", name, err)
		}
	}
}

// TestTsharkReadsOurMessages hands tshark's ISAKMP dissector what we
// encode: it must decode every payload and flag nothing.
func TestTsharkReadsOurMessages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: tshark is installed by make test as root")
	}
	mm, _ := mainMode1().Encode()
	info, _ := (&Message{Header: Header{SPIi: Cookie{1}, SPIr: Cookie{2}, Version: Version, Exchange: ExchangeInformational, MessageID: 7},
		Payloads: append(append(informational()[:len(informational())-1:len(informational())-1], quickMode1()[1:]...),
			ResponderLifetime(0x0102_0304, 90*time.Minute, 250_000))}).Encode()
	src, dst := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
	out, err := pcap.Tshark(t.TempDir(), []pcap.Datagram{{Src: src, Dst: dst, Payload: mm}, {Src: dst, Dst: src, Payload: info}}, "-Y", "isakmp")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if bad := pcap.Malformed(out); len(bad) > 0 {
		t.Fatalf("tshark flagged our messages:\n%s\n\n%s", strings.Join(bad, "\n"), out)
	}
	for _, want := range []string{
		"Exchange type: Identity Protection (Main Mode) (2)", "Payload: Security Association (1)",
		"Transform number: 3", "Key-Length: 128", "Life-Duration: 28800",
		"Payload: Vendor ID (13)", "Payload: Notification (11)", "Notify Message Type: R-U-THERE (36136)",
		"Payload: Delete (12)", "Payload: Identification (5)", "ID type: IPV4_ADDR_SUBNET (4)", "Port: 1701",
		"Payload: NAT-OA (RFC 3947) (21)", "Payload: Nonce (10)", "Payload: Key Exchange (4)",
		"Payload: Certificate (6)", "Payload: Certificate Request (7)", "Payload: NAT-D (RFC 3947) (20)",
		"Notify Message Type: RESPONDER-LIFETIME (24576)", "Life-Duration: 5400", "Life-Duration: 250000",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tshark's dissection lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("dissection:\n%s", out)
	}
}

func FuzzDecode(f *testing.F) {
	mm, _ := mainMode1().Encode()
	f.Add(mm)
	f.Add(append(bytes.Clone(mm[:HeaderLen]), AppendPayloads(nil, informational())...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
				t.Fatalf("error outside the codec's sentinels: %v", err)
			}
			return
		}
		if m.Flags&FlagEncryption != 0 {
			return
		}
		// What we accept, we can write, and it reads back the same.
		again, err := m.Encode()
		if err != nil {
			return // too large after normalising
		}
		m2, err := Decode(again)
		if err != nil || !sameChain(m2.Payloads, m.Payloads) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzPayload decodes one payload body of each type.
func FuzzPayload(f *testing.F) {
	for _, p := range append(quickMode1(), informational()...) {
		f.Add(uint8(p.Type()), p.appendBody(nil))
	}
	f.Add(uint8(PayloadSA), mainMode1().Payloads[0].appendBody(nil))
	// CERT with a (truncated) DER certificate; CR with and without a CA
	// name (RFC 2408 sections 3.9 and 3.10).
	f.Add(uint8(PayloadCert), (&Cert{Encoding: CertX509Sig, Data: []byte{0x30, 0x82, 0x01, 0x0a, 0x30, 0x81}}).appendBody(nil))
	f.Add(uint8(PayloadCertReq), (&CertReq{CertType: CertX509Sig}).appendBody(nil))
	f.Add(uint8(PayloadFragment), (&Fragment{ID: 1, Number: 2, Last: true, Data: []byte{1, 2, 3}}).appendBody(nil))
	f.Add(uint8(PayloadCertReq), (&CertReq{CertType: CertX509Sig, Authority: []byte{0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, 'C', 'A'}}).appendBody(nil))
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		p, err := decodePayload(PayloadType(typ), body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		if p.verify() != nil {
			return
		}
		p2, err := decodePayload(PayloadType(typ), p.appendBody(nil))
		if err != nil || !sameChain([]Payload{p}, []Payload{p2}) {
			t.Fatalf("round trip of %v: %v\n%#v\n%#v", PayloadType(typ), err, p, p2)
		}
	})
}
