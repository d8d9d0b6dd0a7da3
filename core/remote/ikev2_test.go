package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/eap"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/plugins/sdk"
)

// v2Access is remote access with a users file of alice and bob, the pool
// 10.8.0.0/24 and a DNS server, serving IKEv2 road warriors.
func v2Access(t *testing.T) *Access {
	t.Helper()
	dir := t.TempDir()
	ra := &config.RemoteAccess{Pool: config.Prefix{Prefix: netip.MustParsePrefix("10.8.0.0/24")},
		DNS:   []config.IP{{Addr: netip.MustParseAddr("10.2.0.53")}},
		IKEv2: &config.RemoteAccessIKEv2{EAP: "mschapv2"},
		PPP: config.PPP{UsersFile: filepath.Join(dir, "users.yaml"), MaxAuthenticatingPerSA: 4,
			FailedLogins: config.FailedLogins{UserFree: 5, AddressFree: 50, Delay: config.Duration{Duration: time.Second},
				MaxDelay: config.Duration{Duration: time.Minute}, ForgetAfter: config.Duration{Duration: time.Hour}}}}
	users := "users:\n  alice: {password: 'correct horse'}\n  bob: {password: 'battery staple', address: 10.8.0.77}\n"
	if err := os.WriteFile(ra.PPP.UsersFile, []byte(users), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := newAccess(zap.NewNop(), ra)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// login runs EAP-MSCHAPv2 between a client and the server's session.
func login(t *testing.T, s ikev2.EAPSession, user, password string) *eap.Peer {
	t.Helper()
	c := eap.NewPeer(user, password, rand.Reader)
	req, err := s.Start()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		resp, err := c.Receive(req)
		if err != nil || c.Done() {
			return c
		}
		if req, err = s.Receive(resp); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("EAP never ended")
	return nil
}

// An IKEv2 user logs in by EAP-MSCHAPv2 against the users file L2TP uses:
// both sides derive the same MSK; a wrong password is refused; the user
// file's fixed address is offered as the framed address.
func TestIKEv2EAPUsesTheUsers(t *testing.T) {
	r := v2Access(t)
	outer := netip.MustParseAddrPort("192.0.2.10:4500")
	s := r.IKEv2EAP(outer)
	c := login(t, s, "alice", "correct horse")
	if !s.Succeeded() || len(s.MSK()) != 64 || !bytes.Equal(s.MSK()[:32], c.MSK()[:32]) {
		t.Fatalf("alice: succeeded %v, MSK %x / %x, err %v", s.Succeeded(), s.MSK(), c.MSK(), s.Err())
	}
	bad := r.IKEv2EAP(outer)
	login(t, bad, "alice", "wrong")
	if bad.Succeeded() || bad.Err() == nil || !strings.Contains(bad.Err().Error(), "wrong password") {
		t.Fatalf("a wrong password: succeeded %v, %v", bad.Succeeded(), bad.Err())
	}
	bob := r.IKEv2EAP(outer)
	login(t, bob, "bob", "battery staple")
	if f, ok := bob.(interface{ FramedAddress() netip.Addr }); !ok || f.FramedAddress().String() != "10.8.0.77" {
		t.Fatalf("bob's fixed address was not offered")
	}
	// Logins being checked from this address and port up to the per-client
	// bound (an L2TP client's, or other IKE SAs' from one socket): IKEv2
	// logins, one per IKE SA, are not refused for them.
	for range r.maxChecking {
		r.startCheck(outer)
	}
	again := r.IKEv2EAP(outer)
	if login(t, again, "alice", "correct horse"); !again.Succeeded() {
		t.Fatalf("refused beside %d logins being checked: %v", r.maxChecking, again.Err())
	}
	res, _ := r.AuthenticateUser(context.Background(), sdk.UserAuthRequest{Method: sdk.MethodPAP, User: "alice", Password: sdk.Secret("correct horse"), Peer: outer})
	if res.Code != sdk.UserReject || !strings.Contains(res.Message, "logins at once") {
		t.Fatalf("an L2TP login past the bound: %+v", res)
	}
}

// IKEv2 and L2TP clients share one pool and one session list: an address
// an L2TP session holds is never leased to an IKEv2 client; the session
// list shows both with their protocols; disconnecting the IKEv2 user asks
// the engine to end its SA, and its release gives the address back and
// ends the session with the operator's reason.
func TestIKEv2SessionsBesideL2TP(t *testing.T) {
	r := v2Access(t)
	l2tpAddr, err := r.pool.Allocate("carol", netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.table.Add(&dataplane.L2TPSession{Peer: netip.MustParseAddrPort("192.0.2.11:4500"), LocalTunnel: 1, LocalSession: 1,
		Client: l2tpAddr, User: "carol"}); err != nil {
		t.Fatal(err)
	}
	outer := netip.MustParseAddrPort("192.0.2.10:4500")
	a, dns, err := r.IKEv2Lease("alice", outer, netip.Addr{})
	if err != nil || a == l2tpAddr || !r.pool.Prefix().Contains(a) || len(dns) != 1 || dns[0].String() != "10.2.0.53" {
		t.Fatalf("alice's lease: %v %v %v (carol holds %v)", a, dns, err, l2tpAddr)
	}
	if _, _, err := r.IKEv2Lease("mallory", outer, l2tpAddr); err == nil {
		t.Fatal("an address an L2TP session holds was leased again")
	}
	got := map[string]string{}
	for _, s := range r.Sessions() {
		got[s.User] = s.Protocol + " " + s.Client.String()
	}
	if len(got) != 2 || got["carol"] != "l2tp "+l2tpAddr.String() || got["alice"] != "ikev2 "+a.String() {
		t.Fatalf("sessions: %v", got)
	}
	var asked netip.Addr
	var why string
	r.SetIKEv2(func(addr netip.Addr, reason string) bool {
		asked, why = addr, reason
		r.IKEv2Release(addr, "deleted") // as the engine does when the SA goes
		return true
	}, nil, nil)
	ended := r.Disconnect("ALICE")
	if len(ended) != 1 || ended[0].Protocol != "ikev2" || asked != a || !strings.Contains(why, "operator") {
		t.Fatalf("disconnect: %+v, engine asked for %v (%q)", ended, asked, why)
	}
	if used, _ := r.pool.Usage(); used != 1 || r.ClientCount() != 0 {
		t.Fatalf("after the disconnect: %d addresses used, %d IKEv2 clients", used, r.ClientCount())
	}
	if len(r.Disconnect("alice")) != 0 {
		t.Fatal("a second disconnect found alice again")
	}
}

// An IKEv2 client is idle while its child's inbound packet count stays
// still: it is ended after idle_timeout of that, not before, and a packet
// starts the wait again.
func TestIKEv2IdleTimeout(t *testing.T) {
	r := v2Access(t)
	r.cfg.IdleTimeout.Duration = time.Minute
	start := time.Now()
	r.now = func() time.Time { return start }
	a, _, err := r.IKEv2Lease("alice", netip.MustParseAddrPort("192.0.2.10:4500"), netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := esp.NewInbound(esp.Config{SPI: 0x300, Suite: gcm128, EncKey: make([]byte, 20)})
	if err != nil {
		t.Fatal(err)
	}
	db := sad.New()
	if err := db.AddInbound(&sad.InSA{Meta: sad.Meta{Name: RuleIKEv2, Mode: sad.Tunnel}, ESP: in}); err != nil {
		t.Fatal(err)
	}
	var ended []netip.Addr
	r.SetIKEv2(func(addr netip.Addr, why string) bool {
		if !strings.HasPrefix(why, "idle for 1m1s (idle_timeout 1m0s)") {
			t.Errorf("reason %q", why)
		}
		ended = append(ended, addr)
		r.IKEv2Release(addr, "deleted")
		return true
	}, db, nil)
	r.IKEv2Child(a, 0x300, netip.MustParseAddrPort("192.0.2.10:4500"))
	r.Tick(start.Add(30 * time.Second))
	in.Counters().Packets.Add(1) // the client sends
	r.Tick(start.Add(50 * time.Second))
	r.Tick(start.Add(61 * time.Second))
	if len(ended) != 0 {
		t.Fatal("ended 11 s after its last packet")
	}
	r.Tick(start.Add(111 * time.Second))
	if len(ended) != 1 || ended[0] != a {
		t.Fatalf("after 61 s idle: ended %v", ended)
	}
}

var gcm128, _ = esp.ParseSuite("aes128gcm16")

// The reasons the IKEv2 engine gives for an SA's end map to RADIUS
// Acct-Terminate-Cause as L2TP's do.
func TestIKEv2TerminateCauses(t *testing.T) {
	for why, want := range map[string]uint32{"the peer deleted the IKE SA": 1, "the peer does not answer": 2,
		"disconnected by the operator": 6, "its lifetime ran out": 10} {
		if got := terminateCause(why); got != want {
			t.Errorf("%q: cause %d, want %d", why, got, want)
		}
	}
}
