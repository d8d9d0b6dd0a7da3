package ike

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.uber.org/zap"
)

// Rekeying. Child SAs are replaced before they expire: the side that ran
// the quick mode rekeys first (at 80-85 % of the lifetime, randomised so
// the two gateways of a pair rarely collide), the other side only if that
// did not happen by 93 %. The new SAs go in before the old ones go out:
// the responder installs its new inbound SA when it answers, the
// initiator both when it has the answer, and the old pair is deleted
// (with a Delete to the peer) a couple of seconds later.
//
// IKE SAs are replaced by a new main mode and quick mode (as strongSwan
// does for IKEv1, "reauthentication"); once the new child is up, the old
// IKE SA and its children are deleted. A child outlives nothing: an IKE
// SA that goes takes its children with it.

const (
	// rekeyGrace is how long a replaced SA keeps receiving.
	rekeyGrace = 2 * time.Second
	// retireGrace is how long an old IKE SA and its children stay after
	// the new ones are up.
	retireGrace = 2 * time.Second
	// replaceWait bounds how long a responder keeps an IKE SA that a
	// reauthenticated one replaces while waiting for all its pairs.
	replaceWait = 30 * time.Second
)

// SoftPoint is when, as a fraction of the lifetime, a side rekeys: the
// side that made the SA at 80-85 % (randomised, so two gateways rarely
// collide), the other at 93 %. Both IKE versions use it.
func SoftPoint(initiator bool) float64 {
	if initiator {
		return 0.80 + 0.05*rand.Float64()
	}
	return 0.93
}

func (m *Manager) scheduleRekey(sa *IKESA, c *ChildSA, initiator bool) {
	c.Established = m.now()
	if c.Lifetime > 0 {
		c.expiresAt = c.Established.Add(c.Lifetime)
		c.rekeyAt = c.Established.Add(time.Duration(float64(c.Lifetime) * SoftPoint(initiator)))
	}
}

// childrenWith lists the children of every IKE SA with sa's peer.
func (m *Manager) childrenWith(sa *IKESA) []*ChildSA {
	var out []*ChildSA
	for _, o := range m.sas {
		if samePeer(o, sa) {
			out = append(out, o.children...)
		}
	}
	return out
}

// rekeyTick runs from Tick for one established IKE SA.
func (m *Manager) rekeyTick(sa *IKESA, now time.Time) {
	kept := sa.children[:0]
	for _, c := range sa.children {
		switch {
		case !c.deleteAt.IsZero() && !now.Before(c.deleteAt), !c.expiresAt.IsZero() && !now.Before(c.expiresAt):
			why := "replaced by a rekeyed SA"
			if c.deleteAt.IsZero() {
				why = "lifetime expired"
			}
			m.deleteChild(sa, c, why)
			continue
		case !c.rekeying && !c.superseded && !sa.life.expired && !c.rekeyAt.IsZero() && !now.Before(c.rekeyAt):
			c.rekeying = true
			m.log.Info("rekeying IPsec SA", zap.String("peer", sa.Peer.Name), zap.Stringer("child", c))
			m.startQuickModeFor(sa, c, c.pair)
		}
		kept = append(kept, c)
	}
	sa.children = kept
	if sa.life.replaces {
		m.retireReplaced(sa)
	}
	if sa.life.retireAt.IsZero() || now.Before(sa.life.retireAt) {
		if sa.Peer.Wildcard() {
			m.expireTick(sa, now) // a road warrior renews its own SA
		} else {
			m.reauthTick(sa, now)
		}
		return
	}
	// This SA was replaced: delete it and its children.
	for _, c := range sa.children {
		m.deleteChild(sa, c, "the IKE SA was reauthenticated")
	}
	sa.children = nil
	m.sendInformational(sa, []Payload{sa.deleteIKE()})
	m.remove(sa, whyReplaced)
}

// deleteChild tells the peer and removes a child here.
func (m *Manager) deleteChild(sa *IKESA, c *ChildSA, why string) {
	m.sendInformational(sa, []Payload{deleteESP(c)})
	m.dropChild(c)
	m.host.Event(Event{ID: EventChildDown, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(), Child: c,
		Message: fmt.Sprintf("IPsec SA %v deleted: %s", c, why)})
}

// reauthTick starts the replacement of an IKE SA near its lifetime's end.
func (m *Manager) reauthTick(sa *IKESA, now time.Time) {
	life := sa.phase1.Lifetime
	if life <= 0 || sa.life.reauthStarted || sa.state != stateEstablished {
		return
	}
	if now.Sub(sa.created) < time.Duration(float64(life)*sa.life.soft) {
		return
	}
	sa.life.reauthStarted = true
	m.log.Info("reauthenticating IKE SA", zap.String("peer", sa.Peer.Name), zap.Stringer("remote", sa.Remote.Addr()))
	pairs := sa.livePairs()
	if len(pairs) == 0 {
		pairs = sa.Peer.allPairs()
	}
	m.startMainMode(sa.Peer, sa, pairs)
}

// expireTick ends a road warrior's IKE SA at its lifetime. The SA is the
// client's to renew: we cannot reach a client behind a NAT with a new main
// mode. One the client let run out is deleted (RFC 2408 section 3.15) and
// takes no more quick modes, but its IPsec SAs run to their own
// lifetimes: racoon-based clients (macOS, iOS, Android) let phase 1 lapse
// and make a new main mode only when a quick mode is next due, and their
// sessions must not drop every hour. The SA goes with its last child.
func (m *Manager) expireTick(sa *IKESA, now time.Time) {
	life := sa.phase1.Lifetime
	if life <= 0 || sa.state != stateEstablished {
		return
	}
	if !sa.life.expired && now.Sub(sa.created) >= life {
		sa.life.expired = true
		m.sendInformational(sa, []Payload{sa.deleteIKE()})
		m.log.Info("road warrior's IKE SA expired without renewal; its IPsec SAs run to their own lifetimes",
			zap.String("peer", sa.Peer.Name), zap.Stringer("remote", sa.Remote), zap.Duration("lifetime", life), zap.Int("ipsec_sas", len(sa.children)))
	}
	if sa.life.expired && len(sa.children) == 0 {
		m.remove(sa, "lifetime expired")
	}
}

// retireReplaced runs when a reauthenticated IKE SA gets a child, fails
// a quick mode, or ticks: the SA it replaces, and every other older
// established SA with the peer, go after a grace once the new one
// carries every pair they did. An initiator does not wait for pairs it
// has no quick mode on its way for (one it could not bring up must not
// keep the old SA); a responder, which cannot know what the initiator
// will bring, waits at most replaceWait, as the initiator normally
// deletes the old SA itself.
func (m *Manager) retireReplaced(sa *IKESA) {
	if len(sa.children) == 0 {
		return
	}
	pending := false
	for _, x := range sa.xs {
		pending = pending || (x.typ == ExchangeQuick && x.initiator && x.finished.IsZero())
	}
	gaveUp := (sa.Initiator && !pending) || (!sa.Initiator && m.now().Sub(sa.created) >= replaceWait)
	left := false
	for _, old := range m.sas {
		if old != sa && samePeer(old, sa) && old.state == stateEstablished && old.life.retireAt.IsZero() && old.created.Before(sa.created) {
			if !gaveUp && !sa.carries(old.livePairs()) {
				left = true
				continue
			}
			old.life.retireAt = m.now().Add(retireGrace)
			for _, c := range old.children {
				c.superseded = true
			}
		}
	}
	if !left {
		sa.life.replaces = false // nothing older is left to retire
	}
}

// abort undoes a responder's half-installed child when the quick mode
// fails before HASH(3).
func (t *quickMode) abort(m *Manager) {
	if t.halfInstalled && t.child != nil {
		m.dropChild(t.child)
		t.halfInstalled = false
	}
	if t.rekeys != nil {
		t.rekeys.rekeying = false // try again at the next tick
	}
}

// carries reports whether the SA has a live child for each pair.
func (sa *IKESA) carries(pairs []TSPair) bool {
	live := sa.livePairs()
	for _, t := range pairs {
		if !slices.Contains(live, t) {
			return false
		}
	}
	return true
}
