package interop

import (
	"context"

	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// Android knows racoon on Android up to 11 (12 dropped L2TP): it offers
// MODP1024 and nothing else, announces fragmentation with racoon's
// flags, and NAT-T. Loading this plugin is the operator's leave for
// MODP1024 with AES for these clients; 3DES stays refused. In IKEv2 it
// knows Android 12+'s built-in client by its offer (ikev2.go).
type Android struct{ base }

// NewAndroid makes the plugin; it has no options.
func NewAndroid() *Android { return &Android{base{family: "android"}} }

func (a *Android) Configure(_ context.Context, options map[string]string) ([]string, error) {
	if err := a.configure(options); err != nil {
		return nil, err
	}
	return []string{"Android clients may use MODP1024 with AES"}, nil
}

func (a *Android) Classify(_ context.Context, req sdk.ClassifyRequest) (sdk.Classification, error) {
	if req.Version == 2 {
		return classifyAndroidV2(req), nil
	}
	if _, win := isWindows(req.VendorIDs); win || !hasVID(req.VendorIDs, clients.FragmentationRacoon) {
		return sdk.Classification{}, nil
	}
	if !req.Initiator && !offer(req.Offered).all(func(_, _, g string) bool { return g == "modp1024" }) {
		return sdk.Classification{}, nil
	}
	return sdk.Classification{Family: "android", Detail: "racoon (Android up to 11)",
		Flags: append([]string{"fragmentation"}, nattFlags(req.VendorIDs)...)}, nil
}

func (a *Android) AdjustProposals(_ context.Context, req sdk.AdjustRequest) (sdk.AdjustResult, error) {
	if req.Version == 2 {
		// Curve25519 costs Android (and us) far less than MODP2048.
		return adjustFirst(req, "aes256gcm16-prfsha256-curve25519", "Android's own first choice, and the cheapest group"), nil
	}
	if !req.Phase1 {
		return sdk.AdjustResult{Proposals: req.Proposals}, nil
	}
	props, notes := adjust(req.Proposals, nil, []string{"aes256-sha1-modp1024", "aes128-sha1-modp1024"},
		"Android's racoon offers no stronger group (interop-android)")
	return sdk.AdjustResult{Proposals: props, Notes: notes}, nil
}
