package ppp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// FuzzLink feeds a sequence of frames, with clock ticks between them, to
// one end of a link: LCP and IPCP option lists reach Check, Nakked and
// Rejected, and authentication packets reach the authenticator or the
// peer, in whatever phase the sequence has brought the link to. Whatever
// arrives, the link must not panic, must send only well-formed frames,
// and must report up and down at most once each, never up after down.
//
// Input: byte 0 picks the end (bit 0: client), its protocols (bits 1-2)
// and, for a server, a check that answers at the next tick (bit 3,
// StartCheck); then records of [length][frame], a zero length being a
// 4 s tick.
func FuzzLink(f *testing.F) {
	for _, a := range []AuthProto{AuthPAP, AuthCHAPMD5, AuthMSCHAPv2} {
		toSrv, toCli := recordLink(f, a)
		f.Add(encodeFrames(linkMode(false, a), toSrv))
		f.Add(encodeFrames(linkMode(false, a)|8, toSrv))
		f.Add(encodeFrames(linkMode(true, a), toCli))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		client, auth := in[0]&1 == 1, fuzzAuthSets[(in[0]>>1)%byte(len(fuzzAuthSets))]
		now := time.Unix(1000, 0)
		ups, downs := 0, 0
		cfg := LinkConfig{Server: !client, Auth: auth, Name: "gatehouse", User: "alice", Password: "s3cret pass",
			Check: CheckWithPassword("s3cret pass"),
			Assign: func(string) (Addresses, error) {
				return Addresses{Local: srvAddr, Peer: poolAddr, DNS: []netip.Addr{dnsAddr}}, nil
			},
			EchoInterval: 10 * time.Second, Random: fakeRandom(),
			Send: func(frame []byte) {
				proto, payload, err := ParseFrame(frame)
				if err != nil {
					t.Fatalf("sent a frame we cannot parse: %v (% x)", err, frame)
				}
				if proto >= 0x8000 {
					if _, err := ParsePacket(payload); err != nil {
						t.Fatalf("sent a control packet we cannot parse: %v (% x)", err, frame)
					}
				}
			},
			OnUp: func(LinkUp) {
				if ups++; ups > 1 || downs > 0 {
					t.Fatalf("up %d times, after %d downs", ups, downs)
				}
			},
			OnDown: func(Disconnect) {
				if downs++; downs > 1 {
					t.Fatal("down twice")
				}
			},
		}
		var pending []Credentials
		if in[0]&8 != 0 {
			cfg.StartCheck = func(c Credentials) { pending = append(pending, c) }
		}
		l := NewLink(cfg)
		l.Open(now)
		for rest := in[1:]; len(rest) > 0; {
			n := int(rest[0])
			rest = rest[1:]
			if n == 0 {
				now = now.Add(4 * time.Second)
				for _, c := range pending {
					l.CheckDone(now, cfg.Check(c))
				}
				pending = nil
				l.Tick(now)
				continue
			}
			n = min(n, len(rest))
			_ = l.Input(rest[:n], now) // errors are the caller's counted drops
			rest = rest[n:]
			if p := l.Phase(); p < PhaseDead || p > PhaseTerminate {
				t.Fatalf("phase %d", p)
			}
		}
		// However it went, the link ends within its timers.
		for i := 0; i < 200 && downs == 0; i++ {
			now = now.Add(4 * time.Second)
			l.Tick(now)
			if i == 100 {
				l.Close(now, "fuzz over")
			}
		}
		if downs != 1 {
			t.Fatalf("link never went down (phase %v)", l.Phase())
		}
	})
}

var fuzzAuthSets = [][]AuthProto{
	{AuthMSCHAPv2, AuthCHAPMD5, AuthPAP}, {AuthPAP}, {AuthCHAPMD5}, {AuthMSCHAPv2},
}

func linkMode(client bool, a AuthProto) byte {
	b := byte(0)
	if client {
		b = 1
	}
	for i, set := range fuzzAuthSets[1:] {
		if set[0] == a {
			b |= byte(i+1) << 1
		}
	}
	return b
}

// recordLink runs a clean link and returns what each end received.
func recordLink(tb testing.TB, a AuthProto) (toSrv, toCli [][]byte) {
	p := newLinkPair(tb, []AuthProto{a}, []AuthProto{a}, "s3cret pass")
	p.drop = func(toServer bool, f []byte) bool {
		if toServer {
			toSrv = append(toSrv, bytes.Clone(f))
		} else {
			toCli = append(toCli, bytes.Clone(f))
		}
		return false
	}
	p.srv.Open(p.now)
	p.cli.Open(p.now)
	p.run(30 * time.Second)
	if p.srvUp == nil {
		tb.Fatalf("%v: recorded link did not come up", a)
	}
	return toSrv, toCli
}

func encodeFrames(mode byte, frames [][]byte) []byte {
	out := []byte{mode}
	for _, f := range frames {
		if len(f) > 0 && len(f) < 256 {
			out = append(out, byte(len(f)))
			out = append(out, f...)
			out = append(out, 0) // a tick after each
		}
	}
	return out
}
