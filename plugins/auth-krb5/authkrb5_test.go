package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gatehouse/gatehouse/auth/krb5"
	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

const (
	realm = "GATEHOUSE.TEST"
	hostA = "host/gw-a.gatehouse.test"
	hostB = "host/gw-b.gatehouse.test"
)

// krbLab is a KDC with two gateways' keytabs, and a plugin for each.
type krbLab struct {
	kdc          *netns.KDC
	ktA, ktB     string
	gwA, gwB     *krbAuth
	cfgA, cfgB   sdk.KerberosProfile
	dir          string
	configureErr error
}

func newKrbLab(t *testing.T) *krbLab {
	if testing.Short() {
		t.Skip("starts a KDC")
	}
	l := &krbLab{kdc: netns.StartKDC(t, nil, realm, "127.0.0.1"), dir: t.TempDir()}
	l.ktA, l.ktB = filepath.Join(l.dir, "a.keytab"), filepath.Join(l.dir, "b.keytab")
	l.kdc.AddHost(t, hostA, l.ktA)
	l.kdc.AddHost(t, hostB, l.ktB)
	log := hclog.NewNullLogger()
	l.gwA, l.gwB = newKrbAuth(log), newKrbAuth(log)
	l.cfgA = sdk.KerberosProfile{Name: "k", Keytab: l.ktA, Principal: hostA + "@" + realm, Krb5Conf: l.kdc.Krb5ConfPath()}
	l.cfgB = sdk.KerberosProfile{Name: "k", Keytab: l.ktB, Principal: hostB + "@" + realm, Krb5Conf: l.kdc.Krb5ConfPath()}
	l.configure(t)
	return l
}

func (l *krbLab) configure(t *testing.T) {
	t.Helper()
	for _, c := range []struct {
		a *krbAuth
		p sdk.KerberosProfile
	}{{l.gwA, l.cfgA}, {l.gwB, l.cfgB}} {
		if _, err := c.a.Configure(context.Background(), sdk.AuthConfig{Kerberos: []sdk.KerberosProfile{c.p}}); err != nil {
			t.Fatal(err)
		}
	}
}

// handshake runs A's AP-REQ into B; it returns both results and B's error.
func (l *krbLab) handshake(t *testing.T) (ra, rb sdk.GSSStepResult, err error) {
	t.Helper()
	ctx := context.Background()
	ra, err = l.gwA.GSSStep(ctx, sdk.GSSStepRequest{Profile: "k", Role: sdk.GSSInitiator, Target: hostB + "@" + realm})
	if err != nil {
		t.Fatalf("A's first step: %v", err)
	}
	if ra.Complete || ra.ContextID == "" || len(ra.Token) == 0 {
		t.Fatalf("A: %+v", ra)
	}
	rb, err = l.gwB.GSSStep(ctx, sdk.GSSStepRequest{Profile: "k", Role: sdk.GSSAcceptor, Token: ra.Token})
	return ra, rb, err
}

// TestGSSAgainstMITKDC: A gets a ticket for B from a real KDC; B accepts
// it with its keytab; the contexts protect data both ways and are gone
// once released.
func TestGSSAgainstMITKDC(t *testing.T) {
	l := newKrbLab(t)
	ctx := context.Background()
	ra, rb, err := l.handshake(t)
	if err != nil {
		t.Fatal(err)
	}
	if !rb.Complete || rb.PeerPrincipal != hostA+"@"+realm || len(rb.Token) == 0 {
		t.Fatalf("B: %+v", rb)
	}
	fa, err := l.gwA.GSSStep(ctx, sdk.GSSStepRequest{Profile: "k", ContextID: ra.ContextID, Role: sdk.GSSInitiator, Token: rb.Token})
	if err != nil || !fa.Complete || fa.PeerPrincipal != hostB+"@"+realm || len(fa.Token) != 0 {
		t.Fatalf("A's second step: %+v %v", fa, err)
	}
	for _, dir := range []struct {
		from, to     *krbAuth
		fromID, toID string
		data         string
	}{{l.gwA, l.gwB, ra.ContextID, rb.ContextID, "HASH_I"}, {l.gwB, l.gwA, rb.ContextID, ra.ContextID, "HASH_R"}} {
		tok, err := dir.from.GSSWrap(ctx, dir.fromID, []byte(dir.data))
		if err != nil {
			t.Fatal(err)
		}
		got, err := dir.to.GSSUnwrap(ctx, dir.toID, tok)
		if err != nil || string(got) != dir.data {
			t.Fatalf("unwrap %s: %q %v", dir.data, got, err)
		}
		tok[len(tok)-1] ^= 1
		if _, err := dir.to.GSSUnwrap(ctx, dir.toID, tok); !errors.Is(err, krb5.ErrIntegrity) && !errors.Is(err, krb5.ErrSequence) {
			t.Fatalf("a tampered Wrap token: %v", err)
		}
	}
	// A second negotiation uses the cached TGT and ticket.
	if _, _, err := l.handshake(t); err != nil {
		t.Fatal(err)
	}
	if err := l.gwA.GSSRelease(ctx, ra.ContextID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.gwA.GSSWrap(ctx, ra.ContextID, []byte("x")); !errors.Is(err, errNoContext) {
		t.Fatalf("wrap after release: %v", err)
	}
}

// TestGSSClockSkew: A's clock 10 minutes off; B refuses and says so.
func TestGSSClockSkew(t *testing.T) {
	l := newKrbLab(t)
	l.cfgA.ClockOffset = 10 * time.Minute
	l.configure(t)
	_, _, err := l.handshake(t)
	if !errors.Is(err, krb5.ErrClockSkew) || !strings.Contains(err.Error(), hostA) || !strings.Contains(err.Error(), "10m0s") {
		t.Fatalf("want a clock skew refusal naming A: %v", err)
	}
	// Within B's max_skew it passes.
	l.cfgB.MaxSkew = 15 * time.Minute
	l.configure(t)
	if _, _, err := l.handshake(t); err != nil {
		t.Fatal(err)
	}
}

// TestGSSStaleKeytab: B re-keyed at the KDC but still on its old keytab
// cannot open A's new tickets; a reload with the new keytab fixes it.
func TestGSSStaleKeytab(t *testing.T) {
	l := newKrbLab(t)
	l.cfgB.Keytab = l.kdc.Rekey(t, hostB, l.ktB)
	l.configure(t)
	if _, _, err := l.handshake(t); !errors.Is(err, krb5.ErrKeytab) || !strings.Contains(err.Error(), hostB) {
		t.Fatalf("want a keytab refusal: %v", err)
	}
	l.cfgB.Keytab = l.ktB
	l.configure(t)
	if _, _, err := l.handshake(t); err != nil {
		t.Fatal(err)
	}
}

// TestStaleInitiatorKeytab: A re-keyed but on its old keytab cannot log
// in; the error carries the KDC's reason.
func TestStaleInitiatorKeytab(t *testing.T) {
	l := newKrbLab(t)
	l.cfgA.Keytab = l.kdc.Rekey(t, hostA, l.ktA)
	l.configure(t)
	_, err := l.gwA.GSSStep(context.Background(), sdk.GSSStepRequest{Profile: "k", Role: sdk.GSSInitiator, Target: hostB + "@" + realm})
	if err == nil || !strings.Contains(err.Error(), "logging in to realm "+realm) || !strings.Contains(err.Error(), "keytab incorrect") {
		t.Fatalf("%v", err)
	}
}

// TestConfigureRefusals: a bad profile refuses the configuration with the
// reason, and the old one stays.
func TestConfigureRefusals(t *testing.T) {
	l := newKrbLab(t)
	ctx := context.Background()
	for what, c := range map[string]struct {
		p    sdk.KerberosProfile
		want string
	}{
		"principal not in the keytab": {sdk.KerberosProfile{Name: "k", Keytab: l.ktA, Principal: hostB + "@" + realm, Krb5Conf: l.kdc.Krb5ConfPath()}, "has no key for " + hostB},
		"no realm":                    {sdk.KerberosProfile{Name: "k", Keytab: l.ktA, Principal: hostA, Krb5Conf: l.kdc.Krb5ConfPath()}, "want service/host@REALM"},
		"missing keytab":              {sdk.KerberosProfile{Name: "k", Keytab: filepath.Join(l.dir, "nope"), Principal: hostA + "@" + realm, Krb5Conf: l.kdc.Krb5ConfPath()}, "keytab"},
		"missing krb5.conf":           {sdk.KerberosProfile{Name: "k", Keytab: l.ktA, Principal: hostA + "@" + realm, Krb5Conf: filepath.Join(l.dir, "nope")}, "nope"},
	} {
		_, err := l.gwA.Configure(ctx, sdk.AuthConfig{Kerberos: []sdk.KerberosProfile{c.p}})
		if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", what, err, c.want)
		}
	}
	if _, _, err := l.handshake(t); err != nil {
		t.Fatalf("the old configuration should still serve: %v", err)
	}
}

// TestUnknownPrincipal: a target the KDC does not know fails at A with
// the KDC's reason.
func TestUnknownPrincipal(t *testing.T) {
	l := newKrbLab(t)
	_, err := l.gwA.GSSStep(context.Background(), sdk.GSSStepRequest{Profile: "k", Role: sdk.GSSInitiator, Target: "host/nobody.gatehouse.test@" + realm})
	if err == nil || !strings.Contains(err.Error(), "host/nobody.gatehouse.test") || !strings.Contains(err.Error(), "UNKNOWN") {
		t.Fatalf("%v", err)
	}
}

// TestContextLimits: contexts left behind expire; garbage tokens are
// refused without a context.
func TestContextLimits(t *testing.T) {
	a := newKrbAuth(hclog.NewNullLogger())
	now := time.Unix(1_800_000_000, 0)
	a.now = func() time.Time { return now }
	for range 10 {
		if _, err := a.keep(&gssCtx{made: now}); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(contextTTL + time.Second)
	if _, err := a.keep(&gssCtx{made: now}); err != nil || len(a.ctxs) != 1 {
		t.Fatalf("expired contexts kept: %d %v", len(a.ctxs), err)
	}
	if _, err := a.GSSStep(context.Background(), sdk.GSSStepRequest{Profile: "k", Role: sdk.GSSAcceptor, Token: []byte{0x60, 1}}); !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("unconfigured: %v", err)
	}
}

// TestCredentialCache: A initiates with a TGT from kinit -k in a
// credential cache and no keytab; without a keytab it cannot accept, and
// says so.
func TestCredentialCache(t *testing.T) {
	l := newKrbLab(t)
	cc := filepath.Join(l.dir, "gw-a.ccache")
	l.kdc.Kinit(t, hostA, l.ktA, cc)
	l.cfgA.Keytab, l.cfgA.Ccache = "", cc
	l.configure(t)
	ra, rb, err := l.handshake(t)
	if err != nil || rb.PeerPrincipal != hostA+"@"+realm {
		t.Fatalf("B: %+v %v", rb, err)
	}
	if fa, err := l.gwA.GSSStep(context.Background(), sdk.GSSStepRequest{Profile: "k", ContextID: ra.ContextID, Role: sdk.GSSInitiator, Token: rb.Token}); err != nil || !fa.Complete {
		t.Fatalf("A: %+v %v", fa, err)
	}
	_, err = l.gwA.GSSStep(context.Background(), sdk.GSSStepRequest{Profile: "k", Role: sdk.GSSAcceptor, Token: ra.Token})
	if !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "no keytab") {
		t.Fatalf("accepting without a keytab: %v", err)
	}
}
