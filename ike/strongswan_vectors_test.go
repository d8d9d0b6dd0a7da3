package ike

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// swanVectors is one exchange recorded with strongSwan (labs/site
// TestStrongSwanDerivations): the messages as they crossed the wire, and
// every value strongSwan computed, by its log's label, in order.
type swanVectors struct {
	psk      []byte
	messages [][]byte
	values   map[string][][]byte
}

func loadSwanVectors(t *testing.T) swanVectors {
	t.Helper()
	path := os.Getenv("GATEHOUSE_IKE_VECTORS") // a fresh recording, from the lab
	if path == "" {
		path = "testdata/strongswan-ikev1.txt"
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v := swanVectors{values: map[string][][]byte{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		label, h, ok := strings.Cut(line, " ")
		b, err := hex.DecodeString(h)
		if !ok || err != nil {
			t.Fatalf("fixture line %q: %v", line, err)
		}
		switch label {
		case "psk":
			v.psk = b
		case "message":
			v.messages = append(v.messages, b)
		default:
			v.values[label] = append(v.values[label], b)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(v.messages) != 9 {
		t.Fatalf("%d messages in the fixture, want main mode's 6 and quick mode's 3", len(v.messages))
	}
	return v
}

// one is the value strongSwan logged once (or the nth time) under label.
func (v swanVectors) one(t *testing.T, label string, n int) []byte {
	t.Helper()
	if len(v.values[label]) <= n {
		t.Fatalf("the fixture has %d values %q, want at least %d", len(v.values[label]), label, n+1)
	}
	return v.values[label][n]
}

// payloads decodes a cleartext message's chain.
func clearPayloads(t *testing.T, msg []byte) (Header, []Payload, [][]byte) {
	t.Helper()
	h, err := ParseHeader(msg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := DecodePayloads(h.NextPayload, msg[28:h.Length], false)
	if err != nil {
		t.Fatal(err)
	}
	bodies, _ := PayloadBodies(h.NextPayload, msg[28:h.Length])
	return h, ps, bodies
}

// payloadData is the body of the chain's first payload of type t, and
// the chain's bytes after its first payload (what quick mode's HASHes
// cover).
func payloadData(t *testing.T, first PayloadType, chain []byte, want PayloadType) (body, afterFirst []byte) {
	t.Helper()
	bodies, end := PayloadBodies(first, chain)
	ps, err := DecodePayloads(first, chain[:end], false)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		if p.Type() == want {
			body = bodies[i]
		}
	}
	firstLen := int(binary.BigEndian.Uint16(chain[2:4]))
	return body, chain[firstLen:end]
}

func same(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x (strongSwan)", what, got, want)
	}
}

// TestStrongSwanVectors derives everything past the Diffie-Hellman secret
// as ike does, from the recorded messages, and compares it with what
// strongSwan computed for the same exchange: SKEYID and its children,
// the encryption key, phase 1's IVs, HASH_I and HASH_R, quick mode's
// IVs and three HASHes, and the IPsec SAs' KEYMAT with PFS.
func TestStrongSwanVectors(t *testing.T) {
	v := loadSwanVectors(t)
	prf, err := NewPRF(HashSHA256) // the exchange's aes256-sha256-modp2048
	if err != nil {
		t.Fatal(err)
	}
	// Main mode messages 1 to 4 are in clear.
	h1, _, bodies1 := clearPayloads(t, v.messages[0])
	_, ps3, _ := clearPayloads(t, v.messages[2])
	h4, ps4, _ := clearPayloads(t, v.messages[3])
	ckyI, ckyR := h1.SPIi, h4.SPIr
	saiB := bodies1[0]
	gxi, ni := Find(ps3, PayloadKE).(*Data).Data, Find(ps3, PayloadNonce).(*Data).Data
	gxr, nr := Find(ps4, PayloadKE).(*Data).Data, Find(ps4, PayloadNonce).(*Data).Data
	gxy := v.one(t, "shared_Diffie_Hellman_secret", 0)

	skeyid := SkeyidPSK(prf, v.psk, ni, nr)
	same(t, "SKEYID", skeyid, v.one(t, "SKEYID", 0))
	k := DeriveKeys(prf, skeyid, gxy, ckyI, ckyR)
	same(t, "SKEYID_d", k.D, v.one(t, "SKEYID_d", 0))
	same(t, "SKEYID_a", k.A, v.one(t, "SKEYID_a", 0))
	same(t, "SKEYID_e", k.E, v.one(t, "SKEYID_e", 0))
	ka := EncryptionKey(prf, k.E, 32) // AES-256
	same(t, "Ka", ka, v.one(t, "encryption_key_Ka", 0))
	iv := Phase1IV(prf, gxi, gxr, 16)
	same(t, "phase 1 IV", iv, v.one(t, "initial_IV", 0))

	// HASH_I and HASH_R (RFC 2409 section 5): what strongSwan hashed
	// starts with the exchange's values in the RFC's order for each; the
	// ID payload body follows.
	for _, c := range []struct {
		name   string
		hash   func(PRF, []byte, []byte, []byte, Cookie, Cookie, []byte, []byte) []byte
		prefix [][]byte
	}{
		{"HASH_I", HashI, [][]byte{gxi, gxr, ckyI[:], ckyR[:], saiB}},
		{"HASH_R", HashR, [][]byte{gxr, gxi, ckyR[:], ckyI[:], saiB}},
	} {
		data := v.one(t, c.name+"_data", 0)
		prefix := bytes.Join(c.prefix, nil)
		if !bytes.HasPrefix(data, prefix) {
			t.Fatalf("%s: strongSwan hashed other inputs than RFC 2409's", c.name)
		}
		same(t, c.name, c.hash(prf, skeyid, gxi, gxr, ckyI, ckyR, saiB, data[len(prefix):]), v.one(t, c.name, 0))
	}

	// Phase 1's CBC chain: each message's last cipher block is the next
	// IV (RFC 2409 Appendix B); quick mode's first IV hashes the last one
	// with its message ID.
	for i, msg := range v.messages[4:6] {
		same(t, "the IV after main mode message "+string(rune('5'+i)), msg[len(msg)-16:], v.one(t, "IV_for_MID_0", i))
	}
	qm, _ := ParseHeader(v.messages[6])
	mid := qm.MessageID
	midLabel := "IV_for_MID_" + itoa(mid)
	same(t, "quick mode's first IV", MessageIV(prf, v.messages[5][len(v.messages[5])-16:], mid, 16), v.one(t, midLabel, 0))

	// Quick mode: strongSwan logged each message's payloads in clear
	// (plain), main mode's 5 and 6 first.
	plains := v.values["plain"]
	if len(plains) < 5 {
		t.Fatalf("%d plain messages in the fixture, want 5", len(plains))
	}
	qm1, qm2, qm3 := plains[2], plains[3], plains[4]
	niQM, after1 := payloadData(t, PayloadHash, qm1, PayloadNonce)
	nrQM, after2 := payloadData(t, PayloadHash, qm2, PayloadNonce)
	same(t, "HASH(1)", QuickHash1(prf, k.A, mid, after1), v.one(t, "Hash(1)", 0))
	same(t, "HASH(2)", QuickHash2(prf, k.A, mid, niQM, after2), v.one(t, "Hash(2)", 0))
	same(t, "HASH(3)", QuickHash3(prf, k.A, mid, niQM, nrQM), v.one(t, "Hash(3)", 0))
	same(t, "quick mode message 3's HASH payload", qm3[4:], v.one(t, "Hash(3)", 0))

	// KEYMAT = prf+(SKEYID_d, g(qm)^xy | protocol | SPI | Ni_b | Nr_b)
	// (RFC 2409 section 5.5): the initiator's outbound SA uses the
	// responder's SPI, and the other way round.
	sa1, _ := payloadData(t, PayloadHash, qm1, PayloadSA)
	sa2, _ := payloadData(t, PayloadHash, qm2, PayloadSA)
	spiI, spiR := firstSPI(t, sa1), firstSPI(t, sa2)
	gqm := v.one(t, "DH_secret", 0)
	for _, c := range []struct {
		dir string
		spi []byte
	}{{"initiator", spiR}, {"responder", spiI}} {
		seed := bytes.Join([][]byte{gqm, {3}, c.spi, niQM, nrQM}, nil)
		same(t, c.dir+" SA seed", seed, v.one(t, c.dir+"_SA_seed", 0))
		km := KeyMat(prf, k.D, gqm, 3, c.spi, niQM, nrQM, 64) // AES-256 key, then HMAC-SHA-256 key
		same(t, c.dir+" encryption key", km[:32], v.one(t, "encryption_"+c.dir+"_key", 0))
		same(t, c.dir+" integrity key", km[32:], v.one(t, "integrity_"+c.dir+"_key", 0))
	}
}

// firstSPI is the SPI of an SA payload body's first proposal.
func firstSPI(t *testing.T, saBody []byte) []byte {
	t.Helper()
	sa, err := parseSA(saBody)
	if err != nil || len(sa.Proposals) == 0 {
		t.Fatalf("quick mode SA payload: %v", err)
	}
	return sa.Proposals[0].SPI
}

func itoa(v uint32) string {
	var b [10]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
