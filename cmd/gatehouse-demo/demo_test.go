package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/labs/testbin"
)

// TestDemoRuns runs the demo as `make demo` does, so the demo cannot rot.
func TestDemoRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: the demo needs root to create network namespaces (CI runs make test as root)")
	}
	if testing.Short() {
		t.Skip("SKIPPED in -short mode")
	}
	bin, err := testbin.Build(t.TempDir(), map[string]string{".": "gatehouse-demo", "../gatehoused": "gatehoused", "../gatehouse": "gatehouse", "../../plugins/auth-psk": "plugins/auth-psk", "../../plugins/auth-x509": "plugins/auth-x509", "../../plugins/l2tp": "plugins/l2tp",
		"../../plugins/interop-windows": "plugins/interop-windows", "../../plugins/interop-apple": "plugins/interop-apple",
		"../../plugins/interop-android": "plugins/interop-android"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "gatehouse-demo"), "--bin", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out)
	}
	for _, want := range []string{"[ok  ] auth-psk restarted after kill -9", "[ok  ] bad reload refused", "[ok  ] alice connects from laptop",
		"[ok  ] bob connects from macbook", "windows (Windows 8 to 11, by interop-windows)", "apple (racoon (macOS/iOS), by interop-apple)",
		"[ok  ] ping 10.1.0.10 -> 10.2.0.10 (the first packet starts IKE)", "[ok  ] carol connects from phone over IKEv2 (EAP-MSCHAPv2)", "[ok  ] ping carol -> 10.1.0.10 through IKEv2", `gatehouse_sessions{protocol="ikev2"} 1`, `gatehouse_sessions{protocol="l2tp"} 2`, "[ok  ] no sessions left", "[ok  ] firewall rules pass nft -c and load", "[ok  ] a ping in clear between NetB and NetA is dropped"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if strings.Contains(string(out), "[FAIL]") {
		t.Errorf("a demo step failed:\n%s", out)
	}
}
