package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/testbin"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

var testPlugin string

func TestMain(m *testing.M) {
	var dir string
	testbin.Main(func() int {
		testPlugin = filepath.Join(dir, "testplugin")
		return m.Run()
	}, &dir, map[string]string{"./testdata/testplugin": "testplugin"})
}

func newHost(t *testing.T, opts Options) (*Host, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	h := New(zap.New(core), opts, nil)
	t.Cleanup(h.StopAll)
	return h, logs
}

func TestStartDiscoverAndServe(t *testing.T) {
	h, _ := newHost(t, Options{})
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Get("tp")
	st := p.Status()
	if st.State != StateRunning || st.PID == 0 || len(st.Kinds) != 1 || st.Kinds[0] != sdk.KindAuthenticator {
		t.Fatalf("status = %+v", st)
	}
	a, name, err := h.Authenticator(sdk.MethodPSK)
	if err != nil || name != "tp" {
		t.Fatalf("Authenticator(psk) = %s, %v", name, err)
	}
	if _, err := a.GSSStep(context.Background(), sdk.GSSStepRequest{}); !errors.Is(err, sdk.ErrUnsupported) {
		t.Fatalf("unserved call = %v", err)
	}
	if _, _, err := h.Authenticator(sdk.MethodKerberos); !errors.Is(err, ErrNotServed) {
		t.Fatalf("kerberos served? %v", err)
	}
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin}); err == nil {
		t.Fatal("second start of the same name accepted")
	}
	h.Remove("tp")
	if err := syscall.Kill(st.PID, 0); err == nil {
		await.True(t, 5*time.Second, "process exit after Remove", func() bool { return syscall.Kill(st.PID, 0) != nil })
	}
}

func TestConfigureHookRunsOnStartAndRefusalFailsStart(t *testing.T) {
	calls := 0
	h := New(zap.NewNop(), Options{}, func(ctx context.Context, p *Plugin) error {
		calls++
		a, _, _ := p.Authenticator()
		_, err := a.Configure(ctx, sdk.AuthConfig{UsersFile: "refuse"})
		return err
	})
	defer h.StopAll()
	err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin})
	if calls != 1 || !errors.Is(err, sdk.ErrInvalid) || !strings.Contains(err.Error(), "plugin tp (") {
		t.Fatalf("calls=%d err=%v", calls, err)
	}
	if len(h.Plugins()) != 0 {
		t.Fatal("refused plugin is supervised")
	}
}

func TestBinaryChecks(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\nexit 0\n"), 0o700)
		os.Chmod(p, mode)
		return p
	}
	cases := map[string]struct {
		path string
		says string
	}{
		"missing":        {filepath.Join(dir, "nope"), "does not exist"},
		"directory":      {dir, "not a regular file"},
		"not executable": {write("noexec", 0o644), "not executable"},
		"world-writable": {write("ww", 0o777), "writable by group or others"},
	}
	for name, c := range cases {
		err := CheckBinary(Spec{Name: "x", Path: c.path})
		if err == nil || !strings.Contains(err.Error(), c.says) || !strings.Contains(err.Error(), "plugin x") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Who may change the binary and its folder: root or our own user only,
	// and neither group nor others, through a symbolic link as well.
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	os.Chmod(open, 0o777)
	inOpen := filepath.Join(open, "p")
	os.WriteFile(inOpen, []byte("#!/bin/sh\n"), 0o755)
	link := filepath.Join(dir, "link")
	os.Symlink(inOpen, link)
	for name, c := range map[string]struct{ path, says string }{
		"a folder anyone can write": {inOpen, "its folder: " + open + " is writable by group or others"},
		"a link into such a folder": {link, "its folder: " + open + " is writable by group or others"},
	} {
		if err := CheckBinary(Spec{Name: "x", Path: c.path}); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if os.Geteuid() == 0 {
		theirs := write("theirs", 0o755)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := CheckBinary(Spec{Name: "x", Path: theirs}); err == nil || !strings.Contains(err.Error(), "owned by uid 65534, neither root nor gatehoused's user") {
			t.Errorf("a binary another user owns: %v", err)
		}
		theirDir := filepath.Join(dir, "theirdir")
		os.Mkdir(theirDir, 0o755)
		os.WriteFile(filepath.Join(theirDir, "p"), []byte("#!/bin/sh\n"), 0o755)
		os.Chown(theirDir, 65534, 65534)
		if err := CheckBinary(Spec{Name: "x", Path: filepath.Join(theirDir, "p")}); err == nil || !strings.Contains(err.Error(), "its folder: "+theirDir+" is owned by uid 65534") {
			t.Errorf("a folder another user owns: %v", err)
		}
	}
	if err := CheckBinary(Spec{Name: "x", Path: write("fine", 0o755)}); err != nil {
		t.Errorf("a binary only we can change: %v", err)
	}
	// A program that is not a plugin fails the handshake with its path named.
	h, _ := newHost(t, Options{StartTimeout: 3 * time.Second})
	err := h.Start(context.Background(), Spec{Name: "x", Path: write("notplugin", 0o755)})
	if err == nil || !strings.Contains(err.Error(), "notplugin") {
		t.Fatalf("non-plugin: %v", err)
	}
}

func TestBackoffSchedule(t *testing.T) {
	o := Options{}
	o.fill()
	want := []time.Duration{0, 0, 250 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}
	for i, w := range want {
		if got := o.backoff(i); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i, got, w)
		}
	}
	if got := o.backoff(50); got != 30*time.Second {
		t.Errorf("backoff(50) = %s, want the 30s cap", got)
	}
}

// A plugin that keeps crashing is restarted with growing backoff, and
// recovers once it stops crashing.
func TestCrashLoopBacksOff(t *testing.T) {
	h, logs := newHost(t, Options{BackoffBase: 200 * time.Millisecond})
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Get("tp")
	crash := testPlugin + ".crash"
	os.WriteFile(crash, nil, 0o600)
	defer os.Remove(crash)
	syscall.Kill(p.Status().PID, syscall.SIGKILL)
	// Each failure in a row waits longer before the next try: at once,
	// then 200ms, 400ms, 800ms; never a tight loop. A crashing plugin
	// dies after its handshake ("died") or, on a loaded machine, before
	// it ("restart failed"): both count, in order.
	type failure struct {
		wait time.Duration
		died bool
		row  any
	}
	failures := func() []failure {
		var out []failure
		for _, e := range logs.All() {
			f := e.ContextMap()
			switch e.Message {
			case "plugin died; restarting":
				out = append(out, failure{f["restart_in"].(time.Duration), true, f["failures_in_a_row"]})
			case "plugin restart failed":
				out = append(out, failure{f["next_try_in"].(time.Duration), false, nil})
			}
		}
		return out
	}
	await.True(t, 20*time.Second, "four failures in a row", func() bool { return len(failures()) >= 4 })
	os.Remove(crash)
	for i, f := range failures()[:4] {
		want := []time.Duration{0, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}[i]
		if f.wait != want || (f.died && f.row != int64(i+1)) {
			t.Errorf("failure %d: wait %v (died %v, failures_in_a_row %v); want %v and %d", i+1, f.wait, f.died, f.row, want, i+1)
		}
	}
	if !strings.Contains(p.Status().LastExit, "status 7") {
		t.Errorf("last exit = %q", p.Status().LastExit)
	}
	await.True(t, 10*time.Second, "recovery", func() bool {
		st := p.Status()
		return st.State == StateRunning && time.Since(st.Since) > 300*time.Millisecond
	})
}

// A plugin that stops answering (SIGSTOP) is killed and restarted after two
// failed health checks.
func TestHungPluginIsRestarted(t *testing.T) {
	h, logs := newHost(t, Options{HealthInterval: 150 * time.Millisecond})
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Get("tp")
	pid := p.Status().PID
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGKILL)
	defer func() {
		if t.Failed() {
			dumpLogs(t, logs)
		}
	}()
	await.True(t, 15*time.Second, "restart of hung plugin", func() bool {
		st := p.Status()
		return st.Restarts == 1 && st.State == StateRunning
	})
	defer func() {
		if t.Failed() {
			dumpLogs(t, logs)
		}
	}()
	if logs.FilterMessage("plugin health check failed").Len() < 2 {
		t.Error("health check failures not logged")
	}
	if e := p.Status().LastExit; !strings.Contains(e, "health checks") {
		t.Errorf("last exit = %q", e)
	}
}

func TestExitReason(t *testing.T) {
	err := exec.Command("sh", "-c", "exit 3").Run()
	if got := exitReason(err); got != "exited with status 3" {
		t.Errorf("exit 3: %q", got)
	}
	err = exec.Command("sh", "-c", "kill -TERM $$").Run()
	if got := exitReason(err); got != "killed by signal terminated" {
		t.Errorf("SIGTERM: %q", got)
	}
	if got := exitReason(nil); got != "exited with status 0" {
		t.Errorf("nil: %q", got)
	}
}

func dumpLogs(t *testing.T, logs *observer.ObservedLogs) {
	for _, e := range logs.All() {
		t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
	}
}

func TestStopDoesNotHangOnAStoppedPlugin(t *testing.T) {
	h, _ := newHost(t, Options{HealthInterval: time.Hour})
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Get("tp")
	pid := p.Status().PID
	syscall.Kill(pid, syscall.SIGSTOP)
	done := make(chan struct{})
	go func() { h.Remove("tp"); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Remove hung on a stopped plugin")
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatal("stopped plugin still alive after Remove")
	}
}

// TestPluginEnvironment: a plugin gets PATH and go-plugin's handshake
// variables, nothing of the core's environment (where an operator's
// secrets or proxy settings may sit).
func TestPluginEnvironment(t *testing.T) {
	t.Setenv("GATEHOUSE_TEST_SECRET", "do-not-pass")
	h, _ := newHost(t, Options{})
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: testPlugin}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Get("tp")
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.Status().PID))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	for _, v := range env {
		name, _, _ := strings.Cut(v, "=")
		if name != "PATH" && name != sdk.Handshake.MagicCookieKey && !strings.HasPrefix(name, "PLUGIN_") {
			t.Errorf("the plugin inherited %s", name)
		}
	}
	if !slices.Contains(env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin") {
		t.Errorf("no fixed PATH in %q", env)
	}
	// AutoMTLS: the plugin was handed our certificate, so it serves TLS
	// and takes calls only from us.
	if !slices.ContainsFunc(env, func(v string) bool { return strings.HasPrefix(v, "PLUGIN_CLIENT_CERT=-----BEGIN CERTIFICATE-----") }) {
		t.Errorf("the plugin was not given a client certificate (AutoMTLS off?)")
	}
}

// TestRestartChecksTheBinary: a binary that became writable by others
// while its plugin ran is not started again when the plugin dies.
func TestRestartChecksTheBinary(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tp")
	b, err := os.ReadFile(testPlugin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	h, _ := newHost(t, Options{BackoffBase: 50 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	if err := h.Start(context.Background(), Spec{Name: "tp", Path: bin}); err != nil {
		t.Fatal(err)
	}
	p, _ := h.Get("tp")
	os.Chmod(bin, 0o777)
	syscall.Kill(p.Status().PID, syscall.SIGKILL)
	await.True(t, 10*time.Second, "the refused restart", func() bool { return strings.Contains(p.Status().LastError, "writable by group or others") })
	if st := p.Status(); st.State == StateRunning || !strings.Contains(st.LastError, "writable by group or others") {
		t.Fatalf("restarted a binary anyone can write: %+v", st)
	}
}
