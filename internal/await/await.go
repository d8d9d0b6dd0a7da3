// Package await is how tests wait for something to happen: a condition
// checked until it holds, failing the test with what was awaited (and
// the state last seen) when a generous limit passes. The limit only
// bounds a test that would otherwise hang; nothing is measured by it.
package await

import (
	"testing"
	"time"
)

// maxPoll is the longest pause between two checks; the first checks
// come quickly, so a condition that holds soon costs little.
const maxPoll = 100 * time.Millisecond

// True waits until cond holds; after limit it fails t.
func True(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	State(t, limit, what, func() (bool, string) { return cond(), "" })
}

// State waits until cond reports ok; after limit it fails t with the
// state cond last described.
func State(t testing.TB, limit time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	if ok, state := Poll(limit, cond); !ok {
		if state != "" {
			t.Fatalf("waited %v for %s; last seen: %s", limit, what, state)
		}
		t.Fatalf("waited %v for %s", limit, what)
	}
}

// Poll checks cond until it reports ok or limit passes, and returns its
// last answer; for callers that report the failure themselves.
func Poll(limit time.Duration, cond func() (ok bool, state string)) (bool, string) {
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for {
		ok, state := cond()
		if ok || !time.Now().Before(deadline) {
			return ok, state
		}
		t := time.NewTimer(min(pause, time.Until(deadline)))
		<-t.C
		pause = min(2*pause, maxPoll)
	}
}
