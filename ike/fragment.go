package ike

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"
)

// IKEv1 fragmentation as Cisco, Microsoft, racoon and strongSwan do it
// (no RFC): a message too large for one datagram, encrypted as usual, is
// cut into pieces; each goes in its own ISAKMP message (same cookies,
// message ID 0, the phase 1 exchange type, not encrypted) holding one
// fragment payload (type 132):
//
//	Fragment ID (2) | Fragment Number (1) | Flags (1) | Fragment Data
//
// numbered from 1, the last flagged. The receiver joins the data and
// handles the result as the message it is. Announced by the FRAGMENTATION
// vendor ID, whose first 16 bytes are MD5("FRAGMENTATION").
var vidFragmentation = append(md5Sum("FRAGMENTATION"), 0x80, 0, 0, 0)

func fragmentVendor(v []byte) bool {
	return len(v) >= 16 && bytes.Equal(v[:16], vidFragmentation[:16])
}

const fragLast = 0x01

// Fragment is one fragment payload.
type Fragment struct {
	ID     uint16
	Number uint8
	Last   bool
	Data   []byte
}

func (f *Fragment) Type() PayloadType { return PayloadFragment }

func (f *Fragment) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, f.ID)
	flags := byte(0)
	if f.Last {
		flags = fragLast
	}
	b = append(b, f.Number, flags)
	return append(b, f.Data...)
}

func (f *Fragment) verify() error {
	if f.Number == 0 || len(f.Data) == 0 {
		return errors.New("fragment number 0 or no data")
	}
	return nil
}

// ParseFragment reads a fragment payload body.
func ParseFragment(b []byte) (*Fragment, error) {
	if len(b) < 5 {
		return nil, fmt.Errorf("%w: fragment payload of %d bytes", ErrMalformed, len(b))
	}
	f := &Fragment{ID: binary.BigEndian.Uint16(b), Number: b[2], Last: b[3]&fragLast != 0, Data: b[4:]}
	if f.Number == 0 {
		return nil, fmt.Errorf("%w: fragment number 0", ErrMalformed)
	}
	return f, nil
}

// Reassembly bounds: fragments are unauthenticated, so what they may hold
// is small and short-lived, and one source gets a share of it (a peer
// has one message in pieces at a time, two across a retransmission).
const (
	maxFragments          = 16
	maxFragBytes          = 64 << 10
	maxFragBuffers        = 64
	maxFragBuffersPerPeer = 4
	fragTimeout           = 30 * time.Second
	defaultFragSize       = 1280 // IP datagram, as strongSwan's fragment_size
)

type fragKey struct {
	icookie, rcookie Cookie
	id               uint16
	remote           netip.AddrPort
}

type fragBuffer struct {
	parts map[uint8][]byte
	last  uint8
	size  int
	first time.Time
}

// reassemble takes a fragment message; when it completes one, it returns
// the whole message. Called with m.mu held.
func (m *Manager) reassemble(h Header, b []byte, remote netip.AddrPort) []byte {
	ps, err := DecodePayloads(h.NextPayload, b[HeaderLen:], false)
	if err != nil || len(ps) != 1 {
		m.drop(DropFragments, nil, h, fmt.Errorf("not one fragment payload: %v", err))
		return nil
	}
	f := ps[0].(*Fragment)
	now := m.now()
	for k, fb := range m.frags {
		if now.Sub(fb.first) > fragTimeout {
			delete(m.frags, k)
		}
	}
	k := fragKey{h.SPIi, h.SPIr, f.ID, remote}
	fb := m.frags[k]
	if fb == nil {
		mine := 0
		for o := range m.frags {
			if o.remote.Addr() == remote.Addr() {
				mine++
			}
		}
		if len(m.frags) >= maxFragBuffers || mine >= maxFragBuffersPerPeer {
			m.drop(DropFragments, nil, h, fmt.Errorf("too many messages being reassembled (%d in all, %d from %s)", len(m.frags), mine, remote.Addr()))
			return nil
		}
		fb = &fragBuffer{parts: map[uint8][]byte{}, first: now}
		m.frags[k] = fb
	}
	if f.Number > maxFragments || fb.size+len(f.Data) > maxFragBytes || (fb.last != 0 && f.Number > fb.last) {
		delete(m.frags, k)
		m.drop(DropFragments, nil, h, fmt.Errorf("fragment %d past the reassembly limits", f.Number))
		return nil
	}
	if _, dup := fb.parts[f.Number]; !dup {
		fb.parts[f.Number] = bytes.Clone(f.Data)
		fb.size += len(f.Data)
	}
	if f.Last {
		fb.last = f.Number
	}
	if fb.last == 0 || len(fb.parts) < int(fb.last) {
		return nil
	}
	delete(m.frags, k)
	whole := make([]byte, 0, fb.size)
	for i := uint8(1); i <= fb.last; i++ {
		whole = append(whole, fb.parts[i]...)
	}
	m.log.Debug("IKE message reassembled from fragments", zap.Stringer("from", remote), zap.Uint8("fragments", fb.last), zap.Int("bytes", len(whole)))
	return whole
}

// transmit sends an encoded message, in fragments when the peer takes
// them and it is larger than the fragment size.
func (m *Manager) transmit(sa *IKESA, b []byte) error {
	size := sa.Peer.FragmentSize
	if size <= 0 {
		size = m.fragSize
	}
	if size <= 0 {
		size = defaultFragSize
	}
	// The fragment data that fits one datagram: less IP, UDP, the
	// non-ESP marker on 4500, the ISAKMP header and the payload headers.
	room := size - 20 - 8 - 4 - HeaderLen - GenericHeaderLen - 4
	if sa.Peer.NoFragmentation || !sa.vendor.flags.Has(FlagFragmentation) || len(b) <= size-20-8-4 || room <= 0 {
		return m.host.Send(b, sa.Local, sa.Remote)
	}
	h, err := ParseHeader(b)
	if err != nil {
		return err
	}
	count := (len(b) + room - 1) / room
	if count > maxFragments {
		return m.host.Send(b, sa.Local, sa.Remote)
	}
	xt := ExchangeMain
	if sa.Peer.Aggressive {
		xt = ExchangeAggressive
	}
	for n := 1; n <= count; n++ {
		part := b[(n-1)*room : min(n*room, len(b))]
		fm := &Message{Header: Header{SPIi: h.SPIi, SPIr: h.SPIr, Version: Version, Exchange: xt},
			Payloads: []Payload{&Fragment{ID: 1, Number: uint8(n), Last: n == count, Data: part}}}
		fb, err := fm.Encode()
		if err != nil {
			return err
		}
		if err := m.host.Send(fb, sa.Local, sa.Remote); err != nil {
			return err
		}
	}
	m.log.Debug("IKE message sent in fragments", zap.String("peer", sa.Peer.Name), zap.Int("fragments", count), zap.Int("bytes", len(b)))
	return nil
}

// fragVendor is the phase 1 task that announces fragmentation and notes
// whether the peer takes it.
func fragVendor() *vendorCapability {
	return &vendorCapability{vid: vidFragmentation, on: func(p *PeerConfig) bool { return !p.NoFragmentation }, flag: FlagFragmentation}
}
