package daemon

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func load(t *testing.T, yaml string) (*Loaded, error) {
	t.Helper()
	dir := t.TempDir()
	for _, k := range []string{"a.psk", "b.psk"} {
		os.WriteFile(filepath.Join(dir, k), []byte("some-long-key-value\n"), 0o600)
	}
	p := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(p, []byte(strings.ReplaceAll(yaml, "DIR", dir)), 0o644)
	return Load(Options{ConfigFile: p, PluginDir: "/opt/plugins"})
}

func TestPSKEntriesDerivedFromConfig(t *testing.T) {
	l, err := load(t, `
listen: [203.0.113.1]
tunnels:
  - name: t1
    local:  {address: 203.0.113.1,  subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth: [{psk_file: a.psk}]
remote_access:
  auth: [{psk_file: b.psk}]
  pool: 10.8.0.0/24
rules:
  - name: mgmt
    filters: [{src: me, dst: 192.0.2.0/24}]
    action: negotiate
    auth: [{psk_file: a.psk, peer_id: "fqdn:admin.example.net"}]
  - name: branch
    tunnel: 198.51.100.7
    filters: [{src: 10.1.0.0/16, dst: 10.7.0.0/16}]
    action: negotiate
    auth: [{psk_file: a.psk}]
`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]sdk.PSKEntry{}
	for _, e := range l.Auth.PSK {
		got[e.Name] = e
	}
	want := map[string]sdk.PSKEntry{
		"tunnels[0].auth[0]":    {MatchAddress: netip.MustParsePrefix("198.51.100.2/32")},
		"remote_access.auth[0]": {Wildcard: true},
		"rules[0].auth[0]":      {MatchID: "fqdn:admin.example.net"},
		"rules[1].auth[0]":      {MatchAddress: netip.MustParsePrefix("198.51.100.7/32")},
	}
	if len(got) != len(want) {
		t.Fatalf("entries: %+v", l.Auth.PSK)
	}
	for name, w := range want {
		g := got[name]
		if g.MatchAddress != w.MatchAddress || g.MatchID != w.MatchID || g.Wildcard != w.Wildcard || !filepath.IsAbs(g.KeyFile) {
			t.Errorf("%s = %+v, want %+v", name, g, w)
		}
	}
	// remote_access brings the L2TP plugin.
	if len(l.Plugins) != 2 || l.Plugins[0].Name != "auth-psk" || l.Plugins[0].Path != "/opt/plugins/auth-psk" || l.Plugins[1].Name != "l2tp" {
		t.Errorf("plugins = %+v", l.Plugins)
	}
}

func TestConflictingKeysForSamePeersAreRefused(t *testing.T) {
	_, err := load(t, `
listen: [203.0.113.1]
remote_access:
  auth: [{psk_file: b.psk}]
  pool: 10.8.0.0/24
rules:
  - name: all
    filters: [{src: me, dst: any}]
    action: negotiate
    auth: [{psk_file: a.psk}]
`)
	if err == nil || !strings.Contains(err.Error(), "only one preshared key") || !strings.Contains(err.Error(), "remote_access.auth[0]") {
		t.Fatalf("got %v", err)
	}
	// The same key file for the same peers twice is fine.
	if _, err := load(t, `
listen: [203.0.113.1]
rules:
  - {name: r1, filters: [{src: me, dst: 192.0.2.0/24}], action: negotiate, auth: [{psk_file: a.psk}]}
  - {name: r2, filters: [{src: me, dst: 192.0.2.0/24, protocol: tcp}], action: negotiate, auth: [{psk_file: a.psk}]}
`); err != nil {
		t.Fatal(err)
	}
}

func TestPluginsLoadedAsConfiguredOrAsNeeded(t *testing.T) {
	l, err := load(t, `
listen: [203.0.113.1]
plugins: {dir: /x, load: [auth-psk, {name: extra, path: /y/extra}]}
`)
	if err != nil {
		t.Fatal(err)
	}
	// --plugin-dir overrides plugins.dir; explicit paths stay.
	if len(l.Plugins) != 2 || l.Plugins[0].Path != "/opt/plugins/auth-psk" || l.Plugins[1].Path != "/y/extra" {
		t.Fatalf("plugins = %+v", l.Plugins)
	}
	l, err = load(t, "listen: [203.0.113.1]\n")
	if err != nil || len(l.Plugins) != 0 {
		t.Fatalf("no auth in use: plugins = %+v, %v", l.Plugins, err)
	}
}

func TestDiffPolicy(t *testing.T) {
	a := policy.New([]*policy.Rule{{Name: "keep"}, {Name: "gone"}, {Name: "edit", Action: policy.FilterAction{Action: policy.Permit}}}, "none", nil, nil)
	b := policy.New([]*policy.Rule{{Name: "keep"}, {Name: "new"}, {Name: "edit", Action: policy.FilterAction{Action: policy.Block}}}, "windows2003", []string{"ike"}, nil)
	got := strings.Join(diffPolicy(a, b), "; ")
	want := "exemptions none -> windows2003; rule edit changed; rule gone removed; rule new added"
	if got != want {
		t.Fatalf("diff = %q\nwant   %q", got, want)
	}
}

func TestDiffTunnels(t *testing.T) {
	parse := func(text string) *config.Config {
		t.Helper()
		c, err := config.Parse("t.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	key := filepath.Join(t.TempDir(), "a.psk")
	os.WriteFile(key, []byte("some-long-key-value\n"), 0o600)
	base := "listen: [203.0.113.1]\ntunnels:\n  - {name: a, local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}, remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}, auth: [{psk_file: " + key + "}]}\n"
	other := "  - {name: b, local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}, remote: {address: 198.51.100.3, subnets: [10.4.0.0/16]}, auth: [{psk_file: " + key + "}], start: always}\n"
	diff := func(a, b string) string {
		p, _ := diffTunnels(parse(a), parse(b))
		return fmt.Sprintf("added %v removed %v changed %v start %v", p.added, p.removed, p.changed, p.start)
	}
	for _, c := range []struct{ next, want string }{
		{"# a comment moves every line\n\n" + base, "added [] removed [] changed [] start []"},
		{strings.Replace(base, "10.2.0.0/16", "10.3.0.0/16", 1), "added [] removed [] changed [a] start []"},
		{base + "ike: {proposals: [aes128-sha256-ecp256]}\n", "added [] removed [] changed [a] start []"},
		{base + other, "added [b] removed [] changed [] start [b]"},
		{"listen: [203.0.113.1]\ntunnels:\n" + other, "added [b] removed [a] changed [] start [b]"},
	} {
		if got := diff(base, c.next); got != c.want {
			t.Errorf("%q:\n got %s\nwant %s", c.next, got, c.want)
		}
	}
}

// A data path that cannot open its device returns the error and leaves
// nothing open (and does not trip over what it never opened).
func TestOpenSocketsFailureReturnsTheError(t *testing.T) {
	c := &config.Config{Dataplane: config.Dataplane{TUN: "no/slash", Mark: 1}}
	s, err := openSockets(c, nil, zap.NewNop())
	if err == nil || s != nil {
		s.close()
		t.Fatalf("openSockets with an impossible TUN name: %v, %v", s, err)
	}
}
