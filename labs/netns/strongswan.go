package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// Charon is the strongSwan daemon Debian's charon-systemd package installs;
// it runs fine outside systemd, one per namespace.
const Charon = "/usr/sbin/charon-systemd"

// swanConf loads kernel-libipsec (ESP in user space: this kernel has no
// ESP), kdf (IKEv2's prf+ lives there since strongSwan 5.9.8) and
// eap-identity, eap-mschapv2 and eap-tls (road warriors; MD4 comes from
// openssl),
// and logs to a file in the daemon's folder, line by line so that tests
// can read what happened so far.
const swanConf = `charon-systemd {
  load = random nonce aes sha1 sha2 hmac gcm kdf pem pkcs1 pkcs8 x509 pubkey revocation constraints openssl gmp eap-identity eap-mschapv2 eap-tls kernel-libipsec kernel-netlink socket-default vici updown
  plugins {
    vici { socket = unix://%[1]s/charon.vici }
  }
  journal { default = -1 }
  syslog { daemon { default = -1 } }
  filelog { log { path = %[1]s/charon.log
    flush_line = yes
    default = 1
    ike = 2 } }
  # Tests add charon options in charon-extra.conf (fragment_size, log
  # levels...): last, so that they win.
  include %[1]s/charon-extra*.conf
}
`

// StrongSwan is a charon running in a namespace.
type StrongSwan struct {
	ns   *NS
	dir  string
	proc *Proc
}

// StartStrongSwan starts charon in ns with its files in dir and loads
// swanctl.conf (connections and secrets) into it.
func StartStrongSwan(ns *NS, dir, swanctlConf string) (*StrongSwan, error) {
	if _, err := os.Stat(Charon); err != nil {
		return nil, errors.New("charon-systemd not found (apt-get install charon-systemd strongswan-swanctl libcharon-extra-plugins libcharon-extauth-plugins)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(fmt.Sprintf(swanConf, dir)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "swanctl.conf"), []byte(swanctlConf), 0o600); err != nil {
		return nil, err
	}
	p, err := ns.Start("sh", "-c", fmt.Sprintf("STRONGSWAN_CONF=%s/strongswan.conf exec %s", dir, Charon))
	if err != nil {
		return nil, err
	}
	s := &StrongSwan{ns: ns, dir: dir, proc: p}
	// swanctl fails until charon's VICI socket is up.
	var out string
	if ok, _ := await.Poll(10*time.Second, func() (bool, string) {
		out, err = s.Swanctl(10*time.Second, "--load-all", "--file", filepath.Join(dir, "swanctl.conf"))
		return err == nil, ""
	}); ok {
		return s, nil
	}
	return s, fmt.Errorf("swanctl --load-all in %s: %v\n%s\n%s", ns.Name, err, out, s.Log())
}

// StrongSwanForTest starts charon in ns for t with swanctlConf, after
// copying files (destination in charon's folder: source path) into its
// folder. charon stops with the test, and its log is shown if the test
// failed.
func StrongSwanForTest(t testing.TB, ns *NS, files map[string]string, swanctlConf string) *StrongSwan {
	t.Helper()
	dir := t.TempDir()
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(filepath.Join(dir, dst)), 0o700)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, dst), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sw, err := StartStrongSwan(ns, dir, swanctlConf)
	if err != nil {
		if sw != nil {
			sw.Stop(false)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sw.Stop(false)
		if t.Failed() {
			t.Logf("strongSwan in %s:\n%s", ns.Name, Tail(sw.Log(), 8000))
		}
	})
	return sw
}

// WaitLog waits until charon's log holds text, for at most limit.
func (s *StrongSwan) WaitLog(limit time.Duration, text string) bool {
	ok, _ := await.Poll(limit, func() (bool, string) { return strings.Contains(s.Log(), text), "" })
	return ok
}

// Swanctl runs swanctl against this charon.
func (s *StrongSwan) Swanctl(timeout time.Duration, args ...string) (string, error) {
	return s.ns.Output(timeout, "swanctl", append(args, "--uri", "unix://"+s.dir+"/charon.vici")...)
}

// Log is charon's log so far.
func (s *StrongSwan) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "charon.log"))
	return string(b)
}

// Stop ends charon (kill -9 with kill set, as a crash would).
func (s *StrongSwan) Stop(kill bool) error {
	if kill {
		s.proc.Signal(9)
		<-s.proc.Done()
		return nil
	}
	return s.proc.Stop(5 * time.Second)
}

// Lacks reports, as a test error each, what of wants the log (charon's)
// does not hold.
func Lacks(t testing.TB, log string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(log, want) {
			t.Errorf("strongSwan's log lacks %q", want)
		}
	}
}
