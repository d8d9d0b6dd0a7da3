package l2tp

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	b := AppendControlHeader(nil, 0x1234, 0x5678, 7, 9, 8)
	b = append(b, 0x80, 8, 0, 0, 0, 0, 0, 6)
	h, p, err := ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Control || !h.HasLength || !h.HasSeq || h.TunnelID != 0x1234 || h.SessionID != 0x5678 || h.Ns != 7 || h.Nr != 9 || len(p) != 8 {
		t.Fatalf("%+v %x", h, p)
	}
	for _, seq := range []bool{false, true} {
		d := AppendDataHeader(nil, 3, 4, seq, 11)
		if len(d) != DataHeaderLen(seq) {
			t.Fatalf("data header %d bytes, said %d", len(d), DataHeaderLen(seq))
		}
		d = append(d, 0xff, 0x03, 0x00, 0x21)
		h, p, err := ParseHeader(d)
		if err != nil || h.Control || h.TunnelID != 3 || h.SessionID != 4 || h.HasSeq != seq || (seq && h.Ns != 11) || !bytes.Equal(p, []byte{0xff, 0x03, 0x00, 0x21}) {
			t.Fatalf("seq %v: %+v %x %v", seq, h, p, err)
		}
	}
	// Offset padding and a Length shorter than the datagram (trailing
	// bytes are not payload).
	d := []byte{0x42, 0x02, 0, 14, 0, 1, 0, 2, 0, 2, 0xaa, 0xbb, 0xff, 0x03, 0x99}
	h, p, err = ParseHeader(d)
	if err != nil || !bytes.Equal(p, []byte{0xff, 0x03}) || h.Length != 14 {
		t.Fatalf("offset: %+v %x %v", h, p, err)
	}
}

func TestHeaderRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"short", []byte{0xc8, 0x02, 0}},
		{"version 3", []byte{0xc8, 0x03, 0, 12, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"L2F", []byte{0x00, 0x01, 0, 1, 0, 1}},
		{"length past end", []byte{0xc8, 0x02, 0, 40, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"length below header", []byte{0xc8, 0x02, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"control without sequence", []byte{0xc0, 0x02, 0, 8, 0, 1, 0, 0}},
		{"control with offset", []byte{0xca, 0x02, 0, 14, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"offset past end", []byte{0x02, 0x02, 0, 1, 0, 1, 0, 9}},
		{"seq cut", []byte{0x08, 0x02, 0, 1, 0, 1, 0}},
	} {
		if _, _, err := ParseHeader(tc.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	d := AppendDataHeader(nil, 3, 4, true, 11)
	d = append(d, make([]byte, 1400)...)
	if n := testing.AllocsPerRun(100, func() { _, _, _ = ParseHeader(d) }); n != 0 {
		t.Fatalf("%v allocations per header", n)
	}
}

func TestMessageRoundTripEveryAVP(t *testing.T) {
	m := &Message{Type: MsgICCN}
	var want []AVP
	for typ, spec := range avpSpecs {
		if typ == AVPMessageType || typ == AVPRandomVector {
			continue
		}
		n := spec.min
		if n == 0 {
			n = 3
		}
		v := bytes.Repeat([]byte{byte(typ)}, n)
		a := AVP{Mandatory: typ%2 == 0, Hidden: !spec.noHide, Type: typ, Value: v}
		m.AVPs = append(m.AVPs, a)
		want = append(want, a)
	}
	secret := []byte("tunnel secret")
	seed := byte(0)
	random := func(b []byte) {
		for i := range b {
			seed += 13
			b[i] = seed
		}
	}
	wire := m.AppendAVPs(nil, secret, random)
	got, err := ParseMessage(wire, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != MsgICCN {
		t.Fatalf("type %v", got.Type)
	}
	var avps []AVP
	for _, a := range got.AVPs {
		if a.Type != AVPRandomVector {
			avps = append(avps, a)
		}
	}
	if len(avps) != len(want) {
		t.Fatalf("%d AVPs back, sent %d", len(avps), len(want))
	}
	for i := range want {
		if avps[i].Type != want[i].Type || avps[i].Mandatory != want[i].Mandatory || avps[i].Hidden != want[i].Hidden || !bytes.Equal(avps[i].Value, want[i].Value) {
			t.Errorf("AVP %v: got %+v, want %+v", want[i].Type, avps[i], want[i])
		}
	}
	// Hidden values are not in the clear on the wire.
	if bytes.Contains(wire, []byte{byte(AVPHostName), byte(AVPHostName), byte(AVPHostName)}) {
		t.Error("a hidden Host Name is readable on the wire")
	}
	if _, err := ParseMessage(wire, []byte("another secret")); err == nil {
		t.Error("a wrong secret revealed the AVPs")
	}
	if _, err := ParseMessage(wire, nil); !errors.Is(err, ErrNoSecret) {
		t.Errorf("no secret: %v", err)
	}
}

// TestHiddenAVPKnownAnswer hides by hand as section 4.3 spells it out
// and compares with appendAVP.
func TestHiddenAVPKnownAnswer(t *testing.T) {
	secret, rv := []byte("s"), []byte("0123456789abcdef")
	value := []byte("a host name longer than sixteen bytes")
	clear := append(binary.BigEndian.AppendUint16(nil, uint16(len(value))), value...)
	var want []byte
	prev := md5.Sum(append(append([]byte{0, byte(AVPHostName)}, secret...), rv...))
	for i := 0; i < len(clear); i += 16 {
		blk := clear[i:min(i+16, len(clear))]
		c := make([]byte, len(blk))
		for j := range blk {
			c[j] = blk[j] ^ prev[j]
		}
		want = append(want, c...)
		prev = md5.Sum(append(append([]byte{}, secret...), c...))
	}
	got := appendAVP(nil, AVP{Hidden: true, Type: AVPHostName, Value: value}, secret, rv, 0)
	if !bytes.Equal(got[6:], want) || got[0]&0x40 == 0 {
		t.Fatalf("hidden AVP\n got %x\nwant %x", got[6:], want)
	}
	v, err := reveal(AVPHostName, got[6:], secret, rv)
	if err != nil || !bytes.Equal(v, value) {
		t.Fatalf("reveal: %q %v", v, err)
	}
}

func TestMessageRejects(t *testing.T) {
	mt := func(typ uint16, m bool) []byte {
		return appendAVP(nil, AVP{Mandatory: m, Type: AVPMessageType, Value: binary.BigEndian.AppendUint16(nil, typ)}, nil, nil, 0)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"stray bytes", append(mt(6, true), 1, 2), ErrMalformed},
		{"AVP length past end", []byte{0x80, 20, 0, 0, 0, 0, 0, 6}, ErrMalformed},
		{"AVP length below 6", []byte{0x80, 4, 0, 0, 0, 0, 0, 6}, ErrMalformed},
		{"first AVP not Message Type", appendAVP(nil, AVP{Type: AVPHostName, Value: []byte("x")}, nil, nil, 0), ErrMalformed},
		{"unknown mandatory type", mt(99, true), ErrUnknownMandatory},
		{"unknown mandatory AVP", append(mt(6, true), appendAVP(nil, AVP{Mandatory: true, Type: 200, Value: []byte{1}}, nil, nil, 0)...), ErrUnknownMandatory},
		{"vendor mandatory AVP", append(mt(6, true), appendAVP(nil, AVP{Mandatory: true, Vendor: 311, Type: 1, Value: []byte{1}}, nil, nil, 0)...), ErrUnknownMandatory},
		{"Assigned Tunnel ID of 3 bytes", append(mt(1, true), appendAVP(nil, AVP{Type: AVPAssignedTunnelID, Value: []byte{1, 2, 3}}, nil, nil, 0)...), ErrMalformed},
		{"hidden Message Type", []byte{0xc0, 8, 0, 0, 0, 0, 0, 6}, ErrMalformed},
		{"hidden without Random Vector", append(mt(1, true), appendAVP(nil, AVP{Hidden: true, Type: AVPHostName, Value: []byte{0, 1, 2}}, []byte("s"), []byte("r"), 0)...), ErrMalformed},
	} {
		if _, err := ParseMessage(tc.b, []byte("s")); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Unknown optional AVPs and types are skipped.
	m, err := ParseMessage(append(mt(99, false), appendAVP(nil, AVP{Type: 200, Value: []byte{1}}, nil, nil, 0)...), nil)
	if err != nil || len(m.AVPs) != 0 {
		t.Fatalf("optional unknowns: %+v %v", m, err)
	}
}

func TestResultAndCauseCodecs(t *testing.T) {
	m := &Message{Type: MsgCDN}
	m.Add(AVPResultCode, true, Result{Result: CDNAdmin, Error: 0, Message: "bye"}.Bytes())
	m.Add(AVPPPPDisconnectCause, false, PPPCause{Code: 16, Proto: 0xc223, Direction: 1, Message: "wrong password"}.Bytes())
	got, err := ParseMessage(m.AppendAVPs(nil, nil, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := got.Result()
	c, _ := got.PPPCause()
	if r != (Result{Result: CDNAdmin, Message: "bye"}) || c != (PPPCause{Code: 16, Proto: 0xc223, Direction: 1, Message: "wrong password"}) {
		t.Fatalf("%+v %+v", r, c)
	}
	if b := (Result{Result: 1}).Bytes(); len(b) != 2 {
		t.Errorf("a bare result is %d bytes", len(b))
	}
}

func TestChallengeResponseIsCHAP(t *testing.T) {
	// Section 4.4.3: the CHAP algorithm with the message type as the ID.
	got := ChallengeResponse(MsgSCCRP, []byte("secret"), []byte("challenge"))
	if want := md5.Sum([]byte("\x02secretchallenge")); got != want {
		t.Fatalf("%x != %x", got, want)
	}
}

func FuzzHeader(f *testing.F) {
	f.Add(AppendControlHeader(nil, 1, 2, 3, 4, 0))
	f.Add(AppendDataHeader(nil, 1, 2, true, 3))
	f.Add([]byte{0x42, 0x02, 0, 14, 0, 1, 0, 2, 0, 2, 0xaa, 0xbb, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, err := ParseHeader(b)
		if err != nil {
			return
		}
		if len(p) > len(b) || (h.HasLength && int(h.Length) > len(b)) {
			t.Fatalf("payload %d of %d", len(p), len(b))
		}
	})
}

func FuzzMessage(f *testing.F) {
	m := &Message{Type: MsgSCCRQ}
	m.Add(AVPHostName, true, []byte("lac"))
	m.AVPs = append(m.AVPs, AVP{Hidden: true, Type: AVPAssignedTunnelID, Value: []byte{0, 9}})
	f.Add(m.AppendAVPs(nil, []byte("s"), func(b []byte) { copy(b, "0123456789abcdef") }))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseMessage(b, []byte("s"))
		if _, known := msgNames[got.Type]; err != nil || !known {
			return // unknown optional types are ignored, not re-encoded
		}
		// What we parse, we encode and parse again to the same values.
		for i := range got.AVPs {
			got.AVPs[i].Hidden = false
		}
		again, err := ParseMessage(got.AppendAVPs(nil, nil, nil), nil)
		if err != nil || again.Type != got.Type && got.Type != MsgZLB {
			t.Fatalf("re-encode: %v, type %v vs %v", err, again.Type, got.Type)
		}
	})
}
