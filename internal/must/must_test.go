package must

import (
	"strconv"
	"testing"
)

func TestParseAll(t *testing.T) {
	if got := ParseAll(t, strconv.Atoi, "1", "22"); len(got) != 2 || got[1] != 22 {
		t.Fatalf("%v", got)
	}
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		ParseAll(ft, strconv.Atoi, "x")
	}()
	if !ft.failed {
		t.Fatal("a bad name did not fail the test")
	}
}

// fakeT records Fatalf and stops the caller as testing would.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
