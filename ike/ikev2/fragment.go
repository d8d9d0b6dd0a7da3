package ikev2

import (
	"bytes"
	"fmt"

	"github.com/gatehouse/gatehouse/esp"
)

// IKE fragmentation (RFC 7383) in the engine. Both sides announce it in
// IKE_SA_INIT (unless the tunnel turns it off); then a protected message
// that would make a datagram larger than the tunnel's fragment_size goes
// in SKF fragments, each protected on its own, and fragments we receive
// are checked one by one and joined.

// fragBuffer is a message being reassembled.
type fragBuffer struct {
	id     uint32
	total  uint16
	first  PayloadType // the first inner payload, from fragment 1
	parts  [][]byte
	got    int
	nbytes int
}

// maxFragmented bounds the reassembled message (section 2.5.3 leaves
// it to us), as IKEv1's fragments are.
const maxFragmented = 64 << 10

// fragmentBudget is the largest IKE message that goes whole: the
// tunnel's datagram size less the IP and UDP headers, and the non-ESP
// marker on port 4500. 0: the SA does not fragment.
func (s *ikeSA) fragmentBudget() int {
	if !s.fragments || s.peer.NoFragmentation {
		return 0
	}
	size := s.peer.FragmentSize
	if size == 0 {
		size = 1280
	}
	size -= 28 // IPv4 and UDP headers
	if s.remote.Addr().Is6() {
		size -= 20
	}
	if s.local.Port() == esp.NATTPort {
		size -= 4
	}
	return size
}

// seal protects a message of ours, whole or in fragments.
func (s *ikeSA) seal(h Header, ps []Payload) ([][]byte, error) {
	b, err := s.out.Seal(h, ps, s.rand)
	if err != nil {
		return nil, err
	}
	if budget := s.fragmentBudget(); budget > 0 && len(b) > budget {
		return s.out.SealFragments(h, ps, budget, s.rand)
	}
	return [][]byte{b}, nil
}

func (s *ikeSA) sendAll(bs [][]byte) {
	for _, b := range bs {
		s.send(b)
	}
}

// fragment takes one SKF fragment of the peer's: checked with the keys,
// kept, and once all are in, joined and decoded. Fragments of another
// message than the one under way replace it if newer (section 2.6.1:
// only the latest message ID counts).
func (s *ikeSA) fragment(msg *Message, b []byte) (inner []Payload, complete bool, err error) {
	e := msg.Payloads[len(msg.Payloads)-1].(*Encrypted)
	if s.in == nil {
		return nil, false, fmt.Errorf("%w: a fragment before the keys", ErrMalformed)
	}
	share, err := s.in.OpenFragment(b, &msg.Header, e)
	if err != nil {
		return nil, false, err
	}
	if e.Total > MaxFragments {
		return nil, false, fmt.Errorf("%w: %d fragments", ErrMalformed, e.Total)
	}
	slot := &s.fragsIn[0]
	if msg.Response() {
		slot = &s.fragsIn[1]
	}
	f := *slot
	if f == nil || f.id != msg.MessageID || f.total != e.Total {
		if f != nil && msg.MessageID < f.id {
			return nil, false, fmt.Errorf("%w: a fragment of message %d while %d is being joined", ErrMalformed, msg.MessageID, f.id)
		}
		f = &fragBuffer{id: msg.MessageID, total: e.Total, parts: make([][]byte, e.Total)}
		*slot = f
	}
	if f.parts[e.Number-1] != nil {
		return nil, false, nil // a retransmitted fragment
	}
	if f.nbytes+len(share) > maxFragmented {
		*slot = nil
		return nil, false, fmt.Errorf("%w: fragments past %d bytes", ErrMalformed, maxFragmented)
	}
	f.parts[e.Number-1] = bytes.Clone(share)
	f.got++
	f.nbytes += len(share)
	if e.Number == 1 {
		f.first = e.Inner
	}
	if f.got < int(f.total) {
		return nil, false, nil
	}
	*slot = nil
	inner, err = DecodePayloads(f.first, bytes.Join(f.parts, nil))
	return inner, err == nil, err
}

// withoutNotify drops a notify type from our payloads (fragmentation
// support, when the tunnel turns it off).
func withoutNotify(ps []Payload, kind NotifyType) []Payload {
	out := ps[:0:0]
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.Kind == kind {
			continue
		}
		out = append(out, p)
	}
	return out
}
