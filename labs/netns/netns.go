// Package netns is the lab harness for tests and the demo: network
// namespaces, veth links, a NAT router (nftables masquerade), random loss
// (nftables numgen drop), and processes run inside a namespace. A lab always
// tears itself down: on Close, on test cleanup, on SIGINT/SIGTERM, and the
// next lab sweeps leftovers of labs whose process died.
//
// Namespace names are "gh<pid>x<random>-<name>", so parallel tests never
// collide and a leftover names the process that made it. Use only the
// documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24)
// outside and 10.x inside.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// Lab is one set of namespaces and processes.
type Lab struct {
	prefix string
	logf   func(string, ...any)

	mu       sync.Mutex
	spaces   []*NS
	procs    []*Proc
	gateways []*Gateway // gatehoused instances started in the lab
	links    int
	closed   bool
}

// NS is a network namespace of a lab.
type NS struct {
	lab  *Lab
	Name string // short name given by the caller
	Full string // name under /var/run/netns
}

// Proc is a background process inside a namespace.
type Proc struct {
	Cmd  *exec.Cmd
	Name string
	out  *syncBuffer
	done chan struct{}
	err  error
}

var (
	live   sync.Map // *Lab -> struct{}
	sigOne sync.Once
)

// ErrNotRoot is returned when the caller cannot create namespaces.
var ErrNotRoot = errors.New("lab needs root: it creates network namespaces")

// New makes a lab. logf receives every command run (nil: silent).
func New(logf func(string, ...any)) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("lab needs %s (Debian: apt-get install iproute2 nftables): %w", tool, err)
		}
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b := make([]byte, 3)
	rand.Read(b)
	l := &Lab{prefix: fmt.Sprintf("gh%dx%s", os.Getpid(), hex.EncodeToString(b)), logf: logf}
	Sweep()
	live.Store(l, struct{}{})
	sigOne.Do(func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			s := <-ch
			live.Range(func(k, _ any) bool { k.(*Lab).Close(); return true })
			fmt.Fprintf(os.Stderr, "lab: %s: namespaces torn down\n", s)
			os.Exit(130)
		}()
	})
	return l, nil
}

// Sweep deletes namespaces left by labs whose process is gone.
func Sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "gh") {
			continue
		}
		name := fields[0]
		pidText, _, ok := strings.Cut(name[2:], "x")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // its lab is still running
		}
		killNSProcs(name)
		exec.Command("ip", "netns", "delete", name).Run()
	}
}

func killNSProcs(full string) {
	out, _ := exec.Command("ip", "netns", "pids", full).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (l *Lab) run(args ...string) error {
	l.logf("lab: %s", strings.Join(args, " "))
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NS creates a namespace with loopback up.
func (l *Lab) NS(name string) (*NS, error) {
	ns := &NS{lab: l, Name: name, Full: l.prefix + "-" + name}
	if err := l.run("ip", "netns", "add", ns.Full); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.spaces = append(l.spaces, ns)
	l.mu.Unlock()
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// IP runs `ip ARGS` inside the namespace.
func (ns *NS) IP(args ...string) error {
	return ns.lab.run(append([]string{"ip", "-n", ns.Full}, args...)...)
}

// Sysctl sets a sysctl inside the namespace.
func (ns *NS) Sysctl(key, value string) error {
	return ns.lab.run("ip", "netns", "exec", ns.Full, "sysctl", "-q", "-w", key+"="+value)
}

// Link connects a and b with a veth pair and assigns addresses (CIDR
// notation; empty for none). It returns the interface names in a and b.
func (l *Lab) Link(a *NS, aAddr string, b *NS, bAddr string) (string, string, error) {
	l.mu.Lock()
	l.links++
	n := l.links
	l.mu.Unlock()
	// Interface names are limited to 15 bytes.
	ia, ib := fmt.Sprintf("%s%d", a.Name, n), fmt.Sprintf("%s%d", b.Name, n)
	if len(ia) > 15 || len(ib) > 15 {
		return "", "", fmt.Errorf("namespace names %q/%q too long for interface names", a.Name, b.Name)
	}
	tmpA := "v" + l.prefix[len(l.prefix)-6:] + "a" + strconv.Itoa(n)
	tmpB := "v" + l.prefix[len(l.prefix)-6:] + "b" + strconv.Itoa(n)
	if err := l.run("ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB); err != nil {
		return "", "", err
	}
	for _, s := range []struct {
		tmp, name, addr string
		ns              *NS
	}{{tmpA, ia, aAddr, a}, {tmpB, ib, bAddr, b}} {
		if err := l.run("ip", "link", "set", s.tmp, "netns", s.ns.Full, "name", s.name); err != nil {
			return "", "", err
		}
		if s.addr != "" {
			if err := s.ns.IP("addr", "add", s.addr, "dev", s.name); err != nil {
				return "", "", err
			}
		}
		if err := s.ns.IP("link", "set", s.name, "up"); err != nil {
			return "", "", err
		}
	}
	return ia, ib, nil
}

// Route adds a route inside the namespace ("default" or a CIDR, via a gateway).
func (ns *NS) Route(dst, via string) error {
	return ns.IP("route", "add", dst, "via", via)
}

// Forwarding turns on IPv4 forwarding inside the namespace.
func (ns *NS) Forwarding() error { return ns.Sysctl("net.ipv4.ip_forward", "1") }

// Nft loads an nftables ruleset inside the namespace.
func (ns *NS) Nft(ruleset string) error {
	ns.lab.logf("lab: nft in %s:\n%s", ns.Name, ruleset)
	cmd := exec.Command("ip", "netns", "exec", ns.Full, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", ns.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Masquerade makes ns a NAT router: forwarding on, and traffic leaving
// through outIface masqueraded (RFC 3948 NAT-T labs).
func (ns *NS) Masquerade(outIface string) error {
	if err := ns.Forwarding(); err != nil {
		return err
	}
	return ns.Nft(fmt.Sprintf(`table ip gatehouse_lab_nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname %q masquerade
  }
}`, outIface))
}

// Loss drops percent%% of packets leaving through iface, at random.
func (ns *NS) Loss(iface string, percent int) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("loss %d%% out of range", percent)
	}
	match := fmt.Sprintf("numgen random mod 100 < %d", percent)
	if percent == 100 {
		match = "" // nft takes values 0-99 after "mod 100 <"
	}
	return ns.Nft(fmt.Sprintf(`table inet gatehouse_lab_loss {
  chain output {
    type filter hook output priority 0; policy accept;
    oifname %[1]q %[2]s drop
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    oifname %[1]q %[2]s drop
  }
}`, iface, match))
}

// Command returns a command that runs inside the namespace.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Full, name}, args...)...)
}

// Output runs a command inside the namespace and returns its combined output.
func (ns *NS) Output(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ns.lab.logf("lab: [%s] %s %s", ns.Name, name, strings.Join(args, " "))
	out, err := ns.Command(ctx, name, args...).CombinedOutput()
	if ctx.Err() != nil {
		return string(out), fmt.Errorf("[%s] %s: timed out after %s", ns.Name, name, timeout)
	}
	return string(out), err
}

// Start runs a process inside the namespace in the background; Close kills it.
func (ns *NS) Start(name string, args ...string) (*Proc, error) {
	ns.lab.logf("lab: [%s] start %s %s", ns.Name, name, strings.Join(args, " "))
	p := &Proc{Name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.Cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Full, name}, args...)...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.out, p.out
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	ns.lab.mu.Lock()
	ns.lab.procs = append(ns.lab.procs, p)
	ns.lab.mu.Unlock()
	return p, nil
}

// Output is everything the process wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// WaitLine waits up to timeout for a line of output that holds every
// part (a log line's fields come in no fixed order).
func (p *Proc) WaitLine(timeout time.Duration, parts ...string) bool {
	ok, _ := await.Poll(timeout, func() (bool, string) {
		return slices.ContainsFunc(strings.Split(p.Output(), "\n"), func(line string) bool {
			return !slices.ContainsFunc(parts, func(part string) bool { return !strings.Contains(line, part) })
		}), ""
	})
	return ok
}

// Done is closed when the process exits.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error { return syscall.Kill(-p.Cmd.Process.Pid, sig) }

// Stop sends SIGTERM, waits up to timeout, then SIGKILL.
func (p *Proc) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Signal(syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Close kills every process and deletes every namespace. It is safe to call
// more than once.
func (l *Lab) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	procs, spaces := l.procs, l.spaces
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop(2 * time.Second)
	}
	for i := len(spaces) - 1; i >= 0; i-- {
		killNSProcs(spaces[i].Full)
		l.run("ip", "netns", "delete", spaces[i].Full)
	}
	live.Delete(l)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
