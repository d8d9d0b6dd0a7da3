// Command testreport reads `go test -json` on its standard input and
// prints what `go test` prints without -v (each package's result, and the
// whole output of every test that failed), then every test that was
// skipped, with its reason, so that a skip is never silent. It exits 1
// when a test or a package failed, or when the input held no result.
//
//	go test -json ./... | go run ./internal/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type key struct{ pkg, test string }

// report is what the stream said, as far as read.
type report struct {
	out      io.Writer
	buffered map[key][]string // a running test's output, printed if it fails
	skipped  map[key]string   // skipped test -> its reason
	failed   int
	packages int
}

func newReport(out io.Writer) *report {
	return &report{out: out, buffered: map[key][]string{}, skipped: map[key]string{}}
}

func (r *report) add(e event) {
	k := key{e.Package, e.Test}
	if e.Test == "" {
		switch e.Action {
		case "build-output":
			fmt.Fprint(r.out, e.Output)
		case "output":
			// Package lines: "ok", "FAIL", "?", build errors, output of
			// TestMain; the bare PASS/FAIL that -v adds is noise.
			if t := strings.TrimSpace(e.Output); t != "PASS" && t != "FAIL" {
				fmt.Fprint(r.out, e.Output)
			}
		case "pass", "skip":
			r.packages++
		case "fail":
			r.packages++
			r.failed++
		}
		return
	}
	switch e.Action {
	case "output":
		r.buffered[k] = append(r.buffered[k], e.Output)
	case "pass":
		delete(r.buffered, k)
	case "fail":
		r.failed++
		for _, line := range r.buffered[k] {
			fmt.Fprint(r.out, line)
		}
		delete(r.buffered, k)
	case "skip":
		r.skipped[k] = skipReason(r.buffered[k])
		delete(r.buffered, k)
	}
}

// skipReason is the message t.Skip logged: the lines after "--- SKIP".
func skipReason(lines []string) string {
	var why []string
	after := false
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "--- SKIP"):
			after = true
		case after && t != "":
			why = append(why, t)
		}
	}
	if len(why) == 0 {
		return "(no reason given)"
	}
	return strings.Join(why, " ")
}

// finish prints the skipped tests and says whether everything passed.
func (r *report) finish() bool {
	if len(r.skipped) > 0 {
		keys := make([]key, 0, len(r.skipped))
		for k := range r.skipped {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].pkg != keys[j].pkg {
				return keys[i].pkg < keys[j].pkg
			}
			return keys[i].test < keys[j].test
		})
		fmt.Fprintf(r.out, "\n%d tests skipped:\n", len(keys))
		for _, k := range keys {
			fmt.Fprintf(r.out, "  %s %s: %s\n", k.pkg, k.test, r.skipped[k])
		}
	} else {
		fmt.Fprintln(r.out, "\nno test skipped")
	}
	switch {
	case r.packages == 0:
		fmt.Fprintln(r.out, "testreport: no test results read: did go test start?")
		return false
	case r.failed > 0:
		fmt.Fprintf(r.out, "testreport: %d failures\n", r.failed)
		return false
	}
	return true
}

func main() {
	r := newReport(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (go test writes build errors as text):
			// pass it on, and count it against the run.
			fmt.Println(sc.Text())
			r.failed++
			continue
		}
		r.add(e)
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	if !r.finish() {
		os.Exit(1)
	}
}
