// Package must is for tests: it parses lists of names (suites, proposals)
// and fails the test on the first bad one.
package must

import "testing"

// ParseAll parses every name with parse, in order, failing t on the
// first error.
func ParseAll[T any](t testing.TB, parse func(string) (T, error), names ...string) []T {
	t.Helper()
	out := make([]T, 0, len(names))
	for _, n := range names {
		v, err := parse(n)
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		out = append(out, v)
	}
	return out
}
