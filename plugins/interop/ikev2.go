package interop

import (
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// IKEv2 peers (ClassifyRequest.Version 2). The built-in IKEv2 clients are
// told apart as ike/clients describes them: Windows by MS NT5
// ISAKMPOAKLEY, as in IKEv1; Apple and Android send no vendor ID, so by
// the groups of their IKE_SA_INIT offer, read as a set (the core caches
// answers by the set of suites offered, not their order).

// groupsOf is the set of groups an IKEv2 offer names.
func groupsOf(o offer) []string {
	var gs []string
	for _, p := range o {
		parts := strings.Split(p.Text, "-")
		gs = append(gs, parts[len(parts)-1])
	}
	slices.Sort(gs)
	return slices.Compact(gs)
}

// onlyGroup reports whether every suite offered is in group g.
func onlyGroup(o offer, g string) bool {
	gs := groupsOf(o)
	return len(gs) == 1 && gs[0] == g
}

// classifyWindowsV2 knows Windows's IKEv2 client. Its default offer has
// MODP1024 only; the hint names the registry value that makes it offer
// MODP2048, and the option that accepts MODP1024 instead.
func (w *Windows) classifyV2(req sdk.ClassifyRequest) sdk.Classification {
	ver, ok := isWindows(req.VendorIDs)
	if !ok {
		return sdk.Classification{}
	}
	// Windows asks for its split-tunnel routes by DHCPINFORM.
	c := sdk.Classification{Family: "windows", Detail: clients.WindowsRelease(ver) + ", IKEv2", Flags: []string{"dhcp-inform"}}
	if onlyGroup(offer(req.Offered), "modp1024") && !w.opt("allow_legacy") {
		c.RefusalHint = "this Windows client offers MODP1024 only: " + clients.WindowsDH2048Fix +
			"; or give interop-windows the option allow_legacy: true (plugins.load) and set legacy_algorithms: true"
	}
	return c
}

// adjustWindowsV2 adds Windows's own MODP1024 suites after ours when
// allow_legacy is set; the core still needs legacy_algorithms for them.
func (w *Windows) adjustWindowsV2(req sdk.AdjustRequest) sdk.AdjustResult {
	if !req.Phase1 || !w.opt("allow_legacy") {
		return sdk.AdjustResult{Proposals: req.Proposals}
	}
	props, notes := adjust(req.Proposals, nil, clients.V2Windows.IKE, "Windows's default IKEv2 offer, legacy Windows allowed (allow_legacy)")
	return sdk.AdjustResult{Proposals: props, Notes: notes}
}

// classifyAppleV2 knows macOS and iOS: MODP2048 and NIST P-256 with
// AES-256 and SHA2-256, and no Curve25519 (which Android and strongSwan
// offer).
func classifyAppleV2(req sdk.ClassifyRequest) sdk.Classification {
	o := offer(req.Offered)
	has := func(t string) bool {
		return slices.ContainsFunc(o, func(p sdk.ProposalText) bool { return p.Text == t })
	}
	if _, win := isWindows(req.VendorIDs); win || !has("aes256-sha256-modp2048") || !has("aes256-sha256-ecp256") ||
		slices.Contains(groupsOf(o), "curve25519") {
		return sdk.Classification{}
	}
	return sdk.Classification{Family: "apple", Detail: "macOS/iOS built-in client, by its IKEv2 offer"}
}

// androidGroups are the groups Android 12+ offers: no NIST curve, no
// MODP1024 or 1536.
var androidGroups = []string{"curve25519", "modp2048", "modp3072", "modp4096"}

// classifyAndroidV2 knows Android 12+: Curve25519 offered, and no group
// outside androidGroups.
func classifyAndroidV2(req sdk.ClassifyRequest) sdk.Classification {
	gs := groupsOf(offer(req.Offered))
	if _, win := isWindows(req.VendorIDs); win || !slices.Contains(gs, "curve25519") ||
		slices.ContainsFunc(gs, func(g string) bool { return !slices.Contains(androidGroups, g) }) {
		return sdk.Classification{}
	}
	return sdk.Classification{Family: "android", Detail: "Android 12+ built-in client, by its IKEv2 offer"}
}

// adjustFirst puts a family's preferred IKE SA suite first.
func adjustFirst(req sdk.AdjustRequest, first, why string) sdk.AdjustResult {
	if !req.Phase1 {
		return sdk.AdjustResult{Proposals: req.Proposals}
	}
	props, notes := adjust(req.Proposals, []string{first}, nil, why)
	return sdk.AdjustResult{Proposals: props, Notes: notes}
}
