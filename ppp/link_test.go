package ppp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// linkPair is a server Link and a client Link joined by two queues, run on
// a fake clock.
type linkPair struct {
	t              testing.TB
	now            time.Time
	srv, cli       *Link
	toSrv, toCli   [][]byte
	srvUp, cliUp   *LinkUp
	srvDown, cliDn string
	srvCause       Disconnect
	cliCause       Disconnect
	drop           func(toServer bool, frame []byte) bool
}

var (
	srvAddr  = netip.MustParseAddr("10.8.0.1")
	poolAddr = netip.MustParseAddr("10.8.0.10")
	dnsAddr  = netip.MustParseAddr("10.1.0.53")
)

func newLinkPair(t testing.TB, srvAuth, cliAuth []AuthProto, password string) *linkPair {
	p := &linkPair{t: t, now: time.Unix(1000, 0)}
	random := fakeRandom()
	p.srv = NewLink(LinkConfig{Server: true, Auth: srvAuth, Name: "gatehouse", Random: random,
		Check: CheckWithPassword("s3cret pass"),
		Assign: func(user string) (Addresses, error) {
			return Addresses{Local: srvAddr, Peer: poolAddr, DNS: []netip.Addr{dnsAddr}}, nil
		},
		EchoInterval: 10 * time.Second,
		Send:         func(f []byte) { p.toCli = append(p.toCli, f) },
		OnUp:         func(u LinkUp) { p.srvUp = &u },
		OnDown:       func(d Disconnect) { p.srvDown = d.Reason; p.srvCause = d }})
	p.cli = NewLink(LinkConfig{Auth: cliAuth, User: `CORP\alice`, Password: password, Random: random,
		EchoInterval: 10 * time.Second,
		Send:         func(f []byte) { p.toSrv = append(p.toSrv, f) },
		OnUp:         func(u LinkUp) { p.cliUp = &u },
		OnDown:       func(d Disconnect) { p.cliDn = d.Reason; p.cliCause = d }})
	return p
}

// fakeRandom is a repeatable stand-in for crypto/rand: a recorded
// exchange replays against a link given a new one.
func fakeRandom() func([]byte) {
	seed := byte(1)
	return func(b []byte) {
		for i := range b {
			seed = seed*31 + 7
			b[i] = seed
		}
	}
}

// run delivers frames until both queues are empty, ticking the clock a
// second at a time for up to limit.
func (p *linkPair) run(limit time.Duration) {
	p.t.Helper()
	for end := p.now.Add(limit); p.now.Before(end); {
		for len(p.toSrv)+len(p.toCli) > 0 {
			if len(p.toSrv) > 0 {
				f := p.toSrv[0]
				p.toSrv = p.toSrv[1:]
				if p.drop == nil || !p.drop(true, f) {
					if err := p.srv.Input(f, p.now); err != nil {
						p.t.Fatalf("server input: %v", err)
					}
				}
			}
			if len(p.toCli) > 0 {
				f := p.toCli[0]
				p.toCli = p.toCli[1:]
				if p.drop == nil || !p.drop(false, f) {
					if err := p.cli.Input(f, p.now); err != nil {
						p.t.Fatalf("client input: %v", err)
					}
				}
			}
		}
		p.now = p.now.Add(time.Second)
		p.srv.Tick(p.now)
		p.cli.Tick(p.now)
	}
}

func TestLinkUpEachAuth(t *testing.T) {
	all := []AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}
	for _, tc := range []struct {
		name     string
		srv, cli []AuthProto
		want     AuthProto
	}{
		{"mschapv2", all, all, AuthMSCHAPv2},
		{"chap when the client will not do mschapv2", all, []AuthProto{AuthCHAPMD5, AuthPAP}, AuthCHAPMD5},
		{"pap only", []AuthProto{AuthPAP}, all, AuthPAP},
		{"server prefers pap, client only mschapv2", []AuthProto{AuthPAP, AuthMSCHAPv2}, []AuthProto{AuthMSCHAPv2}, AuthMSCHAPv2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newLinkPair(t, tc.srv, tc.cli, "s3cret pass")
			p.srv.Open(p.now)
			p.cli.Open(p.now)
			p.run(10 * time.Second)
			if p.srvUp == nil || p.cliUp == nil {
				t.Fatalf("link not up: server %v (%q), client %v (%q)", p.srv.Phase(), p.srvDown, p.cli.Phase(), p.cliDn)
			}
			if p.srvUp.Auth != tc.want || p.srvUp.User != "alice" {
				t.Errorf("server: auth %v user %q, want %v alice", p.srvUp.Auth, p.srvUp.User, tc.want)
			}
			if p.cliUp.Local != poolAddr || p.cliUp.Peer != srvAddr || len(p.cliUp.DNS) == 0 || p.cliUp.DNS[0] != dnsAddr {
				t.Errorf("client got %+v", *p.cliUp)
			}
			if p.srvUp.Peer != poolAddr {
				t.Errorf("server thinks the client is %v", p.srvUp.Peer)
			}
			// Echoes keep the open link up for a minute.
			p.run(60 * time.Second)
			if p.srvDown != "" || p.cliDn != "" || p.srv.Phase() != PhaseOpen {
				t.Fatalf("open link went down: %q / %q", p.srvDown, p.cliDn)
			}
		})
	}
}

func TestLinkWrongPassword(t *testing.T) {
	for _, a := range []AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP} {
		t.Run(a.String(), func(t *testing.T) {
			p := newLinkPair(t, []AuthProto{a}, []AuthProto{a}, "guess")
			assigned := false
			p.srv.cfg.Assign = func(string) (Addresses, error) { assigned = true; return Addresses{}, nil }
			p.srv.Open(p.now)
			p.cli.Open(p.now)
			p.run(20 * time.Second)
			if p.srvUp != nil || p.cliUp != nil || assigned {
				t.Fatal("a wrong password got a link or an address")
			}
			if !strings.Contains(p.srvDown, "authentication failed") || !strings.Contains(p.cliDn, "authentication failed") {
				t.Errorf("reasons: server %q, client %q", p.srvDown, p.cliDn)
			}
			if p.srvCause.Code != CauseAuthFailed || p.srvCause.Direction != DirPeer {
				t.Errorf("server cause %+v", p.srvCause)
			}
			if p.srv.Phase() != PhaseDead || p.cli.Phase() != PhaseDead {
				t.Errorf("phases %v %v", p.srv.Phase(), p.cli.Phase())
			}
		})
	}
}

func TestLinkNoCommonAuth(t *testing.T) {
	p := newLinkPair(t, []AuthProto{AuthMSCHAPv2}, []AuthProto{AuthPAP}, "s3cret pass")
	p.srv.Open(p.now)
	p.cli.Open(p.now)
	p.run(30 * time.Second)
	if p.srvUp != nil || !strings.Contains(p.srvDown, "none of our authentication protocols") {
		t.Fatalf("server: up %v, down %q", p.srvUp, p.srvDown)
	}
}

func TestLinkAddressRefused(t *testing.T) {
	p := newLinkPair(t, []AuthProto{AuthPAP}, []AuthProto{AuthPAP}, "s3cret pass")
	p.srv.cfg.Assign = func(string) (Addresses, error) { return Addresses{}, errors.New("pool 10.8.0.0/30 is exhausted") }
	p.srv.Open(p.now)
	p.cli.Open(p.now)
	p.run(20 * time.Second)
	if p.cliUp != nil || !strings.Contains(p.srvDown, "exhausted") || p.cliDn == "" || p.srvCause.Code != CauseNoPermittedAddr {
		t.Fatalf("server %q, client %q", p.srvDown, p.cliDn)
	}
}

func TestLinkSilentPeerDeclaredDead(t *testing.T) {
	p := newLinkPair(t, []AuthProto{AuthPAP}, []AuthProto{AuthPAP}, "s3cret pass")
	p.srv.Open(p.now)
	p.cli.Open(p.now)
	p.run(5 * time.Second)
	if p.srvUp == nil {
		t.Fatal("not up")
	}
	p.drop = func(toServer bool, _ []byte) bool { return toServer } // the client vanishes
	p.run(120 * time.Second)
	if !strings.Contains(p.srvDown, "echo") || p.srvCause.Code != CauseEchoTimeout {
		t.Fatalf("server down reason %q", p.srvDown)
	}
}

func TestLinkTerminateAndProtocolReject(t *testing.T) {
	p := newLinkPair(t, []AuthProto{AuthMSCHAPv2}, []AuthProto{AuthMSCHAPv2}, "s3cret pass")
	p.srv.Open(p.now)
	p.cli.Open(p.now)
	p.run(5 * time.Second)
	// CCP from the client is answered with an LCP Protocol-Reject.
	ccp := AppendFrameHeader(nil, ProtoCCP, false, false)
	ccp = Packet{Code: CodeConfigureRequest, ID: 1, Data: []byte{18, 6, 0, 0, 0, 0x40}}.Append(ccp)
	if err := p.srv.Input(ccp, p.now); err != nil {
		t.Fatal(err)
	}
	if len(p.toCli) != 1 {
		t.Fatalf("%d answers to CCP", len(p.toCli))
	}
	proto, payload, _ := ParseFrame(p.toCli[0])
	if rej, _ := ParsePacket(payload); proto != ProtoLCP || rej.Code != CodeProtocolReject || rej.Data[0] != 0x80 || rej.Data[1] != 0xfd {
		t.Fatalf("answer to CCP: %x", p.toCli[0])
	}
	p.run(2 * time.Second)
	// Data frames are not the control plane's.
	if err := p.srv.Input([]byte{0xff, 0x03, 0x00, 0x21, 0x45}, p.now); !errors.Is(err, ErrDataFrame) {
		t.Errorf("IPv4 frame: %v", err)
	}
	if err := p.srv.Input([]byte{0xff, 0x03}, p.now); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated frame: %v", err)
	}
	p.cli.Close(p.now, "user hung up")
	p.run(10 * time.Second)
	if p.cliDn != "user hung up" || !strings.Contains(p.srvDown, "Terminate-Request") ||
		p.srvCause != (Disconnect{Code: CauseNormal, Proto: ProtoLCP, Direction: DirPeer, Reason: p.srvDown}) || p.cliCause.Direction != DirLocal {
		t.Fatalf("client %q, server %q", p.cliDn, p.srvDown)
	}
}

func TestLinkLowerLayerDown(t *testing.T) {
	p := newLinkPair(t, []AuthProto{AuthPAP}, []AuthProto{AuthPAP}, "s3cret pass")
	p.srv.Open(p.now)
	p.cli.Open(p.now)
	p.run(5 * time.Second)
	p.srv.Down("L2TP session cleared")
	if p.srvDown != "L2TP session cleared" || p.srv.Phase() != PhaseDead {
		t.Fatalf("%q %v", p.srvDown, p.srv.Phase())
	}
	n := len(p.toCli)
	p.srv.Tick(p.now.Add(time.Minute))
	if len(p.toCli) != n {
		t.Error("a dead link still sends")
	}
}

// A lost Configure-Ack makes the other side see a Configure-Request while
// Opened (RFC 1661 section 4.2): before the link is up, that renegotiation
// is followed and the link still comes up, for each side losing it.
func TestLinkSurvivesLostConfigureAck(t *testing.T) {
	for _, toServer := range []bool{false, true} {
		p := newLinkPair(t, []AuthProto{AuthMSCHAPv2}, []AuthProto{AuthMSCHAPv2}, "s3cret pass")
		dropped := false
		p.drop = func(ts bool, f []byte) bool {
			proto, payload, err := ParseFrame(f)
			if err != nil || proto != ProtoLCP || dropped || ts != toServer {
				return false
			}
			if pk, err := ParsePacket(payload); err == nil && pk.Code == CodeConfigureAck {
				dropped = true
				return true
			}
			return false
		}
		p.srv.Open(p.now)
		p.cli.Open(p.now)
		p.run(30 * time.Second)
		if !dropped || p.srvUp == nil || p.cliUp == nil {
			t.Fatalf("lost Ack to the server %v: dropped %v, server up %v (%q), client up %v (%q)", toServer, dropped,
				p.srvUp != nil, p.srvDown, p.cliUp != nil, p.cliDn)
		}
	}
}

// TestLinkRandomLoss: at 10 % random loss each way, every auth protocol
// brings the link up, for every one of many loss patterns (RFC 1661's
// restart timer and RFC 1994's challenge retransmission carry it).
func TestLinkRandomLoss(t *testing.T) {
	for _, a := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		for seed := range 1000 {
			p := newLinkPair(t, []AuthProto{a}, []AuthProto{a}, "s3cret pass")
			rng := rand.New(rand.NewPCG(uint64(seed), 2))
			var log []string
			p.drop = func(toServer bool, f []byte) bool {
				d := rng.IntN(100) < 10
				log = append(log, describeFrame(toServer, f, d))
				return d
			}
			p.srv.Open(p.now)
			p.cli.Open(p.now)
			p.run(60 * time.Second)
			if p.srvUp == nil || p.cliUp == nil {
				t.Fatalf("%v seed %d: server up %v (%q), client up %v (%q)\n%s", a, seed,
					p.srvUp != nil, p.srvDown, p.cliUp != nil, p.cliDn, strings.Join(log, "\n"))
			}
		}
	}
}

func describeFrame(toServer bool, f []byte, dropped bool) string {
	dir := "cli->srv"
	if !toServer {
		dir = "srv->cli"
	}
	proto, payload, err := ParseFrame(f)
	s := fmt.Sprintf("%s proto %#04x", dir, uint16(proto))
	if pk, perr := ParsePacket(payload); err == nil && perr == nil {
		s += fmt.Sprintf(" code %d id %d", pk.Code, pk.ID)
	}
	if dropped {
		s += " DROPPED"
	}
	return s
}

// TestLinkAsyncCheck: with StartCheck, the server's link waits for
// CheckDone while the client retransmits its Response, starts one check
// only, and comes up once the result is in; a late result for a link that
// ended is ignored.
func TestLinkAsyncCheck(t *testing.T) {
	for _, a := range []AuthProto{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP} {
		t.Run(a.String(), func(t *testing.T) {
			p := newLinkPair(t, []AuthProto{a}, []AuthProto{a}, "s3cret pass")
			var asked []Credentials
			p.srv.cfg.StartCheck = func(c Credentials) { asked = append(asked, c) }
			p.srv.Open(p.now)
			p.cli.Open(p.now)
			p.run(10 * time.Second) // the client retransmits meanwhile
			if len(asked) != 1 || p.srvUp != nil || p.cliUp != nil {
				t.Fatalf("%d checks started, server up %v, client up %v", len(asked), p.srvUp != nil, p.cliUp != nil)
			}
			p.srv.CheckDone(p.now, CheckWithPassword("s3cret pass")(asked[0]))
			p.run(5 * time.Second)
			if p.srvUp == nil || p.cliUp == nil || p.srvUp.User != "alice" {
				t.Fatalf("not up after the check: server %v (%q), client %v (%q)", p.srv.Phase(), p.srvDown, p.cli.Phase(), p.cliDn)
			}
			p.srv.CheckDone(p.now, AuthResult{}) // a stray result changes nothing
			p.run(2 * time.Second)
			if p.srvDown != "" || p.srv.Phase() != PhaseOpen {
				t.Fatalf("a stray result took the link down: %q", p.srvDown)
			}
		})
	}
}
