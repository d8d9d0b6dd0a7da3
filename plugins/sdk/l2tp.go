package sdk

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// L2TPInfo describes a L2TPSessions plugin.
type L2TPInfo struct {
	Info
	Protocols []string
}

// L2TPConfig configures the L2TP/PPP control plane.
type L2TPConfig struct {
	Pool                 netip.Prefix
	DNS                  []netip.Addr
	NBNS                 []netip.Addr
	PPPAuth              []string
	MRU                  uint16
	HelloIntervalSeconds uint32
	IdleTimeoutSeconds   uint32
	TunnelSecretFile     string
}

// ControlKind says what a ControlPacket carries.
type ControlKind int

const (
	ControlL2TP ControlKind = iota + 1
	ControlPPP
	// ControlPeerGone (core to plugin): the peer's IPsec SA is gone; the
	// core removed its sessions and released their addresses.
	ControlPeerGone
	// ControlDisconnect (core to plugin): an operator ended the session
	// with our TunnelID and SessionID; Payload is the reason. The core
	// removed it; the plugin hangs up the call.
	ControlDisconnect
)

// ControlPacket is one control message with the context that keys it.
type ControlPacket struct {
	Kind      ControlKind
	SAID      uint64
	Local     netip.AddrPort
	Peer      netip.AddrPort
	TunnelID  uint16
	SessionID uint16
	Payload   []byte
}

// ControlConn is one end of the control stream.
type ControlConn interface {
	Send(ControlPacket) error
	Recv() (ControlPacket, error)
}

// SessionSpec is a data-plane session for the core to install.
type SessionSpec struct {
	SAID           uint64
	Local          netip.AddrPort
	Peer           netip.AddrPort
	LocalTunnelID  uint16
	LocalSessionID uint16
	PeerTunnelID   uint16
	PeerSessionID  uint16
	ClientAddress  netip.Addr
	User           string
	MRU            uint16
	// LCPMagic is our LCP Magic-Number (0: none): the core answers the
	// client's Echo-Requests with it.
	LCPMagic uint32
}

// SessionCounters are a removed session's totals.
type SessionCounters struct {
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
}

// Audit event ids of remote-access sessions (docs/l2tp.md), for the
// plugin and for the core, which ends sessions itself when their SA goes.
const (
	EventUserConnected    = 5410
	EventUserDisconnected = 5411
	EventUserAuthFailed   = 5412
)

// AuditEvent is an audit record; IDs are listed in docs/events.md.
type AuditEvent struct {
	ID     uint32
	Name   string
	Fields map[string]string
}

// Host is what the core offers a L2TPSessions plugin.
type Host interface {
	// InstallSession puts a session on the data path; from then on the
	// core owns its address lease.
	InstallSession(ctx context.Context, s SessionSpec) (handle uint64, err error)
	// RemoveSession takes it off and releases its address. ErrNotFound:
	// the core ended the session itself (its IPsec SA went, or an
	// operator disconnected it) and has logged its end.
	RemoveSession(ctx context.Context, handle uint64, reason string) (SessionCounters, error)
	AllocateAddress(ctx context.Context, pool, user string, requested netip.Addr) (netip.Addr, error)
	// ReleaseAddress gives back a lease no installed session holds.
	ReleaseAddress(ctx context.Context, pool string, addr netip.Addr) error
	AuthenticateUser(ctx context.Context, req UserAuthRequest) (UserAuthResult, error)
	EmitAudit(ctx context.Context, ev AuditEvent) error
}

// L2TPSessions is implemented by the plugin. Start gives it the Host; then
// Control runs for the plugin's lifetime, receiving what the core forwards
// and sending what the core must transmit.
type L2TPSessions interface {
	Info(ctx context.Context) (L2TPInfo, error)
	Start(ctx context.Context, host Host) error
	Configure(ctx context.Context, cfg L2TPConfig) ([]string, error)
	Control(ctx context.Context, conn ControlConn) error
}

// L2TPClient is the core's handle on a L2TPSessions plugin.
type L2TPClient interface {
	Info(ctx context.Context) (L2TPInfo, error)
	Start(ctx context.Context, host Host) error
	Configure(ctx context.Context, cfg L2TPConfig) ([]string, error)
	// OpenControl opens the control stream; it lives until ctx ends.
	OpenControl(ctx context.Context) (ControlConn, error)
}

// L2TPPlugin is the go-plugin glue for L2TPSessions.
type L2TPPlugin struct {
	grpcPluginBase
	Impl L2TPSessions
}

func (p *L2TPPlugin) GRPCServer(b *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return nil
	}
	pb.RegisterL2TPSessionsServer(s, &l2tpServer{impl: p.Impl, broker: b})
	return nil
}

func (p *L2TPPlugin) GRPCClient(_ context.Context, b *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &l2tpClient{c: pb.NewL2TPSessionsClient(c), broker: b}, nil
}

var (
	_ L2TPClient = (*l2tpClient)(nil)
	_ Host       = (*hostClient)(nil)
)

// --- conversions ---

func addrsToText(list []netip.Addr) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.String())
	}
	return out
}

func addrsFromText(list []string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range list {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: address %q", ErrInvalid, s)
		}
		out = append(out, a)
	}
	return out, nil
}

func l2tpConfigToPB(c L2TPConfig) *pb.L2TPConfig {
	out := &pb.L2TPConfig{Dns: addrsToText(c.DNS), Nbns: addrsToText(c.NBNS), PppAuth: c.PPPAuth, Mru: uint32(c.MRU),
		HelloIntervalSeconds: c.HelloIntervalSeconds, IdleTimeoutSeconds: c.IdleTimeoutSeconds, TunnelSecretFile: c.TunnelSecretFile}
	if c.Pool.IsValid() {
		out.Pool = c.Pool.String()
	}
	return out
}

func l2tpConfigFromPB(p *pb.L2TPConfig) (L2TPConfig, error) {
	out := L2TPConfig{PPPAuth: p.GetPppAuth(), HelloIntervalSeconds: p.GetHelloIntervalSeconds(),
		IdleTimeoutSeconds: p.GetIdleTimeoutSeconds(), TunnelSecretFile: p.GetTunnelSecretFile()}
	if p.GetMru() > 65535 {
		return L2TPConfig{}, fmt.Errorf("%w: mru %d", ErrInvalid, p.GetMru())
	}
	out.MRU = uint16(p.GetMru())
	if p.GetPool() != "" {
		pool, err := netip.ParsePrefix(p.GetPool())
		if err != nil {
			return L2TPConfig{}, fmt.Errorf("%w: pool %q", ErrInvalid, p.GetPool())
		}
		out.Pool = pool
	}
	var err error
	if out.DNS, err = addrsFromText(p.GetDns()); err != nil {
		return L2TPConfig{}, err
	}
	if out.NBNS, err = addrsFromText(p.GetNbns()); err != nil {
		return L2TPConfig{}, err
	}
	return out, nil
}

func controlToPB(c ControlPacket) *pb.ControlPacket {
	return &pb.ControlPacket{Kind: pb.ControlKind(c.Kind), SaId: c.SAID, Local: endpointToPB(c.Local), Peer: endpointToPB(c.Peer),
		TunnelId: uint32(c.TunnelID), SessionId: uint32(c.SessionID), Payload: c.Payload}
}

func controlFromPB(p *pb.ControlPacket) (ControlPacket, error) {
	local, err := endpointFromPB(p.GetLocal())
	if err != nil {
		return ControlPacket{}, err
	}
	peer, err := endpointFromPB(p.GetPeer())
	if err != nil {
		return ControlPacket{}, err
	}
	if p.GetTunnelId() > 65535 || p.GetSessionId() > 65535 {
		return ControlPacket{}, fmt.Errorf("%w: L2TP ids are 16 bits (RFC 2661 section 3.1)", ErrInvalid)
	}
	return ControlPacket{Kind: ControlKind(p.GetKind()), SAID: p.GetSaId(), Local: local, Peer: peer,
		TunnelID: uint16(p.GetTunnelId()), SessionID: uint16(p.GetSessionId()), Payload: p.GetPayload()}, nil
}

func sessionToPB(s SessionSpec) *pb.InstallSessionRequest {
	return &pb.InstallSessionRequest{SaId: s.SAID, Local: endpointToPB(s.Local), Peer: endpointToPB(s.Peer),
		LocalTunnelId: uint32(s.LocalTunnelID), LocalSessionId: uint32(s.LocalSessionID),
		PeerTunnelId: uint32(s.PeerTunnelID), PeerSessionId: uint32(s.PeerSessionID),
		ClientAddress: addrText(s.ClientAddress), User: s.User, Mru: uint32(s.MRU), LcpMagic: s.LCPMagic}
}

func sessionFromPB(p *pb.InstallSessionRequest) (SessionSpec, error) {
	local, err := endpointFromPB(p.GetLocal())
	if err != nil {
		return SessionSpec{}, err
	}
	peer, err := endpointFromPB(p.GetPeer())
	if err != nil {
		return SessionSpec{}, err
	}
	for _, v := range []uint32{p.GetLocalTunnelId(), p.GetLocalSessionId(), p.GetPeerTunnelId(), p.GetPeerSessionId(), p.GetMru()} {
		if v > 65535 {
			return SessionSpec{}, fmt.Errorf("%w: session field %d exceeds 16 bits", ErrInvalid, v)
		}
	}
	ca, err := addrFromText(p.GetClientAddress())
	if err != nil {
		return SessionSpec{}, err
	}
	return SessionSpec{SAID: p.GetSaId(), Local: local, Peer: peer,
		LocalTunnelID: uint16(p.GetLocalTunnelId()), LocalSessionID: uint16(p.GetLocalSessionId()),
		PeerTunnelID: uint16(p.GetPeerTunnelId()), PeerSessionID: uint16(p.GetPeerSessionId()),
		ClientAddress: ca, User: p.GetUser(), MRU: uint16(p.GetMru()), LCPMagic: p.GetLcpMagic()}, nil
}

// --- tunnel client shim (core side) ---

type l2tpClient struct {
	c      pb.L2TPSessionsClient
	broker *plugin.GRPCBroker

	mu         sync.Mutex
	hostServer *grpc.Server
}

func (t *l2tpClient) Info(ctx context.Context) (L2TPInfo, error) {
	r, err := t.c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return L2TPInfo{}, fromStatus("tunnel info", err)
	}
	return L2TPInfo{Info: infoFromPB(r.GetInfo()), Protocols: r.GetProtocols()}, nil
}

// Start serves host on a broker stream and tells the plugin its id.
func (t *l2tpClient) Start(ctx context.Context, host Host) error {
	id := t.broker.NextId()
	go t.broker.AcceptAndServe(id, func(opts []grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(opts...)
		pb.RegisterHostServer(s, &hostServer{impl: host})
		t.mu.Lock()
		if t.hostServer != nil {
			t.hostServer.Stop()
		}
		t.hostServer = s
		t.mu.Unlock()
		return s
	})
	_, err := t.c.Start(ctx, &pb.StartRequest{HostBrokerId: id})
	return fromStatus("tunnel start", err)
}

func (t *l2tpClient) Configure(ctx context.Context, cfg L2TPConfig) ([]string, error) {
	r, err := t.c.Configure(ctx, l2tpConfigToPB(cfg))
	if err != nil {
		return nil, fromStatus("tunnel configure", err)
	}
	return r.GetWarnings(), nil
}

func (t *l2tpClient) OpenControl(ctx context.Context) (ControlConn, error) {
	s, err := t.c.Control(ctx)
	if err != nil {
		return nil, fromStatus("tunnel control", err)
	}
	return &controlStream{s: s}, nil
}

// controlStream adapts either end of the gRPC stream.
type controlStream struct {
	s interface {
		Send(*pb.ControlPacket) error
		Recv() (*pb.ControlPacket, error)
	}
}

func (c *controlStream) Send(p ControlPacket) error {
	return fromStatus("control send", c.s.Send(controlToPB(p)))
}

func (c *controlStream) Recv() (ControlPacket, error) {
	p, err := c.s.Recv()
	if err != nil {
		return ControlPacket{}, err // io.EOF passes through unwrapped
	}
	return controlFromPB(p)
}

// --- tunnel server shim (plugin side) ---

type l2tpServer struct {
	pb.UnimplementedL2TPSessionsServer
	impl   L2TPSessions
	broker *plugin.GRPCBroker
}

func (s *l2tpServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.L2TPInfo, error) {
	i, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.L2TPInfo{Info: infoToPB(i.Info), Protocols: i.Protocols}, nil
}

func (s *l2tpServer) Start(ctx context.Context, req *pb.StartRequest) (*pb.StartResponse, error) {
	conn, err := s.broker.Dial(req.GetHostBrokerId())
	if err != nil {
		return nil, toStatus(fmt.Errorf("%w: dial host service: %v", ErrUnavailable, err))
	}
	if err := s.impl.Start(ctx, &hostClient{c: pb.NewHostClient(conn)}); err != nil {
		return nil, toStatus(err)
	}
	return &pb.StartResponse{}, nil
}

func (s *l2tpServer) Configure(ctx context.Context, req *pb.L2TPConfig) (*pb.ConfigureL2TPResponse, error) {
	cfg, err := l2tpConfigFromPB(req)
	if err != nil {
		return nil, toStatus(err)
	}
	w, err := s.impl.Configure(ctx, cfg)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConfigureL2TPResponse{Warnings: w}, nil
}

func (s *l2tpServer) Control(stream pb.L2TPSessions_ControlServer) error {
	return toStatus(s.impl.Control(stream.Context(), &controlStream{s: stream}))
}

// --- host client shim (plugin side) ---

type hostClient struct{ c pb.HostClient }

func (h *hostClient) InstallSession(ctx context.Context, s SessionSpec) (uint64, error) {
	r, err := h.c.InstallSession(ctx, sessionToPB(s))
	if err != nil {
		return 0, fromStatus("install session", err)
	}
	return r.GetSessionHandle(), nil
}

func (h *hostClient) RemoveSession(ctx context.Context, handle uint64, reason string) (SessionCounters, error) {
	r, err := h.c.RemoveSession(ctx, &pb.RemoveSessionRequest{SessionHandle: handle, Reason: reason})
	if err != nil {
		return SessionCounters{}, fromStatus("remove session", err)
	}
	return SessionCounters{BytesIn: r.GetBytesIn(), BytesOut: r.GetBytesOut(), PacketsIn: r.GetPacketsIn(), PacketsOut: r.GetPacketsOut()}, nil
}

func (h *hostClient) AllocateAddress(ctx context.Context, pool, user string, requested netip.Addr) (netip.Addr, error) {
	r, err := h.c.AllocateAddress(ctx, &pb.AllocateAddressRequest{Pool: pool, User: user, Requested: addrText(requested)})
	if err != nil {
		return netip.Addr{}, fromStatus("allocate address", err)
	}
	return addrFromText(r.GetAddress())
}

func (h *hostClient) ReleaseAddress(ctx context.Context, pool string, addr netip.Addr) error {
	_, err := h.c.ReleaseAddress(ctx, &pb.ReleaseAddressRequest{Pool: pool, Address: addrText(addr)})
	return fromStatus("release address", err)
}

func (h *hostClient) AuthenticateUser(ctx context.Context, req UserAuthRequest) (UserAuthResult, error) {
	r, err := h.c.AuthenticateUser(ctx, userAuthRequestToPB(req))
	if err != nil {
		return UserAuthResult{}, fromStatus("host authenticate user", err)
	}
	return userAuthResultFromPB(r)
}

func (h *hostClient) EmitAudit(ctx context.Context, ev AuditEvent) error {
	_, err := h.c.EmitAudit(ctx, &pb.AuditEvent{Id: ev.ID, Name: ev.Name, Fields: ev.Fields})
	return fromStatus("emit audit", err)
}

// --- host server shim (core side) ---

type hostServer struct {
	pb.UnimplementedHostServer
	impl Host
}

func (s *hostServer) InstallSession(ctx context.Context, req *pb.InstallSessionRequest) (*pb.InstallSessionResponse, error) {
	spec, err := sessionFromPB(req)
	if err != nil {
		return nil, toStatus(err)
	}
	h, err := s.impl.InstallSession(ctx, spec)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InstallSessionResponse{SessionHandle: h}, nil
}

func (s *hostServer) RemoveSession(ctx context.Context, req *pb.RemoveSessionRequest) (*pb.RemoveSessionResponse, error) {
	c, err := s.impl.RemoveSession(ctx, req.GetSessionHandle(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.RemoveSessionResponse{BytesIn: c.BytesIn, BytesOut: c.BytesOut, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut}, nil
}

func (s *hostServer) AllocateAddress(ctx context.Context, req *pb.AllocateAddressRequest) (*pb.AllocateAddressResponse, error) {
	want, err := addrFromText(req.GetRequested())
	if err != nil {
		return nil, toStatus(err)
	}
	a, err := s.impl.AllocateAddress(ctx, req.GetPool(), req.GetUser(), want)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.AllocateAddressResponse{Address: addrText(a)}, nil
}

func (s *hostServer) ReleaseAddress(ctx context.Context, req *pb.ReleaseAddressRequest) (*pb.ReleaseAddressResponse, error) {
	a, err := addrFromText(req.GetAddress())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.impl.ReleaseAddress(ctx, req.GetPool(), a); err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReleaseAddressResponse{}, nil
}

func (s *hostServer) AuthenticateUser(ctx context.Context, req *pb.UserAuthRequest) (*pb.UserAuthResponse, error) {
	return serveUserAuth(ctx, req, s.impl.AuthenticateUser)
}

func (s *hostServer) EmitAudit(ctx context.Context, req *pb.AuditEvent) (*pb.EmitAuditResponse, error) {
	if err := s.impl.EmitAudit(ctx, AuditEvent{ID: req.GetId(), Name: req.GetName(), Fields: req.GetFields()}); err != nil {
		return nil, toStatus(err)
	}
	return &pb.EmitAuditResponse{}, nil
}
