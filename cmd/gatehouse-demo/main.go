// Command gatehouse-demo is what `make demo` runs: it builds a small network
// of namespaces, starts gatehoused as a gateway and a site-to-site peer on
// embedded configurations, brings up a site-to-site tunnel, two L2TP/IPsec
// clients and an IKEv2 road warrior, sends traffic through them, shows
// what the server reports, exercises plugin supervision and reload, and
// tears it all down. It needs root.
package main

import (
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

//go:embed demo.yaml
var demoConfig string

//go:embed peer.yaml
var peerConfig string

func main() {
	self, _ := os.Executable()
	bin := flag.String("bin", filepath.Dir(self), "folder holding gatehoused, gatehouse and plugins/")
	verbose := flag.Bool("v", false, "print every lab command")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `Usage: gatehouse-demo [--bin DIR] [-v]

Builds network namespaces for a gateway, a site-to-site peer, three
remote-access clients and a host behind each gateway; runs gatehoused on
both gateways; brings up the IKEv2 tunnel between the sites on traffic;
connects two clients over L2TP/IPsec (one offering what Windows offers, one
what macOS offers) and a phone over IKEv2 (strongSwan as the road warrior,
logging in by EAP-MSCHAPv2); sends ping and iperf3 through the tunnels;
prints gatehouse status, sa and sessions and the metrics; kills a plugin to
show supervision; reloads; and cleans up. Run as root (make demo does).
Exit status 0 when every step worked.

`)
		flag.PrintDefaults()
	}
	flag.Parse()
	abs, err := filepath.Abs(*bin)
	if err == nil {
		err = run(abs, *verbose)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo FAILED: %v\n", err)
		os.Exit(1)
	}
}

type step struct {
	name string
	ok   bool
	note string
}

// demo is the running demo: the lab and its namespaces, the gateway's
// CLI, the processes to stop at the end, the steps done.
type demo struct {
	bin, dir           string
	socket, peerSocket string
	lab                *netns.Lab
	gw, peer, wan      *netns.NS
	laptop, macbook    *netns.NS
	phone              *netns.NS
	neta, netb         *netns.NS
	// swan is strongSwan on the phone, the IKEv2 road warrior.
	swan  *netns.StrongSwan
	steps []step
	// stops end the daemons and clients, last started first.
	stops   []func()
	clients []*client
	// s2s and ra are the measured throughputs, for the closing lines.
	s2s, ra string
}

func (d *demo) record(name string, err error, note string) error {
	d.steps = append(d.steps, step{name, err == nil, note})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (d *demo) cli(args ...string) (string, error) {
	return d.gw.Output(30*time.Second, filepath.Join(d.bin, "gatehouse"), append([]string{"--socket", d.socket}, args...)...)
}

// onExit stops a process when the demo ends, however it ends.
func (d *demo) onExit(p *netns.Proc) {
	d.stops = append(d.stops, func() { p.Stop(5 * time.Second) })
}

func (d *demo) stopAll() {
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
}

func run(bin string, verbose bool) error {
	var logf func(string, ...any)
	if verbose {
		logf = func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
	}
	lab, err := netns.New(logf)
	if errors.Is(err, netns.ErrNotRoot) {
		return fmt.Errorf("%w; run `sudo make demo`", err)
	}
	if err != nil {
		return err
	}
	defer lab.Close()
	dir, err := os.MkdirTemp("", "gatehouse-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{bin: bin, dir: dir, socket: filepath.Join(dir, "admin.sock"), lab: lab}
	defer func() { summary(d.steps) }()
	defer d.stopAll()
	for _, s := range []struct {
		title string
		do    func() error
	}{
		{"1. Network: gateway, site-to-site peer and two road-warrior clients in namespaces", d.network},
		{"2. Start gatehoused on the gateway and on the peer", d.startDaemons},
		{"3. Host firewall: gatehouse firewall --tunnel-only, checked and loaded on the gateway", d.firewall},
		{"4. Site-to-site: traffic from NetA to NetB brings up the IKEv2 tunnel", d.siteToSite},
		{"5. Remote access: two clients connect over L2TP/IPsec", d.remoteAccess},
		{"6. Remote access over IKEv2: a phone (strongSwan) logs in by EAP-MSCHAPv2", d.roadWarrior},
		{"7. What the gateway reports: gatehouse status, sa, sessions", d.reports},
		{"8. Metrics: curl http://127.0.0.1:9273/metrics (a few series)", d.metrics},
		{"9. Plugin supervision: kill auth-psk, watch gatehoused restart it", d.supervision},
		{"10. Reload: unchanged configuration, then a bad one that is refused", d.reload},
		{"11. The clients hang up", d.hangUp},
	} {
		banner(s.title)
		if err := s.do(); err != nil {
			return err
		}
	}
	audit, _ := os.ReadFile(filepath.Join(dir, "audit.jsonl"))
	fmt.Printf("\n  Audit log: %d events (%d IKE SAs up, %d users connected)\n", strings.Count(string(audit), "\n"),
		strings.Count(string(audit), `"id":541,`), strings.Count(string(audit), `"id":5410,`))
	fmt.Printf("  Throughput: site-to-site %s, remote access %s\n", d.s2s, d.ra)
	return nil
}

// network links the namespaces: the clients and the gateways on wan, a
// host behind each gateway; every client must reach the gateway.
func (d *demo) network() error {
	for _, n := range []struct {
		ns   **netns.NS
		name string
	}{{&d.wan, "wan"}, {&d.gw, "gw"}, {&d.peer, "peer"}, {&d.laptop, "laptop"}, {&d.macbook, "macbook"}, {&d.phone, "phone"}, {&d.neta, "neta"}, {&d.netb, "netb"}} {
		var err error
		if *n.ns, err = d.lab.NS(n.name); err != nil {
			return err
		}
	}
	wan, peer := d.wan, d.peer
	// The clients sit on parts of 192.0.2.0/24.
	links := []struct {
		ns         *netns.NS
		addr, wanA string
	}{{d.gw, "203.0.113.1/24", "203.0.113.254/24"}, {peer, "198.51.100.2/24", "198.51.100.254/24"},
		{d.laptop, "192.0.2.10/26", "192.0.2.62/26"}, {d.phone, "192.0.2.70/26", "192.0.2.126/26"}, {d.macbook, "192.0.2.130/25", "192.0.2.254/25"}}
	for _, l := range links {
		if _, _, err := d.lab.Link(l.ns, l.addr, wan, l.wanA); err != nil {
			return err
		}
		if err := l.ns.Route("default", strings.Split(l.wanA, "/")[0]); err != nil {
			return err
		}
	}
	if err := wan.Forwarding(); err != nil {
		return err
	}
	for _, h := range []struct {
		host, gwNS   *netns.NS
		hostIP, gwIP string
	}{{d.neta, d.gw, "10.1.0.10/24", "10.1.0.1/24"}, {d.netb, peer, "10.2.0.10/24", "10.2.0.1/24"}} {
		if _, _, err := d.lab.Link(h.host, h.hostIP, h.gwNS, h.gwIP); err != nil {
			return err
		}
		if err := h.host.Route("default", strings.Split(h.gwIP, "/")[0]); err != nil {
			return err
		}
		if err := h.gwNS.Forwarding(); err != nil {
			return err
		}
	}
	for _, l := range links[1:] {
		out, err := l.ns.Output(10*time.Second, "ping", "-c", "1", "-W", "2", "203.0.113.1")
		if err := d.record("ping gateway from "+l.ns.Name, err, firstLine(out, "bytes from")); err != nil {
			return err
		}
	}
	fmt.Println("  gateway 203.0.113.1, peer 198.51.100.2, clients 192.0.2.10 (laptop), 192.0.2.70 (phone) and 192.0.2.130 (macbook),")
	fmt.Println("  routed by namespace wan; host 10.1.0.10 behind the gateway, host 10.2.0.10 behind the peer")
	return nil
}

// startDaemons writes both configurations and their secrets, checks the
// gateway's, and starts gatehoused on the gateway and the peer.
func (d *demo) startDaemons() error {
	dir := d.dir
	plugins := filepath.Join(d.bin, "plugins")
	cfgPath := filepath.Join(dir, "gatehouse.yaml")
	// The server's certificate, for IKEv2 clients: a CA of the demo's own.
	for _, args := range [][]string{{"ca", "--name", "Gatehouse demo CA", "--out", dir},
		{"issue", "--ca", filepath.Join(dir, "ca.pem"), "--ca-key", filepath.Join(dir, "ca.key"), "--name", "vpn.demo.example",
			"--dns", "vpn.demo.example", "--ip", "203.0.113.1", "--dns", "203.0.113.1", "--out", filepath.Join(dir, "vpn")}} {
		if out, err := exec.Command(filepath.Join(d.bin, "gatehouse"), append([]string{"pki"}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("gatehouse pki %s: %v\n%s", args[0], err, out)
		}
	}
	cfg := strings.NewReplacer("ADMIN_SOCKET", d.socket, "PLUGIN_DIR", plugins, "AUDIT_FILE", filepath.Join(dir, "audit.jsonl"), "DEMO_DIR", dir).Replace(demoConfig)
	peerDir := filepath.Join(dir, "peer")
	peerSocket := filepath.Join(peerDir, "admin.sock")
	files := map[string]string{"gatehouse.yaml": cfg, "netb.psk": "demo-site-to-site-" + randomHex(8), "l2tp.psk": "demo-road-warrior-" + randomHex(8),
		"users.yaml":     "users:\n  alice: {password: \"alice-demo-password\"}\n  bob: {password: \"bob-demo-password\"}\n  carol: {password: \"carol-demo-password\"}\n",
		"alice.password": "alice-demo-password", "bob.password": "bob-demo-password"}
	if err := os.MkdirAll(peerDir, 0o700); err != nil {
		return err
	}
	for name, body := range files {
		mode := os.FileMode(0o600)
		if name == "gatehouse.yaml" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body+"\n"), mode); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(peerDir, "netb.psk"), []byte(files["netb.psk"]+"\n"), 0o600); err != nil {
		return err
	}
	peerCfg := strings.NewReplacer("ADMIN_SOCKET", peerSocket, "PLUGIN_DIR", plugins).Replace(peerConfig)
	if err := os.WriteFile(filepath.Join(peerDir, "gatehouse.yaml"), []byte(peerCfg), 0o644); err != nil {
		return err
	}
	out, err := d.gw.Output(30*time.Second, filepath.Join(d.bin, "gatehoused"), "--check", "-c", cfgPath)
	fmt.Print(indent(out))
	if err := d.record("gatehoused --check", err, ""); err != nil {
		return err
	}
	for _, g := range []struct {
		ns          *netns.NS
		cfg, socket string
	}{{d.gw, cfgPath, d.socket}, {d.peer, filepath.Join(peerDir, "gatehouse.yaml"), peerSocket}} {
		p, err := g.ns.Start(filepath.Join(d.bin, "gatehoused"), "-c", g.cfg)
		if err != nil {
			return err
		}
		d.onExit(p)
		ready := false
		for i := 0; i < 100 && !ready; i++ {
			if _, err := os.Stat(g.socket); err == nil {
				ready = true
				break
			}
			select {
			case <-p.Done():
				return fmt.Errorf("gatehoused in %s exited: %v\n%s", g.ns.Name, p.Err(), p.Output())
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err := d.record("gatehoused running in namespace "+g.ns.Name, boolErr(ready, "admin socket never appeared"), g.socket); err != nil {
			return err
		}
	}
	return nil
}

// firewall loads what gatehouse firewall --tunnel-only prints.
func (d *demo) firewall() error {
	rules, err := d.cli("firewall", "--tunnel-only")
	if err == nil {
		path := filepath.Join(d.dir, "gatehouse.nft")
		if err = os.WriteFile(path, []byte(rules), 0o644); err == nil {
			if out, cerr := d.gw.Output(10*time.Second, "nft", "-c", "-f", path); cerr != nil {
				err = fmt.Errorf("%v: %s", cerr, out)
			} else if out, lerr := d.gw.Output(10*time.Second, "nft", "-f", path); lerr != nil {
				err = fmt.Errorf("%v: %s", lerr, out)
			}
		}
	}
	return d.record("firewall rules pass nft -c and load", err, fmt.Sprintf("%d rules", strings.Count(rules, " counter ")))
}

// siteToSite brings the tunnel up on traffic, measures it, and shows
// cleartext between the sites dropped.
func (d *demo) siteToSite() error {
	wan, peer := d.wan, d.peer
	out, err := d.neta.Output(30*time.Second, "ping", "-c", "5", "-i", "0.3", "-W", "3", "10.2.0.10")
	fmt.Print(indent(out))
	if err := d.record("ping 10.1.0.10 -> 10.2.0.10 (the first packet starts IKE)", err, firstLine(out, "packet loss")); err != nil {
		return err
	}
	if d.s2s, err = d.iperf(d.netb, d.neta, "10.2.0.10", "iperf3 NetA -> NetB through the tunnel"); err != nil {
		return err
	}
	// A packet in clear from NetB to NetA, around the peer's tunnel (the
	// data path's own mark skips its table) and routed by wan to the
	// gateway: the gateway must drop it.
	if out, err := wan.Output(5*time.Second, "ip", "route", "add", "10.1.0.0/24", "via", "203.0.113.1"); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	if out, err := peer.Output(5*time.Second, "ip", "route", "add", "10.1.0.0/24", "via", "198.51.100.254"); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	dropped := d.cleartextDrops()
	out, _ = peer.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-m", "18248", "-I", "10.2.0.1", "10.1.0.10")
	dropped = d.cleartextDrops() - dropped
	ok := strings.Contains(out, " 0 received") && dropped >= 3
	return d.record("a ping in clear between NetB and NetA is dropped", boolErr(ok, "it got through, or never reached the gateway"),
		fmt.Sprintf("%d packets dropped at the gateway", dropped))
}

// remoteAccess connects one client as Windows and one as macOS would.
func (d *demo) remoteAccess() error {
	for _, c := range []struct {
		ns            *netns.NS
		user, profile string
	}{{d.laptop, "alice", "windows"}, {d.macbook, "bob", "apple"}} {
		cl, err := d.connect(c.ns, c.user, c.profile)
		if err := d.record(fmt.Sprintf("%s connects from %s (--profile %s)", c.user, c.ns.Name, c.profile), err, cl.note()); err != nil {
			return err
		}
		d.onExit(cl.proc)
		d.clients = append(d.clients, cl)
		out, err := c.ns.Output(20*time.Second, "ping", "-c", "3", "-i", "0.3", "-W", "2", "10.1.0.10")
		if err := d.record(fmt.Sprintf("ping %s -> 10.1.0.10 through L2TP/IPsec", c.user), err, firstLine(out, "packet loss")); err != nil {
			return err
		}
	}
	var err error
	d.ra, err = d.iperf(d.neta, d.laptop, "10.1.0.10", "iperf3 alice -> NetA through L2TP/IPsec")
	return err
}

// roadWarrior connects the phone over IKEv2 as Android 12+ or any
// strongSwan road warrior does: EAP-MSCHAPv2, the server's certificate
// checked against the demo CA, a virtual address from the pool.
func (d *demo) roadWarrior() error {
	conf := fmt.Sprintf(`connections {
  rw {
    version = 2
    remote_addrs = 203.0.113.1
    vips = 0.0.0.0
    proposals = aes256-sha256-modp2048
    encap = yes
    local { auth = eap-mschapv2
            eap_id = carol }
    remote { auth = pubkey
             id = vpn.demo.example
             cacerts = %s }
    children { net { remote_ts = 10.1.0.0/24
                     esp_proposals = aes256gcm16 } }
  }
}
secrets { eap-carol { id = carol
                      secret = "carol-demo-password" } }
`, filepath.Join(d.dir, "ca.pem"))
	var err error
	d.swan, err = netns.StartStrongSwan(d.phone, filepath.Join(d.dir, "phone"), conf)
	if d.swan != nil {
		sw := d.swan
		d.stops = append(d.stops, func() { sw.Stop(false) })
	}
	if err == nil {
		var out string
		if out, err = d.swan.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
			err = fmt.Errorf("%v\n%s", err, out)
		}
	}
	addr := ""
	if m := virtualIP.FindStringSubmatch(swanLog(d.swan)); m != nil {
		addr = "address " + m[1]
	} else if err == nil {
		err = errors.New("strongSwan installed no virtual address")
	}
	if err := d.record("carol connects from phone over IKEv2 (EAP-MSCHAPv2)", err, addr); err != nil {
		return err
	}
	out, err := d.phone.Output(20*time.Second, "ping", "-c", "3", "-i", "0.3", "-W", "2", "10.1.0.10")
	return d.record("ping carol -> 10.1.0.10 through IKEv2", err, firstLine(out, "packet loss"))
}

var virtualIP = regexp.MustCompile(`installing new virtual IP (10\.8\.0\.\d+)`)

func swanLog(s *netns.StrongSwan) string {
	if s == nil {
		return ""
	}
	return s.Log()
}

// reports prints what the admin CLI says.
func (d *demo) reports() error {
	for _, args := range [][]string{{"status"}, {"sa"}, {"sessions"}} {
		out, err := d.cli(args...)
		fmt.Printf("  $ gatehouse %s\n", strings.Join(args, " "))
		fmt.Print(indent(out))
		if err := d.record("gatehouse "+strings.Join(args, " "), err, ""); err != nil {
			return err
		}
		if args[0] == "sa" {
			// The site-to-site peer is a gateway: no client family.
			var tunnel string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "neta-netb ") && strings.Contains(l, "established") {
					tunnel = l
				}
			}
			ok := tunnel != "" && !strings.Contains(tunnel, "by interop-") && strings.Contains(tunnel, " IKEv2 ")
			if err := d.record("the site-to-site tunnel runs IKEv2; its peer has no client family", boolErr(ok, "gatehouse sa: "+tunnel), ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// metrics scrapes the endpoint and checks the SAs and sessions show.
func (d *demo) metrics() error {
	out, err := d.gw.Output(10*time.Second, "curl", "-sf", "http://127.0.0.1:9273/metrics")
	var shown []string
	for _, l := range strings.Split(out, "\n") {
		if shownSeries.MatchString(l) {
			shown = append(shown, l)
		}
	}
	fmt.Print(indent(strings.Join(shown, "\n")))
	established := regexp.MustCompile(`(?m)^gatehouse_ike_sas\{state="established",version="2"\} ([1-9]\d*)$`).FindStringSubmatch(out)
	sessions := regexp.MustCompile(`(?m)^gatehouse_sessions\{protocol="l2tp"\} 2$`).MatchString(out) &&
		regexp.MustCompile(`(?m)^gatehouse_sessions\{protocol="ikev2"\} 1$`).MatchString(out)
	if err == nil && (established == nil || !sessions) {
		err = errors.New("no established IKE SAs or not 3 sessions (two L2TP, one IKEv2) in the metrics")
	}
	return d.record("metrics show SAs, sessions and bytes", err, fmt.Sprintf("%d series shown", len(shown)))
}

// supervision kills a plugin and waits for gatehoused to restart it,
// while the tunnel passes traffic.
func (d *demo) supervision() error {
	out, err := d.cli("plugins")
	fmt.Print(indent(out))
	if err != nil {
		return err
	}
	pid := pluginPID(out)
	if pid <= 0 {
		return d.record("find auth-psk", errors.New("no pid in gatehouse plugins output"), "")
	}
	fmt.Printf("  kill -9 %d\n", pid)
	killed := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	restarted := false
	for time.Since(killed) < 5*time.Second {
		out, _ = d.cli("plugins")
		if p := pluginPID(out); p > 0 && p != pid && strings.Contains(out, "killed by signal") {
			restarted = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(killed).Round(time.Millisecond)
	fmt.Print(indent(out))
	if err := d.record("auth-psk restarted after kill -9", boolErr(restarted, "not restarted within 5s"), fmt.Sprintf("back in %s", took)); err != nil {
		return err
	}
	out, err = d.neta.Output(10*time.Second, "ping", "-c", "2", "-i", "0.3", "-W", "2", "10.2.0.10")
	return d.record("the tunnel kept passing traffic", err, firstLine(out, "packet loss"))
}

// reload reloads the same configuration, then one with a key file
// others may read, which must be refused.
func (d *demo) reload() error {
	out, err := d.cli("reload")
	fmt.Print(indent(out))
	if err := d.record("gatehouse reload", err, strings.TrimSpace(out)); err != nil {
		return err
	}
	os.Chmod(filepath.Join(d.dir, "l2tp.psk"), 0o644)
	out, err = d.cli("reload")
	fmt.Print(indent(out))
	os.Chmod(filepath.Join(d.dir, "l2tp.psk"), 0o600)
	return d.record("bad reload refused, old config kept", boolErr(err != nil && strings.Contains(out, "readable by group or others"), "world-readable key was accepted"), "world-readable key file")
}

// hangUp ends the clients and checks no session is left.
func (d *demo) hangUp() error {
	for _, c := range d.clients {
		c.proc.Signal(syscall.SIGINT)
		select {
		case <-c.proc.Done():
		case <-time.After(10 * time.Second):
		}
		if err := d.record(c.user+" hung up", c.proc.Err(), firstLine(c.proc.Output(), "disconnected")); err != nil {
			return err
		}
	}
	if d.swan != nil {
		_, err := d.swan.Swanctl(20*time.Second, "--terminate", "--ike", "rw")
		if err := d.record("carol hung up (IKEv2)", err, ""); err != nil {
			return err
		}
	}
	var out string
	var err error
	// The gateway hears the IKEv2 delete a moment after swanctl returns.
	for range 50 {
		if out, err = d.cli("sessions"); err != nil || strings.Contains(out, "0 sessions") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Print(indent(out))
	return d.record("no sessions left", boolErr(err == nil && strings.Contains(out, "0 sessions"), "sessions remain"), firstLine(out, "addresses in use"))
}

// shownSeries are the metrics the demo prints.
var shownSeries = regexp.MustCompile(`^gatehouse_(ike_sas\{state="established"|sessions|ipsec_bytes_total|user_logins_total|plugin_up)`)

var dropCounter = regexp.MustCompile(`counter packets (\d+) bytes \d+ drop comment "cleartext for rule`)

// cleartextDrops sums the gateway's nftables counters of cleartext dropped
// for the policy (gatehoused's own table and the firewall's).
func (d *demo) cleartextDrops() int {
	out, _ := d.gw.Output(5*time.Second, "nft", "list", "ruleset")
	n := 0
	for _, m := range dropCounter.FindAllStringSubmatch(out, -1) {
		var v int
		fmt.Sscan(m[1], &v)
		n += v
	}
	return n
}

// client is a running `gatehouse connect l2tp`.
type client struct {
	user, addr, family string
	proc               *netns.Proc
}

func (c *client) note() string {
	if c == nil {
		return ""
	}
	return "address " + c.addr
}

var connected = regexp.MustCompile(`connected: address (10\.\d+\.\d+\.\d+)`)

func (d *demo) connect(ns *netns.NS, user, profile string) (*client, error) {
	p, err := ns.Start(filepath.Join(d.bin, "gatehouse"), "connect", "l2tp", "--server", "203.0.113.1", "--psk-file", filepath.Join(d.dir, "l2tp.psk"),
		"--user", user, "--password-file", filepath.Join(d.dir, user+".password"), "--route", "10.1.0.0/24", "--profile", profile, "--setup-timeout", "30s")
	if err != nil {
		return nil, err
	}
	for end := time.Now().Add(40 * time.Second); time.Now().Before(end); {
		if m := connected.FindStringSubmatch(p.Output()); m != nil {
			return &client{user: user, addr: m[1], proc: p}, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("exited: %v\n%s", p.Err(), p.Output())
		case <-time.After(100 * time.Millisecond):
		}
	}
	p.Stop(2 * time.Second)
	return nil, fmt.Errorf("not connected after 40 s:\n%s", p.Output())
}

// iperf runs 3 s of TCP and records it; iperf3 missing fails the step,
// as any other failure does.
func (d *demo) iperf(server, client *netns.NS, addr, name string) (string, error) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		return "", d.record(name, errors.New("iperf3 is not installed (make demo installs it)"), "")
	}
	mbps, err := netns.Iperf(server, client, addr, 3*time.Second)
	res := fmt.Sprintf("%.0f Mbit/s", mbps)
	return res, d.record(name, err, res)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func pluginPID(out string) int {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "auth-psk" && f[1] == "running" {
			var pid int
			fmt.Sscan(f[2], &pid)
			return pid
		}
	}
	return 0
}

func boolErr(ok bool, msg string) error {
	if ok {
		return nil
	}
	return errors.New(msg)
}

func banner(s string) { fmt.Printf("\n== %s\n", s) }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "  " + strings.ReplaceAll(s, "\n", "\n  ") + "\n"
}

func firstLine(s, contains string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, contains) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func summary(steps []step) {
	fmt.Println("\n== Summary")
	for _, s := range steps {
		mark := "ok  "
		if !s.ok {
			mark = "FAIL"
		}
		fmt.Printf("  [%s] %-58s %s\n", mark, s.name, s.note)
	}
	fmt.Println("\n  Namespaces, processes and files are removed.")
}
