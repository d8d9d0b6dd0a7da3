// Package radius authenticates PPP users against RADIUS servers (RFC
// 2865): PAP, CHAP-MD5 and MS-CHAPv2 (RFC 2548's Microsoft attributes),
// with Message-Authenticator on every request (RFC 3579 section 3.2),
// several servers tried in order, and the per-user settings an
// Access-Accept carries. Packets are encoded with layeh.com/radius; the
// exchange (retransmission, failover, the checks on the answer) is here.
package radius

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/vendors/microsoft"

	"github.com/gatehouse/gatehouse/auth/secretfile"
)

// Server is one RADIUS server: host:port for authentication, host:port
// for accounting (default: the same host at 1813), and its shared secret.
type Server struct {
	Addr     string
	AcctAddr string
	Secret   []byte
}

// Config is a client's configuration.
type Config struct {
	Servers []Server
	// Timeout is how long one server gets, across its tries, before the
	// next is asked (default 3 s); Tries how many times a request is sent
	// to it (default 2).
	Timeout time.Duration
	Tries   int
	// NASIdentifier names us to the servers (RFC 2865 section 5.32).
	NASIdentifier string
	// DeadTime: a server that did not answer is asked last for this long
	// (default 30 s), so one dead server does not slow every login.
	DeadTime time.Duration
	// RequireMessageAuthenticator refuses answers without one. Ours is
	// always sent; servers patched for BlastRADIUS (CVE-2024-3596) answer
	// with one, older ones (FreeRADIUS before 3.2.5) do not. Without it, a
	// man in the middle can forge an Access-Accept.
	RequireMessageAuthenticator bool
}

// Method is the PPP authentication protocol of a request.
type Method int

const (
	PAP Method = iota + 1
	CHAP
	MSCHAPv2
)

func (m Method) String() string {
	switch m {
	case PAP:
		return "pap"
	case CHAP:
		return "chap"
	case MSCHAPv2:
		return "mschapv2"
	}
	return fmt.Sprintf("method(%d)", int(m))
}

// Request is one user's PPP authentication.
type Request struct {
	Method   Method
	User     string
	Password []byte // PAP
	// CHAP: identifier, our challenge, the 16-byte response. MS-CHAPv2:
	// identifier, our 16-byte challenge, the peer challenge and the
	// 24-byte NT response.
	ID            byte
	Challenge     []byte
	Response      []byte
	PeerChallenge []byte
	// CallingStation is the client's address (Calling-Station-Id).
	CallingStation string
}

// Result is the server's verdict and, on Accept, the user's settings.
type Result struct {
	Accept bool
	// Message is the Reply-Message or MS-CHAP-Error text, for logs.
	Message string
	// AuthenticatorResponse is MS-CHAPv2's "S=..." (RFC 2759 section 8.7).
	AuthenticatorResponse string
	MPPESendKey           []byte
	MPPERecvKey           []byte
	FramedAddress         netip.Addr
	SessionTimeout        time.Duration
	IdleTimeout           time.Duration
	Class                 [][]byte
	// Server is the server that answered; Unanswered, the servers asked
	// before it that did not, each with why.
	Server     string
	Unanswered []string
}

// Sentinel errors.
var (
	ErrNoServer    = errors.New("no RADIUS server answered")
	ErrBadResponse = errors.New("RADIUS answer fails its checks (wrong shared secret?)")
	ErrConfig      = errors.New("RADIUS configuration")
	// ErrNoMessageAuthenticator: the server answered without one while
	// one is required; its text says what to change on either side.
	ErrNoMessageAuthenticator = errors.New("the RADIUS server answered without a Message-Authenticator, which is required against forged answers " +
		"(BlastRADIUS, CVE-2024-3596): have the server send one (FreeRADIUS 3.2.5 and later and NPS since July 2024 do; on an older FreeRADIUS add " +
		"update reply { &Message-Authenticator := 0x00 } to post-auth) or, until then, set remote_access.ppp.radius.require_message_authenticator: false")
)

// Client sends Access-Requests. It is safe for concurrent use.
type Client struct {
	cfg Config
	now func() time.Time

	mu   sync.Mutex
	dead map[string]time.Time // server address -> asked last until
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("%w: no servers", ErrConfig)
	}
	cfg.Servers = append([]Server(nil), cfg.Servers...)
	for i, s := range cfg.Servers {
		if len(s.Secret) == 0 {
			return nil, fmt.Errorf("%w: server %s has an empty shared secret", ErrConfig, s.Addr)
		}
		host, _, err := net.SplitHostPort(s.Addr)
		if err != nil {
			return nil, fmt.Errorf("%w: server %q: want host:port: %v", ErrConfig, s.Addr, err)
		}
		if s.AcctAddr == "" {
			cfg.Servers[i].AcctAddr = net.JoinHostPort(host, "1813")
		} else if _, _, err := net.SplitHostPort(s.AcctAddr); err != nil {
			return nil, fmt.Errorf("%w: accounting server %q: want host:port: %v", ErrConfig, s.AcctAddr, err)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 2
	}
	if cfg.DeadTime <= 0 {
		cfg.DeadTime = 30 * time.Second
	}
	return &Client{cfg: cfg, now: time.Now, dead: map[string]time.Time{}}, nil
}

// Authenticate asks the servers, in order (those that lately did not
// answer last), until one answers. A reject is a Result, not an error;
// the error is for no answer at all, or a request that cannot be built.
func (c *Client) Authenticate(ctx context.Context, r Request) (Result, error) {
	res, server, unanswered, err := tryServers(ctx, c, "", func(s Server) (Result, error) { return c.ask(ctx, s, r) })
	res.Server, res.Unanswered = server, unanswered
	return res, err
}

// tryServers asks the servers in order (those that lately did not answer
// last), or only the one named, until one answers; it returns the answer,
// who gave it, and why the ones before did not.
func tryServers[T any](ctx context.Context, c *Client, only string, ask func(Server) (T, error)) (T, string, []string, error) {
	var errs []error
	var unanswered []string
	var zero T
	for _, s := range c.order() {
		if only != "" && s.Addr != only {
			continue
		}
		res, err := ask(s)
		if err == nil {
			c.mark(s.Addr, true)
			for _, e := range errs {
				unanswered = append(unanswered, e.Error())
			}
			return res, s.Addr, unanswered, nil
		}
		if ctx.Err() != nil {
			return zero, "", nil, fmt.Errorf("%w: %v", ErrNoServer, ctx.Err())
		}
		c.mark(s.Addr, false)
		errs = append(errs, fmt.Errorf("%s: %w", s.Addr, err))
	}
	if len(errs) == 0 {
		return zero, "", nil, fmt.Errorf("%w: %s is not one of the configured servers", ErrNoServer, only)
	}
	return zero, "", nil, fmt.Errorf("%w: %w", ErrNoServer, errors.Join(errs...))
}

func (c *Client) order() []Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var alive, dead []Server
	for _, s := range c.cfg.Servers {
		if until, ok := c.dead[s.Addr]; ok && now.Before(until) {
			dead = append(dead, s)
		} else {
			alive = append(alive, s)
		}
	}
	return append(alive, dead...)
}

func (c *Client) mark(addr string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		delete(c.dead, addr)
	} else {
		c.dead[addr] = c.now().Add(c.cfg.DeadTime)
	}
}

// request builds the Access-Request for one server (the secret differs).
func (c *Client) request(s Server, r Request) (*radius.Packet, error) {
	p, errs := c.accessRequest(s, r.User, r.CallingStation)
	errs = append(errs, rfc2865.FramedProtocol_Set(p, rfc2865.FramedProtocol_Value_PPP))
	switch r.Method {
	case PAP:
		errs = append(errs, rfc2865.UserPassword_Set(p, r.Password))
	case CHAP:
		if len(r.Response) != 16 {
			return nil, fmt.Errorf("CHAP response of %d bytes, want 16", len(r.Response))
		}
		errs = append(errs, rfc2865.CHAPPassword_Set(p, append([]byte{r.ID}, r.Response...)),
			rfc2865.CHAPChallenge_Set(p, r.Challenge))
	case MSCHAPv2:
		if len(r.Challenge) != 16 || len(r.PeerChallenge) != 16 || len(r.Response) != 24 {
			return nil, fmt.Errorf("MS-CHAPv2 challenge, peer challenge and response of %d, %d and %d bytes, want 16, 16 and 24",
				len(r.Challenge), len(r.PeerChallenge), len(r.Response))
		}
		// RFC 2548 section 2.3.2: Ident, Flags, Peer-Challenge, 8
		// reserved bytes, NT-Response.
		v := make([]byte, 0, 50)
		v = append(append(append(append(v, r.ID, 0), r.PeerChallenge...), make([]byte, 8)...), r.Response...)
		errs = append(errs, microsoft.MSCHAPChallenge_Set(p, r.Challenge), microsoft.MSCHAP2Response_Set(p, v))
	default:
		return nil, fmt.Errorf("method %v is not a PPP method", r.Method)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// accessRequest is an Access-Request to s with what every one carries:
// the user, a framed service on a virtual port, us and the client.
func (c *Client) accessRequest(s Server, user, calling string) (*radius.Packet, []error) {
	p := radius.New(radius.CodeAccessRequest, s.Secret)
	errs := []error{
		rfc2865.UserName_SetString(p, user),
		rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_FramedUser),
		rfc2865.NASPortType_Set(p, rfc2865.NASPortType_Value_Virtual),
	}
	if c.cfg.NASIdentifier != "" {
		errs = append(errs, rfc2865.NASIdentifier_SetString(p, c.cfg.NASIdentifier))
	}
	if calling != "" {
		errs = append(errs, rfc2865.CallingStationID_SetString(p, calling))
	}
	return p, errs
}

// ask sends the Access-Request to one server and reads its answer.
func (c *Client) ask(ctx context.Context, s Server, r Request) (Result, error) {
	p, err := c.request(s, r)
	if err != nil {
		return Result{}, err
	}
	req, err := encodeWithAuthenticator(p)
	if err != nil {
		return Result{}, err
	}
	resp, err := c.exchange(ctx, s.Addr, req, s.Secret)
	if err != nil {
		return Result{}, err
	}
	return c.read(resp, req, p, s.Secret)
}

// exchange sends req to addr until an authentic answer with its
// identifier comes back or the server's time is up.
func (c *Client) exchange(ctx context.Context, addr string, req, secret []byte) ([]byte, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	per := time.Until(deadline) / time.Duration(c.cfg.Tries)
	buf := make([]byte, 4096)
	var last error = errors.New("no answer")
	forged := 0
	for try := 0; try < c.cfg.Tries && time.Now().Before(deadline); try++ {
		if _, err := conn.Write(req); err != nil { // the same bytes: a retransmission (RFC 2865 section 2.5)
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(per))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					last = fmt.Errorf("no answer within %s", per.Round(time.Millisecond))
				} else {
					last = err // e.g. ICMP port unreachable: nothing listens
				}
				break
			}
			resp := buf[:n]
			if len(resp) < 20 || resp[1] != req[1] {
				continue // not ours: another identifier
			}
			if !radius.IsAuthenticResponse(resp, req, secret) {
				// Anyone can send a packet from the server's address: one
				// that fails the check is dropped, and the server's own
				// answer is still awaited.
				forged++
				continue
			}
			return bytes.Clone(resp), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if forged > 0 {
		return nil, fmt.Errorf("%w: %d answer(s) failed the Response Authenticator check, and no valid one came (%v)", ErrBadResponse, forged, last)
	}
	return nil, last
}

// encodeWithAuthenticator encodes a request with its
// Message-Authenticator, HMAC-MD5 under the shared secret over the packet
// with the attribute zeroed. An Access-Request hashes its own random
// Request Authenticator (RFC 3579 section 3.2); Accounting, Disconnect
// and CoA requests a zero one, their authenticator being computed over
// the whole afterwards (RFC 5080 section 2.2.4, RFC 5176 section 3.3).
// Sent on every request: it is what stops forged answers (BlastRADIUS).
func encodeWithAuthenticator(p *radius.Packet) ([]byte, error) {
	if err := rfc2869.MessageAuthenticator_Set(p, make([]byte, 16)); err != nil {
		return nil, err
	}
	if p.Code != radius.CodeAccessRequest {
		p.Authenticator = [16]byte{}
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	if err := rfc2869.MessageAuthenticator_Set(p, hmacMD5(p.Secret, b)); err != nil {
		return nil, err
	}
	return p.Encode()
}

// checkMessageAuthenticator verifies a packet's Message-Authenticator:
// the HMAC over the packet with the attribute zeroed and auth in the
// authenticator field: the request's for an answer (RFC 3579 section
// 3.2), zeros for an Accounting, Disconnect or CoA request (RFC 5176
// section 3.3). A packet without one passes unless required.
func checkMessageAuthenticator(b, auth, secret []byte, required bool) error {
	c := bytes.Clone(b)
	copy(c[4:20], auth)
	found := false
	for i := 20; i+2 <= len(c); {
		l := int(c[i+1])
		if l < 2 || i+l > len(c) {
			return fmt.Errorf("%w: attribute overruns the packet", ErrBadResponse)
		}
		if c[i] == 80 && l == 18 {
			found = true
			got := bytes.Clone(c[i+2 : i+18])
			clear(c[i+2 : i+18])
			if !hmac.Equal(hmacMD5(secret, c), got) {
				return fmt.Errorf("%w: Message-Authenticator", ErrBadResponse)
			}
		}
		i += l
	}
	if !found && required {
		return ErrNoMessageAuthenticator
	}
	return nil
}

// read takes what an answer says; exchange checked its Response
// Authenticator.
func (c *Client) read(resp, req []byte, p *radius.Packet, secret []byte) (Result, error) {
	if err := checkMessageAuthenticator(resp, req[4:20], secret, c.cfg.RequireMessageAuthenticator); err != nil {
		return Result{}, err
	}
	a, err := radius.Parse(resp, secret)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	res := Result{Message: strings.Join(replyMessages(a), " ")}
	switch a.Code {
	case radius.CodeAccessReject:
		if e := microsoft.MSCHAPError_GetString(a); e != "" && len(e) > 1 {
			res.Message = strings.TrimSpace(res.Message + " " + e[1:]) // after the Ident byte
		}
		return res, nil
	case radius.CodeAccessChallenge:
		res.Message = strings.TrimSpace("the server sent an Access-Challenge, which PPP cannot relay " + res.Message)
		return res, nil
	case radius.CodeAccessAccept:
	default:
		return Result{}, fmt.Errorf("%w: code %v to an Access-Request", ErrBadResponse, a.Code)
	}
	res.Accept = true
	if s := microsoft.MSCHAP2Success_Get(a); len(s) > 1 {
		res.AuthenticatorResponse = string(s[1:]) // after the Ident byte: "S=..."
	}
	acceptSettings(a, p, &res)
	return res, nil
}

// acceptSettings reads what an Access-Accept grants the user: the MPPE
// keys, an address, timeouts and Class.
func acceptSettings(a, p *radius.Packet, res *Result) {
	if k, err := microsoft.MSMPPESendKey_Lookup(a, p); err == nil {
		res.MPPESendKey = k
	}
	if k, err := microsoft.MSMPPERecvKey_Lookup(a, p); err == nil {
		res.MPPERecvKey = k
	}
	if ip, err := rfc2865.FramedIPAddress_Lookup(a); err == nil {
		if addr, ok := netip.AddrFromSlice(ip.To4()); ok && !addr.IsUnspecified() && addr != netip.AddrFrom4([4]byte{255, 255, 255, 254}) &&
			addr != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			// 255.255.255.254: the NAS picks; 255.255.255.255: the
			// user picks (RFC 2865 section 5.8); both mean the pool.
			res.FramedAddress = addr
		}
	}
	if v, err := rfc2865.SessionTimeout_Lookup(a); err == nil {
		res.SessionTimeout = time.Duration(v) * time.Second
	}
	if v, err := rfc2865.IdleTimeout_Lookup(a); err == nil {
		res.IdleTimeout = time.Duration(v) * time.Second
	}
	res.Class, _ = rfc2865.Class_Gets(a)
}

func replyMessages(p *radius.Packet) []string {
	var out []string
	msgs, _ := rfc2865.ReplyMessage_GetStrings(p)
	for _, m := range msgs {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// ReadSecretFile reads a shared secret: a file group and others cannot
// read, its trailing newline dropped.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := secretfile.Read(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("secret file %s is empty", path)
	}
	return b, nil
}

func hmacMD5(key, data []byte) []byte {
	m := hmac.New(md5.New, key)
	m.Write(data)
	return m.Sum(nil)
}
