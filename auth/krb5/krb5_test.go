package krb5

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

const realm = "GATEHOUSE.TEST"

var (
	service = types.NewPrincipalName(nametype.KRB_NT_SRV_HST, "host/gw-b.gatehouse.test")
	machine = types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, "host/gw-a.gatehouse.test")
)

// gwB is the service principal tickets are for.
const gwB = "host/gw-b.gatehouse.test@" + realm

// acceptCfg accepts tickets for gw-b with kt, no replay cache.
func acceptCfg(kt *keytab.Keytab, skew time.Duration) AcceptConfig {
	return AcceptConfig{Keytab: kt, Service: gwB, MaxSkew: skew}
}

// serviceKeytab is gw-b's keytab: its key derived from password.
func serviceKeytab(t testing.TB, password string, kvno uint8) *keytab.Keytab {
	t.Helper()
	kt := keytab.New()
	if err := kt.AddEntry("host/gw-b.gatehouse.test", realm, password, time.Now(), kvno, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	return kt
}

// ticket is what a KDC would issue gw-a for gw-b, valid from start for
// ten hours; the KDC's part is played with gw-b's keytab.
func ticket(t testing.TB, kt *keytab.Keytab, start time.Time) (messages.Ticket, types.EncryptionKey) {
	t.Helper()
	tkt, key, err := messages.NewTicket(machine, realm, service, realm, asn1.BitString{Bytes: make([]byte, 4), BitLength: 32}, kt,
		etypeID.AES256_CTS_HMAC_SHA1_96, 3, start, start, start.Add(10*time.Hour), start.Add(10*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tkt, key
}

// handshake runs AP-REQ and AP-REP between the two sides.
func handshake(t *testing.T, kt *keytab.Keytab) (*Initiator, *Acceptor) {
	t.Helper()
	now := time.Now()
	tkt, key := ticket(t, kt, now.Add(-time.Minute))
	i, req, err := NewInitiator(tkt, key, machine, realm, now)
	if err != nil {
		t.Fatal(err)
	}
	if req[0] != 0x60 || !bytes.Contains(req[:20], []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02, 0x01, 0x00}) {
		t.Fatalf("AP-REQ token does not start with the RFC 1964 framing: %x", req[:20])
	}
	a, rep, err := Accept(acceptCfg(kt, 5*time.Minute), req, now)
	if err != nil {
		t.Fatal(err)
	}
	if i.Complete() {
		t.Fatal("the initiator is complete before the AP-REP")
	}
	if err := i.Step(rep); err != nil {
		t.Fatal(err)
	}
	return i, a
}

func TestMutualAuthenticationAndWrap(t *testing.T) {
	kt := serviceKeytab(t, "gw-b machine password", 3)
	i, a := handshake(t, kt)
	if !i.Complete() || !a.Complete() || a.Peer() != "host/gw-a.gatehouse.test@"+realm || i.Peer() != "host/gw-b.gatehouse.test@"+realm {
		t.Fatalf("contexts: initiator %v %s, acceptor %v %s", i.Complete(), i.Peer(), a.Complete(), a.Peer())
	}
	// HASH_I one way, HASH_R the other, as IKE does.
	for _, dir := range []struct {
		from, to *Context
		what     string
	}{{&i.Context, &a.Context, "HASH_I"}, {&a.Context, &i.Context, "HASH_R"}, {&i.Context, &a.Context, "second"}} {
		tok, err := dir.from.Wrap([]byte(dir.what))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(tok, []byte(dir.what)) {
			t.Fatalf("%s in clear in a sealed token", dir.what)
		}
		got, err := dir.to.Unwrap(tok)
		if err != nil || string(got) != dir.what {
			t.Fatalf("%s: %q %v", dir.what, got, err)
		}
		if _, err := dir.to.Unwrap(tok); !errors.Is(err, ErrSequence) {
			t.Fatalf("%s replayed: %v", dir.what, err)
		}
	}
	// A flipped bit, our own token back, and rotation (RRC) by a sender.
	tok, _ := i.Wrap([]byte("tampered"))
	tok[len(tok)-1] ^= 1
	if _, err := a.Unwrap(tok); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("tampered: %v", err)
	}
	i.sendSeq-- // the tampered token counts as lost; the next takes its number
	tok, _ = a.Wrap([]byte("mine"))
	if _, err := a.Unwrap(tok); !errors.Is(err, ErrMalformed) {
		t.Fatalf("own token: %v", err)
	}
	if got, err := i.Unwrap(tok); err != nil || string(got) != "mine" {
		t.Fatalf("after the refusals: %q %v", got, err)
	}
	tok, _ = i.Wrap([]byte("rotated by 28, as Windows sends"))
	body := tok[wrapHeaderLen:]
	r := len(body) - 28
	rot := append(append(append([]byte(nil), tok[:wrapHeaderLen]...), body[r:]...), body[:r]...)
	rot[7] = 28
	if got, err := a.Unwrap(rot); err != nil || string(got) != "rotated by 28, as Windows sends" {
		t.Fatalf("rotated: %q %v", got, err)
	}
}

// freshRequest is gw-b's keytab, a ticket for gw-b from a minute ago,
// and gw-a's AP-REQ with it at now.
func freshRequest(t *testing.T, now time.Time) (*keytab.Keytab, messages.Ticket, types.EncryptionKey, []byte) {
	t.Helper()
	kt := serviceKeytab(t, "gw-b machine password", 3)
	tkt, key := ticket(t, kt, now.Add(-time.Minute))
	_, req, err := NewInitiator(tkt, key, machine, realm, now)
	if err != nil {
		t.Fatal(err)
	}
	return kt, tkt, key, req
}

func TestRefusals(t *testing.T) {
	now := time.Now()
	kt, tkt, key, req := freshRequest(t, now)
	// A keytab with another password: the ticket does not open.
	if _, _, err := Accept(acceptCfg(serviceKeytab(t, "an old password", 2), 5*time.Minute), req, now); !errors.Is(err, ErrKeytab) {
		t.Fatalf("wrong keytab: %v", err)
	}
	// Our clock 10 minutes ahead of the initiator's.
	if _, _, err := Accept(acceptCfg(kt, 5*time.Minute), req, now.Add(10*time.Minute)); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("skew: %v", err)
	}
	// A ticket that ended yesterday.
	old, oldKey := ticket(t, kt, now.Add(-34*time.Hour))
	_, req2, _ := NewInitiator(old, oldKey, machine, realm, now)
	if _, _, err := Accept(acceptCfg(kt, 5*time.Minute), req2, now); !errors.Is(err, ErrTicket) {
		t.Fatalf("expired ticket: %v", err)
	}
	// An AP-REP for another authenticator fails mutual authentication.
	i, _, _ := NewInitiator(tkt, key, machine, realm, now.Add(time.Second))
	_, rep, err := Accept(acceptCfg(kt, 5*time.Minute), req, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := i.Step(rep); !errors.Is(err, ErrMutualAuth) {
		t.Fatalf("AP-REP for another request: %v", err)
	}
	if _, err := i.Wrap([]byte("x")); !errors.Is(err, ErrNotComplete) {
		t.Fatalf("wrap before completion: %v", err)
	}
	// Not Kerberos at all.
	if _, _, err := Accept(acceptCfg(kt, time.Minute), []byte{0x60, 0x03, 0x06, 0x01, 0x00}, now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
}

// TestAcceptOnlyOurService: a keytab that also holds another service's
// key (a shared host keytab) opens that service's tickets, but the
// acceptor takes only tickets for its configured principal.
func TestAcceptOnlyOurService(t *testing.T) {
	kt := serviceKeytab(t, "gw-b machine password", 3)
	if err := kt.AddEntry("cifs/gw-b.gatehouse.test", realm, "file server password", time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cifs := types.NewPrincipalName(nametype.KRB_NT_SRV_HST, "cifs/gw-b.gatehouse.test")
	tkt, key, err := messages.NewTicket(machine, realm, cifs, realm, asn1.BitString{Bytes: make([]byte, 4), BitLength: 32}, kt,
		etypeID.AES256_CTS_HMAC_SHA1_96, 1, now, now, now.Add(time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, req, err := NewInitiator(tkt, key, machine, realm, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Accept(acceptCfg(kt, 5*time.Minute), req, now); !errors.Is(err, ErrService) || !strings.Contains(err.Error(), "cifs/gw-b.gatehouse.test@") {
		t.Fatalf("a ticket for cifs/: %v", err)
	}
	cfg := acceptCfg(kt, 5*time.Minute)
	cfg.Service = "cifs/gw-b.gatehouse.test@" + realm
	if _, _, err := Accept(cfg, req, now); err != nil {
		t.Fatalf("configured for cifs/, the same ticket: %v", err)
	}
}

// TestReplayedAuthenticator: with a replay cache, the same AP-REQ is
// accepted once; a new one from the same client still is.
func TestReplayedAuthenticator(t *testing.T) {
	now := time.Now()
	kt, tkt, key, req := freshRequest(t, now)
	cfg := acceptCfg(kt, 5*time.Minute)
	cfg.Replay = NewReplayCache(16)
	if _, _, err := Accept(cfg, req, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Accept(cfg, req, now.Add(time.Second)); !errors.Is(err, ErrReplay) || !strings.Contains(err.Error(), "host/gw-a.gatehouse.test@") {
		t.Fatalf("the same AP-REQ again: %v", err)
	}
	_, req2, _ := NewInitiator(tkt, key, machine, realm, now.Add(2*time.Second))
	if _, _, err := Accept(cfg, req2, now.Add(2*time.Second)); err != nil {
		t.Fatalf("a new authenticator: %v", err)
	}
	// Full of live entries, the cache refuses rather than forgets.
	small := acceptCfg(kt, 5*time.Minute)
	small.Replay = NewReplayCache(1)
	Accept(small, req, now)
	if _, _, err := Accept(small, req2, now); !errors.Is(err, ErrReplay) {
		t.Fatalf("a full cache: %v", err)
	}
	// Past the skew window the old entry goes, and room is made.
	_, req3, _ := NewInitiator(tkt, key, machine, realm, now.Add(10*time.Minute))
	if _, _, err := Accept(small, req3, now.Add(10*time.Minute)); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestKRBErrorToken: a KRB-ERROR from the acceptor is the initiator's
// refusal, with the error's text.
func TestKRBErrorToken(t *testing.T) {
	e := messages.NewKRBError(service, realm, 37, "clock skew too great")
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	kt := serviceKeytab(t, "pw", 3)
	tkt, key := ticket(t, kt, time.Now())
	i, _, _ := NewInitiator(tkt, key, machine, realm, time.Now())
	if err := i.Step(frame(tokError, b)); !errors.Is(err, ErrPeerRefused) {
		t.Fatalf("KRB-ERROR: %v", err)
	}
}

// FuzzAccept: any token is refused with one of the package's errors,
// never a panic.
func FuzzAccept(f *testing.F) {
	kt := serviceKeytab(f, "gw-b machine password", 3)
	tkt, key := ticket(f, kt, time.Now())
	_, req, _ := NewInitiator(tkt, key, machine, realm, time.Now())
	f.Add(req)
	f.Add(req[:40])
	f.Add([]byte{0x60, 0x00})
	now := time.Now()
	f.Fuzz(func(t *testing.T, b []byte) {
		a, rep, err := Accept(acceptCfg(kt, 5*time.Minute), b, now)
		if err != nil {
			// Every refusal is one a caller can tell apart.
			for _, kind := range []error{ErrMalformed, ErrService, ErrKeytab, ErrTicket, ErrIntegrity, ErrClockSkew} {
				if errors.Is(err, kind) {
					return
				}
			}
			t.Fatalf("refused with an error of no kind the package names: %v", err)
		}
		// Only what the keytab's key sealed gets in, and it names the
		// client the ticket was issued to.
		if want := machine.PrincipalNameString() + "@" + realm; a.Peer() != want || !a.Complete() || len(rep) == 0 {
			t.Fatalf("accepted as %q (complete %v, %d bytes of AP-REP), want %q", a.Peer(), a.Complete(), len(rep), want)
		}
	})
}

// FuzzUnwrap: any Wrap token is refused or opened, never a panic.
func FuzzUnwrap(f *testing.F) {
	kt := serviceKeytab(f, "gw-b machine password", 3)
	now := time.Now()
	tkt, key := ticket(f, kt, now)
	i, req, _ := NewInitiator(tkt, key, machine, realm, now)
	a, rep, err := Accept(acceptCfg(kt, 5*time.Minute), req, now)
	if err != nil {
		f.Fatal(err)
	}
	if err := i.Step(rep); err != nil {
		f.Fatal(err)
	}
	tok, _ := i.Wrap([]byte("HASH_I"))
	f.Add(tok)
	f.Add(tok[:wrapHeaderLen])
	f.Fuzz(func(t *testing.T, b []byte) {
		c := a.Context // a copy: sequence numbers stay put
		_, _ = c.Unwrap(b)
	})
}
