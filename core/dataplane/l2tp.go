package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/l2tp"
	"github.com/gatehouse/gatehouse/ppp"
)

// L2TP/IPsec sessions on the data path: the core frames and unframes PPP
// in L2TP data messages itself (DESIGN.md: no gRPC per packet). Control
// messages and PPP control frames go to the L2TP plugin through
// Config.OnL2TPControl. A session is found inbound by our tunnel and
// session ids and checked against the SA it came on; outbound by the
// client's address. That keeps several clients behind one NAT apart even
// though all of them send from port 1701 of one public address.
//
// A cleartext session (remote_access.allow_cleartext_l2tp) is plain L2TP
// on our UDP port 1701 socket: it is found the same way, and its packets
// must come from its peer's address and port outside IPsec. A session never
// takes packets from the other kind of transport, so a spoofed cleartext
// datagram cannot feed an IPsec session.

// L2TPSession is one installed session.
type L2TPSession struct {
	Handle uint64
	// Local and Peer are the outer endpoints of the IPsec SA (the peer's
	// NAT-T port included), or for a cleartext session the L2TP
	// endpoints: what the session's packets must come from.
	Local, Peer netip.AddrPort
	// Clear: L2TP without IPsec, on the L2TP socket (Config.L2TPClear);
	// OutKey is unused.
	Clear bool
	// L2TPPort is the peer's L2TP port inside IPsec (1701 as a rule).
	L2TPPort                         uint16
	LocalTunnel, LocalSession        uint16
	PeerTunnel, PeerSession          uint16
	Client                           netip.Addr // the client's address (our peer's inner address)
	User                             string
	MRU                              uint16
	SendSeq                          bool
	Magic                            uint32 // our LCP Magic-Number, for Echo-Replies
	Since                            time.Time
	OutKey                           sad.OutKey // the transport SA to the peer
	LAC                              bool       // our end is the client: every TUN packet goes here
	ns                               atomic.Uint32
	bytesIn, bytesOut, pktIn, pktOut atomic.Uint64
	lastIn                           atomic.Int64  // unix seconds of the last packet from the client
	echoes                           atomic.Uint64 // LCP Echo-Requests the core answered
}

// L2TPCounters are a session's totals.
type L2TPCounters struct {
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
	LastIn                                   time.Time
	Echoes                                   uint64 // LCP Echo-Requests the core answered
}

// Counters snapshots the session's counters.
func (s *L2TPSession) Counters() L2TPCounters {
	return L2TPCounters{BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), PacketsIn: s.pktIn.Load(),
		PacketsOut: s.pktOut.Load(), LastIn: time.Unix(s.lastIn.Load(), 0), Echoes: s.echoes.Load()}
}

// L2TPTable holds the sessions. Lookups take a read lock and allocate
// nothing.
type L2TPTable struct {
	// Pool is the clients' address range: packets to an address in it
	// that no session holds are dropped, not sent in clear.
	Pool netip.Prefix

	mu       sync.RWMutex
	byID     map[uint32]*L2TPSession // our tunnel id << 16 | our session id
	byClient map[netip.Addr]*L2TPSession
	byHandle map[uint64]*L2TPSession
	lac      *L2TPSession
	next     uint64
}

// Errors of Add.
var (
	ErrSessionExists = errors.New("session exists")
	ErrAddressInUse  = errors.New("client address belongs to another session")
)

// NewL2TPTable makes an empty table.
func NewL2TPTable() *L2TPTable {
	return &L2TPTable{byID: map[uint32]*L2TPSession{}, byClient: map[netip.Addr]*L2TPSession{}, byHandle: map[uint64]*L2TPSession{}}
}

func sessionKey(tunnel, session uint16) uint32 { return uint32(tunnel)<<16 | uint32(session) }

// Add installs s and gives it a handle.
func (t *L2TPTable) Add(s *L2TPSession) (uint64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := sessionKey(s.LocalTunnel, s.LocalSession)
	if t.byID[k] != nil {
		return 0, fmt.Errorf("%w: tunnel %d session %d", ErrSessionExists, s.LocalTunnel, s.LocalSession)
	}
	if !s.LAC {
		if o := t.byClient[s.Client]; o != nil {
			return 0, fmt.Errorf("%w: %v (user %s)", ErrAddressInUse, s.Client, o.User)
		}
	}
	if s.L2TPPort == 0 {
		s.L2TPPort = l2tp.Port
	}
	if s.Since.IsZero() {
		s.Since = time.Now()
	}
	s.lastIn.Store(s.Since.Unix())
	t.next++
	s.Handle = t.next
	t.byID[k] = s
	t.byHandle[s.Handle] = s
	if s.LAC {
		t.lac = s
	} else {
		t.byClient[s.Client] = s
	}
	return s.Handle, nil
}

// Remove uninstalls a session and returns it.
func (t *L2TPTable) Remove(handle uint64) (*L2TPSession, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.byHandle[handle]
	if s == nil {
		return nil, false
	}
	delete(t.byHandle, handle)
	delete(t.byID, sessionKey(s.LocalTunnel, s.LocalSession))
	if t.lac == s {
		t.lac = nil
	} else if t.byClient[s.Client] == s {
		delete(t.byClient, s.Client)
	}
	return s, true
}

// Get is the session with a handle, or nil.
func (t *L2TPTable) Get(handle uint64) *L2TPSession {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byHandle[handle]
}

// All returns every session.
func (t *L2TPTable) All() []*L2TPSession {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*L2TPSession, 0, len(t.byHandle))
	for _, s := range t.byHandle {
		out = append(out, s)
	}
	return out
}

// Len is the number of sessions.
func (t *L2TPTable) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byHandle)
}

func (t *L2TPTable) byIDs(tunnel, session uint16) *L2TPSession {
	t.mu.RLock()
	s := t.byID[sessionKey(tunnel, session)]
	t.mu.RUnlock()
	return s
}

func (t *L2TPTable) outbound(dst netip.Addr) *L2TPSession {
	t.mu.RLock()
	s := t.lac
	if s == nil {
		s = t.byClient[dst]
	}
	t.mu.RUnlock()
	return s
}

// L2TPControl is what the plane hands the L2TP plugin: an L2TP control
// message (Kind l2tp) or a PPP control frame from a data message (Kind
// ppp, with our tunnel and session ids from its header).
type L2TPControl struct {
	PPP         bool
	Local, Peer netip.AddrPort
	// SPI is the inbound SA's; 0 for cleartext L2TP (ESP never uses SPI
	// 0, RFC 4303 section 2.1).
	SPI             uint32
	Tunnel, Session uint16
	Payload         []byte // a copy: the plugin may keep it
	ClientL2TPPort  uint16 // the UDP source port inside IPsec
}

// udpHeaderLen and pppHeaderLen: what we put before an IPv4 packet.
const (
	udpHeaderLen = 8
	pppHeaderLen = 4 // FF 03 00 21: we never compress (RFC 1661 ACFC/PFC are the peer's choice)
	// l2tpOverhead is the most we prepend to an inner packet.
	l2tpOverhead = udpHeaderLen + 10 + pppHeaderLen
)

// l2tpFrom is where an L2TP message came from: an IPsec SA, or the
// cleartext socket (SPI 0).
type l2tpFrom struct {
	local, peer netip.AddrPort
	spi         uint32
	port        uint16 // the peer's L2TP port
	clear       bool
}

// l2tpInbound handles a decrypted UDP datagram for port 1701; udp starts
// at the UDP header and is a slice of buf.
func (p *Plane) l2tpInbound(sa *sad.InSA, buf, udp []byte, q *tunQueue) {
	from := l2tpFrom{local: sa.Local, peer: sa.Peer, spi: sa.ESP.SPI(), port: binary.BigEndian.Uint16(udp)}
	p.l2tpMessage(from, buf, udp[udpHeaderLen:], q)
}

// l2tpClearInbound handles a datagram from the cleartext L2TP socket,
// sent to our address local when the socket is bound to the wildcard.
func (p *Plane) l2tpClearInbound(buf, msg []byte, local netip.Addr, peer netip.AddrPort, q *tunQueue) {
	if p.cfg.L2TP == nil {
		p.drop(DropL2TPUnhandled)
		return
	}
	p.stats.clearL2TP.Add(1)
	to := p.cfg.L2TPClearLocal
	if local.IsValid() {
		to = netip.AddrPortFrom(local, to.Port())
	}
	p.l2tpMessage(l2tpFrom{local: to, peer: peer, port: peer.Port(), clear: true}, buf, msg, q)
}

// session finds the installed session a data message names and checks
// that it came the session's way.
func (p *Plane) session(h l2tp.Header, from l2tpFrom) *L2TPSession {
	s := p.cfg.L2TP.byIDs(h.TunnelID, h.SessionID)
	if s == nil {
		p.drop(DropL2TPNoSession)
		return nil
	}
	if s.Peer != from.peer || s.Clear != from.clear {
		p.drop(DropWrongPeer) // a session's packets come on its own SA (several clients behind one NAT)
		return nil
	}
	return s
}

// l2tpMessage handles one L2TP message, a slice of buf.
func (p *Plane) l2tpMessage(from l2tpFrom, buf, msg []byte, q *tunQueue) {
	h, payload, err := l2tp.ParseHeader(msg)
	if err != nil {
		p.drop(DropMalformed)
		return
	}
	if h.Control {
		p.toPlugin(L2TPControl{Local: from.local, Peer: from.peer, SPI: from.spi, Tunnel: h.TunnelID, Session: h.SessionID,
			Payload: msg, ClientL2TPPort: from.port})
		return
	}
	proto, frame, err := ppp.ParseFrame(payload)
	if err != nil {
		p.drop(DropMalformed)
		return
	}
	if proto >= 0x8000 {
		// PPP control (LCP, authentication, IPCP, CCP...): the plugin's,
		// but for an installed session's Echo-Requests, which the core
		// answers so that they are answered while the plugin restarts.
		if proto == ppp.ProtoLCP && len(frame) >= 8 && frame[0] == ppp.CodeEchoRequest {
			if s := p.cfg.L2TP.byIDs(h.TunnelID, h.SessionID); s != nil && s.Peer == from.peer && s.Clear == from.clear {
				p.echoReply(s, frame)
				return
			}
		}
		p.toPlugin(L2TPControl{PPP: true, Local: from.local, Peer: from.peer, SPI: from.spi, Tunnel: h.TunnelID, Session: h.SessionID,
			Payload: payload, ClientL2TPPort: from.port})
		return
	}
	s := p.session(h, from)
	if s == nil {
		return
	}
	if proto != ppp.ProtoIPv4 {
		p.drop(DropL2TPProtocol) // IPv6 over PPP is not negotiated (no IPV6CP)
		return
	}
	info, err := esp.ParseIP(frame)
	if err != nil || info.TotalLen > len(frame) {
		p.drop(DropMalformed)
		return
	}
	inner := frame[:info.TotalLen]
	// A client may only send from the address it was given; the LAC
	// end accepts what is addressed to it.
	if (!s.LAC && info.Src != s.Client) || (s.LAC && info.Dst != s.Client) {
		p.drop(DropL2TPSpoof)
		return
	}
	clampMSS(inner, info, s.MRU)
	s.pktIn.Add(1)
	s.bytesIn.Add(uint64(len(inner)))
	s.lastIn.Store(time.Now().Unix())
	p.toTUN(buf, inner, q)
}

// echoReply answers an LCP Echo-Request (RFC 1661 section 5.8): same
// identifier, our magic number, the data back. It takes the control path
// (one a session every echo interval).
func (p *Plane) echoReply(s *L2TPSession, req []byte) {
	n := int(binary.BigEndian.Uint16(req[2:]))
	if n < 8 || n > len(req) {
		p.drop(DropMalformed)
		return
	}
	msg := l2tp.AppendDataHeader(make([]byte, 0, 16+n), s.PeerTunnel, s.PeerSession, false, 0)
	msg = binary.BigEndian.AppendUint16(append(msg, 0xff, 0x03), ppp.ProtoLCP)
	msg = append(msg, ppp.CodeEchoReply, req[1])
	msg = binary.BigEndian.AppendUint16(msg, uint16(n))
	msg = binary.BigEndian.AppendUint32(msg, s.Magic)
	msg = append(msg, req[8:n]...)
	var err error
	if s.Clear {
		err = p.SendL2TPClear(s.Local, s.Peer, msg)
	} else {
		err = p.SendL2TP(s.OutKey, s.L2TPPort, msg)
	}
	if err != nil {
		p.drop(DropNoSA)
		return
	}
	s.echoes.Add(1)
}

func (p *Plane) toPlugin(c L2TPControl) {
	if p.cfg.OnL2TPControl == nil {
		p.drop(DropL2TPUnhandled)
		return
	}
	c.Payload = append([]byte(nil), c.Payload...)
	p.cfg.OnL2TPControl(c)
}

// l2tpOutbound frames an inner packet at buf[headroom:headroom+n] for s
// and sends it: sealed with the session's SA, or for a cleartext session
// as it is.
func (p *Plane) l2tpOutbound(buf []byte, info esp.IPInfo, s *L2TPSession) {
	var sa *sad.OutSA
	if !s.Clear {
		if sa = p.cfg.SAD.Outbound(s.OutKey); sa == nil || sa.ESP == nil || sa.Mode != sad.Transport {
			p.drop(DropNoSA)
			return
		}
	}
	clampMSS(buf[headroom:headroom+info.TotalLen], info, s.MRU)
	var ns uint16
	if s.SendSeq {
		ns = uint16(s.ns.Add(1) - 1)
	}
	// RFC 2661 section 3.1 data header, then PPP's address, control and
	// protocol fields.
	start := headroom - pppHeaderLen - l2tp.DataHeaderLen(s.SendSeq)
	l2tp.AppendDataHeader(buf[start:start], s.PeerTunnel, s.PeerSession, s.SendSeq, ns)
	copy(buf[headroom-pppHeaderLen:], []byte{0xff, 0x03, 0x00, 0x21})
	if s.Clear {
		s.pktOut.Add(1)
		s.bytesOut.Add(uint64(info.TotalLen))
		p.send(&p.txClear, buf[start:headroom+info.TotalLen], s.Local.Addr(), s.Peer)
		return
	}
	start -= udpHeaderLen
	payloadLen := headroom + info.TotalLen - start
	putUDPHeader(buf[start:], s.L2TPPort, payloadLen)
	espStart := start - sa.ESP.Headroom()
	if espStart < 0 {
		p.drop(DropInternal)
		return
	}
	p.clientSeal.Lock() // the control path seals on the same SAs (SendL2TP)
	out, err := sa.ESP.Seal(buf[espStart:espStart+sa.ESP.Headroom()+payloadLen], payloadLen, esp.ProtoUDP)
	p.clientSeal.Unlock()
	if err != nil {
		p.drop(DropSAExpired)
		return
	}
	s.pktOut.Add(1)
	s.bytesOut.Add(uint64(info.TotalLen))
	p.sendESP(sa, out)
}

// putUDPHeader writes the header of an L2TP datagram of n bytes from our
// port 1701. No checksum: IPv4 allows it, and ESP's ICV covers the
// datagram.
func putUDPHeader(b []byte, dstPort uint16, n int) {
	binary.BigEndian.PutUint16(b[0:], l2tp.Port)
	binary.BigEndian.PutUint16(b[2:], dstPort)
	binary.BigEndian.PutUint16(b[4:], uint16(n))
	binary.BigEndian.PutUint16(b[6:], 0)
}

// clampMSS lowers the MSS option of a TCP SYN to fit the session's MRU
// (inner IPv4 and TCP headers of 40 bytes), fixing the checksum
// incrementally (RFC 1624), so that TCP never needs fragments through
// the tunnel.
func clampMSS(pkt []byte, info esp.IPInfo, mru uint16) {
	if info.Proto != 6 || mru == 0 || info.TotalLen < info.HeaderLen+20 {
		return
	}
	tcp := pkt[info.HeaderLen:info.TotalLen]
	if tcp[13]&0x02 == 0 { // not a SYN
		return
	}
	dataOff := int(tcp[12]>>4) * 4
	if dataOff < 20 || dataOff > len(tcp) {
		return
	}
	limit := mru - 40
	opts := tcp[20:dataOff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0:
			return
		case 1:
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return
		}
		if opts[i] == 2 && opts[i+1] == 4 {
			old := binary.BigEndian.Uint16(opts[i+2:])
			if old > limit {
				binary.BigEndian.PutUint16(opts[i+2:], limit)
				// HC' = ~(~HC + ~m + m') (RFC 1624 equation 3)
				sum := uint32(^binary.BigEndian.Uint16(tcp[16:])) + uint32(^old) + uint32(limit)
				sum = (sum & 0xffff) + (sum >> 16)
				sum = (sum & 0xffff) + (sum >> 16)
				binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
			}
			return
		}
		i += int(opts[i+1])
	}
}

// ErrNoL2TPSA is a control message for a peer with no transport SA.
var ErrNoL2TPSA = errors.New("no transport SA to the L2TP peer")

// SendL2TP sends one L2TP message (control, or a data message carrying a
// PPP control frame) to a peer through its transport SA. It is the
// control path: it allocates, and it writes straight to the socket.
func (p *Plane) SendL2TP(key sad.OutKey, dstPort uint16, msg []byte) error {
	sa := p.cfg.SAD.Outbound(key)
	if sa == nil || sa.ESP == nil || sa.Mode != sad.Transport {
		return fmt.Errorf("%w: %v", ErrNoL2TPSA, key.Peer)
	}
	udp := make([]byte, udpHeaderLen+len(msg))
	putUDPHeader(udp, dstPort, len(udp))
	copy(udp[udpHeaderLen:], msg)
	return p.sealAndSend(sa, udp, esp.ProtoUDP)
}

// ErrNoClientSA is a packet for an address no IKEv2 road warrior holds.
var ErrNoClientSA = errors.New("no SA to the road warrior")

// SendToClient sends one IP packet to an IKEv2 road warrior through its
// tunnel-mode SA (a DHCP answer). It is the control path: it allocates,
// and it writes straight to the socket.
func (p *Plane) SendToClient(addr netip.Addr, pkt []byte) error {
	if p.cfg.ClientRule == "" {
		return fmt.Errorf("%w: %v (no road warriors)", ErrNoClientSA, addr)
	}
	sa := p.cfg.SAD.Outbound(sad.OutKey{Rule: p.cfg.ClientRule, Peer: addr})
	if sa == nil || sa.ESP == nil || sa.Mode != sad.Tunnel {
		return fmt.Errorf("%w: %v", ErrNoClientSA, addr)
	}
	return p.sealAndSend(sa, pkt, esp.ProtoIPv4)
}

// sealAndSend seals payload with a remote-access SA and writes it to the
// SA's peer (the control path's send).
func (p *Plane) sealAndSend(sa *sad.OutSA, payload []byte, nh uint8) error {
	h := sa.ESP.Headroom()
	buf := make([]byte, h+len(payload)+64)
	copy(buf[h:], payload)
	p.clientSeal.Lock()
	out, err := sa.ESP.Seal(buf[:h+len(payload)], len(payload), nh)
	p.clientSeal.Unlock()
	if err != nil {
		return err
	}
	udp, raw := p.cfg.UDP, p.cfg.Raw
	if sa.Peer.Addr().Is6() {
		udp, raw = p.cfg.UDP6, p.cfg.Raw6
	}
	switch {
	case sa.UDPEncap && udp != nil:
		err = WriteFrom(udp, out, sa.Local.Addr(), sa.Peer)
	case !sa.UDPEncap && raw != nil:
		err = WriteFrom(raw, out, sa.Local.Addr(), netip.AddrPortFrom(sa.Peer.Addr(), 0))
	default:
		err = fmt.Errorf("no outer socket for %v", sa.Peer)
	}
	if err == nil {
		p.stats.sent.Add(1)
	}
	return err
}

// ErrNoClearL2TP is a cleartext L2TP message with no cleartext socket.
var ErrNoClearL2TP = errors.New("cleartext L2TP is not enabled")

// SendL2TPClear sends one L2TP message to a peer without IPsec, from our
// endpoint `from` on the cleartext L2TP socket. It is the control path.
func (p *Plane) SendL2TPClear(from, to netip.AddrPort, msg []byte) error {
	if p.cfg.L2TPClear == nil {
		return fmt.Errorf("%w: not sent to %v", ErrNoClearL2TP, to)
	}
	if err := WriteFrom(p.cfg.L2TPClear, msg, from.Addr(), to); err != nil {
		return err
	}
	p.stats.sent.Add(1)
	return nil
}
