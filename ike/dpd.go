package ike

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Dead peer detection (RFC 3706): both sides announce it with a vendor ID
// in main mode; then, while a peer is silent, we send R-U-THERE notifies
// and expect R-U-THERE-ACK. Any authenticated message counts as a sign of
// life. A peer silent for the timeout is dead: its SAs go, and a tunnel
// that must always be up starts again.

// vidDPD is RFC 3706 section 5.1's vendor ID (version 1.0).
var vidDPD = []byte{0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00}

// dpdVendor is the phase 1 task that sends and reads the DPD vendor ID.
func dpdVendor() *vendorCapability {
	return &vendorCapability{vid: vidDPD, on: func(p *PeerConfig) bool { return p.DPDInterval > 0 }, flag: FlagDPD}
}

// dpdTick runs from Tick for an established SA: it probes a silent peer
// and declares it dead after the timeout. It reports whether the SA died.
func (m *Manager) dpdTick(sa *IKESA, now time.Time) bool {
	p := sa.Peer
	if p.DPDInterval <= 0 || !sa.vendor.flags.Has(FlagDPD) || sa.state != stateEstablished || sa.life.expired {
		return false // an expired SA was deleted: the peer would not answer on it
	}
	silent := now.Sub(sa.dpd.lastHeard)
	if p.DPDTimeout > 0 && silent >= p.DPDTimeout {
		m.log.Warn("peer is dead: no answer to DPD", zap.String("peer", p.Name), zap.Stringer("remote", sa.Remote.Addr()), zap.Duration("silent", silent))
		m.host.Event(Event{ID: EventNegotiationErr, Peer: p.Name, Remote: sa.Remote.Addr(), Reason: "dead-peer",
			Message: fmt.Sprintf("%s (%s) is dead: silent for %s despite DPD probes; its SAs are cleared", p.Name, sa.Remote.Addr(), silent.Round(time.Second))})
		m.remove(sa, "dead peer")
		return true
	}
	if silent >= p.DPDInterval && now.Sub(sa.dpd.sent) >= p.DPDInterval {
		sa.dpd.seq++
		sa.dpd.sent = now
		m.sendDPD(sa, NotifyRUThere, sa.dpd.seq)
	}
	return false
}

func (m *Manager) sendDPD(sa *IKESA, kind NotifyType, seq uint32) {
	m.sendInformational(sa, []Payload{sa.isakmpNotify(kind, binary.BigEndian.AppendUint32(nil, seq))})
}
