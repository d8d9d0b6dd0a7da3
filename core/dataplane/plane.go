// Package dataplane moves packets between the TUN device and the outer
// sockets: SPD lookup, ESP in tunnel and transport mode, raw or UDP
// encapsulated (RFC 3948), inbound selector checks, and a counted reason
// for every drop. It owns no keys; SAs come from core/sad.
package dataplane

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/core/policy"
	"github.com/gatehouse/gatehouse/core/sad"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/l2tp"
)

// Device is the inner side: a TUN device carrying IP packets, in batches.
type Device interface {
	// Read reads one or more packets: packet i lands at
	// bufs[i][offset:offset+sizes[i]]. A TUN with offloads may return a
	// whole TCP super-packet cut into segments.
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	// Write writes the packet buf[off:off+n]. buf[:off] is free: a device
	// may put its own header there (off is at least DeviceHeadroom).
	Write(buf []byte, off, n int) error
	Close() error
}

// DeviceHeadroom is the free space callers leave before a packet they
// write, for a device header (virtio-net's is the largest).
const DeviceHeadroom = VirtioNetHdrLen

// batchSize is how many packets one TUN read may return: a 64 KiB TSO
// super-packet at the smallest MSS we accept (536) is 123 segments.
const batchSize = 128

// rxBatch is how many datagrams one read of an outer socket may return.
const rxBatch = 32

// rxSlot is the size of a receive slot: the largest IPv4 datagram.
const rxSlot = 65535

// Conn is an outer socket. A raw ESP socket reads and writes ESP without
// the IP header and uses port 0; the UDP socket carries RFC 3948 datagrams;
// the clear socket writes whole IP packets (IP_HDRINCL).
type Conn interface {
	// ReadFrom reads one datagram into b and returns the part of b that
	// holds the payload (a raw socket skips the IP header in place rather
	// than copying the payload down).
	ReadFrom(b []byte) ([]byte, netip.AddrPort, error)
	WriteTo(b []byte, to netip.AddrPort) error
	Close() error
}

// Acquire asks IKE for an SA (RFC 4301 section 5.2's "acquire").
type Acquire struct {
	Rule     *policy.Rule
	Peer     netip.Addr
	Src, Dst netip.Addr
	// Local and Remote are the subnet pair the packet matched, for a
	// rule with an SA pair per filter (policy.Rule.PerPair).
	Local, Remote netip.Prefix
}

// Config wires a Plane.
type Config struct {
	Log   *zap.Logger
	TUN   Device
	Raw   Conn // ESP, IP protocol 50
	UDP   Conn // ESP in UDP on port 4500; may be nil
	Clear Conn // permitted cleartext and AH written out whole; may be nil
	AH    Conn // IP protocol 51, read with the IP header; may be nil
	SAD   *sad.DB
	// OnAcquire is called when a packet needs an SA that does not exist,
	// at most once a second per rule, peer and subnet pair. It must not
	// block.
	OnAcquire func(Acquire)
	// OnIKE receives IKE messages that arrived on port 4500 (marker
	// removed), with our address they were sent to when the socket is
	// bound to the wildcard address (unset otherwise). Nil: they are
	// counted and dropped.
	OnIKE func(msg []byte, local netip.Addr, from netip.AddrPort)
	MTU   int
	// L2TP holds the remote-access sessions (nil: none); OnL2TPControl
	// receives their control traffic. It must not block.
	L2TP          *L2TPTable
	OnL2TPControl func(L2TPControl)
	// L2TPClear is the UDP port 1701 socket for L2TP without IPsec
	// (remote_access.allow_cleartext_l2tp); nil: none is read or sent.
	// L2TPClearLocal is the address it is bound to.
	L2TPClear      Conn
	L2TPClearLocal netip.AddrPort
	// ClientRule, with L2TP, names the outbound SAs of IKEv2 road
	// warriors, keyed by their virtual addresses (OutKey{Rule:
	// ClientRule, Peer: address}); "": none.
	ClientRule string
	// OnDHCP receives the UDP payload of a packet a tunnel carried to
	// 255.255.255.255 port 67 (Windows's DHCPINFORM for its split-tunnel
	// routes), valid during the call, with the sender's address; it
	// reports whether it answered (else the packet counts as a drop).
	// Nil: every such packet is dropped. It must not block.
	OnDHCP func(client netip.Addr, msg []byte) bool
	// Raw6 and UDP6 are the outer sockets for IPv6 peers (raw ESP, UDP
	// 4500); nil: none.
	Raw6, UDP6 Conn
}

// headroom leaves space before a packet for ESP's header and IV, and in
// transport mode for the IPv4 header that is rebuilt after decryption.
const headroom = 64

// Plane is a running data path.
type Plane struct {
	cfg    Config
	policy atomic.Pointer[policy.Policy]
	drops  [numDrops]atomic.Uint64
	stats  struct {
		sent, received, clear, keepalives atomic.Uint64
		clearL2TP                         atomic.Uint64 // datagrams read from the cleartext L2TP socket
		tunReads, tunPackets              atomic.Uint64 // reads of the TUN, and the packets they gave
		tunWrites, tunWritten             atomic.Uint64 // writes to the TUN, and the packets they carried
	}

	ipID atomic.Uint32 // IPv4 IDs of the AH packets we build

	sendErrors  atomic.Uint64
	lastSendLog atomic.Int64

	acqMu   sync.Mutex
	acqLast map[sad.OutKey]time.Time

	// Sealed packets waiting for the end of a TUN read's batch; touched
	// only by the TUN routine.
	txRaw, txUDP, txClear txQueue
	txRaw6, txUDP6        txQueue

	// clientSeal serialises sealing on remote-access SAs between the TUN
	// routine and the control path (SendL2TP, SendToClient): Seal is not
	// concurrent.
	clientSeal sync.Mutex

	wg     sync.WaitGroup
	closed atomic.Bool
}

// New makes a plane; Start runs it.
func New(cfg Config, pol *policy.Policy) *Plane {
	if cfg.MTU == 0 {
		cfg.MTU = 1400
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	p := &Plane{cfg: cfg, acqLast: map[sad.OutKey]time.Time{}}
	p.txRaw.init(cfg.Raw)
	p.txUDP.init(cfg.UDP)
	p.txRaw6.init(cfg.Raw6)
	p.txUDP6.init(cfg.UDP6)
	p.txClear.init(cfg.L2TPClear)
	p.policy.Store(pol)
	return p
}

// txQueue gathers the packets for one outer socket so that a batch goes
// out in one system call when the socket can (BatchConn).
type txQueue struct {
	conn  Conn
	batch BatchConn
	msgs  []Msg
}

func (q *txQueue) init(c Conn) {
	q.conn = c
	if bc, ok := c.(BatchConn); ok {
		q.batch, q.msgs = bc, make([]Msg, 0, batchSize)
	}
}

// send sends out from our address src (the SA's: a peer drops ESP from
// another address than the one it dialled) now, or queues it until flush.
func (p *Plane) send(q *txQueue, out []byte, src netip.Addr, to netip.AddrPort) {
	switch {
	case q.conn == nil:
		p.drop(DropSendFailed)
	case q.batch != nil:
		q.msgs = append(q.msgs, Msg{Buf: out, Addr: to, Src: src})
	case WriteFrom(q.conn, out, src, to) != nil:
		p.drop(DropSendFailed)
	default:
		p.stats.sent.Add(1)
	}
}

func (p *Plane) flush(q *txQueue) {
	if len(q.msgs) == 0 {
		return
	}
	n, err := q.batch.WriteBatch(q.msgs)
	p.stats.sent.Add(uint64(n))
	if failed := len(q.msgs) - n; failed > 0 {
		p.drops[DropSendFailed].Add(uint64(failed))
		if !p.closed.Load() {
			p.sendErrors.Add(1)
			p.logSendError(err)
		}
	}
	clear(q.msgs) // do not pin the buffers
	q.msgs = q.msgs[:0]
}

// logSendError logs a failed batch send at most once a minute: the drops
// are counted anyway, and a dead route must not flood the log.
func (p *Plane) logSendError(err error) {
	now := time.Now().UnixNano()
	last := p.lastSendLog.Load()
	if now-last < int64(time.Minute) || !p.lastSendLog.CompareAndSwap(last, now) {
		return
	}
	p.cfg.Log.Warn("outer socket refused packets (counted as send-failed)", zap.Error(err), zap.Uint64("batches_so_far", p.sendErrors.Load()))
}

// tunQueue gathers decrypted packets for one TUN write batch; each inbound
// routine has its own.
type tunQueue struct {
	dev  BatchDevice
	pkts []Packet
}

func (p *Plane) flushTUN(q *tunQueue) {
	if len(q.pkts) == 0 {
		return
	}
	n, calls, _ := q.dev.WriteBatch(q.pkts)
	p.stats.received.Add(uint64(n))
	p.stats.tunWrites.Add(uint64(calls))
	p.stats.tunWritten.Add(uint64(n))
	if failed := len(q.pkts) - n; failed > 0 {
		p.drops[DropSendFailed].Add(uint64(failed))
	}
	clear(q.pkts)
	q.pkts = q.pkts[:0]
}

// SetPolicy swaps the policy (on reload).
func (p *Plane) SetPolicy(pol *policy.Policy) { p.policy.Store(pol) }

// Start launches the fixed set of routines: one reading the TUN device and
// one per outer socket. Each SA is only ever sealed by the TUN routine and
// opened by the routine of its own encapsulation, so per-SA state needs no
// lock and per-SA order is kept.
func (p *Plane) Start() {
	p.wg.Add(1)
	go p.routineTUN()
	for _, r := range []struct {
		c      Conn
		name   string
		handle inboundFunc
	}{
		{p.cfg.Raw, "esp", p.inboundRaw},
		{p.cfg.UDP, "udp-4500", p.inboundUDP},
		{p.cfg.Raw6, "esp-ipv6", p.inboundRaw},
		{p.cfg.UDP6, "udp-4500-ipv6", p.inboundUDP},
		{p.cfg.L2TPClear, "l2tp-cleartext", p.l2tpClearInbound},
	} {
		if r.c != nil {
			p.wg.Add(1)
			go p.routineInbound(r.c, r.name, r.handle)
		}
	}
	if p.cfg.AH != nil {
		p.wg.Add(1)
		go p.routineAH()
	}
}

// Close stops the routines by closing the device and sockets.
func (p *Plane) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.cfg.TUN.Close()
	for _, c := range []Conn{p.cfg.Raw, p.cfg.UDP, p.cfg.Clear, p.cfg.AH, p.cfg.L2TPClear, p.cfg.Raw6, p.cfg.UDP6} {
		if c != nil {
			c.Close()
		}
	}
	p.wg.Wait()
}

func (p *Plane) drop(r DropReason) { p.drops[r].Add(1) }

// ports are a TCP or UDP packet's; a fragment past the first has none
// (RFC 4301 section 4.4.1.1 calls them OPAQUE).
func ports(pkt []byte, info esp.IPInfo) (uint16, uint16) {
	seg, proto := pkt[info.HeaderLen:info.TotalLen], info.Proto
	if (proto == esp.ProtoTCP || proto == esp.ProtoUDP) && len(seg) >= 4 && !info.Fragment {
		return uint16(seg[0])<<8 | uint16(seg[1]), uint16(seg[2])<<8 | uint16(seg[3])
	}
	return 0, 0
}

func (p *Plane) routineTUN() {
	defer p.wg.Done()
	// Each buffer fits an MTU packet, or a TSO segment of up to 1500 bytes,
	// with headroom before and ESP tailroom after.
	size := headroom + max(p.cfg.MTU, 1500) + 256
	bufs := make([][]byte, batchSize)
	views := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, size)
		views[i] = bufs[i][:headroom+max(p.cfg.MTU, 1500)+64]
	}
	sizes := make([]int, batchSize)
	for {
		n, err := p.cfg.TUN.Read(views, sizes, headroom)
		if err != nil {
			if errors.Is(err, ErrGSO) {
				p.drop(DropMalformed) // a super-packet we could not cut up
				continue
			}
			if !p.closed.Load() {
				p.cfg.Log.Error("TUN read failed; outbound path stopped", zap.Error(err))
			}
			return
		}
		p.stats.tunReads.Add(1)
		p.stats.tunPackets.Add(uint64(n))
		for i := 0; i < n; i++ {
			buf, size := bufs[i], sizes[i]
			p.guard(func() { p.outbound(buf, size) })
		}
		p.flush(&p.txRaw)
		p.flush(&p.txUDP)
		p.flush(&p.txClear)
	}
}

// guard runs one packet's processing; a panic is a bug, but it costs one
// counted packet, never the core.
func (p *Plane) guard(f func()) {
	defer func() {
		if r := recover(); r != nil {
			p.drop(DropInternal)
			p.cfg.Log.Error("data path bug: packet dropped", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	f()
}

// outbound handles one packet at buf[headroom:headroom+n].
func (p *Plane) outbound(buf []byte, n int) {
	pkt := buf[headroom : headroom+n]
	info, err := esp.ParseIP(pkt)
	if err != nil {
		p.drop(DropMalformed)
		return
	}
	if info.Dst.IsMulticast() || info.Dst.IsLinkLocalUnicast() || info.Src.IsLinkLocalUnicast() {
		p.drop(DropLinkLocal) // router solicitations, MLD: nothing to tunnel
		return
	}
	if p.cfg.L2TP != nil {
		if s := p.cfg.L2TP.outbound(info.Dst); s != nil {
			p.l2tpOutbound(buf, info, s)
			return
		}
		if p.cfg.ClientRule != "" {
			// An IKEv2 road warrior's virtual address: its own SA.
			if sa := p.cfg.SAD.Outbound(sad.OutKey{Rule: p.cfg.ClientRule, Peer: info.Dst}); sa != nil && sa.ESP != nil {
				p.clientSeal.Lock() // the DHCP answers seal on it too (SendToClient)
				p.sealOn(buf, info, sa)
				p.clientSeal.Unlock()
				return
			}
		}
		if p.cfg.L2TP.Pool.Contains(info.Dst) {
			p.drop(DropL2TPNoSession) // a pool address no client holds: never out in clear
			return
		}
	}
	pol := p.policy.Load()
	sport, dport := ports(pkt, info)
	d := pol.Lookup(policy.Outbound, policy.Packet{Src: info.Src, Dst: info.Dst, Proto: info.Proto,
		SrcPort: sport, DstPort: dport, Local: pol.IsLocal(info.Src)})
	switch d.Action {
	case policy.Block:
		p.drop(DropPolicyBlock)
		return
	case policy.Permit:
		if p.cfg.Clear == nil {
			p.drop(DropNoClearPath)
			return
		}
		if p.cfg.Clear.WriteTo(pkt[:info.TotalLen], netip.AddrPortFrom(info.Dst, 0)) != nil {
			p.drop(DropSendFailed)
			return
		}
		p.stats.clear.Add(1)
		return
	}
	rule := d.Entry.Rule
	peer := info.Dst
	if rule.IsTunnel() {
		peer = rule.Tunnel
	}
	key := sad.OutKey{Rule: rule.Name, Peer: peer}
	if rule.PerPair {
		key.Pair = d.Entry.Pair
	}
	sa := p.cfg.SAD.Outbound(key)
	if sa == nil || (sa.ESP == nil && sa.AH == nil) {
		p.drop(DropNoSA)
		p.acquire(key, d.Entry, info)
		return
	}
	if sa.AH != nil {
		p.outboundAH(buf, info, sa)
		return
	}
	p.sealOn(buf, info, sa)
}

// sealOn seals the packet at buf[headroom:] with an ESP SA and sends it.
func (p *Plane) sealOn(buf []byte, info esp.IPInfo, sa *sad.OutSA) {
	var start, payloadLen int
	var nh uint8
	if sa.Mode == sad.Tunnel {
		nh = esp.ProtoIPv4
		if info.Src.Is6() {
			nh = esp.ProtoIPv6
		}
		start, payloadLen = headroom-sa.ESP.Headroom(), info.TotalLen
	} else {
		if info.Src.Is6() && info.HeaderLen != esp.IPv6HeaderLen {
			// ESP would go between the extension headers (RFC 4303
			// section 3.1.1), which the raw socket cannot send: not built.
			p.drop(DropMalformed)
			return
		}
		nh = info.Proto
		start, payloadLen = headroom+info.HeaderLen-sa.ESP.Headroom(), info.TotalLen-info.HeaderLen
	}
	out, err := sa.ESP.Seal(buf[start:start+sa.ESP.Headroom()+payloadLen], payloadLen, nh)
	if err != nil {
		p.drop(DropSAExpired)
		return
	}
	p.sendESP(sa, out)
}

// sendESP sends a sealed packet to the SA's peer, from the SA's address.
func (p *Plane) sendESP(sa *sad.OutSA, out []byte) {
	v6 := sa.Peer.Addr().Is6()
	switch {
	case sa.UDPEncap && v6:
		p.send(&p.txUDP6, out, sa.Local.Addr(), sa.Peer)
	case sa.UDPEncap:
		p.send(&p.txUDP, out, sa.Local.Addr(), sa.Peer)
	case v6:
		p.send(&p.txRaw6, out, sa.Local.Addr(), netip.AddrPortFrom(sa.Peer.Addr(), 0))
	default:
		p.send(&p.txRaw, out, sa.Local.Addr(), netip.AddrPortFrom(sa.Peer.Addr(), 0))
	}
}

func (p *Plane) acquire(key sad.OutKey, e *policy.Entry, info esp.IPInfo) {
	if p.cfg.OnAcquire == nil {
		return
	}
	now := time.Now()
	p.acqMu.Lock()
	last := p.acqLast[key]
	fire := now.Sub(last) >= time.Second
	if fire {
		p.acqLast[key] = now
	}
	p.acqMu.Unlock()
	if fire {
		a := Acquire{Rule: e.Rule, Peer: key.Peer, Src: info.Src, Dst: info.Dst}
		if e.Rule.PerPair {
			a.Local, a.Remote = e.Src.Prefix, e.Dst.Prefix
		}
		p.cfg.OnAcquire(a)
	}
}

// inboundFunc handles one datagram read from an outer socket: data is a
// slice of buf at or after headroom; local is our address it was sent to,
// when the socket reports it (Msg.Src).
type inboundFunc func(buf, data []byte, local netip.Addr, from netip.AddrPort, q *tunQueue)

func (p *Plane) inboundRaw(buf, data []byte, _ netip.Addr, from netip.AddrPort, q *tunQueue) {
	p.inbound(buf, data, netip.Addr{}, from, false, q)
}

func (p *Plane) inboundUDP(buf, data []byte, local netip.Addr, from netip.AddrPort, q *tunQueue) {
	p.inbound(buf, data, local, from, true, q)
}

func (p *Plane) routineInbound(c Conn, name string, handle inboundFunc) {
	defer p.wg.Done()
	var q *tunQueue
	if d, ok := p.cfg.TUN.(BatchDevice); ok {
		q = &tunQueue{dev: d, pkts: make([]Packet, 0, rxBatch)}
	}
	bc, ok := c.(BatchConn)
	if !ok {
		// A socket bound to one address says which (IKE on 4500 is
		// answered from it).
		var local netip.Addr
		if lc, ok := c.(interface{ Local() netip.Addr }); ok {
			local = lc.Local()
		}
		buf := make([]byte, headroom+rxSlot)
		for {
			data, from, err := c.ReadFrom(buf[headroom:])
			if err != nil {
				p.readFailed(name, err)
				return
			}
			p.guard(func() { handle(buf, data, local, from, nil) })
		}
	}
	slots := make([][]byte, rxBatch)
	for i := range slots {
		slots[i] = make([]byte, headroom+rxSlot)
	}
	msgs := make([]Msg, rxBatch)
	for {
		for i := range msgs {
			msgs[i].Buf = slots[i][headroom:]
		}
		n, err := bc.ReadBatch(msgs)
		if err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) {
				p.drop(DropMalformed) // e.g. a queued ICMP error; the socket goes on
				continue
			}
			p.readFailed(name, err)
			return
		}
		for i := 0; i < n; i++ {
			buf, m := slots[i], msgs[i]
			p.guard(func() { handle(buf, m.Buf, m.Src, m.Addr, q) })
		}
		if q != nil {
			p.flushTUN(q)
		}
	}
}

func (p *Plane) readFailed(socket string, err error) {
	if !p.closed.Load() {
		p.cfg.Log.Error("socket read failed; inbound path stopped", zap.String("socket", socket), zap.Error(err))
	}
}

// outboundAH protects the packet at buf[headroom:] with AH (RFC 4302) and
// sends it whole: the ICV covers the outer header, ID included, so the
// kernel must not fill any of it in.
func (p *Plane) outboundAH(buf []byte, info esp.IPInfo, sa *sad.OutSA) {
	l := sa.AH.Len()
	var pkt []byte
	var err error
	if sa.Mode == sad.Tunnel {
		start := headroom - esp.IPv4HeaderLen - l
		id := uint16(p.ipID.Add(1)) | 1 // never 0: the kernel would fill in 0
		pkt, err = sa.AH.ProtectTunnel(buf[start:], info.TotalLen, sa.Local.Addr(), sa.Peer.Addr(), 64, id)
	} else {
		pkt, err = sa.AH.ProtectTransport(buf[headroom-l : headroom+info.TotalLen])
	}
	if err != nil {
		p.drop(DropSAExpired)
		return
	}
	if p.cfg.Clear == nil || p.cfg.Clear.WriteTo(pkt, netip.AddrPortFrom(sa.Peer.Addr(), 0)) != nil {
		p.drop(DropSendFailed)
		return
	}
	p.stats.sent.Add(1)
}

func (p *Plane) routineAH() {
	defer p.wg.Done()
	buf := make([]byte, 65535)
	for {
		data, from, err := p.cfg.AH.ReadFrom(buf)
		if err != nil {
			if !p.closed.Load() {
				p.cfg.Log.Error("AH socket read failed; AH inbound path stopped", zap.Error(err))
			}
			return
		}
		p.guard(func() { p.inboundAH(buf, data, from) })
	}
}

// inboundAH verifies a whole IPv4 AH packet and delivers what it carried.
func (p *Plane) inboundAH(buf, pkt []byte, from netip.AddrPort) {
	info, err := esp.ParseIP(pkt)
	if err != nil || len(pkt) < info.HeaderLen+12 {
		p.drop(DropMalformed)
		return
	}
	spi := binary.BigEndian.Uint32(pkt[info.HeaderLen+4:]) // RFC 4302 section 2
	sa := p.cfg.SAD.Inbound(spi)
	if sa == nil || sa.AH == nil {
		p.drop(DropUnknownSPI)
		return
	}
	if sa.Peer.Addr() != from.Addr().Unmap() {
		p.drop(DropWrongPeer)
		return
	}
	inner, _, err := sa.AH.Verify(pkt)
	if err != nil {
		p.dropErr(err)
		return
	}
	p.deliver(sa, buf, inner, nil)
}

// dropErr counts a packet that esp refused, by the reason it gave.
func (p *Plane) dropErr(err error) {
	for _, m := range dropFor {
		if errors.Is(err, m.err) {
			p.drop(m.reason)
			return
		}
	}
	p.drop(DropMalformed)
}

var dropFor = []struct {
	err    error
	reason DropReason
}{
	{esp.ErrReplay, DropReplay}, {esp.ErrAuth, DropAuth}, {esp.ErrTruncated, DropMalformed},
	{esp.ErrMisaligned, DropMalformed}, {esp.ErrPadding, DropMalformed}, {esp.ErrDummy, DropDummy},
	{esp.ErrExpired, DropSAExpired}, {esp.ErrSPIMismatch, DropUnknownSPI},
	{esp.ErrNotAH, DropMalformed}, {esp.ErrIPv4Options, DropMalformed},
}

// inbound handles one datagram; data is a slice of buf at or after
// headroom, so transport mode can rebuild the IP header in front of it.
func (p *Plane) inbound(buf, data []byte, local netip.Addr, from netip.AddrPort, encap bool, q *tunQueue) {
	if encap {
		kind, rest := esp.ClassifyUDP(data)
		switch kind {
		case esp.UDPKeepalive:
			p.stats.keepalives.Add(1)
			return
		case esp.UDPIKE:
			if p.cfg.OnIKE == nil {
				p.drop(DropIKEUnhandled)
				return
			}
			p.cfg.OnIKE(rest, local, from)
			return
		case esp.UDPInvalid:
			p.drop(DropMalformed)
			return
		}
	}
	spi, ok := esp.PeekSPI(data)
	if !ok {
		p.drop(DropMalformed)
		return
	}
	sa := p.cfg.SAD.Inbound(spi)
	if sa == nil || sa.ESP == nil {
		p.drop(DropUnknownSPI)
		return
	}
	// An SA is opened only by the routine of its own encapsulation (RFC
	// 3948 section 3.1), and only from its peer.
	if sa.UDPEncap != encap || sa.Peer.Addr() != from.Addr().Unmap() {
		p.drop(DropWrongPeer)
		return
	}
	payload, nh, err := sa.ESP.Open(data)
	if err != nil {
		p.dropErr(err)
		return
	}
	off := cap(buf) - cap(payload) // payload's offset in buf
	var inner []byte
	if sa.Mode == sad.Tunnel {
		if nh != esp.ProtoIPv4 && nh != esp.ProtoIPv6 {
			p.drop(DropSelector)
			return
		}
		inner = payload
	} else {
		if from.Addr().Is6() {
			// Transport mode over IPv6: the fixed header again, with
			// the payload's own protocol (RFC 4303 section 3.1.1). No
			// NAT stands between IPv6 peers.
			inner = buf[off-esp.IPv6HeaderLen : off+len(payload)]
			esp.PutIPv6Header(inner, from.Addr(), sa.Local.Addr(), nh, 64, len(payload))
			p.deliver(sa, buf, inner, q)
			return
		}
		if nh == esp.ProtoUDP && p.cfg.L2TP != nil && len(payload) >= udpHeaderLen && binary.BigEndian.Uint16(payload[2:]) == l2tp.Port {
			p.l2tpInbound(sa, buf, payload, q)
			return
		}
		inner = buf[off-esp.IPv4HeaderLen : off+len(payload)]
		src, dst := from.Addr().Unmap(), sa.Local.Addr()
		esp.PutIPv4Header(inner, src, dst, nh, 64, 0, len(payload))
		if sa.NATOA.IsValid() {
			esp.FixTransportChecksum(nh, payload, sa.NATOA, dst, src, dst)
		}
	}
	p.deliver(sa, buf, inner, q)
}

// deliver checks a decapsulated packet against the SA's selectors (RFC 4301
// section 5.2) and writes it to the TUN. inner is a slice of buf, with at
// least DeviceHeadroom bytes of buf before it. With a queue the write waits
// for the end of the batch (buf must stay untouched until then).
func (p *Plane) deliver(sa *sad.InSA, buf, inner []byte, q *tunQueue) {
	info, err := esp.ParseIP(inner)
	if err != nil {
		p.drop(DropMalformed)
		return
	}
	sport, dport := ports(inner, info)
	if !sa.AllowsInner(info.Src, info.Dst, info.Proto, sport, dport) {
		p.drop(DropSelector)
		return
	}
	if info.Dst == limitedBroadcast && info.Proto == esp.ProtoUDP && dport == dhcpServerPort && sa.Mode == sad.Tunnel {
		if p.cfg.OnDHCP == nil || info.TotalLen < info.HeaderLen+udpHeaderLen ||
			!p.cfg.OnDHCP(info.Src, inner[info.HeaderLen+udpHeaderLen:info.TotalLen]) {
			p.drop(DropDHCP)
		}
		return
	}
	p.toTUN(buf, inner[:info.TotalLen], q)
}

// limitedBroadcast is 255.255.255.255, where a DHCPINFORM goes.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

const dhcpServerPort = 67

// toTUN writes pkt, a slice of buf, to the TUN, or with a queue leaves it
// for the end of the batch (buf must stay untouched until then).
func (p *Plane) toTUN(buf, pkt []byte, q *tunQueue) {
	off := cap(buf) - cap(pkt)
	if off >= DeviceHeadroom && q != nil {
		q.pkts = append(q.pkts, Packet{Buf: buf, Off: off, Len: len(pkt)})
		return
	}
	if off < DeviceHeadroom || p.cfg.TUN.Write(buf, off, len(pkt)) != nil {
		p.drop(DropSendFailed)
		return
	}
	p.stats.received.Add(1)
	p.stats.tunWrites.Add(1)
	p.stats.tunWritten.Add(1)
}

// Counters is a snapshot of the plane's counters.
type Counters struct {
	Sent, Received, ClearForwarded, Keepalives uint64
	ClearL2TP                                  uint64 // datagrams read on the cleartext L2TP socket
	TUNReads, TUNPackets                       uint64 // more packets than reads: offload at work
	TUNWrites, TUNWritten                      uint64 // more packets than writes: joined (GRO)
	Drops                                      map[string]uint64
}

// Counters snapshots every counter; drops with zero count are left out.
func (p *Plane) Counters() Counters {
	c := Counters{Sent: p.stats.sent.Load(), Received: p.stats.received.Load(), ClearForwarded: p.stats.clear.Load(),
		Keepalives: p.stats.keepalives.Load(), ClearL2TP: p.stats.clearL2TP.Load(), TUNReads: p.stats.tunReads.Load(), TUNPackets: p.stats.tunPackets.Load(),
		TUNWrites: p.stats.tunWrites.Load(), TUNWritten: p.stats.tunWritten.Load(), Drops: map[string]uint64{}}
	for r := DropReason(0); r < numDrops; r++ {
		if v := p.drops[r].Load(); v > 0 {
			c.Drops[r.String()] = v
		}
	}
	return c
}
