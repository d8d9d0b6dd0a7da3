package throttle

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var (
	t0    = time.Unix(1_800_000_000, 0)
	addrA = netip.MustParseAddr("198.51.100.7")
	addrB = netip.MustParseAddr("198.51.100.8")
)

// TestDelaysGrow: three failures are free; then each failure makes the
// next attempt wait 1 s, 2 s, 4 s... up to the cap; attempts during the
// wait are refused unchecked; a success clears it.
func TestDelaysGrow(t *testing.T) {
	l := New(Config{MaxDelay: 8 * time.Second})
	now := t0
	for i := 1; i <= 3; i++ {
		if r := l.Check("alice", addrA, now); r != nil {
			t.Fatalf("attempt %d refused: %v", i, r)
		}
		if r := l.Failed("alice", addrA, now); r != nil {
			t.Fatalf("failure %d within the allowance delays: %v", i, r)
		}
	}
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		r := l.Failed("alice", addrA, now)
		if r == nil || r.Kind != KindUser || r.Until.Sub(now) != want || r.Locked {
			t.Fatalf("failure %d: %+v, want a %s wait", 4+i, r, want)
		}
		if c := l.Check("ALICE", addrB, now.Add(want-time.Millisecond)); c == nil || c.Kind != KindUser {
			t.Fatalf("an attempt during the wait (another case, another address) was let through: %v", c)
		}
		now = now.Add(want)
		if c := l.Check("alice", addrB, now); c != nil {
			t.Fatalf("after the wait: %v", c)
		}
	}
	l.Succeeded("alice", addrA)
	if r := l.Failed("alice", addrA, now); r != nil {
		t.Fatalf("a success should clear the record: %v", r)
	}
}

// TestAddressCounts: one address trying many users is slowed once it
// passes its own allowance, even though no user did.
func TestAddressCounts(t *testing.T) {
	l := New(Config{AddressFree: 5})
	var r *Refusal
	for i := 0; i < 6; i++ {
		r = l.Failed(fmt.Sprintf("user%d", i), addrA, t0)
	}
	if r == nil || r.Kind != KindAddress || r.Key != addrA.String() {
		t.Fatalf("the sixth failure from one address: %+v", r)
	}
	if c := l.Check("someone-new", addrA, t0); c == nil || c.Kind != KindAddress {
		t.Fatalf("a new user from the address: %v", c)
	}
	if c := l.Check("someone-new", addrB, t0); c != nil {
		t.Fatalf("another address: %v", c)
	}
}

// TestLockout: with LockoutAfter set, the user is locked for Lockout; the
// lock ends by itself; without it, nobody is locked.
func TestLockout(t *testing.T) {
	l := New(Config{LockoutAfter: 5, Lockout: 10 * time.Minute})
	var r *Refusal
	for i := 0; i < 5; i++ {
		r = l.Failed("bob", addrA, t0)
	}
	if r == nil || !r.Locked || r.Until != t0.Add(10*time.Minute) || l.Locked(t0) != 1 {
		t.Fatalf("after five failures: %+v, %d locked", r, l.Locked(t0))
	}
	if c := l.Check("bob", addrB, t0.Add(9*time.Minute)); c == nil || !c.Locked {
		t.Fatalf("during the lockout: %v", c)
	}
	if c := l.Check("bob", addrB, t0.Add(10*time.Minute)); c != nil || l.Locked(t0.Add(10*time.Minute)) != 0 {
		t.Fatalf("after it: %v", c)
	}
	off := New(Config{})
	for i := 0; i < 50; i++ {
		if r := off.Failed("carol", netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), t0.Add(time.Duration(i)*time.Hour)); r != nil && r.Locked {
			t.Fatal("locked out with lockout off")
		}
	}
}

// TestForgets: failures spread beyond Forget never add up to a delay.
func TestForgets(t *testing.T) {
	l := New(Config{Forget: time.Minute})
	for i := 0; i < 20; i++ {
		if r := l.Failed("dave", addrA, t0.Add(time.Duration(i)*2*time.Minute)); r != nil {
			t.Fatalf("failure %d, two minutes after the last: %v", i, r)
		}
	}
}

// TestBounded: a flood of names keeps the tables at MaxEntries.
func TestBounded(t *testing.T) {
	l := New(Config{MaxEntries: 100})
	for i := 0; i < 10_000; i++ {
		l.Failed(fmt.Sprintf("u%d", i), netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(l.users) > 100 || len(l.addrs) > 100 {
		t.Fatalf("%d users and %d addresses tracked, bound 100", len(l.users), len(l.addrs))
	}
}
