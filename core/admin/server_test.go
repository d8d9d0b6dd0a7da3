package admin

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/esp"
)

func TestAppliedFilter(t *testing.T) {
	s, _ := esp.ParseSuite("aes256-sha256")
	r := &policy.Rule{Name: "t/out", Origin: "tunnels[0] t", Tunnel: netip.MustParseAddr("198.51.100.2"), Dir: policy.Outbound,
		Action: policy.FilterAction{Action: policy.Negotiate, Offers: []policy.Offer{{Suite: s, Lifetime: time.Hour, LifetimeKB: 1000}}, PFS: "modp2048"},
		Auth:   []policy.AuthMethod{{Kind: "psk", Detail: "key file /k"}}}
	e := &policy.Entry{Rule: r, Dir: policy.Outbound, Src: policy.Addr{Prefix: netip.MustParsePrefix("10.1.0.0/16")}, Dst: policy.Addr{Any: true}, Weight: 128}
	f := AppliedFilter(e)
	if f.Source != "10.1.0.0" || f.SourceMask != "255.255.0.0" || f.Destination != "any" || f.DestinationMask != "0.0.0.0" ||
		f.Mode != "tunnel" || f.TunnelEndpoint != "198.51.100.2" || f.Protocol != "any" || f.Direction != "outbound" ||
		len(f.Offers) != 1 || f.Offers[0].Encryption != "aes256" || f.Offers[0].Integrity != "sha256" || f.Offers[0].LifetimeSeconds != 3600 ||
		f.Offers[0].LifetimeKilobytes != 1000 || f.Pfs != "modp2048" || f.AuthMethods[0] != "psk (key file /k)" {
		t.Fatalf("AppliedFilter = %+v", f)
	}
	block := &policy.Entry{Rule: &policy.Rule{Name: "b", Action: policy.FilterAction{Action: policy.Block}}, Src: policy.Addr{Prefix: netip.MustParsePrefix("2001:db8::/32")}, Dst: policy.Addr{Any: true}, Proto: 6, DstPort: 23}
	f = AppliedFilter(block)
	if f.Mode != "" || f.Action != "block" || f.SourceMask != "/32" || f.Protocol != "tcp" || f.DestinationPort != 23 {
		t.Fatalf("block = %+v", f)
	}
}

// TestListenSocket: the admin socket is 0600 from the start; a stale one
// left by a dead daemon is replaced; a live one is refused.
func TestListenSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "admin.sock")
	l, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket mode %v (%v), want 0600", st.Mode(), err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another gatehoused") {
		t.Fatalf("a second daemon on a live socket: %v", err)
	}
	// A daemon killed with SIGKILL leaves its socket file behind.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l.Close()
}
