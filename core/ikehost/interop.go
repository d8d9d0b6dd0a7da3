package ikehost

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/remote"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// interopCallTimeout bounds one interop plugin call; they are made once
// per new IKE SA (outside the IKE engine's lock) unless cached.
const interopCallTimeout = 2 * time.Second

// interopCacheMax bounds the answers kept: peers of one family send the
// same first message, so a flood of them costs no plugin calls.
const interopCacheMax = 256

// interopHost asks the loaded interop plugins, in plugins.load order,
// about each new IKE SA's peer (ike.Interop). The first plugin that
// knows the peer's family answers alone.
type interopHost struct {
	log *zap.Logger
	// interops lists the running interop plugins in load order, and the
	// configuration in force (a new one empties the cache).
	interops func() (l *config.Config, names []string, list []sdk.Interop)

	mu     sync.Mutex
	cached *config.Config // the configuration the cache was made under
	cache  map[[32]byte]ike.InteropAnswer
	// reads are the vendor IDs each plugin reads (its Info), by name,
	// asked once per configuration; none: every vendor ID.
	reads map[string][][]byte
}

func newInteropHost(log *zap.Logger, interops func() (*config.Config, []string, []sdk.Interop)) *interopHost {
	return &interopHost{log: log, cache: map[[32]byte]ike.InteropAnswer{}, reads: map[string][][]byte{}, interops: interops}
}

// forPeer keeps the plugins asked about peer: every loaded one for road
// warriors (client families are theirs), and for a tunnel only those it
// names (a gateway with quirks).
func forPeer(peer *ike.PeerConfig, names []string, list []sdk.Interop) ([]string, []sdk.Interop) {
	if peer == nil || peer.Name == remote.Rule {
		return names, list
	}
	var n []string
	var l []sdk.Interop
	for i, name := range names {
		if slices.Contains(peer.Interop, name) {
			n, l = append(n, name), append(l, list[i])
		}
	}
	return n, l
}

func (h *interopHost) VendorIDs(peer *ike.PeerConfig, remote netip.AddrPort) [][]byte {
	_, names, list := h.interops()
	names, list = forPeer(peer, names, list)
	var methods []string
	for _, a := range peer.Auth {
		methods = append(methods, ike.MethodName(a))
	}
	var out [][]byte
	for i, in := range list {
		ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
		v, err := in.VendorIDs(ctx, sdk.VendorIDsRequest{Initiator: true, Peer: remote, AuthMethods: methods})
		cancel()
		if err != nil {
			h.log.Warn("interop plugin failed; its vendor IDs are not sent", zap.String("plugin", names[i]), zap.Error(err))
			continue
		}
		out = append(out, v...)
	}
	return out
}

func (h *interopHost) Classify(q ike.InteropQuery) ike.InteropAnswer {
	l, names, list := h.interops()
	if q.Peer != nil && q.Peer.Name != remote.Rule {
		// A tunnel's peer is a gateway, not a client family; a tunnel
		// may still name plugins for a gateway's quirks.
		if names, list = forPeer(q.Peer, names, list); len(list) == 0 {
			return ike.InteropAnswer{}
		}
	}
	if len(list) == 0 {
		return ike.InteropAnswer{Hint: interopHintWithout(names, q)} // no call to save
	}
	offered := make([]sdk.ProposalText, len(q.Offered))
	for i, p := range q.Offered {
		offered[i] = sdk.ProposalText{Text: p.String(), LifetimeSeconds: uint32(p.Lifetime / time.Second)}
	}
	h.mu.Lock()
	if h.cached != l || len(h.cache) >= interopCacheMax {
		h.cached, h.cache = l, map[[32]byte]ike.InteropAnswer{}
		clear(h.reads)
	}
	h.mu.Unlock()
	// The plugins see only the vendor IDs they read, and the cache keys on
	// those: a flood of first messages with ever new vendor IDs costs no
	// plugin calls.
	read := h.readable(names, list, q.VendorIDs)
	key := interopKey(q, read, offered)
	h.mu.Lock()
	a, ok := h.cache[key]
	h.mu.Unlock()
	if ok {
		return a
	}
	a = h.classify(names, list, q, read, offered, l != nil && l.LegacyAlgorithms)
	h.mu.Lock()
	h.cache[key] = a
	h.mu.Unlock()
	return a
}

// readable keeps the vendor IDs some plugin reads (by the prefixes its
// Info declares); a plugin that declares none reads them all.
func (h *interopHost) readable(names []string, list []sdk.Interop, vids [][]byte) [][]byte {
	var prefixes [][]byte
	for i, in := range list {
		h.mu.Lock()
		p, ok := h.reads[names[i]]
		h.mu.Unlock()
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
			info, err := in.Info(ctx)
			cancel()
			if err != nil {
				return vids // asked again next time
			}
			p = info.VendorIDPrefixes
			h.mu.Lock()
			h.reads[names[i]] = p
			h.mu.Unlock()
		}
		if len(p) == 0 {
			return vids
		}
		prefixes = append(prefixes, p...)
	}
	var out [][]byte
	for _, v := range vids {
		if slices.ContainsFunc(prefixes, func(p []byte) bool { return bytes.HasPrefix(v, p) }) {
			out = append(out, v)
		}
	}
	return out
}

// interopKey identifies a first message by what the plugins read of it:
// the vendor IDs they declare, as a set, and the offered transforms, as a
// set (their order and lifetimes do not change an answer: the plugins
// match on names, and lifetimes are ours).
func interopKey(q ike.InteropQuery, read [][]byte, offered []sdk.ProposalText) [32]byte {
	vids := make([]string, len(read))
	for i, v := range read {
		vids[i] = fmt.Sprintf("%x", v)
	}
	texts := make([]string, len(offered))
	for i, o := range offered {
		texts[i] = o.Text
	}
	slices.Sort(vids)
	slices.Sort(texts)
	s := sha256.New()
	fmt.Fprintf(s, "%s|%v|%s|%s", q.Peer.Name, q.Initiator, strings.Join(slices.Compact(vids), ","), strings.Join(slices.Compact(texts), ","))
	return [32]byte(s.Sum(nil))
}

func (h *interopHost) classify(names []string, list []sdk.Interop, q ike.InteropQuery, read [][]byte, offered []sdk.ProposalText, legacy bool) ike.InteropAnswer {
	for i, in := range list {
		ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
		c, err := in.Classify(ctx, sdk.ClassifyRequest{VendorIDs: read, Peer: q.Remote, Offered: offered, Initiator: q.Initiator})
		cancel()
		if err != nil {
			h.log.Warn("interop plugin failed to classify a peer; asking the next", zap.String("plugin", names[i]), zap.Stringer("remote", q.Remote), zap.Error(err))
			continue
		}
		if c.Family == "" {
			continue
		}
		a := ike.InteropAnswer{Family: c.Family, Detail: c.Detail, Plugin: names[i], VendorIDs: c.VendorIDs, Hint: c.RefusalHint}
		for _, f := range c.Flags {
			if flag, ok := ike.ParseFlag(f); ok {
				a.Flags |= flag
			} else {
				h.log.Warn("interop plugin sent an unknown flag; ignored", zap.String("plugin", names[i]), zap.String("flag", f),
					zap.Strings("known", ike.FlagNames()))
			}
		}
		p := q.Peer
		var dropped, why []string
		a.Proposals, dropped, why = adjusted(h, in, names[i], c.Flags, p.Proposals, p.Lifetime, true, ike.ParseProposal,
			func(pr ike.Proposal) string { return legacyReason(pr.Legacy() && !legacy) })
		esps, droppedESP, whyESP := adjusted(h, in, names[i], c.Flags, p.ESP, p.ESPLifetime, false, esp.ParseSuite,
			func(s esp.Suite) string { return espRefusal(s, p.ESP, legacy) })
		a.ESP = esps
		if dropped, why = append(dropped, droppedESP...), append(why, whyESP...); len(dropped) > 0 {
			slices.Sort(why)
			a.Hint = strings.TrimSpace(a.Hint + fmt.Sprintf(" (%s would accept %s for this peer, which the configuration does not allow: %s)",
				names[i], strings.Join(dropped, ", "), strings.Join(slices.Compact(why), "; ")))
		}
		return a
	}
	return ike.InteropAnswer{Hint: interopHintWithout(names, q)}
}

// legacyReason says why a legacy algorithm is refused ("" if it is not).
func legacyReason(refused bool) string {
	if refused {
		return "legacy algorithms need legacy_algorithms: true"
	}
	return ""
}

// espRefusal says why the configuration does not let a plugin offer an
// ESP suite for an SA whose configured suites are ours ("" if it does):
// legacy ciphers only with legacy_algorithms, NULL encryption only where
// the rule itself lists a null suite.
func espRefusal(s esp.Suite, ours []esp.Suite, legacy bool) string {
	if r := legacyReason(s.Legacy() && !legacy); r != "" {
		return r
	}
	isNull := func(o esp.Suite) bool { return o.Encryption != nil && o.Encryption.Name == "null" }
	if isNull(s) && !slices.ContainsFunc(ours, isNull) {
		return "NULL encryption needs a null suite in the rule's own ESP list"
	}
	return ""
}

// adjusted asks the plugin to adjust our list (texts in, parsed out) and
// returns its list, or nil to keep ours, and what it had to drop and why.
// This is the one place a plugin's algorithms meet the configuration:
// names our catalogue refuses (DES, MD5, MODP768, unknown) and what
// refusal says the configuration does not allow are dropped with a
// warning, whatever the plugin says.
func adjusted[T fmt.Stringer](h *interopHost, in sdk.Interop, plugin string, flags []string, ours []T, life time.Duration, phase1 bool,
	parse func(string) (T, error), refusal func(T) string) ([]T, []string, []string) {
	texts := make([]sdk.ProposalText, len(ours))
	for i, p := range ours {
		texts[i] = sdk.ProposalText{Text: p.String(), LifetimeSeconds: uint32(life / time.Second)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
	defer cancel()
	r, err := in.AdjustProposals(ctx, sdk.AdjustRequest{Flags: flags, Proposals: texts, Phase1: phase1})
	if err != nil {
		h.log.Warn("interop plugin failed to adjust proposals; ours stand", zap.String("plugin", plugin), zap.Error(err))
		return nil, nil, nil
	}
	if r.Proposals == nil {
		for _, n := range r.Notes {
			h.log.Info("interop: "+n, zap.String("plugin", plugin))
		}
		return nil, nil, nil
	}
	out := []T{}
	var dropped, why []string
	for _, t := range r.Proposals {
		p, err := parse(t.Text)
		if err != nil {
			h.log.Warn("interop plugin proposed what we cannot accept; dropped", zap.String("plugin", plugin), zap.Error(err))
			continue
		}
		if r := refusal(p); r != "" {
			dropped, why = append(dropped, p.String()), append(why, r)
			continue
		}
		out = append(out, p)
	}
	if len(dropped) > 0 {
		h.log.Warn("interop plugin proposed what the configuration does not allow; dropped", zap.String("plugin", plugin),
			zap.Strings("dropped", dropped), zap.Strings("why", why))
	} else {
		for _, n := range r.Notes {
			h.log.Info("interop: "+n, zap.String("plugin", plugin))
		}
	}
	return out, dropped, why
}

// interopHintWithout says which plugin would let in a peer no loaded
// plugin knows, when its offer needs a legacy algorithm. The vendor IDs
// are read here only to name the plugin in the refusal.
func interopHintWithout(loaded []string, q ike.InteropQuery) string {
	if !slices.ContainsFunc(q.Offered, func(p ike.Phase1) bool {
		s := p.String()
		return strings.Contains(s, "modp1024") || strings.HasPrefix(s, "3des")
	}) {
		return ""
	}
	for _, v := range q.VendorIDs {
		if ver, ok := clients.WindowsVersion(v); ok && !slices.Contains(loaded, "interop-windows") {
			return fmt.Sprintf("the peer is a Windows client (%s): load the interop-windows plugin with the option allow_legacy: true to accept its 3DES/MODP1024 offer",
				clients.WindowsRelease(ver))
		}
	}
	if !slices.Contains(loaded, "interop-android") && !slices.ContainsFunc(q.Offered, func(p ike.Phase1) bool { return !strings.HasSuffix(p.String(), "modp1024") }) {
		return "the peer offers MODP1024 only, as Android's racoon does: load the interop-android plugin to accept it from Android clients"
	}
	return ""
}

// ConfigureInterop hands an interop plugin its options from
// plugins.load, and logs its notes.
func ConfigureInterop(ctx context.Context, log *zap.Logger, name string, in sdk.Interop, c *config.Config) error {
	var opts map[string]string
	for _, r := range c.Plugins.Load {
		if r.Name == name {
			opts = r.Options
		}
	}
	notes, err := in.Configure(ctx, opts)
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	for _, n := range notes {
		log.Info(n, zap.String("plugin", name))
	}
	return nil
}

var _ ike.Interop = (*interopHost)(nil)
