// Command ikesetup is the IKE setup-rate benchmark run by `make bench`:
// two Gatehouse gateways in network namespaces with N site-to-site
// tunnels between them (one address per tunnel on the initiating side),
// every tunnel starting at once (start: always). It reports how long all
// N IKE SAs and their first child SAs took, setups per second and
// milliseconds per setup, for IKEv1 and IKEv2 with MODP2048 and ECP256;
// then the same N IKEv2 tunnels between two strongSwan daemons, and how
// Gatehouse's IKEv2 rate compares. Root only.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

type run struct {
	n       int
	elapsed time.Duration
	// load: strongSwan's time to load the connections, taken off elapsed.
	load time.Duration
}

func config(dir, listen string, tunnels []string, version int, proposal string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: [%s]\nadmin_socket: %s/admin.sock\nmetrics_listen: \"\"\nlog: {level: info}\n", listen, dir)
	fmt.Fprintf(&b, "ike: {version: %d, proposals: [%s]}\ntunnels:\n", version, proposal)
	for _, t := range tunnels {
		b.WriteString(t)
	}
	fmt.Fprintf(&b, "plugins: {dir: %s}\n", filepath.Join(filepath.Dir(dir), "plugins"))
	return b.String()
}

// timestamps reads the first "IKE running" and the last child SA up
// (event 5401, either version) times from a console log, and counts the
// child SAs that came up.
func timestamps(log string) (start, end time.Time, up int) {
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", strings.Fields(line + " x")[0])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "IKE running") && start.IsZero():
			start = ts
		case strings.Contains(line, `"event_id": 5401`):
			end, up = ts, up+1
		}
	}
	return start, end, up
}

// pair is the two gateways' namespaces, linked, with n addresses for A:
// 192.0.2.10 and up.
type pair struct {
	l     *netns.Lab
	a, b  *netns.NS
	addrs []string
}

func newPair(n int) (*pair, error) {
	l, err := netns.New(nil)
	if err != nil {
		return nil, err
	}
	p := &pair{l: l}
	if p.a, err = l.NS("gwa"); err == nil {
		p.b, err = l.NS("gwb")
	}
	var ifa string
	if err == nil {
		ifa, _, err = l.Link(p.a, "192.0.2.1/24", p.b, "192.0.2.2/24")
	}
	for k := 0; k < n && err == nil; k++ {
		addr := fmt.Sprintf("192.0.2.%d", 10+k)
		err = p.a.IP("addr", "add", addr+"/24", "dev", ifa)
		p.addrs = append(p.addrs, addr)
	}
	if err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

func bench(bin, work string, version int, group string, n int) (run, error) {
	r := run{n: n}
	p, err := newPair(n)
	if err != nil {
		return r, err
	}
	defer p.l.Close()
	a, b := p.a, p.b
	dir := filepath.Join(work, fmt.Sprintf("v%d-%s", version, group))
	for _, d := range []string{"a", "b"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return r, err
		}
	}
	if err := os.Symlink(filepath.Join(bin, "plugins"), filepath.Join(dir, "plugins")); err != nil {
		return r, err
	}
	pskFile := filepath.Join(dir, "site.psk")
	if err := os.WriteFile(pskFile, []byte("benchmark-preshared-key-42\n"), 0o600); err != nil {
		return r, err
	}
	var ta, tb []string
	for k, addr := range p.addrs {
		ta = append(ta, fmt.Sprintf("  - {name: t%d, local: {address: %s, subnets: [10.1.%d.0/24]}, remote: {address: 192.0.2.2, subnets: [10.2.%d.0/24]}, auth: [{psk_file: %s}], start: always}\n", k, addr, k, k, pskFile))
		tb = append(tb, fmt.Sprintf("  - {name: t%d, local: {address: 192.0.2.2, subnets: [10.2.%d.0/24]}, remote: {address: %s, subnets: [10.1.%d.0/24]}, auth: [{psk_file: %s}], start: passive}\n", k, k, addr, k, pskFile))
	}
	proposal := "aes128-sha256-" + group
	os.WriteFile(filepath.Join(dir, "b", "gatehouse.yaml"), []byte(config(filepath.Join(dir, "b"), "192.0.2.2", tb, version, proposal)), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "gatehouse.yaml"), []byte(config(filepath.Join(dir, "a"), strings.Join(p.addrs, ", "), ta, version, proposal)), 0o644)
	pb, err := b.Start(filepath.Join(bin, "gatehoused"), "-c", filepath.Join(dir, "b", "gatehouse.yaml"))
	if err != nil {
		return r, err
	}
	defer pb.Stop(5 * time.Second)
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(filepath.Join(dir, "b", "admin.sock")); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pa, err := a.Start(filepath.Join(bin, "gatehoused"), "-c", filepath.Join(dir, "a", "gatehouse.yaml"))
	if err != nil {
		return r, err
	}
	defer pa.Stop(5 * time.Second)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if _, _, up := timestamps(pa.Output()); up >= n {
			start, end, _ := timestamps(pa.Output())
			r.elapsed = end.Sub(start)
			return r, nil
		}
		select {
		case <-pa.Done():
			return r, fmt.Errorf("gatehoused exited: %v\n%s", pa.Err(), pa.Output())
		case <-time.After(200 * time.Millisecond):
		}
	}
	_, _, up := timestamps(pa.Output())
	return r, fmt.Errorf("%d of %d tunnels up after 2 minutes", up, n)
}

// swanBench sets up the same n IKEv2 tunnels between two strongSwan
// daemons (charon with kernel-libipsec, as the labs run it), logging only
// what level 0 says, and times them from the initiator's load of its
// connections (start_action = start) until its log shows n child SAs
// established (polled every 10 ms), less what loading n connections
// takes charon. Its log has no milliseconds to do better by.
func swanBench(work, group string, n int) (run, error) {
	r := run{n: n}
	p, err := newPair(n)
	if err != nil {
		return r, err
	}
	defer p.l.Close()
	conn := func(name, local, remote, lnet, rnet, start string) string {
		return fmt.Sprintf(`  %s {
    version = 2
    local_addrs = %s
    remote_addrs = %s
    proposals = aes128-sha256-%s
    local { auth = psk }
    remote { auth = psk }
    children { net { local_ts = %s
      remote_ts = %s
      esp_proposals = aes128gcm16
      start_action = %s } }
  }
`, name, local, remote, group, lnet, rnet, start)
	}
	var ca, cb strings.Builder
	for k, addr := range p.addrs {
		ca.WriteString(conn(fmt.Sprintf("t%d", k), addr, "192.0.2.2", fmt.Sprintf("10.1.%d.0/24", k), fmt.Sprintf("10.2.%d.0/24", k), "start"))
		cb.WriteString(conn(fmt.Sprintf("t%d", k), "192.0.2.2", addr, fmt.Sprintf("10.2.%d.0/24", k), fmt.Sprintf("10.1.%d.0/24", k), "none"))
	}
	secrets := "secrets {\n  ike-all { secret = \"benchmark-preshared-key-42\" }\n}\n"
	// The labs' level logs every message, line by line: level 0 only.
	quiet := "filelog { log { default = 0\n ike = 0 } }\n"
	var sws []*netns.StrongSwan
	defer func() {
		for _, sw := range sws {
			sw.Stop(false)
		}
	}()
	start := func(ns *netns.NS, sub, conf string) (*netns.StrongSwan, string, error) {
		dir := filepath.Join(work, "swan-"+group, sub)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "charon-extra.conf"), []byte(quiet), 0o600); err != nil {
			return nil, "", err
		}
		sw, err := netns.StartStrongSwan(ns, dir, conf)
		if sw != nil {
			sws = append(sws, sw)
		}
		return sw, dir, err
	}
	swb, dirB, err := start(p.b, "b", "connections {\n"+cb.String()+"}\n"+secrets)
	if err != nil {
		return r, err
	}
	// What loading n connections costs charon, measured on B's (which
	// start nothing), is taken off A's time: A's tunnels start as they
	// load.
	t := time.Now()
	if out, err := swb.Swanctl(time.Minute, "--load-all", "--file", filepath.Join(dirB, "swanctl.conf")); err != nil {
		return r, fmt.Errorf("swanctl --load-all: %v\n%s", err, out)
	}
	r.load = time.Since(t)
	// A starts with no connections; loading them starts every tunnel.
	swa, dirA, err := start(p.a, "a", secrets)
	if err != nil {
		return r, err
	}
	if err := os.WriteFile(filepath.Join(dirA, "tunnels.conf"), []byte("connections {\n"+ca.String()+"}\n"+secrets), 0o600); err != nil {
		return r, err
	}
	t0 := time.Now()
	if out, err := swa.Swanctl(time.Minute, "--load-all", "--file", filepath.Join(dirA, "tunnels.conf")); err != nil {
		return r, fmt.Errorf("swanctl --load-all: %v\n%s", err, out)
	}
	deadline := t0.Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if strings.Count(swa.Log(), "CHILD_SA net{") >= n {
			r.elapsed = max(time.Since(t0)-r.load, time.Millisecond)
			return r, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r, fmt.Errorf("%d of %d strongSwan tunnels up after 2 minutes:\n%s", strings.Count(swa.Log(), "CHILD_SA net{"), n, netns.Tail(swa.Log(), 3000))
}

func main() {
	bin := flag.String("bin", "bin", "folder with gatehoused and plugins/")
	n := flag.Int("n", 200, "tunnels (at most 240)")
	flag.Parse()
	if *n < 1 || *n > 240 {
		fmt.Fprintln(os.Stderr, "ikesetup: -n must be 1 to 240")
		os.Exit(2)
	}
	abs, _ := filepath.Abs(*bin)
	work, err := os.MkdirTemp("", "gatehouse-ikesetup")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer os.RemoveAll(work)
	failed := false
	report := func(what string, r run, err error, target string) float64 {
		if errors.Is(err, netns.ErrNotRoot) {
			fmt.Fprintln(os.Stderr, "ikesetup: needs root (network namespaces)")
			os.Exit(1)
		}
		if err != nil {
			fmt.Printf("%-24s FAILED: %v\n", what, err)
			failed = true
			return 0
		}
		rate := float64(r.n) / r.elapsed.Seconds()
		fmt.Printf("%-24s %d setups in %v: %.0f setups/s, %.2f ms per setup (target %s)\n",
			what, r.n, r.elapsed.Round(time.Millisecond), rate, float64(r.elapsed.Microseconds())/1000/float64(r.n), target)
		return rate
	}
	fmt.Printf("IKE setup rate: %d site-to-site tunnels between two gateways, all starting at once\n", *n)
	var v2ecp float64
	for _, g := range []struct {
		version       int
		group, target string
	}{{1, "modp2048", "150/s"}, {1, "ecp256", "500/s"}, {2, "modp2048", "150/s"}, {2, "ecp256", "1000/s"}} {
		r, err := bench(abs, work, g.version, g.group, *n)
		rate := report(fmt.Sprintf("Gatehouse IKEv%d %s", g.version, g.group), r, err, g.target)
		if g.version == 2 && g.group == "ecp256" {
			v2ecp = rate
		}
	}
	r, err := swanBench(work, "ecp256", *n)
	if err == nil {
		fmt.Printf("(strongSwan: %v to load %d connections taken off its time)\n", r.load.Round(time.Millisecond), *n)
	}
	if swan := report("strongSwan IKEv2 ecp256", r, err, "-"); swan > 0 && v2ecp > 0 {
		fmt.Printf("Gatehouse IKEv2 ecp256 sets up %.1fx as many tunnels per second as strongSwan (target 2x)\n", v2ecp/swan)
	}
	if failed {
		os.Exit(1)
	}
}
