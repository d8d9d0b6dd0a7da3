package eap

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// EAP-TLS (RFC 5216): a TLS handshake carried in EAP type 13, with client
// certificates, so Windows and Apple users log in with certificates of
// their own. Each packet's first byte has flags: L (the total TLS length
// follows, in the first fragment), M (more fragments follow), S (start).
// A side acknowledges each fragment it is sent with an empty packet. TLS
// itself is crypto/tls, driven one EAP round at a time; it is held to
// TLS 1.2, whose keys RFC 5216 defines (TLS 1.3's, RFC 9190, differ and
// need a success indication few peers send yet).

const (
	tlsLength uint8 = 0x80
	tlsMore   uint8 = 0x40
	tlsStart  uint8 = 0x20
)

// TLSFragment is how much TLS data one EAP-TLS packet carries, small
// enough for an IKE message under the usual 1280-byte fragment size.
const TLSFragment = 1000

// maxTLSMessage bounds a reassembled TLS flight (certificate chains).
const maxTLSMessage = 64 << 10

// tlsPipe is a net.Conn between crypto/tls and the EAP rounds: Read
// takes what the peer sent, Write keeps what TLS sends, and a step waits
// until TLS wants more input or has finished.
type tlsPipe struct {
	mu       sync.Mutex
	cond     *sync.Cond
	in, out  []byte
	waiting  bool // TLS is blocked in Read with nothing to read
	finished bool
	err      error
	closed   bool
}

func newPipe() *tlsPipe {
	p := &tlsPipe{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *tlsPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.in) == 0 {
		if p.closed {
			return 0, io.EOF
		}
		p.waiting = true
		p.cond.Broadcast()
		p.cond.Wait()
	}
	p.waiting = false
	n := copy(b, p.in)
	p.in = p.in[n:]
	return n, nil
}

func (p *tlsPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, b...)
	return len(b), nil
}

func (p *tlsPipe) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	return nil
}

func (p *tlsPipe) LocalAddr() net.Addr              { return pipeAddr{} }
func (p *tlsPipe) RemoteAddr() net.Addr             { return pipeAddr{} }
func (p *tlsPipe) SetDeadline(time.Time) error      { return nil }
func (p *tlsPipe) SetReadDeadline(time.Time) error  { return nil }
func (p *tlsPipe) SetWriteDeadline(time.Time) error { return nil }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "eap" }
func (pipeAddr) String() string  { return "eap-tls" }

// step gives TLS the peer's bytes and returns what it sends in answer,
// once it waits for more or has finished.
func (p *tlsPipe) step(in []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.in = append(p.in, in...)
	p.waiting = false
	p.cond.Broadcast()
	for !p.finished && !(p.waiting && len(p.in) == 0) {
		p.cond.Wait()
	}
	out := p.out
	p.out = nil
	return out
}

func (p *tlsPipe) finish(err error) {
	p.mu.Lock()
	p.finished, p.err = true, err
	p.cond.Broadcast()
	p.mu.Unlock()
}

// tlsSide is what server and peer share: the handshake in its goroutine,
// and the fragmenting and joining of TLS data across EAP packets.
type tlsSide struct {
	pipe    *tlsPipe
	conn    *tls.Conn
	pending []byte // TLS data still to send, in fragments
	total   int    // the length of the flight pending belongs to
	joined  []byte // a flight being received in fragments
	want    int    // its announced length
}

// start runs the handshake of conn (made on s.pipe) in a goroutine of its
// own, for the life of the exchange.
func (s *tlsSide) start(conn func(net.Conn) *tls.Conn) {
	s.pipe = newPipe()
	s.conn = conn(s.pipe)
	go func(c *tls.Conn, pipe *tlsPipe) { pipe.finish(c.Handshake()) }(s.conn, s.pipe)
}

// send queues a flight of TLS data.
func (s *tlsSide) send(flight []byte) { s.pending, s.total = flight, len(flight) }

// take reads one EAP-TLS packet's data; complete when a flight is whole.
func (s *tlsSide) take(data []byte) (flight []byte, complete bool, err error) {
	if len(data) < 1 {
		return nil, false, fmt.Errorf("%w: EAP-TLS without flags", ErrMalformed)
	}
	flags, rest := data[0], data[1:]
	if flags&tlsLength != 0 {
		if len(rest) < 4 {
			return nil, false, fmt.Errorf("%w: EAP-TLS length cut short", ErrMalformed)
		}
		s.want, rest = int(binary.BigEndian.Uint32(rest)), rest[4:]
		if s.want > maxTLSMessage {
			return nil, false, fmt.Errorf("%w: a TLS flight of %d bytes", ErrMalformed, s.want)
		}
	}
	if len(s.joined)+len(rest) > maxTLSMessage {
		return nil, false, fmt.Errorf("%w: TLS flight past %d bytes", ErrMalformed, maxTLSMessage)
	}
	s.joined = append(s.joined, rest...)
	if flags&tlsMore != 0 {
		return nil, false, nil
	}
	flight, s.joined, s.want = s.joined, nil, 0
	return flight, true, nil
}

// next is the data of our next EAP-TLS packet: a fragment of what is
// pending, flags first, or an empty packet (an acknowledgement).
func (s *tlsSide) next() []byte {
	if len(s.pending) == 0 {
		return []byte{0}
	}
	n := min(len(s.pending), TLSFragment)
	var flags uint8
	if n < len(s.pending) {
		flags |= tlsMore
	}
	b := []byte{flags}
	if len(s.pending) == s.total {
		// The first fragment of a flight says its length (RFC 5216
		// section 3.1; single packets may too, and peers take it).
		b = append([]byte{flags | tlsLength}, binary.BigEndian.AppendUint32(nil, uint32(s.total))...)
	}
	b = append(b, s.pending[:n]...)
	s.pending = s.pending[n:]
	return b
}

// exportMSK is RFC 5216 section 2.3's key: 64 bytes of
// PRF(master secret, "client EAP encryption", randoms).
func exportMSK(c *tls.Conn) ([]byte, error) {
	st := c.ConnectionState()
	km, err := st.ExportKeyingMaterial("client EAP encryption", nil, 128)
	if err != nil {
		// A peer whose TLS 1.2 lacks Extended Master Secret (RFC 7627),
		// as strongSwan's: the program must allow the export with
		// //go:debug tlsunsafeekm=1.
		return nil, fmt.Errorf("EAP-TLS keys: %w", err)
	}
	return km[:64], nil
}

// TLSServer is the authenticator side of EAP-TLS: the peer must present
// a certificate config's ClientCAs issued (config is crypto/tls's, with
// our certificate; ClientAuth is made RequireAndVerifyClientCert).
type TLSServer struct {
	outcome
	cfg      *tls.Config
	rand     io.Reader
	id       uint8
	identity string
	side     tlsSide
	started  bool
	sentLast bool // our last flight is out; the peer's acknowledgement ends it
}

// NewTLSServer makes an EAP-TLS server.
func NewTLSServer(cfg *tls.Config, rand io.Reader) *TLSServer {
	c := cfg.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	c.MaxVersion = tls.VersionTLS12
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return &TLSServer{cfg: c, rand: rand}
}

// Start is the first request: EAP-Request/Identity.
func (s *TLSServer) Start() ([]byte, error) {
	id, b, err := identityRequest(s.rand)
	s.id = id
	return b, err
}

func (s *TLSServer) request(data []byte) []byte {
	s.id++
	return (&Packet{Code: CodeRequest, ID: s.id, Type: TypeTLS, Data: data}).Encode()
}

// Receive takes the peer's response and returns the next packet.
func (s *TLSServer) Receive(b []byte) ([]byte, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if p.Code != CodeResponse || p.ID != s.id || s.done {
		return nil, fmt.Errorf("%w: %v where the response to #%d was awaited", ErrProtocol, p, s.id)
	}
	if !s.started {
		if p.Type != TypeIdentity {
			return nil, fmt.Errorf("%w: type %d in answer to Identity", ErrProtocol, p.Type)
		}
		s.identity, s.started = string(p.Data), true
		s.side.start(func(c net.Conn) *tls.Conn { return tls.Server(c, s.cfg) })
		return s.request([]byte{tlsStart}), nil
	}
	if p.Type == TypeNak {
		return s.fail(fmt.Errorf("%w: the peer does not do EAP-TLS", ErrRejected))
	}
	if p.Type != TypeTLS {
		return nil, fmt.Errorf("%w: type %d in EAP-TLS", ErrProtocol, p.Type)
	}
	if len(s.side.pending) > 0 {
		// An acknowledgement of our last fragment: the next one.
		return s.request(s.side.next()), nil
	}
	if s.sentLast {
		return s.finish()
	}
	flight, complete, err := s.side.take(p.Data)
	if err != nil {
		return s.fail(err)
	}
	if !complete {
		return s.request([]byte{0}), nil // acknowledge the fragment
	}
	s.side.send(s.side.pipe.step(flight))
	if s.side.pipe.finished {
		if s.side.pipe.err != nil {
			return s.fail(fmt.Errorf("%w: TLS: %v", ErrRejected, s.side.pipe.err))
		}
		s.sentLast = true
		if len(s.side.pending) == 0 {
			return s.finish()
		}
	}
	return s.request(s.side.next()), nil
}

// finish ends a successful handshake: the MSK, the user from the peer's
// certificate, EAP-Success.
func (s *TLSServer) finish() ([]byte, error) {
	msk, err := exportMSK(s.side.conn)
	if err != nil {
		return s.fail(err)
	}
	certs := s.side.conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return s.fail(fmt.Errorf("%w: no client certificate", ErrRejected))
	}
	s.msk, s.user, s.done = msk, certUser(certs[0]), true
	s.side.pipe.Close()
	return (&Packet{Code: CodeSuccess, ID: s.id}).Encode(), nil
}

// certUser names the user a client certificate proves: its first email
// or DNS name, else its subject's common name.
func certUser(c *x509.Certificate) string {
	switch {
	case len(c.EmailAddresses) > 0:
		return c.EmailAddresses[0]
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	}
	return c.Subject.String()
}

func (s *TLSServer) fail(err error) ([]byte, error) {
	s.err, s.done = err, true
	if s.side.pipe != nil {
		s.side.pipe.Close()
	}
	return (&Packet{Code: CodeFailure, ID: s.id}).Encode(), nil
}

// TLSPeer is the client side of EAP-TLS: config holds our certificate and
// the CAs we take the server's from.
type TLSPeer struct {
	outcome
	identity string
	cfg      *tls.Config
	side     tlsSide
	started  bool
}

// NewTLSPeer makes an EAP-TLS client answering EAP-Identity as identity.
func NewTLSPeer(identity string, cfg *tls.Config) *TLSPeer {
	c := cfg.Clone()
	c.MaxVersion = tls.VersionTLS12
	return &TLSPeer{identity: identity, cfg: c}
}

// Receive takes the server's packet and returns our response (nil after
// EAP-Success or EAP-Failure).
func (c *TLSPeer) Receive(b []byte) ([]byte, error) {
	p, err := Decode(b)
	if err != nil {
		return nil, err
	}
	if resp, handled, err := c.peerStep(p, c.identity, TypeTLS); handled {
		if c.done && c.side.pipe != nil {
			c.side.pipe.Close()
		}
		return resp, err
	}
	if p.Code == CodeSuccess {
		if c.side.conn == nil || !c.side.pipe.finished || c.side.pipe.err != nil {
			return nil, fmt.Errorf("%w: EAP-Success before the TLS handshake finished", ErrProtocol)
		}
		if c.msk, err = exportMSK(c.side.conn); err != nil {
			return nil, err
		}
		c.done = true
		c.side.pipe.Close()
		return nil, nil
	}
	respond := func(t uint8, data []byte) []byte { return response(p, t, data) }
	if len(p.Data) < 1 {
		return nil, fmt.Errorf("%w: EAP-TLS without flags", ErrMalformed)
	}
	if p.Data[0]&tlsStart != 0 && !c.started {
		c.started = true
		c.side.start(func(conn net.Conn) *tls.Conn { return tls.Client(conn, c.cfg) })
		c.side.send(c.side.pipe.step(nil)) // ClientHello
		return respond(TypeTLS, c.side.next()), nil
	}
	if !c.started {
		return nil, fmt.Errorf("%w: EAP-TLS before its start", ErrProtocol)
	}
	if len(c.side.pending) > 0 && len(p.Data) == 1 {
		return respond(TypeTLS, c.side.next()), nil // the server acknowledged a fragment
	}
	flight, complete, err := c.side.take(p.Data)
	if err != nil {
		c.err = err
		return nil, err
	}
	if !complete {
		return respond(TypeTLS, []byte{0}), nil
	}
	c.side.send(c.side.pipe.step(flight))
	if c.side.pipe.finished && c.side.pipe.err != nil {
		c.err = fmt.Errorf("EAP-TLS: the server: %w", c.side.pipe.err)
		return nil, c.err
	}
	return respond(TypeTLS, c.side.next()), nil
}
