package netns

import (
	"errors"
	"strings"
	"testing"
)

// ForTest makes a lab torn down when the test ends. Without root it skips the
// test, loudly: these tests create namespaces and must run as root in CI.
func ForTest(t testing.TB) *Lab {
	t.Helper()
	l, err := New(t.Logf)
	if errors.Is(err, ErrNotRoot) {
		t.Skip("SKIPPED: needs root to create network namespaces (CI runs make test as root)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// MustNS is NS that fails the test on error.
func (l *Lab) MustNS(t testing.TB, name string) *NS {
	t.Helper()
	ns, err := l.NS(name)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// MustLink is Link that fails the test on error.
func (l *Lab) MustLink(t testing.TB, a *NS, aAddr string, b *NS, bAddr string) (string, string) {
	t.Helper()
	ia, ib, err := l.Link(a, aAddr, b, bAddr)
	if err != nil {
		t.Fatal(err)
	}
	return ia, ib
}

// Flat joins s's words with single spaces, so a test can look for a
// phrase in column-aligned output.
func Flat(s string) string { return strings.Join(strings.Fields(s), " ") }

// Tail is the last n bytes of s, for logging long tool output.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
