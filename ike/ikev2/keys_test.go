package ikev2

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// NIST's CAVP component test vectors for the SP 800-135 IKEv2 KDF
// (ikev2.zip, HMAC-SHA-1, 132 bytes of DKM): SKEYSEED, the IKE SA's
// keying material, a child's without and with a new Diffie-Hellman, and a
// rekeyed IKE SA's SKEYSEED.
var nist = struct {
	ni, nr, gir, girNew, spii, spir, skeyseed, dkm, childDKM, childDHDKM, rekeySKEYSEED string
}{
	ni: "3651fef5c9c35e93", nr: "c09a8b90a3f04d59",
	gir: "d084a30166a50fb7325c3960874a839449ef9741c2f4f947d0201dd8c1269273d79509f37e3ca3eb4fa2fe2a28254e289cd3f34dad4eb4df1a07685a4b8a94fa" +
		"61e2491f7598b3ce65547ff133b3f63d1ac4175eaa695033f3cedb026a6873a36455172a8540b8a5d23a0143bed0390ee49b168269d75fffee9fb62be965993c",
	girNew: "52f00ab174c25d5b7139ae5ff4e8e9eddee5992d2e36adf8a559ffd90dab1442e4fbe429d320c0f33552a17d1557fa41ea70e8fb916c4fa27ed52b5f8ebd8461" +
		"afa78f1159159a64055ac5f6319e29c28eae58cbc6847770f32c3fed1d04750484f854790f95e9ec01bc5bc461f24966462e359511329305038e94deb6dd42c2",
	spii: "8e5c3ae507221684", spir: "b1f201bb155c3acd",
	skeyseed: "cd2e8050137832245f1dbacc6e4f0a92f94d45d6",
	dkm: "6f1b12cad3cbe097b35430356d869d54cddb0198ec859174d53ceb92dddedbe2436db69f60977c58fa63bbb667f8d36920b109baae8f6c61a9ac49fe" +
		"da01843225d080ec5539d5881a25521ffb2a0a91874a9c0a27fcc2d717eb8963a9e3a89c7ab264757284c28cf8c3ca40576f4220b052b1fb8e9ad60b" +
		"a3c80557323331a8cbb89f20",
	childDKM: "4727dc0ef94eb326ce131cf282fb652faa638ad0ddae3786a11bcc0309876009f8c485de011ad962c5b1ca8a41ff8145445749079c5686e26ffebbc3" +
		"42f06981f3da745e11ca0976424d1f8caec623d59dc7186deb20a27b411d1dcb70a365440bf7de905088b0692e8addc094e18d1939bdb67e89798ca6" +
		"b239e2ccb81c2409dac0106c",
	childDHDKM: "b109c21ad4c0797768c1cec9e63554681e48f224bca7f23c20c4ea7041983451e9aa1d5408656c8a975ff1b9d9a12c75ffeb64bdecb30174664cccb4" +
		"e14f1c377b7f6d1525af77c7092aac3e47f917ebae8297fb5539d2008ce830823a09cc197361d4a289c72745f6ce9fefe812be5bf55b3200fbb82e41" +
		"a4a40877d3fe106db909707b",
	rekeySKEYSEED: "3b03bce748c96d5e8306918d2ff89b68f0648da3",
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKDFAgainstNIST(t *testing.T) {
	sha1, _ := alg.ParseHash("sha1")
	p := sha1.PRF()
	ni, nr, gir, girNew := unhex(t, nist.ni), unhex(t, nist.nr), unhex(t, nist.gir), unhex(t, nist.girNew)
	var spii, spir SPI
	copy(spii[:], unhex(t, nist.spii))
	copy(spir[:], unhex(t, nist.spir))
	check := func(what string, got []byte, want string) {
		t.Helper()
		if !bytes.Equal(got, unhex(t, want)) {
			t.Errorf("%s:\n got %x\nwant %s", what, got, want)
		}
	}
	skeyseed := SKEYSEED(p, ni, nr, gir)
	check("SKEYSEED", skeyseed, nist.skeyseed)
	seed := append(append(append(append([]byte(nil), ni...), nr...), spii[:]...), spir[:]...)
	dkm, err := prfPlus(p, skeyseed, seed, 132)
	if err != nil {
		t.Fatal(err)
	}
	check("DKM", dkm, nist.dkm)
	skd := dkm[:p.Size]
	child, _ := ChildKeymat(p, skd, nil, ni, nr, 132)
	check("child DKM", child, nist.childDKM)
	childDH, _ := ChildKeymat(p, skd, girNew, ni, nr, 132)
	check("child DKM with Diffie-Hellman", childDH, nist.childDHDKM)
	check("rekeyed SKEYSEED", RekeySKEYSEED(p, skd, girNew, ni, nr), nist.rekeySKEYSEED)

	// DeriveKeys cuts the same stream: AES-CBC-256 with HMAC-SHA1-96
	// takes 20+20+20+32+32+20+20 bytes.
	aes, _ := alg.ParseCipher("aes256")
	k, err := DeriveKeys(p, skeyseed, ni, nr, spii, spir, aes, sha1)
	if err != nil {
		t.Fatal(err)
	}
	whole := bytes.Join([][]byte{k.D, k.Ai, k.Ar, k.Ei, k.Er, k.Pi, k.Pr}, nil)
	full, _ := prfPlus(p, skeyseed, seed, len(whole))
	if len(k.Ei) != 32 || len(k.Ai) != 20 || len(k.Pr) != 20 || !bytes.Equal(whole, full) || !bytes.Equal(whole[:132], dkm) {
		t.Fatalf("keys cut wrong: %d/%d/%d bytes", len(k.Ei), len(k.Ai), len(k.Pr))
	}
	// An AEAD suite has no integrity keys and carries its salt.
	gcm, _ := alg.ParseCipher("aes128gcm16")
	k, err = DeriveKeys(p, skeyseed, ni, nr, spii, spir, gcm, nil)
	if err != nil || len(k.Ai) != 0 || len(k.Ei) != 16+4 {
		t.Fatalf("AEAD keys: %v, %d and %d bytes", err, len(k.Ai), len(k.Ei))
	}
	if _, err := DeriveKeys(p, skeyseed, ni, nr, spii, spir, gcm, sha1); err == nil {
		t.Fatal("an AEAD cipher with an integrity algorithm was keyed")
	}
	k.Wipe()
	if !bytes.Equal(k.Ei, make([]byte, 20)) {
		t.Fatal("Wipe left key bytes")
	}
	if _, err := prfPlus(p, skeyseed, seed, 255*20+1); err == nil {
		t.Fatal("prf+ past 255 blocks")
	}
}

// An established SA's keys: SK_d and the four that protect messages,
// copied into a buffer that holds nothing else; SK_pi and SK_pr left out.
func TestKeysEstablished(t *testing.T) {
	k := &Keys{D: []byte{1, 1}, Ai: []byte{2}, Ar: []byte{3}, Ei: []byte{4, 4, 4}, Er: []byte{5, 5, 5}, Pi: []byte{6}, Pr: []byte{7}}
	e := k.Established()
	if string(e.D) != "\x01\x01" || string(e.Ai) != "\x02" || string(e.Ar) != "\x03" || string(e.Ei) != "\x04\x04\x04" ||
		string(e.Er) != "\x05\x05\x05" || e.Pi != nil || e.Pr != nil {
		t.Fatalf("%+v", e)
	}
	if cap(e.D) != 2 || cap(e.Er) != 3 || &e.D[0] == &k.D[0] {
		t.Fatal("the copies share memory with each other or the originals")
	}
	k.Wipe()
	if e.D[0] != 1 || e.Er[0] != 5 {
		t.Fatal("wiping the originals wiped the copies")
	}
}
