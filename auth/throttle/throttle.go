// Package throttle slows down password guessing: it counts failed logins
// per user and per client address, makes each one past a free allowance
// wait longer before the next attempt is even checked, and can lock a user
// out for a while. A success clears the user's and the address's record;
// failures are forgotten after a quiet spell. It knows nothing of PPP or
// RADIUS: callers ask Check before they verify a password and report the
// outcome with Failed or Succeeded.
package throttle

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Config sets the limits. Zero values take the defaults below.
type Config struct {
	// UserFree and AddressFree are the failures allowed before delays
	// start: per user, and per client address (several users can sit
	// behind one address, so it gets more).
	UserFree, AddressFree int
	// Delay is the wait after the first failure past the allowance; it
	// doubles with each further failure, up to MaxDelay.
	Delay, MaxDelay time.Duration
	// LockoutAfter failures of one user lock it for Lockout (0: never).
	// Anyone can lock a user out this way, so it is off by default.
	LockoutAfter int
	Lockout      time.Duration
	// Forget is how long a record stays after its last failure.
	Forget time.Duration
	// MaxEntries bounds the users and addresses tracked; past it the
	// oldest records go (a flood of names cannot grow memory).
	MaxEntries int
}

// Defaults.
const (
	DefaultUserFree    = 3
	DefaultAddressFree = 20
	DefaultDelay       = time.Second
	DefaultMaxDelay    = time.Minute
	DefaultLockout     = 15 * time.Minute
	DefaultForget      = 15 * time.Minute
	DefaultMaxEntries  = 65536
)

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.UserFree, DefaultUserFree)
	def(&c.AddressFree, DefaultAddressFree)
	def(&c.MaxEntries, DefaultMaxEntries)
	defDur(&c.Delay, DefaultDelay)
	defDur(&c.MaxDelay, DefaultMaxDelay)
	defDur(&c.Lockout, DefaultLockout)
	defDur(&c.Forget, DefaultForget)
	return c
}

// Kind says what a refusal is about.
type Kind string

const (
	KindUser    Kind = "user"
	KindAddress Kind = "address"
)

// Refusal is why an attempt is not checked at all: the user or the address
// must wait, or the user is locked out.
type Refusal struct {
	Kind   Kind
	Key    string // the user or the address
	Until  time.Time
	Locked bool
	// Failures so far.
	Failures int
}

func (r *Refusal) Error() string {
	what := "waits"
	if r.Locked {
		what = "is locked out"
	}
	return fmt.Sprintf("%s %s %s until %s after %d failed logins", r.Kind, r.Key, what, r.Until.UTC().Format(time.RFC3339), r.Failures)
}

type record struct {
	failures int
	last     time.Time // the last failure
	until    time.Time // no attempt is checked before this
	locked   bool
}

// Limiter holds the records. It is safe for concurrent use.
type Limiter struct {
	cfg   Config
	mu    sync.Mutex
	users map[string]*record
	addrs map[netip.Addr]*record
}

// New makes a limiter.
func New(c Config) *Limiter {
	return &Limiter{cfg: c.withDefaults(), users: map[string]*record{}, addrs: map[netip.Addr]*record{}}
}

// Config returns the limits in force (defaults filled in).
func (l *Limiter) Config() Config { return l.cfg }

// userKey folds a user name the way user databases match it.
func userKey(user string) string { return strings.ToLower(user) }

// Check reports whether an attempt by user from addr may be checked now;
// a Refusal says why not.
func (l *Limiter) Check(user string, addr netip.Addr, now time.Time) *Refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.users[userKey(user)]; r != nil && now.Before(r.until) {
		return &Refusal{Kind: KindUser, Key: user, Until: r.until, Locked: r.locked, Failures: r.failures}
	}
	if r := l.addrs[addr.Unmap()]; r != nil && now.Before(r.until) {
		return &Refusal{Kind: KindAddress, Key: addr.Unmap().String(), Until: r.until, Failures: r.failures}
	}
	return nil
}

// Failed records a failed login; it returns the refusal the next attempt
// will meet, if any.
func (l *Limiter) Failed(user string, addr netip.Addr, now time.Time) *Refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := bump(l, l.users, userKey(user), now)
	a := bump(l, l.addrs, addr.Unmap(), now)
	var out *Refusal
	if d := l.delay(u.failures, l.cfg.UserFree); d > 0 {
		u.until = now.Add(d)
		out = &Refusal{Kind: KindUser, Key: user, Until: u.until, Failures: u.failures}
	}
	if l.cfg.LockoutAfter > 0 && u.failures >= l.cfg.LockoutAfter {
		u.until, u.locked = now.Add(l.cfg.Lockout), true
		out = &Refusal{Kind: KindUser, Key: user, Until: u.until, Locked: true, Failures: u.failures}
	}
	if d := l.delay(a.failures, l.cfg.AddressFree); d > 0 {
		a.until = now.Add(d)
		if out == nil {
			out = &Refusal{Kind: KindAddress, Key: addr.Unmap().String(), Until: a.until, Failures: a.failures}
		}
	}
	return out
}

// Succeeded clears the user's and the address's records.
func (l *Limiter) Succeeded(user string, addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.users, userKey(user))
	delete(l.addrs, addr.Unmap())
}

// Locked counts the users locked out now.
func (l *Limiter) Locked(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.users {
		if r.locked && now.Before(r.until) {
			n++
		}
	}
	return n
}

// delay is the wait after the nth failure with free allowed.
func (l *Limiter) delay(n, free int) time.Duration {
	if n <= free {
		return 0
	}
	d := l.cfg.Delay
	for i := free + 1; i < n && d < l.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.cfg.MaxDelay)
}

// bump counts a failure in m, forgetting a record that went quiet and
// making room when m is full.
func bump[K comparable](l *Limiter, m map[K]*record, k K, now time.Time) *record {
	r := m[k]
	if r != nil && now.Sub(r.last) > l.cfg.Forget && !now.Before(r.until) {
		r = nil // quiet long enough: start afresh
	}
	if r == nil {
		if len(m) >= l.cfg.MaxEntries {
			prune(l, m, now)
		}
		r = &record{}
		m[k] = r
	}
	r.failures++
	r.last = now
	if r.locked && !now.Before(r.until) {
		r.locked = false
	}
	return r
}

// prune drops records past their quiet spell, or if none, the oldest
// half: an attacker cycling names pushes out only stale entries first.
func prune[K comparable](l *Limiter, m map[K]*record, now time.Time) {
	for k, r := range m {
		if now.Sub(r.last) > l.cfg.Forget && !now.Before(r.until) {
			delete(m, k)
		}
	}
	if len(m) < l.cfg.MaxEntries {
		return
	}
	var oldest time.Time
	for _, r := range m {
		if oldest.IsZero() || r.last.Before(oldest) {
			oldest = r.last
		}
	}
	cut := oldest.Add(now.Sub(oldest) / 2)
	for k, r := range m {
		if r.last.Before(cut) || len(m) >= l.cfg.MaxEntries {
			delete(m, k)
		}
	}
}
