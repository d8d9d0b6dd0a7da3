package ikev2

import (
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode: no input makes the decoder panic; every refusal carries
// ErrMalformed, ErrVersion or an *UnsupportedCriticalError; and what it
// accepts encodes to a message that decodes to the same payloads.
func FuzzDecode(f *testing.F) {
	for _, ps := range [][]Payload{everyPayload(), append(everyPayload(), &Encrypted{T: PayloadSK, Inner: PayloadIDi, Data: []byte{1, 2, 3}}),
		{&Encrypted{T: PayloadSKF, Number: 2, Total: 2, Data: []byte{7}}}} {
		b, err := (&Message{Header: Header{SPIi: spi(1), Exchange: ExchangeIKEAuth}, Payloads: ps}).Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	wire, _ := hex.DecodeString(wireIKESAInit)
	f.Add(wire)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			var uc *UnsupportedCriticalError
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.As(err, &uc) {
				t.Fatalf("refusal without the package's errors: %v", err)
			}
			return
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("encoding what was decoded: %v", err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("decoding what was re-encoded: %v", err)
		}
		if !reflect.DeepEqual(m.Payloads, m2.Payloads) {
			t.Fatalf("payloads changed on the way round:\n%#v\n%#v", m.Payloads, m2.Payloads)
		}
	})
}
