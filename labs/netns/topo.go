package netns

import "strings"

// TwoSites is the two-gateway topology of the ESP lab and the benchmark:
//
//	HA 10.1.0.10 - GWA 10.1.0.1 | 192.0.2.1 --- 192.0.2.2 | 10.2.0.1 GWB - HB 10.2.0.10
//
// Links are named after the namespaces: GWA's outer interface is "gwa1".
type TwoSites struct {
	GWA, GWB, HA, HB *NS
}

// TwoSites builds that topology in l, forwarding on in both gateways.
func (l *Lab) TwoSites() (*TwoSites, error) {
	t := &TwoSites{}
	var err error
	for _, n := range []struct {
		p    **NS
		name string
	}{{&t.GWA, "gwa"}, {&t.GWB, "gwb"}, {&t.HA, "ha"}, {&t.HB, "hb"}} {
		if *n.p, err = l.NS(n.name); err != nil {
			return nil, err
		}
	}
	steps := []func() error{
		func() error { _, _, err := l.Link(t.GWA, "192.0.2.1/24", t.GWB, "192.0.2.2/24"); return err },
		func() error { _, _, err := l.Link(t.HA, "10.1.0.10/24", t.GWA, "10.1.0.1/24"); return err },
		func() error { _, _, err := l.Link(t.HB, "10.2.0.10/24", t.GWB, "10.2.0.1/24"); return err },
		func() error { return t.HA.Route("default", "10.1.0.1") },
		func() error { return t.HB.Route("default", "10.2.0.1") },
		t.GWA.Forwarding, t.GWB.Forwarding,
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// SecondSubnets gives each site a second subnet on its inner link, for
// tunnels with several subnet pairs: 10.3.0.0/24 behind A (HA 10.3.0.10,
// GWA 10.3.0.1) and 10.4.0.0/24 behind B (HB 10.4.0.10, GWB 10.4.0.1).
// The hosts' default routes stay; they answer from the address asked.
func (t *TwoSites) SecondSubnets() error {
	return addAddrs([]linkAddr{{t.HA, "10.3.0.10/24", "ha2"}, {t.GWA, "10.3.0.1/24", "gwa2"}, {t.HB, "10.4.0.10/24", "hb3"}, {t.GWB, "10.4.0.1/24", "gwb3"}})
}

// linkAddr is an address for a namespace's link.
type linkAddr struct {
	ns         *NS
	addr, link string
}

// addAddrs puts each address on its link, IPv6 ones without duplicate
// address detection, so that they work at once.
func addAddrs(list []linkAddr) error {
	for _, a := range list {
		args := []string{"addr", "add", a.addr, "dev", a.link}
		if strings.Contains(a.addr, ":") {
			args = append(append([]string{"-6"}, args...), "nodad")
		}
		if err := a.ns.IP(args...); err != nil {
			return err
		}
	}
	return nil
}

// InnerIPv6 gives each site an IPv6 network on its inner link beside its
// IPv4 ones: fd00:1::/64 behind A (HA fd00:1::10, GWA fd00:1::1) and
// fd00:2::/64 behind B (HB fd00:2::10, GWB fd00:2::1), the hosts routing
// through their gateways, which forward IPv6. Duplicate address detection
// is off, so the addresses work at once.
func (t *TwoSites) InnerIPv6() error {
	if err := addAddrs([]linkAddr{{t.HA, "fd00:1::10/64", "ha2"}, {t.GWA, "fd00:1::1/64", "gwa2"}, {t.HB, "fd00:2::10/64", "hb3"}, {t.GWB, "fd00:2::1/64", "gwb3"}}); err != nil {
		return err
	}
	for _, r := range []struct {
		ns  *NS
		via string
	}{{t.HA, "fd00:1::1"}, {t.HB, "fd00:2::1"}} {
		if err := r.ns.IP("-6", "route", "add", "default", "via", r.via); err != nil {
			return err
		}
	}
	for _, g := range []*NS{t.GWA, t.GWB} {
		if err := g.Sysctl("net.ipv6.conf.all.forwarding", "1"); err != nil {
			return err
		}
	}
	return nil
}

// OuterIPv6 gives the link between the gateways IPv6 beside IPv4: GWA
// 2001:db8:12::1/64 on gwa1, GWB 2001:db8:12::2/64 on gwb1, without
// duplicate address detection.
func (t *TwoSites) OuterIPv6() error {
	return addAddrs([]linkAddr{{t.GWA, "2001:db8:12::1/64", "gwa1"}, {t.GWB, "2001:db8:12::2/64", "gwb1"}})
}
