package sdk

import (
	"context"
	"net/netip"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// InteropInfo names the client families an interop plugin knows and the
// vendor IDs it reads (their first bytes): Classify is given only those,
// and answers are cached by them. None: every vendor ID counts.
type InteropInfo struct {
	Info
	Families         []string
	VendorIDPrefixes [][]byte
}

// VendorIDsRequest asks which vendor IDs to send to a peer.
type VendorIDsRequest struct {
	Initiator   bool
	Peer        netip.AddrPort
	AuthMethods []string
}

// ClassifyRequest hands over the vendor IDs a peer sent in its first
// message, and its offer (we respond) or its choice (we initiate).
type ClassifyRequest struct {
	VendorIDs [][]byte
	Peer      netip.AddrPort
	Offered   []ProposalText
	Initiator bool
	// Version is the peer's IKE version: 1, or 2 (Offered is then the
	// IKE_SA_INIT offer as IKEv2 suites).
	Version int
}

// Classification is the peer's family and feature flags; an empty Family
// means the plugin does not know the peer.
type Classification struct {
	Family string
	Flags  []string
	Detail string
	// VendorIDs go in our answer to the peer; RefusalHint is added to a
	// no-proposal-chosen refusal of it.
	VendorIDs   [][]byte
	RefusalHint string
}

// ProposalText is a proposal in Gatehouse notation with its lifetime.
type ProposalText struct {
	Text            string
	LifetimeSeconds uint32
}

// AdjustRequest asks for quirk-driven changes to an offer or a choice.
type AdjustRequest struct {
	Flags     []string
	Proposals []ProposalText
	Phase1    bool // the IKE SA's suites; else ESP's
	Version   int  // 1 or 2, as in ClassifyRequest
}

// AdjustResult is the adjusted list with a note per change.
type AdjustResult struct {
	Proposals []ProposalText
	Notes     []string
}

// Interop carries vendor quirks.
type Interop interface {
	Info(ctx context.Context) (InteropInfo, error)
	// Configure takes the plugin's options (plugins.load[].options); it
	// refuses unknown or bad ones with ErrInvalid, and returns notes on
	// what they enable.
	Configure(ctx context.Context, options map[string]string) ([]string, error)
	VendorIDs(ctx context.Context, req VendorIDsRequest) ([][]byte, error)
	Classify(ctx context.Context, req ClassifyRequest) (Classification, error)
	AdjustProposals(ctx context.Context, req AdjustRequest) (AdjustResult, error)
}

// InteropPlugin is the go-plugin glue for Interop.
type InteropPlugin struct {
	grpcPluginBase
	Impl Interop
}

func (p *InteropPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return nil
	}
	pb.RegisterInteropServer(s, &interopServer{impl: p.Impl})
	return nil
}

func (p *InteropPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &interopClient{c: pb.NewInteropClient(c)}, nil
}

var _ Interop = (*interopClient)(nil)

func proposalsToPB(list []ProposalText) []*pb.Proposal {
	out := make([]*pb.Proposal, len(list))
	for i, p := range list {
		out[i] = &pb.Proposal{Text: p.Text, LifetimeSeconds: p.LifetimeSeconds}
	}
	return out
}

func proposalsFromPB(list []*pb.Proposal) []ProposalText {
	out := make([]ProposalText, len(list))
	for i, p := range list {
		out[i] = ProposalText{Text: p.GetText(), LifetimeSeconds: p.GetLifetimeSeconds()}
	}
	return out
}

type interopClient struct{ c pb.InteropClient }

func (i *interopClient) Info(ctx context.Context) (InteropInfo, error) {
	r, err := i.c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return InteropInfo{}, fromStatus("interop info", err)
	}
	return InteropInfo{Info: infoFromPB(r.GetInfo()), Families: r.GetFamilies(), VendorIDPrefixes: r.GetVendorIdPrefixes()}, nil
}

func (i *interopClient) Configure(ctx context.Context, options map[string]string) ([]string, error) {
	r, err := i.c.Configure(ctx, &pb.InteropConfig{Options: options})
	if err != nil {
		return nil, fromStatus("interop configure", err)
	}
	return r.GetNotes(), nil
}

func (i *interopClient) VendorIDs(ctx context.Context, req VendorIDsRequest) ([][]byte, error) {
	r, err := i.c.VendorIDs(ctx, &pb.VendorIDsRequest{Initiator: req.Initiator, Peer: endpointToPB(req.Peer), AuthMethods: req.AuthMethods})
	if err != nil {
		return nil, fromStatus("interop vendor ids", err)
	}
	return r.GetVendorIds(), nil
}

func (i *interopClient) Classify(ctx context.Context, req ClassifyRequest) (Classification, error) {
	r, err := i.c.Classify(ctx, &pb.ClassifyRequest{VendorIds: req.VendorIDs, Peer: endpointToPB(req.Peer),
		Offered: proposalsToPB(req.Offered), Initiator: req.Initiator, IkeVersion: uint32(req.Version)})
	if err != nil {
		return Classification{}, fromStatus("interop classify", err)
	}
	return Classification{Family: r.GetFamily(), Flags: r.GetFlags(), Detail: r.GetDetail(), VendorIDs: r.GetVendorIds(),
		RefusalHint: r.GetRefusalHint()}, nil
}

func (i *interopClient) AdjustProposals(ctx context.Context, req AdjustRequest) (AdjustResult, error) {
	r, err := i.c.AdjustProposals(ctx, &pb.AdjustProposalsRequest{Flags: req.Flags, Proposals: proposalsToPB(req.Proposals), Phase1: req.Phase1,
		IkeVersion: uint32(req.Version)})
	if err != nil {
		return AdjustResult{}, fromStatus("interop adjust proposals", err)
	}
	return AdjustResult{Proposals: proposalsFromPB(r.GetProposals()), Notes: r.GetNotes()}, nil
}

type interopServer struct {
	pb.UnimplementedInteropServer
	impl Interop
}

func (s *interopServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.InteropInfo, error) {
	i, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InteropInfo{Info: infoToPB(i.Info), Families: i.Families, VendorIdPrefixes: i.VendorIDPrefixes}, nil
}

func (s *interopServer) Configure(ctx context.Context, req *pb.InteropConfig) (*pb.InteropConfigResponse, error) {
	notes, err := s.impl.Configure(ctx, req.GetOptions())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InteropConfigResponse{Notes: notes}, nil
}

func (s *interopServer) VendorIDs(ctx context.Context, req *pb.VendorIDsRequest) (*pb.VendorIDsResponse, error) {
	peer, err := endpointFromPB(req.GetPeer())
	if err != nil {
		return nil, toStatus(err)
	}
	v, err := s.impl.VendorIDs(ctx, VendorIDsRequest{Initiator: req.GetInitiator(), Peer: peer, AuthMethods: req.GetAuthMethods()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.VendorIDsResponse{VendorIds: v}, nil
}

func (s *interopServer) Classify(ctx context.Context, req *pb.ClassifyRequest) (*pb.ClassifyResponse, error) {
	peer, err := endpointFromPB(req.GetPeer())
	if err != nil {
		return nil, toStatus(err)
	}
	c, err := s.impl.Classify(ctx, ClassifyRequest{VendorIDs: req.GetVendorIds(), Peer: peer, Offered: proposalsFromPB(req.GetOffered()),
		Initiator: req.GetInitiator(), Version: ikeVersion(req.GetIkeVersion())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ClassifyResponse{Family: c.Family, Flags: c.Flags, Detail: c.Detail, VendorIds: c.VendorIDs, RefusalHint: c.RefusalHint}, nil
}

func (s *interopServer) AdjustProposals(ctx context.Context, req *pb.AdjustProposalsRequest) (*pb.AdjustProposalsResponse, error) {
	r, err := s.impl.AdjustProposals(ctx, AdjustRequest{Flags: req.GetFlags(), Proposals: proposalsFromPB(req.GetProposals()), Phase1: req.GetPhase1(),
		Version: ikeVersion(req.GetIkeVersion())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.AdjustProposalsResponse{Proposals: proposalsToPB(r.Proposals), Notes: r.Notes}, nil
}

// ikeVersion reads the wire's version: 0, from a core that predates the
// field, is IKEv1.
func ikeVersion(v uint32) int {
	if v == 2 {
		return 2
	}
	return 1
}
