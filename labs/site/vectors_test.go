package site

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
)

// TestStrongSwanDerivations checks the IKEv1 key derivations past SKEYID
// against another implementation: strongSwan initiates main mode (a
// preshared key) and quick mode (with PFS) to Gatehouse, logging every
// key, hash and IV it computes; the capture gives the messages. The two
// make ike's fixture (ike/testdata/strongswan-ikev1.txt), which
// TestStrongSwanVectors in package ike reads: it is run here on the fresh
// one. GATEHOUSE_RECORD_VECTORS=FILE keeps the fixture in FILE, to
// refresh the checked-in one.
func TestStrongSwanDerivations(t *testing.T) {
	l := newLab(t)
	extra := filepath.Join(t.TempDir(), "charon-extra.conf")
	// ike 4 and chd 4: every key and seed; enc 3: what is encrypted.
	if err := os.WriteFile(extra, []byte("filelog { log { ike = 4\n chd = 4\n enc = 3\n cfg = 1 } }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := tunnelOpts{esp: "aes256-sha256", pfs: "modp2048", start: "passive", swanFiles: map[string]string{"charon-extra.conf": extra}}
	startGatehouse(t, l.GWB, siteB, o)
	capture := l.GWB.StartCapture(t, "gwb1", "udp port 500 or udp port 4500", filepath.Join(t.TempDir(), "ike.pcap"))
	sw := startStrongSwan(t, l.GWA, siteA, o)
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s\n%s", err, out, sw.Log())
	}
	netns.PingThrough(t, l.HA, "10.2.0.10")
	// Main mode's six messages and quick mode's three.
	capture.Until(t, 10*time.Second, "nine ISAKMP messages", func(text string) bool {
		return strings.Count(text, "\nInternet Security Association and Key Management Protocol\n") >= 9
	})
	out, err := exec.Command("tshark", "-n", "-r", capture.File, "-Y", "isakmp", "-T", "fields", "-e", "udp.srcport", "-e", "udp.payload").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var f bytes.Buffer
	fmt.Fprintf(&f, "# One IKEv1 exchange between strongSwan (initiator) and Gatehouse, recorded by\n")
	fmt.Fprintf(&f, "# labs/site TestStrongSwanDerivations: the ISAKMP messages in order, then\n# strongSwan's own values from its log.\n")
	fmt.Fprintf(&f, "psk %x\n", []byte(psk))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		port, payload, _ := strings.Cut(line, "\t")
		payload = strings.ReplaceAll(payload, ":", "")
		if port == "4500" {
			payload = strings.TrimPrefix(payload, "00000000") // the non-ESP marker
		}
		fmt.Fprintf(&f, "message %s\n", payload)
	}
	for _, v := range swanValues(t, sw.Log()) {
		fmt.Fprintf(&f, "%s\n", v)
	}
	path := os.Getenv("GATEHOUSE_RECORD_VECTORS")
	if path == "" {
		path = filepath.Join(t.TempDir(), "strongswan-ikev1.txt")
	}
	if err := os.WriteFile(path, f.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "test", "-count=1", "-run", "^TestStrongSwanVectors$", "-v", "./ike")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GATEHOUSE_IKE_VECTORS="+path)
	out, err = cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestStrongSwanVectors") {
		t.Fatalf("ike's derivations against this exchange: %v\n%s\nfixture:\n%s", err, out, f.String())
	}
}

// swanLabels are the values of strongSwan's log the fixture keeps, by
// the label it logs them with.
var swanLabels = []string{"shared Diffie Hellman secret", "SKEYID", "SKEYID_d", "SKEYID_a", "SKEYID_e", "encryption key Ka",
	"initial IV", "HASH_I data", "HASH_I", "HASH_R data", "HASH_R", "Hash(1)", "Hash(2)", "Hash(3)", "DH secret",
	"initiator SA seed", "responder SA seed", "encryption initiator key", "encryption responder key",
	"integrity initiator key", "integrity responder key", "plain"}

var (
	dumpHead = regexp.MustCompile(`\] (.+?) => (\d+) bytes @ `)
	dumpLine = regexp.MustCompile(`^\s*(\d+): ((?:[0-9A-F]{2} )*[0-9A-F]{2})`)
	nextIV   = regexp.MustCompile(`^next IV for MID (\d+)$`)
)

// swanValues reads strongSwan's hex dumps ("LABEL => N bytes @ ADDR" and
// lines of 16 bytes) into "label hex" lines, in the order logged.
func swanValues(t *testing.T, log string) []string {
	t.Helper()
	var out []string
	lines := strings.Split(log, "\n")
	for i := 0; i < len(lines); i++ {
		m := dumpHead.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		label := m[1]
		var n int
		fmt.Sscan(m[2], &n)
		var hex strings.Builder
		last := i
		// Continuation lines may carry the log's prefix, and another
		// thread's lines may come between them: a continuation is the
		// line whose offset is what was read so far. With enc = 3 another
		// thread's message encoding can put hundreds of lines in between.
		for j := i + 1; j < len(lines) && j <= i+1024 && hex.Len() < 2*n; j++ {
			rest := lines[j]
			if dumpHead.FindStringIndex(rest) != nil {
				continue
			}
			if k := strings.LastIndex(rest, "] "); k >= 0 {
				rest = rest[k+2:]
			}
			d := dumpLine.FindStringSubmatch(rest)
			if d == nil || d[1] != fmt.Sprint(hex.Len()/2) {
				continue
			}
			hex.WriteString(strings.ReplaceAll(d[2], " ", ""))
			last = j
		}
		if hex.Len() == 2*n {
			i = last
		}
		if hex.Len() != 2*n {
			t.Fatalf("strongSwan's dump of %q: %d of %d bytes read", label, hex.Len()/2, n)
		}
		name := label
		if mm := nextIV.FindStringSubmatch(label); mm != nil {
			name = "IV for MID " + mm[1]
		} else if !contains(swanLabels, label) {
			continue
		}
		out = append(out, strings.ReplaceAll(name, " ", "_")+" "+strings.ToLower(hex.String()))
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
