package ike

import (
	"bytes"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"go.uber.org/zap"
)

// Informational exchanges (RFC 2409 section 5.7): one message, HASH(1)
// then notifications or deletes, protected once the IKE SA has keys.
// Before that, errors go in clear, without a hash.

// informational handles a received informational message.
func (m *Manager) informational(sa *IKESA, h Header, b []byte, local, remote netip.AddrPort) {
	if h.Flags&FlagEncryption == 0 {
		if sa.state != stateMainMode || sa.p1encrypt {
			// Once encryption has started a peer protects its notifies;
			// one in clear is anyone's (RFC 2408 section 5.1).
			m.drop(DropUnauthenticated, sa, h, errors.New("cleartext informational after encryption started"))
			return
		}
		ps, err := DecodePayloads(h.NextPayload, b[HeaderLen:], false)
		if err != nil {
			m.drop(DropUnauthenticated, sa, h, err)
			return
		}
		for _, p := range ps {
			if n, ok := p.(*Notify); ok && n.Kind.IsError() {
				// Unauthenticated, so it only ends a negotiation that
				// has not reached its keys.
				if x := sa.xs[0]; x != nil {
					m.failed(x, fail("peer-error", 0, "main mode: the peer answered %v", n.Kind))
				}
				return
			}
		}
		return
	}
	if sa.crypt == nil || !sa.p1encrypt {
		m.drop(DropUnauthenticated, sa, h, errors.New("encrypted informational before keys exist"))
		return
	}
	x := &exchange{sa: sa, typ: ExchangeInformational, msgID: h.MessageID, iv: MessageIV(sa.prf, sa.p1iv, h.MessageID, sa.crypt.blockSize())}
	in, err := m.decode(x, h, b)
	if err != nil {
		m.drop(DropUnauthenticated, sa, h, err)
		return
	}
	hp, ok := in.get(PayloadHash).(*Data)
	if !ok || in.payloads[0].Type() != PayloadHash || !hmac.Equal(hp.Data, InfoHash(sa.prf, sa.keys.A, h.MessageID, in.afterHash)) {
		m.drop(DropUnauthenticated, sa, h, errors.New("informational HASH(1) missing or does not verify"))
		return
	}
	sa.floatTo(local, remote)
	sa.dpd.lastHeard = m.now()
	for _, p := range in.payloads[1:] {
		switch p := p.(type) {
		case *Notify:
			m.notified(sa, p)
		case *Delete:
			m.deleted(sa, p)
		}
	}
}

func (m *Manager) notified(sa *IKESA, n *Notify) {
	if n.Kind.IsError() {
		m.log.Warn("peer reported an error", zap.String("peer", sa.Peer.Name), zap.Stringer("notify", n.Kind))
		// Main mode refused after the keys (a certificate or signature
		// the peer did not accept): it ends now, with the peer's reason.
		if x := sa.xs[0]; x != nil && sa.state == stateMainMode && x.finished.IsZero() {
			m.failed(x, fail("peer-error", 0, "main mode: the peer answered %v", n.Kind))
			return
		}
		// A quick mode the peer refused fails now, not after retransmits.
		for _, x := range sa.xs {
			if x.typ == ExchangeQuick && x.initiator && x.finished.IsZero() {
				m.failed(x, fail("peer-error", 0, "quick mode: the peer answered %v", n.Kind))
			}
		}
		return
	}
	switch n.Kind {
	case NotifyRUThere:
		if len(n.Data) == 4 {
			m.sendDPD(sa, NotifyRUThereAck, binary.BigEndian.Uint32(n.Data))
		}
		return
	case NotifyRUThereAck:
		return // lastHeard is already up to date
	}
	m.log.Debug("peer notify", zap.String("peer", sa.Peer.Name), zap.Stringer("notify", n.Kind))
}

func (m *Manager) deleted(sa *IKESA, d *Delete) {
	switch d.Protocol {
	case ProtoISAKMP:
		for _, spi := range d.SPIs {
			if bytes.Equal(spi, sa.cookies()) {
				m.remove(sa, "the peer deleted it")
				return
			}
		}
	case ProtoESP:
		for _, spi := range d.SPIs {
			// The peer names its own inbound SPI: our outbound.
			out := binary.BigEndian.Uint32(spi)
			kept := sa.children[:0]
			for _, c := range sa.children {
				if c.OutSPI == out {
					m.dropChild(c)
					m.host.Event(Event{ID: EventChildDown, Peer: sa.Peer.Name, Remote: sa.Remote.Addr(), Child: c,
						Message: fmt.Sprintf("IPsec SA %v deleted by the peer", c)})
					continue
				}
				kept = append(kept, c)
			}
			sa.children = kept
		}
	}
}

// sendInformational sends payloads in a new protected informational
// exchange, or in clear before main mode has keys.
func (m *Manager) sendInformational(sa *IKESA, ps []Payload) {
	m.sendInformationalFrom(sa, sa.p1iv, ps)
}

// sendInformationalID sends an informational exchange with a given
// message ID.
func (m *Manager) sendInformationalID(sa *IKESA, id uint32, ps []Payload) {
	m.sendInformationalIDFrom(sa, sa.p1iv, id, ps)
}

// sendInformationalFrom sends an informational exchange whose IV derives
// from p1iv, the last phase 1 block as the peer has it.
func (m *Manager) sendInformationalFrom(sa *IKESA, p1iv []byte, ps []Payload) {
	var id uint32
	for id == 0 {
		id = binary.BigEndian.Uint32(m.random(4))
	}
	m.sendInformationalIDFrom(sa, p1iv, id, ps)
}

func (m *Manager) sendInformationalIDFrom(sa *IKESA, p1iv []byte, id uint32, ps []Payload) {
	x := &exchange{sa: sa, typ: ExchangeInformational, msgID: id}
	out := &msg{}
	encrypt := sa.crypt != nil && sa.p1encrypt
	if encrypt {
		x.iv = MessageIV(sa.prf, p1iv, id, sa.crypt.blockSize())
		withHash(out, ps, func(r []byte) []byte { return InfoHash(sa.prf, sa.keys.A, id, r) })
	} else {
		out.add(ps...)
	}
	b, err := m.encode(x, out, encrypt)
	if err != nil {
		return
	}
	m.transmit(sa, b)
}

// cookies is the SA's 16-byte ISAKMP SPI, CKY-I | CKY-R, as notifies and
// deletes name it.
func (sa *IKESA) cookies() []byte {
	return append(append([]byte(nil), sa.SPIi[:]...), sa.SPIr[:]...)
}

// isakmpNotify is a notify about the IKE SA itself.
func (sa *IKESA) isakmpNotify(kind NotifyType, data []byte) *Notify {
	return &Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Kind: kind, SPI: sa.cookies(), Data: data}
}

// deleteIKE and deleteESP are the Delete payloads for the IKE SA and for
// a child (named by our inbound SPI, the one the peer sends to).
func (sa *IKESA) deleteIKE() *Delete {
	return &Delete{DOI: DOIIPsec, Protocol: ProtoISAKMP, SPISize: 16, SPIs: [][]byte{sa.cookies()}}
}

func deleteESP(c *ChildSA) *Delete {
	return &Delete{DOI: DOIIPsec, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{binary.BigEndian.AppendUint32(nil, c.InSPI)}}
}

func (m *Manager) sendNotify(sa *IKESA, kind NotifyType) {
	m.sendInformational(sa, []Payload{sa.isakmpNotify(kind, nil)})
}

// Terminate deletes a peer's child SAs and IKE SAs, telling the peer.
func (m *Manager) Terminate(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	found := false
	for _, sa := range m.sas {
		if sa.Peer.Name != name {
			continue
		}
		found = true
		if sa.state == stateEstablished {
			var ps []Payload
			for _, c := range sa.children {
				ps = append(ps, deleteESP(c))
			}
			if len(ps) > 0 {
				m.sendInformational(sa, ps)
			}
			m.sendInformational(sa, []Payload{sa.deleteIKE()})
		}
		m.remove(sa, whyOperator)
	}
	if !found {
		return fmt.Errorf("terminate %q: no IKE SA", name)
	}
	return nil
}
