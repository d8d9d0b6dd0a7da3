package sdk

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// FuzzHostInputs hands the core's side of every plugin boundary whatever
// bytes a broken or hostile plugin could put on the wire: each answer the
// core's client shims read (authenticator, interop, offload, tunnel) and
// each request the core's host server reads from the L2TP plugin is
// decoded from the same input. The shims must turn it into a value or an
// error, never panic; what they accept must survive the trip back to the
// wire and in again unchanged.
func FuzzHostInputs(f *testing.F) {
	for _, m := range []proto.Message{
		&pb.InstallSessionRequest{SaId: 7, Local: &pb.Endpoint{Address: "192.0.2.1", Port: 1701},
			Peer: &pb.Endpoint{Address: "198.51.100.7", Port: 1701}, LocalTunnelId: 1, LocalSessionId: 2,
			PeerTunnelId: 3, PeerSessionId: 4, ClientAddress: "10.8.0.10", User: "alice", Mru: 1400, LcpMagic: 9},
		&pb.ControlPacket{Kind: 1, SaId: 3, TunnelId: 5, SessionId: 6, Payload: []byte{0xc8, 2, 0, 12}},
		&pb.UserAuthResponse{Result: 1, FramedAddress: "10.8.0.20", MppeSendKey: make([]byte, 16), Class: []byte("c")},
		&pb.ClassifyResponse{Family: "windows", Flags: []string{"nat-t-draft"}, VendorIds: [][]byte{{1, 2}}},
		&pb.AdjustProposalsResponse{Proposals: []*pb.Proposal{{Text: "aes256-sha1-modp2048", LifetimeSeconds: 3600}}},
		&pb.LocalCertificateResponse{Chain: [][]byte{{0x30}}, Id: &pb.Identity{Type: 9, Data: []byte{0x30}}},
		&pb.BatchResult{Results: []*pb.CryptoResult{{Data: []byte{1}}, {Error: "bad tag"}}},
		&pb.L2TPConfig{Pool: "10.8.0.0/24", Dns: []string{"10.1.0.53"}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := context.Background()

		in := &interopClient{c: wireInterop{b: b}}
		_, _ = in.Info(ctx)
		_, _ = in.VendorIDs(ctx, VendorIDsRequest{})
		_, _ = in.Classify(ctx, ClassifyRequest{})
		_, _ = in.AdjustProposals(ctx, AdjustRequest{})

		au := &authClient{c: wireAuth{b: b}}
		_, _ = au.Info(ctx)
		_, _ = au.LookupPSK(ctx, PSKRequest{})
		_, _ = au.VerifyCertificate(ctx, VerifyCertRequest{})
		_, _ = au.Sign(ctx, "p", nil, "")
		_, _ = au.LocalCertificate(ctx, "p", nil)
		_, _ = au.GSSStep(ctx, GSSStepRequest{})
		_, _ = au.GSSWrap(ctx, "c", nil)
		_, _ = au.GSSUnwrap(ctx, "c", nil)
		_, _ = au.RelayEAP(ctx, EAPRelayRequest{})
		if r, err := au.AuthenticateUser(ctx, UserAuthRequest{}); err == nil {
			back, err := userAuthResultFromPB(roundTrip(t, userAuthResultToPB(r), &pb.UserAuthResponse{}))
			if err != nil || !sameValue(back, r) {
				t.Fatalf("user auth result %+v came back as %+v (%v)", r, back, err)
			}
		}

		off := &offloadClient{c: wireOffload{b: b}}
		_, _ = off.Info(ctx)
		_, _ = off.InstallSA(ctx, OffloadSA{})
		ops := []CryptoOp{{Handle: 1}, {Handle: 2}}
		if res, err := off.ProcessBatch(ctx, ops); err == nil && len(res) != len(ops) {
			t.Fatalf("%d results for %d ops", len(res), len(ops))
		}

		tc := &l2tpClient{c: wireTunnel{b: b}}
		_, _ = tc.Info(ctx)

		// What the L2TP plugin asks of the core.
		host := &recordingHost{}
		hs := &hostServer{impl: host}
		if _, err := hs.InstallSession(ctx, decode(b, &pb.InstallSessionRequest{})); err == nil {
			back, err := sessionFromPB(roundTrip(t, sessionToPB(host.session), &pb.InstallSessionRequest{}))
			if err != nil || !sameValue(back, host.session) {
				t.Fatalf("session %+v came back as %+v (%v)", host.session, back, err)
			}
		}
		_, _ = hs.AllocateAddress(ctx, decode(b, &pb.AllocateAddressRequest{}))
		_, _ = hs.ReleaseAddress(ctx, decode(b, &pb.ReleaseAddressRequest{}))
		_, _ = hs.AuthenticateUser(ctx, decode(b, &pb.UserAuthRequest{}))
		_, _ = hs.EmitAudit(ctx, decode(b, &pb.AuditEvent{}))
		_, _ = hs.RemoveSession(ctx, decode(b, &pb.RemoveSessionRequest{}))
		if c, err := controlFromPB(decode(b, &pb.ControlPacket{})); err == nil {
			back, err := controlFromPB(roundTrip(t, controlToPB(c), &pb.ControlPacket{}))
			if err != nil || !sameValue(back, c) {
				t.Fatalf("control packet %+v came back as %+v (%v)", c, back, err)
			}
		}
		if c, err := l2tpConfigFromPB(decode(b, &pb.L2TPConfig{})); err == nil {
			back, err := l2tpConfigFromPB(roundTrip(t, l2tpConfigToPB(c), &pb.L2TPConfig{}))
			if err != nil || !sameValue(back, c) {
				t.Fatalf("tunnel config %+v came back as %+v (%v)", c, back, err)
			}
		}
	})
}

// decode unmarshals b into m; bytes that are not a message leave m empty,
// as gRPC would have refused them before the shim saw anything.
func decode[T proto.Message](b []byte, m T) T {
	if proto.Unmarshal(b, m) != nil {
		proto.Reset(m)
	}
	return m
}

func roundTrip[T proto.Message](t *testing.T, m proto.Message, into T) T {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	if err := proto.Unmarshal(b, into); err != nil {
		t.Fatalf("unmarshal %T: %v", into, err)
	}
	return into
}

// sameValue compares values whose empty byte slices may come back nil:
// proto3 does not put an empty bytes field on the wire.
func sameValue(a, b any) bool {
	return reflect.DeepEqual(normalize(reflect.ValueOf(a)), normalize(reflect.ValueOf(b)))
}

func normalize(v reflect.Value) any {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	if c.Kind() == reflect.Struct {
		for i := range c.NumField() {
			f := c.Field(i)
			if f.CanSet() && (f.Kind() == reflect.Slice || f.Kind() == reflect.Map) && f.Len() == 0 {
				f.Set(reflect.Zero(f.Type()))
			}
		}
	}
	return c.Interface()
}

// The wire* clients answer each call with the fuzz input decoded as that
// call's response; undecodable input is a transport error. Calls the
// fuzz target does not make are left to the embedded nil interface.
type (
	wireInterop struct {
		pb.InteropClient
		b []byte
	}
	wireAuth struct {
		pb.AuthenticatorClient
		b []byte
	}
	wireOffload struct {
		pb.CryptoOffloadClient
		b []byte
	}
	wireTunnel struct {
		pb.L2TPSessionsClient
		b []byte
	}
)

func answer[T proto.Message](b []byte, m T) (T, error) {
	if err := proto.Unmarshal(b, m); err != nil {
		return m, err
	}
	return m, nil
}

func (w wireInterop) Info(context.Context, *pb.InfoRequest, ...grpc.CallOption) (*pb.InteropInfo, error) {
	return answer(w.b, &pb.InteropInfo{})
}
func (w wireInterop) VendorIDs(context.Context, *pb.VendorIDsRequest, ...grpc.CallOption) (*pb.VendorIDsResponse, error) {
	return answer(w.b, &pb.VendorIDsResponse{})
}
func (w wireInterop) Classify(context.Context, *pb.ClassifyRequest, ...grpc.CallOption) (*pb.ClassifyResponse, error) {
	return answer(w.b, &pb.ClassifyResponse{})
}
func (w wireInterop) AdjustProposals(context.Context, *pb.AdjustProposalsRequest, ...grpc.CallOption) (*pb.AdjustProposalsResponse, error) {
	return answer(w.b, &pb.AdjustProposalsResponse{})
}

func (w wireAuth) Info(context.Context, *pb.InfoRequest, ...grpc.CallOption) (*pb.AuthenticatorInfo, error) {
	return answer(w.b, &pb.AuthenticatorInfo{})
}
func (w wireAuth) LookupPSK(context.Context, *pb.PSKRequest, ...grpc.CallOption) (*pb.PSKResponse, error) {
	return answer(w.b, &pb.PSKResponse{})
}
func (w wireAuth) VerifyCertificate(context.Context, *pb.VerifyCertificateRequest, ...grpc.CallOption) (*pb.VerifyCertificateResponse, error) {
	return answer(w.b, &pb.VerifyCertificateResponse{})
}
func (w wireAuth) Sign(context.Context, *pb.SignRequest, ...grpc.CallOption) (*pb.SignResponse, error) {
	return answer(w.b, &pb.SignResponse{})
}
func (w wireAuth) LocalCertificate(context.Context, *pb.LocalCertificateRequest, ...grpc.CallOption) (*pb.LocalCertificateResponse, error) {
	return answer(w.b, &pb.LocalCertificateResponse{})
}
func (w wireAuth) GSSStep(context.Context, *pb.GSSStepRequest, ...grpc.CallOption) (*pb.GSSStepResponse, error) {
	return answer(w.b, &pb.GSSStepResponse{})
}
func (w wireAuth) GSSWrap(context.Context, *pb.GSSWrapRequest, ...grpc.CallOption) (*pb.GSSWrapResponse, error) {
	return answer(w.b, &pb.GSSWrapResponse{})
}
func (w wireAuth) GSSUnwrap(context.Context, *pb.GSSUnwrapRequest, ...grpc.CallOption) (*pb.GSSUnwrapResponse, error) {
	return answer(w.b, &pb.GSSUnwrapResponse{})
}
func (w wireAuth) AuthenticateUser(context.Context, *pb.UserAuthRequest, ...grpc.CallOption) (*pb.UserAuthResponse, error) {
	return answer(w.b, &pb.UserAuthResponse{})
}
func (w wireAuth) RelayEAP(context.Context, *pb.EAPRelayRequest, ...grpc.CallOption) (*pb.EAPRelayResponse, error) {
	return answer(w.b, &pb.EAPRelayResponse{})
}

func (w wireOffload) Info(context.Context, *pb.InfoRequest, ...grpc.CallOption) (*pb.OffloadInfo, error) {
	return answer(w.b, &pb.OffloadInfo{})
}
func (w wireOffload) InstallSA(context.Context, *pb.InstallSARequest, ...grpc.CallOption) (*pb.InstallSAResponse, error) {
	return answer(w.b, &pb.InstallSAResponse{})
}
func (w wireOffload) ProcessBatch(context.Context, *pb.Batch, ...grpc.CallOption) (*pb.BatchResult, error) {
	return answer(w.b, &pb.BatchResult{})
}

func (w wireTunnel) Info(context.Context, *pb.InfoRequest, ...grpc.CallOption) (*pb.L2TPInfo, error) {
	return answer(w.b, &pb.L2TPInfo{})
}

// recordingHost is the core's Host as far as the shim can tell: it keeps
// the session it was given and accepts everything.
type recordingHost struct{ session SessionSpec }

func (h *recordingHost) InstallSession(_ context.Context, s SessionSpec) (uint64, error) {
	h.session = s
	return 1, nil
}
func (h *recordingHost) RemoveSession(context.Context, uint64, string) (SessionCounters, error) {
	return SessionCounters{}, nil
}
func (h *recordingHost) AllocateAddress(_ context.Context, _, _ string, want netip.Addr) (netip.Addr, error) {
	return want, nil
}
func (h *recordingHost) ReleaseAddress(context.Context, string, netip.Addr) error { return nil }
func (h *recordingHost) AuthenticateUser(context.Context, UserAuthRequest) (UserAuthResult, error) {
	return UserAuthResult{Code: UserReject}, nil
}
func (h *recordingHost) EmitAudit(context.Context, AuditEvent) error { return nil }
