package esp

import "fmt"

// Replay window limits. RFC 4303 section 3.4.3 asks for at least 32 and a
// default of 64; we default to 128 because reordering across our parallel
// workers and multi-queue NICs makes 64 too tight.
const (
	DefaultWindow = 128
	MaxWindow     = 4096
	MinWindow     = 32
)

// Window is the anti-replay window of one inbound SA (RFC 4303 section
// 3.4.3, extended sequence numbers per Appendix A). The bitmap is the ring
// of 64-bit blocks of RFC 6479: advancing clears whole blocks, never shifts
// bits. Check runs before the ICV is verified and Update only after, so a
// forged packet cannot move the window. Not safe for concurrent use.
type Window struct {
	size   uint64   // W, in packets
	top    uint64   // highest authenticated sequence number; 0: none yet
	blocks []uint64 // W/64 + 1 blocks, so the block holding top is never reused too early
}

// NewWindow makes a window of size packets (0 means DefaultWindow).
func NewWindow(size int) (*Window, error) {
	if size == 0 {
		size = DefaultWindow
	}
	if size < MinWindow || size > MaxWindow {
		return nil, fmt.Errorf("replay window %d out of range %d..%d", size, MinWindow, MaxWindow)
	}
	return &Window{size: uint64(size), blocks: make([]uint64, (size+63)/64+1)}, nil
}

// Size is W.
func (w *Window) Size() int { return int(w.size) }

// Top is the highest sequence number accepted so far.
func (w *Window) Top() uint64 { return w.top }

// Check reports whether a packet with the low 32 bits seqLow may be new,
// and its full sequence number. With esn, the high half is inferred as in
// RFC 4303 Appendix A.2.2.
func (w *Window) Check(seqLow uint32, esn bool) (uint64, bool) {
	seq := uint64(seqLow)
	if esn {
		seq = w.inferESN(seqLow)
	}
	if seq == 0 {
		return 0, false // never sent: the first packet is 1
	}
	if seq > w.top {
		return seq, true
	}
	if w.top-seq >= w.size {
		return seq, false
	}
	n := uint64(len(w.blocks))
	return seq, w.blocks[(seq>>6)%n]&(1<<(seq&63)) == 0
}

func (w *Window) inferESN(seqLow uint32) uint64 {
	tl, th := uint32(w.top), uint32(w.top>>32)
	W := uint32(w.size)
	var sh uint32
	if tl >= W-1 {
		// Case A: the window lies within one subspace.
		sh = th
		if seqLow < tl-W+1 {
			sh = th + 1
		}
	} else {
		// Case B: the window spans two subspaces.
		sh = th
		if seqLow >= tl-W+1 { // wraps: tl-W+1 is "negative"
			if th == 0 {
				return uint64(seqLow) // nothing below 0: treat as the current space
			}
			sh = th - 1
		}
	}
	return uint64(sh)<<32 | uint64(seqLow)
}

// Update records an authenticated sequence number.
func (w *Window) Update(seq uint64) {
	n := uint64(len(w.blocks))
	if seq > w.top {
		cur, next := w.top>>6, seq>>6
		diff := next - cur
		if diff > n {
			diff = n
		}
		for i := uint64(1); i <= diff; i++ {
			w.blocks[(cur+i)%n] = 0
		}
		w.top = seq
	}
	w.blocks[(seq>>6)%n] |= 1 << (seq & 63)
}
