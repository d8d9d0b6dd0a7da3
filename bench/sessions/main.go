// Command sessions is the remote-access scale benchmark run by `make
// bench`: gatehoused as an L2TP/IPsec server in one network namespace, and
// H client hosts in others that open N PPP sessions in all (MS-CHAPv2,
// each with its own pool address) over M L2TP tunnels, each host inside
// its own IPsec SA, as `gatehouse connect l2tp --calls N/H --tunnels M/H`
// does. With --ikev2 the clients are IKEv2 road warriors instead, N IKE
// SAs in all, each logging in by EAP-MSCHAPv2 (`gatehouse connect ikev2
// --calls N/H`). It reports the setup rate, the memory each session costs
// the core (live heap and resident size), the l2tp plugin and the client,
// and checks that hanging up gives every address back. Root only.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

const (
	psk      = "bench-sessions-key-0123456789"
	password = "bench-password"
)

type bench struct {
	bin, dir string
	srv      *netns.NS
	clis     []*netns.NS
	server   *netns.Proc
	calls    int
	tunnels  int
	hosts    int
	timeout  time.Duration
	profile  string
	memprof  string // gatehoused's heap profile, written with every session up
	// ikev2: IKEv2 road warriors offering ike, instead of L2TP/IPsec.
	ikev2 bool
	ike   string
}

// cli runs the gatehouse command against the server and decodes its JSON.
func (b *bench) admin(v any, args ...string) error {
	args = append([]string{"-s", filepath.Join(b.dir, "admin.sock"), "--json"}, args...)
	out, err := b.srv.Output(20*time.Second, filepath.Join(b.bin, "gatehouse"), args...)
	if err != nil {
		return fmt.Errorf("gatehouse %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return json.Unmarshal([]byte(out), v)
}

// memory is one sample of every process's footprint, in bytes, and of
// the CPU time each has used.
type memory struct {
	coreHeap, coreRSS, pluginRSS, clientRSS uint64
	coreCPU, pluginCPU, clientCPU           time.Duration
	goroutines                              int
	gcCycles                                uint64
}

type status struct {
	GCCycles   string `json:"gcCycles"`
	HeapLive   string `json:"heapLiveBytes"`
	RSS        string `json:"rssBytes"`
	Goroutines int    `json:"goroutines"`
}

type sessionList struct {
	Sessions []struct {
		User    string `json:"user"`
		Address string `json:"address"`
	} `json:"sessions"`
	PoolUsed       int    `json:"poolUsed"`
	ControlDropped string `json:"controlDropped"`
}

// rss reads a process's resident set size from /proc (the namespaces
// share our PID namespace).
func rss(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpu reads a process's user and system time from /proc (proc(5): fields
// 14 and 15 of stat, in clock ticks of 1/100 s on Linux).
func cpu(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')') // the command name may hold spaces
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// socketDrops counts the datagrams a namespace's kernel dropped for full
// receive buffers: raw sockets (ESP) from /proc/net/raw's drops column,
// UDP from /proc/net/snmp's RcvbufErrors.
func socketDrops(ns *netns.NS) (raw, udp uint64) {
	if out, err := ns.Output(5*time.Second, "cat", "/proc/net/raw"); err == nil {
		for _, line := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(line); len(f) > 0 {
				n, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
				raw += n
			}
		}
	}
	if out, err := ns.Output(5*time.Second, "cat", "/proc/net/snmp"); err == nil {
		var names []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || f[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			for i := range f {
				if i < len(names) && names[i] == "RcvbufErrors" {
					udp, _ = strconv.ParseUint(f[i], 10, 64)
				}
			}
		}
	}
	return raw, udp
}

func (b *bench) pluginPID() (int, error) {
	var r struct {
		Plugins []struct {
			Name string `json:"name"`
			Pid  string `json:"pid"`
		} `json:"plugins"`
	}
	if err := b.admin(&r, "plugins"); err != nil {
		return 0, err
	}
	for _, p := range r.Plugins {
		if p.Name == "l2tp" {
			return strconv.Atoi(p.Pid)
		}
	}
	return 0, errors.New("no l2tp plugin listed")
}

func (b *bench) sample(clients []*netns.Proc) (memory, error) {
	var s status
	if err := b.admin(&s, "status"); err != nil {
		return memory{}, err
	}
	pid, err := b.pluginPID()
	if err != nil {
		return memory{}, err
	}
	m := memory{pluginRSS: rss(pid), pluginCPU: cpu(pid), coreCPU: cpu(b.server.Cmd.Process.Pid), goroutines: s.Goroutines}
	m.coreHeap, _ = strconv.ParseUint(s.HeapLive, 10, 64)
	m.coreRSS, _ = strconv.ParseUint(s.RSS, 10, 64)
	m.gcCycles, _ = strconv.ParseUint(s.GCCycles, 10, 64)
	for _, c := range clients {
		m.clientRSS += rss(c.Cmd.Process.Pid)
		m.clientCPU += cpu(c.Cmd.Process.Pid)
	}
	return m, nil
}

func (b *bench) start() error {
	for name, body := range map[string]string{"l2tp.psk": psk + "\n", "password": password + "\n",
		"users.yaml": "users:\n  bench: {password: " + password + "}\n"} {
		if err := os.WriteFile(filepath.Join(b.dir, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	// At least a /20 (4093 addresses), and twice the calls: room for the
	// run and for its figures not to depend on the pool's size.
	prefix := 20
	for prefix > 8 && 1<<(32-prefix) < 2*b.calls {
		prefix--
	}
	auth, ikev2 := fmt.Sprintf("{psk_file: %s/l2tp.psk}", b.dir), ""
	if b.ikev2 {
		// The server's certificate, which the clients check before EAP.
		for _, args := range [][]string{{"ca", "--name", "bench CA", "--out", b.dir},
			{"issue", "--ca", filepath.Join(b.dir, "ca.pem"), "--ca-key", filepath.Join(b.dir, "ca.key"), "--name", "bench-server",
				"--key", "ecdsa", "--ip", "192.0.2.1", "--out", filepath.Join(b.dir, "server")}} {
			if out, err := b.srv.Output(30*time.Second, filepath.Join(b.bin, "gatehouse"), append([]string{"pki"}, args...)...); err != nil {
				return fmt.Errorf("gatehouse pki %s: %v\n%s", args[0], err, out)
			}
		}
		auth = fmt.Sprintf("{x509: {ca_files: [%[1]s/ca.pem], cert_file: %[1]s/server.pem, key_file: %[1]s/server.key}}", b.dir)
		ikev2 = "  ikev2: {inside: [10.1.0.0/24]}\n"
	}
	cfg := fmt.Sprintf("listen: [192.0.2.1]\nadmin_socket: %[1]s/admin.sock\nmetrics_listen: \"\"\nlog: {level: warn}\n"+
		"remote_access:\n  auth: [%[5]s]\n  pool: 10.%[3]d.0.0/%[4]d\n  ppp: {auth: [mschapv2], users_file: %[1]s/users.yaml}\n%[6]s"+
		"plugins: {dir: %[2]s/plugins}\n", b.dir, b.bin, 64, prefix, auth, ikev2)
	path := filepath.Join(b.dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	var err error
	args := []string{"-c", path}
	if b.profile != "" {
		args = append(args, "--cpuprofile", b.profile)
	}
	if b.memprof != "" {
		args = append(args, "--memprofile", b.memprof)
	}
	if b.server, err = b.srv.Start(filepath.Join(b.bin, "gatehoused"), args...); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if _, err = b.pluginPID(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the server did not come up: %v\n%s", err, netns.Tail(b.server.Output(), 4000))
}

var (
	callsLine   = regexp.MustCompile(`calls: (\d+) up over (\d+) tunnels in (\S+) after the IPsec SA \((\d+) calls/s\); (\S+) in all`)
	v2CallsLine = regexp.MustCompile(`calls: (\d+) IKE SAs up in (\S+) \((\d+) calls/s\)`)
)

// callsUp finds a client's calls line, in the L2TP form: calls, tunnels,
// time after the IPsec SA, rate, time in all.
func (b *bench) callsUp(out string) []string {
	if !b.ikev2 {
		return callsLine.FindStringSubmatch(out)
	}
	if m := v2CallsLine.FindStringSubmatch(out); m != nil {
		return []string{m[0], m[1], "0", m[2], m[3], m[2]}
	}
	return nil
}

func (b *bench) run() error {
	if err := b.start(); err != nil {
		return err
	}
	time.Sleep(time.Second) // the plugins settle
	before, err := b.sample(nil)
	if err != nil {
		return err
	}
	clients, err := b.startClients()
	defer func() {
		for _, c := range clients {
			c.Stop(10 * time.Second)
		}
	}()
	if err != nil {
		return err
	}
	setup, err := b.waitForCalls(clients)
	if err != nil {
		return err
	}
	var list sessionList
	if err := b.admin(&list, "sessions"); err != nil {
		return err
	}
	distinct := map[string]bool{}
	for _, s := range list.Sessions {
		distinct[s.Address] = true
	}
	if len(list.Sessions) != b.calls || len(distinct) != b.calls {
		return fmt.Errorf("the server lists %d sessions with %d distinct addresses, want %d", len(list.Sessions), len(distinct), b.calls)
	}
	up, err := b.sample(clients)
	if err != nil {
		return err
	}
	after, err := b.afterCollection(clients, up)
	if err != nil {
		return err
	}
	if b.memprof != "" {
		if err := b.server.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return fmt.Errorf("asking for the heap profile: %w", err)
		}
		time.Sleep(2 * time.Second) // a collection and the write
		fmt.Printf("heap profile with every session up: %s (go tool pprof -sample_index=inuse_space)\n", b.memprof)
	}
	b.report(setup, before, up, after, list)
	return b.hangUp(clients)
}

// startClients starts one gatehouse connect per host, each with its share
// of the calls and tunnels, all at once.
func (b *bench) startClients() ([]*netns.Proc, error) {
	var clients []*netns.Proc
	for i, ns := range b.clis {
		calls := b.calls / b.hosts
		if i < b.calls%b.hosts {
			calls++
		}
		args := []string{"connect", "l2tp", "--server", "192.0.2.1", "--psk-file", filepath.Join(b.dir, "l2tp.psk"),
			"--tunnels", strconv.Itoa(max(1, b.tunnels/b.hosts))}
		if b.ikev2 {
			args = []string{"connect", "ikev2", "--server", "192.0.2.1", "--ca", filepath.Join(b.dir, "ca.pem"), "--ike", b.ike}
		}
		c, err := ns.Start(filepath.Join(b.bin, "gatehouse"), append(args, "--user", "bench", "--password-file", filepath.Join(b.dir, "password"),
			"--calls", strconv.Itoa(calls), "--setup-timeout", b.timeout.String())...)
		if err != nil {
			return clients, err
		}
		clients = append(clients, c)
	}
	return clients, nil
}

// setupTimes is what the clients said of their setup: the slowest host's
// calls line, how long it took, and the tunnels opened in all.
type setupTimes struct {
	slowest     []string
	slowestTook time.Duration
	tunnels     int
}

// waitForCalls waits for every client to report its calls up.
func (b *bench) waitForCalls(clients []*netns.Proc) (setupTimes, error) {
	var st setupTimes
	for _, client := range clients {
		var m []string
		for end := time.Now().Add(b.timeout + 10*time.Second); m == nil && time.Now().Before(end); {
			select {
			case <-client.Done():
				return st, fmt.Errorf("a client exited: %v\n%s\nserver:\n%s", client.Err(), netns.Tail(client.Output(), 4000), netns.Tail(b.server.Output(), 4000))
			case <-time.After(200 * time.Millisecond):
			}
			m = b.callsUp(client.Output())
		}
		if m == nil {
			return st, fmt.Errorf("the calls did not come up:\n%s", netns.Tail(client.Output(), 4000))
		}
		st.tunnels += atoi(m[2])
		if took, _ := time.ParseDuration(m[5]); took >= st.slowestTook {
			st.slowest, st.slowestTook = m, took
		}
	}
	return st, nil
}

// afterCollection samples again once a garbage collection has ended
// with every session up: the live heap is as of the last collection (the
// runtime forces one every two minutes at the latest).
func (b *bench) afterCollection(clients []*netns.Proc, up memory) (memory, error) {
	after := up
	fmt.Println("waiting for the server's next garbage collection (up to two minutes)...")
	for end := time.Now().Add(130 * time.Second); after.gcCycles <= up.gcCycles && time.Now().Before(end); {
		time.Sleep(time.Second)
		var err error
		if after, err = b.sample(clients); err != nil {
			return after, err
		}
	}
	if after.gcCycles <= up.gcCycles {
		return after, errors.New("no garbage collection in 130 s: the live heap would be stale")
	}
	return after, nil
}

// report prints the setup rate, memory per session, drops and CPU.
func (b *bench) report(st setupTimes, before, up, after memory, list sessionList) {
	switch {
	case b.ikev2:
		fmt.Printf("%d IKEv2 sessions (EAP-MSCHAPv2, IKE SA %s) from %d client hosts\n", b.calls, b.ike, b.hosts)
	default:
		fmt.Printf("%d PPP sessions (MS-CHAPv2) over %d L2TP tunnels from %d client hosts, one IPsec SA each\n", b.calls, st.tunnels, b.hosts)
	}
	if b.hosts == 1 && !b.ikev2 {
		fmt.Printf("setup: all up %s after the IPsec SA: %s sessions/s (%s from the first IKE packet)\n\n", st.slowest[3], st.slowest[4], st.slowest[5])
	} else {
		fmt.Printf("setup: all up %s from the first IKE packet of the slowest host: %.0f sessions/s\n\n", st.slowest[5],
			float64(b.calls)/st.slowestTook.Seconds())
	}
	per := func(a, z uint64) string {
		if z < a {
			return "-"
		}
		return fmt.Sprintf("%.1f KiB", float64(z-a)/float64(b.calls)/1024)
	}
	mib := func(v uint64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	fmt.Printf("%-22s %12s %12s %14s\n", "memory", "idle", "loaded", "per session")
	fmt.Printf("%-22s %12s %12s %14s\n", "core live heap", mib(before.coreHeap), mib(after.coreHeap), per(before.coreHeap, after.coreHeap))
	fmt.Printf("%-22s %12s %12s %14s\n", "core resident", mib(before.coreRSS), mib(after.coreRSS), per(before.coreRSS, after.coreRSS))
	fmt.Printf("%-22s %12s %12s %14s\n", "l2tp plugin resident", mib(before.pluginRSS), mib(after.pluginRSS), per(before.pluginRSS, after.pluginRSS))
	fmt.Printf("%-22s %12s %12s %14s\n", "clients resident", "", mib(after.clientRSS), per(0, after.clientRSS))
	fmt.Printf("core goroutines: %d idle, %d loaded\n", before.goroutines, after.goroutines)
	perCall := func(d time.Duration) string {
		return fmt.Sprintf("%v (%v per session)", d.Round(10*time.Millisecond), (d / time.Duration(b.calls)).Round(time.Microsecond))
	}
	sr, su := socketDrops(b.srv)
	var cr, cu uint64
	for _, ns := range b.clis {
		r, u := socketDrops(ns)
		cr, cu = cr+r, cu+u
	}
	fmt.Printf("drops: receive buffers: server %d ESP, %d UDP; clients %d ESP, %d UDP; relay to the l2tp plugin: %s\n",
		sr, su, cr, cu, cmp.Or(list.ControlDropped, "0"))
	fmt.Printf("CPU for the setup: core %s, l2tp plugin %s, clients %s\n", perCall(up.coreCPU-before.coreCPU),
		perCall(up.pluginCPU-before.pluginCPU), perCall(up.clientCPU))
}

// hangUp interrupts every client and waits for the server to end every
// session and take every address back.
func (b *bench) hangUp(clients []*netns.Proc) error {
	start := time.Now()
	for _, c := range clients {
		c.Signal(2)
	}
	for _, c := range clients {
		select {
		case <-c.Done():
		case <-time.After(20 * time.Second):
			return errors.New("a client did not hang up in 20 s")
		}
	}
	var list sessionList
	for end := start.Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := b.admin(&list, "sessions"); err != nil {
			return err
		}
		if len(list.Sessions) == 0 && list.PoolUsed == 0 {
			fmt.Printf("hang-up: every session ended and every address back in the pool after %v\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("60 s after the hang-up, %d sessions remain and %d addresses are in use", len(list.Sessions), list.PoolUsed)
		}
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// hostsUp makes the client hosts: the first on the server's 192.0.2.0/24,
// the others each on a /30 of 198.51.100.0/24 routed to 192.0.2.1.
func (b *bench) hostsUp(l *netns.Lab) error {
	for i := range b.hosts {
		ns, err := l.NS(fmt.Sprintf("cli%d", i+1))
		if err != nil {
			return err
		}
		b.clis = append(b.clis, ns)
		if i == 0 {
			_, _, err = l.Link(ns, "192.0.2.10/24", b.srv, "192.0.2.1/24")
		} else {
			base := 4 * (i - 1)
			srvAddr := fmt.Sprintf("198.51.100.%d", base+1)
			if _, _, err = l.Link(ns, fmt.Sprintf("198.51.100.%d/30", base+2), b.srv, srvAddr+"/30"); err == nil {
				err = ns.Route("192.0.2.0/24", srvAddr)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func main() {
	self, _ := os.Executable()
	b := &bench{}
	flag.StringVar(&b.bin, "bin", filepath.Dir(self), "folder with gatehoused, gatehouse and plugins/")
	flag.IntVar(&b.calls, "calls", 1000, "PPP sessions to open")
	flag.IntVar(&b.tunnels, "tunnels", 50, "L2TP tunnels to spread them over (shared out among the hosts)")
	flag.IntVar(&b.hosts, "hosts", 1, "client hosts (network namespaces), each with its own IPsec SA; at most 60")
	flag.DurationVar(&b.timeout, "timeout", 2*time.Minute, "give up if the sessions are not all up by then")
	flag.StringVar(&b.profile, "profile", "", "write gatehoused's CPU profile to this file")
	flag.StringVar(&b.memprof, "memprofile", "", "write gatehoused's heap profile to this file once every session is up")
	flag.BoolVar(&b.ikev2, "ikev2", false, "IKEv2 road warriors (EAP-MSCHAPv2) instead of L2TP/IPsec calls; --tunnels is unused")
	flag.StringVar(&b.ike, "ike", "aes256gcm16-prfsha256-curve25519", "with --ikev2: the IKE SA suite the clients offer (Android 12's first)")
	flag.Parse()
	b.bin, _ = filepath.Abs(b.bin)
	if b.profile != "" {
		b.profile, _ = filepath.Abs(b.profile)
	}
	if b.memprof != "" {
		b.memprof, _ = filepath.Abs(b.memprof)
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "bench/sessions:", err)
		os.Exit(1)
	}
	if b.hosts < 1 || b.hosts > 60 || b.calls < b.hosts {
		fail(errors.New("--hosts takes 1 to 60, and no more than --calls"))
	}
	l, err := netns.New(nil)
	if err != nil {
		if errors.Is(err, netns.ErrNotRoot) {
			err = errors.New("needs root (network namespaces)")
		}
		fail(err)
	}
	defer l.Close()
	if b.dir, err = os.MkdirTemp("", "gatehouse-sessions"); err != nil {
		fail(err)
	}
	defer os.RemoveAll(b.dir)
	if b.srv, err = l.NS("srv"); err == nil {
		err = b.hostsUp(l)
	}
	if err == nil {
		err = b.run()
	}
	if err != nil {
		l.Close()
		os.RemoveAll(b.dir)
		fail(err)
	}
}
