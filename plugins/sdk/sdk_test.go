package sdk

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// dispense connects a host-side client to impl through a real gRPC server in
// this process, so both shims of a kind run in every test.
func dispense(t *testing.T, kind string, impl Impl) any {
	t.Helper()
	// Closing the client shuts the server down through go-plugin's controller.
	client, _ := plugin.TestPluginGRPCConn(t, false, PluginSet(impl))
	t.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(kind)
	if err != nil {
		t.Fatalf("dispense %s: %v", kind, err)
	}
	return raw
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return c
}

type fakeAuth struct {
	gotCfg  AuthConfig
	gotPSK  PSKRequest
	gotUser UserAuthRequest
	gotGSS  GSSStepRequest
	gotCert VerifyCertRequest
	gotAcct AccountRequest
	gotEAP  EAPRelayRequest
}

var (
	testEP  = netip.MustParseAddrPort("198.51.100.2:500")
	localEP = netip.MustParseAddrPort("203.0.113.1:4500")
	userRes = UserAuthResult{Code: UserAccept, Message: "welcome", AuthenticatorResponse: "S=0123", MPPESendKey: Secret{1, 2}, MPPERecvKey: Secret{3}, FramedAddress: netip.MustParseAddr("10.8.0.9"), SessionTimeoutSeconds: 3600, IdleTimeoutSeconds: 600, Class: []byte("c1")}
	errBoom = errors.New("boom")
)

func (f *fakeAuth) Info(context.Context) (AuthenticatorInfo, error) {
	return AuthenticatorInfo{Info: Info{Name: "fake", Version: "1.2", Description: "d"}, Methods: []AuthMethod{MethodPSK, MethodMSCHAPv2}}, nil
}
func (f *fakeAuth) Configure(_ context.Context, c AuthConfig) ([]string, error) {
	f.gotCfg = c
	return []string{"w1"}, nil
}
func (f *fakeAuth) LookupPSK(_ context.Context, r PSKRequest) (PSKResult, error) {
	f.gotPSK = r
	if r.Peer.Addr().Is6() {
		return PSKResult{}, ErrNotFound
	}
	return PSKResult{Found: true, Key: Secret("k3y-material"), Entry: "e1"}, nil
}
func (f *fakeAuth) VerifyCertificate(_ context.Context, r VerifyCertRequest) (VerifyCertResult, error) {
	f.gotCert = r
	return VerifyCertResult{OK: true, Subject: "CN=peer", Reason: "", PublicKey: []byte{9}}, nil
}
func (f *fakeAuth) Sign(_ context.Context, p string, d []byte, a string) ([]byte, error) {
	return append([]byte(p+a), d...), nil
}
func (f *fakeAuth) LocalCertificate(_ context.Context, p string, names [][]byte) (LocalCert, error) {
	return LocalCert{Chain: append([][]byte{[]byte(p)}, names...), ID: &Identity{Type: 9, Data: []byte{0x30}}}, nil
}
func (f *fakeAuth) GSSStep(_ context.Context, r GSSStepRequest) (GSSStepResult, error) {
	f.gotGSS = r
	return GSSStepResult{ContextID: "ctx1", Token: []byte{0x60, 1}, Complete: true, PeerPrincipal: "host/a@R"}, nil
}
func (f *fakeAuth) GSSWrap(_ context.Context, id string, d []byte) ([]byte, error) {
	return append([]byte(id), d...), nil
}
func (f *fakeAuth) GSSUnwrap(_ context.Context, id string, t []byte) ([]byte, error) {
	return t[len(id):], nil
}
func (f *fakeAuth) GSSRelease(_ context.Context, id string) error {
	if id == "" {
		return ErrInvalid
	}
	return nil
}
func (f *fakeAuth) AuthenticateUser(_ context.Context, r UserAuthRequest) (UserAuthResult, error) {
	f.gotUser = r
	if r.User == "crash" {
		return UserAuthResult{}, errBoom
	}
	return userRes, nil
}

func (f *fakeAuth) RelayEAP(_ context.Context, r EAPRelayRequest) (EAPRelayResult, error) {
	f.gotEAP = r
	if r.User == "" {
		return EAPRelayResult{}, ErrInvalid
	}
	return EAPRelayResult{EAP: []byte{3, 9, 0, 4}, Verdict: userRes}, nil
}

func (f *fakeAuth) Account(_ context.Context, r AccountRequest) error {
	f.gotAcct = r
	return nil
}

func TestAuthenticatorShims(t *testing.T) {
	f := &fakeAuth{}
	a := dispense(t, KindAuthenticator, Impl{Authenticator: f}).(Authenticator)
	c := ctx(t)

	info, err := a.Info(c)
	if err != nil || info.Name != "fake" || info.Version != "1.2" || !reflect.DeepEqual(info.Methods, []AuthMethod{MethodPSK, MethodMSCHAPv2}) {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	cfg := AuthConfig{
		PSK:       []PSKEntry{{Name: "a", KeyFile: "/k", MatchAddress: netip.MustParsePrefix("198.51.100.0/24")}, {Name: "b", KeyFile: "/w", Wildcard: true}, {Name: "c", KeyFile: "/i", MatchID: "fqdn:gw"}},
		X509:      []X509Profile{{Name: "x", CAFiles: []string{"/ca"}, CRLFiles: []string{"/crl"}, CertFile: "/c", KeyFile: "/k"}},
		Kerberos:  []KerberosProfile{{Name: "k", Keytab: "/kt", Principal: "host/gw@R", Ccache: "/cc", Krb5Conf: "/etc/krb5.conf", MaxSkew: 2 * time.Minute, ClockOffset: -10 * time.Minute}},
		Radius:    &RadiusConfig{Servers: []RadiusServer{{Address: "10.1.0.5:1812", SecretFile: "/s"}}, Timeout: 1500 * time.Millisecond, Tries: 3, NASIdentifier: "gw", RequireMessageAuthenticator: true},
		UsersFile: "/users",
	}
	w, err := a.Configure(c, cfg)
	if err != nil || !reflect.DeepEqual(w, []string{"w1"}) || !reflect.DeepEqual(f.gotCfg, cfg) {
		t.Fatalf("Configure: %v %v\n got  %+v\n want %+v", w, err, f.gotCfg, cfg)
	}
	req := PSKRequest{Local: localEP, Peer: testEP, PeerID: &Identity{Type: 1, Data: []byte{10, 0, 0, 5}}}
	res, err := a.LookupPSK(c, req)
	if err != nil || !res.Found || string(res.Key) != "k3y-material" || res.Entry != "e1" || !reflect.DeepEqual(f.gotPSK, req) {
		t.Fatalf("LookupPSK = %+v, %v (server got %+v)", res, err, f.gotPSK)
	}
	// Main mode: no ID yet.
	if _, err := a.LookupPSK(c, PSKRequest{Peer: testEP}); err != nil || f.gotPSK.PeerID != nil || f.gotPSK.Local.IsValid() {
		t.Fatalf("LookupPSK without id: %v, server got %+v", err, f.gotPSK)
	}
	if _, err := a.LookupPSK(c, PSKRequest{Peer: netip.MustParseAddrPort("[2001:db8::1]:500")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("not found maps to %v", err)
	}
	vr := VerifyCertRequest{Profile: "x", Chain: [][]byte{{1}, {2}}, PeerID: &Identity{Type: 2, Data: []byte("gw")}}
	if v, err := a.VerifyCertificate(c, vr); err != nil || !v.OK || v.Subject != "CN=peer" || !reflect.DeepEqual(f.gotCert, vr) {
		t.Fatalf("VerifyCertificate = %+v, %v", v, err)
	}
	if s, err := a.Sign(c, "x", []byte{7}, "rsa"); err != nil || string(s) != "xrsa\x07" {
		t.Fatalf("Sign = %q, %v", s, err)
	}
	if lc, err := a.LocalCertificate(c, "x", [][]byte{{5}}); err != nil || len(lc.Chain) != 2 || lc.ID.Type != 9 {
		t.Fatalf("LocalCertificate = %+v, %v", lc, err)
	}
	gr := GSSStepRequest{Profile: "k", Role: GSSAcceptor, Target: "host/gw@R", Token: []byte{0x60}}
	if g, err := a.GSSStep(c, gr); err != nil || g.ContextID != "ctx1" || !g.Complete || g.PeerPrincipal != "host/a@R" || !reflect.DeepEqual(f.gotGSS, gr) {
		t.Fatalf("GSSStep = %+v, %v", g, err)
	}
	wrapped, err := a.GSSWrap(c, "ctx1", []byte("hash"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := a.GSSUnwrap(c, "ctx1", wrapped); err != nil || string(d) != "hash" {
		t.Fatalf("GSSUnwrap = %q, %v", d, err)
	}
	if err := a.GSSRelease(c, ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("GSSRelease error maps to %v", err)
	}
	ur := UserAuthRequest{Method: MethodMSCHAPv2, User: `CORP\alice`, ChapID: 7, Challenge: []byte{1}, Response: []byte{2}, PeerChallenge: []byte{3}, Peer: testEP}
	got, err := a.AuthenticateUser(c, ur)
	if err != nil || !reflect.DeepEqual(got, userRes) || !reflect.DeepEqual(f.gotUser, ur) {
		t.Fatalf("AuthenticateUser = %+v, %v (server got %+v)", got, err, f.gotUser)
	}
	if _, err := a.AuthenticateUser(c, UserAuthRequest{User: "crash"}); err == nil || errors.Is(err, ErrUnsupported) {
		t.Fatalf("plain error should pass as an internal error, got %v", err)
	}
	er := EAPRelayRequest{User: "alice", EAP: []byte{2, 1, 0, 10, 1, 'a', 'l', 'i', 'c', 'e'}, State: []byte("s"), Server: "10.1.0.5:1812", Peer: testEP}
	if got, err := a.RelayEAP(c, er); err != nil || !reflect.DeepEqual(f.gotEAP, er) || !reflect.DeepEqual(got.Verdict, userRes) ||
		!reflect.DeepEqual(got.EAP, []byte{3, 9, 0, 4}) || got.Challenge {
		t.Fatalf("RelayEAP = %+v, %v (server got %+v)", got, err, f.gotEAP)
	}
	if _, err := a.RelayEAP(c, EAPRelayRequest{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RelayEAP error maps to %v", err)
	}
	ar := AccountRequest{Status: AcctStop, SessionID: "s-1", User: "alice", FramedAddress: netip.MustParseAddr("10.8.0.9"), Peer: testEP,
		BytesIn: 5 << 32, BytesOut: 2, PacketsIn: 3, PacketsOut: 4, SessionTime: time.Minute, TerminateCause: 6, Class: [][]byte{[]byte("c1")}}
	if err := a.Account(c, ar); err != nil || !reflect.DeepEqual(f.gotAcct, ar) {
		t.Fatalf("Account: %v, server got %+v", err, f.gotAcct)
	}
	if err := a.Account(c, AccountRequest{Status: 9}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad status: %v", err)
	}
}

type pskOnly struct{ UnimplementedAuthenticator }

func (pskOnly) Info(context.Context) (AuthenticatorInfo, error)         { return AuthenticatorInfo{}, nil }
func (pskOnly) Configure(context.Context, AuthConfig) ([]string, error) { return nil, nil }

func TestUnimplementedMapsToErrUnsupported(t *testing.T) {
	a := dispense(t, KindAuthenticator, Impl{Authenticator: pskOnly{}}).(Authenticator)
	if _, err := a.GSSStep(ctx(t), GSSStepRequest{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v, want ErrUnsupported", err)
	}
	// A kind the binary does not serve at all answers Unimplemented too.
	o := dispense(t, KindOffload, Impl{Authenticator: pskOnly{}}).(CryptoOffload)
	if _, err := o.Info(ctx(t)); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("unserved kind: got %v, want ErrUnsupported", err)
	}
}

type fakeHost struct {
	gotSpec  SessionSpec
	gotAudit AuditEvent
	released netip.Addr
}

func (h *fakeHost) InstallSession(_ context.Context, s SessionSpec) (uint64, error) {
	h.gotSpec = s
	return 42, nil
}
func (h *fakeHost) RemoveSession(_ context.Context, handle uint64, reason string) (SessionCounters, error) {
	if handle != 42 {
		return SessionCounters{}, ErrNotFound
	}
	return SessionCounters{BytesIn: 1, BytesOut: 2, PacketsIn: 3, PacketsOut: 4}, nil
}
func (h *fakeHost) AllocateAddress(_ context.Context, pool, user string, want netip.Addr) (netip.Addr, error) {
	if want.IsValid() {
		return want, nil
	}
	return netip.MustParseAddr("10.8.0.2"), nil
}
func (h *fakeHost) ReleaseAddress(_ context.Context, pool string, a netip.Addr) error {
	h.released = a
	return nil
}
func (h *fakeHost) AuthenticateUser(_ context.Context, r UserAuthRequest) (UserAuthResult, error) {
	return userRes, nil
}
func (h *fakeHost) EmitAudit(_ context.Context, ev AuditEvent) error {
	h.gotAudit = ev
	return nil
}

// fakeL2TP uses the Host during Start and echoes control packets back.
type fakeL2TP struct {
	host    Host
	gotCfg  L2TPConfig
	started chan struct{}
}

func (f *fakeL2TP) Info(context.Context) (L2TPInfo, error) {
	return L2TPInfo{Info: Info{Name: "l2tp"}, Protocols: []string{"l2tp"}}, nil
}
func (f *fakeL2TP) Start(ctx context.Context, h Host) error { f.host = h; return nil }
func (f *fakeL2TP) Configure(_ context.Context, c L2TPConfig) ([]string, error) {
	f.gotCfg = c
	return nil, nil
}
func (f *fakeL2TP) Control(ctx context.Context, conn ControlConn) error {
	for {
		p, err := conn.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p.Payload = append([]byte("re:"), p.Payload...)
		if err := conn.Send(p); err != nil {
			return err
		}
	}
}

func TestL2TPAndHostShims(t *testing.T) {
	f := &fakeL2TP{}
	tc := dispense(t, KindL2TP, Impl{L2TP: f}).(L2TPClient)
	c := ctx(t)
	if i, err := tc.Info(c); err != nil || i.Name != "l2tp" || i.Protocols[0] != "l2tp" {
		t.Fatalf("Info = %+v, %v", i, err)
	}
	h := &fakeHost{}
	if err := tc.Start(c, h); err != nil {
		t.Fatalf("Start: %v", err)
	}
	cfg := L2TPConfig{Pool: netip.MustParsePrefix("10.8.0.0/24"), DNS: []netip.Addr{netip.MustParseAddr("10.1.0.53")}, NBNS: []netip.Addr{netip.MustParseAddr("10.1.0.54")},
		PPPAuth: []string{"mschapv2"}, MRU: 1400, HelloIntervalSeconds: 60, IdleTimeoutSeconds: 900, TunnelSecretFile: "/s"}
	if _, err := tc.Configure(c, cfg); err != nil || !reflect.DeepEqual(f.gotCfg, cfg) {
		t.Fatalf("Configure: %v\n got  %+v\n want %+v", err, f.gotCfg, cfg)
	}

	// The plugin calls the core back through the broker.
	spec := SessionSpec{SAID: 7, Local: localEP, Peer: testEP, LocalTunnelID: 1, LocalSessionID: 2, PeerTunnelID: 3, PeerSessionID: 4, ClientAddress: netip.MustParseAddr("10.8.0.2"), User: "alice", MRU: 1400}
	if hd, err := f.host.InstallSession(c, spec); err != nil || hd != 42 || !reflect.DeepEqual(h.gotSpec, spec) {
		t.Fatalf("InstallSession = %d, %v (host got %+v)", hd, err, h.gotSpec)
	}
	if cnt, err := f.host.RemoveSession(c, 42, "cdn"); err != nil || cnt != (SessionCounters{1, 2, 3, 4}) {
		t.Fatalf("RemoveSession = %+v, %v", cnt, err)
	}
	if _, err := f.host.RemoveSession(c, 1, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveSession unknown = %v", err)
	}
	if a, err := f.host.AllocateAddress(c, "ra", "alice", netip.Addr{}); err != nil || a != netip.MustParseAddr("10.8.0.2") {
		t.Fatalf("AllocateAddress = %v, %v", a, err)
	}
	if a, err := f.host.AllocateAddress(c, "ra", "bob", netip.MustParseAddr("10.8.0.77")); err != nil || a != netip.MustParseAddr("10.8.0.77") {
		t.Fatalf("AllocateAddress requested = %v, %v", a, err)
	}
	if err := f.host.ReleaseAddress(c, "ra", netip.MustParseAddr("10.8.0.2")); err != nil || h.released != netip.MustParseAddr("10.8.0.2") {
		t.Fatalf("ReleaseAddress: %v", err)
	}
	if r, err := f.host.AuthenticateUser(c, UserAuthRequest{User: "alice"}); err != nil || !reflect.DeepEqual(r, userRes) {
		t.Fatalf("host AuthenticateUser = %+v, %v", r, err)
	}
	ev := AuditEvent{ID: 20001, Name: "user-connected", Fields: map[string]string{"user": "alice"}}
	if err := f.host.EmitAudit(c, ev); err != nil || !reflect.DeepEqual(h.gotAudit, ev) {
		t.Fatalf("EmitAudit: %v (host got %+v)", err, h.gotAudit)
	}

	conn, err := tc.OpenControl(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		p := ControlPacket{Kind: ControlL2TP, SAID: 9, Local: localEP, Peer: testEP, TunnelID: uint16(i), SessionID: 5, Payload: []byte{byte(i)}}
		if err := conn.Send(p); err != nil {
			t.Fatal(err)
		}
		got, err := conn.Recv()
		p.Payload = append([]byte("re:"), p.Payload...)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("control echo %d = %+v, %v", i, got, err)
		}
	}
}

type fakeOffload struct{ sa OffloadSA }

func (f *fakeOffload) Info(context.Context) (OffloadInfo, error) {
	return OffloadInfo{Info: Info{Name: "soft"}, Algorithms: []string{"aes128gcm16"}, KeySizes: []uint32{128}, MaxBatch: 64}, nil
}
func (f *fakeOffload) InstallSA(_ context.Context, sa OffloadSA) (uint64, error) {
	f.sa = sa
	return 3, nil
}
func (f *fakeOffload) RemoveSA(_ context.Context, h uint64) error {
	if h != 3 {
		return ErrNotFound
	}
	return nil
}
func (f *fakeOffload) ProcessBatch(_ context.Context, ops []CryptoOp) ([]CryptoResult, error) {
	out := make([]CryptoResult, len(ops))
	for i, op := range ops {
		if op.Handle != 3 {
			out[i].Err = "unknown handle"
			continue
		}
		out[i].Data = append(append(append([]byte{}, op.IV...), op.AAD...), op.Data...)
	}
	return out, nil
}

func TestOffloadShims(t *testing.T) {
	f := &fakeOffload{}
	o := dispense(t, KindOffload, Impl{Offload: f}).(CryptoOffload)
	c := ctx(t)
	if i, err := o.Info(c); err != nil || i.MaxBatch != 64 || i.Algorithms[0] != "aes128gcm16" || i.KeySizes[0] != 128 {
		t.Fatalf("Info = %+v, %v", i, err)
	}
	sa := OffloadSA{SPI: 0xc0ffee, Direction: Inbound, Algorithm: "aes128gcm16", EncryptionKey: Secret{1}, IntegrityKey: Secret{2}, Salt: Secret{3}}
	if h, err := o.InstallSA(c, sa); err != nil || h != 3 || !reflect.DeepEqual(f.sa, sa) {
		t.Fatalf("InstallSA = %d, %v (got %+v)", h, err, f.sa)
	}
	res, err := o.ProcessBatch(c, []CryptoOp{{Handle: 3, Op: Encrypt, IV: []byte{1}, AAD: []byte{2}, Data: []byte{3}}, {Handle: 4, Op: Decrypt}})
	if err != nil || string(res[0].Data) != "\x01\x02\x03" || res[1].Err != "unknown handle" {
		t.Fatalf("ProcessBatch = %+v, %v", res, err)
	}
	if err := o.RemoveSA(c, 3); err != nil {
		t.Fatal(err)
	}
	if err := o.RemoveSA(c, 3+1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveSA unknown = %v", err)
	}
}

type fakeInterop struct{ got AdjustRequest }

func (f *fakeInterop) Info(context.Context) (InteropInfo, error) {
	return InteropInfo{Info: Info{Name: "interop-windows"}, Families: []string{"windows"}}, nil
}
func (f *fakeInterop) VendorIDs(_ context.Context, r VendorIDsRequest) ([][]byte, error) {
	if !r.Initiator || r.Peer != testEP || r.AuthMethods[0] != "kerberos" {
		return nil, ErrInvalid
	}
	return [][]byte{{0x1e, 0x2b}}, nil
}
func (f *fakeInterop) Configure(_ context.Context, o map[string]string) ([]string, error) {
	if o["allow_legacy"] != "true" || len(o) != 1 {
		return nil, ErrInvalid
	}
	return []string{"legacy on"}, nil
}
func (f *fakeInterop) Classify(_ context.Context, r ClassifyRequest) (Classification, error) {
	if len(r.VendorIDs) == 1 && r.Peer == testEP && r.Offered[0].Text == "3des-sha1-modp1024" && r.Initiator && r.Version == 2 {
		return Classification{Family: "windows", Flags: []string{"fragmentation"}, Detail: "Windows 8 to 11", VendorIDs: [][]byte{{9}},
			RefusalHint: "allow_legacy"}, nil
	}
	return Classification{}, nil
}
func (f *fakeInterop) AdjustProposals(_ context.Context, r AdjustRequest) (AdjustResult, error) {
	f.got = r
	return AdjustResult{Proposals: r.Proposals[:1], Notes: []string{"dropped modp1024"}}, nil
}

func TestInteropShims(t *testing.T) {
	f := &fakeInterop{}
	i := dispense(t, KindInterop, Impl{Interop: f}).(Interop)
	c := ctx(t)
	if info, err := i.Info(c); err != nil || info.Families[0] != "windows" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if v, err := i.VendorIDs(c, VendorIDsRequest{Initiator: true, Peer: testEP, AuthMethods: []string{"kerberos"}}); err != nil || len(v) != 1 {
		t.Fatalf("VendorIDs = %v, %v", v, err)
	}
	if n, err := i.Configure(c, map[string]string{"allow_legacy": "true"}); err != nil || n[0] != "legacy on" {
		t.Fatalf("Configure = %v, %v", n, err)
	}
	if _, err := i.Configure(c, map[string]string{"bogus": "1"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Configure(bogus) = %v, want ErrInvalid", err)
	}
	cl, err := i.Classify(c, ClassifyRequest{VendorIDs: [][]byte{{1}}, Peer: testEP, Offered: []ProposalText{{"3des-sha1-modp1024", 28800}}, Initiator: true,
		Version: 2})
	want := Classification{Family: "windows", Flags: []string{"fragmentation"}, Detail: "Windows 8 to 11", VendorIDs: [][]byte{{9}}, RefusalHint: "allow_legacy"}
	if err != nil || !reflect.DeepEqual(cl, want) {
		t.Fatalf("Classify = %+v, %v", cl, err)
	}
	req := AdjustRequest{Flags: []string{"legacy"}, Proposals: []ProposalText{{"aes256-sha1-ecp384", 28800}, {"3des-sha1-modp1024", 28800}}, Phase1: true,
		Version: 1}
	r, err := i.AdjustProposals(c, req)
	if err != nil || len(r.Proposals) != 1 || r.Notes[0] != "dropped modp1024" || !reflect.DeepEqual(f.got, req) {
		t.Fatalf("AdjustProposals = %+v, %v", r, err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2-very-secret")
	for _, out := range []string{s.String(), s.GoString()} {
		if out != "secret(19 bytes)" {
			t.Fatalf("secret printed as %q", out)
		}
	}
}

func TestConversionEdgeCases(t *testing.T) {
	if ep, err := endpointFromPB(nil); err != nil || ep.IsValid() {
		t.Fatalf("nil endpoint = %v, %v", ep, err)
	}
	if endpointToPB(netip.AddrPort{}) != nil {
		t.Fatal("zero endpoint should encode as nil")
	}
	bad := []struct {
		name string
		fn   func() error
	}{
		{"endpoint address", func() error { _, err := endpointFromPB(&pb.Endpoint{Address: "300.1.1.1"}); return err }},
		{"endpoint port", func() error { _, err := endpointFromPB(&pb.Endpoint{Address: "192.0.2.1", Port: 70000}); return err }},
		{"identity type", func() error { _, err := identityFromPB(&pb.Identity{Type: 256}); return err }},
		{"chap id", func() error { _, err := userAuthRequestFromPB(&pb.UserAuthRequest{ChapId: 300}); return err }},
		{"framed address", func() error { _, err := userAuthResultFromPB(&pb.UserAuthResponse{FramedAddress: "nope"}); return err }},
		{"psk match address", func() error {
			_, err := authConfigFromPB(&pb.AuthConfig{Psk: []*pb.PSKEntry{{Name: "x", MatchAddress: "10.0.0.0/33"}}})
			return err
		}},
		{"tunnel id", func() error { _, err := controlFromPB(&pb.ControlPacket{TunnelId: 65536}); return err }},
		{"session mru", func() error { _, err := sessionFromPB(&pb.InstallSessionRequest{Mru: 1 << 20}); return err }},
		{"pool", func() error { _, err := l2tpConfigFromPB(&pb.L2TPConfig{Pool: "10.8.0.0"}); return err }},
		{"dns", func() error { _, err := l2tpConfigFromPB(&pb.L2TPConfig{Dns: []string{"x"}}); return err }},
	}
	for _, c := range bad {
		if err := c.fn(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", c.name, err)
		}
	}
	// Zero values survive a round trip as zero values.
	if got, err := userAuthResultFromPB(userAuthResultToPB(UserAuthResult{})); err != nil || !reflect.DeepEqual(got, UserAuthResult{}) {
		t.Fatalf("zero result round trip = %+v, %v", got, err)
	}
	if got, err := l2tpConfigFromPB(l2tpConfigToPB(L2TPConfig{})); err != nil || got.Pool.IsValid() || got.DNS != nil {
		t.Fatalf("zero tunnel config round trip = %+v, %v", got, err)
	}
}

// BenchmarkInteropClassify is one Classify across the gRPC boundary, as
// the core makes it once per new IKE SA (go-plugin's in-memory test
// connection: the process boundary adds a unix socket).
func BenchmarkInteropClassify(b *testing.B) {
	client, _ := plugin.TestPluginGRPCConn(b, false, PluginSet(Impl{Interop: &fakeInterop{}}))
	defer client.Close()
	raw, err := client.Dispense(KindInterop)
	if err != nil {
		b.Fatal(err)
	}
	in := raw.(Interop)
	req := ClassifyRequest{VendorIDs: [][]byte{{1}}, Peer: testEP, Offered: []ProposalText{{"3des-sha1-modp1024", 28800}}, Initiator: true}
	for b.Loop() {
		if _, err := in.Classify(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
