package esp

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

func pair(t testing.TB, s Suite, esn bool, limits Limits, events *[]Event) (*Outbound, *Inbound) {
	t.Helper()
	ek, ik := testKeys(s)
	cfg := Config{SPI: 0xc0ffee01, Suite: s, EncKey: ek, IntegKey: ik, ESN: esn, Limits: limits}
	if events != nil {
		cfg.OnEvent = func(e Event) { *events = append(*events, e) }
	}
	o, err := NewOutbound(cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := NewInbound(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return o, in
}

func seal(t testing.TB, o *Outbound, payload []byte, nh uint8) []byte {
	t.Helper()
	buf := make([]byte, o.Headroom()+len(payload), o.Headroom()+len(payload)+o.Tailroom())
	copy(buf[o.Headroom():], payload)
	pkt, err := o.Seal(buf, len(payload), nh)
	if err != nil {
		t.Fatal(err)
	}
	return pkt
}

func TestRoundTripEverySuite(t *testing.T) {
	for _, s := range AllSuites() {
		for _, esn := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/esn=%v", s, esn), func(t *testing.T) {
				o, in := pair(t, s, esn, Limits{}, nil)
				for _, n := range []int{0, 1, 15, 16, 17, 64, 1400} {
					payload := bytes.Repeat([]byte{byte(n)}, n)
					pkt := seal(t, o, payload, 4)
					if (len(pkt)-HeaderLen-o.t.IVLen()-o.t.ICVLen())%o.t.BlockLen() != 0 || len(pkt)%4 != 0 {
						t.Fatalf("n=%d: packet length %d misaligned", n, len(pkt))
					}
					got, nh, err := in.Open(pkt)
					if err != nil || nh != 4 || !bytes.Equal(got, payload) {
						t.Fatalf("n=%d: Open = %x, %d, %v", n, got, nh, err)
					}
				}
				if in.Stats.Packets.Load() != 7 || o.Stats.Packets.Load() != 7 || in.Stats.Bytes.Load() != o.Stats.Bytes.Load() {
					t.Fatalf("counters: out %d/%d in %d/%d", o.Stats.Packets.Load(), o.Stats.Bytes.Load(), in.Stats.Packets.Load(), in.Stats.Bytes.Load())
				}
			})
		}
	}
}

func TestBadPacketsAreDroppedAndCounted(t *testing.T) {
	for _, s := range AllSuites() {
		t.Run(s.String(), func(t *testing.T) {
			o, in := pair(t, s, false, Limits{}, nil)
			good := seal(t, o, []byte("payload for a bad-packet test"), 17)
			clone := func() []byte { return append([]byte(nil), good...) }
			// Flip a byte in every region after the SPI: all must fail the ICV.
			for _, at := range []int{4, HeaderLen, len(good) / 2, len(good) - 1} {
				p := clone()
				p[at] ^= 0x80
				if _, _, err := in.Open(p); !errors.Is(err, ErrAuth) {
					t.Fatalf("byte %d flipped: %v", at, err)
				}
			}
			p := clone()
			p[0] ^= 1
			if _, _, err := in.Open(p); !errors.Is(err, ErrSPIMismatch) {
				t.Fatalf("wrong SPI: %v", err)
			}
			for _, n := range []int{0, 3, HeaderLen, HeaderLen + o.t.IVLen() + o.t.ICVLen()} {
				if _, _, err := in.Open(clone()[:n]); !errors.Is(err, ErrTruncated) {
					t.Fatalf("truncated to %d: %v", n, err)
				}
			}
			if o.t.BlockLen() > 4 {
				if _, _, err := in.Open(clone()[:len(good)-4]); !errors.Is(err, ErrMisaligned) {
					t.Fatalf("misaligned: %v", err)
				}
			}
			if _, _, err := in.Open(clone()); err != nil {
				t.Fatalf("good packet after bad ones: %v", err)
			}
			if _, _, err := in.Open(clone()); !errors.Is(err, ErrReplay) {
				t.Fatalf("replay: %v", err)
			}
			if in.Stats.AuthFailures.Load() != 4 || in.Stats.ReplayDrops.Load() != 1 || in.Stats.Packets.Load() != 1 {
				t.Fatalf("counters: auth %d replay %d packets %d", in.Stats.AuthFailures.Load(), in.Stats.ReplayDrops.Load(), in.Stats.Packets.Load())
			}
		})
	}
}

// A forged packet must not move the replay window: after an ICV failure on
// a high sequence number, low ones still pass.
func TestForgeryDoesNotMoveWindow(t *testing.T) {
	s, _ := ParseSuite("aes128gcm16")
	o, in := pair(t, s, false, Limits{}, nil)
	first := seal(t, o, []byte("one"), 4)
	forged := append([]byte(nil), first...)
	forged[4], forged[5] = 0x7f, 0xff // seq far ahead
	if _, _, err := in.Open(forged); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged: %v", err)
	}
	if _, _, err := in.Open(first); err != nil {
		t.Fatalf("genuine packet after forgery: %v", err)
	}
}

func TestDummyAndBadPadding(t *testing.T) {
	s, _ := ParseSuite("aes256-sha256")
	o, in := pair(t, s, false, Limits{}, nil)
	if _, _, err := in.Open(seal(t, o, []byte("tfc"), NextHeaderNone)); !errors.Is(err, ErrDummy) {
		t.Fatalf("dummy: %v", err)
	}
	// Build a packet whose padding bytes are wrong but whose ICV is good.
	payload := []byte("abc")
	pkt := seal(t, o, payload, 4)
	o2, in2 := pair(t, s, false, Limits{}, nil)
	_ = o2
	h := HeaderLen + o.t.IVLen()
	plain := make([]byte, len(pkt))
	copy(plain, pkt[:h])
	copy(plain[h:], payload)
	end := len(pkt) - o.t.ICVLen()
	for i := h + len(payload); i < end-2; i++ {
		plain[i] = 0xee
	}
	plain[end-2], plain[end-1] = byte(end-2-h-len(payload)), 4
	in2.t.Seal(plain, 1, false)
	if _, _, err := in2.Open(plain); !errors.Is(err, ErrPadding) {
		t.Fatalf("bad padding: %v", err)
	}
}

func TestSequenceExhaustion(t *testing.T) {
	s, _ := ParseSuite("aes128gcm16")
	var events []Event
	o, _ := pair(t, s, false, Limits{}, &events)
	o.seq = 1<<32 - 3
	for i := 0; i < 2; i++ {
		seal(t, o, []byte("x"), 4)
	}
	buf := make([]byte, 64)
	if _, err := o.Seal(buf, 1, 4); !errors.Is(err, ErrSeqExhausted) {
		t.Fatalf("after 2^32-1: %v", err)
	}
	if len(events) != 1 || events[0].Kind != HardExpire || events[0].Reason != "sequence" {
		t.Fatalf("events: %+v", events)
	}
	// With ESN the same point is crossed freely.
	o2, in2 := pair(t, s, true, Limits{}, nil)
	o2.seq = 1<<32 - 2
	in2.window.top = 1<<32 - 3
	for i := 0; i < 4; i++ {
		if _, _, err := in2.Open(seal(t, o2, []byte("esn"), 4)); err != nil {
			t.Fatalf("ESN packet %d across 2^32: %v", i, err)
		}
	}
}

func TestLifetimes(t *testing.T) {
	s, _ := ParseSuite("aes128gcm16")
	var events []Event
	o, _ := pair(t, s, false, Limits{SoftPackets: 3, HardPackets: 5, SoftBytes: 1 << 40}, &events)
	for i := 0; i < 5; i++ {
		seal(t, o, []byte("12345678"), 4)
	}
	if _, err := o.Seal(make([]byte, 64), 1, 4); !errors.Is(err, ErrExpired) {
		t.Fatalf("after hard limit: %v", err)
	}
	if len(events) != 2 || events[0] != (Event{SPI: 0xc0ffee01, Kind: SoftExpire, Reason: "packets"}) || events[1].Kind != HardExpire {
		t.Fatalf("events: %+v", events)
	}
	events = nil
	_, in := pair(t, s, false, Limits{SoftTime: time.Minute, HardTime: time.Hour}, &events)
	in.CheckTime(in.Created().Add(30 * time.Second))
	in.CheckTime(in.Created().Add(2 * time.Minute))
	in.CheckTime(in.Created().Add(3 * time.Minute))
	in.CheckTime(in.Created().Add(2 * time.Hour))
	if len(events) != 2 || events[0].Reason != "time" || events[0].Kind != SoftExpire || events[1].Kind != HardExpire || !in.Expired() {
		t.Fatalf("time events: %+v", events)
	}
}

func TestConfigErrors(t *testing.T) {
	gcm, _ := ParseSuite("aes128gcm16")
	ah, _ := ParseSuite("ah-sha1")
	cases := map[string]Config{
		"short key":   {Suite: gcm, EncKey: make([]byte, 16)},
		"AH suite":    {Suite: ah, IntegKey: make([]byte, 20)},
		"no backend":  {Suite: gcm, EncKey: make([]byte, 20), Backend: "qat"},
		"huge window": {Suite: gcm, EncKey: make([]byte, 20), Window: 5000},
	}
	for name, c := range cases {
		if _, err := NewInbound(c); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestSealAndOpenDoNotAllocate(t *testing.T) {
	for _, s := range AllSuites() {
		o, in := pair(t, s, true, Limits{}, nil)
		payload := make([]byte, 1400)
		buf := make([]byte, o.Headroom()+1400, o.Headroom()+1400+o.Tailroom())
		pkt := make([]byte, 0, cap(buf))
		allocs := testing.AllocsPerRun(200, func() {
			copy(buf[o.Headroom():], payload)
			p, err := o.Seal(buf, 1400, 4)
			if err != nil {
				t.Fatal(err)
			}
			pkt = append(pkt[:0], p...)
			if _, _, err := in.Open(pkt); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per packet", s, allocs)
		}
	}
}

// TestWipeKeys: the key bytes an SA was installed with are zeroed when it
// is wiped, and a packet already on its way is still opened.
func TestWipeKeys(t *testing.T) {
	for _, name := range []string{"aes128gcm16", "aes256-sha256"} {
		s, err := ParseSuite(name)
		if err != nil {
			t.Fatal(err)
		}
		o, in := pair(t, s, false, Limits{}, nil)
		pkt := seal(t, o, []byte("in flight"), 4)
		cfg := in.Config()
		o.WipeKeys()
		in.WipeKeys()
		for _, k := range [][]byte{cfg.EncKey, cfg.IntegKey, o.Config().EncKey, o.Config().IntegKey} {
			if !bytes.Equal(k, make([]byte, len(k))) {
				t.Fatalf("%s: key left after wipe: % x", name, k)
			}
		}
		if p, _, err := in.Open(pkt); err != nil || string(p) != "in flight" {
			t.Fatalf("%s: in-flight packet after wipe: %q %v", name, p, err)
		}
	}
}

// testKeys are fixed keys of the right lengths for a suite.
func testKeys(s Suite) ([]byte, []byte) {
	el, il := KeyLengths(s)
	e, i := make([]byte, el), make([]byte, il)
	for k := range e {
		e[k] = byte(0x11 * (k + 1))
	}
	for k := range i {
		i[k] = byte(0x5a ^ k)
	}
	return e, i
}

// AllSuites lists every ESP suite in the catalogue.
func AllSuites() []Suite {
	var out []Suite
	for i := range encryptions {
		e := &encryptions[i]
		if e.AEAD {
			out = append(out, Suite{Protocol: ProtoESP, Encryption: e})
			continue
		}
		for j := range integrities {
			out = append(out, Suite{Protocol: ProtoESP, Encryption: e, Integrity: &integrities[j]})
		}
	}
	return out
}
