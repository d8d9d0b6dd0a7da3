package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/plugins/sdk"
)

func writeKey(t *testing.T, dir, name, key string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(key+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigureAndLookup(t *testing.T) {
	dir := t.TempDir()
	a := &pskAuth{log: hclog.NewNullLogger()}
	ctx := context.Background()
	if _, err := a.LookupPSK(ctx, sdk.PSKRequest{}); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("lookup before configure = %v", err)
	}
	cfg := sdk.AuthConfig{PSK: []sdk.PSKEntry{
		{Name: "netb", KeyFile: writeKey(t, dir, "netb", "netb-secret-key", 0o600), MatchAddress: netip.MustParsePrefix("198.51.100.2/32")},
		{Name: "ra", KeyFile: writeKey(t, dir, "ra", "road-warrior-key", 0o600), Wildcard: true},
		{Name: "byid", KeyFile: writeKey(t, dir, "id", "identity-key-1", 0o400), MatchID: "fqdn:gw.example.net"},
	}}
	if _, err := a.Configure(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		peer, entry, key string
		id               *sdk.Identity
	}{
		{"198.51.100.2:500", "netb", "netb-secret-key", nil},
		// Windows road warrior: private-address ID, unknown public address.
		{"192.0.2.77:4500", "ra", "road-warrior-key", &sdk.Identity{Type: 1, Data: []byte{192, 168, 1, 20}}},
		{"192.0.2.78:500", "byid", "identity-key-1", &sdk.Identity{Type: 2, Data: []byte("GW.example.net")}},
	}
	for _, c := range cases {
		r, err := a.LookupPSK(ctx, sdk.PSKRequest{Peer: netip.MustParseAddrPort(c.peer), PeerID: c.id})
		if err != nil || !r.Found || r.Entry != c.entry || string(r.Key) != c.key {
			t.Errorf("lookup %s: %+v %v, want entry %s", c.peer, r, err, c.entry)
		}
	}
	// A bad key file refuses the new configuration and keeps the old keys.
	bad := sdk.AuthConfig{PSK: []sdk.PSKEntry{{Name: "open", KeyFile: writeKey(t, dir, "open", "world-readable-key", 0o644), Wildcard: true}}}
	if _, err := a.Configure(ctx, bad); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	if r, _ := a.LookupPSK(ctx, sdk.PSKRequest{Peer: netip.MustParseAddrPort("198.51.100.2:500")}); r.Entry != "netb" {
		t.Fatalf("old keys lost after refused reload: %+v", r)
	}
	// Without a wildcard an unknown peer is not found (not an error).
	if _, err := a.Configure(ctx, sdk.AuthConfig{PSK: cfg.PSK[:1]}); err != nil {
		t.Fatal(err)
	}
	if r, err := a.LookupPSK(ctx, sdk.PSKRequest{Peer: netip.MustParseAddrPort("192.0.2.1:500")}); err != nil || r.Found {
		t.Fatalf("unknown peer = %+v, %v", r, err)
	}
}
