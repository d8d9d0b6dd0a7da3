package sdk

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// OffloadInfo is a crypto backend's capabilities.
type OffloadInfo struct {
	Info
	Algorithms []string
	KeySizes   []uint32
	MaxBatch   uint32
}

// Direction of an SA.
type Direction int

const (
	Outbound Direction = iota + 1
	Inbound
)

// OffloadSA is the key material of one SA handed to a backend.
type OffloadSA struct {
	SPI           uint32
	Direction     Direction
	Algorithm     string
	EncryptionKey Secret
	IntegrityKey  Secret
	Salt          Secret
}

// CryptoOpKind says whether to encrypt or decrypt.
type CryptoOpKind int

const (
	Encrypt CryptoOpKind = iota + 1
	Decrypt
)

// CryptoOp is one packet's crypto work.
type CryptoOp struct {
	Handle uint64
	Op     CryptoOpKind
	IV     []byte
	AAD    []byte
	Data   []byte
}

// CryptoResult is one op's output; Err is empty on success.
type CryptoResult struct {
	Data []byte
	Err  string
}

// CryptoOffload is a crypto backend in another process.
type CryptoOffload interface {
	Info(ctx context.Context) (OffloadInfo, error)
	InstallSA(ctx context.Context, sa OffloadSA) (handle uint64, err error)
	RemoveSA(ctx context.Context, handle uint64) error
	ProcessBatch(ctx context.Context, ops []CryptoOp) ([]CryptoResult, error)
}

// OffloadPlugin is the go-plugin glue for CryptoOffload.
type OffloadPlugin struct {
	grpcPluginBase
	Impl CryptoOffload
}

func (p *OffloadPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return nil
	}
	pb.RegisterCryptoOffloadServer(s, &offloadServer{impl: p.Impl})
	return nil
}

func (p *OffloadPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &offloadClient{c: pb.NewCryptoOffloadClient(c)}, nil
}

var _ CryptoOffload = (*offloadClient)(nil)

type offloadClient struct{ c pb.CryptoOffloadClient }

func (o *offloadClient) Info(ctx context.Context) (OffloadInfo, error) {
	r, err := o.c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return OffloadInfo{}, fromStatus("offload info", err)
	}
	return OffloadInfo{Info: infoFromPB(r.GetInfo()), Algorithms: r.GetAlgorithms(), KeySizes: r.GetKeySizes(), MaxBatch: r.GetMaxBatch()}, nil
}

func (o *offloadClient) InstallSA(ctx context.Context, sa OffloadSA) (uint64, error) {
	r, err := o.c.InstallSA(ctx, &pb.InstallSARequest{Spi: sa.SPI, Direction: pb.Direction(sa.Direction), Algorithm: sa.Algorithm,
		EncryptionKey: sa.EncryptionKey, IntegrityKey: sa.IntegrityKey, Salt: sa.Salt})
	if err != nil {
		return 0, fromStatus("offload install sa", err)
	}
	return r.GetHandle(), nil
}

func (o *offloadClient) RemoveSA(ctx context.Context, handle uint64) error {
	_, err := o.c.RemoveSA(ctx, &pb.RemoveSARequest{Handle: handle})
	return fromStatus("offload remove sa", err)
}

func (o *offloadClient) ProcessBatch(ctx context.Context, ops []CryptoOp) ([]CryptoResult, error) {
	req := &pb.Batch{Ops: make([]*pb.CryptoOp, len(ops))}
	for i, op := range ops {
		req.Ops[i] = &pb.CryptoOp{Handle: op.Handle, Op: pb.Operation(op.Op), Iv: op.IV, Aad: op.AAD, Data: op.Data}
	}
	r, err := o.c.ProcessBatch(ctx, req)
	if err != nil {
		return nil, fromStatus("offload batch", err)
	}
	if len(r.GetResults()) != len(ops) {
		return nil, fmt.Errorf("offload batch: %w: %d results for %d ops", ErrInvalid, len(r.GetResults()), len(ops))
	}
	out := make([]CryptoResult, len(ops))
	for i, res := range r.GetResults() {
		out[i] = CryptoResult{Data: res.GetData(), Err: res.GetError()}
	}
	return out, nil
}

type offloadServer struct {
	pb.UnimplementedCryptoOffloadServer
	impl CryptoOffload
}

func (s *offloadServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.OffloadInfo, error) {
	i, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.OffloadInfo{Info: infoToPB(i.Info), Algorithms: i.Algorithms, KeySizes: i.KeySizes, MaxBatch: i.MaxBatch}, nil
}

func (s *offloadServer) InstallSA(ctx context.Context, req *pb.InstallSARequest) (*pb.InstallSAResponse, error) {
	h, err := s.impl.InstallSA(ctx, OffloadSA{SPI: req.GetSpi(), Direction: Direction(req.GetDirection()), Algorithm: req.GetAlgorithm(),
		EncryptionKey: req.GetEncryptionKey(), IntegrityKey: req.GetIntegrityKey(), Salt: req.GetSalt()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.InstallSAResponse{Handle: h}, nil
}

func (s *offloadServer) RemoveSA(ctx context.Context, req *pb.RemoveSARequest) (*pb.RemoveSAResponse, error) {
	if err := s.impl.RemoveSA(ctx, req.GetHandle()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.RemoveSAResponse{}, nil
}

func (s *offloadServer) ProcessBatch(ctx context.Context, req *pb.Batch) (*pb.BatchResult, error) {
	ops := make([]CryptoOp, len(req.GetOps()))
	for i, op := range req.GetOps() {
		ops[i] = CryptoOp{Handle: op.GetHandle(), Op: CryptoOpKind(op.GetOp()), IV: op.GetIv(), AAD: op.GetAad(), Data: op.GetData()}
	}
	res, err := s.impl.ProcessBatch(ctx, ops)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.BatchResult{Results: make([]*pb.CryptoResult, len(res))}
	for i, r := range res {
		out.Results[i] = &pb.CryptoResult{Data: r.Data, Error: r.Err}
	}
	return out, nil
}
