// Package l2tp is the lab for L2TP/IPsec remote access: gatehoused as the
// server in one namespace and `gatehouse connect l2tp` clients in others,
// directly or behind a NAT router.
//
//	in 10.1.0.10 - 10.1.0.1 srv 192.0.2.1 --- 192.0.2.10 cli
//	                            192.0.2.1 --- 192.0.2.2 nat 10.0.N.1 --- 10.0.N.2 cN  (N = 1..4)
package l2tp

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/labs/pcap"
	"github.com/gatehouse/gatehouse/labs/testbin"
)

var bin string

func TestMain(m *testing.M) {
	testbin.Main(m.Run, &bin, map[string]string{"../../cmd/gatehoused": "gatehoused", "../../cmd/gatehouse": "gatehouse",
		"../../plugins/auth-psk": "plugins/auth-psk", "../../plugins/auth-x509": "plugins/auth-x509", "../../plugins/l2tp": "plugins/l2tp",
		"../../contrib/radius": "plugins/radius", "../../plugins/interop-windows": "plugins/interop-windows",
		"../../plugins/interop-apple": "plugins/interop-apple", "../../plugins/interop-android": "plugins/interop-android",
		"./testdata/ikeflood": "ikeflood", "./testdata/clearl2tp": "clearl2tp"})
}

const (
	psk   = "road-warrior-key-0123456789"
	users = `users:
  alice: {password: "correct horse"}
  bob:   {password: "battery staple"}
  carol: {password: "c4rol!"}
  dave:  {password: "d4ve!"}
`
)

// lab is the server side: srv with in behind it.
type lab struct {
	t        *testing.T
	l        *netns.Lab
	srv, in  *netns.NS
	gw       *netns.Gateway
	dir      string
	srvOuter string // srv's interface towards the clients
	cliOuter string // the direct client's interface towards srv
	// auth is remote_access.auth (default: the PSK).
	auth string
	// radius replaces the users file with remote_access.ppp.radius.
	radius string
	// load is plugins.load (default: only what the configuration needs).
	load string
	// audit is log.audit (default: audit.jsonl in the lab's folder).
	audit string
	// top is more top-level configuration (legacy_algorithms: true).
	top string
	// listen is the listen list (default: [192.0.2.1]).
	listen string
}

func newLab(t *testing.T) *lab {
	l := netns.ForTest(t)
	x := &lab{t: t, l: l, srv: l.MustNS(t, "srv"), in: l.MustNS(t, "in"), dir: t.TempDir()}
	l.MustLink(t, x.in, "10.1.0.10/24", x.srv, "10.1.0.1/24")
	must(t, x.in.Route("default", "10.1.0.1"))
	must(t, x.srv.Forwarding())
	for name, body := range map[string]string{"l2tp.psk": psk + "\n", "users.yaml": users} {
		must(t, os.WriteFile(filepath.Join(x.dir, name), []byte(body), 0o600))
	}
	return x
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// serve starts gatehoused as the L2TP/IPsec server; extra lines go in
// remote_access.
func (x *lab) serve(pppAuth string, extra ...string) {
	path := x.writeConfig(pppAuth, extra...)
	x.gw = netns.StartGateway(x.t, x.srv, bin, path, x.dir+"/admin.sock")
	// Secrets never reach the log (debug level) or the audit file.
	gw := x.gw
	x.t.Cleanup(func() {
		audit, _ := os.ReadFile(filepath.Join(x.dir, "audit.jsonl"))
		netns.NoSecrets(x.t, map[string]string{"gatehoused's log": gw.Proc.Output(), "the audit log": string(audit)},
			psk, "correct horse", "battery staple", "c4rol!", "d4ve!", radiusSecret, "erin-pass", "frank-pass", "kate-pass", "henry-pass")
	})
}

// writeConfig writes gatehoused's configuration and returns its path.
func (x *lab) writeConfig(pppAuth string, extra ...string) string {
	cfg := fmt.Sprintf(`listen: %[10]s
admin_socket: %[1]s/admin.sock
metrics_listen: 127.0.0.1:9273
log: {level: debug, audit: %[8]s}
%[9]sremote_access:
  auth: %[5]s
  pool: 10.8.0.0/24
  dns: [10.1.0.53]
  ppp: {auth: [%[3]s], %[6]s}
%[4]splugins: {dir: %[2]s/plugins, health_interval: 1s, load: [%[7]s]}
`, x.dir, bin, pppAuth, indent(extra), cmp.Or(x.auth, "[{psk_file: "+x.dir+"/l2tp.psk}]"), x.userDB(), x.load, cmp.Or(x.audit, x.dir+"/audit.jsonl"), x.top, cmp.Or(x.listen, "[192.0.2.1]"))
	path := filepath.Join(x.dir, "gatehouse.yaml")
	must(x.t, os.WriteFile(path, []byte(cfg), 0o644))
	return path
}

// userDB is where ppp finds users: the users file, or RADIUS.
func (x *lab) userDB() string {
	if x.radius != "" {
		return "radius: " + x.radius
	}
	return "users_file: " + x.dir + "/users.yaml"
}

func indent(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// direct adds a client namespace on the server's outer link.
func (x *lab) direct(name string) *netns.NS {
	c := x.l.MustNS(x.t, name)
	x.cliOuter, x.srvOuter = x.l.MustLink(x.t, c, "192.0.2.10/24", x.srv, "192.0.2.1/24")
	return c
}

// behindNAT adds a NAT router and n clients behind it.
func (x *lab) behindNAT(n int) []*netns.NS {
	nat := x.l.MustNS(x.t, "nat")
	out, srvIf := x.l.MustLink(x.t, nat, "192.0.2.2/24", x.srv, "192.0.2.1/24")
	x.srvOuter = srvIf
	must(x.t, nat.Masquerade(out))
	var cs []*netns.NS
	for i := 1; i <= n; i++ {
		c := x.l.MustNS(x.t, fmt.Sprintf("c%d", i))
		x.l.MustLink(x.t, c, fmt.Sprintf("10.0.%d.2/24", i), nat, fmt.Sprintf("10.0.%d.1/24", i))
		must(x.t, c.Route("default", fmt.Sprintf("10.0.%d.1", i)))
		cs = append(cs, c)
	}
	return cs
}

// client is a running `gatehouse connect l2tp`.
type client struct {
	ns   *netns.NS
	proc *netns.Proc
	addr string
}

var connected = regexp.MustCompile(`connected: address (10\.\d+\.\d+\.\d+)`)

// dial starts a client and returns once it says connected, or the test
// fails with its output.
func (x *lab) dial(ns *netns.NS, user, password string, extra ...string) *client {
	x.t.Helper()
	c, out, err := x.try(ns, user, password, extra...)
	if err != nil {
		x.t.Fatalf("%s as %s: %v\n%s", ns.Name, user, err, out)
	}
	return c
}

// try starts a client and waits until it is connected or has exited.
func (x *lab) try(ns *netns.NS, user, password string, extra ...string) (*client, string, error) {
	pw := filepath.Join(x.dir, ns.Name+"-"+user+".password")
	must(x.t, os.WriteFile(pw, []byte(password+"\n"), 0o600))
	args := []string{"connect", "l2tp", "--server", "192.0.2.1", "--user", user, "--password-file", pw, "--route", "10.1.0.0/24",
		"--setup-timeout", "20s", "-v"}
	if !slices.Contains(extra, "--cert") && !slices.Contains(extra, "--no-ipsec") {
		args = append(args, "--psk-file", filepath.Join(x.dir, "l2tp.psk"))
	}
	return x.run(ns, append(args, extra...))
}

// run starts `gatehouse args...` in ns and waits until it says it is
// connected or has exited.
func (x *lab) run(ns *netns.NS, args []string) (*client, string, error) {
	p, err := ns.Start(filepath.Join(bin, "gatehouse"), args...)
	must(x.t, err)
	c := &client{ns: ns, proc: p}
	x.t.Cleanup(func() {
		p.Stop(5 * time.Second)
		if x.t.Failed() {
			x.t.Logf("client in %s:\n%s", ns.Name, p.Output())
		}
	})
	var exited bool
	ok, _ := await.Poll(30*time.Second, func() (bool, string) {
		if m := connected.FindStringSubmatch(p.Output()); m != nil {
			c.addr = m[1]
			return true, ""
		}
		select {
		case <-p.Done():
			exited = true
			return true, ""
		default:
			return false, ""
		}
	})
	switch {
	case exited && c.addr == "":
		return nil, p.Output(), fmt.Errorf("exited: %w", p.Err())
	case !ok:
		return nil, p.Output(), errors.New("not connected after 30 s")
	}
	return c, p.Output(), nil
}

// hangUp stops the client with SIGINT, as Ctrl-C would, and returns
// what it printed.
func (c *client) hangUp(t *testing.T) string {
	t.Helper()
	c.proc.Signal(2)
	select {
	case <-c.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("client in %s did not hang up:\n%s", c.ns.Name, c.proc.Output())
	}
	if err := c.proc.Err(); err != nil {
		t.Fatalf("client in %s exited with %v:\n%s", c.ns.Name, err, c.proc.Output())
	}
	return c.proc.Output()
}

// ping checks that three pings in a row pass through the tunnel
// (netns.PingThrough: the gateways' counters move, nothing in clear).
func ping(t *testing.T, from *netns.NS, to string) {
	t.Helper()
	netns.PingThrough(t, from, to)
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// waitLog waits until a line of the server's output holds every part
// (audit fields come in no fixed order).
func (x *lab) waitLog(parts ...string) bool { return x.gw.Proc.WaitLine(10*time.Second, parts...) }

// TestMSCHAPv2 is the main job: a client connects with PSK and MS-CHAPv2,
// gets an address from the pool and DNS, pings a host on the server's
// inside network and runs iperf3 across; `gatehouse sa` shows the
// transport SA; hanging up frees the address.
func TestMSCHAPv2(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("mschapv2")
	c := x.dial(cli, "alice", "correct horse")
	out := c.proc.Output()
	if !strings.Contains(out, "DNS servers offered: [10.1.0.53]") || !strings.Contains(out, "PPP mschapv2") {
		t.Fatalf("client output:\n%s", out)
	}
	ping(t, cli, "10.1.0.10")
	ping(t, cli, "10.8.0.1") // the server itself, at the pool's gateway
	mbps, err := netns.Iperf(x.in, cli, "10.1.0.10", 3*time.Second)
	must(t, err)
	t.Logf("iperf3 client -> inside host through L2TP/IPsec: %.0f Mbit/s", mbps)
	sa := x.gw.CLI(t, "sa")
	if !strings.Contains(sa, "remote-access") || !strings.Contains(sa, "transport") {
		t.Fatalf("gatehouse sa:\n%s", sa)
	}
	sessions := netns.Flat(x.gw.CLI(t, "sessions"))
	if !strings.Contains(sessions, "alice l2tp "+c.addr+" 192.0.2.10") || !strings.Contains(sessions, "1 of 253 addresses in use") {
		t.Fatalf("gatehouse sessions:\n%s", sessions)
	}
	x.checkMetrics()
	if bye := c.hangUp(t); !strings.Contains(bye, "disconnected:") {
		t.Fatalf("client output at the end:\n%s", bye)
	}
	if !x.waitLog("user-disconnected") {
		t.Fatalf("the server did not log the user's end:\n%s", x.gw.Proc.Output())
	}
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "0 sessions") || !strings.Contains(s, "0 of 253") {
		t.Fatalf("after alice hung up, gatehouse sessions:\n%s", s)
	}
	// An operator ends bob's session: his client hears of it and exits.
	bob := x.dial(cli, "bob", "battery staple")
	if out := x.gw.CLI(t, "disconnect", "bob"); !strings.Contains(out, "disconnected bob ("+bob.addr) {
		t.Fatalf("gatehouse disconnect bob: %s", out)
	}
	select {
	case <-bob.proc.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("bob's client did not notice the disconnect:\n%s", bob.proc.Output())
	}
	if out := bob.proc.Output(); !strings.Contains(out, "the connection dropped") {
		t.Fatalf("bob's client:\n%s", out)
	}
}

// TestPAPAndCHAP: the other two PPP methods, each chosen by the server.
func TestPAPAndCHAP(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("chap, pap")
	c := x.dial(cli, "carol", "c4rol!", "--ppp-auth", "chap")
	if !strings.Contains(c.proc.Output(), "PPP chap") {
		t.Fatalf("client output:\n%s", c.proc.Output())
	}
	ping(t, cli, "10.1.0.10")
	c.hangUp(t)
	c = x.dial(cli, "dave", "d4ve!", "--ppp-auth", "pap")
	if !strings.Contains(c.proc.Output(), "PPP pap") {
		t.Fatalf("client output:\n%s", c.proc.Output())
	}
	ping(t, cli, "10.1.0.10")
	c.hangUp(t)
}

// TestRefusals: a wrong password fails in PPP with a clear message on both
// sides and takes no address; a wrong preshared key fails in IKE.
func TestRefusals(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("mschapv2")
	_, out, err := x.try(cli, "alice", "wrong password")
	if exitCode(err) != 5 || !strings.Contains(out, "refused the user") {
		t.Fatalf("wrong password: exit %v, want 5 and a refusal:\n%s", err, out)
	}
	if !x.waitLog("user-auth-failed") {
		t.Fatalf("the server did not log the failure:\n%s", x.gw.Proc.Output())
	}
	c := x.dial(cli, "bob", "battery staple")
	if c.addr != "10.8.0.2" {
		t.Errorf("after a refused login the first client got %s, want the pool's first address 10.8.0.2", c.addr)
	}
	c.hangUp(t)

	must(t, os.WriteFile(filepath.Join(x.dir, "wrong.psk"), []byte("not-the-key-0123456789\n"), 0o600))
	pw := filepath.Join(x.dir, "pw")
	must(t, os.WriteFile(pw, []byte("correct horse\n"), 0o600))
	out, err = cli.Output(40*time.Second, filepath.Join(bin, "gatehouse"), "connect", "l2tp", "--server", "192.0.2.1",
		"--psk-file", filepath.Join(x.dir, "wrong.psk"), "--user", "alice", "--password-file", pw, "--setup-timeout", "6s")
	if exitCode(err) != 4 || !strings.Contains(out, "IKE failed") || !strings.Contains(out, "preshared key") {
		t.Fatalf("wrong PSK: exit %v, want 4 and an IKE failure naming the key:\n%s", err, out)
	}
	if !x.waitLog("preshared keys differ") {
		t.Fatalf("the server did not say why it refused the client:\n%s", x.gw.Proc.Output())
	}
}

// TestFourClientsBehindOneNAT: four clients behind one masquerading router,
// all from port 1701 of one public address, all at once: distinct
// addresses, traffic from all at the same time, and one hanging up leaves
// the others up.
func TestFourClientsBehindOneNAT(t *testing.T) {
	x := newLab(t)
	nss := x.behindNAT(4)
	x.serve("mschapv2")
	names := []string{"alice", "bob", "carol", "dave"}
	pws := []string{"correct horse", "battery staple", "c4rol!", "d4ve!"}
	cs := make([]*client, len(nss))
	for i, ns := range nss {
		cs[i] = x.dial(ns, names[i], pws[i])
	}
	seen := map[string]bool{}
	for _, c := range cs {
		if seen[c.addr] {
			t.Fatalf("address %s given twice", c.addr)
		}
		seen[c.addr] = true
	}
	pingAll := func(cs []*client) {
		var wg sync.WaitGroup
		errs := make(chan error, len(cs))
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if out, err := c.ns.Output(15*time.Second, "ping", "-c", "5", "-i", "0.2", "-W", "2", "10.1.0.10"); err != nil {
					errs <- fmt.Errorf("%s: %v\n%s", c.ns.Name, err, out)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	pingAll(cs)
	if t.Failed() {
		t.FailNow()
	}
	cs[1].hangUp(t)
	pingAll([]*client{cs[0], cs[2], cs[3]})
}

// TestManyCallsOneHost: one client host concentrates 60 calls in 6 L2TP
// tunnels inside one IPsec SA (--calls, --tunnels, as bench/sessions does
// with 1,000). Every call gets its own address; the first passes traffic;
// hanging up returns every address to the pool.
func TestManyCallsOneHost(t *testing.T) {
	const calls, tunnels = 60, 6
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("mschapv2")
	c := x.dial(cli, "alice", "correct horse", "--calls", fmt.Sprint(calls), "--tunnels", fmt.Sprint(tunnels))
	if want := fmt.Sprintf("calls: %d up over %d tunnels", calls, tunnels); !strings.Contains(c.proc.Output(), want) {
		t.Fatalf("client output lacks %q:\n%s", want, c.proc.Output())
	}
	var r struct {
		Sessions []struct {
			User, Address, Outer string
		} `json:"sessions"`
	}
	must(t, json.Unmarshal([]byte(x.gw.CLI(t, "sessions", "--json")), &r))
	addrs := map[string]bool{}
	for _, s := range r.Sessions {
		if s.User != "alice" || !strings.HasPrefix(s.Outer, "192.0.2.10") || addrs[s.Address] {
			t.Fatalf("session %+v (user, outer address, or an address given twice)", s)
		}
		addrs[s.Address] = true
	}
	if len(addrs) != calls || !addrs[c.addr] {
		t.Fatalf("%d sessions on the server (want %d, with the first call's %s)", len(addrs), calls, c.addr)
	}
	ping(t, cli, "10.1.0.10")
	c.hangUp(t)
	await.State(t, 10*time.Second, "no sessions and no address in use after the hang-up", func() (bool, string) {
		s := netns.Flat(x.gw.CLI(t, "sessions"))
		return strings.Contains(s, "0 sessions") && strings.Contains(s, "0 of 253"), s
	})
}

// TestIdleTimeout: a session that sends nothing for idle_timeout is hung
// up by the server with the reason; the client hears it and the address
// goes back to the pool. A client that keeps pinging stays.
func TestIdleTimeout(t *testing.T) {
	x := newLab(t)
	nss := x.behindNAT(2)
	x.serve("mschapv2", "idle_timeout: 10s")
	quiet := x.dial(nss[0], "alice", "correct horse")
	busy := x.dial(nss[1], "bob", "battery staple")
	pinger, err := nss[1].Start("ping", "-c", "75", "-i", "0.2", "-W", "1", "10.1.0.10")
	must(t, err)
	select {
	case <-quiet.proc.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("alice's idle session was not ended after 15 s:\n%s", quiet.proc.Output())
	}
	if out := quiet.proc.Output(); !strings.Contains(out, "the connection dropped") || !strings.Contains(out, "idle") {
		t.Fatalf("alice's client should say the server hung up for idleness:\n%s", out)
	}
	if !x.waitLog(`"event_id": 5411`, `"user": "alice"`, `"address": "`+quiet.addr+`"`, `"reason": "idle for 1`, `s (idle_timeout 10s)"`) {
		t.Fatalf("the server did not log why:\n%s", x.gw.Proc.Output())
	}
	if err := pinger.Err(); err != nil {
		t.Fatalf("bob's pings during alice's timeout: %v\n%s", err, pinger.Output())
	}
	s := netns.Flat(x.gw.CLI(t, "sessions"))
	if !strings.Contains(s, "1 sessions") || !strings.Contains(s, "bob l2tp "+busy.addr) || !strings.Contains(s, "1 of 253") {
		t.Fatalf("gatehouse sessions after alice's timeout:\n%s", s)
	}
}

// l2tpPlugin returns the l2tp plugin's pid and restarts.
func (x *lab) l2tpPlugin() (pid, restarts int, state string) {
	x.t.Helper()
	for _, p := range x.plugins() {
		if p.Name == "l2tp" {
			return atoi(p.Pid), p.Restarts, p.State
		}
	}
	x.t.Fatal("no l2tp plugin listed")
	return
}

// pluginStatus is one line of gatehouse plugins --json.
type pluginStatus struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Pid      string `json:"pid"`
	Restarts int    `json:"restarts"`
}

// plugins lists the gateway's plugins.
func (x *lab) plugins() []pluginStatus {
	x.t.Helper()
	var r struct {
		Plugins []pluginStatus `json:"plugins"`
	}
	must(x.t, json.Unmarshal([]byte(x.gw.CLI(x.t, "plugins", "--json")), &r))
	return r.Plugins
}

// TestPluginKilled: killing the l2tp plugin under a session loses none of
// its packets; the plugin comes back and takes new users.
func TestPluginKilled(t *testing.T) {
	x := newLab(t)
	nss := x.behindNAT(2)
	cli := nss[0]
	x.serve("mschapv2")
	x.dial(cli, "alice", "correct horse")
	pid, _, _ := x.l2tpPlugin()
	pinger, err := cli.Start("ping", "-c", "40", "-i", "0.05", "-W", "1", "10.1.0.10")
	must(t, err)
	await.True(t, 10*time.Second, "pings under way", func() bool { return strings.Contains(pinger.Output(), "icmp_seq=10 ") })
	must(t, syscall.Kill(pid, syscall.SIGKILL))
	if err := pinger.Err(); err != nil || !strings.Contains(pinger.Output(), " 0% packet loss") {
		t.Fatalf("ping across the plugin's death: %v\n%s", err, pinger.Output())
	}
	await.State(t, 10*time.Second, "the l2tp plugin back", func() (bool, string) {
		newPID, restarts, state := x.l2tpPlugin()
		return state == "running" && restarts >= 1 && newPID != pid, fmt.Sprintf("%s, %d restarts", state, restarts)
	})
	x.dial(nss[1], "bob", "battery staple")
	ping(t, nss[1], "10.1.0.10")
	ping(t, cli, "10.1.0.10")
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "2 sessions") {
		t.Fatalf("gatehouse sessions after the restart:\n%s", s)
	}
}

// TestTsharkDecodesSession captures a whole session on the server's outer
// link (IKE, L2TP setup, PPP negotiation, traffic, hang-up) and has tshark
// decrypt it with the keys the client logged: L2TP and PPP must decode,
// with nothing malformed.
func TestTsharkDecodesSession(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	// AES-GCM, which the built-in clients do not offer, so that it is
	// seen on the wire too (the other labs use CBC).
	x.serve("mschapv2", "esp: {proposals: [aes256gcm16, aes256-sha1]}")
	capture := x.srv.StartCapture(t, x.srvOuter, "not arp", filepath.Join(x.dir, "outer.pcap"))
	keylog := filepath.Join(x.dir, "keys")
	c := x.dial(cli, "alice", "correct horse", "--keylog", keylog, "--esp", "aes256gcm16")
	ping(t, cli, "10.1.0.10")
	c.hangUp(t)
	args, err := pcap.KeyLogPrefs(keylog)
	must(t, err)
	// The StopCCN is the last L2TP message of the hang-up.
	text := capture.Until(t, 10*time.Second, "the StopCCN", func(text string) bool { return strings.Contains(text, "Stop_Control_Notification") }, args...)
	if keys, _ := os.ReadFile(keylog); !strings.Contains(string(keys), " aes256gcm16 ") {
		t.Errorf("the session's SA is not aes256gcm16:\n%s", keys)
	}
	if in, err := pcap.CountICMP(capture.File, args); err != nil || in.Clear != 0 || in.InESP < 8 {
		t.Errorf("on the wire: %+v (%v); want no ICMP in clear and at least 8 pings inside ESP", in, err)
	}
	for _, want := range []string{"Layer 2 Tunneling Protocol", "Start_Control_Request", "Incoming_Call_Connected",
		"PPP Link Control Protocol", "PPP Challenge Handshake Authentication Protocol", "PPP IP Control Protocol",
		"Type: 8 (Echo (ping) request)", "Type: 0 (Echo (ping) reply)", "Call_Disconnect_Notification", "Stop_Control_Notification"} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark did not decode %q", want)
		}
	}
	if bad := pcap.Malformed(text); len(bad) > 0 {
		t.Errorf("tshark flags %d lines, e.g. %q", len(bad), bad[0])
	}
	if t.Failed() {
		t.Logf("tshark:\n%s", netns.Tail(text, 6000))
	}
}

// TestCleartextL2TPRefused: without allow_cleartext_l2tp, an SCCRQ sent
// in clear, outside IPsec, to the server's port 1701 gets no answer,
// reaches no plugin, makes no tunnel and is counted by the cleartext
// drop rule; `gatehouse connect l2tp --no-ipsec` says what the server
// must allow. L2TP is only taken from a transport SA.
func TestCleartextL2TPRefused(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("mschapv2")
	out, err := cli.Output(20*time.Second, filepath.Join(bin, "clearl2tp"), "--to", "192.0.2.1:1701", "--wait", "3s")
	if err != nil || !strings.Contains(out, "no answer") {
		t.Fatalf("an SCCRQ in clear: %v\n%s", err, out)
	}
	_, out, err = x.try(cli, "bob", "battery staple", "--no-ipsec", "--setup-timeout", "5s")
	if err == nil || !strings.Contains(out, "allow_cleartext_l2tp") {
		t.Fatalf("connect --no-ipsec to a server without cleartext L2TP: %v\n%s", err, out)
	}
	if log := x.gw.Proc.Output(); strings.Contains(log, "L2TP tunnel up") || strings.Contains(log, "SCCRQ") {
		t.Fatalf("the cleartext SCCRQ reached the L2TP plugin:\n%s", log)
	}
	rules, err := x.srv.Output(10*time.Second, "nft", "list", "table", "inet", "gatehouse")
	must(t, err)
	if m := regexp.MustCompile(`counter packets (\d+) bytes \d+ drop comment "cleartext for rule remote-access"`).FindStringSubmatch(rules); m == nil || atoi(m[1]) < 2 {
		t.Fatalf("the cleartext drops are not counted:\n%s", rules)
	}
	// And a client through IPsec still gets in.
	x.dial(cli, "alice", "correct horse").hangUp(t)
}

// TestCleartextL2TPAllowed: with allow_cleartext_l2tp, --check and the
// server's start say so loudly; `gatehouse connect l2tp --no-ipsec` gets
// an address without IKE, pings the inside, shows in `gatehouse sessions`
// as without IPsec and in the audit log; tshark reads L2TP, PPP and the
// pings in clear on the wire, with no ESP and nothing malformed; and an
// IPsec client still connects beside it.
func TestCleartextL2TPAllowed(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	path := x.writeConfig("mschapv2", "allow_cleartext_l2tp: true")
	out, err := x.srv.Output(20*time.Second, filepath.Join(bin, "gatehoused"), "--check", "--config", path)
	if err != nil || !strings.Contains(out, "warning:") || !strings.Contains(out, "cleartext L2TP is on") {
		t.Fatalf("--check: %v\n%s", err, out)
	}
	x.serve("mschapv2", "allow_cleartext_l2tp: true")
	if !x.waitLog("WARN", "cleartext L2TP is on", "192.0.2.1:1701") {
		t.Fatalf("no loud warning at start:\n%s", x.gw.Proc.Output())
	}
	capture := x.srv.StartCapture(t, x.srvOuter, "not arp", filepath.Join(x.dir, "outer.pcap"))
	// The SCCRQ is the client's first packet: the capture must be writing
	// before it leaves.
	capture.Live(t, func() { cli.Output(5*time.Second, "ping", "-c", "1", "-W", "1", "192.0.2.1") })
	c := x.dial(cli, "bob", "battery staple", "--no-ipsec")
	if !strings.Contains(c.proc.Output(), "L2TP without IPsec") {
		t.Errorf("the client does not say it runs without IPsec:\n%s", c.proc.Output())
	}
	if out, err := cli.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.1.0.10"); err != nil || !strings.Contains(out, " 3 received") {
		t.Fatalf("ping through cleartext L2TP: %v\n%s", err, out)
	}
	sessions := x.gw.CLI(t, "sessions")
	if !strings.Contains(sessions, "bob") || !strings.Contains(sessions, "192.0.2.10:1701 (no IPsec)") || !strings.Contains(sessions, "without IPsec") {
		t.Errorf("gatehouse sessions:\n%s", sessions)
	}
	if sa := x.gw.CLI(t, "sa"); !strings.Contains(sa, "Cleartext L2TP:") {
		t.Errorf("gatehouse sa does not count the cleartext datagrams:\n%s", sa)
	}
	c.hangUp(t)
	text := capture.Until(t, 10*time.Second, "the StopCCN", func(text string) bool { return strings.Contains(text, "Stop_Control_Notification") })
	for _, want := range []string{"Layer 2 Tunneling Protocol", "Start_Control_Request", "Incoming_Call_Connected",
		"PPP Link Control Protocol", "PPP Challenge Handshake Authentication Protocol", "PPP IP Control Protocol",
		"Type: 8 (Echo (ping) request)", "Type: 0 (Echo (ping) reply)", "Stop_Control_Notification"} {
		if !strings.Contains(text, want) {
			t.Errorf("tshark did not decode %q", want)
		}
	}
	if strings.Contains(text, "Encapsulating Security Payload") || strings.Contains(text, "Internet Security Association") {
		t.Error("IKE or ESP on the wire of a cleartext connection")
	}
	if in, err := pcap.CountICMP(capture.File, nil); err != nil || in.Clear < 6 || in.InESP != 0 {
		t.Errorf("on the wire: %+v (%v); want the pings in clear and none in ESP", in, err)
	}
	if bad := pcap.Malformed(text); len(bad) > 0 {
		t.Errorf("tshark flags %d lines, e.g. %q", len(bad), bad[0])
	}
	if !x.waitLog("user-disconnected", "bob") {
		t.Error("no audit event for the end of bob's session")
	}
	// IPsec clients are not affected.
	x.dial(cli, "alice", "correct horse").hangUp(t)
	if t.Failed() {
		t.Logf("tshark:\n%s", netns.Tail(text, 6000))
	}
}

// checkMetrics scrapes the server's metrics endpoint with curl while one
// client is connected and has passed traffic, and reads the audit log.
func (x *lab) checkMetrics() {
	x.t.Helper()
	out := x.metrics()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^gatehouse_ike_sas\{state="established",version="1"\} 1$`),
		regexp.MustCompile(`(?m)^gatehouse_sessions\{protocol="l2tp"\} 1$`),
		regexp.MustCompile(`(?m)^gatehouse_pool_used_addresses 1$`),
		regexp.MustCompile(`(?m)^gatehouse_ipsec_sas [1-9]`),
		regexp.MustCompile(`(?m)^gatehouse_ipsec_bytes_total\{direction="in",mode="transport"\} [1-9]`),
		regexp.MustCompile(`(?m)^gatehouse_ipsec_bytes_total\{direction="out",mode="transport"\} [1-9]`),
		regexp.MustCompile(`(?m)^gatehouse_ike_sas_established_total 1$`),
		regexp.MustCompile(`(?m)^gatehouse_user_logins_total\{protocol="l2tp",result="connected"\} 1$`),
		regexp.MustCompile(`(?m)^gatehouse_plugin_up\{plugin="l2tp"\} 1$`),
	} {
		if !want.MatchString(out) {
			x.t.Errorf("metrics lack %s", want)
		}
	}
	if x.t.Failed() {
		x.t.Fatalf("metrics:\n%s", out)
	}
	audit, err := os.ReadFile(filepath.Join(x.dir, "audit.jsonl"))
	must(x.t, err)
	for _, want := range []string{`"id":541,"event":"ike-sa-up"`, `"id":5401,"event":"ipsec-sa-up"`, `"id":5410,"event":"user-connected"`} {
		if !strings.Contains(string(audit), want) {
			x.t.Fatalf("audit log lacks %s:\n%s", want, audit)
		}
	}
}

// metrics is what gatehoused's metrics endpoint says now.
func (x *lab) metrics() string {
	x.t.Helper()
	out, err := x.srv.Output(10*time.Second, "curl", "-sf", "http://127.0.0.1:9273/metrics")
	if err != nil {
		x.t.Fatalf("curl metrics: %v\n%s", err, out)
	}
	return out
}
