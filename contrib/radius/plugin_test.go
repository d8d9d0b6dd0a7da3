package main

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// TestPluginAgainstFreeRADIUS: the plugin's configuration (secret files,
// refusals), a PAP user accepted with her settings and one rejected, and
// accounting records taken.
func TestPluginAgainstFreeRADIUS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts FreeRADIUS")
	}
	fr := netns.StartFreeRADIUS(t, nil, "127.0.0.1", "plugin-secret", `dora Cleartext-Password := "dora-pass"
	Framed-IP-Address = 10.8.0.44,
	Session-Timeout = 600,
	Class = "silver"
`)
	dir := t.TempDir()
	good, open := filepath.Join(dir, "good.secret"), filepath.Join(dir, "open.secret")
	os.WriteFile(good, []byte("plugin-secret\n"), 0o600)
	os.WriteFile(open, []byte("plugin-secret\n"), 0o644)
	a := newRadiusAuth(hclog.NewNullLogger())
	ctx := context.Background()

	if _, err := a.Configure(ctx, sdk.AuthConfig{Radius: &sdk.RadiusConfig{Servers: []sdk.RadiusServer{{Address: fr.AuthAddr, SecretFile: open}}}}); !errors.Is(err, sdk.ErrInvalid) ||
		!strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a secret file others can read: %v", err)
	}
	w, err := a.Configure(ctx, sdk.AuthConfig{Radius: &sdk.RadiusConfig{Servers: []sdk.RadiusServer{{Address: fr.AuthAddr, AccountingAddress: fr.AcctAddr, SecretFile: good}},
		Timeout: time.Second, NASIdentifier: "plugin-test"}})
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "BlastRADIUS") {
		t.Fatalf("Configure: %v %v", w, err)
	}
	res, err := a.AuthenticateUser(ctx, sdk.UserAuthRequest{Method: sdk.MethodPAP, User: "dora", Password: sdk.Secret("dora-pass"), Peer: netip.MustParseAddrPort("198.51.100.9:4500")})
	if err != nil || res.Code != sdk.UserAccept || res.FramedAddress != netip.MustParseAddr("10.8.0.44") || res.SessionTimeoutSeconds != 600 || string(res.Class) != "silver" {
		t.Fatalf("dora: %+v %v", res, err)
	}
	res, err = a.AuthenticateUser(ctx, sdk.UserAuthRequest{Method: sdk.MethodPAP, User: "dora", Password: sdk.Secret("nope")})
	if err != nil || res.Code != sdk.UserReject || !strings.Contains(res.Message, "rejected by the RADIUS server") {
		t.Fatalf("a wrong password: %+v %v", res, err)
	}
	for _, st := range []sdk.AcctStatus{sdk.AcctStart, sdk.AcctStop} {
		if err := a.Account(ctx, sdk.AccountRequest{Status: st, SessionID: "P-1", User: "dora", BytesIn: 10, BytesOut: 20, TerminateCause: 1}); err != nil {
			t.Fatalf("%v: %v", st, err)
		}
	}
	if !fr.WaitDetail(5*time.Second, `Acct-Session-Id = "P-1"`) {
		t.Fatalf("no accounting in the detail file:\n%s", fr.Detail())
	}

	// Unconfigured: users are refused, accounting says why.
	if _, err := a.Configure(ctx, sdk.AuthConfig{}); err != nil {
		t.Fatal(err)
	}
	if res, err := a.AuthenticateUser(ctx, sdk.UserAuthRequest{Method: sdk.MethodPAP, User: "dora"}); err != nil || res.Code != sdk.UserReject {
		t.Fatalf("unconfigured: %+v %v", res, err)
	}
	if err := a.Account(ctx, sdk.AccountRequest{Status: sdk.AcctStart}); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("unconfigured accounting: %v", err)
	}
}
