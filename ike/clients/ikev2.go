package clients

// The built-in IKEv2 clients' default offers, in their order, in
// Gatehouse's suite notation (as far as our catalogue has their suites:
// 3DES, DES and NULL encryption are not in it). Gathered 2026-12 from
// Microsoft's, Apple's and Android's documentation and sources.

// V2Family is what one built-in IKEv2 client offers.
type V2Family struct {
	Name string
	// IKE is the IKE SA offer (IKE_SA_INIT); ESP the child's (IKE_AUTH).
	IKE, ESP []string
	// VendorIDs go in IKE_SA_INIT.
	VendorIDs [][]byte
	// DHCPInform: once connected, it asks for split-tunnel routes with a
	// DHCPINFORM through the tunnel (Windows).
	DHCPInform bool
}

// V2Windows is Windows 10/11's IKEv2 client as installed: every IKE SA
// suite with MODP1024 only, which a server refuses unless it allows
// legacy groups (the NegotiateDH2048_AES256 registry value or
// Set-VpnConnectionIPsecConfiguration fix it: V2WindowsDH2048); ESP
// AES-CBC with SHA-1, no PFS.
var V2Windows = V2Family{
	Name:       "windows",
	IKE:        []string{"aes256-sha1-modp1024", "aes128-sha1-modp1024", "aes256-sha256-modp1024", "aes256-sha384-modp1024"},
	ESP:        []string{"aes256-sha1", "aes128-sha1"},
	VendorIDs:  [][]byte{MSNT5(9), NegotiationDiscovery, CGA},
	DHCPInform: true,
}

// WindowsDH2048Fix is what makes Windows's IKEv2 client offer MODP2048,
// for refusals of its default offer.
const WindowsDH2048Fix = `set the client's registry value HKLM\SYSTEM\CurrentControlSet\Services\Rasman\Parameters\NegotiateDH2048_AES256 ` +
	"to 1 (or run Set-VpnConnectionIPsecConfiguration) so it offers MODP2048"

// V2WindowsDH2048 is Windows with NegotiateDH2048_AES256 = 1: AES-256
// with MODP2048 first, then its defaults.
var V2WindowsDH2048 = V2Family{
	Name:       "windows-dh2048",
	IKE:        append([]string{"aes256-sha256-modp2048", "aes256-sha1-modp2048"}, V2Windows.IKE...),
	ESP:        V2Windows.ESP,
	VendorIDs:  V2Windows.VendorIDs,
	DHCPInform: true,
}

// V2Apple is macOS and iOS: AES-256 with SHA2-256 over MODP2048, then
// ECP256; ESP AES-256 with SHA2-256, no PFS.
var V2Apple = V2Family{
	Name: "apple",
	IKE:  []string{"aes256-sha256-modp2048", "aes256-sha256-ecp256"},
	ESP:  []string{"aes256-sha256", "aes256gcm16"},
}

// V2Android is Android 12 and later: AES-GCM and AES-CBC with SHA2 over
// Curve25519 and MODP2048 to 4096, no NIST curves, no MODP1024; ESP
// without SHA-1 or MD5.
var V2Android = V2Family{
	Name: "android",
	IKE:  []string{"aes256gcm16-prfsha256-curve25519", "aes128gcm16-prfsha256-curve25519", "aes256-sha256-modp2048", "aes128-sha256-modp3072"},
	ESP:  []string{"aes256gcm16", "aes128gcm16", "aes256-sha256"},
}

// V2All lists the IKEv2 families by name.
var V2All = []*V2Family{&V2Windows, &V2WindowsDH2048, &V2Apple, &V2Android}

// V2ByName finds an IKEv2 family.
func V2ByName(name string) (*V2Family, bool) {
	for _, f := range V2All {
		if f.Name == name {
			return f, true
		}
	}
	return nil, false
}
