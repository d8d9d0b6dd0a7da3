package l2tp

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
)

// radiusUsers is FreeRADIUS' users file: erin has a static address.
const radiusUsers = `erin Cleartext-Password := "erin-pass"
	Framed-IP-Address = 10.8.0.77,
	Session-Timeout = 3600,
	Class = "erin-class"
frank Cleartext-Password := "frank-pass"
kate Cleartext-Password := "kate-pass"
	Framed-IP-Address = 10.9.0.5
henry Cleartext-Password := "henry-pass"
	Session-Timeout = 4
grace Cleartext-Password := "grace-pass"
`

const radiusSecret = "lab-radius-shared-secret"

// withRADIUS starts FreeRADIUS in the server's namespace on 127.0.0.1 and
// points remote access at it, after the given servers (tried first).
func (x *lab) withRADIUS(before ...string) *netns.FreeRADIUS {
	return x.withRADIUSOptions(netns.FreeRADIUSOptions{}, before...)
}

func (x *lab) withRADIUSOptions(o netns.FreeRADIUSOptions, before ...string) *netns.FreeRADIUS {
	fr := netns.StartFreeRADIUS(x.t, x.srv, "127.0.0.1", radiusSecret, radiusUsers, o)
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

// TestRADIUSFailover: the first server is silent (an nftables rule drops
// what is sent to it, so only the timeout tells). With it alone, a user is
// refused and the log says no server answered; a reload adds FreeRADIUS
// after it, and the second answers once the first's 2 s are up.
func TestRADIUSFailover(t *testing.T) {
	x := newLab(t)
	if out, err := x.srv.Output(5*time.Second, "nft", "add table ip silent; add chain ip silent in { type filter hook input priority 0; }; "+
		"add rule ip silent in ip daddr 127.0.0.2 udp dport 1812 drop"); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
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
	t.Logf("connected through the second server in %s (IKE, L2TP, PPP and a 2 s RADIUS timeout)", time.Since(start).Round(time.Millisecond))
	// The silent server was asked first, and its time ran out.
	if !x.waitLog("user accepted by RADIUS", "127.0.0.1:1812", "127.0.0.2:1812: no answer within") {
		t.Fatalf("the plugin did not say which server answered, and that the first did not:\n%s", x.gw.Proc.Output())
	}
}

var sessionBytes = regexp.MustCompile(`"bytes_?[iI]n":\s*"?(\d+)"?,\s*"bytes_?[oO]ut":\s*"?(\d+)"?`)

// TestRADIUSAccounting: a session's Start, Interim-Updates and Stop reach
// FreeRADIUS' detail file; the Stop's octets are within 1 % of what
// `gatehouse sessions` showed just before the hang-up, and the Class of
// the Access-Accept is echoed.
func TestRADIUSAccounting(t *testing.T) {
	x := newLab(t)
	fr := x.withRADIUS()
	x.radius = strings.TrimSuffix(x.radius, "}") + ", interim_interval: 5s}"
	cli := x.direct("cli")
	x.serve("pap")
	c := x.dial(cli, "erin", "erin-pass", "--ppp-auth", "pap")
	if out, err := cli.Output(30*time.Second, "ping", "-c", "100", "-i", "0.05", "-s", "1200", "-W", "2", "10.1.0.10"); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	fr.WaitDetail(15*time.Second, "Interim-Update")
	m := sessionBytes.FindStringSubmatch(x.gw.CLI(t, "sessions", "--json"))
	if m == nil {
		t.Fatalf("no byte counts in gatehouse sessions --json:\n%s", x.gw.CLI(t, "sessions", "--json"))
	}
	c.hangUp(t)
	d := fr.Detail()
	if !fr.WaitDetail(15*time.Second, "Acct-Status-Type = Stop") {
		t.Fatalf("no Stop record:\n%s", d)
	}
	d = fr.Detail()
	stop := d[strings.LastIndex(d, "Acct-Status-Type = Stop"):]
	for _, want := range []string{"Acct-Status-Type = Start", "Acct-Status-Type = Interim-Update", `User-Name = "erin"`,
		"Framed-IP-Address = 10.8.0.77", `NAS-Identifier = "gatehouse-lab"`, "Class = 0x6572696e2d636c617373"} {
		if !strings.Contains(d, want) {
			t.Errorf("the detail file lacks %q", want)
		}
	}
	if !strings.Contains(stop, "Acct-Terminate-Cause = User-Request") {
		t.Errorf("the Stop should say the user hung up:\n%s", stop)
	}
	for i, attr := range []string{"Acct-Input-Octets", "Acct-Output-Octets"} {
		want, _ := strconv.ParseUint(m[i+1], 10, 64)
		g := regexp.MustCompile(attr + ` = (\d+)`).FindStringSubmatch(stop)
		if g == nil {
			t.Fatalf("the Stop lacks %s:\n%s", attr, stop)
		}
		got, _ := strconv.ParseUint(g[1], 10, 64)
		t.Logf("%s: %d in the Stop, %d in gatehouse sessions", attr, got, want)
		if want < 100_000 || got < want || float64(got-want) > 0.01*float64(want) {
			t.Errorf("%s = %d, gatehouse sessions showed %d (want within 1 %%)", attr, got, want)
		}
	}
	if t.Failed() {
		t.Logf("detail:\n%s", d)
	}
}

// TestRADIUSSessionTimeout: henry's Access-Accept says Session-Timeout 4;
// the server hangs up after 4 s, his client says the connection dropped,
// and the Stop record says Session-Timeout.
func TestRADIUSSessionTimeout(t *testing.T) {
	x := newLab(t)
	fr := x.withRADIUS()
	cli := x.direct("cli")
	x.serve("pap")
	c := x.dial(cli, "henry", "henry-pass", "--ppp-auth", "pap")
	droppedWithCause(t, c, fr, "Session-Timeout")
	if !x.waitLog("user-disconnected", "henry", "Session-Timeout 4s from RADIUS") {
		t.Fatalf("no disconnect event naming the Session-Timeout:\n%s", x.gw.Proc.Output())
	}
}

// droppedWithCause: the server ended c's session (the client says the
// connection dropped) and the Stop record gives cause.
func droppedWithCause(t *testing.T, c *client, fr *netns.FreeRADIUS, cause string) {
	t.Helper()
	select {
	case <-c.proc.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("still connected after 20 s; the server should have ended the session:\n%s", c.proc.Output())
	}
	if out := c.proc.Output(); !strings.Contains(out, "the connection dropped") {
		t.Fatalf("client output:\n%s", out)
	}
	if !fr.WaitDetail(10*time.Second, "Acct-Terminate-Cause = "+cause) {
		t.Fatalf("the Stop should say %s:\n%s", cause, fr.Detail())
	}
}

// TestRADIUSDisconnect: a Disconnect-Request sent with radclient from the
// RADIUS host ends frank's session (Disconnect-ACK, his client sees the
// connection drop, the Stop says Admin-Reset); one for nobody gets a NAK
// with Session-Context-Not-Found; one under a wrong secret, one without a
// Message-Authenticator and one without an Event-Timestamp get no answer,
// and the log says why.
func TestRADIUSDisconnect(t *testing.T) {
	x := newLab(t)
	fr := x.withRADIUS()
	x.radius = strings.TrimSuffix(x.radius, "}") + ", disconnect_listen: 127.0.0.1:3799}"
	cli := x.direct("cli")
	x.serve("pap")
	c := x.dial(cli, "frank", "frank-pass", "--ppp-auth", "pap")
	radclient := func(attrs, secret string) string {
		out, _ := x.srv.Output(15*time.Second, "sh", "-c", "echo '"+attrs+"' | radclient -r 1 -t 2 -x 127.0.0.1:3799 disconnect "+secret)
		return out
	}
	signed := func(attrs string) string {
		return attrs + ",Message-Authenticator=0x00,Event-Timestamp=" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	if out := radclient(signed("User-Name=nobody"), radiusSecret); !strings.Contains(out, "Received Disconnect-NAK") || !strings.Contains(out, "Session-Context-Not-Found") {
		t.Fatalf("a request for nobody:\n%s", out)
	}
	for _, c := range []struct{ attrs, secret, logged string }{
		{signed("User-Name=frank"), "not-the-secret", "Request Authenticator"},
		{"User-Name=frank,Event-Timestamp=" + strconv.FormatInt(time.Now().Unix(), 10), radiusSecret, "no Message-Authenticator"},
		{"User-Name=frank,Message-Authenticator=0x00", radiusSecret, "no Event-Timestamp"},
	} {
		if out := radclient(c.attrs, c.secret); strings.Contains(out, "Received Disconnect") {
			t.Fatalf("%s under %s was answered:\n%s", c.attrs, c.secret, out)
		}
		if !x.waitLog("Disconnect-Request refused", c.logged) {
			t.Fatalf("the refusal (%s) was not logged:\n%s", c.logged, x.gw.Proc.Output())
		}
	}
	if out := radclient(signed("User-Name=frank"), radiusSecret); !strings.Contains(out, "Received Disconnect-ACK") {
		t.Fatalf("a request for frank:\n%s", out)
	}
	droppedWithCause(t, c, fr, "Admin-Reset")
}

// TestRADIUSRequiresMessageAuthenticator: a server that answers without a
// Message-Authenticator (not patched for BlastRADIUS) is refused by
// default, and the log says what to change on either side; with
// require_message_authenticator: false the user gets in, and the reload
// says what that costs.
func TestRADIUSRequiresMessageAuthenticator(t *testing.T) {
	x := newLab(t)
	x.withRADIUSOptions(netns.FreeRADIUSOptions{Unsigned: true})
	cli := x.direct("cli")
	x.serve("pap")
	if _, out, err := x.try(cli, "frank", "frank-pass", "--ppp-auth", "pap"); err == nil {
		t.Fatalf("connected through a server whose answers are not signed:\n%s", out)
	}
	if !x.waitLog("without a Message-Authenticator, which is required", "require_message_authenticator: false") {
		t.Fatalf("the log should say what to change:\n%s", x.gw.Proc.Output())
	}
	x.radius = strings.TrimSuffix(x.radius, "}") + ", require_message_authenticator: false}"
	x.writeConfig("pap")
	x.gw.CLI(t, "reload")
	if !x.waitLog("configuration: answers without a Message-Authenticator are accepted", "BlastRADIUS") {
		t.Fatalf("the reload should warn:\n%s", x.gw.Proc.Output())
	}
	x.dial(cli, "frank", "frank-pass", "--ppp-auth", "pap").hangUp(t)
}

// TestRADIUSAddressOutsidePool: kate's Framed-IP-Address lies outside
// the pool; she gets it, traffic reaches her through a host route, and
// the route goes with her session.
func TestRADIUSAddressOutsidePool(t *testing.T) {
	x := newLab(t)
	x.withRADIUS()
	cli := x.direct("cli")
	x.serve("pap")
	c := x.dial(cli, "kate", "kate-pass", "--ppp-auth", "pap")
	if c.addr != "10.9.0.5" {
		t.Fatalf("kate got %s, want 10.9.0.5", c.addr)
	}
	ping(t, cli, "10.1.0.10")
	if out, _ := x.srv.Output(5*time.Second, "ip", "route", "show", "table", "all"); !strings.Contains(out, "10.9.0.5") {
		t.Fatalf("no route for kate's address:\n%s", out)
	}
	c.hangUp(t)
	await.State(t, 10*time.Second, "kate's route gone with her session", func() (bool, string) {
		out, _ := x.srv.Output(5*time.Second, "ip", "route", "show", "table", "all")
		return !strings.Contains(out, "10.9.0.5"), out
	})
}
