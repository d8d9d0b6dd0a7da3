// Package admin serves gatehoused's control API on a unix socket (mode 0600)
// for the gatehouse CLI.
package admin

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"syscall"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gatehouse/gatehouse/core/daemon"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/remote"
	"github.com/gatehouse/gatehouse/core/sad"
	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/admin/v1"
)

// Server is the admin API.
type Server struct {
	pb.UnimplementedAdminServer
	d    *daemon.Daemon
	log  *zap.Logger
	grpc *grpc.Server
	path string
}

// Listen opens the socket: its folder is made 0750 if missing, a stale
// socket left by a dead daemon is replaced, and a live one is an error.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: another gatehoused is serving it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin socket: removing stale %s: %w", path, err)
		}
	}
	// The umask makes the socket 0600 from the start, with no window in
	// which others could connect.
	old := syscall.Umask(0o177)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return l, nil
}

// New makes the server.
func New(d *daemon.Daemon, log *zap.Logger) *Server {
	s := &Server{d: d, log: log, grpc: grpc.NewServer()}
	pb.RegisterAdminServer(s.grpc, s)
	return s
}

// Serve blocks until Stop.
func (s *Server) Serve(l net.Listener) error {
	s.path = l.Addr().String()
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop ends the server and removes the socket.
func (s *Server) Stop() {
	s.grpc.GracefulStop()
	if s.path != "" {
		os.Remove(s.path)
	}
}

func (s *Server) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	l := s.d.Current()
	reloads, lastErr := s.d.ReloadStats()
	out := &pb.StatusResponse{
		Version: daemon.Version, StartedUnix: s.d.Started().Unix(), ConfigFile: l.Config.File, ConfigLoadedUnix: l.At.Unix(),
		Reloads: uint32(reloads), Rules: uint32(len(l.Policy.Rules)), Filters: uint32(len(l.Policy.Entries)),
		Tunnels: uint32(len(l.Config.Tunnels)), RemoteAccess: l.Config.RemoteAccess != nil,
		RemoteAccessIkev2: l.Config.RemoteAccess != nil && l.Config.RemoteAccess.IKEv2 != nil, Exemptions: l.Policy.ExemptName,
		LastReloadError: lastErr, Goroutines: uint32(runtime.NumGoroutine()), RssBytes: rss(),
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	if metrics.Read(sample); sample[0].Value.Kind() == metrics.KindUint64 && sample[1].Value.Kind() == metrics.KindUint64 {
		out.HeapLiveBytes, out.GcCycles = sample[0].Value.Uint64(), sample[1].Value.Uint64()
	}
	for _, a := range l.Config.Listen {
		out.Listen = append(out.Listen, a.Addr.String())
	}
	for _, p := range s.d.Plugins().Plugins() {
		out.PluginsTotal++
		if p.Status().State == "running" {
			out.PluginsRunning++
		}
	}
	return out, nil
}

// rss is our resident set size from /proc (0 where there is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * uint64(os.Getpagesize())
}

func (s *Server) PolicyShow(context.Context, *pb.PolicyShowRequest) (*pb.PolicyShowResponse, error) {
	pol := s.d.Current().Policy
	out := &pb.PolicyShowResponse{Exemptions: pol.ExemptName, Exempt: pol.Exemptions}
	for _, e := range pol.Entries {
		out.Filters = append(out.Filters, AppliedFilter(e))
	}
	return out, nil
}

// AppliedFilter renders one SPD entry with the fields netdiag /test:ipsec
// showed.
func AppliedFilter(e *policy.Entry) *pb.AppliedFilter {
	r := e.Rule
	f := &pb.AppliedFilter{
		Rule: r.Name, Direction: e.Dir.String(), Protocol: protoName(e.Proto),
		SourcePort: uint32(e.SrcPort), DestinationPort: uint32(e.DstPort),
		Action: r.Action.Action.String(), Pfs: r.Action.PFS, AcceptUnsecured: r.Action.AcceptUnsecured,
		Mirrored: e.Mirrored, Reverse: e.Mirror, Weight: e.Weight, Origin: r.Origin, Mode: "transport",
	}
	f.Source, f.SourceMask = addrMask(e.Src)
	f.Destination, f.DestinationMask = addrMask(e.Dst)
	if r.IsTunnel() {
		f.Mode, f.TunnelEndpoint = "tunnel", r.Tunnel.String()
	}
	if r.Action.Action != policy.Negotiate {
		f.Mode, f.Pfs = "", ""
	}
	for _, o := range r.Action.Offers {
		off := &pb.Offer{Protocol: o.Suite.Protocol.String(), LifetimeSeconds: uint64(o.Lifetime / time.Second), LifetimeKilobytes: o.LifetimeKB}
		if o.Suite.Encryption != nil {
			off.Encryption = o.Suite.Encryption.Name
		}
		if o.Suite.Integrity != nil {
			off.Integrity = o.Suite.Integrity.Name
		}
		f.Offers = append(f.Offers, off)
	}
	for _, a := range r.Auth {
		f.AuthMethods = append(f.AuthMethods, a.Kind+" ("+a.Detail+")")
	}
	return f
}

func addrMask(a policy.Addr) (string, string) {
	if a.Any {
		return "any", "0.0.0.0"
	}
	p := a.Prefix
	if p.Addr().Is4() {
		m := net.CIDRMask(p.Bits(), 32)
		mask, _ := netip.AddrFromSlice(m)
		return p.Addr().String(), mask.String()
	}
	return p.Addr().String(), fmt.Sprintf("/%d", p.Bits())
}

var protoNames = map[uint8]string{0: "any", 1: "icmp", 6: "tcp", 17: "udp", 46: "rsvp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6"}

func protoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return fmt.Sprint(p)
}

func (s *Server) Plugins(context.Context, *pb.PluginsRequest) (*pb.PluginsResponse, error) {
	out := &pb.PluginsResponse{}
	for _, p := range s.d.Plugins().Plugins() {
		st := p.Status()
		ps := &pb.PluginState{Name: st.Name, Path: st.Path, Kinds: st.Kinds, State: string(st.State), Pid: int64(st.PID),
			Restarts: uint32(st.Restarts), LastExit: st.LastExit, LastError: st.LastError}
		if !st.Since.IsZero() {
			ps.SinceUnix = st.Since.Unix()
		}
		out.Plugins = append(out.Plugins, ps)
	}
	return out, nil
}

func (s *Server) Reload(ctx context.Context, _ *pb.ReloadRequest) (*pb.ReloadResponse, error) {
	s.log.Info("reload requested through the admin API")
	changes, err := s.d.Reload(ctx)
	if err != nil {
		return &pb.ReloadResponse{Applied: false, Error: err.Error()}, nil
	}
	return &pb.ReloadResponse{Applied: true, Changes: changes}, nil
}

func (s *Server) SAs(context.Context, *pb.SAsRequest) (*pb.SAsResponse, error) {
	list, counters, ok := s.d.SAs()
	out := &pb.SAsResponse{Dataplane: ok}
	if !ok {
		return out, nil
	}
	out.Sent, out.Received, out.ClearForwarded, out.Keepalives, out.Drops = counters.Sent, counters.Received, counters.ClearForwarded, counters.Keepalives, counters.Drops
	out.ClearL2Tp = counters.ClearL2TP
	out.TunReads, out.TunPackets = counters.TUNReads, counters.TUNPackets
	out.TunWrites, out.TunWritten = counters.TUNWrites, counters.TUNWritten
	for _, sn := range list {
		out.Sas = append(out.Sas, saToPB(sn))
	}
	for _, i := range s.d.IKESAs() {
		out.IkeSas = append(out.IkeSas, &pb.IKESA{Tunnel: i.Peer, Local: i.Local.String(), Remote: i.Remote.String(), Initiator: i.Initiator,
			Established: i.Established, Expired: i.Expired, Proposal: i.Phase1, AgeSeconds: int64(i.Age / time.Second), Children: uint32(i.Children),
			Cookies: hex.EncodeToString(i.SPIi[:]) + ":" + hex.EncodeToString(i.SPIr[:]), Nat: i.NAT,
			Auth: i.Auth, PeerId: i.PeerID, Family: i.Family, FamilyDetail: i.Detail, InteropPlugin: i.Plugin, Flags: i.Flags,
			Version: uint32(max(i.Version, 1))})
	}
	return out, nil
}

func (s *Server) Up(_ context.Context, r *pb.TunnelRequest) (*pb.TunnelResponse, error) {
	if err := s.d.TunnelUp(r.GetName()); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &pb.TunnelResponse{}, nil
}

func (s *Server) Down(_ context.Context, r *pb.TunnelRequest) (*pb.TunnelResponse, error) {
	if err := s.d.TunnelDown(r.GetName()); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &pb.TunnelResponse{}, nil
}

func (s *Server) Sessions(context.Context, *pb.SessionsRequest) (*pb.SessionsResponse, error) {
	si, err := s.d.Sessions()
	if errors.Is(err, daemon.ErrNoRemoteAccess) {
		return &pb.SessionsResponse{}, nil
	}
	out := &pb.SessionsResponse{RemoteAccess: true, Pool: si.Pool.String(), PoolUsed: uint32(si.Used), PoolSize: uint32(si.Size),
		ControlDropped: si.ControlDropped}
	for _, ss := range si.Sessions {
		out.Sessions = append(out.Sessions, sessionToPB(ss))
	}
	sort.Slice(out.Sessions, func(i, j int) bool { return out.Sessions[i].SinceUnix < out.Sessions[j].SinceUnix })
	return out, nil
}

func (s *Server) Disconnect(_ context.Context, r *pb.DisconnectRequest) (*pb.DisconnectResponse, error) {
	if r.GetTarget() == "" {
		return nil, status.Error(codes.InvalidArgument, "a user name or a client address is needed")
	}
	ended, err := s.d.Disconnect(r.GetTarget())
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if len(ended) == 0 {
		return nil, status.Errorf(codes.FailedPrecondition, "no session of a user or client address %q (see gatehouse sessions)", r.GetTarget())
	}
	out := &pb.DisconnectResponse{}
	for _, ss := range ended {
		out.Ended = append(out.Ended, sessionToPB(ss))
	}
	return out, nil
}

func sessionToPB(s remote.Session) *pb.Session {
	c := s.Counters
	outer := s.Peer.String()
	if s.Peer.Port() == 0 {
		outer = s.Peer.Addr().String()
	}
	return &pb.Session{User: s.User, Address: s.Client.String(), Outer: outer, SinceUnix: s.Since.Unix(),
		BytesIn: c.BytesIn, BytesOut: c.BytesOut, PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut,
		IdleSeconds: int64(time.Since(c.LastIn) / time.Second), Cleartext: s.Clear, Protocol: s.Protocol}
}

func saToPB(sn sad.Snapshot) *pb.SA {
	dir := "out"
	if sn.Inbound {
		dir = "in"
	}
	left := int64(-1)
	if sn.HardTime > 0 {
		left = int64((sn.HardTime - sn.Age) / time.Second)
	}
	sa := &pb.SA{Name: sn.Name, Direction: dir, Spi: sn.SPI, Protocol: sn.Protocol, Mode: sn.Mode.String(), Suite: sn.Suite, Esn: sn.ESN,
		Local: sn.Local.String(), Peer: sn.Peer.String(), UdpEncap: sn.UDPEncap, Bytes: sn.Bytes, Packets: sn.Packets,
		ReplayDrops: sn.ReplayDrops, AuthFailures: sn.AuthFails, OtherDrops: sn.OtherDrops, AgeSeconds: int64(sn.Age / time.Second),
		LifetimeLeftSeconds: left, Backend: sn.Backend, Rule: sn.Rule}
	if !sn.UDPEncap {
		sa.Local, sa.Peer = sn.Local.Addr().String(), sn.Peer.Addr().String()
	}
	for _, sel := range sn.Selectors {
		sa.Selectors = append(sa.Selectors, sel.String())
	}
	return sa
}
