package policy

import (
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/esp"
)

// L2TPPort is the L2TP UDP port (RFC 2661 section 8.1).
const L2TPPort = 1701

// FromConfig compiles a validated configuration into a policy. Rule order:
// tunnels, then remote access, then rules, as written; order only breaks
// ties between equally specific filters.
func FromConfig(c *config.Config) (*Policy, error) {
	var local []netip.Addr
	for _, l := range c.Listen {
		local = append(local, l.Addr.Unmap())
	}
	var rules []*Rule
	for i, t := range c.Tunnels {
		out, in, err := tunnelRules(i, t)
		if err != nil {
			return nil, err
		}
		rules = append(rules, out, in)
	}
	if ra := c.RemoteAccess; ra != nil {
		r, err := remoteAccessRule(ra, local)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	for i, m := range c.ManualSAs {
		rs, err := manualRules(i, m)
		if err != nil {
			return nil, err
		}
		rules = append(rules, rs...)
	}
	for i, cr := range c.Rules {
		r, err := userRule(c, i, cr, local)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	for i, r := range rules {
		r.Seq = i
	}
	return New(rules, c.Exemptions.Name, c.Exemptions.Classes, local), nil
}

func offers(list []string, lifetime config.Duration, kb uint64) ([]Offer, error) {
	out := make([]Offer, 0, len(list))
	for _, o := range list {
		s, err := esp.ParseSuite(o)
		if err != nil {
			return nil, err
		}
		out = append(out, Offer{Suite: s, Lifetime: lifetime.Duration, LifetimeKB: kb})
	}
	return out, nil
}

func authMethods(list []config.AuthMethod) []AuthMethod {
	out := make([]AuthMethod, 0, len(list))
	for _, a := range list {
		m := AuthMethod{Kind: a.Kind()}
		switch {
		case a.X509 != nil:
			m.Detail = "cert " + a.X509.CertFile
		case a.Kerberos != nil:
			m.Detail = a.Kerberos.Principal
		default:
			m.Detail = "key file " + a.PSKFile
			if a.PeerID != "" {
				m.Detail += ", peer " + a.PeerID
			}
		}
		out = append(out, m)
	}
	return out
}

// tunnelRules expands a tunnels: block into the seed's two rules (KB 252735):
// local subnets to remote subnets with the peer as endpoint, and back with
// this gateway as endpoint.
func tunnelRules(i int, t config.Tunnel) (*Rule, *Rule, error) {
	o, err := offers(t.ESP.Proposals, t.ESP.Lifetime, t.ESP.LifetimeKB)
	if err != nil {
		return nil, nil, fmt.Errorf("tunnels[%d]: %w", i, err)
	}
	action := FilterAction{Name: t.Name, Action: Negotiate, Offers: o, PFS: t.ESP.PFS}
	auth := authMethods(t.Auth)
	origin := fmt.Sprintf("tunnels[%d] %s", i, t.Name)
	out := &Rule{Name: t.Name + "/out", Origin: origin, Tunnel: t.Remote.Address.Unmap(), Dir: Outbound, Action: action, Auth: auth, PerPair: true}
	in := &Rule{Name: t.Name + "/in", Origin: origin, Tunnel: t.Local.Address.Unmap(), Dir: Inbound, Action: action, Auth: auth, PerPair: true}
	for _, p := range t.SubnetPairs() {
		out.Filters = append(out.Filters, Filter{Src: Addr{Prefix: p.Local}, Dst: Addr{Prefix: p.Remote}})
		in.Filters = append(in.Filters, Filter{Src: Addr{Prefix: p.Remote}, Dst: Addr{Prefix: p.Local}})
	}
	return out, in, nil
}

// remoteAccessRule is RFC 3193's policy: UDP 1701 from the server to any
// client, mirrored, transport mode, required.
func remoteAccessRule(ra *config.RemoteAccess, local []netip.Addr) (*Rule, error) {
	o, err := offers(ra.ESP.Proposals, ra.ESP.Lifetime, ra.ESP.LifetimeKB)
	if err != nil {
		return nil, fmt.Errorf("remote_access: %w", err)
	}
	r := &Rule{Name: "remote-access", Origin: "remote_access",
		Action: FilterAction{Name: "l2tp-ipsec", Action: Negotiate, Offers: o, PFS: ra.ESP.PFS, AcceptUnsecured: ra.AllowCleartextL2TP},
		Auth:   authMethods(ra.Auth)}
	for _, a := range local {
		r.Filters = append(r.Filters, Filter{Src: Addr{Prefix: netip.PrefixFrom(a, a.BitLen())}, Dst: Addr{Any: true},
			Proto: protoUDP, SrcPort: L2TPPort, Mirrored: true})
	}
	return r, nil
}

func expandAddr(a config.Address, local []netip.Addr) []Addr {
	switch a.Kind {
	case config.AddrAny:
		return []Addr{{Any: true}}
	case config.AddrMe:
		out := make([]Addr, len(local))
		for i, l := range local {
			out[i] = Addr{Prefix: netip.PrefixFrom(l, l.BitLen())}
		}
		return out
	}
	return []Addr{{Prefix: a.Prefix}}
}

func userRule(c *config.Config, i int, cr config.Rule, local []netip.Addr) (*Rule, error) {
	r := &Rule{Name: cr.Name, Origin: fmt.Sprintf("rules[%d]", i), Auth: authMethods(cr.Auth)}
	var fa config.FilterAction
	switch cr.Action {
	case "permit", "block":
		fa = config.FilterAction{Action: cr.Action}
		r.Action.Name = cr.Action
	case "negotiate":
		fa = *cr.Negotiate
		r.Action.Name = cr.Name
	default:
		fa = c.FilterActions[cr.Action]
		r.Action.Name = cr.Action
	}
	switch fa.Action {
	case "permit":
		r.Action.Action = Permit
	case "block":
		r.Action.Action = Block
	case "negotiate":
		r.Action.Action = Negotiate
		o, err := offers(fa.Offers, fa.Lifetime, fa.LifetimeKB)
		if err != nil {
			return nil, fmt.Errorf("rules[%d]: %w", i, err)
		}
		r.Action.Offers, r.Action.PFS = o, fa.PFS
		r.Action.AcceptUnsecured, r.Action.FallbackToClear = fa.AcceptUnsecured, fa.FallbackToClear
	default:
		return nil, fmt.Errorf("rules[%d]: unknown action %q", i, fa.Action)
	}
	if cr.Tunnel != nil {
		r.Tunnel = cr.Tunnel.Unmap()
		r.Dir = Outbound
		for _, l := range local {
			if l == r.Tunnel {
				r.Dir = Inbound
			}
		}
	}
	filters := cr.Filters
	if cr.FilterList != "" {
		filters = c.FilterLists[cr.FilterList]
	}
	for _, f := range filters {
		// Windows' filter dialog has Mirrored on by default, for
		// transport filters; tunnel filters are never mirrored.
		mirrored := cr.Tunnel == nil
		if f.Mirrored != nil {
			mirrored = *f.Mirrored
		}
		for _, src := range expandAddr(f.Src, local) {
			for _, dst := range expandAddr(f.Dst, local) {
				r.Filters = append(r.Filters, Filter{Src: src, Dst: dst, Proto: f.Protocol.Number, SrcPort: f.SrcPort, DstPort: f.DstPort, Mirrored: mirrored})
			}
		}
	}
	return r, nil
}

// ManualRuleNames are the rule names a manual SA compiles to: out and in
// for tunnel mode, one mirrored rule for transport mode.
func ManualRuleNames(m config.ManualSA) (out, in string) {
	if m.Mode == "transport" {
		return m.Name, m.Name
	}
	return m.Name + "/out", m.Name + "/in"
}

// manualRules gives a manual SA the same rules as a tunnel (tunnel mode)
// or a host-to-host transport rule. Keys are manual, so no auth methods.
func manualRules(i int, m config.ManualSA) ([]*Rule, error) {
	s, err := esp.ParseSuite(m.Suite)
	if err != nil {
		return nil, fmt.Errorf("manual_sas[%d]: %w", i, err)
	}
	action := FilterAction{Name: m.Name, Action: Negotiate, Offers: []Offer{{Suite: s}}, PFS: "none"}
	auth := []AuthMethod{{Kind: "manual", Detail: fmt.Sprintf("SPI out %#x, in %#x", m.Out.SPI, m.In.SPI)}}
	origin := fmt.Sprintf("manual_sas[%d] %s", i, m.Name)
	local, peer := m.Local.Unmap(), m.Peer.Unmap()
	outName, inName := ManualRuleNames(m)
	if m.Mode == "transport" {
		return []*Rule{{Name: outName, Origin: origin, Action: action, Auth: auth,
			Filters: []Filter{{Src: Addr{Prefix: netip.PrefixFrom(local, local.BitLen())}, Dst: Addr{Prefix: netip.PrefixFrom(peer, peer.BitLen())}, Mirrored: true}}}}, nil
	}
	out := &Rule{Name: outName, Origin: origin, Tunnel: peer, Dir: Outbound, Action: action, Auth: auth}
	in := &Rule{Name: inName, Origin: origin, Tunnel: local, Dir: Inbound, Action: action, Auth: auth}
	for _, l := range m.LocalSubnets {
		for _, r := range m.RemoteSubnets {
			out.Filters = append(out.Filters, Filter{Src: Addr{Prefix: l.Prefix}, Dst: Addr{Prefix: r.Prefix}})
			in.Filters = append(in.Filters, Filter{Src: Addr{Prefix: r.Prefix}, Dst: Addr{Prefix: l.Prefix}})
		}
	}
	return []*Rule{out, in}, nil
}
