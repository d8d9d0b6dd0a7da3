package krb5

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// TestAgainstMITKDC: gw-a logs in to a real MIT KDC with its machine
// keytab (made by kadmin.local), gets a ticket for host/gw-b, and the two
// contexts complete and exchange sealed tokens; after gw-b is re-keyed, its
// old keytab no longer opens new tickets.
func TestAgainstMITKDC(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a KDC")
	}
	kdc := netns.StartKDC(t, nil, "GATEHOUSE.TEST", "127.0.0.1")
	dir := t.TempDir()
	ktA, ktB := filepath.Join(dir, "gw-a.keytab"), filepath.Join(dir, "gw-b.keytab")
	kdc.AddHost(t, "host/gw-a.gatehouse.test", ktA)
	kdc.AddHost(t, "host/gw-b.gatehouse.test", ktB)

	cfg, err := config.Load(kdc.Krb5ConfPath())
	if err != nil {
		t.Fatal(err)
	}
	load := func(p string) *keytab.Keytab {
		kt, err := keytab.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return kt
	}
	cl := client.NewWithKeytab("host/gw-a.gatehouse.test", kdc.Realm, load(ktA), cfg, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("login with the machine keytab: %v", err)
	}
	defer cl.Destroy()
	tkt, key, err := cl.GetServiceTicket("host/gw-b.gatehouse.test")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	i, req, err := NewInitiator(tkt, key, cl.Credentials.CName(), cl.Credentials.Domain(), now)
	if err != nil {
		t.Fatal(err)
	}
	oldB := load(ktB)
	a, rep, err := Accept(acceptCfg(oldB, 5*time.Minute), req, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Step(rep); err != nil {
		t.Fatal(err)
	}
	if a.Peer() != "host/gw-a.gatehouse.test@GATEHOUSE.TEST" {
		t.Fatalf("acceptor sees %s", a.Peer())
	}
	tok, err := i.Wrap([]byte("HASH_I"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := a.Unwrap(tok); err != nil || string(got) != "HASH_I" {
		t.Fatalf("unwrap: %q %v", got, err)
	}

	// gw-b re-keyed at the KDC; gw-a's next ticket is for the new key.
	kdc.AddHost(t, "host/gw-b.gatehouse.test", ktB)
	cl2 := client.NewWithKeytab("host/gw-a.gatehouse.test", kdc.Realm, load(ktA), cfg, client.DisablePAFXFAST(true))
	if err := cl2.Login(); err != nil {
		t.Fatal(err)
	}
	defer cl2.Destroy()
	tkt, key, err = cl2.GetServiceTicket("host/gw-b.gatehouse.test")
	if err != nil {
		t.Fatal(err)
	}
	_, req, _ = NewInitiator(tkt, key, cl2.Credentials.CName(), cl2.Credentials.Domain(), time.Now())
	if _, _, err := Accept(acceptCfg(oldB, 5*time.Minute), req, time.Now()); !errors.Is(err, ErrKeytab) {
		t.Fatalf("stale keytab: %v", err)
	}
	if _, _, err := Accept(acceptCfg(load(ktB), 5*time.Minute), req, time.Now()); err != nil {
		t.Fatalf("new keytab: %v", err)
	}
}
