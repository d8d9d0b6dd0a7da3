package policy

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/core/config"
)

func compile(t testing.TB, yaml string) *Policy {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "k.psk")
	if err := os.WriteFile(key, []byte("test-preshared-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml = strings.ReplaceAll(yaml, "KEY", key)
	c, err := config.Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type tc struct {
	name   string
	dir    Direction
	pkt    string // "src[:port] > dst[:port] proto [local]"
	action Action
	rule   string // matched rule name, "" for none
	exempt string
}

// pkt parses "10.1.0.5:1234 > 10.2.0.7:80 tcp local".
func pkt(t *testing.T, s string) Packet {
	t.Helper()
	f := strings.Fields(s)
	var p Packet
	ap := func(x string) (netip.Addr, uint16) {
		if a, err := netip.ParseAddrPort(x); err == nil {
			return a.Addr(), a.Port()
		}
		return netip.MustParseAddr(x), 0
	}
	p.Src, p.SrcPort = ap(f[0])
	p.Dst, p.DstPort = ap(f[2])
	switch f[3] {
	case "tcp":
		p.Proto = 6
	case "udp":
		p.Proto = 17
	case "rsvp":
		p.Proto = 46
	case "icmp":
		p.Proto = 1
	default:
		var n int
		fmt.Sscan(f[3], &n)
		p.Proto = uint8(n)
	}
	p.Local = len(f) > 4 && f[4] == "local"
	return p
}

func run(t *testing.T, p *Policy, cases []tc) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := p.Lookup(c.dir, pkt(t, c.pkt))
			rule := ""
			if d.Entry != nil {
				rule = d.Entry.Rule.Name
			}
			if d.Action != c.action || rule != c.rule || d.Exempt != c.exempt {
				t.Errorf("%s %s: got %s rule=%q exempt=%q; want %s rule=%q exempt=%q", c.dir, c.pkt, d.Action, rule, d.Exempt, c.action, c.rule, c.exempt)
			}
		})
	}
}

const gateway = `
listen: [203.0.113.1]
exemptions: EXEMPT
tunnels:
  - name: neta-netb
    local:  {address: 203.0.113.1,  subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth: [{psk_file: KEY}]
rules:
  - name: secure-mgmt
    filters: [{src: me, dst: 192.0.2.0/24}]
    action: negotiate
    auth: [{psk_file: KEY}]
  - name: web-clear
    filters: [{src: me, dst: 192.0.2.0/24, protocol: tcp, dst_port: 80}]
    action: permit
  - name: no-telnet-to-neta
    filters: [{src: any, dst: 10.1.0.0/16, protocol: tcp, dst_port: 23}]
    action: block
  - name: one-way
    filters: [{src: me, dst: 192.0.2.200, protocol: udp, dst_port: 514, mirrored: false}]
    action: negotiate
    auth: [{psk_file: KEY}]
  - name: any-to-docnet
    filters: [{src: any, dst: 198.51.100.128/25}]
    action: negotiate
    auth: [{psk_file: KEY}]
`

func gw(t *testing.T, exempt string) *Policy {
	return compile(t, strings.Replace(gateway, "EXEMPT", exempt, 1))
}

func TestTransportFiltersAndSpecificity(t *testing.T) {
	run(t, gw(t, "windows2000"), []tc{
		{"negotiate own traffic", Outbound, "203.0.113.1:40000 > 192.0.2.10:22 tcp local", Negotiate, "secure-mgmt", ""},
		{"port filter is more specific", Outbound, "203.0.113.1:40000 > 192.0.2.10:80 tcp local", Permit, "web-clear", ""},
		{"mirror matches inbound", Inbound, "192.0.2.10:22 > 203.0.113.1:40000 tcp local", Negotiate, "secure-mgmt", ""},
		{"mirror of the port filter", Inbound, "192.0.2.10:80 > 203.0.113.1:40000 tcp local", Permit, "web-clear", ""},
		{"mirrored filter is not outbound the other way", Outbound, "192.0.2.10 > 203.0.113.1 icmp", Permit, "", ""},
		{"non-mirrored filter: outbound", Outbound, "203.0.113.1:9 > 192.0.2.200:514 udp local", Negotiate, "one-way", ""},
		{"non-mirrored filter: no inbound twin", Inbound, "192.0.2.200:514 > 203.0.113.1:9 udp local", Negotiate, "secure-mgmt", ""},
		{"unmatched traffic passes", Outbound, "203.0.113.1 > 198.51.100.9 icmp local", Permit, "", ""},
		{"block applies to routed traffic", Outbound, "192.0.2.9:5000 > 10.1.0.5:23 tcp", Block, "no-telnet-to-neta", ""},
		{"transport negotiate ignores routed traffic", Outbound, "10.1.0.5 > 198.51.100.200 icmp", Permit, "", ""},
		{"transport negotiate for own traffic", Outbound, "203.0.113.1 > 198.51.100.200 icmp local", Negotiate, "any-to-docnet", ""},
	})
}

func TestTunnelRules(t *testing.T) {
	run(t, gw(t, "windows2000"), []tc{
		{"outbound into tunnel", Outbound, "10.1.0.5 > 10.2.0.7 icmp", Negotiate, "neta-netb/out", ""},
		{"inbound from tunnel", Inbound, "10.2.0.7 > 10.1.0.5 icmp", Negotiate, "neta-netb/in", ""},
		{"outbound rule does not match inbound", Inbound, "10.1.0.5 > 10.2.0.7 icmp", Permit, "", ""},
		// Windows weighs addresses first: the /16-/16 tunnel filter is more
		// specific than any-/16 with a port, so NetB's telnet rides the tunnel.
		{"tunnel beats less specific port block", Inbound, "10.2.0.7:5000 > 10.1.0.5:23 tcp", Negotiate, "neta-netb/in", ""},
		{"directed broadcast never tunnelled", Outbound, "10.1.0.5 > 10.2.255.255 udp", Permit, "", ""},
		{"subnet network address still tunnels", Outbound, "10.1.0.5 > 10.2.0.0 icmp", Negotiate, "neta-netb/out", ""},
	})
}

func TestExemptionSets(t *testing.T) {
	w2000 := gw(t, "windows2000")
	run(t, w2000, []tc{
		{"w2000 IKE exempt", Outbound, "203.0.113.1:500 > 192.0.2.10:500 udp local", Permit, "", "ike"},
		{"w2000 IKE exempt inbound", Inbound, "192.0.2.10:500 > 203.0.113.1:500 udp local", Permit, "", "ike"},
		{"w2000 Kerberos UDP exempt", Outbound, "203.0.113.1:3000 > 192.0.2.10:88 udp local", Permit, "", "kerberos"},
		{"w2000 Kerberos TCP exempt", Outbound, "203.0.113.1:3000 > 192.0.2.10:88 tcp local", Permit, "", "kerberos"},
		{"w2000 RSVP exempt", Outbound, "203.0.113.1 > 192.0.2.10 rsvp local", Permit, "", "rsvp"},
		// Routed IKE, Kerberos and RSVP are not exempt from tunnel rules.
		{"routed IKE tunnelled", Outbound, "10.1.0.5:500 > 10.2.0.7:500 udp", Negotiate, "neta-netb/out", ""},
		{"routed Kerberos tunnelled", Outbound, "10.1.0.5:3000 > 10.2.0.7:88 tcp", Negotiate, "neta-netb/out", ""},
		{"routed RSVP tunnelled", Outbound, "10.1.0.5 > 10.2.0.7 rsvp", Negotiate, "neta-netb/out", ""},
		// Exemptions apply to transport-mode filters only: even the gateway's
		// own IKE to a protected subnet goes through the tunnel.
		{"own IKE into tunnel subnet", Outbound, "10.1.0.1:500 > 10.2.0.7:500 udp local", Negotiate, "neta-netb/out", ""},
		{"exempt class not matched by any filter", Outbound, "203.0.113.1:500 > 198.51.100.9:500 udp local", Permit, "", "ike"},
	})
	w2003 := gw(t, "windows2003")
	run(t, w2003, []tc{
		{"w2003 IKE exempt", Outbound, "203.0.113.1:500 > 192.0.2.10:500 udp local", Permit, "", "ike"},
		{"w2003 Kerberos negotiated", Outbound, "203.0.113.1:3000 > 192.0.2.10:88 tcp local", Negotiate, "secure-mgmt", ""},
		{"w2003 RSVP negotiated", Outbound, "203.0.113.1 > 192.0.2.10 rsvp local", Negotiate, "secure-mgmt", ""},
	})
	none := gw(t, "none")
	run(t, none, []tc{
		{"none: IKE negotiated", Outbound, "203.0.113.1:500 > 192.0.2.10:500 udp local", Negotiate, "secure-mgmt", ""},
	})
	custom := gw(t, "[kerberos, rsvp]")
	run(t, custom, []tc{
		{"list: IKE negotiated", Outbound, "203.0.113.1:500 > 192.0.2.10:500 udp local", Negotiate, "secure-mgmt", ""},
		{"list: Kerberos exempt", Outbound, "203.0.113.1:3000 > 192.0.2.10:88 udp local", Permit, "", "kerberos"},
	})
}

const everythingToHQ = `
listen: [203.0.113.1]
exemptions: EXEMPT
tunnels:
  - name: to-hq
    local:  {address: 203.0.113.1, subnets: [10.3.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [0.0.0.0/0]}
    auth: [{psk_file: KEY}]
rules:
  - name: all-mine
    filters: [{src: me, dst: any}]
    action: negotiate
    auth: [{psk_file: KEY}]
`

func TestBroadcastAndMulticast(t *testing.T) {
	for _, set := range []string{"windows2000", "none"} {
		p := compile(t, strings.Replace(everythingToHQ, "EXEMPT", set, 1))
		// Tunnel rules never carry broadcast or multicast, whatever the set.
		run(t, p, []tc{
			{set + ": tunnel catches unicast", Outbound, "10.3.0.5 > 198.51.100.77 icmp", Negotiate, "to-hq/out", ""},
			{set + ": multicast not tunnelled", Outbound, "10.3.0.5 > 224.0.0.5 89", Permit, "", ""},
			{set + ": broadcast not tunnelled", Outbound, "10.3.0.5:68 > 255.255.255.255:67 udp", Permit, "", ""},
		})
	}
	run(t, compile(t, strings.Replace(everythingToHQ, "EXEMPT", "windows2000", 1)), []tc{
		{"w2000: own broadcast exempt", Outbound, "203.0.113.1:68 > 255.255.255.255:67 udp local", Permit, "", "broadcast"},
		{"w2000: own multicast exempt", Outbound, "203.0.113.1 > 224.0.0.5 89 local", Permit, "", "multicast"},
	})
	run(t, compile(t, strings.Replace(everythingToHQ, "EXEMPT", "windows2003", 1)), []tc{
		{"w2003: own broadcast negotiated", Outbound, "203.0.113.1:68 > 255.255.255.255:67 udp local", Negotiate, "all-mine", ""},
		{"w2003: own multicast negotiated", Outbound, "203.0.113.1 > 224.0.0.5 89 local", Negotiate, "all-mine", ""},
	})
	// IPv6: multicast (ff00::/8) and link-local (fe80::/10, the link's
	// own, as broadcast is) never go through a tunnel; unicast does.
	v6 := strings.Replace(strings.Replace(strings.Replace(everythingToHQ, "EXEMPT", "none", 1), "subnets: [0.0.0.0/0]", `subnets: ["::/0"]`, 1),
		"subnets: [10.3.0.0/16]", "subnets: [fd00:3::/64]", 1)
	run(t, compile(t, v6), []tc{
		{"v6 unicast tunnelled", Outbound, "fd00:3::5 > 2001:db8::77 icmp", Negotiate, "to-hq/out", ""},
		{"v6 multicast not", Outbound, "fd00:3::5 > ff02::5 89", Permit, "", ""},
		{"v6 link-local not", Outbound, "fd00:3::5 > fe80::1 icmp", Permit, "", ""},
	})
	// A filter that names 255.255.255.255/32 itself carries it (an IKEv2
	// Windows client's DHCPINFORM); a wider one still does not.
	named := strings.Replace(strings.Replace(everythingToHQ, "EXEMPT", "none", 1), "subnets: [0.0.0.0/0]", "subnets: [255.255.255.255/32]", 1)
	run(t, compile(t, named), []tc{
		{"named broadcast tunnelled", Outbound, "10.3.0.5:68 > 255.255.255.255:67 udp", Negotiate, "to-hq/out", ""},
		{"multicast still not", Outbound, "10.3.0.5 > 224.0.0.5 89", Permit, "", ""},
	})
}

func TestRemoteAccessPolicy(t *testing.T) {
	p := compile(t, `
listen: [203.0.113.1]
remote_access:
  auth: [{psk_file: KEY}]
  pool: 10.8.0.0/24
`)
	run(t, p, []tc{
		{"L2TP out", Outbound, "203.0.113.1:1701 > 192.0.2.50:1701 udp local", Negotiate, "remote-access", ""},
		{"L2TP in from NAT-changed port", Inbound, "192.0.2.50:61000 > 203.0.113.1:1701 udp local", Negotiate, "remote-access", ""},
		{"other UDP untouched", Inbound, "192.0.2.50:53 > 203.0.113.1:1702 udp local", Permit, "", ""},
	})
	e := p.Rules[0]
	if e.Action.AcceptUnsecured || e.IsTunnel() || e.Action.Offers[0].Suite.String() != "aes256-sha1" {
		t.Fatalf("remote access rule = %+v", e)
	}
}

func TestTiesGoToFirstRule(t *testing.T) {
	p := compile(t, `
listen: [203.0.113.1]
rules:
  - {name: first, filters: [{src: me, dst: 192.0.2.0/24}], action: block}
  - {name: second, filters: [{src: me, dst: 192.0.2.0/24}], action: permit}
  - {name: v6, filters: [{src: any, dst: "2001:db8:1::/48"}], action: block}
`)
	run(t, p, []tc{
		{"tie", Outbound, "203.0.113.1 > 192.0.2.1 icmp local", Block, "first", ""},
		{"ipv6 any", Outbound, "2001:db8:9::1 > 2001:db8:1::5 58", Block, "v6", ""},
		{"ipv6 other", Outbound, "2001:db8:9::1 > 2001:db8:2::5 58", Permit, "", ""},
		{"mapped v4 is v4", Outbound, "::ffff:203.0.113.1 > ::ffff:192.0.2.1 icmp local", Block, "first", ""},
	})
}

func TestLookupDoesNotAllocate(t *testing.T) {
	p := gw(t, "windows2000")
	k := Packet{Src: netip.MustParseAddr("10.1.0.5"), Dst: netip.MustParseAddr("10.2.0.7"), Proto: 6, SrcPort: 1000, DstPort: 80}
	if n := testing.AllocsPerRun(100, func() { p.Lookup(Outbound, k) }); n != 0 {
		t.Fatalf("Lookup allocates %.0f times per call", n)
	}
}
