package ppp

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Link strings the layers of one PPP link together in the phases of RFC
// 1661 section 3.2: LCP (Establish), PAP/CHAP/MS-CHAPv2 (Authenticate),
// IPCP (Network), then LCP echoes while the link is open. It serves the
// server (the L2TP plugin) and the client (`gatehouse connect`). It does no
// I/O and reads no clock: the caller feeds frames and the time, and sends
// what Config.Send is given. Not safe for concurrent use.

// Phase is a link phase (RFC 1661 section 3.2).
type Phase int

const (
	PhaseDead Phase = iota
	PhaseEstablish
	PhaseAuthenticate
	PhaseNetwork
	PhaseOpen
	PhaseTerminate
)

var phaseNames = [...]string{"dead", "establish", "authenticate", "network", "open", "terminate"}

func (p Phase) String() string { return phaseNames[p] }

// ErrDataFrame is returned by Input for a network-layer data frame (IPv4,
// IPv6): the caller's data path carries those, not the control plane.
var ErrDataFrame = errors.New("PPP data frame, not control")

// Addresses is what the server hands a client in IPCP.
type Addresses struct {
	Local, Peer netip.Addr
	DNS, NBNS   []netip.Addr
}

// LinkUp reports an opened link.
type LinkUp struct {
	User      string // the authenticated user, domain stripped (server)
	Auth      AuthProto
	Local     netip.Addr // our address
	Peer      netip.Addr // the peer's
	DNS, NBNS []netip.Addr
	PeerMRU   uint16
	// Magic is our LCP Magic-Number, 0 when the peer rejected it: what an
	// Echo-Reply for this link carries (RFC 1661 section 5.8).
	Magic uint32
}

// LinkConfig configures a Link. Send, OnUp and OnDown are required.
type LinkConfig struct {
	Server bool
	// Auth: the server's protocols in order of preference, or those the
	// client accepts.
	Auth []AuthProto
	MRU  uint16

	// Server side: our name in challenges; Check decides credentials;
	// Assign gives IPCP's addresses once the user is known (and may
	// refuse, e.g. an empty pool).
	Name  string
	Check CheckFunc
	// StartCheck replaces Check for a check that takes time: it starts
	// the check and returns, and the owner calls CheckDone with the
	// result. The link goes on answering everything else meanwhile.
	StartCheck func(Credentials)
	Assign     func(user string) (Addresses, error)

	// Client side.
	User, Password string
	WantNBNS       bool

	// Restart is the retransmission interval of LCP, IPCP and the
	// authentication (RFC 1661 section 4.6; 3 s when zero).
	Restart time.Duration
	// EchoInterval (0: no echoes) and EchoFailures (default 5): the
	// link is declared dead after that many unanswered Echo-Requests
	// (RFC 1661 section 5.8).
	EchoInterval time.Duration
	EchoFailures int
	// Random fills challenges and magic numbers (crypto/rand when nil).
	Random func([]byte)

	// Send transmits one PPP frame (FF 03 and a two-byte protocol).
	Send func(frame []byte)
	// OnUp is called once when IPCP opens; OnDown once when the link
	// is finished, with the cause.
	OnUp   func(LinkUp)
	OnDown func(Disconnect)
}

// Disconnect says why a link ended: an RFC 3145 section 3 cause (what
// the L2TP CDN carries in its PPP Disconnect Cause Code AVP) and a
// reason for the operator.
type Disconnect struct {
	Code      uint16 // RFC 3145 disconnect code
	Proto     uint16 // the control protocol concerned, or 0
	Direction byte   // 0 global, 1 at the peer, 2 at our end
	Reason    string
}

// RFC 3145 section 3 disconnect codes we report.
const (
	CauseNone            = 0
	CauseAdmin           = 1
	CauseNoRenegotiation = 2
	CauseNormal          = 3
	CauseLCPTimeout      = 5
	CauseEchoTimeout     = 8
	CauseAuthTimeout     = 13
	CauseAuthUnaccepted  = 15
	CauseAuthFailed      = 16
	CauseNCPTimeout      = 17
	CauseNoAddresses     = 19
	CauseNoPermittedAddr = 20
)

// Directions of a Disconnect.
const (
	DirGlobal = 0
	DirPeer   = 1
	DirLocal  = 2
)

func (d Disconnect) String() string { return d.Reason }

// Link is one PPP link.
type Link struct {
	cfg   LinkConfig
	phase Phase

	lcp     *LCP
	lcpFSM  *FSM
	ipcp    *IPCP
	ipcpFSM *FSM
	server  *AuthServer
	client  *AuthClient

	user     string
	addrs    Addresses
	up, down bool
	cause    Disconnect // why we are terminating; the first cause wins
	closing  bool       // a Close waits for settle

	lcpTimer, ipcpTimer, authTimer, echoTimer time.Time
	now                                       time.Time
	echoID                                    byte
	echoMiss                                  int
	rejectID                                  byte
}

// NewLink prepares a link in the Dead phase; call Open.
func NewLink(cfg LinkConfig) *Link {
	if cfg.Random == nil {
		cfg.Random = func(b []byte) { _, _ = rand.Read(b) }
	}
	if cfg.Restart == 0 {
		cfg.Restart = DefaultRestart
	}
	if cfg.EchoFailures == 0 {
		cfg.EchoFailures = 5
	}
	l := &Link{cfg: cfg}
	l.lcp = NewLCP(cfg.Server, cfg.Auth, cfg.MRU, l.magic)
	l.lcp.OnSend = func(p Packet) { l.send(ProtoLCP, p) }
	l.lcp.OnUp = l.lcpUp
	l.lcp.OnDown = l.lcpDown
	l.lcp.OnFinished = l.finish
	l.lcpFSM = NewFSM(l.lcp)
	return l
}

func (l *Link) magic() uint32 {
	var b [4]byte
	for {
		l.cfg.Random(b[:])
		if v := binary.BigEndian.Uint32(b[:]); v != 0 {
			return v
		}
	}
}

// Phase is the link's phase.
func (l *Link) Phase() Phase { return l.phase }

// User is the authenticated (server) or configured (client) user.
func (l *Link) User() string { return l.user }

// Open starts LCP: the lower layer (an L2TP session) is up.
func (l *Link) Open(now time.Time) {
	l.now = now
	l.phase = PhaseEstablish
	l.lcpFSM.Open()
	l.lcpFSM.Up()
	l.settle()
}

// CheckDone hands the link the result of the check StartCheck began.
// A link that ended meanwhile, or a result for no pending check, is
// ignored. After an LCP renegotiation the link asks again: the owner
// delivers only the answer to the latest StartCheck.
func (l *Link) CheckDone(now time.Time, r AuthResult) {
	l.now = now
	if l.down || l.server == nil {
		return
	}
	l.server.Resolve(r)
	l.settle()
}

// Close terminates the link gracefully (LCP Terminate-Request); OnDown
// follows when the peer acknowledges or the retries run out.
func (l *Link) Close(now time.Time, reason string) {
	l.now = now
	if l.down {
		return
	}
	l.terminate(CauseNormal, ProtoLCP, DirLocal, reason)
	l.settle()
}

// Input handles one PPP frame from the peer. Data frames are refused with
// ErrDataFrame; malformed ones with ErrMalformed (the caller counts them).
func (l *Link) Input(frame []byte, now time.Time) error {
	l.now = now
	if l.down {
		return nil
	}
	proto, payload, err := ParseFrame(frame)
	if err != nil {
		return err
	}
	if proto < 0x8000 {
		return ErrDataFrame // RFC 1661 section 2: 0xxx-3xxx are network-layer data
	}
	defer l.settle()
	switch proto {
	case ProtoLCP:
		return l.inputLCP(payload)
	case ProtoPAP, ProtoCHAP:
		p, err := ParsePacket(payload)
		if err != nil {
			return err
		}
		if (proto == ProtoPAP) != (l.lcp.Agreed() == AuthPAP) {
			return nil // not the protocol LCP agreed
		}
		if l.server != nil && l.phase >= PhaseAuthenticate && l.phase <= PhaseOpen {
			// Past authentication too: a client whose Success or Ack was
			// lost asks again, and the server answers again.
			return l.server.Input(p)
		}
		if l.phase != PhaseAuthenticate {
			return nil // late retransmission or out of phase: ignore
		}
		if l.client != nil {
			return l.client.Input(p)
		}
		return nil
	case ProtoIPCP:
		if l.ipcpFSM == nil {
			return nil // RFC 1661 section 3.4: NCP packets before the Network phase are discarded
		}
		p, err := ParsePacket(payload)
		if err != nil {
			return err
		}
		return l.ipcpFSM.Input(p)
	}
	// CCP, IPV6CP, anything else: Protocol-Reject once LCP is open (RFC
	// 1661 section 5.7); before that, discard.
	if l.lcpFSM.State() == Opened {
		l.rejectID++
		l.send(ProtoLCP, ProtocolReject(l.rejectID, proto, payload))
	}
	return nil
}

func (l *Link) inputLCP(payload []byte) error {
	p, err := ParsePacket(payload)
	if err != nil {
		return err
	}
	switch p.Code {
	case CodeEchoRequest:
		if l.lcpFSM.State() == Opened {
			l.send(ProtoLCP, l.lcp.EchoReply(p))
		}
		return nil
	case CodeEchoReply:
		l.echoMiss = 0
		return nil
	case CodeDiscardRequest:
		return nil
	case CodeTerminateRequest:
		l.setCause(Disconnect{Code: CauseNormal, Proto: ProtoLCP, Direction: DirPeer, Reason: "the peer terminated the link (LCP Terminate-Request)"})
	}
	return l.lcpFSM.Input(p)
}

// Tick runs the timers: retransmissions and echoes. Call it at least
// every second or so; it does nothing when nothing is due.
func (l *Link) Tick(now time.Time) {
	l.now = now
	if l.down {
		return
	}
	if due(l.lcpTimer, now) {
		l.lcpTimer = time.Time{}
		l.lcpFSM.Timeout()
	}
	if l.ipcpFSM != nil && due(l.ipcpTimer, now) {
		l.ipcpTimer = time.Time{}
		l.ipcpFSM.Timeout()
	}
	if due(l.authTimer, now) {
		l.authTimer = now.Add(l.cfg.Restart)
		if l.server != nil {
			l.server.Timeout()
		} else if l.client != nil {
			l.client.Timeout()
		}
	}
	if due(l.echoTimer, now) && !l.down {
		l.echoTimer = now.Add(l.cfg.EchoInterval)
		if l.echoMiss >= l.cfg.EchoFailures {
			l.terminate(CauseEchoTimeout, ProtoLCP, DirPeer, fmt.Sprintf("the peer answered none of %d LCP echo requests", l.echoMiss))
		} else {
			l.echoMiss++
			l.echoID++
			l.send(ProtoLCP, Packet{Code: CodeEchoRequest, ID: l.echoID, Data: binary.BigEndian.AppendUint32(nil, l.lcp.OurMagic())})
		}
	}
	l.settle()
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// timers arms or clears the automata's restart timers after an event.
func (l *Link) timers() {
	arm := func(t *time.Time, running bool) {
		switch {
		case !running:
			*t = time.Time{}
		case t.IsZero():
			*t = l.now.Add(l.cfg.Restart)
		}
	}
	arm(&l.lcpTimer, l.lcpFSM.TimerRunning())
	if l.ipcpFSM != nil {
		arm(&l.ipcpTimer, l.ipcpFSM.TimerRunning())
	}
}

func (l *Link) send(proto uint16, p Packet) {
	b := AppendFrameHeader(make([]byte, 0, 8+len(p.Data)), proto, false, false)
	l.cfg.Send(p.Append(b))
}

// terminate closes LCP with a reason (the first reason wins). It is often
// called from inside an automaton's action, so the Close itself waits for
// settle, when the automaton has finished its transition.
func (l *Link) terminate(code, proto uint16, dir byte, reason string) {
	l.setCause(Disconnect{Code: code, Proto: proto, Direction: dir, Reason: reason})
	l.closing = true
}

func (l *Link) setCause(d Disconnect) {
	if l.cause.Reason == "" {
		l.cause = d
	}
}

// settle runs what an event left pending, then arms the timers.
func (l *Link) settle() {
	if l.closing && l.phase != PhaseTerminate && !l.down {
		l.phase = PhaseTerminate
		l.lcpFSM.Close()
	}
	l.timers()
}

func (l *Link) lcpUp() {
	l.phase = PhaseAuthenticate
	agreed := l.lcp.Agreed()
	switch {
	case l.cfg.Server && agreed == AuthNone:
		l.terminate(CauseAuthUnaccepted, ProtoLCP, DirPeer, "the client accepts none of our authentication protocols")
	case l.cfg.Server:
		l.server = &AuthServer{Proto: agreed, Name: l.cfg.Name, Random: l.cfg.Random, Check: l.cfg.Check, StartCheck: l.cfg.StartCheck,
			Send: func(p Packet) { l.send(authProtoNumber(agreed), p) }, Done: l.serverAuthDone}
		l.authTimer = l.now.Add(l.cfg.Restart)
		l.server.Start()
	case agreed == AuthNone:
		// The server asked for no authentication: straight on.
		l.user = l.cfg.User
		l.startNetwork()
	default:
		l.user = l.cfg.User
		l.client = &AuthClient{Proto: agreed, User: l.cfg.User, Password: l.cfg.Password, Random: l.cfg.Random,
			Send: func(p Packet) { l.send(authProtoNumber(agreed), p) }, Done: l.clientAuthDone}
		l.authTimer = l.now.Add(l.cfg.Restart)
		l.client.Start()
	}
}

// authCause tells a timeout from a refusal.
func authCause(why string) uint16 {
	if strings.Contains(why, "never answered") {
		return CauseAuthTimeout
	}
	return CauseAuthFailed
}

func authProtoNumber(a AuthProto) uint16 {
	if a == AuthPAP {
		return ProtoPAP
	}
	return ProtoCHAP
}

func (l *Link) serverAuthDone(ok bool, user, why string) {
	l.authTimer = time.Time{}
	l.user = user
	if !ok {
		l.terminate(authCause(why), authProtoNumber(l.lcp.Agreed()), DirPeer, "authentication failed: "+why)
		return
	}
	addrs, err := l.cfg.Assign(user)
	if err != nil {
		l.terminate(CauseNoPermittedAddr, ProtoIPCP, DirLocal, "no address for the client: "+err.Error())
		return
	}
	l.addrs = addrs
	l.startNetwork()
}

func (l *Link) clientAuthDone(ok bool, why string) {
	l.authTimer = time.Time{}
	if !ok {
		l.terminate(authCause(why), authProtoNumber(l.lcp.Agreed()), DirPeer, "authentication failed: "+why)
		return
	}
	l.startNetwork()
}

func (l *Link) startNetwork() {
	l.phase = PhaseNetwork
	if l.cfg.Server {
		l.ipcp = NewIPCPServer(l.addrs.Local, l.addrs.Peer, l.addrs.DNS, l.addrs.NBNS)
	} else {
		l.ipcp = NewIPCPClient(l.cfg.WantNBNS)
	}
	l.ipcp.OnSend = func(p Packet) { l.send(ProtoIPCP, p) }
	l.ipcp.OnUp = l.ipcpUp
	l.ipcp.OnFinished = func() {
		if l.phase == PhaseNetwork {
			l.terminate(CauseNoAddresses, ProtoIPCP, DirGlobal, "IPCP could not agree on addresses")
		}
	}
	l.ipcpFSM = NewFSM(l.ipcp)
	l.ipcpFSM.Open()
	l.ipcpFSM.Up()
}

func (l *Link) ipcpUp() {
	if l.up {
		return // a renegotiation keeps the addresses: the core's session stands
	}
	if !l.cfg.Server && (!l.ipcp.Local.IsValid() || l.ipcp.Local == zero4) {
		l.terminate(CauseNoAddresses, ProtoIPCP, DirPeer, "the server gave us no address")
		return
	}
	l.up = true
	l.phase = PhaseOpen
	if l.cfg.EchoInterval > 0 {
		l.echoTimer = l.now.Add(l.cfg.EchoInterval)
	}
	l.cfg.OnUp(LinkUp{User: l.user, Auth: l.lcp.Agreed(), Local: l.ipcp.Local, Peer: l.ipcp.Peer,
		DNS: l.ipcp.DNS, NBNS: l.ipcp.NBNS, PeerMRU: l.lcp.PeerMRU(), Magic: l.lcp.OurMagic()})
}

func (l *Link) lcpDown() {
	// This-Layer-Down: the network layer goes with it (RFC 1661 section
	// 4.4); OnDown waits for This-Layer-Finished.
	if l.ipcpFSM != nil {
		l.ipcpFSM.Down()
	}
	l.server, l.client, l.authTimer, l.echoTimer = nil, nil, time.Time{}, time.Time{}
	if l.phase == PhaseTerminate || l.closing {
		return
	}
	if !l.up {
		// Before the link is up, a Configure-Request while Opened is how
		// PPP recovers a lost Configure-Ack (RFC 1661 section 4.2): follow
		// it; authentication and IPCP start again when LCP reopens.
		l.phase = PhaseEstablish
		l.ipcp, l.ipcpFSM, l.ipcpTimer = nil, nil, time.Time{}
		return
	}
	// Once up, the peer renegotiating LCP would take the link through
	// re-authentication, which we do not follow: end it.
	l.terminate(CauseNoRenegotiation, ProtoLCP, DirPeer, "the peer renegotiated LCP")
}

// finish is This-Layer-Finished of LCP: the link is dead.
func (l *Link) finish() {
	if l.down {
		return
	}
	l.down = true
	l.phase = PhaseDead
	l.lcpTimer, l.ipcpTimer, l.authTimer, l.echoTimer = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	l.setCause(Disconnect{Code: CauseLCPTimeout, Proto: ProtoLCP, Direction: DirPeer,
		Reason: "LCP negotiation failed (the peer stopped answering or refused our options)"})
	l.cfg.OnDown(l.cause)
}

// Down reports the lower layer gone (L2TP session cleared): the link is
// dead at once, without Terminate-Requests.
func (l *Link) Down(reason string) {
	l.setCause(Disconnect{Code: CauseNone, Reason: reason})
	l.phase = PhaseTerminate
	l.lcpFSM.Down()
	l.finish()
}
