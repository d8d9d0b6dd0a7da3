package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// interopCallTimeout bounds one interop plugin call; they are made with
// the IKE engine's lock held, once per new IKE SA.
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
	interops func() (l *Loaded, names []string, list []sdk.Interop)

	mu     sync.Mutex
	cached *Loaded // the configuration the cache was made under
	cache  map[[32]byte]ike.InteropAnswer
}

func newInteropHost(d *Daemon, log *zap.Logger) *interopHost {
	return &interopHost{log: log, cache: map[[32]byte]ike.InteropAnswer{}, interops: func() (*Loaded, []string, []sdk.Interop) {
		l := d.Current()
		var names []string
		var list []sdk.Interop
		for _, s := range l.Plugins {
			if p, ok := d.plugins.Get(s.Name); ok {
				if i, ok := p.Interop(); ok {
					names, list = append(names, s.Name), append(list, i)
				}
			}
		}
		return l, names, list
	}}
}

func (h *interopHost) VendorIDs(peer *ike.PeerConfig, remote netip.AddrPort) [][]byte {
	_, names, list := h.interops()
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
	offered := make([]sdk.ProposalText, len(q.Offered))
	for i, p := range q.Offered {
		offered[i] = sdk.ProposalText{Text: p.String(), LifetimeSeconds: uint32(p.Lifetime / time.Second)}
	}
	key := interopKey(q, offered)
	h.mu.Lock()
	if h.cached != l || len(h.cache) >= interopCacheMax {
		h.cached, h.cache = l, map[[32]byte]ike.InteropAnswer{}
	}
	a, ok := h.cache[key]
	h.mu.Unlock()
	if ok {
		return a
	}
	a = h.classify(names, list, q, offered)
	h.mu.Lock()
	h.cache[key] = a
	h.mu.Unlock()
	return a
}

// interopKey identifies a first message by what the plugins see of it.
func interopKey(q ike.InteropQuery, offered []sdk.ProposalText) [32]byte {
	s := sha256.New()
	fmt.Fprintf(s, "%s|%v|%d|", q.Peer.Name, q.Initiator, len(q.VendorIDs))
	for _, v := range q.VendorIDs {
		fmt.Fprintf(s, "%x|", v)
	}
	for _, o := range offered {
		fmt.Fprintf(s, "%s/%d|", o.Text, o.LifetimeSeconds)
	}
	return [32]byte(s.Sum(nil))
}

func (h *interopHost) classify(names []string, list []sdk.Interop, q ike.InteropQuery, offered []sdk.ProposalText) ike.InteropAnswer {
	for i, in := range list {
		ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
		c, err := in.Classify(ctx, sdk.ClassifyRequest{VendorIDs: q.VendorIDs, Peer: q.Remote, Offered: offered, Initiator: q.Initiator})
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
		a.Proposals = adjusted(h, in, names[i], c.Flags, p.Proposals, p.Lifetime, true, ike.ParseProposal)
		a.ESP = adjusted(h, in, names[i], c.Flags, p.ESP, p.ESPLifetime, false, esp.ParseSuite)
		return a
	}
	return ike.InteropAnswer{Hint: interopHintWithout(names, q)}
}

// adjusted asks the plugin to adjust our list (texts in, parsed out) and
// returns its list, or nil to keep ours. Names our catalogue refuses, as
// weak or unknown, are dropped with a warning: no plugin can enable DES or
// MD5.
func adjusted[T fmt.Stringer](h *interopHost, in sdk.Interop, plugin string, flags []string, ours []T, life time.Duration, phase1 bool,
	parse func(string) (T, error)) []T {
	texts := make([]sdk.ProposalText, len(ours))
	for i, p := range ours {
		texts[i] = sdk.ProposalText{Text: p.String(), LifetimeSeconds: uint32(life / time.Second)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopCallTimeout)
	defer cancel()
	r, err := in.AdjustProposals(ctx, sdk.AdjustRequest{Flags: flags, Proposals: texts, Phase1: phase1})
	if err != nil {
		h.log.Warn("interop plugin failed to adjust proposals; ours stand", zap.String("plugin", plugin), zap.Error(err))
		return nil
	}
	for _, n := range r.Notes {
		h.log.Info("interop: "+n, zap.String("plugin", plugin))
	}
	if r.Proposals == nil {
		return nil
	}
	out := []T{}
	for _, t := range r.Proposals {
		p, err := parse(t.Text)
		if err != nil {
			h.log.Warn("interop plugin proposed what we cannot accept; dropped", zap.String("plugin", plugin), zap.Error(err))
			continue
		}
		out = append(out, p)
	}
	return out
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

// configureInterop hands an interop plugin its options.
func (d *Daemon) configureInterop(ctx context.Context, name string, in sdk.Interop, l *Loaded) error {
	var opts map[string]string
	for _, r := range l.Config.Plugins.Load {
		if r.Name == name {
			opts = r.Options
		}
	}
	notes, err := in.Configure(ctx, opts)
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	for _, n := range notes {
		d.log.Named("interop").Info(n, zap.String("plugin", name))
	}
	return nil
}

var _ ike.Interop = (*interopHost)(nil)
