package remote

import (
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/internal/dhcp"
)

// Windows's IKEv2 client asks for its split-tunnel routes with a
// DHCPINFORM broadcast through the tunnel once it is up, and adds the
// routes of the answer (internal/dhcp). The data path hands such a
// request over (OnDHCP); the answer goes back through the client's SA.

// dhcpInterval is the least time between two answers to one client: a
// client that floods DHCPINFORMs gets no more.
const dhcpInterval = time.Second

// dhcpServerAddr is the address the answers come from: the first DNS
// server inside the networks the clients reach, else the first address of
// the first of them. Windows keeps it as the server identifier only.
func dhcpServerAddr(inside []netip.Prefix, dns []netip.Addr) netip.Addr {
	for _, d := range dns {
		for _, p := range inside {
			if p.Contains(d) {
				return d
			}
		}
	}
	return inside[0].Masked().Addr().Next()
}

// OnDHCP answers a DHCPINFORM that an IKEv2 road warrior sent through its
// tunnel to the broadcast address (the data path calls it; msg is the UDP
// payload, valid during the call). It reports false, for the data path
// to count, for anything else: another message, a sender that is no road
// warrior, a client answered less than a second ago, a full tunnel.
func (r *Access) OnDHCP(client netip.Addr, msg []byte) bool {
	req, err := dhcp.Parse(msg)
	if err != nil || req.Op != dhcp.BootRequest || req.Type != dhcp.Inform {
		r.log.Debug("DHCP from a client dropped: only DHCPINFORM is answered", zap.Stringer("client", client), zap.Error(err))
		return false
	}
	x := r.cfg.IKEv2
	if x == nil || len(x.Inside) == 0 {
		return false // a full tunnel: no routes to give
	}
	now := r.now().UnixNano()
	r.mu.Lock()
	c := r.v2.clients[client]
	send := r.v2.sendClient
	ok := c != nil && send != nil && now-c.lastDHCP >= int64(dhcpInterval)
	if ok {
		c.lastDHCP = now
	}
	r.mu.Unlock()
	if !ok {
		return false
	}
	inside := make([]netip.Prefix, len(x.Inside))
	for i, n := range x.Inside {
		inside[i] = n.Prefix.Masked()
	}
	dns := config.Addrs(r.cfg.DNS)
	a := dhcp.Answer{Server: dhcpServerAddr(inside, dns), Routes: inside, DNS: dns}
	if len(x.DNSDomains) > 0 {
		a.Domain = x.DNSDomains[0]
	}
	pkt := dhcp.Packet(a.Server, client, dhcp.ServerPort, dhcp.ClientPort, dhcp.AppendAck(nil, req, a))
	if err := send(client, pkt); err != nil {
		r.log.Debug("DHCP answer not sent", zap.Stringer("client", client), zap.Error(err))
		return false
	}
	r.log.Debug("DHCPINFORM answered with the split-tunnel routes", zap.Stringer("client", client), zap.Stringers("routes", inside))
	return true
}
