package raclient

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/gatehouse/gatehouse/core/dataplane"
	"github.com/gatehouse/gatehouse/core/dataplane/dptest"
	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/ppp"
)

// The client and an in-process server talk over the data path's
// in-memory wires: the server is an IKE responder, a data path, an LNS
// and a PPP server, built from the same libraries as gatehoused, with
// hooks to lose or answer a message its own way. It notes every control
// message it receives, in order.

var (
	clientAddr = netip.MustParseAddr("192.0.2.10")
	serverAddr = netip.MustParseAddr("203.0.113.1")
)

const (
	testPSK      = "client-test-psk"
	testPassword = "correct horse"
)

type server struct {
	t        *testing.T
	db       *sad.DB
	plane    *dataplane.Plane
	mgr      *ike.Manager
	peer     *ike.PeerConfig
	ike, udp *dptest.Conn
	in       chan datagram
	ctl      chan dataplane.L2TPControl
	lns      *l2tp.Server[netip.AddrPort]
	calls    map[[2]uint16]*srvCall // by our tunnel and session ids
	// lose, when set, is asked about each L2TP message the server
	// receives (by name); true: it is lost before the LNS sees it.
	lose func(name string) bool
	// answer, when set, sees each PPP frame first: true means it
	// answered the frame itself (sent through reply) and the PPP server
	// never sees it.
	answer func(proto uint16, p ppp.Packet, reply func(proto uint16, p ppp.Packet)) bool
	// ikeUp, when set, runs on the server's goroutine once its IKE SA
	// is up, before it reads the client's next message.
	ikeUp   func()
	ikeIsUp bool
	// clear: the server speaks L2TP without IPsec on its UDP 1701 wire.
	clear bool

	mu   sync.Mutex
	seen []string

	stop, done chan struct{}
}

type serverHost server

// srvCall is one of the server's PPP links and the session it rides.
type srvCall struct {
	link *ppp.Link
	sess *l2tp.Session
	peer netip.AddrPort
}

// newPair starts a server and returns the client's configuration for it.
func newPair(t *testing.T) (*server, Config) {
	t.Helper()
	ikeC, ikeS := dptest.Wire(netip.AddrPortFrom(clientAddr, 500), netip.AddrPortFrom(serverAddr, 500))
	udpC, udpS := dptest.Wire(netip.AddrPortFrom(clientAddr, esp.NATTPort), netip.AddrPortFrom(serverAddr, esp.NATTPort))
	rawC, rawS := dptest.Wire(netip.AddrPortFrom(clientAddr, 0), netip.AddrPortFrom(serverAddr, 0))
	l2tpC, l2tpS := dptest.Wire(netip.AddrPortFrom(clientAddr, l2tp.Port), netip.AddrPortFrom(serverAddr, l2tp.Port))
	s := &server{t: t, db: sad.New(), ike: ikeS, udp: udpS, in: make(chan datagram, 64), ctl: make(chan dataplane.L2TPControl, 256),
		calls: map[[2]uint16]*srvCall{}, stop: make(chan struct{}), done: make(chan struct{})}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	s.plane = dataplane.New(dataplane.Config{Log: log.Named("server-esp"), TUN: dptest.NewTUN(dataplane.DeviceHeadroom), Raw: rawS, UDP: udpS,
		SAD: s.db, MTU: 1400, L2TP: dataplane.NewL2TPTable(), L2TPClear: l2tpS, L2TPClearLocal: netip.AddrPortFrom(serverAddr, l2tp.Port),
		OnL2TPControl: func(m dataplane.L2TPControl) { s.ctl <- m },
		OnIKE: func(msg []byte, _ netip.Addr, from netip.AddrPort) {
			s.in <- datagram{append([]byte(nil), msg...), netip.AddrPortFrom(serverAddr, esp.NATTPort), from}
		}}, &policy.Policy{})
	props := []ike.Proposal{mustProposal(t, "aes128-sha256-modp2048")}
	suites := []esp.Suite{mustSuite(t, "aes128gcm16")}
	s.mgr = ike.NewManager(ike.Config{Log: log.Named("server-ike"), Host: (*serverHost)(s), Rand: rand.Reader})
	s.peer = &ike.PeerConfig{Name: "remote-access", Local: serverAddr, Transport: true, L2TP: true, Auth: []uint16{ike.AuthPSK},
		Proposals: props, ESP: suites, Lifetime: time.Hour, ESPLifetime: time.Hour}
	s.mgr.SetPeers([]*ike.PeerConfig{s.peer})
	s.lns = &l2tp.Server[netip.AddrPort]{NewConfig: s.tunnelConfig}
	s.plane.Start()
	go func() {
		buf := make([]byte, 65535)
		for {
			b, from, err := ikeS.ReadFrom(buf)
			if err != nil {
				return
			}
			s.in <- datagram{append([]byte(nil), b...), netip.AddrPortFrom(serverAddr, 500), from}
		}
	}()
	go s.run()
	t.Cleanup(func() {
		close(s.stop)
		<-s.done
		s.plane.Close()
		ikeS.Close()
	})
	cfg := Config{Log: log.Named("client"), Server: serverAddr, PSK: []byte(testPSK), User: "alice", Password: testPassword,
		PPPAuth: []ppp.AuthProto{ppp.AuthMSCHAPv2}, IKE: props, ESP: suites, TUN: "unused", Timeout: 20 * time.Second,
		IO: &IO{Local: clientAddr, IKE: ikeC, UDP: udpC, Raw: rawC, L2TP: l2tpC, TUN: dptest.NewTUN(dataplane.DeviceHeadroom),
			Network: func(dataplane.NetConfig) (func(), error) { return func() {}, nil }}}
	return s, cfg
}

func mustProposal(t *testing.T, s string) ike.Proposal {
	p, err := ike.ParseProposal(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSuite(t *testing.T, s string) esp.Suite {
	su, err := esp.ParseSuite(s)
	if err != nil {
		t.Fatal(err)
	}
	return su
}

// run is the server's one goroutine: IKE, L2TP and PPP.
func (s *server) run() {
	defer close(s.done)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case d := <-s.in:
			s.mgr.Receive(d.b, d.local, d.remote)
			if f := s.ikeUp; f != nil && s.ikeIsUp {
				s.ikeUp = nil
				f()
			}
		case m := <-s.ctl:
			s.control(m)
		case now := <-tick.C:
			s.mgr.Tick()
			s.lns.Tick(now)
			for _, k := range s.calls {
				k.link.Tick(now)
			}
		}
	}
}

func (s *server) note(what string) {
	s.mu.Lock()
	s.seen = append(s.seen, what)
	s.mu.Unlock()
}

// saw is what the server has received so far, in order.
func (s *server) saw() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

func srvOutKey(peer netip.AddrPort) sad.OutKey {
	return sad.OutKey{Rule: "remote-access/out", Peer: peer.Addr(), Port: peer.Port()}
}

func (s *server) send(peer netip.AddrPort, msg []byte) {
	send := func() error { return s.plane.SendL2TP(srvOutKey(peer), l2tp.Port, msg) }
	if s.clear {
		send = func() error { return s.plane.SendL2TPClear(netip.AddrPortFrom(serverAddr, l2tp.Port), peer, msg) }
	}
	if err := send(); err != nil {
		s.t.Logf("server: L2TP not sent: %v", err)
	}
}

func (s *server) tunnelConfig(peer netip.AddrPort) l2tp.Config {
	return l2tp.Config{Role: l2tp.LNS, HostName: "test-lns",
		Send:        func(b []byte) { s.send(peer, b) },
		OnSessionUp: func(sess *l2tp.Session) { s.startPPP(peer, sess) },
	}
}

func (s *server) startPPP(peer netip.AddrPort, sess *l2tp.Session) {
	k := &srvCall{sess: sess, peer: peer}
	send := func(frame []byte) { s.sendFrame(k, frame) }
	k.link = ppp.NewLink(ppp.LinkConfig{Server: true, Auth: []ppp.AuthProto{ppp.AuthMSCHAPv2}, MRU: 1400, Name: "test-lns",
		Check: ppp.CheckWithPassword(testPassword),
		Assign: func(string) (ppp.Addresses, error) {
			return ppp.Addresses{Local: netip.MustParseAddr("10.8.0.1"), Peer: netip.MustParseAddr("10.8.0.2"),
				DNS: []netip.Addr{netip.MustParseAddr("10.1.0.53")}}, nil
		},
		Send:   send,
		OnUp:   func(ppp.LinkUp) { s.note("PPP up") },
		OnDown: func(d ppp.Disconnect) { s.note("PPP down: " + d.Reason) },
	})
	s.calls[[2]uint16{sess.Tunnel.LocalID, sess.LocalID}] = k
	k.link.Open(time.Now())
}

// sendFrame sends a PPP frame on a call, in an L2TP data message.
func (s *server) sendFrame(k *srvCall, frame []byte) {
	s.send(k.peer, append(l2tp.AppendDataHeader(nil, k.sess.Tunnel.PeerID, k.sess.PeerID, false, 0), frame...))
}

// control takes an L2TP message or a PPP frame from the data path.
func (s *server) control(m dataplane.L2TPControl) {
	now := time.Now()
	if !m.PPP {
		name := l2tpName(m.Payload)
		if s.lose != nil && s.lose(name) {
			s.note(name + " lost")
			return
		}
		s.note(name)
		if _, err := s.lns.Input(m.Peer, m.Payload, now); err != nil {
			s.t.Logf("server: L2TP %s refused: %v", name, err)
		}
		return
	}
	k := s.calls[[2]uint16{m.Tunnel, m.Session}]
	proto, frame, err := ppp.ParseFrame(m.Payload)
	if err != nil || k == nil {
		s.t.Errorf("server: a PPP frame it cannot place (%v)", err)
		return
	}
	p, err := ppp.ParsePacket(frame)
	if err != nil {
		s.t.Errorf("server: malformed PPP from the client: %v", err)
		return
	}
	s.note(pppName(proto, p))
	reply := func(proto uint16, p ppp.Packet) {
		s.sendFrame(k, p.Append(ppp.AppendFrameHeader(nil, proto, false, false)))
	}
	if s.answer != nil && s.answer(proto, p, reply) {
		return
	}
	if err := k.link.Input(m.Payload, now); err != nil && !errors.Is(err, ppp.ErrDataFrame) {
		s.t.Logf("server: PPP frame refused: %v", err)
	}
}

func l2tpName(b []byte) string {
	_, payload, err := l2tp.ParseHeader(b)
	if err != nil {
		return "malformed L2TP"
	}
	if len(payload) == 0 {
		return "ZLB"
	}
	m, err := l2tp.ParseMessage(payload, nil)
	if err != nil {
		return "malformed L2TP"
	}
	return m.Type.String()
}

var pppProtos = map[uint16]string{ppp.ProtoLCP: "LCP", ppp.ProtoIPCP: "IPCP", ppp.ProtoCHAP: "CHAP", ppp.ProtoPAP: "PAP", ppp.ProtoCCP: "CCP"}

var pppCodes = map[byte]string{ppp.CodeConfigureRequest: "Configure-Request", ppp.CodeConfigureAck: "Configure-Ack",
	ppp.CodeConfigureNak: "Configure-Nak", ppp.CodeConfigureReject: "Configure-Reject", ppp.CodeTerminateRequest: "Terminate-Request",
	ppp.CodeTerminateAck: "Terminate-Ack", ppp.CodeEchoRequest: "Echo-Request", ppp.CodeEchoReply: "Echo-Reply"}

func pppName(proto uint16, p ppp.Packet) string {
	if proto == ppp.ProtoCHAP {
		return "CHAP"
	}
	code := pppCodes[p.Code]
	if code == "" {
		code = fmt.Sprintf("code %d", p.Code)
	}
	return pppProtos[proto] + " " + code
}

func (h *serverHost) Send(b []byte, local, remote netip.AddrPort) error {
	if local.Port() == esp.NATTPort {
		return h.udp.WriteTo(append(make([]byte, 4, 4+len(b)), b...), remote) // RFC 3948 section 2.2
	}
	return h.ike.WriteTo(b, remote)
}

func (h *serverHost) SendKeepalive(_, remote netip.AddrPort) error {
	return h.udp.WriteTo([]byte{0xff}, remote)
}

func (h *serverHost) PSK(*ike.PeerConfig, netip.Addr, *ike.ID) ([]byte, error) {
	return []byte(testPSK), nil
}

var errOnlyPSK = errors.New("the test server takes preshared keys only")

func (h *serverHost) LocalCredentials(*ike.PeerConfig, uint16, [][]byte) (*ike.LocalCredentials, error) {
	return nil, errOnlyPSK
}
func (h *serverHost) Sign(*ike.PeerConfig, uint16, []byte) ([]byte, error) { return nil, errOnlyPSK }
func (h *serverHost) VerifyPeer(*ike.PeerConfig, uint16, [][]byte, *ike.ID) (*ike.PeerCredentials, error) {
	return nil, errOnlyPSK
}
func (h *serverHost) GSSStep(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errOnlyPSK
}
func (h *serverHost) GSSWrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errOnlyPSK
}
func (h *serverHost) GSSUnwrap(*ike.PeerConfig, *ike.GSSContext, []byte) ([]byte, error) {
	return nil, errOnlyPSK
}
func (h *serverHost) GSSRelease(*ike.PeerConfig, *ike.GSSContext) {}

func (h *serverHost) AllocSPI() (uint32, error) { return h.db.NewSPI() }

func (h *serverHost) meta(c *ike.ChildSA, rule string) sad.Meta {
	return sad.Meta{Name: "remote-access", Rule: rule, Mode: sad.Transport, Local: c.Local, Peer: c.Remote, UDPEncap: c.UDP}
}

func (h *serverHost) InstallInbound(c *ike.ChildSA) error {
	in, err := esp.NewInbound(esp.Config{SPI: c.InSPI, Suite: c.Suite, EncKey: c.InEnc, IntegKey: c.InInteg})
	if err != nil {
		return err
	}
	return h.db.AddInbound(&sad.InSA{Meta: h.meta(c, "remote-access/in"), ESP: in})
}

func (h *serverHost) InstallOutbound(c *ike.ChildSA) error {
	out, err := esp.NewOutbound(esp.Config{SPI: c.OutSPI, Suite: c.Suite, EncKey: c.OutEnc, IntegKey: c.OutInteg})
	if err != nil {
		return err
	}
	h.db.SetOutbound(srvOutKey(c.Remote), &sad.OutSA{Meta: h.meta(c, "remote-access/out"), ESP: out})
	return nil
}

func (h *serverHost) DeleteChild(c *ike.ChildSA) {
	h.db.RemoveInbound(c.InSPI)
	h.db.RemoveOutbound(srvOutKey(c.Remote), c.OutSPI)
	(*server)(h).note("IPsec SA deleted")
}

func (h *serverHost) Event(e ike.Event) {
	switch e.ID {
	case ike.EventNegotiationErr:
		(*server)(h).note("negotiation failed: " + e.Reason)
	case ike.EventIKEUp:
		h.ikeIsUp = true
	}
}

// dial connects the client and closes it when the test ends.
func dial(t *testing.T, cfg Config) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Everything works: the client is up with the server's addresses.
func TestConnects(t *testing.T) {
	s, cfg := newPair(t)
	c := dial(t, cfg)
	info := c.Info()
	if info.Address != netip.MustParseAddr("10.8.0.2") || info.Gateway != netip.MustParseAddr("10.8.0.1") ||
		!slices.Equal(info.DNS, []netip.Addr{netip.MustParseAddr("10.1.0.53")}) || info.Auth != ppp.AuthMSCHAPv2 {
		t.Fatalf("info %+v", info)
	}
	if seen := s.saw(); !slices.Contains(seen, "PPP up") {
		t.Fatalf("the server saw %q", seen)
	}
}

// Without IPsec the client speaks L2TP straight to the server's UDP port
// 1701, from its own, and comes up with no IKE exchange and no SA on
// either side; L2TP from another host is ignored.
func TestConnectsWithoutIPsec(t *testing.T) {
	s, cfg := newPair(t)
	s.clear = true
	cfg.NoIPsec, cfg.PSK = true, nil
	// The client gets only its UDP 1701 wire, the server keeps its IKE
	// ones: an IKE message would show in s.saw().
	cfg.IO.IKE, cfg.IO.UDP, cfg.IO.Raw = nil, nil, nil
	c := dial(t, cfg)
	info := c.Info()
	if info.Address != netip.MustParseAddr("10.8.0.2") || info.ESP != "none" || info.Server != netip.AddrPortFrom(serverAddr, l2tp.Port) ||
		info.Local != netip.AddrPortFrom(clientAddr, l2tp.Port) {
		t.Fatalf("info %+v", info)
	}
	seen := s.saw()
	if !slices.Contains(seen, "PPP up") || !slices.Contains(seen, "SCCRQ") || s.db.Len() != 0 || s.ikeIsUp {
		t.Fatalf("the server saw %q with %d SAs", seen, s.db.Len())
	}
	ses := c.table.All()
	if len(ses) != 1 || !ses[0].Clear || ses[0].Peer != info.Server {
		t.Fatalf("client session %+v", ses)
	}
	// StopCCNs from a stranger for the client's tunnel, one for each
	// sequence number the server may be at, change nothing.
	m := &l2tp.Message{Type: l2tp.MsgStopCCN}
	m.AddUint16(l2tp.AVPAssignedTunnelID, true, 999)
	m.Add(l2tp.AVPResultCode, true, l2tp.Result{Result: l2tp.StopClearConnection}.Bytes())
	stop := m.AppendAVPs(nil, nil, nil)
	for ns := uint16(0); ns < 16; ns++ {
		c.call(func() {
			c.control(dataplane.L2TPControl{Peer: netip.MustParseAddrPort("198.51.100.66:1701"), Tunnel: ses[0].LocalTunnel,
				Payload: append(l2tp.AppendControlHeader(nil, ses[0].LocalTunnel, 0, ns, 0, len(stop)), stop...)})
		})
	}
	select {
	case <-c.Done():
		t.Fatalf("a stranger's StopCCN ended the connection: %v", c.Err())
	case <-time.After(300 * time.Millisecond):
	}
}

// An SCCRQ lost on the way is sent again, and the connection comes up.
func TestLostSCCRQIsRetransmitted(t *testing.T) {
	s, cfg := newPair(t)
	lost := false
	s.lose = func(name string) bool {
		if name == "SCCRQ" && !lost {
			lost = true
			return true
		}
		return false
	}
	dial(t, cfg)
	seen := s.saw()
	first := slices.Index(seen, "SCCRQ lost")
	if first < 0 || slices.Index(seen[first+1:], "SCCRQ") < 0 || !slices.Contains(seen, "PPP up") {
		t.Fatalf("the server saw %q: want a lost SCCRQ, then another, then PPP up", seen)
	}
}

// A server that rejects options (LCP's Magic-Number, IPCP's name
// servers, as a minimal PPP server may) gets requests without them, and
// the connection comes up without name servers.
func TestServerRejectsOptions(t *testing.T) {
	s, cfg := newPair(t)
	rejects := map[uint16]byte{ppp.ProtoLCP: ppp.LCPOptMagic, ppp.ProtoIPCP: ppp.IPCPOptDNS1}
	var rejected, retried []string
	s.answer = func(proto uint16, p ppp.Packet, reply func(uint16, ppp.Packet)) bool {
		if p.Code != ppp.CodeConfigureRequest {
			return false
		}
		opts, err := ppp.ParseOptions(p.Data)
		if err != nil {
			t.Errorf("options: %v", err)
			return false
		}
		var reject []ppp.Option
		for _, o := range opts {
			if o.Type == rejects[proto] || (proto == ppp.ProtoIPCP && o.Type == ppp.IPCPOptDNS2) {
				reject = append(reject, o)
			}
		}
		if len(reject) == 0 {
			retried = append(retried, pppProtos[proto])
			return false
		}
		rejected = append(rejected, pppProtos[proto])
		reply(proto, ppp.Packet{Code: ppp.CodeConfigureReject, ID: p.ID, Data: ppp.AppendOptions(nil, reject)})
		return true
	}
	c := dial(t, cfg)
	if info := c.Info(); len(info.DNS) != 0 || !info.Address.IsValid() {
		t.Fatalf("info %+v: want an address and no name servers", info)
	}
	for _, proto := range []string{"LCP", "IPCP"} {
		if !slices.Contains(rejected, proto) || !slices.Contains(retried, proto) {
			t.Fatalf("%s: requests rejected %q, then sent without the options %q (the server saw %q)", proto, rejected, retried, s.saw())
		}
	}
}

// A refused password ends Dial with ErrRefused and the server's reason.
func TestWrongPassword(t *testing.T) {
	_, cfg := newPair(t)
	cfg.Password = "wrong"
	c, err := Dial(context.Background(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("connected with a wrong password")
	}
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrPPP) {
		t.Fatalf("Dial: %v, want ErrPPP and ErrRefused", err)
	}
}

// Close hangs up as Windows does, layer by layer from the inside out:
// PPP's Terminate-Request, the CDN, the StopCCN, then the IPsec SA's
// delete.
func TestHangUpOrder(t *testing.T) {
	s, cfg := newPair(t)
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	up := len(s.saw())
	c.Close()
	await.State(t, 10*time.Second, "the IPsec SA's delete", func() (bool, string) {
		seen := s.saw()
		return slices.Contains(seen[up:], "IPsec SA deleted"), strings.Join(seen[up:], ", ")
	})
	seen := s.saw()[up:]
	at := -1
	for _, want := range []string{"LCP Terminate-Request", "CDN", "StopCCN", "IPsec SA deleted"} {
		i := slices.Index(seen, want)
		if i <= at {
			t.Fatalf("hang-up as the server saw it: %q; want LCP Terminate-Request, CDN, StopCCN and the SA's delete in that order", seen)
		}
		at = i
	}
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "closed by the user") {
		t.Fatalf("Err after Close: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

// A failed negotiation ends the setup only when it was ours; the
// server's own quick mode, refused, leaves the connection be.
func TestWhichFailuresEndTheSetup(t *testing.T) {
	for _, c := range []struct {
		e       ike.Event
		childUp bool
		ends    bool
	}{
		{ike.Event{Exchange: ike.ExchangeMain, Initiator: true}, false, true},
		{ike.Event{Exchange: ike.ExchangeQuick, Initiator: true}, false, true},
		{ike.Event{Exchange: ike.ExchangeQuick, Initiator: false}, false, false},
		{ike.Event{Exchange: ike.ExchangeQuick, Initiator: false}, true, false},
		{ike.Event{Exchange: ike.ExchangeQuick, Initiator: true}, true, false},
	} {
		if got := endsSetup(c.e, c.childUp); got != c.ends {
			t.Errorf("%v initiator=%v with our SA up=%v: ends %v, want %v", c.e.Exchange, c.e.Initiator, c.childUp, got, c.ends)
		}
	}
}

// A quick mode the server starts as soon as the IKE SA is up, before
// the client's own quick mode is done (as some servers do for their
// direction), with a suite the client does not take: the client answers
// NO-PROPOSAL-CHOSEN, its own quick mode goes on, and the connection
// comes up and stays.
func TestServerQuickModeRefusedKeepsTheConnection(t *testing.T) {
	s, cfg := newPair(t)
	s.ikeUp = func() {
		// Changed in place, so that the IKE SA just made still belongs
		// to this peer and carries the quick mode; made specific so
		// that the server may initiate. The offer is sent by the time
		// Initiate returns; the suites go back for the client's quick
		// mode, which the server answers.
		s.peer.Remote = clientAddr
		suites := s.peer.ESP
		s.peer.ESP = []esp.Suite{mustSuite(t, "aes256-sha256")}
		if err := s.mgr.Initiate("remote-access"); err != nil {
			t.Errorf("server quick mode: %v", err)
		}
		s.peer.ESP = suites
	}
	c := dial(t, cfg)
	await.State(t, 10*time.Second, "the server's quick mode refused", func() (bool, string) {
		seen := s.saw()
		return slices.Contains(seen, "negotiation failed: peer-error"), strings.Join(seen, ", ")
	})
	select {
	case <-c.Done():
		t.Fatalf("the connection ended: %v", c.Err())
	default:
	}
	if c.Err() != nil || !c.Info().Address.IsValid() {
		t.Fatalf("after the refused quick mode: %v, %+v", c.Err(), c.Info())
	}
}
