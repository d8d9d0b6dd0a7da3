package ppp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// LCP options (RFC 1661 section 6, RFC 1570).
const (
	LCPOptMRU      = 1
	LCPOptAuth     = 3
	LCPOptMagic    = 5
	LCPOptPFC      = 7
	LCPOptACFC     = 8
	MinMRU         = 576 // RFC 1661 section 6.1: below this, Nak
	DefaultLCPMRU  = 1400
	chapAlgMD5     = 5    // RFC 1994
	chapAlgMSCHAP2 = 0x81 // RFC 2759
)

// AuthProto is an authentication protocol LCP negotiates.
type AuthProto int

const (
	AuthNone AuthProto = iota
	AuthPAP
	AuthCHAPMD5
	AuthMSCHAPv2
)

func (a AuthProto) String() string {
	return [...]string{"none", "pap", "chap", "mschapv2"}[a]
}

// ErrUnknownAuth is a method name ParseAuthProto does not know.
var ErrUnknownAuth = errors.New("not a PPP authentication method (allowed: mschapv2, chap, pap)")

// ParseAuthProto reads a method's name as String writes it; the names are
// those of the configuration and the client's --ppp-auth.
func ParseAuthProto(name string) (AuthProto, error) {
	for _, a := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		if a.String() == name {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%q: %w", name, ErrUnknownAuth)
}

// option returns the Authentication-Protocol option's data.
func (a AuthProto) option() []byte {
	switch a {
	case AuthPAP:
		return binary.BigEndian.AppendUint16(nil, ProtoPAP)
	case AuthCHAPMD5:
		return append(binary.BigEndian.AppendUint16(nil, ProtoCHAP), chapAlgMD5)
	case AuthMSCHAPv2:
		return append(binary.BigEndian.AppendUint16(nil, ProtoCHAP), chapAlgMSCHAP2)
	}
	return nil
}

func authFromOption(d []byte) AuthProto {
	switch {
	case bytes.Equal(d, AuthPAP.option()):
		return AuthPAP
	case bytes.Equal(d, AuthCHAPMD5.option()):
		return AuthCHAPMD5
	case bytes.Equal(d, AuthMSCHAPv2.option()):
		return AuthMSCHAPv2
	}
	return AuthNone
}

// LCP is the Link Control Protocol on the automaton, for the server (it
// asks the client to authenticate) or the client (it accepts one of the
// protocols it is willing to use).
type LCP struct {
	Server bool
	// Auth: the server's protocols in order of preference (it asks for
	// the first and moves down the list when the client naks); the
	// client's acceptable ones.
	Auth  []AuthProto
	MRU   uint16
	Magic uint32
	// OnSend sends an LCP packet; OnUp, OnDown and OnFinished report the
	// layer's state (any may be nil but OnSend).
	OnSend                   func(Packet)
	OnUp, OnDown, OnFinished func()

	authIdx                   int
	askMRU, askMagic, askAuth bool
	peerMRU                   uint16
	peerMagic                 uint32
	agreed                    AuthProto
	newMagic                  func() uint32
}

// NewLCP prepares an LCP; newMagic gives fresh magic numbers.
func NewLCP(server bool, auth []AuthProto, mru uint16, newMagic func() uint32) *LCP {
	if mru == 0 {
		mru = DefaultLCPMRU
	}
	return &LCP{Server: server, Auth: auth, MRU: mru, Magic: newMagic(), newMagic: newMagic, askMRU: true, askMagic: true,
		askAuth: server && len(auth) > 0, peerMRU: DefaultLCPMRU}
}

// Agreed is the authentication protocol negotiated (the server's request
// the client acked).
func (l *LCP) Agreed() AuthProto { return l.agreed }

// PeerMRU is the MRU the peer asked for (1500 when it did not say: RFC
// 1661's default; we use our own cap).
func (l *LCP) PeerMRU() uint16 { return l.peerMRU }

func (l *LCP) Options() []Option {
	var o []Option
	if l.askMRU {
		o = append(o, Option{Type: LCPOptMRU, Data: binary.BigEndian.AppendUint16(nil, l.MRU)})
	}
	if l.askAuth && l.authIdx < len(l.Auth) {
		o = append(o, Option{Type: LCPOptAuth, Data: l.Auth[l.authIdx].option()})
	}
	if l.askMagic {
		o = append(o, Option{Type: LCPOptMagic, Data: binary.BigEndian.AppendUint32(nil, l.Magic)})
	}
	return o
}

// Check judges the peer's request: MRU at least 576, a magic number that
// is not ours (else a loop: Nak with another), an authentication protocol
// the client accepts (else Nak with one it does), compression allowed;
// anything else (callback, multilink...) rejected.
func (l *LCP) Check(opts []Option) (Verdict, []Option) {
	var nak, rej []Option
	for _, o := range opts {
		switch o.Type {
		case LCPOptMRU:
			if len(o.Data) != 2 {
				rej = append(rej, o)
			} else if v := binary.BigEndian.Uint16(o.Data); v < MinMRU {
				nak = append(nak, Option{Type: LCPOptMRU, Data: binary.BigEndian.AppendUint16(nil, MinMRU)})
			} else {
				l.peerMRU = v
			}
		case LCPOptMagic:
			if len(o.Data) != 4 {
				rej = append(rej, o)
			} else if v := binary.BigEndian.Uint32(o.Data); v == l.Magic || v == 0 {
				nak = append(nak, Option{Type: LCPOptMagic, Data: binary.BigEndian.AppendUint32(nil, l.newMagic())})
			} else {
				l.peerMagic = v
			}
		case LCPOptAuth:
			if l.Server {
				rej = append(rej, o) // we do not authenticate to clients
				continue
			}
			a := authFromOption(o.Data)
			if a != AuthNone && contains(l.Auth, a) {
				l.agreed = a
			} else if len(l.Auth) > 0 {
				// EAP, or a protocol we will not use: propose ours.
				nak = append(nak, Option{Type: LCPOptAuth, Data: l.Auth[0].option()})
			} else {
				rej = append(rej, o)
			}
		case LCPOptPFC, LCPOptACFC:
		default:
			rej = append(rej, o)
		}
	}
	if len(rej) > 0 {
		return Reject, rej
	}
	if len(nak) > 0 {
		return Nak, nak
	}
	return Ack, nil
}

func contains(list []AuthProto, a AuthProto) bool {
	for _, x := range list {
		if x == a {
			return true
		}
	}
	return false
}

// Nakked: take a suggested MRU or magic; as the server, move to the
// protocol the client suggests if we allow it, else to our next one.
func (l *LCP) Nakked(opts []Option) {
	for _, o := range opts {
		switch o.Type {
		case LCPOptMRU:
			if len(o.Data) == 2 {
				if v := binary.BigEndian.Uint16(o.Data); v >= MinMRU {
					l.MRU = v
				}
			}
		case LCPOptMagic:
			l.Magic = l.newMagic()
		case LCPOptAuth:
			if !l.Server {
				continue
			}
			want := authFromOption(o.Data)
			for i, a := range l.Auth {
				if a == want {
					l.authIdx = i
					return
				}
			}
			l.authIdx++ // not one we allow: try our next
		}
	}
}

// Rejected: stop asking for what the peer will not negotiate (some
// servers reject Magic-Number or MRU). A client that rejects
// authentication altogether ends up with no protocol left, which the
// session refuses.
func (l *LCP) Rejected(opts []Option) {
	for _, o := range opts {
		switch o.Type {
		case LCPOptMRU:
			l.askMRU = false
		case LCPOptMagic:
			l.askMagic = false
		case LCPOptAuth:
			l.authIdx = len(l.Auth)
		}
	}
}

func (l *LCP) Up() {
	if l.Server && l.askAuth && l.authIdx < len(l.Auth) {
		l.agreed = l.Auth[l.authIdx]
	}
	call(l.OnUp)
}

func (l *LCP) Down() {
	call(l.OnDown)
}

func (l *LCP) Finished() {
	call(l.OnFinished)
}

func (l *LCP) Send(p Packet) { l.OnSend(p) }

func call(f func()) {
	if f != nil {
		f()
	}
}

// OurMagic is the Magic-Number our LCP packets carry: 0 unless it was
// negotiated (RFC 1661 section 6.4).
func (l *LCP) OurMagic() uint32 {
	if !l.askMagic {
		return 0
	}
	return l.Magic
}

// EchoReply answers an Echo-Request in the Opened state (RFC 1661 section
// 5.8): same identifier, our magic number, the peer's data back.
func (l *LCP) EchoReply(req Packet) Packet {
	data := binary.BigEndian.AppendUint32(nil, l.OurMagic())
	if len(req.Data) > 4 {
		data = append(data, req.Data[4:]...)
	}
	return Packet{Code: CodeEchoReply, ID: req.ID, Data: data}
}

// ProtocolReject rejects a frame of a protocol we do not speak, CCP for
// one (RFC 1661 section 5.7).
func ProtocolReject(id byte, proto uint16, info []byte) Packet {
	return Packet{Code: CodeProtocolReject, ID: id, Data: append(binary.BigEndian.AppendUint16(nil, proto), info...)}
}
