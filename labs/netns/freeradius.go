package netns

import (
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

// freeradiusBin is Debian's FreeRADIUS 3 server (package freeradius;
// radclient is in freeradius-utils).
const (
	freeradiusBin = "/usr/sbin/freeradius"
	radclientBin  = "/usr/bin/radclient"
)

// FreeRADIUS is a FreeRADIUS server with its own configuration in a
// temporary folder: one client (the given secret), a users file, and a
// detail file for accounting.
type FreeRADIUS struct {
	Dir      string
	AuthAddr string // host:port
	AcctAddr string
	Secret   string
	proc     *exec.Cmd
	out      *syncBuffer
}

// RequireFreeRADIUS installs FreeRADIUS when missing (as root), or skips
// the test saying why.
func RequireFreeRADIUS(t testing.TB) {
	t.Helper()
	requireInstalled(t, "FreeRADIUS (freeradius, freeradius-utils)", freeradiusBin, radclientBin)
}

// FreeRADIUSOptions change the lab server's defaults.
type FreeRADIUSOptions struct {
	// Unsigned: answers carry no Message-Authenticator, as servers not
	// patched for BlastRADIUS send them.
	Unsigned bool
	// EAP runs EAP-MSCHAPv2 (and EAP-MD5) for relayed EAP (RFC 3579),
	// with the users file's passwords.
	EAP bool
}

// StartFreeRADIUS serves on ip until the test ends: at free ports, or
// with ns set inside that namespace at 1812 and 1813. users is a users
// file (FreeRADIUS' files module syntax).
func StartFreeRADIUS(t testing.TB, ns *NS, ip, secret, users string, opts ...FreeRADIUSOptions) *FreeRADIUS {
	t.Helper()
	RequireFreeRADIUS(t)
	dir := t.TempDir()
	auth, acct := 1812, 1813
	if ns == nil {
		auth, acct = freePort(t, ip), freePort(t, ip)
	}
	f := &FreeRADIUS{Dir: dir, AuthAddr: net.JoinHostPort(ip, fmt.Sprint(auth)), AcctAddr: net.JoinHostPort(ip, fmt.Sprint(acct)), Secret: secret}
	sign := signReplies
	if len(opts) > 0 && opts[0].Unsigned {
		sign = ""
	}
	eapModule, eapAuthorize, eapAuthenticate := "", "", ""
	if len(opts) > 0 && opts[0].EAP {
		eapModule, eapAuthorize, eapAuthenticate = freeradiusEAP, "    eap\n", "    Auth-Type EAP {\n      eap\n    }\n"
	}
	conf := fmt.Sprintf(freeradiusConf, dir, secret, ip, auth, acct, sign, eapModule, eapAuthorize, eapAuthenticate)
	for name, body := range map[string]string{"radiusd.conf": conf, "users": users, "acct_users": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.out = &syncBuffer{}
	args := []string{freeradiusBin, "-f", "-d", dir, "-n", "radiusd", "-l", "stdout"}
	if ns != nil {
		args = append([]string{"ip", "netns", "exec", ns.Full}, args...)
	}
	f.proc = exec.Command(args[0], args[1:]...)
	f.proc.Stdout, f.proc.Stderr = f.out, f.out
	if err := f.proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.proc.Process.Kill()
		f.proc.Wait()
		if t.Failed() {
			t.Logf("FreeRADIUS output:\n%s", f.out.String())
		}
	})
	await.State(t, 10*time.Second, "FreeRADIUS ready", func() (bool, string) {
		return strings.Contains(f.out.String(), "Ready to process requests"), f.out.String()
	})
	return f
}

// Output is what the server logged so far.
func (f *FreeRADIUS) Output() string { return f.out.String() }

// Detail is the accounting detail file's contents.
func (f *FreeRADIUS) Detail() string {
	b, _ := os.ReadFile(filepath.Join(f.Dir, "detail"))
	return string(b)
}

// WaitDetail waits until the detail file holds text.
func (f *FreeRADIUS) WaitDetail(timeout time.Duration, text string) bool {
	ok, _ := await.Poll(timeout, func() (bool, string) { return strings.Contains(f.Detail(), text), "" })
	return ok
}

// freeradiusConf is a whole radiusd.conf: no Debian defaults (their EAP
// module wants certificates), PAP, CHAP and MS-CHAP from the users file,
// accounting to a detail file. %[1]s folder, %[2]s secret, %[3]s address,
// %[4]d and %[5]d ports, %[6]s post-auth, %[7]s to %[9]s the eap module
// and its place in authorize and authenticate (FreeRADIUSOptions.EAP).
const freeradiusConf = `prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = ${exec_prefix}/sbin
logdir = %[1]s
raddbdir = %[1]s
radacctdir = %[1]s
name = freeradius
confdir = %[1]s
modconfdir = %[1]s
run_dir = %[1]s
db_dir = %[1]s
libdir = /usr/lib/freeradius
dictdir = /usr/share/freeradius
pidfile = %[1]s/radiusd.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
  destination = stdout
  colourise = no
  auth = yes
}
security {
  allow_core_dumps = no
  max_attributes = 200
  reject_delay = 0
  status_server = no
}
client lab {
  ipaddr = %[3]s
  secret = %[2]s
}
thread pool {
  start_servers = 2
  max_servers = 4
  min_spare_servers = 1
  max_spare_servers = 3
}
modules {
  pap {
    normalise = yes
  }
  chap {
  }
  mschap {
  }
  files {
    filename = %[1]s/users
    acctusersfile = %[1]s/acct_users
  }
  detail {
    filename = %[1]s/detail
    header = "%%t"
    permissions = 0600
  }
%[7]s}
server default {
  listen {
    type = auth
    ipaddr = %[3]s
    port = %[4]d
  }
  listen {
    type = acct
    ipaddr = %[3]s
    port = %[5]d
  }
  authorize {
    files
    chap
    mschap
%[8]s    pap
  }
  authenticate {
%[9]s    Auth-Type PAP {
      pap
    }
    Auth-Type CHAP {
      chap
    }
    Auth-Type MS-CHAP {
      mschap
    }
  }
  accounting {
    detail
  }
  post-auth {
%[6]s  }
}
`

// freeradiusEAP is the eap module without TLS methods (which would want
// certificates): EAP-MSCHAPv2 by default, EAP-MD5 besides.
const freeradiusEAP = `  eap {
    default_eap_type = mschapv2
    timer_expire = 60
    max_sessions = 4096
    md5 {
    }
    mschapv2 {
      send_error = no
    }
  }
`

// signReplies has FreeRADIUS sign its answers with a Message-Authenticator
// (as servers patched for BlastRADIUS, CVE-2024-3596, do; Debian 12's
// 3.2.1 does not unless told): the attribute in the reply is computed
// when the packet is encoded.
const signReplies = `    update reply {
      &Message-Authenticator := 0x00
    }
    Post-Auth-Type REJECT {
      update reply {
        &Message-Authenticator := 0x00
      }
    }
`
