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
	"github.com/gatehouse/gatehouse/ike/ikev2"
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
	cached *config.Config   // the configuration the cache was made under
	cache  map[[32]byte]any // ike.InteropAnswer, *ikev2.InteropAnswer
	// reads are the vendor IDs each plugin reads (its Info), by name,
	// asked once per configuration; none: every vendor ID.
	reads map[string][][]byte
}

func newInteropHost(log *zap.Logger, interops func() (*config.Config, []string, []sdk.Interop)) *interopHost {
	return &interopHost{log: log, cache: map[[32]byte]any{}, reads: map[string][][]byte{}, interops: interops}
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
	req := sdk.ClassifyRequest{Peer: q.Remote, Offered: offered, Initiator: q.Initiator, Version: 1}
	return h.answer(l, names, list, q.Peer.Name, q.VendorIDs, req, func(req sdk.ClassifyRequest) any {
		return h.classify(names, list, q, req, l != nil && l.LegacyAlgorithms)
	}).(ike.InteropAnswer)
}

// ClassifyV2 is Classify for an IKEv2 peer's IKE_SA_INIT request.
func (h *interopHost) ClassifyV2(q ikev2.InteropQuery) *ikev2.InteropAnswer {
	l, names, list := h.interops()
	if q.Peer.RemoteAccess == nil {
		if names, list = forPeer(q.Peer.PeerConfig, names, list); len(list) == 0 {
			return nil
		}
	}
	if len(list) == 0 {
		if hint := interopHintWithoutV2(names, q.VendorIDs, q.Offered); hint != "" {
			return &ikev2.InteropAnswer{Hint: hint}
		}
		return nil
	}
	offered := make([]sdk.ProposalText, len(q.Offered))
	for i, p := range q.Offered {
		offered[i] = sdk.ProposalText{Text: p.String(), LifetimeSeconds: uint32(q.Peer.Lifetime / time.Second)}
	}
	req := sdk.ClassifyRequest{Peer: q.Remote, Offered: offered, Version: 2}
	return h.answer(l, names, list, q.Peer.Name, q.VendorIDs, req, func(req sdk.ClassifyRequest) any {
		return h.classifyV2(names, list, q.Peer, q.Offered, req, l != nil && l.LegacyAlgorithms)
	}).(*ikev2.InteropAnswer)
}

// answer is the cached answer about a first message under configuration
// l, or build's, cached. The plugins see only the vendor IDs they read, and
// the cache keys on those: a flood of first messages with ever new vendor
// IDs costs no plugin calls.
func (h *interopHost) answer(l *config.Config, names []string, list []sdk.Interop, peer string, vids [][]byte, req sdk.ClassifyRequest,
	build func(sdk.ClassifyRequest) any) any {
	h.mu.Lock()
	if h.cached != l || len(h.cache) >= interopCacheMax {
		h.cached, h.cache = l, map[[32]byte]any{}
		clear(h.reads)
	}
	h.mu.Unlock()
	req.VendorIDs = h.readable(names, list, vids)
	key := interopKey(peer, req)
	h.mu.Lock()
	a, ok := h.cache[key]
	h.mu.Unlock()
	if ok {
		return a
	}
	a = build(req)
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
func interopKey(peer string, req sdk.ClassifyRequest) [32]byte {
	vids := make([]string, len(req.VendorIDs))
	for i, v := range req.VendorIDs {
		vids[i] = fmt.Sprintf("%x", v)
	}
	texts := make([]string, len(req.Offered))
	for i, o := range req.Offered {
		texts[i] = o.Text
	}
	slices.Sort(vids)
	slices.Sort(texts)
	s := sha256.New()
	fmt.Fprintf(s, "%s|%v|%d|%s|%s", peer, req.Initiator, req.Version, strings.Join(slices.Compact(vids), ","), strings.Join(slices.Compact(texts), ","))
	return [32]byte(s.Sum(nil))
}

// first asks the plugins in order until one names the peer's family; it
// returns that plugin's index, or -1.
func (h *interopHost) first(names []string, list []sdk.Interop, req sdk.ClassifyRequest) (sdk.Classification, int) {
	for i, in := range list {
		ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
		c, err := in.Classify(ctx, req)
		cancel()
		if err != nil {
			h.log.Warn("interop plugin failed to classify a peer; asking the next", zap.String("plugin", names[i]), zap.Stringer("remote", req.Peer),
				zap.Int("ike_version", req.Version), zap.Error(err))
			continue
		}
		if c.Family != "" {
			return c, i
		}
	}
	return sdk.Classification{}, -1
}

// flags reads a plugin's flag names; unknown ones are logged and ignored.
func (h *interopHost) flags(plugin string, names []string) ike.Flags {
	var out ike.Flags
	for _, f := range names {
		if flag, ok := ike.ParseFlag(f); ok {
			out |= flag
		} else {
			h.log.Warn("interop plugin sent an unknown flag; ignored", zap.String("plugin", plugin), zap.String("flag", f),
				zap.Strings("known", ike.FlagNames()))
		}
	}
	return out
}

// dropHint names in a refusal what a plugin would have accepted for the
// peer that the configuration does not allow.
func dropHint(hint, plugin string, dropped, why []string) string {
	if len(dropped) == 0 {
		return hint
	}
	slices.Sort(why)
	return strings.TrimSpace(hint + fmt.Sprintf(" (%s would accept %s for this peer, which the configuration does not allow: %s)",
		plugin, strings.Join(dropped, ", "), strings.Join(slices.Compact(why), "; ")))
}

func (h *interopHost) classify(names []string, list []sdk.Interop, q ike.InteropQuery, req sdk.ClassifyRequest, legacy bool) ike.InteropAnswer {
	c, i := h.first(names, list, req)
	if i < 0 {
		return ike.InteropAnswer{Hint: interopHintWithout(names, q)}
	}
	a := ike.InteropAnswer{Family: c.Family, Detail: c.Detail, Plugin: names[i], VendorIDs: c.VendorIDs, Flags: h.flags(names[i], c.Flags)}
	p := q.Peer
	var dropped, why []string
	a.Proposals, dropped, why = adjusted(h, list[i], names[i], c.Flags, 1, p.Proposals, p.Lifetime, true, ike.ParseProposal,
		func(pr ike.Proposal) string { return legacyReason(pr.Legacy() && !legacy) })
	esps, droppedESP, whyESP := h.adjustedESP(list[i], names[i], c.Flags, 1, p, legacy)
	a.ESP = esps
	a.Hint = dropHint(c.RefusalHint, names[i], append(dropped, droppedESP...), append(why, whyESP...))
	return a
}

// classifyV2 is classify for an IKEv2 peer: the plugin adjusts the IKE
// SA's suites and the children's.
func (h *interopHost) classifyV2(names []string, list []sdk.Interop, p *ikev2.Peer, offered []ikev2.Proposal, req sdk.ClassifyRequest, legacy bool) *ikev2.InteropAnswer {
	c, i := h.first(names, list, req)
	if i < 0 {
		if hint := interopHintWithoutV2(names, req.VendorIDs, offered); hint != "" {
			return &ikev2.InteropAnswer{Hint: hint}
		}
		return nil
	}
	a := &ikev2.InteropAnswer{Family: c.Family, Detail: c.Detail, Plugin: names[i], Flags: h.flags(names[i], c.Flags)}
	if len(c.VendorIDs) > 0 {
		h.log.Warn("interop plugin gave vendor IDs for an IKEv2 peer; not sent", zap.String("plugin", names[i]))
	}
	var dropped, why []string
	a.Suites, dropped, why = adjusted(h, list[i], names[i], c.Flags, 2, p.Suites, p.Lifetime, true, ikev2.ParseProposal,
		func(pr ikev2.Proposal) string { return legacyReason(pr.Legacy() && !legacy) })
	esps, droppedESP, whyESP := h.adjustedESP(list[i], names[i], c.Flags, 2, p.PeerConfig, legacy)
	a.ESP = esps
	a.Hint = dropHint(c.RefusalHint, names[i], append(dropped, droppedESP...), append(why, whyESP...))
	return a
}

// adjustedESP is adjusted for the peer's ESP suites (both versions').
func (h *interopHost) adjustedESP(in sdk.Interop, plugin string, flags []string, version int, p *ike.PeerConfig, legacy bool) ([]esp.Suite, []string, []string) {
	return adjusted(h, in, plugin, flags, version, p.ESP, p.ESPLifetime, false, esp.ParseSuite,
		func(s esp.Suite) string { return espRefusal(s, p.ESP, legacy) })
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
func adjusted[T fmt.Stringer](h *interopHost, in sdk.Interop, plugin string, flags []string, version int, ours []T, life time.Duration, phase1 bool,
	parse func(string) (T, error), refusal func(T) string) ([]T, []string, []string) {
	texts := make([]sdk.ProposalText, len(ours))
	for i, p := range ours {
		texts[i] = sdk.ProposalText{Text: p.String(), LifetimeSeconds: uint32(life / time.Second)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
	defer cancel()
	r, err := in.AdjustProposals(ctx, sdk.AdjustRequest{Flags: flags, Proposals: texts, Phase1: phase1, Version: version})
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

// interopHintWithoutV2 is interopHintWithout for an IKEv2 Windows client
// that offers MODP1024 only, when interop-windows is not loaded or does
// not know it.
func interopHintWithoutV2(loaded []string, vids [][]byte, offered []ikev2.Proposal) string {
	if len(offered) == 0 || slices.ContainsFunc(offered, func(p ikev2.Proposal) bool { return p.Group.Number != 2 }) {
		return ""
	}
	for _, v := range vids {
		if ver, ok := clients.WindowsVersion(v); ok {
			load := "load the interop-windows plugin with the option allow_legacy: true"
			if slices.Contains(loaded, "interop-windows") {
				load = "give interop-windows the option allow_legacy: true"
			}
			return fmt.Sprintf("the peer is a Windows client (%s) offering MODP1024 only: %s; or %s and set legacy_algorithms: true",
				clients.WindowsRelease(ver), clients.WindowsDH2048Fix, load)
		}
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
