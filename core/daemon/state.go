package daemon

import (
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/core/pluginhost"
)

// state is what the metrics read from the daemon at each scrape.
type state struct{ d *Daemon }

func (s state) IKE() (metrics.IKE, bool) {
	m := s.d.ikeManager()
	if m == nil {
		return metrics.IKE{}, false
	}
	n, dropped := m.HalfOpen()
	return metrics.IKE{SAs: m.SAs(), HalfOpen: n, FirstDropped: dropped, Drops: m.Drops()}, true
}

func (s state) DataPath() (metrics.DataPath, bool) {
	s.d.mu.RLock()
	dp := s.d.dp
	s.d.mu.RUnlock()
	if dp == nil {
		return metrics.DataPath{}, false
	}
	return metrics.DataPath{SAs: dp.db.Len(), Totals: dp.db.Totals(), Counters: dp.plane.Counters()}, true
}

func (s state) RemoteAccess() (metrics.RemoteAccess, bool) {
	ra := s.d.ra
	if ra == nil {
		return metrics.RemoteAccess{}, false
	}
	used, size := ra.Pool().Usage()
	unchecked, locked := ra.LoginLimits()
	return metrics.RemoteAccess{Sessions: map[string]int{"l2tp": ra.Table().Len(), "ikev2": ra.ClientCount()}, PoolUsed: used, PoolSize: size, Unchecked: unchecked, LockedOut: locked}, true
}

func (s state) PluginStatus() []pluginhost.Status {
	var out []pluginhost.Status
	for _, p := range s.d.plugins.Plugins() {
		out = append(out, p.Status())
	}
	return out
}
