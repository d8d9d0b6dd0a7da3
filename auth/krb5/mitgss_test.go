package krb5

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// mitPython is Debian's Python, which has python3-gssapi (make test
// installs it); a Python of someone's own on PATH may not.
const mitPython = "/usr/bin/python3"

// mitPeer is testdata/mitgss.py: MIT's GSS-API at the other end of a
// context, token by token.
type mitPeer struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startMIT(t *testing.T, env []string, args ...string) *mitPeer {
	t.Helper()
	if _, err := os.Stat(mitPython); err != nil {
		t.Fatalf("%s is missing: make test installs python3-gssapi", mitPython)
	}
	cmd := exec.Command(mitPython, append([]string{"testdata/mitgss.py"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mitgss.py said:\n%s", stderr.String())
		}
	})
	return &mitPeer{t: t, cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
}

func (m *mitPeer) send(b []byte) {
	m.t.Helper()
	if _, err := fmt.Fprintln(m.in, hex.EncodeToString(b)); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mitPeer) recv(what string) []byte {
	m.t.Helper()
	if !m.out.Scan() {
		m.t.Fatalf("MIT's side ended before %s", what)
	}
	b, err := hex.DecodeString(m.out.Text())
	if err != nil {
		m.t.Fatalf("MIT's %s: %v", what, err)
	}
	return b
}

// TestAgainstMITGSSAPI: contexts between auth/krb5 and MIT's own GSS-API
// library, each way round, with a real KDC: MIT's AP-REQ accepted and our
// AP-REP taken, our AP-REQ accepted and MIT's AP-REP taken, and sealed
// RFC 4121 Wrap tokens opened by the other side both ways.
func TestAgainstMITGSSAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a KDC")
	}
	kdc := netns.StartKDC(t, nil, realm, "127.0.0.1")
	dir := t.TempDir()
	ktA, ktB := filepath.Join(dir, "gw-a.keytab"), filepath.Join(dir, "gw-b.keytab")
	kdc.AddHost(t, "host/gw-a.gatehouse.test", ktA)
	kdc.AddHost(t, "host/gw-b.gatehouse.test", ktB)
	load := func(p string) *keytab.Keytab {
		kt, err := keytab.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return kt
	}
	env := []string{"KRB5_CONFIG=" + kdc.Krb5ConfPath()}

	t.Run("MIT initiates", func(t *testing.T) {
		ccache := filepath.Join(dir, "ccache")
		kdc.Kinit(t, "host/gw-a.gatehouse.test", ktA, ccache)
		mit := startMIT(t, append(env, "KRB5CCNAME=FILE:"+ccache), "initiate", gwB)
		a, rep, err := Accept(acceptCfg(load(ktB), 5*time.Minute), mit.recv("the AP-REQ"), time.Now())
		if err != nil {
			t.Fatalf("MIT's AP-REQ: %v", err)
		}
		if a.Peer() != "host/gw-a.gatehouse.test@"+realm {
			t.Fatalf("the peer is %q", a.Peer())
		}
		mit.send(rep)
		exchangeWraps(t, mit, &a.Context)
	})

	t.Run("we initiate", func(t *testing.T) {
		cfg, err := config.Load(kdc.Krb5ConfPath())
		if err != nil {
			t.Fatal(err)
		}
		cl := client.NewWithKeytab("host/gw-a.gatehouse.test", realm, load(ktA), cfg, client.DisablePAFXFAST(true))
		if err := cl.Login(); err != nil {
			t.Fatal(err)
		}
		defer cl.Destroy()
		tkt, key, err := cl.GetServiceTicket("host/gw-b.gatehouse.test")
		if err != nil {
			t.Fatal(err)
		}
		mit := startMIT(t, append(env, "KRB5_KTNAME=FILE:"+ktB), "accept", gwB)
		i, req, err := NewInitiator(tkt, key, cl.Credentials.CName(), cl.Credentials.Domain(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		mit.send(req)
		if err := i.Step(mit.recv("the AP-REP")); err != nil {
			t.Fatalf("MIT's AP-REP: %v", err)
		}
		exchangeWraps(t, mit, &i.Context)
		if peer := string(mit.recv("the peer's name")); peer != "host/gw-a.gatehouse.test@"+realm {
			t.Fatalf("MIT sees the peer as %q", peer)
		}
	})
}

// exchangeWraps opens MIT's sealed Wrap token and has MIT open ours.
func exchangeWraps(t *testing.T, mit *mitPeer, c *Context) {
	t.Helper()
	if got, err := c.Unwrap(mit.recv("MIT's Wrap token")); err != nil || string(got) != "sealed by MIT" {
		t.Fatalf("MIT's Wrap token opened to %q, %v", got, err)
	}
	tok, err := c.Wrap([]byte("sealed by Gatehouse"))
	if err != nil {
		t.Fatal(err)
	}
	mit.send(tok)
	if got := string(mit.recv("what MIT read")); got != "sealed by Gatehouse" {
		t.Fatalf("MIT read our Wrap token as %q", got)
	}
}
