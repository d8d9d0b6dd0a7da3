package ike

import (
	"cmp"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/esp"
)

// quickMode negotiates one pair of ESP SAs (RFC 2409 section 5.5):
//
//	Initiator                               Responder
//	HDR*, HASH(1), SA, Ni [, KE ] [, IDci, IDcr ] -->
//	                           <-- HDR*, HASH(2), SA, Nr [, KE ] [, IDci, IDcr ]
//	HDR*, HASH(3)                                 -->
type quickMode struct {
	step          int
	inSPI, outSPI uint32
	p2            Phase2
	reply         SAProposal // responder: the chosen proposal
	ni, nr        []byte
	dh            DH
	gxy           []byte
	peerKE        []byte
	ids           []Payload // the ID payloads to send (responder: as received)
	localTS       Selector
	remoteTS      Selector
	child         *ChildSA
	// rekeys is the child this quick mode replaces, nil for a new one.
	rekeys *ChildSA
	// pair is the peer's pair negotiated: the initiator's choice, the
	// one the responder found the identities in.
	pair TSPair
	// halfInstalled: the responder installed the inbound SA and waits
	// for HASH(3).
	halfInstalled bool
	// natOA: the peer's original address, when a NAT rewrote it.
	natOA netip.Addr
	// tellLife, tellKB: the responder keeps shorter limits than the
	// initiator proposed and says so in RESPONDER-LIFETIME.
	tellLife time.Duration
	tellKB   uint64
}

// wipe zeroes the PFS private value and g^xy when the exchange ends.
func (t *quickMode) wipe() {
	if t.dh != nil {
		t.dh.Wipe()
	}
	clear(t.gxy)
}

// withHash puts the HASH payload computed over the rest in front.
func withHash(out *msg, rest []Payload, h func(rest []byte) []byte) {
	out.add(&Data{T: PayloadHash, Data: h(AppendPayloads(nil, rest))})
	out.add(rest...)
}

func (t *quickMode) build(x *exchange, out *msg) (bool, error) {
	sa, m := x.sa, managerOf(x)
	p := sa.Peer
	if t.step == 0 {
		t.step = 1
	}
	switch {
	case x.initiator && t.step == 1:
		spi, err := m.host.AllocSPI()
		if err != nil {
			return false, fail("error", 0, "quick mode: no SPI: %v", err)
		}
		t.inSPI, t.ni = spi, m.random(nonceLen)
		rest := []Payload{Phase2Offer(sa.espSuites(), spi, sa.udpEncap(p.Transport), p.PFS, p.ESPLifetime, p.ESPLifeKB), &Data{T: PayloadNonce, Data: t.ni}}
		if p.PFS != 0 {
			dh, err := NewDH(p.PFS, m.rand)
			if err != nil {
				return false, fail("no-proposal-chosen", 0, "quick mode: PFS: %v", err)
			}
			t.dh = dh
			rest = append(rest, &Data{T: PayloadKE, Data: dh.Public()})
		}
		if p.hasIDs() {
			t.localTS, t.remoteTS = t.pair.Local, t.pair.Remote
		} else if p.L2TP {
			t.localTS, t.remoteTS = l2tpSelector(sa.Local.Addr()), l2tpSelector(sa.Remote.Addr())
		}
		if t.localTS.Prefix.IsValid() {
			t.ids = []Payload{t.localTS.id(), t.remoteTS.id()}
			rest = append(rest, t.ids...)
		}
		rest = append(rest, sa.natOA(p.Transport, sa.Local.Addr(), sa.Remote.Addr())...)
		withHash(out, rest, func(r []byte) []byte { return QuickHash1(sa.prf, sa.keys.A, x.msgID, r) })
	case !x.initiator && t.step == 2:
		t.nr = m.random(nonceLen)
		reply := t.reply
		reply.SPI = binary.BigEndian.AppendUint32(nil, t.inSPI)
		rest := []Payload{&SA{DOI: DOIIPsec, Situation: SitIdentityOnly, Proposals: []SAProposal{reply}}, &Data{T: PayloadNonce, Data: t.nr}}
		if t.p2.Group != 0 {
			dh, err := NewDH(t.p2.Group, m.rand)
			if err != nil {
				return false, fail("no-proposal-chosen", NotifyNoProposalChosen, "quick mode: PFS: %v", err)
			}
			gxy, err := dh.Shared(t.peerKE)
			if err != nil {
				return false, fail("malformed", NotifyInvalidKeyInformation, "quick mode: %v", err)
			}
			t.dh, t.gxy = dh, gxy
			rest = append(rest, &Data{T: PayloadKE, Data: dh.Public()})
		}
		rest = append(rest, t.ids...)
		rest = append(rest, sa.natOA(p.Transport, sa.Remote.Addr(), sa.Local.Addr())...)
		if t.tellLife != 0 || t.tellKB != 0 {
			rest = append(rest, ResponderLifetime(t.inSPI, t.tellLife, t.tellKB))
		}
		withHash(out, rest, func(r []byte) []byte { return QuickHash2(sa.prf, sa.keys.A, x.msgID, t.ni, r) })
		t.child = t.makeChild(sa)
		if err := m.host.InstallInbound(t.child); err != nil {
			return false, fail("error", 0, "quick mode: installing inbound %v: %v", t.child, err)
		}
		t.halfInstalled = true
	case x.initiator && t.step == 3:
		out.add(&Data{T: PayloadHash, Data: QuickHash3(sa.prf, sa.keys.A, x.msgID, t.ni, t.nr)})
		t.step++
		c := t.makeChild(sa)
		if err := m.host.InstallInbound(c); err != nil {
			return false, fail("error", 0, "quick mode: installing inbound %v: %v", c, err)
		}
		return true, m.installChild(sa, c, true, t.rekeys)
	default:
		return false, nil
	}
	t.step++
	return false, nil
}

func (t *quickMode) process(x *exchange, in *msg) (bool, error) {
	sa, m := x.sa, managerOf(x)
	p := sa.Peer
	if t.step == 0 {
		t.step = 1
	}
	h, ok := in.get(PayloadHash).(*Data)
	if !ok || in.payloads[0].Type() != PayloadHash {
		return false, fail("malformed", NotifyPayloadMalformed, "quick mode message %d does not start with HASH", t.step)
	}
	switch {
	case !x.initiator && t.step == 1:
		if !hmac.Equal(h.Data, QuickHash1(sa.prf, sa.keys.A, x.msgID, in.afterHash)) {
			return false, fail("authentication-failed", NotifyInvalidHashInformation, "quick mode: HASH(1) does not verify")
		}
		in.authed = true
		offered, ok1 := in.get(PayloadSA).(*SA)
		nonce, ok2 := in.get(PayloadNonce).(*Data)
		if !ok1 || !ok2 {
			return false, fail("malformed", NotifyPayloadMalformed, "quick mode message 1 lacks SA or nonce")
		}
		p2, reply, err := SelectPhase2(offered, sa.espSuites(), func(e uint16) bool { return e == sa.udpEncap(p.Transport) }, p.PFS)
		if err != nil {
			return false, fail("no-proposal-chosen", NotifyNoProposalChosen, "quick mode: %v", err)
		}
		if ke, ok := in.get(PayloadKE).(*Data); ok {
			t.peerKE = ke.Data
		} else if p2.Group != 0 {
			return false, fail("malformed", NotifyPayloadMalformed, "quick mode: PFS %s offered without a KE payload", GroupName(p2.Group))
		}
		if sa.nat.remote {
			t.peerNATOA(in, false)
		}
		if err := t.checkIDs(sa, in, false); err != nil {
			return false, err
		}
		spi, err := m.host.AllocSPI()
		if err != nil {
			return false, fail("error", 0, "quick mode: no SPI: %v", err)
		}
		t.p2, t.reply, t.ni, t.inSPI, t.outSPI = p2, reply, nonce.Data, spi, p2.SPI
		t.p2.Lifetime, t.p2.LifeKB = shorter(p2.Lifetime, p.ESPLifetime), shorterKB(p2.LifeKB, p.ESPLifeKB)
		t.tellLife, t.tellKB = shorterLimits(p2, t.p2)
	case x.initiator && t.step == 2:
		if !hmac.Equal(h.Data, QuickHash2(sa.prf, sa.keys.A, x.msgID, t.ni, in.afterHash)) {
			return false, fail("authentication-failed", NotifyInvalidHashInformation, "quick mode: HASH(2) does not verify")
		}
		in.authed = true
		reply, ok1 := in.get(PayloadSA).(*SA)
		nonce, ok2 := in.get(PayloadNonce).(*Data)
		if !ok1 || !ok2 || len(reply.Proposals) != 1 || len(reply.Proposals[0].Transforms) != 1 {
			return false, fail("malformed", NotifyBadProposalSyntax, "quick mode message 2 needs one SA proposal with one transform, and a nonce")
		}
		p2, err := parsePhase2(reply.Proposals[0], reply.Proposals[0].Transforms[0])
		if err != nil || p2.Encap != sa.udpEncap(p.Transport) || p2.Group != p.PFS || !offeredSuite(sa.espSuites(), p2.Suite) {
			return false, fail("no-proposal-chosen", NotifyNoProposalChosen, "quick mode: the responder chose something we did not offer (%v, %v)", p2.Suite, err)
		}
		t.p2, t.outSPI, t.nr = p2, p2.SPI, nonce.Data
		t.p2.Lifetime, t.p2.LifeKB = shorter(p2.Lifetime, p.ESPLifetime), shorterKB(p2.LifeKB, p.ESPLifeKB)
		for _, n := range in.all(PayloadNotify) {
			if n := n.(*Notify); n.Kind == NotifyResponderLifetime {
				t.responderLifetime(n.Data)
			}
		}
		if t.dh != nil {
			ke, ok := in.get(PayloadKE).(*Data)
			if !ok {
				return false, fail("malformed", NotifyPayloadMalformed, "quick mode: PFS without the responder's KE")
			}
			gxy, err := t.dh.Shared(ke.Data)
			if err != nil {
				return false, fail("malformed", NotifyInvalidKeyInformation, "quick mode: %v", err)
			}
			t.gxy = gxy
		}
		if sa.nat.remote {
			t.peerNATOA(in, true)
		}
		if err := t.checkIDs(sa, in, true); err != nil {
			return false, err
		}
	case !x.initiator && t.step == 3:
		if !hmac.Equal(h.Data, QuickHash3(sa.prf, sa.keys.A, x.msgID, t.ni, t.nr)) {
			return false, fail("authentication-failed", NotifyInvalidHashInformation, "quick mode: HASH(3) does not verify")
		}
		in.authed = true
		t.step++
		t.halfInstalled = false
		return true, m.installChild(sa, t.child, false, nil)
	default:
		return false, fail("malformed", 0, "quick mode: unexpected message at step %d", t.step)
	}
	t.step++
	return false, nil
}

// checkIDs compares the quick mode identities with the peer's tunnel:
// IDci is the initiator's side, IDcr the responder's.
func (t *quickMode) checkIDs(sa *IKESA, in *msg, initiator bool) error {
	p := sa.Peer
	ids := in.all(PayloadID)
	switch {
	case len(ids) == 0 && !p.hasIDs():
		return nil
	case len(ids) == 0:
		return fail("no-proposal-chosen", NotifyInvalidIDInformation, "quick mode: no identities, want one of %v", pairList(p.Pairs))
	case len(ids) != 2:
		return fail("malformed", NotifyInvalidIDInformation, "quick mode: %d ID payloads, want 2", len(ids))
	}
	ci, err1 := selectorOf(ids[0].(*ID))
	cr, err2 := selectorOf(ids[1].(*ID))
	if err1 != nil || err2 != nil {
		return fail("no-proposal-chosen", NotifyInvalidIDInformation, "quick mode: identities are not addresses or subnets")
	}
	local, remote := cr, ci
	if initiator {
		local, remote = ci, cr
	}
	if p.hasIDs() {
		pair := TSPair{local, remote}
		if (initiator && pair != t.pair) || (!initiator && !p.has(pair)) {
			return fail("no-proposal-chosen", NotifyInvalidIDInformation, "quick mode: peer proposed %v <-> %v, we have %s",
				remote, local, pairList(p.Pairs))
		}
		t.pair = pair
	} else if err := t.checkTransportIDs(sa, local, remote); err != nil {
		return err
	}
	t.localTS, t.remoteTS = local, remote
	if !initiator {
		t.ids = []Payload{ids[0], ids[1]} // echoed as received
	}
	return nil
}

// pairList names a peer's pairs for an error message, from the peer's
// side: "10.2.0.0/24 <-> 10.1.0.0/24, ...".
func pairList(pairs []TSPair) string {
	var b strings.Builder
	for i, t := range pairs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%v <-> %v", t.Remote, t.Local)
	}
	return b.String()
}

// checkTransportIDs: in transport mode the identities name the two hosts.
// A side behind a NAT names itself by the address it has, not the one we
// see (RFC 3947 section 5.2): its identity is then taken as its original
// address. With L2TP, only UDP 1701 (or any port) is protected (RFC 3193).
func (t *quickMode) checkTransportIDs(sa *IKESA, local, remote Selector) error {
	p := sa.Peer
	for _, x := range []struct {
		sel  Selector
		addr netip.Addr
		nat  bool
		side string
	}{{local, sa.Local.Addr(), sa.nat.local, "our"}, {remote, sa.Remote.Addr(), sa.nat.remote, "the peer's"}} {
		host := x.sel.Prefix.IsSingleIP() && x.sel.Prefix.Addr().Is4() == x.addr.Unmap().Is4()
		if !host || (!x.nat && x.sel.Prefix != hostPrefix(x.addr)) {
			return fail("no-proposal-chosen", NotifyInvalidIDInformation, "quick mode: transport mode identity %v is not %s address %v", x.sel, x.side, x.addr)
		}
		if p.L2TP && ((x.sel.Proto != 0 && x.sel.Proto != esp.ProtoUDP) || (x.sel.Port != 0 && x.sel.Port != l2tpPort)) {
			return fail("no-proposal-chosen", NotifyInvalidIDInformation, "quick mode: identity %v is not L2TP (UDP port 1701)", x.sel)
		}
	}
	if sa.nat.remote && t.natOA == (netip.Addr{}) {
		t.natOA = remote.Prefix.Addr()
	}
	return nil
}

// l2tpPort is L2TP's UDP port (RFC 2661 section 8.1).
const l2tpPort = 1701

func l2tpSelector(a netip.Addr) Selector {
	return Selector{Prefix: hostPrefix(a), Proto: esp.ProtoUDP, Port: l2tpPort}
}

// natOA builds the NAT-OA payloads for UDP-encapsulated transport mode:
// RFC 3947 section 5.2 sends the initiator's address, then the
// responder's, each as the sender knows it; the drafts send one, the
// sender's own.
func (sa *IKESA) natOA(transport bool, initiator, responder netip.Addr) []Payload {
	if !transport || !sa.natDetected() {
		return nil
	}
	if sa.nat.dialect == nattDraft {
		return []Payload{&NATOA{T: PayloadNATOADraft, Addr: sa.Local.Addr().Unmap()}}
	}
	return []Payload{&NATOA{T: PayloadNATOA, Addr: initiator.Unmap()}, &NATOA{T: PayloadNATOA, Addr: responder.Unmap()}}
}

// peerNATOA takes the peer's original address from its NAT-OA payloads.
func (t *quickMode) peerNATOA(in *msg, initiator bool) {
	var oas []*NATOA
	for _, pl := range in.payloads {
		if oa, ok := pl.(*NATOA); ok {
			oas = append(oas, oa)
		}
	}
	i := 0
	if initiator {
		i = 1 // we are the initiator: the peer's address is the second
	}
	switch len(oas) {
	case 1: // the drafts' one: the sender's
		t.natOA = oas[0].Addr
	case 2:
		t.natOA = oas[i].Addr
	}
}

func offeredSuite(ours []esp.Suite, s esp.Suite) bool {
	for _, o := range ours {
		if o.String() == s.String() {
			return true
		}
	}
	return false
}

func shorter(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

func shorterKB(a, b uint64) uint64 {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// shorterLimits is what a responder reports in RESPONDER-LIFETIME: each
// limit it keeps that is shorter than the one proposed (a proposal
// without a lifetime in seconds means eight hours; without one in
// kilobytes, none). The reply's transform still echoes the proposal, so
// without the notify the initiator would expect the longer limit and
// rekey after we dropped the SA.
func shorterLimits(offered, kept Phase2) (time.Duration, uint64) {
	var life time.Duration
	var kb uint64
	if o := cmp.Or(offered.Lifetime, DefaultPhase2Lifetime); kept.Lifetime != 0 && kept.Lifetime < o {
		life = kept.Lifetime
	}
	if kept.LifeKB != 0 && (offered.LifeKB == 0 || kept.LifeKB < offered.LifeKB) {
		kb = kept.LifeKB
	}
	return life, kb
}

// responderLifetime applies a RESPONDER-LIFETIME notify (RFC 2407 section
// 4.6.3.1): attributes, life type then duration.
func (t *quickMode) responderLifetime(data []byte) {
	attrs, err := parseAttributes(data)
	if err != nil {
		return
	}
	lifeType := uint64(0)
	for _, a := range attrs {
		v, _ := a.Uint()
		switch a.Type {
		case p2LifeType:
			lifeType = v
		case p2LifeDuration:
			if lifeType == lifeSeconds {
				t.p2.Lifetime = shorter(t.p2.Lifetime, time.Duration(v)*time.Second)
			} else if lifeType == lifeKilobytes {
				t.p2.LifeKB = shorterKB(t.p2.LifeKB, v)
			}
		}
	}
}

// makeChild derives the keys of both directions (RFC 2409 section 5.5:
// the inbound SA's KEYMAT uses our SPI, the outbound one the peer's).
func (t *quickMode) makeChild(sa *IKESA) *ChildSA {
	el, il := esp.KeyLengths(t.p2.Suite)
	key := func(spi uint32) ([]byte, []byte) {
		km := KeyMat(sa.prf, sa.keys.D, t.gxy, ProtoESP, binary.BigEndian.AppendUint32(nil, spi), t.ni, t.nr, el+il)
		return km[:el], km[el:]
	}
	c := &ChildSA{Peer: sa.Peer.Name, Local: sa.Local, Remote: sa.Remote, Tunnel: t.p2.Tunnel(), UDP: t.p2.UDP(),
		Suite: t.p2.Suite, InSPI: t.inSPI, OutSPI: t.outSPI, LocalTS: t.localTS, RemoteTS: t.remoteTS,
		Lifetime: t.p2.Lifetime, LifeKB: t.p2.LifeKB, SPIi: sa.SPIi, SPIr: sa.SPIr, pair: t.pair}
	if !c.Tunnel && t.natOA != sa.Remote.Addr().Unmap() {
		c.NATOA = t.natOA
	}
	c.InEnc, c.InInteg = key(t.inSPI)
	c.OutEnc, c.OutInteg = key(t.outSPI)
	clear(t.gxy) // the PFS g^xy has done its work
	if c.UDP {
		c.Local, c.Remote = netipPort(sa.Local, natPort), sa.Remote // the peer's port as the NAT shows it
	} else {
		c.Local, c.Remote = netipPort(sa.Local, 0), netipPort(sa.Remote, 0)
	}
	return c
}

// installChild makes a child's outbound SA current (its inbound one is in
// already) and schedules its rekey. initiator: we ran the quick mode.
func (m *Manager) installChild(sa *IKESA, c *ChildSA, initiator bool, replaces *ChildSA) error {
	if err := m.host.InstallOutbound(c); err != nil {
		m.dropChild(c)
		return fail("error", 0, "quick mode: installing %v: %v", c, err)
	}
	m.scheduleRekey(sa, c, initiator)
	// Older children for the same traffic are superseded: they are not
	// rekeyed again. The one this quick mode replaced is deleted after a
	// short grace, so packets in flight on it still arrive.
	for _, old := range m.childrenWith(sa) {
		if old != c && old.LocalTS == c.LocalTS && old.RemoteTS == c.RemoteTS {
			old.superseded = true
		}
	}
	if replaces != nil {
		replaces.deleteAt = m.now().Add(rekeyGrace)
	}
	sa.children = append(sa.children, c)
	what := "IPsec SA up"
	if replaces != nil {
		what = "IPsec SA rekeyed"
	}
	m.host.Event(Event{ID: EventChildUp, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(), Child: c, Rekey: replaces != nil,
		Message: fmt.Sprintf("%s: %v", what, c)})
	if sa.life.replaces {
		m.retireReplaced(sa)
	}
	return nil
}
