package interop

import (
	"context"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// Apple knows racoon in macOS and iOS: every NAT-T draft's vendor ID and
// an offer of 3600 s transforms over DH14, DH5 and DH2. It picks
// AES-256/SHA-256/MODP2048 first, as Apple's clients are known to, and
// speaks the NAT-T drafts when the client announces no RFC 3947. In
// IKEv2 it knows the built-in client by its offer (ikev2.go).
type Apple struct{ base }

// NewApple makes the plugin; it has no options.
func NewApple() *Apple { return &Apple{base{family: "apple"}} }

func (a *Apple) Configure(_ context.Context, options map[string]string) ([]string, error) {
	return nil, a.configure(options)
}

func (a *Apple) Classify(_ context.Context, req sdk.ClassifyRequest) (sdk.Classification, error) {
	if req.Version == 2 {
		return classifyAppleV2(req), nil
	}
	if _, win := isWindows(req.VendorIDs); win || countDrafts(req.VendorIDs) < 5 {
		return sdk.Classification{}, nil
	}
	o := offer(req.Offered)
	if !req.Initiator && !(o.any(func(_, _, g string) bool { return g == "modp2048" }) && o.any(func(_, _, g string) bool { return g == "modp1536" })) {
		return sdk.Classification{}, nil
	}
	return sdk.Classification{Family: "apple", Detail: "racoon (macOS/iOS)", Flags: nattFlags(req.VendorIDs)}, nil
}

func (a *Apple) AdjustProposals(_ context.Context, req sdk.AdjustRequest) (sdk.AdjustResult, error) {
	// The same suite in both versions.
	return adjustFirst(req, "aes256-sha256-modp2048", "what Apple's clients pick"), nil
}
