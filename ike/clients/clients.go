// Package clients describes what the IKEv1 clients built into Windows,
// macOS/iOS and Android send first: main mode transforms in order, with
// lifetimes, the vendor IDs, the quick mode suites and the identity. The
// interop plugins recognise peers by these vendor IDs; tests replay the
// first messages; `gatehouse connect --profile` offers the same sets.
//
// Sources: Microsoft's documentation of the Windows L2TP/IPsec client,
// ike-scan's vendor ID catalogue and published ike-scan transcripts of
// Windows servers. None of it comes from a capture of our own:
// docs/interop.md says what is unverified.
package clients

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"slices"
	"time"

	"github.com/gatehouse/gatehouse/ike"
)

func md5Of(s string) []byte { h := md5.Sum([]byte(s)); return h[:] }

func hexBytes(b ...byte) []byte { return b }

// Vendor IDs.
var (
	// MSNT5Prefix is MS NT5 ISAKMPOAKLEY; a 4-byte Windows version
	// follows (MSNT5).
	MSNT5Prefix = hexBytes(0x1e, 0x2b, 0x51, 0x69, 0x05, 0x99, 0x1c, 0x7d, 0x7c, 0x96, 0xfc, 0xbf, 0xb5, 0x87, 0xe4, 0x61)
	// NegotiationDiscovery is "MS-Negotiation Discovery Capable".
	NegotiationDiscovery = hexBytes(0xfb, 0x1d, 0xe3, 0xcd, 0xf3, 0x41, 0xb7, 0xea, 0x16, 0xb7, 0xe5, 0xbe, 0x08, 0x55, 0xf1, 0x20)
	// InitialContact is Microsoft's "Vid-Initial-Contact".
	InitialContact = hexBytes(0x26, 0x24, 0x4d, 0x38, 0xed, 0xdb, 0x61, 0xb3, 0x17, 0x2a, 0x36, 0xe3, 0xd0, 0xcf, 0xb8, 0x19)
	// CGA is "IKE CGA version 1".
	CGA = hexBytes(0xe3, 0xa5, 0x96, 0x6a, 0x76, 0x37, 0x9f, 0xe7, 0x07, 0x22, 0x82, 0x31, 0xe5, 0xce, 0x86, 0x52)
	// Fragmentation is MD5("FRAGMENTATION"); racoon appends 4 bytes of
	// flags (FragmentationRacoon), Windows sends the 16 bytes alone.
	Fragmentation       = md5Of("FRAGMENTATION")
	FragmentationRacoon = append(md5Of("FRAGMENTATION"), 0x80, 0, 0, 0)
	RFC3947             = md5Of("RFC 3947")
	// DraftNATT02N is the NAT-T draft 02 name with a newline, as Windows
	// and racoon send it.
	DraftNATT02N = md5Of("draft-ietf-ipsec-nat-t-ike-02\n")
	// DPD is RFC 3706's vendor ID, version 1.0.
	DPD = hexBytes(0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00)
)

// DraftNATT is the vendor ID of NAT-T draft n (00 to 08).
func DraftNATT(n int) []byte { return md5Of(fmt.Sprintf("draft-ietf-ipsec-nat-t-ike-%02d", n)) }

// MSNT5 is MS NT5 ISAKMPOAKLEY with a Windows version.
func MSNT5(version uint32) []byte {
	return append(slices.Clone(MSNT5Prefix), byte(version>>24), byte(version>>16), byte(version>>8), byte(version))
}

// WindowsVersion reads the version of an MS NT5 vendor ID.
func WindowsVersion(vid []byte) (uint32, bool) {
	if len(vid) != 20 || !bytes.HasPrefix(vid, MSNT5Prefix) {
		return 0, false
	}
	return uint32(vid[16])<<24 | uint32(vid[17])<<16 | uint32(vid[18])<<8 | uint32(vid[19]), true
}

// WindowsRelease names an MS NT5 version as ike-scan's catalogue does.
func WindowsRelease(v uint32) string {
	switch v {
	case 2:
		return "Windows 2000"
	case 3:
		return "Windows XP"
	case 4:
		return "Windows Server 2003 or XP SP2"
	case 5:
		return "Windows Vista"
	case 6:
		return "Windows Server 2008"
	case 7:
		return "Windows 7"
	case 8:
		return "Windows Server 2008 R2"
	case 9:
		return "Windows 8 to 11"
	}
	return fmt.Sprintf("Windows (MS NT5 version %d)", v)
}

// IsDraftNATT reports whether a vendor ID names one of the NAT-T drafts.
func IsDraftNATT(v []byte) bool {
	if bytes.Equal(v, DraftNATT02N) {
		return true
	}
	for n := 0; n <= 8; n++ {
		if bytes.Equal(v, DraftNATT(n)) {
			return true
		}
	}
	return false
}

// Attribute values (RFC 2409 appendix A).
const (
	des, tripleDES, aes                          = 1, 5, 7
	md5Hash, sha1, sha256, sha512                = 1, 2, 4, 6
	modp1024, modp1536, modp2048, ecp256, ecp384 = 2, 5, 14, 19, 20
)

// Family is one client's first messages.
type Family struct {
	Name string
	// Offer is the main mode offer in order (auth method PSK); Lifetime
	// is every transform's.
	Offer    []ike.Phase1
	Lifetime time.Duration
	// VendorIDs of message 1, in order.
	VendorIDs [][]byte
	// ESP is the quick mode offer in Gatehouse's notation, in order, as
	// far as our ESP catalogue has the client's suites (MD5 and DES are
	// not in it); ESPLifetime is its lifetime.
	ESP         []string
	ESPLifetime time.Duration
	// PrivateID: the client identifies with ID_IPV4_ADDR of its own
	// (private) address, whatever a NAT makes of it.
	PrivateID bool
}

func p1(cipher uint16, bits int, hash, group uint16, life time.Duration) ike.Phase1 {
	return ike.Phase1{Cipher: cipher, KeyBits: bits, Hash: hash, Group: group, Auth: ike.AuthPSK, Lifetime: life}
}

func offer(life time.Duration, ts ...[4]int) []ike.Phase1 {
	out := make([]ike.Phase1, len(ts))
	for i, t := range ts {
		out[i] = p1(uint16(t[0]), t[1], uint16(t[2]), uint16(t[3]), life)
	}
	return out
}

const (
	eightHours = 8 * time.Hour
	oneHour    = time.Hour
)

// Windows is the Windows 10/11 L2TP/IPsec client: AES-256/SHA1/ECP384,
// AES-128/SHA1/ECP256, AES-256/SHA1/MODP2048, 8 hours; the vendor IDs in
// the order ike-scan transcripts show them.
var Windows = Family{
	Name: "windows",
	Offer: offer(eightHours, [4]int{aes, 256, sha1, ecp384}, [4]int{aes, 128, sha1, ecp256},
		[4]int{aes, 256, sha1, modp2048}),
	Lifetime:  eightHours,
	VendorIDs: [][]byte{MSNT5(9), RFC3947, DraftNATT02N, Fragmentation, NegotiationDiscovery, InitialContact, CGA},
	ESP:       []string{"aes256-sha1", "aes128-sha1"}, ESPLifetime: oneHour, PrivateID: true,
}

// WindowsLegacy is a Windows 7 client on its older settings: 3DES/SHA1/
// MODP1024 only, which needs the operator's leave.
var WindowsLegacy = Family{
	Name:      "windows-legacy",
	Offer:     offer(eightHours, [4]int{tripleDES, 192, sha1, modp1024}),
	Lifetime:  eightHours,
	VendorIDs: [][]byte{MSNT5(7), RFC3947, DraftNATT02N, Fragmentation, NegotiationDiscovery, InitialContact},
	ESP:       []string{"3des-sha1"}, ESPLifetime: oneHour, PrivateID: true,
}

// Apple is racoon in macOS and iOS: 14 transforms of 3600 s, DH14 then
// DH5 then DH2, every NAT-T draft's vendor ID and DPD.
var Apple = Family{
	Name: "apple",
	Offer: offer(oneHour,
		[4]int{aes, 256, sha256, modp2048}, [4]int{aes, 256, sha1, modp2048}, [4]int{aes, 256, md5Hash, modp2048}, [4]int{aes, 256, sha512, modp2048},
		[4]int{aes, 256, sha256, modp1536}, [4]int{aes, 256, sha1, modp1536}, [4]int{aes, 256, md5Hash, modp1536},
		[4]int{aes, 256, sha256, modp1024}, [4]int{aes, 256, sha1, modp1024}, [4]int{aes, 256, md5Hash, modp1024},
		[4]int{aes, 128, sha1, modp1024}, [4]int{aes, 128, md5Hash, modp1024},
		[4]int{tripleDES, 192, sha1, modp1024}, [4]int{tripleDES, 192, md5Hash, modp1024}),
	Lifetime: oneHour,
	VendorIDs: [][]byte{RFC3947, DraftNATT(8), DraftNATT(7), DraftNATT(6), DraftNATT(5), DraftNATT(4), DraftNATT(3), DraftNATT(2),
		DraftNATT02N, DraftNATT(1), DraftNATT(0), DPD},
	ESP:         []string{"aes256-sha256", "aes256-sha1", "aes128-sha256", "aes128-sha1", "3des-sha1"},
	ESPLifetime: oneHour,
}

// Android is racoon on Android up to 11: MODP1024 only, 8 hours,
// fragmentation, NAT-T and DPD.
var Android = Family{
	Name: "android",
	Offer: offer(eightHours,
		[4]int{aes, 256, sha1, modp1024}, [4]int{aes, 256, md5Hash, modp1024}, [4]int{aes, 128, sha1, modp1024}, [4]int{aes, 128, md5Hash, modp1024},
		[4]int{tripleDES, 192, sha1, modp1024}, [4]int{tripleDES, 192, md5Hash, modp1024}, [4]int{des, 64, sha1, modp1024}, [4]int{des, 64, md5Hash, modp1024}),
	Lifetime:    eightHours,
	VendorIDs:   [][]byte{RFC3947, DraftNATT02N, DraftNATT(2), FragmentationRacoon, DPD},
	ESP:         []string{"aes256-sha1", "aes128-sha1", "3des-sha1"},
	ESPLifetime: eightHours,
}

// All lists the families by name.
var All = []*Family{&Windows, &WindowsLegacy, &Apple, &Android}

// ByName finds a family.
func ByName(name string) (*Family, bool) {
	for _, f := range All {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}

// Message1 is the family's main mode first message, as it puts it on the
// wire: the SA payload, then the vendor IDs.
func (f *Family) Message1(icookie ike.Cookie) ([]byte, error) {
	ps := []ike.Payload{ike.TransformOffer(f.Offer)}
	for _, v := range f.VendorIDs {
		ps = append(ps, &ike.Data{T: ike.PayloadVendorID, Data: v})
	}
	m := ike.Message{Header: ike.Header{SPIi: icookie, Version: 0x10, Exchange: ike.ExchangeMain}, Payloads: ps}
	return m.Encode()
}
