package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// MIT Kerberos binaries (Debian's krb5-kdc, krb5-admin-server and krb5-user).
const (
	krb5kdc     = "/usr/sbin/krb5kdc"
	kdb5Util    = "/usr/sbin/kdb5_util"
	kadminLocal = "/usr/sbin/kadmin.local"
	kinit       = "/usr/bin/kinit"
)

// KDC is an MIT krb5kdc with a realm of its own, its database and
// configuration in a temporary folder.
type KDC struct {
	Realm string
	Addr  string // host:port it serves on (UDP and TCP)
	Dir   string
	env   []string
	proc  *exec.Cmd
}

// RequireKDC installs MIT Kerberos when missing (as root), or skips the
// test saying why.
func RequireKDC(t testing.TB) {
	t.Helper()
	requireInstalled(t, "MIT Kerberos (krb5-kdc, krb5-admin-server, krb5-user)", kadminLocal, kinit)
}

// requireInstalled runs install-test-deps when one of paths is missing
// (as root), or skips the test saying why; it fails the test when the
// install did not bring them.
func requireInstalled(t testing.TB, what string, paths ...string) {
	t.Helper()
	missing := func() error {
		var errs []error
		for _, p := range paths {
			_, err := os.Stat(p)
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if missing() == nil {
		return
	}
	if os.Getuid() != 0 {
		t.Skipf("SKIPPING: %s is not installed and we are not root to install it", what)
	}
	out, err := exec.Command("sh", filepath.Join(repoRoot(), "contrib/scripts/install-test-deps.sh")).CombinedOutput()
	if merr := missing(); merr != nil {
		t.Fatalf("installing %s failed: %v (%v: %s)", what, merr, err, out)
	}
}

// repoRoot finds the module root from the working directory.
func repoRoot() string {
	dir, _ := os.Getwd()
	for range 10 {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		dir = filepath.Dir(dir)
	}
	return "."
}

// StartKDC creates realm (with a 5 minute clock skew limit) and serves
// it on ip (a loopback or lab address) at a free port, until the test
// ends. With ns set, it runs inside that namespace.
func StartKDC(t testing.TB, ns *NS, realm, ip string) *KDC {
	t.Helper()
	RequireKDC(t)
	dir := t.TempDir()
	port := freePort(t, ip)
	k := &KDC{Realm: realm, Addr: net.JoinHostPort(ip, fmt.Sprint(port)), Dir: dir}
	kdcConf := fmt.Sprintf(`[kdcdefaults]
 kdc_ports = %[3]s
 kdc_tcp_ports = %[3]s
[realms]
 %[1]s = {
  database_name = %[2]s/principal
  key_stash_file = %[2]s/stash
  acl_file = %[2]s/kadm5.acl
  max_life = 10h
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }
[logging]
 kdc = FILE:%[2]s/kdc.log
 admin_server = FILE:%[2]s/kadmin.log
`, realm, dir, k.Addr)
	must := func(err error) {
		if err != nil {
			t.Helper()
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "kdc.conf"), []byte(kdcConf), 0o600))
	must(os.WriteFile(filepath.Join(dir, "krb5.conf"), []byte(k.Krb5Conf()), 0o644))
	must(os.WriteFile(filepath.Join(dir, "kadm5.acl"), nil, 0o600))
	k.env = append(os.Environ(), "KRB5_CONFIG="+filepath.Join(dir, "krb5.conf"), "KRB5_KDC_PROFILE="+filepath.Join(dir, "kdc.conf"))
	k.run(t, kdb5Util, "create", "-s", "-r", realm, "-P", "lab-master-password")
	args := []string{krb5kdc, "-n", "-r", realm}
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Full}, args...)
	}
	k.proc = exec.Command(args[0], args[1:]...)
	k.proc.Env = k.env
	stderr := &syncBuffer{}
	k.proc.Stdout, k.proc.Stderr = stderr, stderr
	must(k.proc.Start())
	t.Cleanup(func() {
		k.proc.Process.Kill()
		k.proc.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
			t.Logf("krb5kdc log:\n%s", b)
		}
	})
	await.State(t, 10*time.Second, "krb5kdc started", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(dir, "kdc.log"))
		return strings.Contains(string(b), "commencing operation"), string(b) + stderr.String()
	})
	return k
}

// Krb5Conf is a client configuration for the realm.
func (k *KDC) Krb5Conf() string {
	return fmt.Sprintf(`[libdefaults]
 default_realm = %[1]s
 dns_lookup_kdc = false
 dns_lookup_realm = false
 rdns = false
 clockskew = 300
 default_tkt_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
 default_tgs_enctypes = aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96
[realms]
 %[1]s = {
  kdc = %[2]s
 }
`, k.Realm, k.Addr)
}

// Krb5ConfPath is the file holding Krb5Conf.
func (k *KDC) Krb5ConfPath() string { return filepath.Join(k.Dir, "krb5.conf") }

// AddHost creates principal with a random key and writes its keytab;
// called again, it re-keys the principal (a new kvno) and writes a new
// keytab, leaving older keytab files stale.
func (k *KDC) AddHost(t testing.TB, principal, keytab string) {
	t.Helper()
	if out, _ := k.output(kadminLocal, "-r", k.Realm, "-q", "getprinc "+principal); !strings.Contains(out, "Principal: ") {
		k.run(t, kadminLocal, "-r", k.Realm, "-q", "addprinc -randkey "+principal)
	}
	os.Remove(keytab)
	k.run(t, kadminLocal, "-r", k.Realm, "-q", "ktadd -k "+keytab+" "+principal)
}

// Rekey gives principal a new key, as a host re-joining the realm does:
// its keytab file gets the new key, and the old keytab is kept at the
// returned path for tests of a gateway that was not told.
func (k *KDC) Rekey(t testing.TB, principal, keytab string) (stale string) {
	t.Helper()
	b, err := os.ReadFile(keytab)
	if err != nil {
		t.Fatal(err)
	}
	stale = keytab + ".old"
	if err := os.WriteFile(stale, b, 0o600); err != nil {
		t.Fatal(err)
	}
	k.AddHost(t, principal, keytab)
	return stale
}

// Kinit logs principal in with its keytab and writes the TGT to a
// credential cache file, as a machine's kinit -k would (the KDC must be
// reachable from the host's namespace).
func (k *KDC) Kinit(t testing.TB, principal, keytab, ccache string) {
	t.Helper()
	k.run(t, kinit, "-k", "-t", keytab, "-c", "FILE:"+ccache, principal+"@"+k.Realm)
}

func (k *KDC) output(name string, args ...string) (string, error) {
	c := exec.Command(name, args...)
	c.Env = k.env
	b, err := c.CombinedOutput()
	return string(b), err
}

func (k *KDC) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := k.output(name, args...); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
