// Package interop holds the vendor-interop plugins' logic: each
// recognises one client family by the vendor IDs and the offer of its
// first message (ike/clients describes them) and says what that family
// needs: feature flags for the core's IKE tasks, proposals to accept,
// vendor IDs to send. The plugins/interop-* binaries serve them.
package interop

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// base carries what the three plugins share: their name, options and
// the proposals they put first or add.
type base struct {
	name, family string
	known        []string // option names

	mu   sync.Mutex
	opts map[string]bool
}

func (b *base) Info(context.Context) (sdk.InteropInfo, error) {
	return sdk.InteropInfo{Info: sdk.Info{Name: "interop-" + b.family, Version: "0.1.0"}, Families: []string{b.family},
		VendorIDPrefixes: readVendorIDs()}, nil
}

// readVendorIDs are the vendor IDs the three plugins read (MS NT5 by its
// prefix, the version after it; fragmentation's 16 bytes, racoon's flags
// after them): the core gives Classify nothing else, and caches its
// answers by these alone.
func readVendorIDs() [][]byte {
	out := [][]byte{clients.MSNT5Prefix, clients.Fragmentation, clients.InitialContact, clients.DraftNATT02N}
	for n := 0; n <= 8; n++ {
		out = append(out, clients.DraftNATT(n))
	}
	return out
}

// configure takes boolean options; anything else is refused.
func (b *base) configure(options map[string]string) error {
	opts := map[string]bool{}
	for k, v := range options {
		if !slices.Contains(b.known, k) {
			known := "none"
			if len(b.known) > 0 {
				known = strings.Join(b.known, ", ")
			}
			return fmt.Errorf("%w: interop-%s has no option %q (options: %s)", sdk.ErrInvalid, b.family, k, known)
		}
		on, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%w: interop-%s option %s: %q is not true or false", sdk.ErrInvalid, b.family, k, v)
		}
		opts[k] = on
	}
	b.mu.Lock()
	b.opts = opts
	b.mu.Unlock()
	return nil
}

func (b *base) opt(name string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opts[name]
}

func (b *base) VendorIDs(context.Context, sdk.VendorIDsRequest) ([][]byte, error) {
	return nil, nil // we never pose as a client family
}

// adjust puts first before the operator's list and appends last, each
// once; it returns a note for what it added.
func adjust(ours []sdk.ProposalText, first, last []string, why string) ([]sdk.ProposalText, []string) {
	life := uint32(0)
	if len(ours) > 0 {
		life = ours[0].LifetimeSeconds
	}
	var out []sdk.ProposalText
	var added []string
	has := func(t string) bool {
		return slices.ContainsFunc(out, func(p sdk.ProposalText) bool { return p.Text == t })
	}
	for _, t := range first {
		if !has(t) {
			out = append(out, sdk.ProposalText{Text: t, LifetimeSeconds: life})
			if !slices.ContainsFunc(ours, func(p sdk.ProposalText) bool { return p.Text == t }) {
				added = append(added, t)
			}
		}
	}
	for _, p := range ours {
		if !has(p.Text) {
			out = append(out, p)
		}
	}
	for _, t := range last {
		if !has(t) {
			out = append(out, sdk.ProposalText{Text: t, LifetimeSeconds: life})
			added = append(added, t)
		}
	}
	var notes []string
	if len(added) > 0 {
		notes = append(notes, fmt.Sprintf("%s accepted for this peer: %s", strings.Join(added, ", "), why))
	}
	return out, notes
}

// offer is a peer's offer read from the core's notation
// ("aes256-sha1-modp1024").
type offer []sdk.ProposalText

func (o offer) all(pred func(cipher, hash, group string) bool) bool {
	for _, p := range o {
		if !pred(splitProposal(p.Text)) {
			return false
		}
	}
	return len(o) > 0
}

func (o offer) any(pred func(cipher, hash, group string) bool) bool {
	return slices.ContainsFunc(o, func(p sdk.ProposalText) bool { return pred(splitProposal(p.Text)) })
}

func splitProposal(t string) (cipher, hash, group string) {
	parts := strings.SplitN(t, "-", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

func legacy(cipher, _, group string) bool { return cipher == "3des" || group == "modp1024" }

func hasVID(vids [][]byte, v []byte) bool {
	return slices.ContainsFunc(vids, func(x []byte) bool { return bytes.Equal(x, v) })
}

func countDrafts(vids [][]byte) int {
	n := 0
	for _, v := range vids {
		if clients.IsDraftNATT(v) {
			n++
		}
	}
	return n
}

// nattFlags: the drafts' dialect for a peer that announces one (the core
// still prefers RFC 3947 when the peer announces both).
func nattFlags(vids [][]byte) []string {
	if countDrafts(vids) > 0 {
		return []string{"natt-draft"}
	}
	return nil
}

func isWindows(vids [][]byte) (uint32, bool) {
	for _, v := range vids {
		if ver, ok := clients.WindowsVersion(v); ok {
			return ver, true
		}
	}
	return 0, false
}
