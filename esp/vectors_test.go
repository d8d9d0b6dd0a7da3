package esp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// Published ESP packets, sealed and opened byte for byte: what another
// implementation put on the wire. They pin what a round trip through our
// own code cannot: the nonce (salt, then the IV), the AAD (SPI, the ESN's
// high half when in use, the sequence number), the ICV's length and the
// padding. Sources: RFC 7634 Appendix A (ChaCha20-Poly1305), and the
// ESP test cases of draft-mcgrew-gcm-test-01 (AES-GCM, RFC 4106), with
// and without extended sequence numbers.
var espVectors = []struct {
	name  string
	suite string
	key   string // encryption key, then the 4-byte salt
	spi   uint32
	seq   uint64
	esn   bool
	iv    string
	plain string // the payload, its padding and the ESP trailer
	out   string // ciphertext and ICV
}{
	{"RFC 7634 A", "chacha20poly1305", "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f a0a1a2a3",
		0x01020304, 5, false, "1011121314151617",
		`4500 0054 a6f2 0000 4001 e778 c633 6405 c000 0205 0800 5b7a 3a08 0000 553b ec10 0007 3627 0809 0a0b 0c0d 0e0f
		 1011 1213 1415 1617 1819 1a1b 1c1d 1e1f 2021 2223 2425 2627 2829 2a2b 2c2d 2e2f 3031 3233 3435 3637 0102 0204`,
		`240394 28b97f41 7e3c1375 3a4f0508 7b67c352 e6a7fab1 b982d466 ef407ae5 c614ee80 99d52844 eb61aa95 dfab4c02
		 f72aa71e 7c4c4f64 c9befe2f acc638e8 f3cbec16 3fac469b 502773f6 fb94e664 da9165b8 2829f641 e076aaa8 266b7fb0
		 f7b11b36 9907e1ad 43`},
	{"gcm-test case 2 (AES-128)", "aes128gcm16", "feffe9928665731c6d6a8f9467308308 cafebabe", 0x0000a5f8, 0x0a, false, "facedbaddecaf888",
		`4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d0010000010000000000000373697009637962
		 65726369747902646b00000100010001`,
		`deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de81827c10e9a4f51330d0eec416642
		 cfbb85a5b47e48a4ec3b9ba95d918bd183b70d3aa8bc6ee4c309e9d85a41ad4a`},
	{"gcm-test case 3 (AES-256)", "aes256gcm16", "abbccddef00112233445566778899aababbccddef00112233445566778899aab 11223344",
		0x4a2cbfe3, 2, false, "0102030405060708",
		`4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf0000020405b40101040201020201`,
		`ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f0545659f14e99d
		 ef842d8eb335f4eecfdbf831824b4c4915956c96`},
	{"gcm-test, the last 32-bit sequence number", "aes128gcm16", "7d773d00c144c525ac619d18c84a3f47 d9664267", 0x335467ae, 0xffffffff, false,
		"43457e9182443bc6", `01020201`, `437f866bcb3f699fe9b0822bac961c4504bef270`},
	{"gcm-test case 1, ESN (AES-128)", "aes128gcm16", "4c80cdefbb5d10da906ac73c3613a634 2e443b68", 0x00004321, 0x8765432100000000, true,
		"4956ed7e3b244cfe",
		`45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970045f7564700373
		 69700963796265726369747902646b000021000101020201`,
		`fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf65925bf1f4a13c5d
		 15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732459018148f6cbe722fd04796562dfdb4`},
	{"gcm-test, ESN with a zero high half", "aes128gcm16", "abbccddef00112233445566778899aab decaf888", 0x00000100, 1, true,
		"cafedebaceface74",
		`4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d500004e20001e8c18d75b81dc91baa047
		 6b91b924b280389d92c963bac046ec959b6266c04722b14923010101`,
		`18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f9190feebaf2cb01984e65863965d7472
		 b79da345e0e780191f0d2f0e0f496c226f2127b27db35724e7845d68651f57e65f354f75ff17015769623436`},
	{"gcm-test, ESN (AES-256)", "aes256gcm16", "abbccddef00112233445566778899aababbccddef00112233445566778899aab 73616c74",
		0x17405e67, 0x156f3126dd0db99b, true, "616e640169766563",
		`45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb71260250101f646d540001`,
		`f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57ff4d3a31ce673119e451626c2415771e3
		 b7eebca614c89b35`},
	{"gcm-test, the last ESN", "aes256gcm16", "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961 7475726e",
		0x796b6963, 0xffffffffffffffff, true, "333021696765746d",
		`45000030da3a00008001df3bc0a80005c0a800010800c6cd020007006162636465666768696a6b6c6d6e6f707172737401020201`,
		`f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3d78ca4ae68a32b42458fb57dbe82
		 1dcc63b9d0937ba2945f669368661a329fb4c053`},
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("vector: %v", err)
	}
	return b
}

// wire is the published packet: SPI, the low half of the sequence number,
// the IV, then ciphertext and ICV.
func wire(t *testing.T, spi uint32, seq uint64, iv, out string) []byte {
	b := binary.BigEndian.AppendUint32(nil, spi)
	b = binary.BigEndian.AppendUint32(b, uint32(seq))
	return append(append(b, unhex(t, iv)...), unhex(t, out)...)
}

func TestPublishedPacketsOpen(t *testing.T) {
	for _, v := range espVectors {
		t.Run(v.name, func(t *testing.T) {
			in, err := NewInbound(Config{SPI: v.spi, Suite: mustSuite(t, v.suite), EncKey: unhex(t, v.key), ESN: v.esn})
			if err != nil {
				t.Fatal(err)
			}
			if v.seq > 1 {
				in.Window().Update(v.seq - 1) // where the window stood before this packet
			}
			plain := unhex(t, v.plain)
			pad := int(plain[len(plain)-2])
			payload, nh, err := in.Open(wire(t, v.spi, v.seq, v.iv, v.out))
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if want := plain[:len(plain)-2-pad]; !bytes.Equal(payload, want) || nh != plain[len(plain)-1] {
				t.Fatalf("Open gave next header %d and\n%x\nwant %d and\n%x", nh, payload, plain[len(plain)-1], want)
			}
		})
	}
}

func TestPublishedPacketsSeal(t *testing.T) {
	for _, v := range espVectors {
		t.Run(v.name, func(t *testing.T) {
			o, err := NewOutbound(Config{SPI: v.spi, Suite: mustSuite(t, v.suite), EncKey: unhex(t, v.key), ESN: v.esn})
			if err != nil {
				t.Fatal(err)
			}
			aead, ok := o.t.(*aeadTransform)
			if !ok {
				t.Fatalf("%s is not sealed by the AEAD transform", v.suite)
			}
			var iv [8]byte
			copy(iv[:], unhex(t, v.iv))
			aead.fixedIV = &iv
			o.seq = v.seq - 1
			plain := unhex(t, v.plain)
			pad := int(plain[len(plain)-2])
			n := len(plain) - 2 - pad
			buf := make([]byte, o.Headroom()+n, o.Headroom()+n+o.Tailroom())
			copy(buf[o.Headroom():], plain[:n])
			pkt, err := o.Seal(buf, n, plain[len(plain)-1])
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if want := wire(t, v.spi, v.seq, v.iv, v.out); !bytes.Equal(pkt, want) {
				t.Fatalf("Seal gave\n%x\nwant\n%x", pkt, want)
			}
		})
	}
}

func mustSuite(t *testing.T, name string) Suite {
	t.Helper()
	s, err := ParseSuite(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
