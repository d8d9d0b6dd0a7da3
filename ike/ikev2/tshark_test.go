package ikev2

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
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
