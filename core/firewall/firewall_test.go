package firewall

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/policy"
)

func parse(t *testing.T, yaml string) (*config.Config, *policy.Policy) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"a.psk", "host.keytab"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("some-long-key-value\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := config.Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(strings.ReplaceAll(yaml, "DIR", dir)))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	return c, pol
}

const siteToSite = `
listen: [192.0.2.1]
tunnels:
  - name: site
    local:  {address: 192.0.2.1, subnets: [10.1.0.0/24]}
    remote: {address: 192.0.2.2, subnets: [10.2.0.0/24, 10.3.0.0/24]}
    auth: [{psk_file: DIR/a.psk}]
  - name: krb
    local:  {address: 192.0.2.1, subnets: [10.1.0.0/24]}
    remote: {address: 198.51.100.9, subnets: [10.9.0.0/24]}
    auth: [{kerberos: {keytab: DIR/host.keytab, principal: host/gw-a@EXAMPLE.TEST, peer_principal: host/gw-c}}]
`

func TestSiteToSiteRules(t *testing.T) {
	c, pol := parse(t, siteToSite)
	got := Rules(c, pol, Options{TunnelOnly: true})
	for _, want := range []string{
		"elements = { 192.0.2.2, 198.51.100.9 }",
		"ip daddr { 192.0.2.1 } ip saddr @peers udp dport { 500, 4500 } counter accept",
		"ip daddr { 192.0.2.1 } ip saddr @peers meta l4proto { esp, ah } counter accept",
		"ip daddr { 192.0.2.1 } udp dport { 500, 4500 } counter drop",
		"udp dport 1701 counter drop",
		"meta l4proto { tcp, udp } th dport 88 counter accept",
		`iifname != "gatehouse0" ip saddr 10.3.0.0/24 ip daddr 10.1.0.0/24 counter drop`,
		`oifname != "gatehouse0" ip saddr 10.1.0.0/24 ip daddr 10.2.0.0/24 counter drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(got)
	}
	if strings.Contains(Rules(c, pol, Options{}), "tunnel_only") {
		t.Error("a forward chain without --tunnel-only")
	}
	nftCheck(t, got)
}

func TestRemoteAccessRules(t *testing.T) {
	c, pol := parse(t, `
listen: [192.0.2.1]
remote_access:
  auth: [{psk_file: DIR/a.psk}]
  pool: 10.8.0.0/24
`)
	got := Rules(c, pol, Options{TunnelOnly: true})
	if !strings.Contains(got, "ip daddr { 192.0.2.1 } udp dport { 500, 4500 } counter accept") || strings.Contains(got, "counter drop\n\t\tip daddr") ||
		!strings.Contains(got, "udp dport 1701 counter drop") || strings.Contains(got, "dport 88") {
		t.Fatalf("rules:\n%s", got)
	}
	nftCheck(t, got)
	c.RemoteAccess.AllowCleartextL2TP = true
	if got := Rules(c, pol, Options{}); !strings.Contains(got, "udp dport 1701 counter accept") {
		t.Fatalf("cleartext L2TP allowed:\n%s", got)
	}
}

// nftCheck has nft parse and check the script against the kernel, in a
// network namespace of its own so nothing is loaded anywhere.
func nftCheck(t *testing.T, script string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("SKIPPED LOUDLY: nft -c needs root (make test runs as root)")
		return
	}
	path := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("unshare", "--net", "nft", "-c", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("nft -c -f refused the rules: %v\n%s\n%s", err, out, script)
	}
}

// IPv4 and IPv6 peers each get their family's set and rules, matched on
// the listen addresses of that family; nft takes the script.
func TestIPv6PeerRules(t *testing.T) {
	c, pol := parse(t, `
listen: [192.0.2.1, 2001:db8:12::1]
tunnels:
  - name: v4
    local:  {address: 192.0.2.1, subnets: [10.1.0.0/24]}
    remote: {address: 192.0.2.2, subnets: [10.2.0.0/24]}
    auth: [{psk_file: DIR/a.psk}]
  - name: v6
    local:  {address: 2001:db8:12::1, subnets: [fd00:1::/64, 10.5.0.0/24]}
    remote: {address: 2001:db8:12::2, subnets: ["fd00:2::/64", 10.6.0.0/24]}
    auth: [{psk_file: DIR/a.psk}]
`)
	got := Rules(c, pol, Options{TunnelOnly: true})
	for _, want := range []string{
		"set peers {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.2 }",
		"set peers6 {\n\t\ttype ipv6_addr\n\t\telements = { 2001:db8:12::2 }",
		"ip daddr { 192.0.2.1 } ip saddr @peers udp dport { 500, 4500 } counter accept",
		"ip6 daddr { 2001:db8:12::1 } ip6 saddr @peers6 meta l4proto { esp, ah } counter accept",
		"ip6 daddr { 2001:db8:12::1 } udp dport { 500, 4500 } counter drop",
		`iifname != "gatehouse0" ip6 saddr fd00:2::/64 ip6 daddr fd00:1::/64 counter drop`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rules lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(got)
	}
	nftCheck(t, got)
}
