package esp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Drop reasons; each inbound failure wraps one so the data path can count it.
var (
	ErrTruncated    = errors.New("packet too short")
	ErrMisaligned   = errors.New("ciphertext not a multiple of the block size")
	ErrSPIMismatch  = errors.New("SPI does not belong to this SA")
	ErrReplay       = errors.New("replayed or too old")
	ErrPadding      = errors.New("bad padding")
	ErrDummy        = errors.New("dummy packet (next header 59)")
	ErrExpired      = errors.New("SA expired")
	ErrSeqExhausted = errors.New("sequence numbers exhausted; the SA must be rekeyed")
	ErrTooBig       = errors.New("buffer too small for the ESP packet")
)

// NextHeaderNone marks a dummy packet (RFC 4303 section 2.6).
const NextHeaderNone = 59

// Limits are an SA's lifetimes. Zero means no limit. Soft limits raise an
// event once, so IKE can rekey; hard limits end the SA.
type Limits struct {
	SoftBytes, HardBytes     uint64
	SoftPackets, HardPackets uint64
	SoftTime, HardTime       time.Duration
}

// EventKind says which limit was reached.
type EventKind int

const (
	SoftExpire EventKind = iota + 1
	HardExpire
)

func (k EventKind) String() string {
	if k == HardExpire {
		return "hard"
	}
	return "soft"
}

// Event reports an SA reaching a limit.
type Event struct {
	SPI    uint32
	Kind   EventKind
	Reason string // "bytes", "packets", "time", "sequence"
}

// Config is one SA as installed. It is the boundary between IKE (or manual
// keying) and the data path.
type Config struct {
	SPI      uint32
	Suite    Suite
	EncKey   []byte // with the 4-byte salt appended for AEAD ciphers
	IntegKey []byte
	ESN      bool
	Window   int    // inbound replay window; 0: DefaultWindow
	Backend  string // "": software
	Limits   Limits
	// OnEvent is called, from the packet path, when a limit is reached.
	// It must not block.
	OnEvent func(Event)
}

// Stats are an SA's counters, safe to read while packets flow.
type Stats struct {
	Packets, Bytes atomic.Uint64 // payload bytes, before ESP
	ReplayDrops    atomic.Uint64
	AuthFailures   atomic.Uint64
	OtherDrops     atomic.Uint64 // truncated, misaligned, padding, dummy
}

type sa struct {
	cfg     Config
	t       Transform
	created time.Time
	soft    atomic.Bool
	hard    atomic.Bool
	Stats   Stats
}

func (s *sa) init(cfg Config) error {
	b, err := lookupBackend(cfg.Backend)
	if err != nil {
		return err
	}
	if cfg.Suite.Protocol != ProtoESP || cfg.Suite.Encryption == nil {
		return fmt.Errorf("SA %08x: %s is not an ESP suite", cfg.SPI, cfg.Suite)
	}
	if !b.Supports(cfg.Suite) {
		return fmt.Errorf("SA %08x: backend %s: %w: %s", cfg.SPI, b.Name(), ErrUnsupported, cfg.Suite)
	}
	t, err := b.NewTransform(cfg.Suite, cfg.EncKey, cfg.IntegKey)
	if err != nil {
		return fmt.Errorf("SA %08x: %w", cfg.SPI, err)
	}
	s.cfg, s.t, s.created = cfg, t, time.Now()
	return nil
}

// WipeKeys zeroes the key bytes the SA was installed with, when it leaves
// the SAD. The cipher and MAC state built from them lives inside crypto
// packages Go gives no access to; it goes with the SA's last reference.
// Packets already holding the SA still seal and open with that state, so
// a rekeyed SA drops nothing in flight.
func (s *sa) WipeKeys() {
	clear(s.cfg.EncKey)
	clear(s.cfg.IntegKey)
}

// SPI is the SA's security parameter index.
func (s *sa) SPI() uint32 { return s.cfg.SPI }

// Config returns the SA's configuration (with its keys: never log it).
func (s *sa) Config() Config { return s.cfg }

// Created is when the SA was installed.
func (s *sa) Created() time.Time { return s.created }

// Counters returns the SA's live counters.
func (s *sa) Counters() *Stats { return &s.Stats }

// Expired reports whether a hard limit was reached.
func (s *sa) Expired() bool { return s.hard.Load() }

func (s *sa) emit(kind EventKind, reason string) {
	flag := &s.soft
	if kind == HardExpire {
		flag = &s.hard
	}
	if flag.Swap(true) {
		return
	}
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(Event{SPI: s.cfg.SPI, Kind: kind, Reason: reason})
	}
}

// account counts a packet and checks the byte and packet limits.
func (s *sa) account(n int) {
	p := s.Stats.Packets.Add(1)
	b := s.Stats.Bytes.Add(uint64(n))
	l := &s.cfg.Limits
	switch {
	case l.HardBytes > 0 && b >= l.HardBytes:
		s.emit(HardExpire, "bytes")
	case l.HardPackets > 0 && p >= l.HardPackets:
		s.emit(HardExpire, "packets")
	case l.SoftBytes > 0 && b >= l.SoftBytes && !s.soft.Load():
		s.emit(SoftExpire, "bytes")
	case l.SoftPackets > 0 && p >= l.SoftPackets && !s.soft.Load():
		s.emit(SoftExpire, "packets")
	}
}

// countDrop counts an inbound failure under its reason (nil: nothing).
func (s *sa) countDrop(err error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrReplay):
		s.Stats.ReplayDrops.Add(1)
	case errors.Is(err, ErrAuth):
		s.Stats.AuthFailures.Add(1)
	default:
		s.Stats.OtherDrops.Add(1)
	}
}

// CheckTime applies the time limits; the data path calls it from a timer,
// not per packet.
func (s *sa) CheckTime(now time.Time) {
	age := now.Sub(s.created)
	l := &s.cfg.Limits
	if l.HardTime > 0 && age >= l.HardTime {
		s.emit(HardExpire, "time")
	} else if l.SoftTime > 0 && age >= l.SoftTime {
		s.emit(SoftExpire, "time")
	}
}

// Outbound protects packets. Seal is not safe for concurrent use: the data
// path sends each SA's packets from one worker, which also keeps them in
// sequence order.
type Outbound struct {
	sa
	seq uint64
}

// NewOutbound installs an outbound SA.
func NewOutbound(cfg Config) (*Outbound, error) {
	o := &Outbound{}
	if err := o.init(cfg); err != nil {
		return nil, err
	}
	return o, nil
}

// Headroom is how many bytes Seal writes before the payload.
func (o *Outbound) Headroom() int { return HeaderLen + o.t.IVLen() }

// Tailroom is the most Seal writes after the payload.
func (o *Outbound) Tailroom() int { return o.t.BlockLen() - 1 + 2 + o.t.ICVLen() }

// Seq is the last sequence number sent.
func (o *Outbound) Seq() uint64 { return o.seq }

// soft rekey margin before the 32-bit sequence space runs out.
const seqSoftMargin = 1 << 24

// Seal turns buf[Headroom():Headroom()+n], the payload (an inner IP packet
// in tunnel mode, the transport header and data in transport mode), into an
// ESP packet in place and returns it (RFC 4303 section 2). cap(buf) must
// allow Tailroom() more bytes.
func (o *Outbound) Seal(buf []byte, n int, nextHeader uint8) ([]byte, error) {
	if o.hard.Load() {
		return nil, ErrExpired
	}
	limit := uint64(1<<32 - 1)
	if o.cfg.ESN {
		limit = 1<<64 - 1
	}
	if o.seq >= limit {
		// RFC 4303 section 3.3.3: the counter must not cycle.
		o.emit(HardExpire, "sequence")
		return nil, ErrSeqExhausted
	}
	o.seq++
	if o.seq == limit-seqSoftMargin {
		o.emit(SoftExpire, "sequence")
	}
	h := o.Headroom()
	bl := o.t.BlockLen()
	padded := (n + 2 + bl - 1) / bl * bl
	total := h + padded + o.t.ICVLen()
	if total > cap(buf) {
		return nil, fmt.Errorf("%w: need %d bytes, have %d", ErrTooBig, total, cap(buf))
	}
	pkt := buf[:total]
	binary.BigEndian.PutUint32(pkt[0:], o.cfg.SPI)
	binary.BigEndian.PutUint32(pkt[4:], uint32(o.seq))
	// Padding bytes are 1, 2, 3... (RFC 4303 section 2.4).
	tr := pkt[h+n : h+padded]
	pad := len(tr) - 2
	for i := 0; i < pad; i++ {
		tr[i] = byte(i + 1)
	}
	tr[pad], tr[pad+1] = byte(pad), nextHeader
	o.t.Seal(pkt, o.seq, o.cfg.ESN)
	o.account(n)
	return pkt, nil
}

// Inbound verifies and decrypts packets. Open is not safe for concurrent
// use (the replay window is per SA).
type Inbound struct {
	sa
	window *Window
}

// NewInbound installs an inbound SA.
func NewInbound(cfg Config) (*Inbound, error) {
	w, err := NewWindow(cfg.Window)
	if err != nil {
		return nil, fmt.Errorf("SA %08x: %w", cfg.SPI, err)
	}
	in := &Inbound{window: w}
	if err := in.init(cfg); err != nil {
		return nil, err
	}
	return in, nil
}

// Window is the replay window.
func (i *Inbound) Window() *Window { return i.window }

// PeekSPI reads the SPI of an ESP packet, for the SAD lookup.
func PeekSPI(pkt []byte) (uint32, bool) {
	if len(pkt) < HeaderLen {
		return 0, false
	}
	return binary.BigEndian.Uint32(pkt), true
}

// Open verifies and decrypts an ESP packet in place and returns the payload
// (a subslice of pkt) and its next header. The replay check comes before the
// ICV and the window moves only after it (RFC 4303 section 3.4.3).
func (i *Inbound) Open(pkt []byte) ([]byte, uint8, error) {
	payload, nh, err := i.open(pkt)
	i.countDrop(err)
	return payload, nh, err
}

func (i *Inbound) open(pkt []byte) ([]byte, uint8, error) {
	if i.hard.Load() {
		return nil, 0, ErrExpired
	}
	iv, icv, bl := i.t.IVLen(), i.t.ICVLen(), i.t.BlockLen()
	body := len(pkt) - HeaderLen - iv - icv
	if body < 2 || body < bl {
		return nil, 0, ErrTruncated
	}
	if body%bl != 0 {
		return nil, 0, ErrMisaligned
	}
	if binary.BigEndian.Uint32(pkt) != i.cfg.SPI {
		return nil, 0, ErrSPIMismatch
	}
	seq, ok := i.window.Check(binary.BigEndian.Uint32(pkt[4:]), i.cfg.ESN)
	if !ok {
		return nil, 0, ErrReplay
	}
	if err := i.t.Open(pkt, seq, i.cfg.ESN); err != nil {
		return nil, 0, err
	}
	i.window.Update(seq)
	end := len(pkt) - icv
	nh, pad := pkt[end-1], int(pkt[end-2])
	start := HeaderLen + iv
	if pad > end-2-start {
		return nil, 0, ErrPadding
	}
	for k := 0; k < pad; k++ {
		if pkt[end-2-pad+k] != byte(k+1) {
			return nil, 0, ErrPadding
		}
	}
	if nh == NextHeaderNone {
		return nil, 0, ErrDummy
	}
	payload := pkt[start : end-2-pad]
	i.account(len(payload))
	return payload, nh, nil
}
