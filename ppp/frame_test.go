package ppp

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseFrame(t *testing.T) {
	cases := []struct {
		in    []byte
		proto uint16
		rest  []byte
	}{
		{[]byte{0xff, 0x03, 0xc0, 0x21, 1, 2}, ProtoLCP, []byte{1, 2}},
		{[]byte{0xc0, 0x21, 1}, ProtoLCP, []byte{1}},              // address/control compressed
		{[]byte{0xff, 0x03, 0x21, 0x45}, ProtoIPv4, []byte{0x45}}, // protocol compressed
		{[]byte{0x21, 0x45}, ProtoIPv4, []byte{0x45}},             // both
	}
	for _, c := range cases {
		p, rest, err := ParseFrame(c.in)
		if err != nil || p != c.proto || !bytes.Equal(rest, c.rest) {
			t.Errorf("% x: %#x % x %v", c.in, p, rest, err)
		}
	}
	for _, bad := range [][]byte{nil, {0xff, 0x03}, {0xc0}, {0xc0, 0x20}} {
		if _, _, err := ParseFrame(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("% x accepted", bad)
		}
	}
	if got := AppendFrameHeader(nil, ProtoIPv4, true, true); !bytes.Equal(got, []byte{0x21}) {
		t.Errorf("compressed header % x", got)
	}
	if got := AppendFrameHeader(nil, ProtoLCP, false, true); !bytes.Equal(got, []byte{0xff, 0x03, 0xc0, 0x21}) {
		t.Errorf("LCP header % x (LCP is never protocol-compressed)", got)
	}
}

func TestPacketsAndOptions(t *testing.T) {
	opts := []Option{{Type: 1, Data: []byte{0x05, 0x78}}, {Type: 5, Data: []byte{1, 2, 3, 4}}, {Type: 3, Data: []byte{0xc2, 0x23, 0x81}}}
	p := Packet{Code: CodeConfigureRequest, ID: 7, Data: AppendOptions(nil, opts)}
	wire := append(p.Append(nil), 0, 0, 0) // padding after Length is ignored
	got, err := ParsePacket(wire)
	if err != nil || got.Code != p.Code || got.ID != 7 || !bytes.Equal(got.Data, p.Data) {
		t.Fatalf("packet: %+v %v", got, err)
	}
	back, err := ParseOptions(got.Data)
	if err != nil || len(back) != 3 || back[2].Type != 3 || !bytes.Equal(back[2].Data, []byte{0xc2, 0x23, 0x81}) {
		t.Fatalf("options: %+v %v", back, err)
	}
	for _, bad := range [][]byte{{1, 1, 0, 3}, {1, 1, 0, 9, 0}, {1}} {
		if _, err := ParsePacket(bad); err == nil {
			t.Errorf("packet % x accepted", bad)
		}
	}
	for _, bad := range [][]byte{{1, 1}, {1, 5, 0}, {1}} {
		if _, err := ParseOptions(bad); err == nil {
			t.Errorf("options % x accepted", bad)
		}
	}
}

func TestCHAPAndPAP(t *testing.T) {
	v, name, err := ParseCHAPValue(AppendCHAPValue(nil, []byte{1, 2, 3}, "gatehouse"))
	if err != nil || !bytes.Equal(v, []byte{1, 2, 3}) || name != "gatehouse" {
		t.Fatalf("CHAP: % x %q %v", v, name, err)
	}
	if _, _, err := ParseCHAPValue([]byte{5, 1}); err == nil {
		t.Fatal("short CHAP value accepted")
	}
	u, pw, err := ParsePAPRequest(AppendPAPRequest(nil, "alice", "s3cret"))
	if err != nil || u != "alice" || pw != "s3cret" {
		t.Fatalf("PAP: %q %q %v", u, pw, err)
	}
	if _, _, err := ParsePAPRequest([]byte{5, 'a'}); err == nil {
		t.Fatal("short PAP request accepted")
	}
	if ParsePAPMessage(nil) != "" || ParsePAPMessage([]byte{2, 'o', 'k'}) != "ok" {
		t.Fatal("PAP message")
	}
}

func FuzzFrame(f *testing.F) {
	f.Add([]byte{0xff, 0x03, 0xc0, 0x21, 1, 7, 0, 10, 1, 4, 5, 0x78, 5, 2})
	f.Add([]byte{0xc2, 0x23, 2, 1, 0, 12, 3, 1, 2, 3, 'b', 'o', 'b', 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		proto, payload, err := ParseFrame(b)
		if err != nil {
			return
		}
		p, err := ParsePacket(payload)
		if err != nil {
			return
		}
		switch proto {
		case ProtoLCP, ProtoIPCP:
			if opts, err := ParseOptions(p.Data); err == nil && !bytes.Equal(AppendOptions(nil, opts), p.Data) {
				t.Fatal("options do not round-trip")
			}
		case ProtoCHAP:
			ParseCHAPValue(p.Data)
			ParseMSCHAPv2Response(p.Data)
		case ProtoPAP:
			ParsePAPRequest(p.Data)
			ParsePAPMessage(p.Data)
		}
		if q, err := ParsePacket(p.Append(nil)); err != nil || q.Code != p.Code || !bytes.Equal(q.Data, p.Data) {
			t.Fatal("packet does not round-trip")
		}
	})
}
