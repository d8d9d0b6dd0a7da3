package esp

import (
	"math/rand/v2"
	"testing"
)

func TestWindowBasics(t *testing.T) {
	w, _ := NewWindow(64)
	accept := func(s uint32) bool {
		seq, ok := w.Check(s, false)
		if ok {
			w.Update(seq)
		}
		return ok
	}
	if accept(0) {
		t.Fatal("sequence 0 accepted")
	}
	for _, s := range []uint32{1, 2, 3, 10, 5} {
		if !accept(s) {
			t.Fatalf("%d rejected", s)
		}
	}
	for _, s := range []uint32{1, 3, 10, 5} {
		if accept(s) {
			t.Fatalf("replay of %d accepted", s)
		}
	}
	if !accept(200) || !accept(137) {
		t.Fatal("in-window packets rejected")
	}
	if accept(136) { // 200 - 136 = 64 = W: just outside
		t.Fatal("packet W behind top accepted")
	}
	if accept(100) {
		t.Fatal("stale packet accepted")
	}
}

// A check alone must not move the window: only authenticated packets do.
func TestCheckDoesNotUpdate(t *testing.T) {
	w, _ := NewWindow(128)
	if _, ok := w.Check(1000, false); !ok {
		t.Fatal("rejected")
	}
	if w.Top() != 0 {
		t.Fatal("Check moved the window")
	}
	if _, ok := w.Check(5, false); !ok {
		t.Fatal("unauthenticated high packet pushed a low one out")
	}
}

// Compare against a model: a set of seen numbers and the top.
func TestWindowAgainstModel(t *testing.T) {
	for _, size := range []int{32, 64, 128, 1000, 4096} {
		w, err := NewWindow(size)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[uint64]bool{}
		var top uint64
		r := rand.New(rand.NewPCG(uint64(size), 7))
		base := uint64(1)
		for i := 0; i < 20000; i++ {
			base += uint64(r.IntN(4))
			seq := base + uint64(r.IntN(2*size)) - uint64(min(int(base)-1, size+size/2))
			if seq == 0 {
				seq = 1
			}
			want := !seen[seq] && (seq > top || top-seq < uint64(size))
			_, got := w.Check(uint32(seq), false)
			if got != want {
				t.Fatalf("W=%d seq %d top %d: got %v want %v", size, seq, top, got, want)
			}
			if got {
				w.Update(seq)
				seen[seq] = true
				top = max(top, seq)
			}
		}
	}
}

func TestESNInference(t *testing.T) {
	w, _ := NewWindow(128)
	// Walk across the 2^32 boundary.
	for _, seq := range []uint64{1, 1 << 31, 1<<32 - 10, 1<<32 - 1, 1 << 32, 1<<32 + 5} {
		got, ok := w.Check(uint32(seq), true)
		if !ok || got != seq {
			t.Fatalf("ESN seq %#x: inferred %#x ok=%v", seq, got, ok)
		}
		w.Update(got)
	}
	// Just behind the boundary (case B): still in the old subspace.
	if got, ok := w.Check(uint32(1<<32-3), true); !ok || got != 1<<32-3 {
		t.Fatalf("late packet from the old subspace: %#x %v", got, ok)
	}
	if _, ok := w.Check(uint32(1<<32-1), true); ok {
		t.Fatal("replay across the boundary accepted")
	}
}

func TestWindowLimits(t *testing.T) {
	for _, bad := range []int{1, 31, 4097} {
		if _, err := NewWindow(bad); err == nil {
			t.Errorf("window %d accepted", bad)
		}
	}
	if w, _ := NewWindow(0); w.Size() != DefaultWindow {
		t.Errorf("default window %d", w.Size())
	}
}
