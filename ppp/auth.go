package ppp

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// The authentication phase (RFC 1661 section 3.5): PAP (RFC 1334),
// CHAP-MD5 (RFC 1994) and MS-CHAPv2 (RFC 2759), the server's side and the
// client's. Where the users live is not this package's business: the
// server asks a CheckFunc.

// Credentials is what a client presented.
type Credentials struct {
	Proto AuthProto
	User  string
	// PAP: the password as sent.
	Password string
	// CHAP-MD5: identifier, our challenge, the client's 16-byte response.
	// MS-CHAPv2: our 16-byte challenge and the client's response value.
	ID        byte
	Challenge []byte
	Response  []byte
	MSCHAPv2  MSCHAPv2Response
}

// Verdict of a CheckFunc: for MS-CHAPv2 a success carries the
// authenticator response ("S=...") that proves the server knows the
// password too, and the server's MPPE receive and send keys (RFC 3079
// section 3.3), which key EAP-MSCHAPv2's MSK.
type AuthResult struct {
	OK                       bool
	AuthResponse             string
	Message                  string
	MPPERecvKey, MPPESendKey []byte
}

// CheckFunc decides a client's credentials.
type CheckFunc func(Credentials) AuthResult

// CheckWithPassword is a CheckFunc for a known cleartext password, and a
// reference for other stores: it verifies any of the three protocols.
func CheckWithPassword(password string) CheckFunc {
	return func(c Credentials) AuthResult {
		switch c.Proto {
		case AuthPAP:
			return AuthResult{OK: subtle.ConstantTimeCompare([]byte(c.Password), []byte(password)) == 1}
		case AuthCHAPMD5:
			return AuthResult{OK: subtle.ConstantTimeCompare(CHAPMD5(c.ID, password, c.Challenge), c.Response) == 1}
		case AuthMSCHAPv2:
			return CheckMSCHAPv2(NTPasswordHash(password), c)
		}
		return AuthResult{}
	}
}

// CheckMSCHAPv2 verifies an MS-CHAPv2 response against the user's NT hash
// and returns the authenticator response on success.
func CheckMSCHAPv2(hash [16]byte, c Credentials) AuthResult {
	var auth [16]byte
	copy(auth[:], c.Challenge)
	r := c.MSCHAPv2
	if !VerifyNTResponse(auth, r.PeerChallenge, c.User, hash, r.NTResponse[:]) {
		return AuthResult{}
	}
	master := MasterKey(hash, r.NTResponse)
	recv, send := AsymmetricStartKey(master, false, true), AsymmetricStartKey(master, true, true)
	return AuthResult{OK: true, AuthResponse: GenerateAuthenticatorResponse(hash, r.NTResponse, r.PeerChallenge, auth, c.User),
		MPPERecvKey: recv[:], MPPESendKey: send[:]}
}

// CHAPMD5 is RFC 1994 section 4.1's response: MD5(Identifier | secret |
// Challenge).
func CHAPMD5(id byte, secret string, challenge []byte) []byte {
	h := md5.New()
	h.Write([]byte{id})
	h.Write([]byte(secret))
	h.Write(challenge)
	return h.Sum(nil)
}

// AuthServer runs the server's side of one authentication.
type AuthServer struct {
	Proto  AuthProto
	Name   string // our name in challenges
	Random func([]byte)
	Check  CheckFunc
	// StartCheck, when set, is used instead of Check for a check that
	// takes time (the core, a RADIUS server): it starts the check and
	// returns; the link's owner calls Resolve with the result.
	StartCheck func(Credentials)
	Send       func(Packet)
	// Done reports the outcome once: the user, and why not.
	Done func(ok bool, user, why string)

	id        byte
	challenge []byte
	finished  bool
	tries     int
	// A check StartCheck began: the request it answers and its user.
	pending     bool
	pendingReq  Packet
	pendingUser string
	// The answer to the request that finished, and a digest of that
	// request: a retransmission of it (our answer was lost) gets the same
	// answer again without a second check.
	answer   Packet
	answered bool
	asked    [sha256.Size]byte
}

// MaxAuthTries bounds challenges sent without an answer.
const MaxAuthTries = 5

// Start sends the challenge (CHAP, MS-CHAPv2); PAP waits for the client.
func (s *AuthServer) Start() {
	if s.Proto == AuthPAP {
		return
	}
	s.challenge = make([]byte, 16)
	s.Random(s.challenge)
	s.id++
	s.sendChallenge()
}

func (s *AuthServer) sendChallenge() {
	s.tries++
	s.Send(Packet{Code: CHAPChallenge, ID: s.id, Data: AppendCHAPValue(nil, s.challenge, s.Name)})
}

// Timeout re-sends the challenge, and gives up after MaxAuthTries.
func (s *AuthServer) Timeout() {
	if s.finished || s.pending || s.Proto == AuthPAP {
		return
	}
	if s.tries >= MaxAuthTries {
		s.finish(false, "", "the client never answered the challenge")
		return
	}
	s.sendChallenge()
}

func (s *AuthServer) finish(ok bool, user, why string) {
	if !s.finished {
		s.finished = true
		s.Done(ok, user, why)
	}
}

// Input handles a CHAP or PAP packet from the client.
func (s *AuthServer) Input(p Packet) error {
	if s.finished {
		// RFC 1334 section 2.2.1 and RFC 1994 section 4.1: a request
		// retransmitted because our Ack or Success was lost gets the same
		// answer; anything else after the outcome is ignored.
		if s.answered && p.ID == s.answer.ID && p.Code == s.requestCode() && sha256.Sum256(p.Data) == s.asked {
			s.Send(s.answer)
		}
		return nil
	}
	if s.Proto == AuthPAP {
		if p.Code != PAPRequest {
			return nil
		}
		user, pw, err := ParsePAPRequest(p.Data)
		if err != nil {
			return err
		}
		s.judge(p, user, Credentials{Proto: AuthPAP, User: user, Password: pw})
		return nil
	}
	if p.Code != CHAPResponse || p.ID != s.id {
		return nil // stale or not a response (RFC 1994 section 4.1)
	}
	value, user, err := ParseCHAPValue(p.Data)
	if err != nil {
		return err
	}
	c := Credentials{Proto: s.Proto, User: user, ID: p.ID, Challenge: s.challenge, Response: value}
	if s.Proto == AuthMSCHAPv2 {
		if c.MSCHAPv2, err = ParseMSCHAPv2Response(value); err != nil {
			return err
		}
	}
	s.judge(p, user, c)
	return nil
}

// judge has the request checked: at once with Check, or with StartCheck
// and, later, Resolve. While a check runs, the client's retransmissions
// of its request are ignored: the answer to the first will do.
func (s *AuthServer) judge(p Packet, user string, c Credentials) {
	if s.StartCheck == nil {
		s.conclude(p, user, s.Check(c))
		return
	}
	if s.pending {
		return
	}
	s.pending, s.pendingReq, s.pendingUser = true, p, user
	s.StartCheck(c)
}

// Resolve ends the check StartCheck began (on the link's goroutine).
func (s *AuthServer) Resolve(r AuthResult) {
	if !s.pending || s.finished {
		return
	}
	s.pending = false
	s.conclude(s.pendingReq, s.pendingUser, r)
}

// conclude answers request p with the check's result and finishes.
func (s *AuthServer) conclude(p Packet, user string, r AuthResult) {
	switch {
	case r.OK && s.Proto == AuthPAP:
		s.reply(p, Packet{Code: PAPAck, ID: p.ID, Data: papMessage("Welcome")})
	case s.Proto == AuthPAP:
		s.reply(p, Packet{Code: PAPNak, ID: p.ID, Data: papMessage("Authentication failed")})
	case r.OK && s.Proto == AuthMSCHAPv2:
		s.reply(p, Packet{Code: CHAPSuccess, ID: p.ID, Data: []byte(r.AuthResponse + " M=Welcome")})
	case r.OK:
		s.reply(p, Packet{Code: CHAPSuccess, ID: p.ID, Data: []byte("Welcome")})
	case s.Proto == AuthMSCHAPv2:
		// RFC 2759 section 6: E=691 (authentication failure), R=0 (do
		// not retry: Windows would prompt in a loop otherwise).
		s.reply(p, Packet{Code: CHAPFailure, ID: p.ID, Data: []byte(fmt.Sprintf("E=691 R=0 C=%X V=3 M=Authentication failed", s.challenge))})
	default:
		s.reply(p, Packet{Code: CHAPFailure, ID: p.ID, Data: []byte("Authentication failed")})
	}
	why := ""
	switch {
	case r.OK:
	case s.Proto == AuthPAP:
		why = "wrong user name or password (PAP)"
	default:
		why = fmt.Sprintf("wrong user name or password (%v)", s.Proto)
	}
	s.finish(r.OK, StripDomain(user), why)
}

// reply sends the outcome of request req and keeps it for a
// retransmission of req.
func (s *AuthServer) reply(req, answer Packet) {
	s.answer, s.answered, s.asked = answer, true, sha256.Sum256(req.Data)
	s.Send(answer)
}

func (s *AuthServer) requestCode() byte {
	if s.Proto == AuthPAP {
		return PAPRequest
	}
	return CHAPResponse
}

func papMessage(m string) []byte { return append([]byte{byte(len(m))}, m...) }

// AuthClient runs the client's side.
type AuthClient struct {
	Proto          AuthProto
	User, Password string
	Random         func([]byte)
	Send           func(Packet)
	Done           func(ok bool, why string)

	id       byte
	finished bool
	tries    int
	// The CHAP Response last sent: sent again on our timer until the
	// server answers, since a lost Success would otherwise leave us
	// waiting while the server, done with us, sends no more challenges.
	response  Packet
	challenge []byte // the one response answers
	// MS-CHAPv2 state, to check the server's proof.
	auth, peer [16]byte
	nt         [24]byte
}

// Start sends the PAP request; CHAP waits for the challenge.
func (c *AuthClient) Start() {
	if c.Proto == AuthPAP {
		c.id++
		c.sendPAP()
	}
}

func (c *AuthClient) sendPAP() {
	c.tries++
	c.Send(Packet{Code: PAPRequest, ID: c.id, Data: AppendPAPRequest(nil, c.User, c.Password)})
}

// Timeout re-sends the PAP request or the CHAP Response, and gives up
// after MaxAuthTries. Before a challenge, CHAP waits: the server retries.
func (c *AuthClient) Timeout() {
	if c.finished || (c.Proto != AuthPAP && c.response.Code == 0) {
		return
	}
	if c.tries >= MaxAuthTries {
		c.finish(false, "the server never answered")
		return
	}
	if c.Proto == AuthPAP {
		c.sendPAP()
		return
	}
	c.tries++
	c.Send(c.response)
}

func (c *AuthClient) finish(ok bool, why string) {
	if !c.finished {
		c.finished = true
		c.Done(ok, why)
	}
}

// Input handles a packet from the server.
func (c *AuthClient) Input(p Packet) error {
	if c.finished {
		return nil
	}
	switch {
	case c.Proto == AuthPAP && p.Code == PAPAck:
		// Some servers send an empty Ack: fine.
		c.finish(true, "")
	case c.Proto == AuthPAP && p.Code == PAPNak:
		c.finish(false, "the server refused: "+ParsePAPMessage(p.Data))
	case c.Proto != AuthPAP && p.Code == CHAPChallenge:
		challenge, _, err := ParseCHAPValue(p.Data)
		if err != nil {
			return err
		}
		if c.response.Code == CHAPResponse && p.ID == c.id && bytes.Equal(challenge, c.challenge) {
			// The server retransmitted its challenge (same Identifier,
			// RFC 1994 section 4.1) before our Response reached it: send
			// the same Response. A new one would carry a new MS-CHAPv2
			// peer challenge, and the server's proof for the first
			// would no longer check.
			c.Send(c.response)
			return nil
		}
		c.id, c.challenge = p.ID, bytes.Clone(challenge)
		var value []byte
		if c.Proto == AuthCHAPMD5 {
			value = CHAPMD5(p.ID, c.Password, challenge)
		} else {
			if len(challenge) != 16 {
				return fmt.Errorf("%w: MS-CHAPv2 challenge of %d bytes", ErrMalformed, len(challenge))
			}
			copy(c.auth[:], challenge)
			c.Random(c.peer[:])
			c.nt = GenerateNTResponse(c.auth, c.peer, c.User, NTPasswordHash(c.Password))
			value = MSCHAPv2Response{PeerChallenge: c.peer, NTResponse: c.nt}.Bytes()
		}
		c.response, c.tries = Packet{Code: CHAPResponse, ID: p.ID, Data: AppendCHAPValue(nil, value, c.User)}, 1
		c.Send(c.response)
	case c.Proto != AuthPAP && p.Code == CHAPSuccess && p.ID == c.id:
		if c.Proto == AuthMSCHAPv2 {
			// The server must prove it knows the password (RFC 2759
			// section 5): "S=<40 hex> M=...".
			msg := string(p.Data)
			s, _, _ := strings.Cut(msg, " ")
			if !CheckAuthenticatorResponse(NTPasswordHash(c.Password), c.nt, c.peer, c.auth, c.User, s) {
				c.finish(false, "the server's authenticator response is wrong: it does not know our password")
				return nil
			}
		}
		c.finish(true, "")
	case c.Proto != AuthPAP && p.Code == CHAPFailure && p.ID == c.id:
		c.finish(false, "the server refused: "+string(p.Data))
	}
	return nil
}
