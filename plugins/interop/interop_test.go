package interop

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func request(f *clients.Family) sdk.ClassifyRequest {
	r := sdk.ClassifyRequest{VendorIDs: f.VendorIDs}
	for _, o := range f.Offer {
		r.Offered = append(r.Offered, sdk.ProposalText{Text: o.String(), LifetimeSeconds: uint32(o.Lifetime.Seconds())})
	}
	return r
}

// Each plugin claims its own family and no other.
func TestEachPluginKnowsItsFamilyOnly(t *testing.T) {
	reqs := map[string]sdk.ClassifyRequest{}
	for _, f := range clients.All {
		reqs[f.Name] = request(f)
	}
	ownFamilies(t, reqs, map[string]string{"windows": "windows", "windows-legacy": "windows", "apple": "apple", "android": "android"})
}

// ownFamilies checks that each plugin claims the first messages reqs (by
// client name) whose owner (by client name) it is, and no others.
func ownFamilies(t *testing.T, reqs map[string]sdk.ClassifyRequest, owner map[string]string) {
	t.Helper()
	plugins := map[string]sdk.Interop{"windows": NewWindows(), "apple": NewApple(), "android": NewAndroid()}
	for client, req := range reqs {
		for name, p := range plugins {
			c, err := p.Classify(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			want := ""
			if owner[client] == name {
				want = name
			}
			if c.Family != want {
				t.Errorf("interop-%s classified %s as %q, want %q", name, client, c.Family, want)
			}
		}
	}
}

func TestWindowsFlagsAndHint(t *testing.T) {
	w := NewWindows()
	c, _ := w.Classify(context.Background(), request(&clients.WindowsLegacy))
	if c.Detail != "Windows 7" || !strings.Contains(c.RefusalHint, "allow_legacy: true") {
		t.Fatalf("%+v", c)
	}
	for _, f := range []string{"qm-notify-message-id", "natt-draft", "fragmentation", "initial-contact"} {
		if !slices.Contains(c.Flags, f) {
			t.Errorf("flags %v lack %s", c.Flags, f)
		}
	}
	if _, err := w.Configure(context.Background(), map[string]string{"allow_legacy": "yes"}); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("a bad value: %v", err)
	}
	if _, err := w.Configure(context.Background(), map[string]string{"allow_des": "true"}); !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "allow_legacy") {
		t.Fatalf("an unknown option: %v", err)
	}
	notes, err := w.Configure(context.Background(), map[string]string{"allow_legacy": "true"})
	if err != nil || len(notes) != 1 {
		t.Fatalf("%v %v", notes, err)
	}
	if c, _ := w.Classify(context.Background(), request(&clients.WindowsLegacy)); c.RefusalHint != "" {
		t.Fatalf("hint with legacy allowed: %q", c.RefusalHint)
	}
	ours := []sdk.ProposalText{{Text: "aes256-sha1-modp2048", LifetimeSeconds: 28800}, {Text: "aes128-sha256-ecp256", LifetimeSeconds: 28800}}
	r, _ := w.AdjustProposals(context.Background(), sdk.AdjustRequest{Phase1: true, Proposals: ours})
	var got []string
	for _, p := range r.Proposals {
		got = append(got, p.Text)
	}
	want := []string{"aes256-sha1-ecp384", "aes128-sha1-ecp256", "aes256-sha1-modp2048", "aes128-sha256-ecp256", "3des-sha1-modp1024"}
	if !slices.Equal(got, want) || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "3des-sha1-modp1024") {
		t.Fatalf("adjusted %v (notes %v), want %v", got, r.Notes, want)
	}
	r, _ = w.AdjustProposals(context.Background(), sdk.AdjustRequest{Proposals: []sdk.ProposalText{{Text: "aes256-sha1"}}})
	if len(r.Proposals) != 2 || r.Proposals[1].Text != "3des-sha1" {
		t.Fatalf("ESP %v", r.Proposals)
	}
}

func TestAppleAndAndroidTakeNoOptions(t *testing.T) {
	for _, p := range []sdk.Interop{NewApple(), NewAndroid()} {
		if _, err := p.Configure(context.Background(), map[string]string{"allow_legacy": "true"}); !errors.Is(err, sdk.ErrInvalid) ||
			!strings.Contains(err.Error(), "options: none") {
			t.Fatalf("%v", err)
		}
	}
	r, _ := NewAndroid().AdjustProposals(context.Background(), sdk.AdjustRequest{Phase1: true, Proposals: []sdk.ProposalText{{Text: "aes256-sha256-modp2048"}}})
	if len(r.Proposals) != 3 || r.Proposals[1].Text != "aes256-sha1-modp1024" || len(r.Notes) != 1 {
		t.Fatalf("%+v", r)
	}
}

// requestV2 is a built-in IKEv2 client's IKE_SA_INIT as the core hands it
// over.
func requestV2(f *clients.V2Family) sdk.ClassifyRequest {
	r := sdk.ClassifyRequest{VendorIDs: f.VendorIDs, Version: 2}
	for _, s := range f.IKE {
		r.Offered = append(r.Offered, sdk.ProposalText{Text: s, LifetimeSeconds: 86400})
	}
	return r
}

// Each plugin claims its own IKEv2 family and no other; strongSwan's
// offer (NIST curves and Curve25519) is no one's.
func TestEachPluginKnowsItsIKEv2FamilyOnly(t *testing.T) {
	strongswan := &clients.V2Family{Name: "strongswan", IKE: []string{"aes128-sha256-ecp256", "aes256-sha256-modp2048", "aes256-sha256-curve25519"}}
	reqs := map[string]sdk.ClassifyRequest{}
	for _, f := range append(clients.V2All, strongswan) {
		reqs[f.Name] = requestV2(f)
	}
	ownFamilies(t, reqs, map[string]string{"windows": "windows", "windows-dh2048": "windows", "apple": "apple", "android": "android"})
}

// interop-windows names the registry value for Windows's MODP1024-only
// offer, and with allow_legacy adds Windows's own suites after ours.
func TestWindowsIKEv2(t *testing.T) {
	w := NewWindows()
	c, _ := w.Classify(context.Background(), requestV2(&clients.V2Windows))
	if !strings.Contains(c.RefusalHint, "NegotiateDH2048_AES256") || !strings.Contains(c.RefusalHint, "allow_legacy") {
		t.Fatalf("hint %q", c.RefusalHint)
	}
	if c, _ := w.Classify(context.Background(), requestV2(&clients.V2WindowsDH2048)); c.RefusalHint != "" {
		t.Fatalf("hint for an offer with MODP2048: %q", c.RefusalHint)
	}
	ours := []sdk.ProposalText{{Text: "aes256-sha256-modp2048"}}
	if r, _ := w.AdjustProposals(context.Background(), sdk.AdjustRequest{Phase1: true, Version: 2, Proposals: ours}); len(r.Proposals) != 1 {
		t.Fatalf("without allow_legacy: %v", r.Proposals)
	}
	if _, err := w.Configure(context.Background(), map[string]string{"allow_legacy": "true"}); err != nil {
		t.Fatal(err)
	}
	r, _ := w.AdjustProposals(context.Background(), sdk.AdjustRequest{Phase1: true, Version: 2, Proposals: ours})
	var got []string
	for _, p := range r.Proposals {
		got = append(got, p.Text)
	}
	if want := append([]string{"aes256-sha256-modp2048"}, clients.V2Windows.IKE...); !slices.Equal(got, want) || len(r.Notes) != 1 {
		t.Fatalf("adjusted %v (notes %v), want %v", got, r.Notes, want)
	}
	esp := []sdk.ProposalText{{Text: "aes256gcm16"}}
	if r, _ := w.AdjustProposals(context.Background(), sdk.AdjustRequest{Version: 2, Proposals: esp}); !slices.Equal(r.Proposals, esp) {
		t.Fatalf("ESP changed: %v", r.Proposals)
	}
}
