package radius

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"

	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/ppp"
)

const users = `alice Cleartext-Password := "alice-secret"
	Framed-IP-Address = 10.8.0.77,
	Session-Timeout = 3600,
	Idle-Timeout = 600,
	Class = "gold",
	Reply-Message = "welcome, alice"
bob Cleartext-Password := "bob-secret"
`

func startFreeRADIUS(t *testing.T) *netns.FreeRADIUS {
	if testing.Short() {
		t.Skip("starts FreeRADIUS")
	}
	return netns.StartFreeRADIUS(t, nil, "127.0.0.1", "lab-radius-secret", users)
}

func client(t *testing.T, servers ...Server) *Client {
	t.Helper()
	c, err := New(Config{Servers: servers, Timeout: time.Second, NASIdentifier: "gatehouse-test"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func random16(t *testing.T) []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

func chapRequest(t *testing.T, user, password string) Request {
	ch := random16(t)
	h := md5.New()
	h.Write([]byte{7})
	h.Write([]byte(password))
	h.Write(ch)
	return Request{Method: CHAP, User: user, ID: 7, Challenge: ch, Response: h.Sum(nil)}
}

func mschapRequest(t *testing.T, user, password string) (Request, [16]byte, [16]byte, [24]byte) {
	var auth, peer [16]byte
	copy(auth[:], random16(t))
	copy(peer[:], random16(t))
	nt := ppp.GenerateNTResponse(auth, peer, user, ppp.NTPasswordHash(password))
	return Request{Method: MSCHAPv2, User: user, ID: 9, Challenge: auth[:], PeerChallenge: peer[:], Response: nt[:]}, auth, peer, nt
}

// TestAgainstFreeRADIUS: PAP, CHAP and MS-CHAPv2 users accepted by a real
// FreeRADIUS, with their settings; wrong passwords rejected.
func TestAgainstFreeRADIUS(t *testing.T) {
	fr := startFreeRADIUS(t)
	c := client(t, Server{Addr: fr.AuthAddr, Secret: []byte(fr.Secret)})
	ctx := context.Background()

	res, err := c.Authenticate(ctx, Request{Method: PAP, User: "alice", Password: []byte("alice-secret"), CallingStation: "198.51.100.7"})
	if err != nil || !res.Accept {
		t.Fatalf("PAP alice: %+v %v", res, err)
	}
	if res.FramedAddress != netip.MustParseAddr("10.8.0.77") || res.SessionTimeout != time.Hour || res.IdleTimeout != 10*time.Minute ||
		len(res.Class) != 1 || string(res.Class[0]) != "gold" || res.Message != "welcome, alice" || res.Server != fr.AuthAddr {
		t.Fatalf("alice's settings: %+v", res)
	}
	if res, err := c.Authenticate(ctx, Request{Method: PAP, User: "alice", Password: []byte("wrong")}); err != nil || res.Accept {
		t.Fatalf("PAP with a wrong password: %+v %v", res, err)
	}

	if res, err := c.Authenticate(ctx, chapRequest(t, "bob", "bob-secret")); err != nil || !res.Accept || res.FramedAddress.IsValid() {
		t.Fatalf("CHAP bob: %+v %v", res, err)
	}
	if res, err := c.Authenticate(ctx, chapRequest(t, "bob", "not-bob's")); err != nil || res.Accept {
		t.Fatalf("CHAP with a wrong password: %+v %v", res, err)
	}

	req, auth, peer, nt := mschapRequest(t, "alice", "alice-secret")
	res, err = c.Authenticate(ctx, req)
	if err != nil || !res.Accept {
		t.Fatalf("MS-CHAPv2 alice: %+v %v", res, err)
	}
	hash := ppp.NTPasswordHash("alice-secret")
	if !ppp.CheckAuthenticatorResponse(hash, nt, peer, auth, "alice", res.AuthenticatorResponse) {
		t.Fatalf("the server's S= does not prove the password: %q", res.AuthenticatorResponse)
	}
	master := ppp.MasterKey(hash, nt)
	send, recv := ppp.AsymmetricStartKey(master, true, true), ppp.AsymmetricStartKey(master, false, true)
	if !bytes.Equal(res.MPPESendKey, send[:]) || !bytes.Equal(res.MPPERecvKey, recv[:]) {
		t.Fatalf("MPPE keys: send %x recv %x, want %x %x", res.MPPESendKey, res.MPPERecvKey, send, recv)
	}
	req, _, _, _ = mschapRequest(t, "alice", "guess")
	if res, err := c.Authenticate(ctx, req); err != nil || res.Accept || !strings.Contains(res.Message, "E=691") {
		t.Fatalf("MS-CHAPv2 with a wrong password: %+v %v", res, err)
	}
	if !strings.Contains(fr.Output(), "Login OK: [alice]") {
		t.Fatalf("FreeRADIUS did not log the login:\n%s", fr.Output())
	}
}

// TestFailover: the first server is silent (nothing listens), the second
// answers within the timeout; the silent one is then asked last.
func TestFailover(t *testing.T) {
	fr := startFreeRADIUS(t)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c := client(t, Server{Addr: silent.LocalAddr().String(), Secret: []byte("x")}, Server{Addr: fr.AuthAddr, Secret: []byte(fr.Secret)})
	res, err := c.Authenticate(context.Background(), Request{Method: PAP, User: "bob", Password: []byte("bob-secret")})
	if err != nil || !res.Accept || res.Server != fr.AuthAddr {
		t.Fatalf("%+v %v", res, err)
	}
	// The silent one was asked first, for its whole timeout.
	if len(res.Unanswered) != 1 || !strings.HasPrefix(res.Unanswered[0], silent.LocalAddr().String()+": no answer within") {
		t.Fatalf("unanswered servers %q", res.Unanswered)
	}
	if o := c.order(); o[0].Addr != fr.AuthAddr {
		t.Fatalf("the silent server should now be asked last: %v", o)
	}
}

// TestWrongSecret: an answer under another secret fails its checks and
// counts as no answer.
func TestWrongSecret(t *testing.T) {
	fr := startFreeRADIUS(t)
	c := client(t, Server{Addr: fr.AuthAddr, Secret: []byte("not-the-secret")})
	_, err := c.Authenticate(context.Background(), Request{Method: PAP, User: "bob", Password: []byte("bob-secret")})
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("%v", err)
	}
}

// fakeServer answers every Access-Request with what answer builds (none,
// one or several packets, sent in order), on loopback.
func fakeServer(t *testing.T, secret []byte, answer func(req *radius.Packet, raw []byte) [][]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			raw := bytes.Clone(buf[:n])
			req, err := radius.Parse(raw, secret)
			if err != nil {
				continue
			}
			for _, b := range answer(req, raw) {
				pc.WriteTo(b, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// sign puts an answer's Message-Authenticator in, computed over it with
// the request's authenticator (RFC 3579 section 3.2); bad spoils it.
func sign(resp, req *radius.Packet, secret []byte, bad bool) {
	rfc2869.MessageAuthenticator_Set(resp, make([]byte, 16))
	enc, _ := resp.Encode()
	copy(enc[4:20], req.Authenticator[:])
	mac := hmacMD5(secret, enc)
	if bad {
		mac[0] ^= 1
	}
	rfc2869.MessageAuthenticator_Set(resp, mac)
}

// TestMessageAuthenticator: every request carries a valid one; an answer
// with a bad one is refused; one without is refused only when required.
func TestMessageAuthenticator(t *testing.T) {
	secret := []byte("fake-server-secret")
	var sawMA bool
	mode := "none"
	addr := fakeServer(t, secret, func(req *radius.Packet, raw []byte) [][]byte {
		// The request's own Message-Authenticator checks out.
		got := rfc2869.MessageAuthenticator_Get(req)
		b := bytes.Clone(raw)
		i := bytes.Index(b, append([]byte{80, 18}, got...))
		clear(b[i+2 : i+18])
		if len(got) == 16 && bytes.Equal(hmacMD5(secret, b), got) {
			sawMA = true
		}
		resp := req.Response(radius.CodeAccessAccept)
		if mode != "none" {
			sign(resp, req, secret, mode == "bad")
		}
		out, _ := resp.Encode()
		return [][]byte{out}
	})
	for _, c := range []struct {
		mode     string
		required bool
		ok       bool
	}{{"none", false, true}, {"none", true, false}, {"good", true, true}, {"bad", false, false}} {
		mode = c.mode
		cl, err := New(Config{Servers: []Server{{Addr: addr, Secret: secret}}, Timeout: 300 * time.Millisecond, RequireMessageAuthenticator: c.required})
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Authenticate(context.Background(), Request{Method: PAP, User: "u", Password: []byte("p")})
		if (err == nil && res.Accept) != c.ok || (!c.ok && !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrNoMessageAuthenticator)) {
			t.Errorf("answer with %s Message-Authenticator (required %v): %+v %v", c.mode, c.required, res, err)
		}
		if c.mode == "none" && c.required && (!errors.Is(err, ErrNoMessageAuthenticator) || !strings.Contains(err.Error(), "require_message_authenticator: false") ||
			!strings.Contains(err.Error(), "post-auth")) {
			t.Errorf("a missing Message-Authenticator should say what to change on either side: %v", err)
		}
	}
	if !sawMA {
		t.Fatal("the request's Message-Authenticator did not verify")
	}
}

// TestForgedAnswerIgnored: someone on the path answers first with a
// packet that fails the Response Authenticator (an Access-Reject under
// another secret); it is dropped and the server's own Accept, 50 ms
// later, decides. With only forged answers, the error says so.
func TestForgedAnswerIgnored(t *testing.T) {
	secret := []byte("the-real-secret")
	var genuine atomic.Bool
	genuine.Store(true)
	addr := fakeServer(t, secret, func(req *radius.Packet, _ []byte) [][]byte {
		forged := req.Response(radius.CodeAccessReject)
		forged.Secret = []byte("a guess")
		f, _ := forged.Encode()
		if !genuine.Load() {
			return [][]byte{f}
		}
		resp := req.Response(radius.CodeAccessAccept)
		sign(resp, req, secret, false)
		b, _ := resp.Encode()
		return [][]byte{f, b} // the forgery arrives first
	})
	cl, err := New(Config{Servers: []Server{{Addr: addr, Secret: secret}}, Timeout: time.Second, Tries: 1, RequireMessageAuthenticator: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := cl.Authenticate(context.Background(), Request{Method: PAP, User: "u", Password: []byte("p")})
	if err != nil || !res.Accept {
		t.Fatalf("the forged reject decided: %+v %v", res, err)
	}
	genuine.Store(false)
	cl, _ = New(Config{Servers: []Server{{Addr: addr, Secret: secret}}, Timeout: 300 * time.Millisecond, Tries: 1})
	if _, err := cl.Authenticate(context.Background(), Request{Method: PAP, User: "u", Password: []byte("p")}); !errors.Is(err, ErrBadResponse) ||
		!strings.Contains(err.Error(), "failed the Response Authenticator check") {
		t.Fatalf("only forged answers: %v", err)
	}
}

// TestFramedAddressSpecialValues: 255.255.255.254 and 255.255.255.255 ask
// for a pool address (RFC 2865 section 5.8).
func TestFramedAddressSpecialValues(t *testing.T) {
	secret := []byte("s")
	var ip net.IP
	addr := fakeServer(t, secret, func(req *radius.Packet, _ []byte) [][]byte {
		resp := req.Response(radius.CodeAccessAccept)
		rfc2865.FramedIPAddress_Set(resp, ip)
		out, _ := resp.Encode()
		return [][]byte{out}
	})
	c := client(t, Server{Addr: addr, Secret: secret})
	for in, want := range map[string]netip.Addr{"255.255.255.254": {}, "255.255.255.255": {}, "10.8.0.9": netip.MustParseAddr("10.8.0.9")} {
		ip = net.ParseIP(in)
		res, err := c.Authenticate(context.Background(), Request{Method: PAP, User: "u", Password: []byte("p")})
		if err != nil || res.FramedAddress != want {
			t.Errorf("%s: %v %v", in, res.FramedAddress, err)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Servers: []Server{{Addr: "127.0.0.1:1812"}}}, {Servers: []Server{{Addr: "nohost", Secret: []byte("s")}}}} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// FuzzRead: whatever comes back from a server, read refuses or reads it
// without panicking.
func FuzzRead(f *testing.F) {
	secret := []byte("fuzz-secret")
	req := radius.New(radius.CodeAccessRequest, secret)
	rfc2865.UserName_SetString(req, "u")
	reqB, _ := encodeWithAuthenticator(req)
	resp := req.Response(radius.CodeAccessAccept)
	rfc2865.FramedIPAddress_Set(resp, net.IPv4(10, 8, 0, 1))
	rfc2865.ReplyMessage_SetString(resp, "hi")
	unsigned, _ := resp.Encode()
	sign(resp, req, secret, false)
	signed, _ := resp.Encode()
	f.Add(signed)
	f.Add(unsigned)
	f.Add(signed[:20])
	broadcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 20 {
			return
		}
		c := &Client{cfg: Config{RequireMessageAuthenticator: true}}
		res, err := c.read(b, reqB, req, secret)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrNoMessageAuthenticator) {
				t.Fatalf("refused with an error of no kind the package names: %v", err)
			}
			return
		}
		// Taken only with a Message-Authenticator that checks out, and
		// only as the answer its code says.
		if err := checkMessageAuthenticator(b, reqB[4:20], secret, true); err != nil {
			t.Fatalf("an answer read without a valid Message-Authenticator: %v", err)
		}
		if res.Accept != (b[0] == byte(radius.CodeAccessAccept)) {
			t.Fatalf("code %d read as accept=%v", b[0], res.Accept)
		}
		if res.FramedAddress == broadcast {
			t.Fatal("255.255.255.255 taken as the user's address")
		}
	})
}

// TestAccountingAgainstFreeRADIUS: Start, Interim-Update and Stop reach
// FreeRADIUS' detail file with the session's counters, time, cause and
// Class; octets past 4 GiB go in the Gigawords.
func TestAccountingAgainstFreeRADIUS(t *testing.T) {
	fr := startFreeRADIUS(t)
	c := client(t, Server{Addr: fr.AuthAddr, AcctAddr: fr.AcctAddr, Secret: []byte(fr.Secret)})
	ctx := context.Background()
	rec := AcctRecord{SessionID: "4a2b-0001", User: "alice", FramedAddress: netip.MustParseAddr("10.8.0.77"), CallingStation: "198.51.100.7",
		Class: [][]byte{[]byte("gold")}}
	for _, r := range []AcctRecord{
		{Status: AcctStart},
		{Status: AcctInterim, BytesIn: 1000, BytesOut: 2000, PacketsIn: 10, PacketsOut: 20, SessionTime: time.Minute},
		{Status: AcctStop, BytesIn: 5<<32 + 7, BytesOut: 4000, PacketsIn: 40, PacketsOut: 50, SessionTime: 2 * time.Minute, TerminateCause: CauseUserRequest},
	} {
		rec.Status, rec.BytesIn, rec.BytesOut, rec.PacketsIn, rec.PacketsOut, rec.SessionTime, rec.TerminateCause =
			r.Status, r.BytesIn, r.BytesOut, r.PacketsIn, r.PacketsOut, r.SessionTime, r.TerminateCause
		if srv, err := c.Account(ctx, rec); err != nil || srv != fr.AcctAddr {
			t.Fatalf("%v: %s %v", r.Status, srv, err)
		}
	}
	d := fr.Detail()
	for _, want := range []string{"Acct-Status-Type = Start", "Acct-Status-Type = Interim-Update", "Acct-Status-Type = Stop",
		`Acct-Session-Id = "4a2b-0001"`, `User-Name = "alice"`, "Framed-IP-Address = 10.8.0.77", "Acct-Input-Octets = 1000",
		"Acct-Output-Octets = 2000", "Acct-Input-Octets = 7", "Acct-Input-Gigawords = 5", "Acct-Session-Time = 120",
		"Acct-Terminate-Cause = User-Request", "Class = 0x676f6c64", `NAS-Identifier = "gatehouse-test"`} {
		if !strings.Contains(d, want) {
			t.Errorf("the detail file lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("detail:\n%s", d)
	}
}

// daeRequest builds a Dynamic Authorization request for frank: a
// Message-Authenticator unless withMA is false (bad: a wrong one), an
// Event-Timestamp at ts unless it is zero.
func daeRequest(code radius.Code, secret []byte, withMA, badMA bool, ts time.Time) []byte {
	p := radius.New(code, secret)
	rfc2865.UserName_SetString(p, "frank")
	rfc2866.AcctSessionID_SetString(p, "ABCD-00000001")
	rfc2865.FramedIPAddress_Set(p, net.IPv4(10, 8, 0, 7))
	if !ts.IsZero() {
		rfc2869.EventTimestamp_Set(p, ts)
	}
	if withMA {
		rfc2869.MessageAuthenticator_Set(p, make([]byte, 16))
		p.Authenticator = [16]byte{} // zero for the HMAC (RFC 5176 section 3.3)
		b, _ := p.MarshalBinary()
		mac := hmacMD5(secret, b)
		if badMA {
			mac[3] ^= 1
		}
		rfc2869.MessageAuthenticator_Set(p, mac)
	}
	b, _ := p.Encode()
	return b
}

// TestReadDisconnect: a Disconnect-Request under the right secret with a
// Message-Authenticator and a fresh Event-Timestamp names the session; a
// wrong secret, a missing or bad Message-Authenticator, a missing, old or
// future Event-Timestamp and another code are refused; the replies carry
// the right code and Error-Cause.
func TestReadDisconnect(t *testing.T) {
	secret := []byte("dae-secret")
	now := time.Unix(1_800_000_000, 0)
	window := 5 * time.Minute
	d, err := ReadDisconnect(daeRequest(radius.CodeDisconnectRequest, secret, true, false, now.Add(-time.Minute)), secret, now, window)
	if err != nil || d.User != "frank" || d.SessionID != "ABCD-00000001" || d.FramedAddress != netip.MustParseAddr("10.8.0.7") || d.IsCoA() || d.Empty() {
		t.Fatalf("%+v %v", d, err)
	}
	ack, _ := d.Reply(0)
	nak, _ := d.Reply(CauseSessionContextNotFound)
	if radius.Code(ack[0]) != radius.CodeDisconnectACK || radius.Code(nak[0]) != radius.CodeDisconnectNAK || !bytes.Contains(nak, []byte{101, 6, 0, 0, 0x01, 0xf7}) {
		t.Fatalf("replies %x %x", ack[:1], nak)
	}
	for _, c := range []struct {
		name   string
		b      []byte
		secret string
		says   string
	}{
		{"wrong secret", daeRequest(radius.CodeDisconnectRequest, secret, true, false, now), "other", "Request Authenticator"},
		{"no Message-Authenticator", daeRequest(radius.CodeDisconnectRequest, secret, false, false, now), "", "no Message-Authenticator"},
		{"bad Message-Authenticator", daeRequest(radius.CodeDisconnectRequest, secret, true, true, now), "", "Message-Authenticator"},
		{"no Event-Timestamp", daeRequest(radius.CodeDisconnectRequest, secret, true, false, time.Time{}), "", "no Event-Timestamp"},
		{"an old Event-Timestamp", daeRequest(radius.CodeDisconnectRequest, secret, true, false, now.Add(-6*time.Minute)), "", "6m0s from our clock"},
		{"a future Event-Timestamp", daeRequest(radius.CodeDisconnectRequest, secret, true, false, now.Add(10*time.Minute)), "", "10m0s from our clock"},
		{"accounting on the DAE port", daeRequest(radius.CodeAccountingRequest, secret, true, false, now), "", "code"},
	} {
		sec := secret
		if c.secret != "" {
			sec = []byte(c.secret)
		}
		if _, err := ReadDisconnect(c.b, sec, now, window); !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if d, err := ReadDisconnect(daeRequest(radius.CodeCoARequest, secret, true, false, now), secret, now, window); err != nil || !d.IsCoA() {
		t.Fatalf("CoA: %+v %v", d, err)
	}
}

// TestDisconnectReplays: the same request again from its source is a
// retransmission and gets the first answer; from elsewhere it is a
// replay; after the window it is forgotten (the timestamp refuses it).
func TestDisconnectReplays(t *testing.T) {
	secret := []byte("dae-secret")
	now := time.Unix(1_800_000_000, 0)
	r := NewReplays(5*time.Minute, 2)
	b := daeRequest(radius.CodeDisconnectRequest, secret, true, false, now)
	d, err := ReadDisconnect(b, secret, now, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := r.Seen(d, "192.0.2.9:4000", now); again != nil || err != nil {
		t.Fatalf("a new request: %x %v", again, err)
	}
	ack, _ := d.Reply(0)
	r.Answered(d, "192.0.2.9:4000", ack, now)
	d2, _ := ReadDisconnect(b, secret, now.Add(time.Second), 5*time.Minute)
	if again, err := r.Seen(d2, "192.0.2.9:4000", now.Add(time.Second)); !bytes.Equal(again, ack) || err != nil {
		t.Fatalf("a retransmission: %x %v", again, err)
	}
	if _, err := r.Seen(d2, "192.0.2.66:4000", now.Add(time.Second)); !errors.Is(err, ErrReplay) {
		t.Fatalf("a replay from elsewhere: %v", err)
	}
	if again, err := r.Seen(d2, "192.0.2.66:4000", now.Add(11*time.Minute)); again != nil || err != nil {
		t.Fatalf("past the window: %x %v", again, err)
	}
}

// FuzzReadDisconnect: anything on the Dynamic Authorization port is
// refused or read without panicking, and a read request can be answered.
func FuzzReadDisconnect(f *testing.F) {
	secret := []byte("fuzz-secret")
	now := time.Unix(1_800_000_000, 0)
	b := daeRequest(radius.CodeDisconnectRequest, secret, true, false, now)
	f.Add(b)
	f.Add(b[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ReadDisconnect(b, secret, now, 5*time.Minute)
		if err != nil {
			return
		}
		if _, err := d.Reply(CauseSessionContextNotFound); err != nil {
			t.Fatalf("cannot answer a request it read: %v", err)
		}
	})
}
