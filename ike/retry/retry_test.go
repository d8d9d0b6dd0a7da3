package retry

import (
	"testing"
	"time"
)

// The schedule: resent 1, 3, 7, 15 and 31 s after the first send, failed
// at 63 s; nothing in between, and nothing once stopped.
func TestSchedule(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	var tm Timer
	tm.Arm(t0)
	var resent []int
	failedAt := -1
	for s := 0; s <= 100; s++ {
		resend, failed := tm.Tick(t0.Add(time.Duration(s) * time.Second))
		if resend {
			resent = append(resent, s)
		}
		if failed {
			failedAt = s
			break
		}
	}
	want := []int{1, 3, 7, 15, 31}
	if len(resent) != len(want) || failedAt != 63 || tm.Armed() || tm.Tries() != Tries {
		t.Fatalf("resent at %v s, failed at %d s (want %v and 63)", resent, failedAt, want)
	}
	for i := range want {
		if resent[i] != want[i] {
			t.Fatalf("resent at %v s, want %v", resent, want)
		}
	}
	tm.Arm(t0)
	tm.Stop()
	if r, f := tm.Tick(t0.Add(time.Hour)); r || f {
		t.Fatal("a stopped timer fired")
	}
}
