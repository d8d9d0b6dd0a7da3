package l2tp

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Server is the LNS's table of tunnels. K keys where a packet came from;
// the L2TP plugin uses the IPsec SA and the peer's address and port, so
// that several clients behind one NAT, all on port 1701, stay apart, and
// one client cannot speak into another's tunnel by guessing its id.
type Server[K comparable] struct {
	// NewConfig gives the Config for a new tunnel from key (its Send
	// addresses that peer).
	NewConfig func(key K) Config
	// MaxTunnels bounds the table (0: 65535); MaxTunnelsPerKey what one
	// key (one IPsec SA's peer) may hold (0: 1024), so a flood of SCCRQs
	// inside one authenticated SA cannot take the table from everyone else.
	MaxTunnels, MaxTunnelsPerKey int
	Random                       func([]byte)
	// Secret reveals hidden AVPs in an SCCRQ before its tunnel exists.
	Secret []byte

	tunnels map[uint16]*serverTunnel
	byPeer  map[peerTunnel[K]]*serverTunnel
	perKey  map[K]int
}

type serverTunnel struct {
	*Tunnel
	key  any
	peer uint16 // the peer's Assigned Tunnel ID from its SCCRQ
}

type peerTunnel[K comparable] struct {
	key  K
	peer uint16
}

// ErrTooManyTunnels is an SCCRQ refused because the table is full, or
// because its sender holds as many tunnels as one may.
var ErrTooManyTunnels = errors.New("L2TP tunnel table full")

// Input routes one control packet from key. A new SCCRQ makes a tunnel;
// its retransmissions find the same one.
func (s *Server[K]) Input(key K, b []byte, now time.Time) (*Tunnel, error) {
	if s.tunnels == nil {
		s.tunnels, s.byPeer, s.perKey = map[uint16]*serverTunnel{}, map[peerTunnel[K]]*serverTunnel{}, map[K]int{}
	}
	h, payload, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if !h.Control {
		return nil, fmt.Errorf("%w: data message on the control path", ErrMalformed)
	}
	if h.TunnelID != 0 {
		t := s.tunnels[h.TunnelID]
		if t == nil || t.key.(K) != key {
			return nil, fmt.Errorf("%w: no tunnel %d from this peer", ErrWrongTunnel, h.TunnelID)
		}
		return t.Tunnel, t.Input(b, now)
	}
	// Tunnel id 0: an SCCRQ (section 6.1), or a ZLB or StopCCN before
	// the peer knew our id. Find the peer's tunnel by its assigned id.
	m, err := ParseMessage(payload, s.Secret)
	if err != nil {
		return nil, err
	}
	peer, _ := m.Uint16(AVPAssignedTunnelID)
	if m.Type != MsgSCCRQ || peer == 0 {
		return nil, fmt.Errorf("%w: %v with tunnel id 0", ErrWrongTunnel, m.Type)
	}
	pk := peerTunnel[K]{key, peer}
	if t := s.byPeer[pk]; t != nil {
		return t.Tunnel, t.Input(b, now) // a retransmitted SCCRQ
	}
	limit := s.MaxTunnels
	if limit == 0 || limit > 65535 {
		limit = 65535
	}
	if len(s.tunnels) >= limit {
		return nil, ErrTooManyTunnels
	}
	if n := s.perKey[key]; n >= cmp.Or(s.MaxTunnelsPerKey, 1024) {
		return nil, fmt.Errorf("%w: this peer already holds %d tunnels", ErrTooManyTunnels, n)
	}
	t := &serverTunnel{Tunnel: NewTunnel(s.NewConfig(key), s.newID()), key: key, peer: peer}
	s.tunnels[t.LocalID] = t
	s.byPeer[pk] = t
	s.perKey[key]++
	return t.Tunnel, t.Input(b, now)
}

func (s *Server[K]) newID() uint16 {
	random := s.Random
	if random == nil {
		random = func(b []byte) { _, _ = rand.Read(b) }
	}
	var b [2]byte
	for range 64 {
		random(b[:])
		if id := binary.BigEndian.Uint16(b[:]); id != 0 && s.tunnels[id] == nil {
			return id
		}
	}
	for id := uint16(1); id != 0; id++ {
		if s.tunnels[id] == nil {
			return id
		}
	}
	return 0 // unreachable: the table is below 65535 entries
}

func (s *Server[K]) forget(id uint16, t *serverTunnel) {
	k := t.key.(K)
	delete(s.tunnels, id)
	delete(s.byPeer, peerTunnel[K]{k, t.peer})
	if s.perKey[k]--; s.perKey[k] <= 0 {
		delete(s.perKey, k)
	}
}

// Tick runs every tunnel's timers and forgets dead ones.
func (s *Server[K]) Tick(now time.Time) {
	for id, t := range s.tunnels {
		t.Tick(now)
		if t.Dead() {
			s.forget(id, t)
		}
	}
}

// Abandon ends every tunnel from key without sending (see
// Tunnel.Abandon) and forgets them; it returns how many there were.
func (s *Server[K]) Abandon(key K, now time.Time, why string) int {
	n := 0
	for id, t := range s.tunnels {
		if t.key.(K) != key {
			continue
		}
		t.Abandon(now, why)
		s.forget(id, t)
		n++
	}
	return n
}

// Tunnel returns the tunnel with our id.
func (s *Server[K]) Tunnel(id uint16) *Tunnel {
	if t := s.tunnels[id]; t != nil {
		return t.Tunnel
	}
	return nil
}

// Tunnels returns every tunnel.
func (s *Server[K]) Tunnels() []*Tunnel {
	out := make([]*Tunnel, 0, len(s.tunnels))
	for _, t := range s.tunnels {
		out = append(out, t.Tunnel)
	}
	return out
}

// Len is the number of tunnels, dead ones not yet swept included.
func (s *Server[K]) Len() int { return len(s.tunnels) }
