package ikev2

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/internal/must"
)

func mustSuites(t *testing.T, names ...string) []esp.Suite {
	return must.ParseAll(t, esp.ParseSuite, names...)
}

// ESP suites in IKEv2 numbers, offered with our SPI, chosen by the
// responder in its order and recognised by the initiator.
func TestChildSuites(t *testing.T) {
	for name, want := range map[string][]Transform{
		"aes256-sha256":    {WithKeyBits(TransformEncr, 12, 256), {Type: TransformInteg, ID: 12}, {Type: TransformESN}},
		"aes128-sha1":      {WithKeyBits(TransformEncr, 12, 128), {Type: TransformInteg, ID: 2}, {Type: TransformESN}},
		"aes128gcm16":      {WithKeyBits(TransformEncr, 20, 128), {Type: TransformESN}},
		"chacha20poly1305": {{Type: TransformEncr, ID: 28}, {Type: TransformESN}},
	} {
		if got := childTransforms(mustSuites(t, name)[0]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v", name, got)
		}
	}
	offer := ChildProposals(mustSuites(t, "aes128gcm16", "aes256-sha256"), 0xc0000001)
	if offer[1].Num != 2 || !bytes.Equal(offer[1].SPI, []byte{0xc0, 0, 0, 1}) {
		t.Fatalf("offer %+v", offer)
	}
	got, suite, err := ChooseChild(offer, mustSuites(t, "aes256-sha256", "aes128gcm16"), 0xc0000002)
	if err != nil || suite.String() != "aes256-sha256" || got.Num != 2 || !bytes.Equal(got.SPI, []byte{0xc0, 0, 0, 2}) {
		t.Fatalf("chose %+v %s %v", got, suite, err)
	}
	if s, ok := acceptedChild(got, mustSuites(t, "aes128gcm16", "aes256-sha256"), 0); !ok || s.String() != "aes256-sha256" {
		t.Fatal("the initiator does not recognise the choice")
	}
	if _, _, err := ChooseChild(offer, mustSuites(t, "aes128-sha1"), 1); !errors.Is(err, ErrNoProposalChosen) {
		t.Fatalf("no common suite: %v", err)
	}
}

func sel(t *testing.T, p string) Selector { return PrefixSelector(netip.MustParsePrefix(p)) }

// The responder narrows to what it protects (section 2.9); the initiator
// checks the answer lies within its own.
func TestNarrow(t *testing.T) {
	ours := []Selector{sel(t, "10.1.0.0/16")}
	for _, c := range []struct {
		name   string
		theirs []Selector
		want   []Selector
	}{
		{"equal", []Selector{sel(t, "10.1.0.0/16")}, []Selector{sel(t, "10.1.0.0/16")}},
		{"wider", []Selector{sel(t, "10.0.0.0/8")}, []Selector{sel(t, "10.1.0.0/16")}},
		{"narrower", []Selector{sel(t, "10.1.2.0/24")}, []Selector{sel(t, "10.1.2.0/24")}},
		{"apart", []Selector{sel(t, "10.2.0.0/16")}, nil},
		{"v6", []Selector{sel(t, "2001:db8::/32")}, nil},
		{"one of two", []Selector{sel(t, "10.2.0.0/16"), sel(t, "10.1.5.0/24")}, []Selector{sel(t, "10.1.5.0/24")}},
	} {
		if got := Narrow(c.theirs, ours); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v", c.name, got)
		}
	}
	udp := Selector{Protocol: 17, StartPort: 1701, EndPort: 1701, StartAddr: netip.MustParseAddr("10.1.0.5"), EndAddr: netip.MustParseAddr("10.1.0.5")}
	if got := Narrow([]Selector{sel(t, "10.0.0.0/8")}, []Selector{udp}); len(got) != 1 || got[0] != udp {
		t.Errorf("narrowing to a port: %+v", got)
	}
	if !Within([]Selector{sel(t, "10.1.2.0/24")}, ours) || Within([]Selector{sel(t, "10.0.0.0/8")}, ours) || Within(nil, ours) {
		t.Error("Within")
	}
}

// KEYMAT is cut initiator-to-responder first, encryption before
// integrity (section 2.17).
func TestSplitChildKeys(t *testing.T) {
	s := mustSuites(t, "aes256-sha256")[0]
	km := make([]byte, ChildKeyLen(s))
	for i := range km {
		km[i] = byte(i)
	}
	k, err := SplitChildKeys(km, s)
	if err != nil || len(k.EncIR) != 32 || len(k.IntegIR) != 32 || k.IntegIR[0] != 32 || k.EncRI[0] != 64 || k.IntegRI[31] != 127 {
		t.Fatalf("%+v %v", k, err)
	}
	gcm := mustSuites(t, "aes128gcm16")[0]
	if k, err := SplitChildKeys(make([]byte, ChildKeyLen(gcm)), gcm); err != nil || len(k.EncIR) != 20 || len(k.IntegIR) != 0 {
		t.Fatalf("GCM: %+v %v", k, err)
	}
	if _, err := SplitChildKeys(km[:10], s); !errors.Is(err, ErrKeyLengths) {
		t.Fatalf("short KEYMAT: %v", err)
	}
}
