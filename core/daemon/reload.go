package daemon

import (
	"fmt"
	"reflect"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/ikehost"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/ikev2"
)

// A reload applies tunnel changes tunnel by tunnel: a tunnel whose
// configuration (with the IKE defaults it inherits) did not change keeps
// its SAs and its traffic; a removed or changed one has its SAs deleted,
// telling the peer; an added or changed one starts as its start says.

// tunnelPlan is what a reload does to the tunnels; making it changes
// nothing, so a refusal leaves everything as it was.
type tunnelPlan struct {
	added, removed, changed []string
	peers                   ikehost.Peers
	profiles                ikehost.Profiles
	tunnels                 map[string]config.Tunnel
	addRoutes, delRoutes    []dataplane.Route
	start                   []string
}

func (p *tunnelPlan) empty() bool { return len(p.added)+len(p.removed)+len(p.changed) == 0 }

// effective is a tunnel as it runs: positions in the file aside, with the
// global IKE settings it inherits.
func effective(c *config.Config, t config.Tunnel) config.Tunnel {
	t.Meta, t.Local.Meta, t.Remote.Meta, t.ESP.Meta = config.Meta{}, config.Meta{}, config.Meta{}, config.Meta{}
	k := c.IKEFor(&t)
	k.Meta, k.DPD.Meta = config.Meta{}, config.Meta{}
	t.IKE = &k
	t.Auth = stripAuth(t.Auth)
	return t
}

// diffTunnels sorts the tunnels by what a reload does to them; same
// names those it leaves alone.
func diffTunnels(old, next *config.Config) (p *tunnelPlan, same map[string]bool) {
	p = &tunnelPlan{tunnels: map[string]config.Tunnel{}}
	same = map[string]bool{}
	before := map[string]config.Tunnel{}
	for _, t := range old.Tunnels {
		before[t.Name] = effective(old, t)
	}
	for _, t := range next.Tunnels {
		p.tunnels[t.Name] = t
		prev, ok := before[t.Name]
		switch {
		case !ok:
			p.added = append(p.added, t.Name)
		case !reflect.DeepEqual(prev, effective(next, t)):
			p.changed = append(p.changed, t.Name)
		default:
			same[t.Name] = true
			continue
		}
		if t.Start == "always" {
			p.start = append(p.start, t.Name)
		}
	}
	for _, t := range old.Tunnels {
		if _, ok := p.tunnels[t.Name]; !ok {
			p.removed = append(p.removed, t.Name)
		}
	}
	return p, same
}

func planTunnels(st *dataplaneState, old, next *config.Config) (*tunnelPlan, error) {
	p, same := diffTunnels(old, next)
	if p.empty() {
		return p, nil
	}
	if st == nil || st.ike == nil {
		return nil, fmt.Errorf("%s: tunnels added while IKE is not running; restart gatehoused to start it", next.File)
	}
	peers, profiles, err := ikehost.PeerConfigs(next)
	if err != nil {
		return nil, err
	}
	// Unchanged tunnels, and remote access, keep their peer (their SAs
	// point at it).
	now := st.ike.Peers()
	current := map[string]*ike.PeerConfig{}
	for _, pc := range now.V1 {
		current[pc.Name] = pc
	}
	for i, pc := range peers.V1 {
		if cur, ok := current[pc.Name]; ok && (same[pc.Name] || !pc.Remote.IsValid()) {
			peers.V1[i] = cur
		}
	}
	current2 := map[string]*ikev2.Peer{}
	for _, pc := range now.V2 {
		current2[pc.Name] = pc
	}
	for i, pc := range peers.V2 {
		if cur, ok := current2[pc.Name]; ok && (same[pc.Name] || !pc.Remote.IsValid()) {
			peers.V2[i] = cur
		}
	}
	p.peers, p.profiles = peers, profiles
	routes := func(c *config.Config, names []string) []dataplane.Route {
		var out []dataplane.Route
		for _, t := range c.Tunnels {
			for _, n := range names {
				if t.Name == n {
					out = append(out, subnetRoutes(t.Local.Subnets, t.Remote.Subnets)...)
				}
			}
		}
		return out
	}
	p.delRoutes = routes(old, append(append([]string(nil), p.removed...), p.changed...))
	p.addRoutes = routes(next, append(append([]string(nil), p.added...), p.changed...))
	return p, nil
}

// applyTunnels carries the plan out; it cannot fail, only log.
func (d *Daemon) applyTunnels(st *dataplaneState, p *tunnelPlan, next *config.Config) []string {
	if p.empty() {
		return nil
	}
	log := d.log.Named("config")
	ik := st.ike
	var changes []string
	for _, n := range append(append([]string(nil), p.removed...), p.changed...) {
		if err := ik.Terminate(n); err == nil {
			changes = append(changes, "tunnel "+n+": SAs deleted")
		}
	}
	ik.Reconfigure(next.Tunnels, p.peers, p.profiles)
	dp := next.Dataplane
	for _, r := range p.delRoutes {
		if err := dataplane.SetRoute(dp.TUN, dp.Table, r, true); err != nil {
			log.Warn("reload: route not removed", zap.Error(err))
		}
	}
	for _, r := range p.addRoutes {
		if err := dataplane.SetRoute(dp.TUN, dp.Table, r, false); err != nil {
			log.Error("reload: route not added; the tunnel's traffic will not reach it", zap.Error(err))
		}
	}
	for _, n := range p.start {
		ik.StartTunnel(n)
	}
	for _, c := range []struct {
		what  string
		names []string
	}{{"added", p.added}, {"removed", p.removed}, {"changed", p.changed}} {
		for _, n := range c.names {
			changes = append(changes, "tunnel "+n+" "+c.what)
		}
	}
	return changes
}
