// Package sdk is the plugin boundary: the handshake, the plugin map, the Go
// interface of each plugin kind and the gRPC shims that carry it. Generated
// protobuf code stays behind the shims; plugins and the core see Go types.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// ProtocolVersion is bumped on any incompatible change to proto/gatehouse/plugin.
const ProtocolVersion = 1

// Handshake is shared by the core and every plugin. The cookie only keeps a
// plugin binary from being run by hand by mistake; it is not a secret.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "GATEHOUSE_PLUGIN",
	MagicCookieValue: "9c1f3a5e-gatehouse-plugin-v1",
}

// Plugin kinds, as named in the go-plugin plugin map.
const (
	KindAuthenticator = "authenticator"
	KindL2TP          = "l2tp"
	KindOffload       = "offload"
	KindInterop       = "interop"
)

// Kinds lists every plugin kind in a fixed order.
var Kinds = []string{KindAuthenticator, KindL2TP, KindOffload, KindInterop}

// Sentinel errors that cross the boundary as gRPC status codes.
var (
	// ErrUnsupported: the plugin does not implement this call or method.
	ErrUnsupported = errors.New("not supported by this plugin")
	// ErrUnavailable: the plugin process is gone or not answering.
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrInvalid: the plugin refused the request or configuration.
	ErrInvalid = errors.New("invalid request")
	// ErrNotFound: the handle, context or entry is unknown to the plugin.
	ErrNotFound = errors.New("not found")
)

// Info describes a plugin instance.
type Info struct {
	Name        string
	Version     string
	Description string
}

// Impl holds the kinds one plugin binary serves; nil kinds are not served.
type Impl struct {
	Authenticator Authenticator
	L2TP          L2TPSessions
	Offload       CryptoOffload
	Interop       Interop
}

// PluginSet is the go-plugin map for impl. The host uses PluginSet(Impl{}).
func PluginSet(impl Impl) plugin.PluginSet {
	return plugin.PluginSet{
		KindAuthenticator: &AuthenticatorPlugin{Impl: impl.Authenticator},
		KindL2TP:          &L2TPPlugin{Impl: impl.L2TP},
		KindOffload:       &OffloadPlugin{Impl: impl.Offload},
		KindInterop:       &InteropPlugin{Impl: impl.Interop},
	}
}

// Serve runs a plugin binary's main loop. It does not return.
func Serve(impl Impl, logger hclog.Logger) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         PluginSet(impl),
		GRPCServer:      plugin.DefaultGRPCServer,
		Logger:          logger,
	})
}

// Main is a plugin's main: `--version` (or -v) prints the name and
// version; otherwise it serves what impl makes, logging JSON to stderr
// for the host to pick up. The core starts plugins; they are not run by
// hand.
func Main(name, version string, impl func(log hclog.Logger) Impl) {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-v") {
		fmt.Println(name, version)
		return
	}
	log := hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Info, JSONFormat: true, Output: os.Stderr})
	Serve(impl(log), log)
}

// toStatus maps a Go error from an implementation to a gRPC status.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, ErrUnsupported):
		code = codes.Unimplemented
	case errors.Is(err, ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// fromStatus maps a gRPC error back to our sentinels, naming the call.
func fromStatus(call string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", call, err)
	}
	var sentinel error
	switch st.Code() {
	case codes.Unimplemented:
		sentinel = ErrUnsupported
	case codes.InvalidArgument:
		sentinel = ErrInvalid
	case codes.NotFound:
		sentinel = ErrNotFound
	case codes.Unavailable:
		return fmt.Errorf("%s: %w (the plugin process may have exited)", call, ErrUnavailable)
	case codes.DeadlineExceeded:
		sentinel = context.DeadlineExceeded
	case codes.Canceled:
		sentinel = context.Canceled
	default:
		return fmt.Errorf("%s: %s", call, st.Message())
	}
	return fmt.Errorf("%s: %w: %s", call, sentinel, st.Message())
}

// Secret is key material. It never prints.
type Secret []byte

func (s Secret) String() string   { return fmt.Sprintf("secret(%d bytes)", len(s)) }
func (s Secret) GoString() string { return s.String() }

func infoToPB(i Info) *pb.PluginInfo {
	return &pb.PluginInfo{Name: i.Name, Version: i.Version, Description: i.Description}
}

func infoFromPB(p *pb.PluginInfo) Info {
	return Info{Name: p.GetName(), Version: p.GetVersion(), Description: p.GetDescription()}
}

func endpointToPB(a netip.AddrPort) *pb.Endpoint {
	if !a.IsValid() {
		return nil
	}
	return &pb.Endpoint{Address: a.Addr().String(), Port: uint32(a.Port())}
}

func endpointFromPB(e *pb.Endpoint) (netip.AddrPort, error) {
	if e == nil || e.Address == "" {
		return netip.AddrPort{}, nil
	}
	a, err := netip.ParseAddr(e.Address)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: endpoint address %q", ErrInvalid, e.Address)
	}
	if e.Port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("%w: endpoint port %d", ErrInvalid, e.Port)
	}
	return netip.AddrPortFrom(a, uint16(e.Port)), nil
}

func addrFromText(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: address %q", ErrInvalid, s)
	}
	return a, nil
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// grpcPluginBase gives each kind go-plugin's net/rpc refusal.
type grpcPluginBase struct{ plugin.NetRPCUnsupportedPlugin }
