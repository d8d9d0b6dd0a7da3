package eap

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/ppp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCodec(t *testing.T) {
	for _, p := range []*Packet{{Code: CodeRequest, ID: 7, Type: TypeIdentity}, {Code: CodeResponse, ID: 7, Type: TypeIdentity, Data: []byte("alice")},
		{Code: CodeSuccess, ID: 9}, {Code: CodeFailure, ID: 1}} {
		got, err := Decode(append(p.Encode(), 0, 0)) // padding past Length is ignored
		if err != nil || got.Code != p.Code || got.ID != p.ID || got.Type != p.Type || !bytes.Equal(got.Data, p.Data) {
			t.Errorf("%v: decoded %v, %v", p, got, err)
		}
	}
	for _, b := range []string{"", "010100", "01010004", "03010005ff", "05010004", "0101ffff01"} {
		if _, err := Decode(unhex(t, b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

// fixed is a reader that gives these bytes, then zeros.
type fixed struct{ b []byte }

func (f *fixed) Read(p []byte) (int, error) {
	n := copy(p, f.b)
	f.b = f.b[n:]
	clear(p[n:])
	return len(p), nil
}

// users is a users file of one: User / clientPass (RFC 2759 section 9.2).
func users(user string) ([16]byte, bool) {
	return ppp.NTPasswordHash("clientPass"), user == "User"
}

// eapServer and eapPeer are any method's two sides.
type eapServer interface {
	Start() ([]byte, error)
	Receive([]byte) ([]byte, error)
}

type eapPeer interface {
	Receive([]byte) ([]byte, error)
	Done() bool
}

// run moves packets between a server and a peer until the peer is done
// or refuses a packet (its error is returned), and counts the rounds.
func run(t *testing.T, s eapServer, c eapPeer) (int, error) {
	t.Helper()
	req, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	for n := range 40 {
		resp, err := c.Receive(req)
		if err != nil || c.Done() {
			return n, err
		}
		if req, err = s.Receive(resp); err != nil {
			t.Fatalf("server: %v", err)
		}
	}
	t.Fatal("the exchange never ended")
	return 0, nil
}

// With RFC 2759's and RFC 3079's example (User, clientPass, their
// challenges): the server's Success carries RFC 2759's authenticator
// response, and the MSK holds RFC 3079's master keys, the server's send
// key (SendStartKey128) second.
func TestMSCHAPv2Vectors(t *testing.T) {
	authChallenge := unhex(t, "5B5D7C7D7B3F2F3E3C2C602132262628")
	peerChallenge := unhex(t, "21402324255E262A28295F2B3A337C7E")
	var succ []byte
	s := NewServer("gw", NTHashVerifier(users), &fixed{append([]byte{1}, authChallenge...)})
	c := NewPeer("User", "clientPass", &fixed{peerChallenge})
	req, _ := s.Start()
	for range 10 {
		if p, _ := Decode(req); p.Type == TypeMSCHAPv2 && p.Data[0] == opSuccess {
			succ = p.Data[4:]
		}
		resp, err := c.Receive(req)
		if err != nil || c.Done() {
			break
		}
		req, _ = s.Receive(resp)
	}
	if !s.Succeeded() || c.Err() != nil || !c.Done() || s.User() != "User" || s.Identity() != "User" {
		t.Fatalf("server %v (%v), peer %v", s.Succeeded(), s.Err(), c.Err())
	}
	if !strings.HasPrefix(string(succ), "S=407A5589115FD0D6209F510FE9C04566932CDA56 ") {
		t.Errorf("Success message %q", succ)
	}
	if !bytes.Equal(s.MSK()[16:32], unhex(t, "8B7CDC149B993A1BA118CB153F56DCCB")) || len(s.MSK()) != 64 ||
		!bytes.Equal(s.MSK(), c.MSK()) || !bytes.Equal(s.MSK()[32:], make([]byte, 32)) {
		t.Errorf("MSK %x, peer's %x", s.MSK(), c.MSK())
	}
}

func TestMSCHAPv2WrongPassword(t *testing.T) {
	s := NewServer("gw", NTHashVerifier(users), rand.Reader)
	c := NewPeer("User", "not the password", rand.Reader)
	run(t, s, c)
	if !s.Done() || s.Succeeded() || !errors.Is(s.Err(), ErrRejected) || !errors.Is(c.Err(), ErrRejected) || s.MSK() != nil || c.MSK() != nil {
		t.Fatalf("server %v %v, peer %v", s.Succeeded(), s.Err(), c.Err())
	}
	s = NewServer("gw", NTHashVerifier(users), rand.Reader)
	run(t, s, NewPeer("Mallory", "clientPass", rand.Reader))
	if s.Succeeded() || !errors.Is(s.Err(), ErrRejected) {
		t.Fatalf("an unknown user: %v", s.Err())
	}
}

// A server that does not know the password cannot fool the peer: its
// Success carries the wrong authenticator response.
func TestMSCHAPv2FakeServer(t *testing.T) {
	fake := func(string, [16]byte, [16]byte, [24]byte) (string, []byte, error) {
		return "S=0000000000000000000000000000000000000000", make([]byte, 64), nil
	}
	_, err := run(t, NewServer("gw", fake, rand.Reader), NewPeer("User", "clientPass", rand.Reader))
	if err == nil {
		t.Fatalf("the peer accepted a server that does not know the password: %v", err)
	}
}

// Out-of-step packets change nothing on the server.
func TestServerIgnoresStrays(t *testing.T) {
	s := NewServer("gw", NTHashVerifier(users), rand.Reader)
	req, _ := s.Start()
	p, _ := Decode(req)
	for _, b := range [][]byte{
		(&Packet{Code: CodeResponse, ID: p.ID + 1, Type: TypeIdentity, Data: []byte("User")}).Encode(),
		(&Packet{Code: CodeRequest, ID: p.ID, Type: TypeIdentity}).Encode(),
		(&Packet{Code: CodeSuccess, ID: p.ID}).Encode(),
		(&Packet{Code: CodeResponse, ID: p.ID, Type: TypeMSCHAPv2, Data: []byte{2, 0, 0, 4}}).Encode(),
	} {
		if _, err := s.Receive(b); !errors.Is(err, ErrProtocol) || s.Done() {
			t.Errorf("%x: %v", b, err)
		}
	}
	c := NewPeer("User", "clientPass", rand.Reader)
	run(t, s, c)
	if !s.Succeeded() {
		t.Fatal(s.Err())
	}
}

// A peer asked for a method it does not do answers Nak (RFC 3748 section
// 5.3.1), and a server given a Nak fails the exchange.
func TestNak(t *testing.T) {
	c := NewPeer("User", "x", rand.Reader)
	resp, err := c.Receive((&Packet{Code: CodeRequest, ID: 3, Type: TypeTLS, Data: []byte{0x20}}).Encode())
	p, _ := Decode(resp)
	if err != nil || p.Type != TypeNak || !bytes.Equal(p.Data, []byte{TypeMSCHAPv2}) {
		t.Fatalf("%v, %v", p, err)
	}
	s := NewServer("gw", NTHashVerifier(users), rand.Reader)
	req, _ := s.Start()
	q, _ := Decode(req)
	out, err := s.Receive((&Packet{Code: CodeResponse, ID: q.ID, Type: TypeNak, Data: []byte{TypeTLS}}).Encode())
	if f, _ := Decode(out); err != nil || f.Code != CodeFailure || !errors.Is(s.Err(), ErrRejected) {
		t.Fatalf("%v %v %v", f, err, s.Err())
	}
}

// FuzzDecode: no input panics the decoder, and what it accepts encodes
// back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add((&Packet{Code: CodeResponse, ID: 7, Type: TypeIdentity, Data: []byte("alice")}).Encode())
	f.Add((&Packet{Code: CodeSuccess, ID: 1}).Encode())
	f.Add(mschap(CodeResponse, 2, opResponse, make([]byte, 60)).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal without ErrMalformed: %v", err)
			}
			return
		}
		if enc := p.Encode(); !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatalf("%x encodes back as %x", b, enc)
		}
	})
}

// FuzzServer: whatever a peer sends, at any step, the server neither
// panics nor lets an unknown user in.
func FuzzServer(f *testing.F) {
	f.Add(uint8(0), (&Packet{Code: CodeResponse, ID: 0, Type: TypeIdentity, Data: []byte("User")}).Encode())
	f.Add(uint8(1), mschap(CodeResponse, 1, opResponse, append([]byte{49}, make([]byte, 53)...)).Encode())
	f.Add(uint8(2), mschap(CodeResponse, 2, opSuccess, nil).Encode())
	f.Fuzz(func(t *testing.T, step uint8, b []byte) {
		s := NewServer("gw", NTHashVerifier(users), &fixed{})
		c := NewPeer("User", "wrong password", &fixed{})
		req, _ := s.Start()
		for i := range int(step % 4) {
			resp, err := c.Receive(req)
			if err != nil || c.Done() {
				break
			}
			if req, err = s.Receive(resp); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		s.Receive(b)
		if s.Succeeded() {
			t.Fatalf("%x let a peer in without the password", b)
		}
	})
}
