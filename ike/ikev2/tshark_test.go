package ikev2

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/pcap"
)

// TestTsharkReadsOurMessages: Wireshark's IKEv2 dissector reads every
// payload we encode, with nothing flagged as malformed.
func TestTsharkReadsOurMessages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: tshark is installed by make test as root")
	}
	ps := everyPayload()
	for _, p := range ps {
		if c, ok := p.(*Cert); ok {
			c.Data = selfSigned(t) // a real certificate, which tshark decodes too
		}
	}
	all, err := (&Message{Header: Header{SPIi: spi(1), SPIr: spi(2), Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1},
		Payloads: ps}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	sk, err := (&Message{Header: Header{SPIi: spi(1), SPIr: spi(2), Exchange: ExchangeCreateChildSA, Flags: FlagResponse, MessageID: 2},
		Payloads: []Payload{&Encrypted{T: PayloadSK, Inner: PayloadSA, Data: make([]byte, 48)}}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	src, dst := netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500")
	out, err := pcap.Tshark(t.TempDir(), []pcap.Datagram{{Src: src, Dst: dst, Payload: all}, {Src: dst, Dst: src, Payload: sk}}, "-Y", "isakmp")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if bad := pcap.Malformed(out); len(bad) > 0 {
		t.Fatalf("tshark flagged our messages:\n%s\n\n%s", strings.Join(bad, "\n"), out)
	}
	for _, want := range []string{
		"Version: 2.0", "Exchange type: IKE_AUTH (35)", "Exchange type: CREATE_CHILD_SA (36)",
		"Transform ID (ENCR): ENCR_AES_CBC (12)", "Key Length: 256", "Transform ID (D-H): 256-bit random ECP group (19)",
		"Payload: Key Exchange (34)", "Payload: Nonce (40)", "Notify Message Type: NAT_DETECTION_SOURCE_IP (16388)",
		"Notify Message Type: REKEY_SA (16393)", "Payload: Vendor ID (43)", "ID type: FQDN (2)", "ID type: IPV4_ADDR (1)",
		"Certificate Encoding: X.509 Certificate - Signature (4)", "Payload: Certificate Request (38)", "Payload: Authentication (39)",
		"SPI: c0000001", "Traffic Selector Type: TS_IPV6_ADDR_RANGE (8)", "Payload: Traffic Selector - Responder (45)",
		"Type: CFG_REQUEST (1)", "Code: Response (2)", "Delete SPI: 05060708", "Payload: Private Use (200)",
		"Payload: Encrypted and Authenticated (46)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tshark's dissection lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("dissection:\n%s", out)
	}
}

func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw-a.example.net"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"gw-a.example.net"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// wiresharkIKE names our IKE SA suites as Wireshark's IKEv2 decryption
// table does.
var wiresharkIKE = map[string]string{
	"aes128": "AES-CBC-128 [RFC3602]", "aes256": "AES-CBC-256 [RFC3602]", "3des": "3DES [RFC2451]",
	"aes128gcm16": "AES-GCM-128 with 16 octet ICV [RFC5282]", "aes256gcm16": "AES-GCM-256 with 16 octet ICV [RFC5282]",
	"sha1": "HMAC_SHA1_96 [RFC2404]", "sha256": "HMAC_SHA2_256_128 [RFC4868]", "sha384": "HMAC_SHA2_384_192 [RFC4868]",
	"sha512": "HMAC_SHA2_512_256 [RFC4868]", "": "NONE [RFC4306]",
}

// TestTsharkOpensOurSK: Wireshark, given the keys, decrypts and checks
// what we seal with every suite it knows (ChaCha20-Poly1305 it does not),
// and finds our inner payloads: our IV, padding, ICV and associated data
// are where an independent implementation looks for them.
func TestTsharkOpensOurSK(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: tshark is installed by make test as root")
	}
	inner := everyPayload()[6:8] // IDi, IDr
	src, dst := netip.MustParseAddrPort("192.0.2.1:4500"), netip.MustParseAddrPort("192.0.2.2:4500")
	for _, s := range suites(t) {
		integName := ""
		if s.h != nil {
			integName = s.h.Name
		}
		encr, ok := wiresharkIKE[s.c.Name]
		if !ok {
			continue
		}
		name := s.c.Name + "-" + integName
		encI, integI := keysFor(s.c, s.h, 3)
		encR, integR := keysFor(s.c, s.h, 5)
		pi, _ := NewProtector(s.c, s.h, encI, integI)
		pr, _ := NewProtector(s.c, s.h, encR, integR)
		req, err := pi.Seal(Header{SPIi: spi(1), SPIr: spi(2), Exchange: ExchangeIKEAuth, Flags: FlagInitiator, MessageID: 1}, inner, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := pr.Seal(Header{SPIi: spi(1), SPIr: spi(2), Exchange: ExchangeIKEAuth, Flags: FlagResponse, MessageID: 1}, inner[1:], rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		uat := pcap.IKEv2SA(hex.EncodeToString(req[:8]), hex.EncodeToString(req[8:16]), hex.EncodeToString(encI), hex.EncodeToString(encR),
			encr, hex.EncodeToString(integI), hex.EncodeToString(integR), wiresharkIKE[integName])
		// Port 4500 carries the non-ESP marker before IKE (RFC 3948).
		out, err := pcap.Tshark(t.TempDir(), []pcap.Datagram{{Src: src, Dst: dst, Payload: append(make([]byte, 4), req...)},
			{Src: dst, Dst: src, Payload: append(make([]byte, 4), resp...)}}, "-o", uat)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if strings.Count(out, "Payload: Identification - Responder (36)") != 2 || !strings.Contains(out, "Payload: Identification - Initiator (35)") ||
			!strings.Contains(out, "gw-a.example.net") {
			t.Errorf("%s: tshark did not find our inner payloads:\n%s", name, out)
		}
		if n := strings.Count(out, "Integrity Checksum Data: "); n != 2 || strings.Count(out, "[correct]") != 2 {
			t.Errorf("%s: tshark checked %d ICVs, not both correct:\n%s", name, n, out)
		}
		if bad := pcap.Malformed(out); len(bad) > 0 {
			t.Errorf("%s: tshark flags %q", name, bad)
		}
	}
}
