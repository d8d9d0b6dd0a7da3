// Command ikesetup is the IKE setup-rate benchmark run by `make bench`:
// two Gatehouse gateways in network namespaces with N site-to-site
// tunnels between them (one address per tunnel on the initiating side),
// every tunnel starting at once (start: always). It reports how long all
// N main modes and quick modes took, setups per second and milliseconds
// per setup, for MODP2048 and ECP256. Root only.
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
	group   string
	n       int
	elapsed time.Duration
}

func config(dir, listen string, tunnels []string, proposal string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: [%s]\nadmin_socket: %s/admin.sock\nmetrics_listen: \"\"\nlog: {level: info}\n", listen, dir)
	fmt.Fprintf(&b, "ike: {proposals: [%s]}\ntunnels:\n", proposal)
	for _, t := range tunnels {
		b.WriteString(t)
	}
	fmt.Fprintf(&b, "plugins: {dir: %s}\n", filepath.Join(filepath.Dir(dir), "plugins"))
	return b.String()
}

// timestamps reads the first "IKE running" and the last "IPsec SA up"
// times from a console log, and counts the IPsec SAs that came up.
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
		case strings.Contains(line, "IPsec SA up"):
			end, up = ts, up+1
		}
	}
	return start, end, up
}

func bench(bin, work, group string, n int) (run, error) {
	r := run{group: group, n: n}
	l, err := netns.New(nil)
	if err != nil {
		return r, err
	}
	defer l.Close()
	a, err := l.NS("gwa")
	if err != nil {
		return r, err
	}
	b, err := l.NS("gwb")
	if err != nil {
		return r, err
	}
	ifa, _, err := l.Link(a, "192.0.2.1/24", b, "192.0.2.2/24")
	if err != nil {
		return r, err
	}
	dir := filepath.Join(work, group)
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
	var ta, tb, listen []string
	for k := 0; k < n; k++ {
		addr := fmt.Sprintf("192.0.2.%d", 10+k)
		if err := a.IP("addr", "add", addr+"/24", "dev", ifa); err != nil {
			return r, err
		}
		listen = append(listen, addr)
		ta = append(ta, fmt.Sprintf("  - {name: t%d, local: {address: %s, subnets: [10.1.%d.0/24]}, remote: {address: 192.0.2.2, subnets: [10.2.%d.0/24]}, auth: [{psk_file: %s}], start: always}\n", k, addr, k, k, pskFile))
		tb = append(tb, fmt.Sprintf("  - {name: t%d, local: {address: 192.0.2.2, subnets: [10.2.%d.0/24]}, remote: {address: %s, subnets: [10.1.%d.0/24]}, auth: [{psk_file: %s}], start: passive}\n", k, k, addr, k, pskFile))
	}
	proposal := "aes128-sha256-" + group
	os.WriteFile(filepath.Join(dir, "b", "gatehouse.yaml"), []byte(config(filepath.Join(dir, "b"), "192.0.2.2", tb, proposal)), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "gatehouse.yaml"), []byte(config(filepath.Join(dir, "a"), strings.Join(listen, ", "), ta, proposal)), 0o644)
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
	fmt.Printf("IKE setup rate: %d site-to-site tunnels between two Gatehouse gateways, all starting at once\n", *n)
	for _, g := range []struct{ group, target string }{{"modp2048", "150/s"}, {"ecp256", "500/s"}} {
		r, err := bench(abs, work, g.group, *n)
		if errors.Is(err, netns.ErrNotRoot) {
			fmt.Fprintln(os.Stderr, "ikesetup: needs root (network namespaces)")
			os.Exit(1)
		}
		if err != nil {
			fmt.Printf("%-9s FAILED: %v\n", g.group, err)
			failed = true
			continue
		}
		rate := float64(r.n) / r.elapsed.Seconds()
		fmt.Printf("%-9s %d main modes + quick modes in %v: %.0f setups/s, %.2f ms per setup (target %s)\n",
			g.group, r.n, r.elapsed.Round(time.Millisecond), rate, float64(r.elapsed.Microseconds())/1000/float64(r.n), g.target)
	}
	if failed {
		os.Exit(1)
	}
}
