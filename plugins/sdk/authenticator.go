package sdk

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pb "github.com/gatehouse/gatehouse/proto/gen/gatehouse/plugin/v1"
)

// AuthMethod is an IKE peer or PPP user authentication method.
type AuthMethod int

const (
	MethodPSK AuthMethod = iota + 1
	MethodX509
	MethodKerberos
	MethodPAP
	MethodCHAPMD5
	MethodMSCHAPv2
)

var methodNames = map[AuthMethod]string{
	MethodPSK: "psk", MethodX509: "x509", MethodKerberos: "kerberos",
	MethodPAP: "pap", MethodCHAPMD5: "chap", MethodMSCHAPv2: "mschapv2",
}

func (m AuthMethod) String() string {
	if s, ok := methodNames[m]; ok {
		return s
	}
	return fmt.Sprintf("method(%d)", int(m))
}

// ParseAuthMethod maps a configuration name ("psk", "mschapv2") to a method.
func ParseAuthMethod(name string) (AuthMethod, bool) {
	for m, s := range methodNames {
		if s == name {
			return m, true
		}
	}
	return 0, false
}

// Identity is an ISAKMP identification payload body (RFC 2407 4.6.2).
type Identity struct {
	Type uint8
	Data []byte
}

// AuthenticatorInfo is what an Authenticator serves.
type AuthenticatorInfo struct {
	Info
	Methods []AuthMethod
}

// PSKEntry is a key file and the peers it is for (one of MatchAddress,
// MatchID, Wildcard).
type PSKEntry struct {
	Name         string
	KeyFile      string
	MatchAddress netip.Prefix
	MatchID      string
	Wildcard     bool
}

// X509Profile configures certificate authentication.
type X509Profile struct {
	Name     string
	CAFiles  []string
	CRLFiles []string
	CertFile string
	KeyFile  string
}

// KerberosProfile configures GSS-API/Kerberos authentication.
type KerberosProfile struct {
	Name      string
	Keytab    string
	Principal string
	Ccache    string
	Krb5Conf  string
	// MaxSkew is the clock difference an acceptor allows (0: 5 minutes).
	MaxSkew time.Duration
	// ClockOffset moves our clock for Kerberos, to test skew in a lab.
	ClockOffset time.Duration
}

// RadiusServer is a RADIUS server and the file with its shared secret.
type RadiusServer struct {
	Address           string
	SecretFile        string
	AccountingAddress string
}

// AcctStatus is an accounting record's kind (RFC 2866 Acct-Status-Type).
type AcctStatus int

const (
	AcctStart AcctStatus = iota + 1
	AcctStop
	AcctInterim
)

// AccountRequest is one accounting record of a remote-access session.
type AccountRequest struct {
	Status        AcctStatus
	SessionID     string
	User          string
	FramedAddress netip.Addr
	Peer          netip.AddrPort
	BytesIn       uint64
	BytesOut      uint64
	PacketsIn     uint64
	PacketsOut    uint64
	SessionTime   time.Duration
	// TerminateCause is RFC 2866's Acct-Terminate-Cause (stop only).
	TerminateCause uint32
	Class          [][]byte
}

// RadiusConfig configures RADIUS for remote-access users.
type RadiusConfig struct {
	Servers                     []RadiusServer
	Timeout                     time.Duration
	Tries                       int
	NASIdentifier               string
	RequireMessageAuthenticator bool
}

// AuthConfig is an Authenticator's whole configuration.
type AuthConfig struct {
	PSK       []PSKEntry
	X509      []X509Profile
	Kerberos  []KerberosProfile
	UsersFile string
	Radius    *RadiusConfig // nil: no RADIUS
}

// PSKRequest asks for the key of an IKE peer. PeerID is nil in main mode.
type PSKRequest struct {
	Local  netip.AddrPort
	Peer   netip.AddrPort
	PeerID *Identity
}

// PSKResult is a found key and the entry that matched.
type PSKResult struct {
	Found bool
	Key   Secret
	Entry string
}

// VerifyCertRequest asks to validate a peer's certificate chain.
type VerifyCertRequest struct {
	Profile string
	Chain   [][]byte
	PeerID  *Identity
}

// VerifyCertResult is the outcome of chain validation.
type VerifyCertResult struct {
	OK        bool
	Subject   string
	Reason    string
	PublicKey []byte
}

// LocalCert is this gateway's certificate chain and identity, and the
// subjects of the CAs it trusts (for its certificate requests).
type LocalCert struct {
	Chain   [][]byte
	ID      *Identity
	CANames [][]byte
	// CAKeyIDs: SHA-1 of each trusted CA's SubjectPublicKeyInfo, for
	// IKEv2's CERTREQ.
	CAKeyIDs [][]byte
}

// GSSRole is the side of a GSS-API context.
type GSSRole int

const (
	GSSInitiator GSSRole = iota + 1
	GSSAcceptor
)

// GSSStepRequest is one token step; ContextID is empty on the first step.
type GSSStepRequest struct {
	Profile   string
	ContextID string
	Role      GSSRole
	Target    string
	Token     []byte
}

// GSSStepResult is the step's output token and context state.
type GSSStepResult struct {
	ContextID     string
	Token         []byte
	Complete      bool
	PeerPrincipal string
}

// UserAuthRequest carries one PPP authentication attempt.
type UserAuthRequest struct {
	Method        AuthMethod
	User          string
	Password      Secret // PAP
	ChapID        uint8
	Challenge     []byte
	Response      []byte
	PeerChallenge []byte
	Peer          netip.AddrPort
}

// UserAuthResultCode is the verdict on a user.
type UserAuthResultCode int

const (
	UserAccept UserAuthResultCode = iota + 1
	UserReject
	// UserUnknown lets the host ask the next authenticator.
	UserUnknown
)

// UserAuthResult is the verdict and the per-user settings that go with it.
type UserAuthResult struct {
	Code                  UserAuthResultCode
	Message               string
	AuthenticatorResponse string
	MPPESendKey           Secret
	MPPERecvKey           Secret
	FramedAddress         netip.Addr
	SessionTimeoutSeconds uint32
	IdleTimeoutSeconds    uint32
	Class                 []byte
}

// Authenticator proves and checks identities. Embed UnimplementedAuthenticator
// to serve only some methods.
type Authenticator interface {
	Info(ctx context.Context) (AuthenticatorInfo, error)
	Configure(ctx context.Context, cfg AuthConfig) (warnings []string, err error)
	LookupPSK(ctx context.Context, req PSKRequest) (PSKResult, error)
	VerifyCertificate(ctx context.Context, req VerifyCertRequest) (VerifyCertResult, error)
	Sign(ctx context.Context, profile string, data []byte, algorithm string) ([]byte, error)
	LocalCertificate(ctx context.Context, profile string, caNames [][]byte) (LocalCert, error)
	GSSStep(ctx context.Context, req GSSStepRequest) (GSSStepResult, error)
	GSSWrap(ctx context.Context, contextID string, data []byte) ([]byte, error)
	GSSUnwrap(ctx context.Context, contextID string, token []byte) ([]byte, error)
	GSSRelease(ctx context.Context, contextID string) error
	AuthenticateUser(ctx context.Context, req UserAuthRequest) (UserAuthResult, error)
	Account(ctx context.Context, req AccountRequest) error
	RelayEAP(ctx context.Context, req EAPRelayRequest) (EAPRelayResult, error)
}

// EAPRelayRequest is one EAP round of an IKEv2 road warrior for the user
// database to answer (RFC 3579): the client's EAP identity and response,
// and the last answer's State and server.
type EAPRelayRequest struct {
	User       string
	EAP, State []byte
	Server     string
	Peer       netip.AddrPort
}

// EAPRelayResult is the answer: a challenge to pass on (with the State
// and server for the next round), or the verdict, whose MPPE keys make
// the MSK, with the EAP-Success or EAP-Failure to pass on.
type EAPRelayResult struct {
	Challenge  bool
	EAP, State []byte
	Server     string
	Verdict    UserAuthResult
}

// UnimplementedAuthenticator answers ErrUnsupported to every call but Info
// and Configure, which the embedding type must provide.
type UnimplementedAuthenticator struct{}

func (UnimplementedAuthenticator) LookupPSK(context.Context, PSKRequest) (PSKResult, error) {
	return PSKResult{}, ErrUnsupported
}
func (UnimplementedAuthenticator) VerifyCertificate(context.Context, VerifyCertRequest) (VerifyCertResult, error) {
	return VerifyCertResult{}, ErrUnsupported
}
func (UnimplementedAuthenticator) Sign(context.Context, string, []byte, string) ([]byte, error) {
	return nil, ErrUnsupported
}
func (UnimplementedAuthenticator) LocalCertificate(context.Context, string, [][]byte) (LocalCert, error) {
	return LocalCert{}, ErrUnsupported
}
func (UnimplementedAuthenticator) GSSStep(context.Context, GSSStepRequest) (GSSStepResult, error) {
	return GSSStepResult{}, ErrUnsupported
}
func (UnimplementedAuthenticator) GSSWrap(context.Context, string, []byte) ([]byte, error) {
	return nil, ErrUnsupported
}
func (UnimplementedAuthenticator) GSSUnwrap(context.Context, string, []byte) ([]byte, error) {
	return nil, ErrUnsupported
}
func (UnimplementedAuthenticator) GSSRelease(context.Context, string) error { return ErrUnsupported }
func (UnimplementedAuthenticator) AuthenticateUser(context.Context, UserAuthRequest) (UserAuthResult, error) {
	return UserAuthResult{}, ErrUnsupported
}
func (UnimplementedAuthenticator) Account(context.Context, AccountRequest) error {
	return ErrUnsupported
}
func (UnimplementedAuthenticator) RelayEAP(context.Context, EAPRelayRequest) (EAPRelayResult, error) {
	return EAPRelayResult{}, ErrUnsupported
}

// AuthenticatorPlugin is the go-plugin glue for Authenticator.
type AuthenticatorPlugin struct {
	grpcPluginBase
	Impl Authenticator
}

func (p *AuthenticatorPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return nil
	}
	pb.RegisterAuthenticatorServer(s, &authServer{impl: p.Impl})
	return nil
}

func (p *AuthenticatorPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &authClient{c: pb.NewAuthenticatorClient(c)}, nil
}

var _ Authenticator = (*authClient)(nil)

// --- conversions (pure; table-tested) ---

func identityToPB(id *Identity) *pb.Identity {
	if id == nil {
		return nil
	}
	return &pb.Identity{Type: uint32(id.Type), Data: id.Data}
}

func identityFromPB(p *pb.Identity) (*Identity, error) {
	if p == nil {
		return nil, nil
	}
	if p.Type > 255 {
		return nil, fmt.Errorf("%w: identity type %d", ErrInvalid, p.Type)
	}
	return &Identity{Type: uint8(p.Type), Data: p.Data}, nil
}

func authConfigToPB(c AuthConfig) *pb.AuthConfig {
	out := &pb.AuthConfig{UsersFile: c.UsersFile}
	for _, e := range c.PSK {
		m := &pb.PSKEntry{Name: e.Name, KeyFile: e.KeyFile, MatchId: e.MatchID, Wildcard: e.Wildcard}
		if e.MatchAddress.IsValid() {
			m.MatchAddress = e.MatchAddress.String()
		}
		out.Psk = append(out.Psk, m)
	}
	for _, x := range c.X509 {
		out.X509 = append(out.X509, &pb.X509Profile{Name: x.Name, CaFiles: x.CAFiles, CrlFiles: x.CRLFiles, CertFile: x.CertFile, KeyFile: x.KeyFile})
	}
	for _, k := range c.Kerberos {
		out.Kerberos = append(out.Kerberos, &pb.KerberosProfile{Name: k.Name, Keytab: k.Keytab, Principal: k.Principal, Ccache: k.Ccache, Krb5Conf: k.Krb5Conf,
			MaxSkewSeconds: uint32(k.MaxSkew / time.Second), ClockOffsetSeconds: int64(k.ClockOffset / time.Second)})
	}
	if r := c.Radius; r != nil {
		out.Radius = &pb.RadiusConfig{TimeoutMs: uint32(r.Timeout / time.Millisecond), Tries: uint32(r.Tries), NasIdentifier: r.NASIdentifier,
			RequireMessageAuthenticator: r.RequireMessageAuthenticator}
		for _, s := range r.Servers {
			out.Radius.Servers = append(out.Radius.Servers, &pb.RadiusServer{Address: s.Address, SecretFile: s.SecretFile, AccountingAddress: s.AccountingAddress})
		}
	}
	return out
}

func authConfigFromPB(p *pb.AuthConfig) (AuthConfig, error) {
	out := AuthConfig{UsersFile: p.GetUsersFile()}
	for _, e := range p.GetPsk() {
		m := PSKEntry{Name: e.Name, KeyFile: e.KeyFile, MatchID: e.MatchId, Wildcard: e.Wildcard}
		if e.MatchAddress != "" {
			pfx, err := netip.ParsePrefix(e.MatchAddress)
			if err != nil {
				return AuthConfig{}, fmt.Errorf("%w: psk entry %q: match address %q", ErrInvalid, e.Name, e.MatchAddress)
			}
			m.MatchAddress = pfx
		}
		out.PSK = append(out.PSK, m)
	}
	for _, x := range p.GetX509() {
		out.X509 = append(out.X509, X509Profile{Name: x.Name, CAFiles: x.CaFiles, CRLFiles: x.CrlFiles, CertFile: x.CertFile, KeyFile: x.KeyFile})
	}
	for _, k := range p.GetKerberos() {
		out.Kerberos = append(out.Kerberos, KerberosProfile{Name: k.Name, Keytab: k.Keytab, Principal: k.Principal, Ccache: k.Ccache, Krb5Conf: k.Krb5Conf,
			MaxSkew: time.Duration(k.MaxSkewSeconds) * time.Second, ClockOffset: time.Duration(k.ClockOffsetSeconds) * time.Second})
	}
	if r := p.GetRadius(); r != nil {
		out.Radius = &RadiusConfig{Timeout: time.Duration(r.TimeoutMs) * time.Millisecond, Tries: int(r.Tries), NASIdentifier: r.NasIdentifier,
			RequireMessageAuthenticator: r.RequireMessageAuthenticator}
		for _, s := range r.Servers {
			out.Radius.Servers = append(out.Radius.Servers, RadiusServer{Address: s.Address, SecretFile: s.SecretFile, AccountingAddress: s.AccountingAddress})
		}
	}
	return out, nil
}

func userAuthRequestToPB(r UserAuthRequest) *pb.UserAuthRequest {
	return &pb.UserAuthRequest{
		Method: pb.AuthMethod(r.Method), User: r.User, Password: r.Password,
		ChapId: uint32(r.ChapID), Challenge: r.Challenge, Response: r.Response,
		PeerChallenge: r.PeerChallenge, Peer: endpointToPB(r.Peer),
	}
}

func userAuthRequestFromPB(p *pb.UserAuthRequest) (UserAuthRequest, error) {
	peer, err := endpointFromPB(p.GetPeer())
	if err != nil {
		return UserAuthRequest{}, err
	}
	if p.GetChapId() > 255 {
		return UserAuthRequest{}, fmt.Errorf("%w: chap id %d", ErrInvalid, p.GetChapId())
	}
	return UserAuthRequest{
		Method: AuthMethod(p.GetMethod()), User: p.GetUser(), Password: p.GetPassword(),
		ChapID: uint8(p.GetChapId()), Challenge: p.GetChallenge(), Response: p.GetResponse(),
		PeerChallenge: p.GetPeerChallenge(), Peer: peer,
	}, nil
}

func userAuthResultToPB(r UserAuthResult) *pb.UserAuthResponse {
	return &pb.UserAuthResponse{
		Result: pb.UserAuthResult(r.Code), Message: r.Message,
		AuthenticatorResponse: r.AuthenticatorResponse,
		MppeSendKey:           r.MPPESendKey, MppeRecvKey: r.MPPERecvKey,
		FramedAddress:         addrText(r.FramedAddress),
		SessionTimeoutSeconds: r.SessionTimeoutSeconds, IdleTimeoutSeconds: r.IdleTimeoutSeconds,
		Class: r.Class,
	}
}

func userAuthResultFromPB(p *pb.UserAuthResponse) (UserAuthResult, error) {
	fa, err := addrFromText(p.GetFramedAddress())
	if err != nil {
		return UserAuthResult{}, err
	}
	return UserAuthResult{
		Code: UserAuthResultCode(p.GetResult()), Message: p.GetMessage(),
		AuthenticatorResponse: p.GetAuthenticatorResponse(),
		MPPESendKey:           p.GetMppeSendKey(), MPPERecvKey: p.GetMppeRecvKey(),
		FramedAddress:         fa,
		SessionTimeoutSeconds: p.GetSessionTimeoutSeconds(), IdleTimeoutSeconds: p.GetIdleTimeoutSeconds(),
		Class: p.GetClass(),
	}, nil
}

// --- client shim (core side) ---

type authClient struct{ c pb.AuthenticatorClient }

func (a *authClient) Info(ctx context.Context) (AuthenticatorInfo, error) {
	r, err := a.c.Info(ctx, &pb.InfoRequest{})
	if err != nil {
		return AuthenticatorInfo{}, fromStatus("authenticator info", err)
	}
	out := AuthenticatorInfo{Info: infoFromPB(r.GetInfo())}
	for _, m := range r.GetMethods() {
		out.Methods = append(out.Methods, AuthMethod(m))
	}
	return out, nil
}

func (a *authClient) Configure(ctx context.Context, cfg AuthConfig) ([]string, error) {
	r, err := a.c.Configure(ctx, authConfigToPB(cfg))
	if err != nil {
		return nil, fromStatus("authenticator configure", err)
	}
	return r.GetWarnings(), nil
}

func (a *authClient) LookupPSK(ctx context.Context, req PSKRequest) (PSKResult, error) {
	r, err := a.c.LookupPSK(ctx, &pb.PSKRequest{Local: endpointToPB(req.Local), Peer: endpointToPB(req.Peer), PeerId: identityToPB(req.PeerID)})
	if err != nil {
		return PSKResult{}, fromStatus("psk lookup", err)
	}
	return PSKResult{Found: r.GetFound(), Key: r.GetKey(), Entry: r.GetEntry()}, nil
}

func (a *authClient) VerifyCertificate(ctx context.Context, req VerifyCertRequest) (VerifyCertResult, error) {
	r, err := a.c.VerifyCertificate(ctx, &pb.VerifyCertificateRequest{Profile: req.Profile, Chain: req.Chain, PeerId: identityToPB(req.PeerID)})
	if err != nil {
		return VerifyCertResult{}, fromStatus("verify certificate", err)
	}
	return VerifyCertResult{OK: r.GetOk(), Subject: r.GetSubject(), Reason: r.GetReason(), PublicKey: r.GetPublicKey()}, nil
}

func (a *authClient) Sign(ctx context.Context, profile string, data []byte, alg string) ([]byte, error) {
	r, err := a.c.Sign(ctx, &pb.SignRequest{Profile: profile, Data: data, Algorithm: alg})
	if err != nil {
		return nil, fromStatus("sign", err)
	}
	return r.GetSignature(), nil
}

func (a *authClient) LocalCertificate(ctx context.Context, profile string, caNames [][]byte) (LocalCert, error) {
	r, err := a.c.LocalCertificate(ctx, &pb.LocalCertificateRequest{Profile: profile, CaNames: caNames})
	if err != nil {
		return LocalCert{}, fromStatus("local certificate", err)
	}
	id, err := identityFromPB(r.GetId())
	if err != nil {
		return LocalCert{}, fmt.Errorf("local certificate: %w", err)
	}
	return LocalCert{Chain: r.GetChain(), ID: id, CANames: r.GetCaNames(), CAKeyIDs: r.GetCaKeyIds()}, nil
}

func (a *authClient) GSSStep(ctx context.Context, req GSSStepRequest) (GSSStepResult, error) {
	r, err := a.c.GSSStep(ctx, &pb.GSSStepRequest{Profile: req.Profile, ContextId: req.ContextID, Role: pb.GSSRole(req.Role), Target: req.Target, Token: req.Token})
	if err != nil {
		return GSSStepResult{}, fromStatus("gss step", err)
	}
	return GSSStepResult{ContextID: r.GetContextId(), Token: r.GetToken(), Complete: r.GetComplete(), PeerPrincipal: r.GetPeerPrincipal()}, nil
}

func (a *authClient) GSSWrap(ctx context.Context, id string, data []byte) ([]byte, error) {
	r, err := a.c.GSSWrap(ctx, &pb.GSSWrapRequest{ContextId: id, Data: data})
	if err != nil {
		return nil, fromStatus("gss wrap", err)
	}
	return r.GetToken(), nil
}

func (a *authClient) GSSUnwrap(ctx context.Context, id string, token []byte) ([]byte, error) {
	r, err := a.c.GSSUnwrap(ctx, &pb.GSSUnwrapRequest{ContextId: id, Token: token})
	if err != nil {
		return nil, fromStatus("gss unwrap", err)
	}
	return r.GetData(), nil
}

func (a *authClient) GSSRelease(ctx context.Context, id string) error {
	_, err := a.c.GSSRelease(ctx, &pb.GSSReleaseRequest{ContextId: id})
	return fromStatus("gss release", err)
}

func (a *authClient) Account(ctx context.Context, req AccountRequest) error {
	r := &pb.AccountRequest{Status: pb.AcctStatus(req.Status), SessionId: req.SessionID, User: req.User,
		BytesIn: req.BytesIn, BytesOut: req.BytesOut, PacketsIn: req.PacketsIn, PacketsOut: req.PacketsOut,
		SessionTimeSeconds: uint32(req.SessionTime / time.Second), TerminateCause: req.TerminateCause, Class: req.Class}
	if req.FramedAddress.IsValid() {
		r.FramedAddress = req.FramedAddress.String()
	}
	if req.Peer.IsValid() {
		r.Peer = endpointToPB(req.Peer)
	}
	_, err := a.c.Account(ctx, r)
	return fromStatus("account", err)
}

func (a *authClient) RelayEAP(ctx context.Context, req EAPRelayRequest) (EAPRelayResult, error) {
	r := &pb.EAPRelayRequest{User: req.User, Eap: req.EAP, State: req.State, Server: req.Server}
	if req.Peer.IsValid() {
		r.Peer = endpointToPB(req.Peer)
	}
	p, err := a.c.RelayEAP(ctx, r)
	if err != nil {
		return EAPRelayResult{}, fromStatus("relay EAP", err)
	}
	v, err := userAuthResultFromPB(p.GetVerdict())
	if err != nil {
		return EAPRelayResult{}, err
	}
	return EAPRelayResult{Challenge: p.GetChallenge(), EAP: p.GetEap(), State: p.GetState(), Server: p.GetServer(), Verdict: v}, nil
}

func (a *authClient) AuthenticateUser(ctx context.Context, req UserAuthRequest) (UserAuthResult, error) {
	r, err := a.c.AuthenticateUser(ctx, userAuthRequestToPB(req))
	if err != nil {
		return UserAuthResult{}, fromStatus("authenticate user", err)
	}
	return userAuthResultFromPB(r)
}

// --- server shim (plugin side) ---

type authServer struct {
	pb.UnimplementedAuthenticatorServer
	impl Authenticator
}

func (s *authServer) Info(ctx context.Context, _ *pb.InfoRequest) (*pb.AuthenticatorInfo, error) {
	i, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.AuthenticatorInfo{Info: infoToPB(i.Info)}
	for _, m := range i.Methods {
		out.Methods = append(out.Methods, pb.AuthMethod(m))
	}
	return out, nil
}

func (s *authServer) Configure(ctx context.Context, req *pb.AuthConfig) (*pb.ConfigureResponse, error) {
	cfg, err := authConfigFromPB(req)
	if err != nil {
		return nil, toStatus(err)
	}
	w, err := s.impl.Configure(ctx, cfg)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConfigureResponse{Warnings: w}, nil
}

func (s *authServer) LookupPSK(ctx context.Context, req *pb.PSKRequest) (*pb.PSKResponse, error) {
	local, err := endpointFromPB(req.GetLocal())
	if err != nil {
		return nil, toStatus(err)
	}
	peer, err := endpointFromPB(req.GetPeer())
	if err != nil {
		return nil, toStatus(err)
	}
	id, err := identityFromPB(req.GetPeerId())
	if err != nil {
		return nil, toStatus(err)
	}
	r, err := s.impl.LookupPSK(ctx, PSKRequest{Local: local, Peer: peer, PeerID: id})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PSKResponse{Found: r.Found, Key: r.Key, Entry: r.Entry}, nil
}

func (s *authServer) VerifyCertificate(ctx context.Context, req *pb.VerifyCertificateRequest) (*pb.VerifyCertificateResponse, error) {
	id, err := identityFromPB(req.GetPeerId())
	if err != nil {
		return nil, toStatus(err)
	}
	r, err := s.impl.VerifyCertificate(ctx, VerifyCertRequest{Profile: req.GetProfile(), Chain: req.GetChain(), PeerID: id})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.VerifyCertificateResponse{Ok: r.OK, Subject: r.Subject, Reason: r.Reason, PublicKey: r.PublicKey}, nil
}

func (s *authServer) Sign(ctx context.Context, req *pb.SignRequest) (*pb.SignResponse, error) {
	sig, err := s.impl.Sign(ctx, req.GetProfile(), req.GetData(), req.GetAlgorithm())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.SignResponse{Signature: sig}, nil
}

func (s *authServer) LocalCertificate(ctx context.Context, req *pb.LocalCertificateRequest) (*pb.LocalCertificateResponse, error) {
	c, err := s.impl.LocalCertificate(ctx, req.GetProfile(), req.GetCaNames())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.LocalCertificateResponse{Chain: c.Chain, Id: identityToPB(c.ID), CaNames: c.CANames, CaKeyIds: c.CAKeyIDs}, nil
}

func (s *authServer) GSSStep(ctx context.Context, req *pb.GSSStepRequest) (*pb.GSSStepResponse, error) {
	r, err := s.impl.GSSStep(ctx, GSSStepRequest{Profile: req.GetProfile(), ContextID: req.GetContextId(), Role: GSSRole(req.GetRole()), Target: req.GetTarget(), Token: req.GetToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GSSStepResponse{ContextId: r.ContextID, Token: r.Token, Complete: r.Complete, PeerPrincipal: r.PeerPrincipal}, nil
}

func (s *authServer) GSSWrap(ctx context.Context, req *pb.GSSWrapRequest) (*pb.GSSWrapResponse, error) {
	t, err := s.impl.GSSWrap(ctx, req.GetContextId(), req.GetData())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GSSWrapResponse{Token: t}, nil
}

func (s *authServer) GSSUnwrap(ctx context.Context, req *pb.GSSUnwrapRequest) (*pb.GSSUnwrapResponse, error) {
	d, err := s.impl.GSSUnwrap(ctx, req.GetContextId(), req.GetToken())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GSSUnwrapResponse{Data: d}, nil
}

func (s *authServer) GSSRelease(ctx context.Context, req *pb.GSSReleaseRequest) (*pb.GSSReleaseResponse, error) {
	if err := s.impl.GSSRelease(ctx, req.GetContextId()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.GSSReleaseResponse{}, nil
}

func (s *authServer) Account(ctx context.Context, req *pb.AccountRequest) (*pb.AccountResponse, error) {
	r := AccountRequest{Status: AcctStatus(req.GetStatus()), SessionID: req.GetSessionId(), User: req.GetUser(),
		BytesIn: req.GetBytesIn(), BytesOut: req.GetBytesOut(), PacketsIn: req.GetPacketsIn(), PacketsOut: req.GetPacketsOut(),
		SessionTime: time.Duration(req.GetSessionTimeSeconds()) * time.Second, TerminateCause: req.GetTerminateCause(), Class: req.GetClass()}
	if r.Status < AcctStart || r.Status > AcctInterim {
		return nil, toStatus(fmt.Errorf("%w: accounting status %d", ErrInvalid, r.Status))
	}
	if a := req.GetFramedAddress(); a != "" {
		addr, err := netip.ParseAddr(a)
		if err != nil {
			return nil, toStatus(fmt.Errorf("%w: framed address %q", ErrInvalid, a))
		}
		r.FramedAddress = addr
	}
	if req.GetPeer() != nil {
		peer, err := endpointFromPB(req.GetPeer())
		if err != nil {
			return nil, toStatus(err)
		}
		r.Peer = peer
	}
	if err := s.impl.Account(ctx, r); err != nil {
		return nil, toStatus(err)
	}
	return &pb.AccountResponse{}, nil
}

func (s *authServer) RelayEAP(ctx context.Context, req *pb.EAPRelayRequest) (*pb.EAPRelayResponse, error) {
	r := EAPRelayRequest{User: req.GetUser(), EAP: req.GetEap(), State: req.GetState(), Server: req.GetServer()}
	if req.GetPeer() != nil {
		var err error
		if r.Peer, err = endpointFromPB(req.GetPeer()); err != nil {
			return nil, toStatus(err)
		}
	}
	res, err := s.impl.RelayEAP(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.EAPRelayResponse{Challenge: res.Challenge, Eap: res.EAP, State: res.State, Server: res.Server,
		Verdict: userAuthResultToPB(res.Verdict)}, nil
}

func (s *authServer) AuthenticateUser(ctx context.Context, req *pb.UserAuthRequest) (*pb.UserAuthResponse, error) {
	return serveUserAuth(ctx, req, s.impl.AuthenticateUser)
}

// serveUserAuth is the server side of AuthenticateUser, shared by the
// Authenticator and Host services.
func serveUserAuth(ctx context.Context, req *pb.UserAuthRequest, impl func(context.Context, UserAuthRequest) (UserAuthResult, error)) (*pb.UserAuthResponse, error) {
	r, err := userAuthRequestFromPB(req)
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := impl(ctx, r)
	if err != nil {
		return nil, toStatus(err)
	}
	return userAuthResultToPB(res), nil
}
