package dataplane

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/gatehouse/gatehouse/core/policy"
)

// NftTable is the nftables table the data path owns.
const NftTable = "gatehouse"

// CleartextRules renders the nftables ruleset that enforces the policy on
// traffic the kernel would otherwise handle without us: inbound cleartext
// that matches a negotiate filter is dropped unless it came out of our TUN
// (i.e. was decapsulated by us) or the filter accepts unsecured traffic.
// ESP, AH and IKE (UDP 500 and 4500) always pass, or no SA could ever come
// up; so does IPv6 neighbour discovery (RFC 4861), which is IPv4's ARP and
// no IP traffic a filter protects: without it a transport filter between
// two IPv6 hosts would drop their neighbour advertisements, and no ESP
// could ever leave. Tunnel filters apply to forwarded and local traffic,
// transport filters to local traffic only. The ruleset replaces the table
// atomically.
func CleartextRules(pol *policy.Policy, tun string) string {
	input, forward := CleartextDrops(pol, policy.Inbound)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\nflush table inet %s\ntable inet %s {\n", NftTable, NftTable, NftTable)
	for _, ch := range []struct {
		name, hook string
		rules      []string
	}{{"input", "input", input}, {"forward", "forward", forward}} {
		fmt.Fprintf(&b, "  chain %s {\n    type filter hook %s priority -10; policy accept;\n", ch.name, ch.hook)
		fmt.Fprintf(&b, "    iifname %q accept\n", tun)
		b.WriteString("    meta l4proto { esp, ah } accept\n    udp dport { 500, 4500 } accept\n")
		b.WriteString("    " + NDAccept + "\n")
		for _, r := range ch.rules {
			b.WriteString("    " + r + "\n")
		}
		b.WriteString("  }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// NDAccept is the nftables rule that lets IPv6 neighbour and router
// discovery through (RFC 4861 types 133 to 137), before any drop.
const NDAccept = "icmpv6 type { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect } accept"

// CleartextDrops lists, for the filters of one direction that must be
// negotiated and do not accept unsecured traffic, an nftables drop rule
// each: for local traffic (input or output) and for forwarded traffic
// (tunnel filters only). The caller lets the TUN's own traffic through
// first.
func CleartextDrops(pol *policy.Policy, dir policy.Direction) (local, forward []string) {
	for _, e := range pol.Entries {
		r := e.Rule
		if e.Dir != dir || r.Action.Action != policy.Negotiate || r.Action.AcceptUnsecured {
			continue
		}
		m := matchExpr(e)
		if m == "" {
			continue // "any to any" would also match IKE from the world; refuse to guess
		}
		line := fmt.Sprintf("%s counter drop comment %q", m, "cleartext for rule "+r.Name)
		local = append(local, line)
		if r.IsTunnel() {
			forward = append(forward, line)
		}
	}
	return local, forward
}

func matchExpr(e *policy.Entry) string {
	var parts []string
	for _, x := range []struct {
		a   policy.Addr
		dir string
	}{{e.Src, "saddr"}, {e.Dst, "daddr"}} {
		if x.a.Any {
			continue
		}
		fam := "ip"
		if x.a.Prefix.Addr().Is6() {
			fam = "ip6"
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", fam, x.dir, x.a.Prefix.Masked()))
	}
	if e.Proto != 0 {
		parts = append(parts, fmt.Sprintf("meta l4proto %d", e.Proto))
	}
	if e.SrcPort != 0 {
		parts = append(parts, fmt.Sprintf("th sport %d", e.SrcPort))
	}
	if e.DstPort != 0 {
		parts = append(parts, fmt.Sprintf("th dport %d", e.DstPort))
	}
	if len(parts) == 0 || (e.Src.Any && e.Dst.Any) {
		return ""
	}
	return strings.Join(parts, " ")
}

// ApplyNft loads a ruleset with nft.
func ApplyNft(ruleset string) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("nft"); lerr != nil {
			return fmt.Errorf("nft not found: enforcing the policy on cleartext needs nftables (apt-get install nftables)")
		}
		return fmt.Errorf("nft: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// RemoveNft deletes the table.
func RemoveNft() { exec.Command("nft", "delete", "table", "inet", NftTable).Run() }
