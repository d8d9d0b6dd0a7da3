package interop

import (
	"context"

	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// Windows knows the Windows L2TP/IPsec and IKEv2 clients (ike/clients):
// the peer that sends MS NT5 ISAKMPOAKLEY with a version.
//
// Option allow_legacy accepts 3DES-SHA1-MODP1024 in main mode and
// 3DES-SHA1 in quick mode from Windows clients, which older releases and
// legacy settings offer and nothing else.
type Windows struct{ base }

// NewWindows makes the plugin with no options set.
func NewWindows() *Windows {
	return &Windows{base{family: "windows", known: []string{"allow_legacy"}}}
}

func (w *Windows) Configure(_ context.Context, options map[string]string) ([]string, error) {
	if err := w.configure(options); err != nil {
		return nil, err
	}
	if w.opt("allow_legacy") {
		return []string{"Windows clients may use 3DES and MODP1024 (allow_legacy)"}, nil
	}
	return nil, nil
}

func (w *Windows) Classify(_ context.Context, req sdk.ClassifyRequest) (sdk.Classification, error) {
	if req.Version == 2 {
		return w.classifyV2(req), nil
	}
	ver, ok := isWindows(req.VendorIDs)
	if !ok {
		return sdk.Classification{}, nil
	}
	c := sdk.Classification{Family: "windows", Detail: clients.WindowsRelease(ver),
		// Windows ties a quick mode error to its negotiation by message ID.
		Flags: append([]string{"qm-notify-message-id"}, nattFlags(req.VendorIDs)...)}
	if hasVID(req.VendorIDs, clients.Fragmentation) {
		c.Flags = append(c.Flags, "fragmentation") // the 16-byte form, without racoon's flags
	}
	if hasVID(req.VendorIDs, clients.InitialContact) {
		c.Flags = append(c.Flags, "initial-contact")
	}
	if !w.opt("allow_legacy") && offer(req.Offered).any(legacy) {
		c.RefusalHint = "this Windows client offers 3DES or MODP1024, which interop-windows accepts with the option allow_legacy: true (plugins.load)"
	}
	return c, nil
}

// AdjustProposals puts Windows 10/11's own order first, so that we pick
// what Windows prefers, and adds the legacy entries when allowed.
func (w *Windows) AdjustProposals(_ context.Context, req sdk.AdjustRequest) (sdk.AdjustResult, error) {
	if req.Version == 2 {
		return w.adjustWindowsV2(req), nil
	}
	var first, last []string
	why := "the Windows client's preference order"
	if req.Phase1 {
		first = []string{"aes256-sha1-ecp384", "aes128-sha1-ecp256", "aes256-sha1-modp2048"}
		if w.opt("allow_legacy") {
			last, why = []string{"3des-sha1-modp1024"}, "Windows's order, and legacy Windows allowed (allow_legacy)"
		}
	} else if w.opt("allow_legacy") {
		last, why = []string{"3des-sha1"}, "legacy Windows allowed (allow_legacy)"
	}
	props, notes := adjust(req.Proposals, first, last, why)
	return sdk.AdjustResult{Proposals: props, Notes: notes}, nil
}
