package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/labs/testbin"
)

// The end-to-end tests build the real binaries and run gatehoused as a
// process, the way an operator does.

var binDir string

func TestMain(m *testing.M) {
	testbin.Main(m.Run, &binDir, map[string]string{
		".":                      "gatehoused",
		"../gatehouse":           "gatehouse",
		"../../plugins/auth-psk": "plugins/auth-psk",
		"../../plugins/l2tp":     "plugins/l2tp",
	})
}

type server struct {
	t      *testing.T
	dir    string
	cfg    string
	socket string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	done   chan error
}

const e2eConfig = `
listen: [203.0.113.1]
admin_socket: SOCKET
metrics_listen: ""
log: {level: debug, format: json}
exemptions: windows2000
tunnels:
  - name: neta-netb
    local:  {address: 203.0.113.1,  subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth: [{psk_file: netb.psk}]
    esp: {proposals: [aes128gcm16, aes256-sha256], pfs: modp2048, lifetime: 1h, lifetime_kb: 4000000}
remote_access:
  auth: [{psk_file: l2tp.psk}]
  pool: 10.8.0.0/24
  dns: [10.1.0.53]
rules:
  - name: no-telnet-to-neta
    filters: [{src: any, dst: 10.1.0.0/16, protocol: tcp, dst_port: 23}]
    action: block
plugins: {dir: PLUGINS, health_interval: 1s}
`

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	for name, key := range map[string]string{"netb.psk": "site-to-site-secret-1", "l2tp.psk": "road-warrior-secret-2"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "gatehouse.yaml")
	body = strings.NewReplacer("SOCKET", filepath.Join(dir, "admin.sock"), "PLUGINS", filepath.Join(binDir, "plugins")).Replace(body)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, body string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, dir: dir, cfg: writeConfig(t, dir, body), socket: filepath.Join(dir, "admin.sock"), log: &bytes.Buffer{}, done: make(chan error, 1)}
	// The configuration's tunnel starts a data path and IKE on
	// 203.0.113.1: the server runs in a namespace that has the address,
	// never on the host. (The lab's cleanup runs after ours: stop first.)
	lab := netns.ForTest(t)
	gw := lab.MustNS(t, "gw")
	lab.MustLink(t, gw, "203.0.113.1/24", lab.MustNS(t, "peer"), "203.0.113.2/24")
	s.cmd = gw.Command(context.Background(), filepath.Join(binDir, "gatehoused"), "-c", s.cfg)
	s.cmd.Stderr = &lockedWriter{w: s.log}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("gatehoused log:\n%s", s.logText())
		}
	})
	await.State(t, 10*time.Second, "the admin socket", func() (bool, string) {
		select {
		case err := <-s.done:
			t.Fatalf("gatehoused exited: %v\n%s", err, s.logText())
		default:
		}
		_, err := os.Stat(s.socket)
		return err == nil, s.logText()
	})
	return s
}

func (s *server) logText() string {
	lw := s.cmd.Stderr.(*lockedWriter)
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return s.log.String()
}

func (s *server) cli(args ...string) (string, int) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "gatehouse"), append([]string{"--socket", s.socket}, args...)...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return string(out), code
}

type pluginRow struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Pid      string `json:"pid"`
	Restarts int    `json:"restarts"`
	LastExit string `json:"lastExit"`
}

func (s *server) plugins() []pluginRow {
	s.t.Helper()
	out, code := s.cli("plugins", "--json")
	if code != 0 {
		s.t.Fatalf("plugins: exit %d: %s", code, out)
	}
	var r struct {
		Plugins []pluginRow `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		s.t.Fatalf("plugins --json: %v\n%s", err, out)
	}
	return r.Plugins
}

func TestStatusPolicyAndPlugins(t *testing.T) {
	s := start(t, e2eConfig)
	if st, err := os.Stat(s.socket); err != nil || st.Mode().Perm() != 0o600 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("admin socket mode: %v %v", st.Mode(), err)
	}
	out, code := s.cli("status")
	if code != 0 || !strings.Contains(out, "4 rules") || !strings.Contains(out, "2 of 2 running") || !strings.Contains(out, "exemptions windows2000") {
		t.Fatalf("status (exit %d):\n%s", code, out)
	}
	out, code = s.cli("policy", "show")
	flat := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"rule neta-netb/out", "Source 10.1.0.0 mask 255.255.0.0", "Destination 10.2.0.0 mask 255.255.0.0",
		"Mode tunnel, endpoint 198.51.100.2", "1. ESP aes128gcm16 3600 s, 4000000 KB", "2. ESP aes256-sha256", "PFS modp2048",
		"rule neta-netb/in", "Direction inbound Source 10.2.0.0", "Mode tunnel, endpoint 203.0.113.1",
		"rule remote-access", "Protocol udp src port 1701, dst port 0", "Mode transport", "1. ESP aes256-sha1",
		"rule no-telnet-to-neta", "Action block", "Mirrored yes (this is the generated reverse filter)", "1. psk (key file ",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("policy show lacks %q", want)
		}
	}
	if code != 0 || t.Failed() {
		t.Fatalf("policy show (exit %d):\n%s", code, out)
	}
	if strings.Contains(out, "site-to-site-secret") || strings.Contains(s.logText(), "site-to-site-secret") {
		t.Fatal("a preshared key was printed")
	}
	rows := s.plugins()
	if len(rows) != 2 || rows[0].Name != "auth-psk" || rows[1].Name != "l2tp" || rows[0].State != "running" || rows[1].State != "running" || rows[0].Restarts != 0 {
		t.Fatalf("plugins = %+v", rows)
	}
}

// Killing auth-psk: the daemon logs why, restarts it within a second, and
// `gatehouse plugins` shows one restart.
func TestKilledPluginIsRestarted(t *testing.T) {
	s := start(t, e2eConfig)
	before := s.plugins()[0]
	var pid int
	fmt.Sscan(before.Pid, &pid)
	if pid <= 0 {
		t.Fatalf("no pid: %+v", before)
	}
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var after pluginRow
	await.State(t, 10*time.Second, "the plugin restarted once", func() (bool, string) {
		after = s.plugins()[0]
		return after.State == "running" && after.Restarts == 1, fmt.Sprintf("%+v", after)
	})
	if after.Pid == before.Pid {
		t.Fatalf("after kill: %+v", after)
	}
	t.Logf("restarted in %s (includes CLI round trips)", time.Since(killed).Round(time.Millisecond))
	if after.LastExit != "killed by signal killed" {
		t.Errorf("last exit = %q", after.LastExit)
	}
	// A first death is restarted at once, without backoff.
	log := s.logText()
	if !strings.Contains(log, "plugin died; restarting") || !strings.Contains(log, "killed by signal killed") || !restartAtOnce.MatchString(log) {
		t.Errorf("log does not say why the plugin died and that it restarts at once:\n%s", log)
	}
	// The restarted plugin was configured again: the text CLI shows it.
	out, _ := s.cli("plugins")
	if !strings.Contains(out, "RESTARTS") || !strings.Contains(out, "killed by signal killed") {
		t.Errorf("plugins text:\n%s", out)
	}
}

var restartAtOnce = regexp.MustCompile(`"restart_in": ?0[,}]`)

func TestReloadRefusesBadConfigAndKeepsOld(t *testing.T) {
	s := start(t, e2eConfig)
	// A world-readable key file makes the new configuration invalid.
	os.Chmod(filepath.Join(s.dir, "l2tp.psk"), 0o644)
	out, code := s.cli("reload")
	if code != 1 || !strings.Contains(out, "readable by group or others") || !strings.Contains(out, "gatehouse.yaml:") {
		t.Fatalf("bad reload (exit %d):\n%s", code, out)
	}
	st, _ := s.cli("status")
	if !strings.Contains(st, "4 rules") || !strings.Contains(st, "REFUSED") {
		t.Fatalf("old config not in force after refused reload:\n%s", st)
	}
	os.Chmod(filepath.Join(s.dir, "l2tp.psk"), 0o600)
	// A good change through SIGHUP: drop the block rule.
	writeConfig(t, s.dir, strings.Split(e2eConfig, "rules:")[0]+"plugins: {dir: PLUGINS, health_interval: 1s}\n")
	s.cmd.Process.Signal(syscall.SIGHUP)
	// The counter moves just after the new configuration is in force.
	await.State(t, 10*time.Second, "the SIGHUP reload applied", func() (bool, string) {
		st, _ = s.cli("status")
		return strings.Contains(st, "3 rules") && strings.Contains(st, "1 reload(s)"), st + "\n" + s.logText()
	})
	if strings.Contains(st, "REFUSED") {
		t.Fatalf("SIGHUP reload refused:\n%s\n%s", st, s.logText())
	}
	if !strings.Contains(s.logText(), "rule no-telnet-to-neta removed") {
		t.Errorf("reload log does not list the change")
	}
}

func TestCheckAndStartErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, e2eConfig)
	out, err := exec.Command(filepath.Join(binDir, "gatehoused"), "--check", "-c", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") || !strings.Contains(string(out), "plugin auth-psk") {
		t.Fatalf("--check good: %v\n%s", err, out)
	}
	bad := writeConfig(t, dir, strings.Replace(e2eConfig, "pool: 10.8.0.0/24", "pool: 10.8.0.0/33", 1))
	out, err = exec.Command(filepath.Join(binDir, "gatehoused"), "--check", "-c", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "gatehouse.yaml:15:") || !strings.Contains(string(out), "remote_access.pool") {
		t.Fatalf("--check bad: %v\n%s", err, out)
	}
	// A manually keyed AEAD SA is refused: its nonces would repeat after
	// every restart. The error names the file, the line and the reason.
	os.WriteFile(filepath.Join(dir, "m.key"), []byte("00112233445566778899aabbccddeeff00112233\n"), 0o600)
	aead := writeConfig(t, dir, e2eConfig+`manual_sas:
  - name: by-hand
    local: 203.0.113.1
    peer: 192.0.2.2
    suite: aes128gcm16
    local_subnets: [10.1.0.0/24]
    remote_subnets: [10.2.0.0/24]
    out: {spi: 0x1001, key_file: m.key}
    in:  {spi: 0x2001, key_file: m.key}
`)
	out, err = exec.Command(filepath.Join(binDir, "gatehoused"), "--check", "-c", aead).CombinedOutput()
	line := strings.Count(e2eConfig, "\n") + 5
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), fmt.Sprintf("gatehouse.yaml:%d:", line)) ||
		!strings.Contains(string(out), "manual_sas[0].suite") || !strings.Contains(string(out), "nonces would repeat") {
		t.Fatalf("--check with a manual AEAD SA (want line %d): %v\n%s", line, err, out)
	}
	// What is allowed but weakens security is warned about, with the line:
	// aggressive mode on a tunnel.
	body := strings.Replace(e2eConfig, "remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}",
		`remote: {address: 198.51.100.2, subnets: [10.2.0.0/16], id: "fqdn:gw-b.example.net"}`, 1)
	body = strings.Replace(body, "    auth: [{psk_file: netb.psk}]\n", "    auth: [{psk_file: netb.psk}]\n    ike: {aggressive_mode: true}\n", 1)
	out, err = exec.Command(filepath.Join(binDir, "gatehoused"), "--check", "-c", writeConfig(t, dir, body)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") || !strings.Contains(string(out), "warning: ") ||
		!strings.Contains(string(out), "gatehouse.yaml:12:") || !strings.Contains(string(out), "crack offline") {
		t.Fatalf("--check with aggressive mode: %v\n%s", err, out)
	}
	// A plugin that cannot start: one clear error naming the binary.
	missing := writeConfig(t, dir, strings.Replace(e2eConfig, "PLUGINS", "/nonexistent/plugins", 1))
	out, err = exec.Command(filepath.Join(binDir, "gatehoused"), "-c", missing).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "binary /nonexistent/plugins/auth-psk does not exist") {
		t.Fatalf("missing plugin: %v\n%s", err, out)
	}
	// A binary that is not a plugin fails the handshake, naming it.
	notPlugin := writeConfig(t, dir, strings.Replace(e2eConfig, "plugins: {dir: PLUGINS", "plugins: {load: [{name: auth-psk, path: /bin/true}], dir: PLUGINS", 1))
	out, err = exec.Command(filepath.Join(binDir, "gatehoused"), "-c", notPlugin).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "plugin auth-psk (/bin/true)") {
		t.Fatalf("non-plugin binary: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(binDir, "gatehoused"), "--nope").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("bad flag: %v\n%s", err, out)
	}
}
