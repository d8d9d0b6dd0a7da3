package ppp

import (
	"crypto/rand"
	"strings"
	"testing"
)

type authRun struct {
	s                 *AuthServer
	c                 *AuthClient
	toS, toC          []Packet
	sOK, cOK          *bool
	sUser, sWhy, cWhy string
}

func newAuthRun(proto AuthProto, user, clientPassword, serverPassword string) *authRun {
	r := &authRun{}
	random := func(b []byte) { rand.Read(b) }
	r.s = &AuthServer{Proto: proto, Name: "gatehouse", Random: random, Check: CheckWithPassword(serverPassword),
		Send: func(p Packet) { r.toC = append(r.toC, p) },
		Done: func(ok bool, u, why string) { r.sOK, r.sUser, r.sWhy = &ok, u, why }}
	r.c = &AuthClient{Proto: proto, User: user, Password: clientPassword, Random: random,
		Send: func(p Packet) { r.toS = append(r.toS, p) },
		Done: func(ok bool, why string) { r.cOK, r.cWhy = &ok, why }}
	return r
}

func (r *authRun) run(t *testing.T) {
	t.Helper()
	r.s.Start()
	r.c.Start()
	for range 20 {
		if len(r.toS) == 0 && len(r.toC) == 0 {
			return
		}
		if len(r.toS) > 0 {
			p := r.toS[0]
			r.toS = r.toS[1:]
			if err := r.s.Input(p); err != nil {
				t.Fatal(err)
			}
		}
		if len(r.toC) > 0 {
			p := r.toC[0]
			r.toC = r.toC[1:]
			if err := r.c.Input(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Fatal("never settled")
}

func TestAuthEachProtocol(t *testing.T) {
	for _, proto := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		r := newAuthRun(proto, `CORP\alice`, "correct horse", "correct horse")
		r.run(t)
		if r.sOK == nil || !*r.sOK || r.cOK == nil || !*r.cOK {
			t.Fatalf("%v: server %v (%s), client %v (%s)", proto, r.sOK, r.sWhy, r.cOK, r.cWhy)
		}
		if proto != AuthPAP && r.sUser != "alice" {
			t.Fatalf("%v: user %q, want the domain stripped", proto, r.sUser)
		}
	}
}

func TestAuthWrongPassword(t *testing.T) {
	for _, proto := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		r := newAuthRun(proto, "alice", "wrong", "correct horse")
		r.run(t)
		if r.sOK == nil || *r.sOK || r.cOK == nil || *r.cOK {
			t.Fatalf("%v: server %v, client %v", proto, r.sOK, r.cOK)
		}
		if !strings.Contains(r.sWhy, "wrong user name or password") || !strings.Contains(r.cWhy, "refused") {
			t.Fatalf("%v: reasons %q / %q", proto, r.sWhy, r.cWhy)
		}
	}
	// MS-CHAPv2's failure tells Windows not to retry (R=0).
	r := newAuthRun(AuthMSCHAPv2, "alice", "wrong", "right")
	r.run(t)
	if !strings.Contains(r.cWhy, "E=691 R=0") {
		t.Fatalf("failure message %q", r.cWhy)
	}
}

// TestMSCHAPv2ServerMustProveItself: a server that accepts without
// knowing the password (its S= is wrong) is refused by the client.
func TestMSCHAPv2ServerMustProveItself(t *testing.T) {
	r := newAuthRun(AuthMSCHAPv2, "alice", "secret", "secret")
	r.s.Check = func(Credentials) AuthResult {
		return AuthResult{OK: true, AuthResponse: "S=0000000000000000000000000000000000000000"}
	}
	r.run(t)
	if r.cOK == nil || *r.cOK || !strings.Contains(r.cWhy, "does not know our password") {
		t.Fatalf("client %v: %q", r.cOK, r.cWhy)
	}
}

// TestAuthStaleAndRetries: a response to an old challenge is ignored; an
// unanswered challenge is re-sent and then given up.
func TestAuthStaleAndRetries(t *testing.T) {
	r := newAuthRun(AuthCHAPMD5, "alice", "pw", "pw")
	r.s.Start()
	r.s.Input(Packet{Code: CHAPResponse, ID: 99, Data: AppendCHAPValue(nil, make([]byte, 16), "alice")})
	if r.sOK != nil {
		t.Fatal("a response with the wrong identifier was judged")
	}
	for range MaxAuthTries {
		r.s.Timeout()
	}
	if r.sOK == nil || *r.sOK || !strings.Contains(r.sWhy, "never answered") || len(r.toC) != MaxAuthTries {
		t.Fatalf("after retries: %v %q, %d challenges", r.sOK, r.sWhy, len(r.toC))
	}
}

// TestPAPEmptyAck: some servers send an Ack with no message at all.
func TestPAPEmptyAck(t *testing.T) {
	var ok *bool
	c := &AuthClient{Proto: AuthPAP, User: "u", Password: "p", Send: func(Packet) {}, Done: func(o bool, _ string) { ok = &o }}
	c.Start()
	c.Input(Packet{Code: PAPAck, ID: 1})
	if ok == nil || !*ok {
		t.Fatal("empty PAP Ack not taken as success")
	}
}

// TestRetransmittedChallengeGetsSameResponse: a server that retransmits
// its challenge while our Response is on its way (a busy server) gets the
// same Response again, so its proof for the first still checks.
func TestRetransmittedChallengeGetsSameResponse(t *testing.T) {
	for _, proto := range []AuthProto{AuthMSCHAPv2, AuthCHAPMD5} {
		r := newAuthRun(proto, "alice", "pw", "pw")
		r.s.Start()
		r.s.Timeout() // the challenge again, same Identifier
		if len(r.toC) != 2 || r.toC[0].ID != r.toC[1].ID {
			t.Fatalf("%v: want the same challenge twice, got %+v", proto, r.toC)
		}
		for _, p := range r.toC {
			if err := r.c.Input(p); err != nil {
				t.Fatal(err)
			}
		}
		r.toC = nil
		if len(r.toS) != 2 || string(r.toS[0].Data) != string(r.toS[1].Data) {
			t.Fatalf("%v: two different responses to one challenge", proto)
		}
		for _, p := range r.toS {
			if err := r.s.Input(p); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range r.toC {
			if err := r.c.Input(p); err != nil {
				t.Fatal(err)
			}
		}
		if r.sOK == nil || !*r.sOK || r.cOK == nil || !*r.cOK {
			t.Fatalf("%v: server %v, client %v (%q)", proto, r.sOK, r.cOK, r.cWhy)
		}
	}
}
