package ikev2

import (
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/ike"
)

// MOBIKE (RFC 4555), the server's side: a road warrior that announced
// MOBIKE_SUPPORTED in IKE_AUTH, and to which we answered it, may move
// (Wi-Fi to mobile data) and say so with UPDATE_SA_ADDRESSES from its
// new address; its IKE SA and its children then follow it, without a new
// negotiation, keeping their keys and sequence numbers.

// ChildMover is what a host offers to move a child's SAs to new
// endpoints in place (keys and counters untouched). Without it, a moved
// client's ESP still goes to its old address until the child is rekeyed.
type ChildMover interface {
	MoveChild(c *ike.ChildSA) error
}

// mobikeAnswer adds MOBIKE_SUPPORTED to our IKE_AUTH answer to a road
// warrior that announced it, and remembers that both sides speak it.
func (s *ikeSA) mobikeAnswer(req []Payload, ps []Payload) []Payload {
	if s.peer.RemoteAccess == nil || len(Notifies(req, NotifyMobikeSupported)) == 0 {
		return ps
	}
	s.mobike = true
	return append(ps, &Notify{Kind: NotifyMobikeSupported})
}

// answerUpdate takes UPDATE_SA_ADDRESSES (section 3.5), which came from
// remote to local (the SA was at from): the IKE SA and its children move there, NAT detection
// is done again on the new path, and the answer carries ours for it and
// echoes COOKIE2 (section 3.8).
func (s *ikeSA) answerUpdate(inner []Payload, local, remote, from netip.AddrPort) []Payload {
	var ps []Payload
	if c := Notifies(inner, NotifyCookie2); len(c) > 0 {
		ps = append(ps, &Notify{Kind: NotifyCookie2, Data: c[0].Data})
	}
	if !s.mobike {
		return ps // RFC 4555 section 3.5: ignored without MOBIKE
	}
	if local.Addr().IsUnspecified() {
		local = netip.AddrPortFrom(s.local.Addr(), local.Port())
	}
	s.local, s.remote = local, remote
	if nat, err := DetectNAT(inner, s.spii, s.spir, local, remote); err == nil && nat.Supported {
		s.nat = nat
		s.encap = s.encap || nat.PeerBehind || nat.WeBehind
		ps = append(ps, NATNotifies(s.spii, s.spir, local, remote)...)
	}
	mover, _ := s.m.host.(ChildMover)
	for _, c := range s.children {
		c.sa.Local, c.sa.Remote, c.sa.UDP = s.local, s.remote, s.encap
		if mover != nil {
			if err := mover.MoveChild(c.sa); err != nil {
				s.m.log.Warn("a moved client's SA was not moved", zapPeer(s), zapErr(err))
			}
		}
	}
	s.m.event(s, ike.Event{ID: ike.EventIKEUp, Message: fmt.Sprintf("%s moved from %s to %s (MOBIKE)", s.peerID, from, remote)})
	return ps
}

// Roam moves a road warrior's IKE SA (gatehouse connect ikev2, when the
// client's address changes) to local, and tells the server with
// UPDATE_SA_ADDRESSES from there; only where both sides speak MOBIKE.
func (m *Manager) Roam(name string, local netip.AddrPort) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sas {
		if s.peer.Name != name || s.state != stateEstablished || s.successor != nil {
			continue
		}
		if !s.mobike {
			return fmt.Errorf("%s: the server does not speak MOBIKE", name)
		}
		s.local = local
		for _, c := range s.children {
			c.sa.Local = local
		}
		s.queueTask(updateTask{})
		return nil
	}
	return fmt.Errorf("no IKEv2 SA with %q", name)
}

// updateTask is UPDATE_SA_ADDRESSES, with NAT detection for the new path.
type updateTask struct{}

func (updateTask) exchange() ExchangeType { return ExchangeInformational }
func (updateTask) request(s *ikeSA) ([]Payload, error) {
	return append([]Payload{&Notify{Kind: NotifyUpdateSAAddresses}}, NATNotifies(s.spii, s.spir, s.local, s.remote)...), nil
}
func (updateTask) response(*ikeSA, []Payload) error { return nil }
func (updateTask) failed(*ikeSA, error)             {}
