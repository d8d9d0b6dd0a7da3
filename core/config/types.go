package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// IP is one address ("203.0.113.1").
type IP struct{ netip.Addr }

func (a *IP) decodeScalar(s string) error {
	p, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || p.Zone() != "" {
		return fmt.Errorf("%q is not an IP address (write e.g. 203.0.113.1 or 2001:db8::1)", s)
	}
	a.Addr = p
	return nil
}

// Addrs are the addresses of a list of IPs.
func Addrs(ips []IP) []netip.Addr {
	out := make([]netip.Addr, 0, len(ips))
	for _, a := range ips {
		out = append(out, a.Addr)
	}
	return out
}

// Prefix is an address or subnet ("10.1.0.0/16"; a bare address means /32 or
// /128).
type Prefix struct{ netip.Prefix }

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR subnet (write e.g. 10.1.0.0/16)", s)
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a CIDR subnet (write e.g. 10.1.0.0/16): %v", s, unwrapParse(err))
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; the subnet is %s", s, p.Masked())
	}
	return p, nil
}

func unwrapParse(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return msg
}

func (p *Prefix) decodeScalar(s string) (err error) {
	p.Prefix, err = parsePrefix(s)
	return err
}

// AddrKind says how a filter address is given.
type AddrKind uint8

const (
	AddrPrefix AddrKind = iota // a specific address or subnet
	AddrAny                    // "any": any address
	AddrMe                     // "me": every address in listen
)

// Address is a filter address: "any", "me", an address or a subnet, as in
// the seed's filter dialog (My IP Address, Any IP Address, A specific IP
// address, A specific IP subnet).
type Address struct {
	Kind   AddrKind
	Prefix netip.Prefix
}

func (a *Address) decodeScalar(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "any":
		*a = Address{Kind: AddrAny}
		return nil
	case "me":
		*a = Address{Kind: AddrMe}
		return nil
	}
	p, err := parsePrefix(s)
	if err != nil {
		return fmt.Errorf("%v, or any, or me", err)
	}
	*a = Address{Kind: AddrPrefix, Prefix: p}
	return nil
}

func (a Address) String() string {
	switch a.Kind {
	case AddrAny:
		return "any"
	case AddrMe:
		return "me"
	}
	return a.Prefix.String()
}

// Duration accepts Go durations ("90s", "1h", "8h") or whole seconds.
type Duration struct{ time.Duration }

func (d *Duration) decodeScalar(s string) error {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		d.Duration = time.Duration(n) * time.Second
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("%q is not a duration (write e.g. 30s, 1h, 8h, or whole seconds)", s)
	}
	d.Duration = v
	return nil
}

// Protocol is an IP protocol: any, tcp, udp, icmp, icmpv6, or a number.
type Protocol struct {
	Number uint8
	Set    bool
}

var protocolNames = map[string]uint8{"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "rsvp": 46}

func (p *Protocol) decodeScalar(s string) error {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "any" {
		*p = Protocol{}
		return nil
	}
	if n, ok := protocolNames[s]; ok {
		*p = Protocol{Number: n, Set: true}
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return fmt.Errorf("%q is not a protocol (any, tcp, udp, icmp, icmpv6, gre, rsvp, or a number 0-255)", s)
	}
	*p = Protocol{Number: uint8(n), Set: true}
	return nil
}

// ExemptionSet is the set of traffic classes exempt from transport-mode
// filters for the gateway's own traffic (see docs/policy.md).
type ExemptionSet struct {
	Name    string   // windows2000, windows2003, none, or "custom"
	Classes []string // the classes it holds
	Meta    Meta
}

// Exemption classes.
var ExemptionClasses = []string{"ike", "kerberos", "rsvp", "broadcast", "multicast"}

var exemptionSets = map[string][]string{
	"windows2000": {"ike", "kerberos", "rsvp", "broadcast", "multicast"},
	"windows2003": {"ike"},
	"none":        {},
}

func (e *ExemptionSet) decodeNode(d *decoder, n *yaml.Node, path string) {
	e.Meta = Meta{Pos: Pos{n.Line, n.Column}}
	switch n.Kind {
	case yaml.ScalarNode:
		set, ok := exemptionSets[strings.ToLower(n.Value)]
		if !ok {
			d.errorf(n, path, "%q is not an exemption set; use windows2000, windows2003, none, or a list of %s", n.Value, strings.Join(ExemptionClasses, ", "))
			return
		}
		e.Name, e.Classes = strings.ToLower(n.Value), set
	case yaml.SequenceNode:
		e.Name = "custom"
		e.Classes = []string{}
		seen := map[string]bool{}
		for i, c := range n.Content {
			v := strings.ToLower(c.Value)
			ok := false
			for _, k := range ExemptionClasses {
				ok = ok || k == v
			}
			if c.Kind != yaml.ScalarNode || !ok {
				d.errorf(c, fmt.Sprintf("%s[%d]", path, i), "%s is not an exemption class; allowed: %s", kindName(c), strings.Join(ExemptionClasses, ", "))
				continue
			}
			if seen[v] {
				d.errorf(c, fmt.Sprintf("%s[%d]", path, i), "%s listed twice", v)
				continue
			}
			seen[v] = true
			e.Classes = append(e.Classes, v)
		}
	default:
		d.errorf(n, path, "want windows2000, windows2003, none, or a list of classes, got %s", kindName(n))
	}
}

// PluginRef names a plugin to load: a bare name, or a mapping with a path.
type PluginRef struct {
	Name string `yaml:"name"`
	Path string `yaml:"path"`
	// Options go to the plugin as they are (interop plugins take them;
	// docs/interop.md lists each plugin's).
	Options map[string]string `yaml:"options"`
	Meta    Meta              `yaml:"-"`
}

func (p *PluginRef) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		p.Name = n.Value
		p.Meta = Meta{Pos: Pos{n.Line, n.Column}, Keys: map[string]Pos{"name": {n.Line, n.Column}}}
		return
	}
	d.decodeStruct(n, reflectValue(p), path)
}

// StringOrList is a value written either as one word or as a list of words.
type StringOrList []string

func (s *StringOrList) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		*s = []string{n.Value}
		return
	}
	var list []string
	d.decode(n, reflectValue(&list), path)
	*s = list
}
