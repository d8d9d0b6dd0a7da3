package wire

import (
	"bytes"
	"errors"
	"testing"
)

var (
	errMalformed = errors.New("malformed")
	errVersion   = errors.New("version")
)

type hdr = Header[[8]byte, uint8, uint8]

func TestHeader(t *testing.T) {
	h := hdr{SPIi: [8]byte{1}, SPIr: [8]byte{2}, NextPayload: 33, Version: 0x20, Exchange: 34, Flags: 0x08, MessageID: 7}
	b, err := Finish(h.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseHeader[[8]byte, uint8, uint8](b, 2, errMalformed, errVersion)
	h.Length = HeaderLen
	if err != nil || got != h {
		t.Fatalf("%+v %v, want %+v", got, err, h)
	}
	for _, c := range []struct {
		name  string
		b     []byte
		major uint8
		want  error
	}{
		{"short", b[:27], 2, errMalformed},
		{"other major version", b, 1, errVersion},
		{"length past the datagram", append(bytes.Clone(b[:27]), 29), 2, errMalformed},
		{"zero SPIi", append(make([]byte, 8), b[8:]...), 2, errMalformed},
	} {
		if _, err := ParseHeader[[8]byte, uint8, uint8](c.b, c.major, errMalformed, errVersion); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := Finish(make([]byte, MaxMessageLen+1)); err == nil {
		t.Error("a message over one datagram was finished")
	}
}

func TestPayloads(t *testing.T) {
	b := AppendPayload(nil, 40, func(b []byte) []byte { return append(b, 1, 2, 3) })
	b = AppendPayload(b, 0, func(b []byte) []byte { return b })
	body, rest, next, flags, err := SplitPayload(b, errMalformed)
	if err != nil || !bytes.Equal(body, []byte{1, 2, 3}) || next != 40 || flags != 0 || len(rest) != 4 {
		t.Fatalf("first: % x % x %d %d %v", body, rest, next, flags, err)
	}
	for _, bad := range [][]byte{b[:3], {0, 0, 0, 3}, {0, 0, 0, 9, 1}} {
		if _, _, _, _, err := SplitPayload(bad, errMalformed); !errors.Is(err, errMalformed) {
			t.Errorf("% x: %v", bad, err)
		}
	}
}

type typed uint8

func (t typed) Type() uint8 { return uint8(t) }

func TestFind(t *testing.T) {
	ps := []typed{3, 5, 5}
	if Find(ps, 5) != 5 || Find(ps, 9) != 0 {
		t.Fatal("Find")
	}
}
