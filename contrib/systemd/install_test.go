// Package systemd holds the service unit and sysctl file that make install
// puts in place; its test runs make install into a temporary root.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestMakeInstall installs into a DESTDIR, checks what lands where and
// with which modes, that an edited configuration survives a second
// install, and has systemd check the unit and rate its sandbox.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED in -short mode: builds every binary")
	}
	root := t.TempDir()
	install := func() {
		t.Helper()
		cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	install()
	for path, mode := range map[string]os.FileMode{
		"usr/sbin/gatehoused": 0o755, "usr/bin/gatehouse": 0o755, "usr/lib/gatehouse/plugins/auth-psk": 0o755,
		"usr/lib/gatehouse/plugins/l2tp": 0o755, "usr/lib/gatehouse/plugins/interop-windows": 0o755, "usr/lib/gatehouse/plugins/radius": 0o755,
		"lib/systemd/system/gatehoused.service": 0o644, "etc/sysctl.d/90-gatehouse.conf": 0o644, "etc/gatehouse": 0o750 | os.ModeDir,
		"etc/gatehouse/gatehouse.yaml": 0o640, "etc/gatehouse/gatehouse.yaml.example": 0o640, "usr/share/doc/gatehouse/events.md": 0o644,
	} {
		st, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if st.Mode()&(os.ModeDir|os.ModePerm) != mode {
			t.Errorf("%s has mode %v, want %v", path, st.Mode(), mode)
		}
	}
	conf := filepath.Join(root, "etc/gatehouse/gatehouse.yaml")
	if err := os.WriteFile(conf, []byte("# edited by the operator\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	install()
	if b, _ := os.ReadFile(conf); string(b) != "# edited by the operator\n" {
		t.Fatal("a second make install overwrote the operator's configuration")
	}

	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Geteuid() == 0 {
			t.Fatal("systemd-analyze is not installed, so the unit cannot be verified: make test installs it (package systemd)")
		}
		t.Skip("SKIPPED: systemd-analyze is not installed and, without root, make test cannot install it; the unit was not verified")
	}
	// systemd checks that the unit parses and its programs exist: point it
	// at the installed daemon.
	unit, err := os.ReadFile(filepath.Join(root, "lib/systemd/system/gatehoused.service"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	test := filepath.Join(dir, "gatehoused.service")
	if err := os.WriteFile(test, []byte(strings.ReplaceAll(string(unit), "/usr/sbin/gatehoused", filepath.Join(root, "usr/sbin/gatehoused"))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemd-analyze", "verify", test).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, _ := exec.Command("systemd-analyze", "security", "--offline=true", test).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for gatehoused.service: ([0-9.]+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no exposure level:\n%s", out)
	}
	t.Logf("systemd-analyze security: exposure %s (0 is best, 10 unprotected)", m[1])
	if level, _ := strconv.ParseFloat(m[1], 64); level > 4.9 {
		t.Errorf("exposure %s: the sandbox got weaker", m[1])
	}
}
