package netns

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// Capture is tshark writing what crosses an interface to a file.
type Capture struct {
	File string
	proc *Proc
}

// StartCapture starts tshark on iface in ns, keeping what filter (a
// capture filter) passes in file, and returns once it captures. Without
// tshark it fails the test: make test installs it.
func (ns *NS) StartCapture(t testing.TB, iface, filter, file string) *Capture {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Fatal("tshark is not installed: make test installs it (contrib/scripts/install-test-deps.sh)")
	}
	p, err := ns.Start("tshark", "-i", iface, "-w", file, "-f", filter)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop(5 * time.Second) })
	await.State(t, 10*time.Second, "tshark capturing on "+iface, func() (bool, string) { return strings.Contains(p.Output(), "Capturing on"), p.Output() })
	return &Capture{File: file, proc: p}
}

// Live makes sure packets are being written, not only that tshark said
// it captures (the first packets after "Capturing on" can be lost): it
// runs probe, which sends something the filter passes, until the file
// holds a frame. A test whose first packets matter calls it first.
func (c *Capture) Live(t testing.TB, probe func()) {
	t.Helper()
	await.State(t, 10*time.Second, "the capture writing packets", func() (bool, string) {
		probe()
		text, _ := c.Decode()
		return strings.Contains(text, "Frame 1:"), Tail(text, 1000)
	})
}

// Decode has tshark decode the file as written so far, in full (-V),
// with args added (preferences such as ESP keys).
func (c *Capture) Decode(args ...string) (string, error) {
	out, err := exec.Command("tshark", append([]string{"-n", "-r", c.File, "-V"}, args...)...).CombinedOutput()
	return string(out), err
}

// Until decodes the file as tshark writes it until done accepts the
// text, then stops the capture and returns the whole file decoded. It
// fails the test when limit passes first, or when the final decoding
// fails.
func (c *Capture) Until(t testing.TB, limit time.Duration, what string, done func(text string) bool, args ...string) string {
	t.Helper()
	await.State(t, limit, what+" in the capture", func() (bool, string) {
		// A packet half written at the end makes tshark complain: the
		// next round reads it whole.
		text, _ := c.Decode(args...)
		return done(text), Tail(text, 4000)
	})
	c.proc.Signal(syscall.SIGINT) // tshark finishes the file
	c.proc.Err()
	text, err := c.Decode(args...)
	if err != nil {
		t.Fatalf("tshark -r %s: %v\n%s", c.File, err, Tail(text, 4000))
	}
	return text
}
