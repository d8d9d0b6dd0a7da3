package await

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A condition that comes true is awaited; one that never does is given
// up on at the limit with its last state.
func TestPoll(t *testing.T) {
	var n atomic.Int32
	ok, state := Poll(10*time.Second, func() (bool, string) { return n.Add(1) == 5, "n" })
	if !ok || n.Load() != 5 || state != "n" {
		t.Fatalf("Poll = %v %q after %d checks", ok, state, n.Load())
	}
	ok, state = Poll(20*time.Millisecond, func() (bool, string) { return false, "still false" })
	if ok || state != "still false" {
		t.Fatalf("Poll of a false condition = %v %q", ok, state)
	}
}

// State fails the test naming what it waited for and the state last
// seen.
func TestStateFails(t *testing.T) {
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		State(ft, 10*time.Millisecond, "the moon", func() (bool, string) { return false, "waning" })
	}()
	<-done
	if !strings.Contains(ft.msg, "the moon") || !strings.Contains(ft.msg, "waning") {
		t.Fatalf("failure message %q", ft.msg)
	}
}

type fakeT struct {
	testing.TB
	msg string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit() // as testing's Fatalf ends the goroutine
}
