package ike

import (
	"bytes"
	"testing"
)

// Vectors from NIST's CAVP IKEv1 KDF samples (SP 800-135 section 5.1), as
// Mozilla NSS carries them in gtests/common/testvectors/ike-sha{1,256}-
// vectors.h; the appendix B and KEYMAT expansions there are NSS's own.
type kdfVectors struct {
	prf                           uint16
	gxy, ni, nr, skeyidSig        string
	skeyid, gxy2, ckyI, ckyR      string
	d, a, e                       string
	psk, pskNi, pskNr, pskSkeyid  string
	expKey, expand40, keymatSeed0 string
	expand132, keymat132          string
}

var kdf = []kdfVectors{{
	prf: HashSHA1,
	gxy: "8ba4cbc73c0187301dc19a975823854dbd641c597f637f8d053a83b9514673eb", ni: "69a62284195f1680", nr: "80c94ba25c8abda5",
	skeyidSig: "707197817fb2d90cf54d1842606bdea59b9f4823",
	skeyid:    "707197817fb2d90cf54d1842606bdea59b9f4823", gxy2: "8ba4cbc73c0187301dc19a975823854dbd641c597f637f8d053a83b9514673eb",
	ckyI: "8c3bcd3a69831d7f", ckyR: "d2d9a7ff4fbe95a7",
	d: "384be709a8a5e63c3ed160cfe3921c4b37d5b32d", a: "48b327575abe3adba0f279849e289022a13e2b47", e: "a4a415c8e0c38c0da847c356cc61c24df8025560",
	psk: "c0", pskNi: "03a6f25a83c8c2a3", pskNr: "9d958a6618f77e7f", pskSkeyid: "ab3be41bc62f2ef0c41a3076d58768be77fadd2e",
	expKey:    "63e81194946ebd05df7df5ebf5d8750056bf1f1d",
	expand132: "933347a07de5782247dd36d1562ffe0eecade1eb4134165257e3af1000af8ae3f165063828cbb60d910b7db38fa3c7f62c4afaaf3203da065c841729853edb23e9e7ac8286ae65c8cb6c667d79268c0bd6705abb9131698eb822b1c1f9dd142fc7be2c1010ee0152e10195add98999c6b6d42c8fe9c1b134d56ad5f2c6f20e815bd25c52",
	keymat132: "933347a07de5782247dd36d1562ffe0eecade1ebaeaa476a5f578c34a9b2b7101a621202f61db924c5ef9efa3bb2698095841603b7ac8a880329a927ecd4ad53a944b607a5ac2f3d154e2748c188d7370d76be83fc204fdacf0f66b99dd760ba619ffac65eda1420c8a936dac5a599afaf4043b29ef2b65dc042724355b550875316c6fd",
}, {
	prf: HashSHA256,
	gxy: "0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29", ni: "3f302be1abcb28e1", nr: "8c332ee006064c9b",
	skeyidSig: "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe",
	skeyid:    "750c5c94b9c2ec20b68033e024dadf0fa87e8b48c6561b21c72478451a06583d", gxy2: "a1ff3dc6cf9b4c04709943cb4ca1f1789bcf360b03f1d027de3ae8ee039e9155",
	ckyI: "6c6beb72631ddc3d", ckyR: "b84e24b22cffbd14",
	d: "a4f7ca7de913814813e3312099e7c943bd293483f387532330237f1b20957310", a: "1d4b705746c43b0a6fcbb8db33983c0f24ff6f8b6543e3779fed227c6067f004",
	e:   "03e6f16cd9ce9f64b5cdc5b34cca7163483ba5389a30afebef3d14640b0a815e",
	psk: "a0", pskNi: "ead9ced494868f41", pskNr: "f1aff4f425a94f18", pskSkeyid: "558a99b299773d267cf7c8ef073bf3b7af362c206c75a538403c5ef884d4cace",
	expKey:    "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe",
	expand132: "b10fff32cbeaa1e7afe6ab0b191e0bd63cd524849a4b56019146d232a24cf9af6b89494d2a360b06825db8bb0324c15cecf47fc0bc99e39bf1171a7f4bf1733dc49ef64c642e73b054b2e82456e34fa3c822da475e27e403b3da3929da50e6aa9e7f9252c68fa069b4b0edd374e80d35378c4f5e8ec285a1b169c92bbb5353d05ba94165",
	keymat132: "b10fff32cbeaa1e7afe6ab0b191e0bd63cd524849a4b56019146d232a24cf9af59f18ed9aabbb2dbbafecf48d72a34a8f72fab2ff4f37e5c917288a78ce00933612e9531a7469995c7f7cc33c7627cac3efbc819330c4fe3bfa3788799630f37bcb74800d82bbebd17b1906e304a786f4f810c266c15be1a30576039c293272748d65966",
}}

func cookie(s string) (c Cookie) { copy(c[:], mustHex(s)); return }

func TestKDFVectors(t *testing.T) {
	for _, v := range kdf {
		p, err := NewPRF(v.prf)
		if err != nil {
			t.Fatal(err)
		}
		check := func(name string, got []byte, want string) {
			t.Helper()
			if !bytes.Equal(got, mustHex(want)) {
				t.Errorf("hash %d %s:\n got %x\nwant %s", v.prf, name, got, want)
			}
		}
		check("SKEYID (signatures)", SkeyidSig(p, mustHex(v.ni), mustHex(v.nr), mustHex(v.gxy)), v.skeyidSig)
		check("SKEYID (preshared key)", SkeyidPSK(p, mustHex(v.psk), mustHex(v.pskNi), mustHex(v.pskNr)), v.pskSkeyid)
		k := DeriveKeys(p, mustHex(v.skeyid), mustHex(v.gxy2), cookie(v.ckyI), cookie(v.ckyR))
		check("SKEYID_d", k.D, v.d)
		check("SKEYID_a", k.A, v.a)
		check("SKEYID_e", k.E, v.e)
		key := mustHex(v.expKey)
		check("appendix B, 132 bytes", EncryptionKey(p, key, 132), v.expand132)
		check("appendix B, shorter than the key", EncryptionKey(p, key, 15), v.expKey[:30])
		// KEYMAT with the seed 0x00 (protocol 0, no SPI, no nonces) is the
		// KEYMAT expansion NSS tests.
		check("KEYMAT, 132 bytes", KeyMat(p, key, nil, 0, nil, nil, nil, 132), v.keymat132)
		check("KEYMAT, 15 bytes", KeyMat(p, key, nil, 0, nil, nil, nil, 15), v.keymat132[:30])
	}
}

func TestNewPRFRefusesMD5(t *testing.T) {
	if _, err := NewPRF(1); err == nil {
		t.Fatal("MD5 accepted")
	}
}
