package ike

import (
	"crypto/hmac"
	"fmt"
)

// aggressiveMode is aggressive mode (RFC 2409 sections 5.1 and 5.4; the
// third message encrypted, as RFC 2408 section 4.7 has it), with a
// preshared key:
//
//	Initiator                               Responder
//	HDR, SA, KE, Ni, IDii              -->
//	                                   <--  HDR, SA, KE, Nr, IDir, HASH_R
//	HDR*, HASH_I                       -->
//
// or with signatures:
//
//	HDR, SA, KE, Ni, IDii, CR          -->
//	                                   <--  HDR, SA, KE, Nr, IDir, CERT, SIG_R, CR
//	HDR*, CERT, SIG_I                  -->
//
// It is off unless a tunnel turns it on, with one auth method. With a
// preshared key the peer's identity must be configured: the key is chosen
// by that identity, and the responder's hash goes out before the
// initiator has proven anything, so an eavesdropper can attack the key
// offline (RFC 9395 section 3). Signatures have no such weakness, but the
// identities travel in clear.
type aggressiveMode struct {
	mm      mainMode // the shared state: DH, nonces, SAi_b, hashes, credentials
	step    int
	idB     []byte // our ID payload body
	peerID  *ID    // the initiator's, for the responder's check of HASH_I or SIG_I
	peerIDB []byte
}

func newAggressiveMode() *aggressiveMode { return &aggressiveMode{mm: mainMode{aggressive: true}} }

func (t *aggressiveMode) wipe() { t.mm.wipe() }

func (t *aggressiveMode) build(x *exchange, out *msg) (bool, error) {
	sa, m := x.sa, managerOf(x)
	p := sa.Peer
	t.step++
	switch {
	case sa.Initiator && t.step == 1:
		// KE goes out now, so every offer must use the first one's group.
		var props []Proposal
		for _, pr := range p.Proposals {
			if pr.Group.Number == p.Proposals[0].Group.Number {
				props = append(props, pr)
			}
		}
		offer := Phase1Offer(props, p.Auth, p.Lifetime)
		dh, err := NewDH(p.Proposals[0].Group.Number, m.rand)
		if err != nil {
			return false, fail("no-proposal-chosen", 0, "aggressive mode: %v", err)
		}
		t.mm.dh, t.mm.gxi, t.mm.ni, t.mm.saiB, t.mm.offered = dh, dh.Public(), m.random(nonceLen), offer.appendBody(nil), offer
		id := sa.localID()
		if IsSignature(p.Auth[0]) {
			// One method is offered; our ID is the certificate's, so it
			// is settled now.
			sa.phase1.Auth = p.Auth[0]
			if id, err = t.mm.sigID(sa); err != nil {
				return false, err
			}
		}
		t.idB = id.appendBody(nil)
		out.add(offer, &Data{T: PayloadKE, Data: t.mm.gxi}, &Data{T: PayloadNonce, Data: t.mm.ni}, id)
		if IsSignature(p.Auth[0]) {
			return false, t.mm.addCertReqs(sa, out) // strongSwan sends its certificate only when asked
		}
	case !sa.Initiator && t.step == 2:
		out.add(t.mm.offered, &Data{T: PayloadKE, Data: t.mm.gxr}, &Data{T: PayloadNonce, Data: t.mm.nr})
		if IsSignature(sa.phase1.Auth) {
			if err := t.mm.addSignature(sa, out); err != nil {
				return false, err
			}
			if err := t.mm.addCertReqs(sa, out); err != nil {
				return false, err
			}
		} else {
			id := sa.localID()
			t.idB = id.appendBody(nil)
			out.add(id, &Data{T: PayloadHash, Data: t.mm.hash(sa, false, t.idB)})
		}
		sa.p1encrypt = true // message 3 is encrypted
		return false, nil
	case sa.Initiator && t.step == 3:
		if IsSignature(sa.phase1.Auth) {
			return true, t.mm.addCertsAndSig(sa, out, t.idB)
		}
		out.add(&Data{T: PayloadHash, Data: t.mm.hash(sa, true, t.idB)})
		return true, nil
	}
	return false, nil
}

// localID is our identity with a preshared key: the configured one, or
// our address.
func (sa *IKESA) localID() *ID {
	if sa.Peer.LocalID != nil {
		return sa.Peer.LocalID
	}
	return addressID(sa.Local.Addr())
}

func (t *aggressiveMode) process(x *exchange, in *msg) (bool, error) {
	sa, m := x.sa, managerOf(x)
	p := sa.Peer
	// The step moves on only when a message is accepted: a refused one
	// (a forgery) leaves the exchange where it was.
	step := t.step + 1
	switch {
	case !sa.Initiator && step == 1:
		offered, ok1 := in.get(PayloadSA).(*SA)
		ke, ok2 := in.get(PayloadKE).(*Data)
		nonce, ok3 := in.get(PayloadNonce).(*Data)
		id, ok4 := in.get(PayloadID).(*ID)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return false, fail("malformed", NotifyPayloadMalformed, "aggressive mode message 1 lacks SA, KE, nonce or ID")
		}
		got := FormatID(id.IDType, id.Data)
		// With a preshared key the configured identity chooses the key
		// (and is required); a certificate is checked against remote.id
		// once its signature verifies. A wrong identity gets no answer at
		// all, so that nobody can try names until one draws a hash to
		// crack.
		if !IsSignature(p.Auth[0]) && !SameID(p.RemoteID, got) {
			return false, fail("authentication-failed", 0, "aggressive mode: the peer calls itself %s, the tunnel expects %s (not answered)", got, p.RemoteID)
		}
		sa.peerID = got
		p1, reply, err := SelectPhase1(offered, sa.proposals(), p.Auth)
		if err != nil {
			if sa.vendor.interop.Hint != "" {
				err = fmt.Errorf("%w; %s", err, sa.vendor.interop.Hint)
			}
			return false, &failure{reason: "no-proposal-chosen", notify: NotifyNoProposalChosen, err: fmt.Errorf("aggressive mode: %w", err)}
		}
		sa.setPhase1(p1)
		t.mm.offered, t.mm.saiB, t.peerID, t.peerIDB = reply, in.body(PayloadSA), id, in.body(PayloadID)
		t.mm.readCertReqs(in)
		if err := t.mm.startDH(m, sa); err != nil {
			return false, err
		}
		t.mm.gxi, t.mm.gxr, t.mm.ni, t.mm.nr = ke.Data, t.mm.dh.Public(), nonce.Data, m.random(nonceLen)
		gxy, err := t.mm.dh.Shared(t.mm.gxi)
		if err != nil {
			return false, fail("malformed", NotifyInvalidKeyInformation, "aggressive mode: %v", err)
		}
		if err := t.mm.deriveKeys(m, sa, gxy, id); err != nil {
			return false, err
		}
	case sa.Initiator && step == 2:
		reply, ok1 := in.get(PayloadSA).(*SA)
		ke, ok2 := in.get(PayloadKE).(*Data)
		nonce, ok3 := in.get(PayloadNonce).(*Data)
		id, ok4 := in.get(PayloadID).(*ID)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return false, fail("malformed", NotifyPayloadMalformed, "aggressive mode message 2 lacks SA, KE, nonce or ID")
		}
		p1, err := p.acceptPhase1Reply(reply)
		if err != nil {
			return false, &failure{reason: "no-proposal-chosen", notify: NotifyNoProposalChosen, err: fmt.Errorf("aggressive mode: %w", err)}
		}
		got := FormatID(id.IDType, id.Data)
		if !IsSignature(p.Auth[0]) && p.RemoteID != "" && !SameID(p.RemoteID, got) {
			return false, fail("authentication-failed", NotifyInvalidIDInformation, "aggressive mode: the peer calls itself %s, the tunnel expects %s", got, p.RemoteID)
		}
		// Until the hash below verifies, this message is anyone's: what it
		// sets is set again by the genuine one.
		sa.setPhase1(p1)
		gxy, err := t.mm.dh.Shared(ke.Data)
		if err != nil {
			return false, fail("malformed", NotifyInvalidKeyInformation, "aggressive mode: %v", err)
		}
		t.mm.gxr, t.mm.nr = ke.Data, nonce.Data
		if err := t.mm.deriveKeys(m, sa, gxy, id); err != nil {
			return false, err
		}
		if IsSignature(sa.phase1.Auth) {
			if err := t.mm.checkSignature(sa, in, id, in.body(PayloadID)); err != nil {
				return false, err
			}
		} else if h, ok := in.get(PayloadHash).(*Data); !ok {
			return false, fail("malformed", NotifyPayloadMalformed, "aggressive mode message 2 lacks a HASH payload")
		} else if !hmac.Equal(t.mm.hash(sa, false, in.body(PayloadID)), h.Data) {
			return false, refusedProof(NotifyInvalidHashInformation, "aggressive mode: the peer's HASH does not verify (preshared keys differ)")
		}
		in.authed = true
		if !IsSignature(sa.phase1.Auth) {
			sa.peerID = got // with a signature, checkSignature set the certificate's subject
		}
		sa.p1encrypt = true
	case !sa.Initiator && step == 3:
		// HASH_I and SIG_I cover the initiator's ID from message 1.
		if IsSignature(sa.phase1.Auth) {
			if err := t.mm.checkSignature(sa, in, t.peerID, t.peerIDB); err != nil {
				return false, err
			}
			t.step = step
			return true, nil
		}
		h, ok := in.get(PayloadHash).(*Data)
		if !ok {
			return false, fail("malformed", NotifyPayloadMalformed, "aggressive mode message 3 lacks a HASH payload")
		}
		if !hmac.Equal(t.mm.hash(sa, true, t.peerIDB), h.Data) {
			return false, refusedProof(NotifyInvalidHashInformation, "aggressive mode: the peer's HASH does not verify (preshared keys differ)")
		}
		in.authed = true
		t.step = step
		return true, nil
	default:
		return false, fail("malformed", NotifyInvalidPayloadType, "aggressive mode: unexpected message at step %d", step)
	}
	t.step = step
	return false, nil
}
