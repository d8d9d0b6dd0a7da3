package esp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"time"
)

// AH (RFC 4302) for IPv4. The ICV covers the IP header with its mutable
// fields zeroed, so the data path sends AH packets with IP_HDRINCL: the
// kernel must not choose the header's ID.

// ErrIPv4Options: AH here does not handle IPv4 options (whose mutability
// differs per option, RFC 4302 appendix A.1); such packets are refused.
var ErrIPv4Options = errors.New("AH: IPv4 options are not supported")

// ErrNotAH means the packet is not an IPv4 AH packet.
var ErrNotAH = errors.New("not an IPv4 AH packet")

// AH is one AH SA, outbound or inbound. Not safe for concurrent use.
type AH struct {
	sa
	mac    hash.Hash
	icvLen int
	seq    uint64
	window *Window // inbound only

	hdr  [IPv4HeaderLen]byte
	sum  [64]byte
	zero [16]byte
	hi   [4]byte
}

// NewAH installs an AH SA; inbound SAs get a replay window.
func NewAH(cfg Config, inbound bool) (*AH, error) {
	s := cfg.Suite
	if s.Protocol != ProtoAH || s.Integrity == nil {
		return nil, fmt.Errorf("SA %08x: %s is not an AH suite", cfg.SPI, s)
	}
	if len(cfg.IntegKey) != s.Integrity.KeyBytes {
		return nil, fmt.Errorf("SA %08x: %w: %s takes %d bytes, got %d", cfg.SPI, ErrKeyLength, s, s.Integrity.KeyBytes, len(cfg.IntegKey))
	}
	a := &AH{icvLen: s.Integrity.ICVBytes}
	switch s.Integrity.Name {
	case "sha1":
		a.mac = hmac.New(sha1.New, cfg.IntegKey)
	case "sha256":
		a.mac = hmac.New(sha256.New, cfg.IntegKey)
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupported, s)
	}
	a.initPlain(cfg)
	if inbound {
		w, err := NewWindow(cfg.Window)
		if err != nil {
			return nil, fmt.Errorf("SA %08x: %w", cfg.SPI, err)
		}
		a.window = w
	}
	return a, nil
}

// Len is the AH header length with its ICV (a multiple of 4 for IPv4).
func (a *AH) Len() int { return 12 + a.icvLen }

// icv computes the ICV over an IPv4 packet whose AH starts at hl: the
// header with TOS, flags/offset, TTL and checksum zeroed (RFC 4302 section
// 3.3.3.1.1), AH with its ICV zeroed, the rest, and the ESN high half.
func (a *AH) icv(pkt []byte, hl int, seq uint64) []byte {
	copy(a.hdr[:], pkt[:IPv4HeaderLen])
	a.hdr[1] = 0
	a.hdr[6], a.hdr[7], a.hdr[8] = 0, 0, 0
	a.hdr[10], a.hdr[11] = 0, 0
	a.mac.Reset()
	a.mac.Write(a.hdr[:])
	a.mac.Write(pkt[hl : hl+12])
	a.mac.Write(a.zero[:a.icvLen])
	a.mac.Write(pkt[hl+a.Len():])
	if a.cfg.ESN {
		binary.BigEndian.PutUint32(a.hi[:], uint32(seq>>32))
		a.mac.Write(a.hi[:])
	}
	return a.mac.Sum(a.sum[:0])[:a.icvLen]
}

func (a *AH) nextSeq() error {
	if a.hard.Load() {
		return ErrExpired
	}
	limit := uint64(1<<32 - 1)
	if a.cfg.ESN {
		limit = 1<<64 - 1
	}
	if a.seq >= limit {
		a.emit(HardExpire, "sequence")
		return ErrSeqExhausted
	}
	a.seq++
	return nil
}

func (a *AH) putAH(p []byte, nh uint8) {
	p[0], p[1] = nh, byte(a.Len()/4-2)
	p[2], p[3] = 0, 0
	binary.BigEndian.PutUint32(p[4:], a.cfg.SPI)
	binary.BigEndian.PutUint32(p[8:], uint32(a.seq))
}

// ProtectTransport inserts AH into the IPv4 packet at buf[a.Len():] and
// returns the protected packet, buf[:a.Len()+packet length].
func (a *AH) ProtectTransport(buf []byte) ([]byte, error) {
	l := a.Len()
	info, err := ParseIP(buf[l:])
	if err != nil || !info.Src.Is4() {
		return nil, ErrNotIP
	}
	if info.HeaderLen != IPv4HeaderLen {
		return nil, ErrIPv4Options
	}
	if err := a.nextSeq(); err != nil {
		return nil, err
	}
	pkt := buf[:l+info.TotalLen]
	copy(pkt, pkt[l:l+IPv4HeaderLen]) // header moves to the front
	a.putAH(pkt[IPv4HeaderLen:], info.Proto)
	finishIPv4(pkt, 51)
	copy(pkt[IPv4HeaderLen+12:], a.icv(pkt, IPv4HeaderLen, a.seq))
	a.account(info.TotalLen - IPv4HeaderLen)
	return pkt, nil
}

// ProtectTunnel wraps the inner packet at buf[IPv4HeaderLen+a.Len():] (n
// bytes) in AH and a new IPv4 header from src to dst.
func (a *AH) ProtectTunnel(buf []byte, n int, src, dst netip.Addr, ttl uint8, id uint16) ([]byte, error) {
	l := a.Len()
	info, err := ParseIP(buf[IPv4HeaderLen+l : IPv4HeaderLen+l+n])
	if err != nil {
		return nil, ErrNotIP
	}
	nh := uint8(ProtoIPv4)
	if info.Src.Is6() {
		nh = ProtoIPv6
	}
	if err := a.nextSeq(); err != nil {
		return nil, err
	}
	pkt := buf[:IPv4HeaderLen+l+n]
	PutIPv4Header(pkt, src, dst, 51, ttl, id, l+n)
	a.putAH(pkt[IPv4HeaderLen:], nh)
	copy(pkt[IPv4HeaderLen+12:], a.icv(pkt, IPv4HeaderLen, a.seq))
	a.account(n)
	return pkt, nil
}

// finishIPv4 sets the protocol, total length and checksum of pkt's header.
func finishIPv4(pkt []byte, proto uint8) {
	pkt[9] = proto
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[10], pkt[11] = 0, 0
	binary.BigEndian.PutUint16(pkt[10:], Checksum(pkt[:IPv4HeaderLen], 0))
}

// Verify checks an inbound IPv4 AH packet. In transport mode (next header
// not 4 or 41) it removes AH in place and returns the original packet; in
// tunnel mode it returns the inner packet. Replay check before the ICV,
// window update after (RFC 4302 section 3.4.3).
func (a *AH) Verify(pkt []byte) ([]byte, uint8, error) {
	out, nh, err := a.verify(pkt)
	a.countDrop(err)
	return out, nh, err
}

func (a *AH) verify(pkt []byte) ([]byte, uint8, error) {
	if a.window == nil {
		return nil, 0, errors.New("AH: Verify on an outbound SA")
	}
	if a.hard.Load() {
		return nil, 0, ErrExpired
	}
	info, err := ParseIP(pkt)
	if err != nil || !info.Src.Is4() || info.Proto != 51 {
		return nil, 0, ErrNotAH
	}
	if info.HeaderLen != IPv4HeaderLen {
		return nil, 0, ErrIPv4Options
	}
	pkt = pkt[:info.TotalLen]
	l, hl := a.Len(), IPv4HeaderLen
	if len(pkt) < hl+l || int(pkt[hl+1]) != l/4-2 {
		return nil, 0, ErrTruncated
	}
	if binary.BigEndian.Uint32(pkt[hl+4:]) != a.cfg.SPI {
		return nil, 0, ErrSPIMismatch
	}
	seq, ok := a.window.Check(binary.BigEndian.Uint32(pkt[hl+8:]), a.cfg.ESN)
	if !ok {
		return nil, 0, ErrReplay
	}
	if !hmac.Equal(a.icv(pkt, hl, seq), pkt[hl+12:hl+l]) {
		return nil, 0, ErrAuth
	}
	a.window.Update(seq)
	nh := pkt[hl]
	a.account(len(pkt) - hl - l)
	if nh == ProtoIPv4 || nh == ProtoIPv6 {
		return pkt[hl+l:], nh, nil
	}
	out := pkt[l:]
	copy(out, pkt[:hl]) // the header moves back over AH
	finishIPv4(out, nh)
	return out, nh, nil
}

// initPlain sets up the shared SA state for a transform-less SA (AH).
func (s *sa) initPlain(cfg Config) {
	s.cfg = cfg
	s.created = time.Now()
}
