package eap

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gatehouse/gatehouse/ppp"
)

// EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2, as Windows, Apple,
// Android and strongSwan speak it): MS-CHAPv2's Challenge, Response,
// Success and Failure packets (RFC 2759) inside EAP type 26, after
// EAP-Identity. The MSK (RFC 3079's master keys) keys IKEv2's AUTH.
//
//	Server                                 Peer
//	Request/Identity                 -->
//	                                 <--   Response/Identity (the user)
//	Request/MSCHAPv2 Challenge       -->
//	                                 <--   Response/MSCHAPv2 Response
//	Request/MSCHAPv2 Success "S=..." -->   (or Failure "E=691 ...")
//	                                 <--   Response/MSCHAPv2 Success
//	EAP-Success                      -->

// MS-CHAPv2 op codes inside EAP type 26.
const (
	opChallenge uint8 = 1
	opResponse  uint8 = 2
	opSuccess   uint8 = 3
	opFailure   uint8 = 4
)

// ErrRejected is a user the server refused: unknown, or the wrong
// password.
var ErrRejected = errors.New("EAP-MSCHAPv2: user or password refused")

// ErrProtocol is a packet that has no place in the exchange: the wrong
// code, type, identifier or op code for the step it is at.
var ErrProtocol = errors.New("EAP: unexpected packet")

// Verifier checks a user's MS-CHAPv2 response (RFC 2759): the
// authenticator response to send ("S=" and 40 hex digits) and the MSK
// (MSK or MPPEMSK makes it); an error wrapping ErrRejected for a wrong
// password or unknown user.
type Verifier func(user string, authChallenge, peerChallenge [16]byte, ntResponse [24]byte) (authResponse string, msk []byte, err error)

// NTHashVerifier is a Verifier for users whose NT password hash lookup
// knows (a users file).
func NTHashVerifier(lookup func(user string) (hash [16]byte, ok bool)) Verifier {
	return func(user string, authChallenge, peerChallenge [16]byte, nt [24]byte) (string, []byte, error) {
		hash, ok := lookup(user)
		if !ok || !ppp.VerifyNTResponse(authChallenge, peerChallenge, user, hash, nt[:]) {
			return "", nil, fmt.Errorf("%w: %q", ErrRejected, user)
		}
		return ppp.GenerateAuthenticatorResponse(hash, nt, peerChallenge, authChallenge, user), MSK(ppp.MasterKey(hash, nt)), nil
	}
}

// MSK is the 64-byte key EAP-MSCHAPv2 exports: the master receive and
// send keys (RFC 3079 section 3, the server's view), then 32 zero bytes,
// as strongSwan and Windows make it.
func MSK(master [16]byte) []byte {
	recv, send := ppp.AsymmetricStartKey(master, false, true), ppp.AsymmetricStartKey(master, true, true)
	return MPPEMSK(recv[:], send[:])
}

// MPPEMSK is the MSK from the server's receive and send keys, as a RADIUS
// server gives them (MS-MPPE-Recv-Key and MS-MPPE-Send-Key, RFC 2548
// section 2.4): nil unless both are 16 bytes.
func MPPEMSK(recv, send []byte) []byte {
	if len(recv) != 16 || len(send) != 16 {
		return nil
	}
	return append(append(append(make([]byte, 0, 64), recv...), send...), make([]byte, 32)...)
}

// mschap builds a type-26 request or response: op code, MS-CHAPv2-ID,
// MS-Length (the MS-CHAPv2 packet's length), then the data.
func mschap(code, id, op uint8, data []byte) *Packet {
	b := []byte{op, id, 0, 0}
	binary.BigEndian.PutUint16(b[2:], uint16(4+len(data)))
	return &Packet{Code: code, ID: id, Type: TypeMSCHAPv2, Data: append(b, data...)}
}

// serverState is where a Server is.
type serverState int

const (
	askIdentity serverState = iota
	challenged
	succeeded // Success request sent, its acknowledgement awaited
	refused   // Failure request sent
	done
)

// Server is the authenticator side of EAP-MSCHAPv2.
type Server struct {
	outcome
	name      string
	verify    Verifier
	rand      io.Reader
	id        uint8
	state     serverState
	identity  string
	challenge [16]byte
}

// NewServer makes a server that calls itself name in its challenges.
func NewServer(name string, verify Verifier, rand io.Reader) *Server {
	return &Server{name: name, verify: verify, rand: rand}
}

// Start is the first request: EAP-Request/Identity.
func (s *Server) Start() ([]byte, error) {
	id, b, err := identityRequest(s.rand)
	s.id = id
	return b, err
}

// Receive takes the peer's response to the last request and returns the
// next packet: a request, or EAP-Success or EAP-Failure once Done. A
// packet that does not fit (ErrProtocol, ErrMalformed) changes nothing:
// the caller drops it.
func (s *Server) Receive(b []byte) ([]byte, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if p.Code != CodeResponse || p.ID != s.id || s.state == done {
		return nil, fmt.Errorf("%w: %v where the response to #%d was awaited", ErrProtocol, p, s.id)
	}
	if p.Type == TypeNak {
		return s.fail(fmt.Errorf("%w: the peer does not do EAP-MSCHAPv2 (Nak for %v)", ErrRejected, p.Data))
	}
	switch s.state {
	case askIdentity:
		if p.Type != TypeIdentity {
			return nil, fmt.Errorf("%w: type %d in answer to Identity", ErrProtocol, p.Type)
		}
		s.identity = string(bytes.TrimRight(p.Data, "\x00"))
		if _, err := io.ReadFull(s.rand, s.challenge[:]); err != nil {
			return nil, err
		}
		s.id++
		s.state = challenged
		data := append(append([]byte{16}, s.challenge[:]...), s.name...)
		return mschap(CodeRequest, s.id, opChallenge, data).Encode(), nil
	case challenged:
		return s.response(p)
	case succeeded, refused:
		if p.Type != TypeMSCHAPv2 || len(p.Data) < 1 {
			return nil, fmt.Errorf("%w: type %d where MS-CHAPv2 was awaited", ErrProtocol, p.Type)
		}
		if s.state == succeeded && p.Data[0] == opSuccess {
			s.state, s.done = done, true
			return (&Packet{Code: CodeSuccess, ID: s.id}).Encode(), nil
		}
		if s.state == refused && p.Data[0] == opFailure {
			s.state, s.done = done, true
			return (&Packet{Code: CodeFailure, ID: s.id}).Encode(), nil
		}
		return nil, fmt.Errorf("%w: MS-CHAPv2 op code %d", ErrProtocol, p.Data[0])
	}
	return nil, fmt.Errorf("%w: state %d", ErrProtocol, s.state)
}

// response checks the peer's MS-CHAPv2 Response (RFC 2759 section 4).
func (s *Server) response(p *Packet) ([]byte, error) {
	d := p.Data
	if p.Type != TypeMSCHAPv2 || len(d) < 5+49 || d[0] != opResponse || d[4] != 49 {
		return nil, fmt.Errorf("%w: not an MS-CHAPv2 Response", ErrProtocol)
	}
	r, err := ppp.ParseMSCHAPv2Response(d[5 : 5+49])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// The name in the Response is what the NT-Response was made with.
	s.user = string(d[5+49:])
	auth, msk, err := s.verify(s.user, s.challenge, r.PeerChallenge, r.NTResponse)
	s.id++
	if err != nil {
		s.err = err
		s.state = refused
		// E=691 (authentication failure), no retry (RFC 2759 section 6).
		var next [16]byte
		io.ReadFull(s.rand, next[:])
		msg := fmt.Sprintf("E=691 R=0 C=%s V=3 M=Authentication failed", strings.ToUpper(hex.EncodeToString(next[:])))
		return mschap(CodeRequest, s.id, opFailure, []byte(msg)).Encode(), nil
	}
	s.msk = msk
	s.state = succeeded
	return mschap(CodeRequest, s.id, opSuccess, []byte(auth+" M=Welcome")).Encode(), nil
}

func (s *Server) fail(err error) ([]byte, error) {
	s.err, s.state, s.done = err, done, true
	return (&Packet{Code: CodeFailure, ID: s.id}).Encode(), nil
}

// Identity is what the peer answered EAP-Identity with; User (outcome)
// the name its MS-CHAPv2 Response carried, which was checked.
func (s *Server) Identity() string { return s.identity }

// Peer is the client side of EAP-MSCHAPv2.
type Peer struct {
	outcome
	identity, password string
	rand               io.Reader
	want               string // the authenticator response we expect
	master             [16]byte
}

// NewPeer makes a client that answers as identity with password.
func NewPeer(identity, password string, rand io.Reader) *Peer {
	return &Peer{identity: identity, password: password, rand: rand}
}

// Receive takes the server's packet and returns our response (nil after
// EAP-Success or EAP-Failure, which end the exchange: Done).
func (c *Peer) Receive(b []byte) ([]byte, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if resp, handled, err := c.peerStep(p, c.identity, TypeMSCHAPv2); handled {
		return resp, err
	}
	if p.Code == CodeSuccess {
		if c.msk == nil {
			return nil, fmt.Errorf("%w: EAP-Success before the server proved it knows the password", ErrProtocol)
		}
		c.done = true
		return nil, nil
	}
	respond := func(t uint8, data []byte) []byte { return response(p, t, data) }
	d := p.Data
	if len(d) < 4 {
		return nil, fmt.Errorf("%w: MS-CHAPv2 packet of %d bytes", ErrMalformed, len(d))
	}
	switch d[0] {
	case opChallenge:
		if len(d) < 4+1+16 || d[4] != 16 {
			return nil, fmt.Errorf("%w: MS-CHAPv2 Challenge", ErrMalformed)
		}
		var auth, peer [16]byte
		copy(auth[:], d[5:21])
		if _, err := io.ReadFull(c.rand, peer[:]); err != nil {
			return nil, err
		}
		hash := ppp.NTPasswordHash(c.password)
		user := c.identity
		nt := ppp.GenerateNTResponse(auth, peer, user, hash)
		c.want = ppp.GenerateAuthenticatorResponse(hash, nt, peer, auth, user)
		c.master = ppp.MasterKey(hash, nt)
		value := ppp.MSCHAPv2Response{PeerChallenge: peer, NTResponse: nt}.Bytes()
		data := append(append([]byte{49}, value...), user...)
		r := mschap(CodeResponse, d[1], opResponse, data)
		r.ID = p.ID // the EAP identifier is the request's; MS-CHAPv2-ID echoes its own
		return r.Encode(), nil
	case opSuccess:
		msg := string(d[4:])
		got, _, _ := strings.Cut(msg, " ")
		if c.want == "" || !strings.EqualFold(got, c.want) {
			c.err = errors.New("EAP-MSCHAPv2: the server's authenticator response is wrong: it does not know the password")
			return nil, c.err
		}
		c.msk = MSK(c.master)
		return respond(TypeMSCHAPv2, []byte{opSuccess}), nil
	case opFailure:
		c.err = fmt.Errorf("%w: %s", ErrRejected, d[4:])
		return respond(TypeMSCHAPv2, []byte{opFailure}), nil
	}
	return nil, fmt.Errorf("%w: MS-CHAPv2 op code %d", ErrProtocol, d[0])
}
