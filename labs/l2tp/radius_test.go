package l2tp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// radiusUsers is FreeRADIUS' users file: erin has a static address.
const radiusUsers = `erin Cleartext-Password := "erin-pass"
	Framed-IP-Address = 10.8.0.77,
	Session-Timeout = 3600
frank Cleartext-Password := "frank-pass"
grace Cleartext-Password := "grace-pass"
`

const radiusSecret = "lab-radius-shared-secret"

// withRADIUS starts FreeRADIUS in the server's namespace on 127.0.0.1 and
// points remote access at it, after the given servers (tried first).
func (x *lab) withRADIUS(before ...string) *netns.FreeRADIUS {
	fr := netns.StartFreeRADIUS(x.t, x.srv, "127.0.0.1", radiusSecret, radiusUsers)
	secret := filepath.Join(x.dir, "radius.secret")
	must(x.t, os.WriteFile(secret, []byte(radiusSecret+"\n"), 0o600))
	var servers []string
	for _, b := range append(before, fr.AuthAddr) {
		servers = append(servers, "{address: "+b+", secret_file: "+secret+"}")
	}
	x.radius = "{servers: [" + strings.Join(servers, ", ") + "], timeout: 2s, nas_identifier: gatehouse-lab}"
	return fr
}

// TestRADIUSUsers: users kept in a real FreeRADIUS connect with PAP, CHAP
// and MS-CHAPv2; erin gets exactly her Framed-IP-Address; a wrong password
// is refused with a clear message and no address.
func TestRADIUSUsers(t *testing.T) {
	x := newLab(t)
	fr := x.withRADIUS()
	cli := x.direct("cli")
	x.serve("mschapv2, chap, pap")

	erin := x.dial(cli, "erin", "erin-pass", "--ppp-auth", "pap")
	if erin.addr != "10.8.0.77" {
		t.Fatalf("erin got %s, want her Framed-IP-Address 10.8.0.77", erin.addr)
	}
	ping(t, cli, "10.1.0.10")
	erin.hangUp(t)

	for _, c := range []struct{ user, pass, auth string }{{"frank", "frank-pass", "chap"}, {"grace", "grace-pass", "mschapv2"}} {
		cl := x.dial(cli, c.user, c.pass, "--ppp-auth", c.auth)
		if !strings.Contains(cl.proc.Output(), "PPP "+c.auth) {
			t.Fatalf("%s's client output:\n%s", c.user, cl.proc.Output())
		}
		ping(t, cli, "10.1.0.10")
		cl.hangUp(t)
	}
	for _, who := range []string{"erin", "frank", "grace"} {
		if !strings.Contains(fr.Output(), "Login OK: ["+who+"]") {
			t.Fatalf("FreeRADIUS did not see %s:\n%s", who, fr.Output())
		}
	}

	_, out, err := x.try(cli, "grace", "not-her-password", "--ppp-auth", "mschapv2")
	if err == nil || !strings.Contains(out, "the server refused the user") || !strings.Contains(out, "E=691") {
		t.Fatalf("a wrong password: %v\n%s", err, out)
	}
	if !x.waitLog("user-auth-failed", "grace", "rejected by the RADIUS server") {
		t.Fatalf("no audit event for the refusal:\n%s", x.gw.Proc.Output())
	}
	if strings.Contains(x.gw.CLI(t, "sessions"), "grace") {
		t.Fatalf("a refused user holds a session:\n%s", x.gw.CLI(t, "sessions"))
	}
}

// TestRADIUSFailover: with its only server down, a user is refused and
// the log says no server answered; a reload adds FreeRADIUS after the dead
// server, and the second answers, well within the login's time.
func TestRADIUSFailover(t *testing.T) {
	x := newLab(t)
	x.withRADIUS("127.0.0.2:1812")
	both := x.radius
	x.radius = strings.Replace(both, ", {address: 127.0.0.1:1812, secret_file: "+filepath.Join(x.dir, "radius.secret")+"}", "", 1)
	cli := x.direct("cli")
	x.serve("pap")
	if _, out, err := x.try(cli, "frank", "frank-pass", "--ppp-auth", "pap"); err == nil {
		t.Fatalf("connected with no RADIUS server up:\n%s", out)
	}
	if !x.waitLog("no RADIUS server answered", "127.0.0.2:1812") {
		t.Fatalf("the log should say the servers are down:\n%s", x.gw.Proc.Output())
	}

	x.radius = both
	x.writeConfig("pap")
	x.gw.CLI(t, "reload")
	start := time.Now()
	x.dial(cli, "frank", "frank-pass", "--ppp-auth", "pap").hangUp(t)
	t.Logf("connected through the second server in %s", time.Since(start).Round(time.Millisecond))
	if !x.waitLog("user accepted by RADIUS", "127.0.0.1:1812") {
		t.Fatalf("the plugin did not say which server answered:\n%s", x.gw.Proc.Output())
	}
}
