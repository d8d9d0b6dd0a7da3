// Package retry is the retransmission schedule both IKE versions use:
// the requester alone retransmits (RFC 7296 section 2.1, RFC 2408
// section 5), 1 s, then doubling, five times; the exchange fails when
// the wait after the fifth runs out, about a minute in all (strongSwan
// waits some 165 s; a gateway that notices a dead peer sooner recovers
// sooner).
package retry

import "time"

const (
	Base  = time.Second
	Tries = 5
)

// Timer is one request's retransmissions.
type Timer struct {
	tries int
	next  time.Time
	armed bool
}

// Arm starts the schedule for a request sent now.
func (t *Timer) Arm(now time.Time) { *t = Timer{next: now.Add(Base), armed: true} }

// Stop ends it: the answer came.
func (t *Timer) Stop() { t.armed = false }

// Armed reports whether a request is waiting for its answer.
func (t *Timer) Armed() bool { return t.armed }

// Tries is how many times the request was sent again.
func (t *Timer) Tries() int { return t.tries }

// Tick says what is due now: send the request again, or give up (the
// timer stops).
func (t *Timer) Tick(now time.Time) (resend, failed bool) {
	if !t.armed || now.Before(t.next) {
		return false, false
	}
	if t.tries >= Tries {
		t.armed = false
		return false, true
	}
	t.tries++
	t.next = now.Add(Base << t.tries)
	return true, false
}
