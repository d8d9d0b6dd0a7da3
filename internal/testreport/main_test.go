package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func feed(t *testing.T, events ...event) (string, bool) {
	t.Helper()
	var out strings.Builder
	r := newReport(&out)
	for _, e := range events {
		// Through JSON, as go test writes them.
		b, _ := json.Marshal(e)
		var back event
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		r.add(back)
	}
	ok := r.finish()
	return out.String(), ok
}

// A run with a pass and a skip prints the package line and the skip with
// its reason, and passes.
func TestSkipsAreListed(t *testing.T) {
	out, ok := feed(t,
		event{Action: "run", Package: "p", Test: "TestA"},
		event{Action: "output", Package: "p", Test: "TestA", Output: "=== RUN   TestA\n"},
		event{Action: "pass", Package: "p", Test: "TestA"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "=== RUN   TestB\n"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "--- SKIP: TestB (0.00s)\n"},
		event{Action: "output", Package: "p", Test: "TestB", Output: "    b_test.go:9: SKIPPED: needs root\n"},
		event{Action: "skip", Package: "p", Test: "TestB"},
		event{Action: "output", Package: "p", Output: "PASS\n"},
		event{Action: "output", Package: "p", Output: "ok  \tp\t0.01s\n"},
		event{Action: "pass", Package: "p"},
	)
	if !ok || !strings.Contains(out, "ok  \tp") || !strings.Contains(out, "1 tests skipped") ||
		!strings.Contains(out, "p TestB: b_test.go:9: SKIPPED: needs root") || strings.Contains(out, "=== RUN") {
		t.Fatalf("ok %v, output:\n%s", ok, out)
	}
}

// A failed test's output is printed and the run fails; a run that read
// nothing fails too.
func TestFailuresAndNothing(t *testing.T) {
	out, ok := feed(t,
		event{Action: "output", Package: "p", Test: "TestC", Output: "    c_test.go:3: wrong answer\n"},
		event{Action: "fail", Package: "p", Test: "TestC"},
		event{Action: "output", Package: "p", Output: "FAIL\tp\t0.01s\n"},
		event{Action: "fail", Package: "p"},
	)
	if ok || !strings.Contains(out, "wrong answer") || !strings.Contains(out, "2 failures") {
		t.Fatalf("ok %v, output:\n%s", ok, out)
	}
	if out, ok := feed(t); ok || !strings.Contains(out, "no test results") {
		t.Fatalf("an empty stream: ok %v, output:\n%s", ok, out)
	}
}
