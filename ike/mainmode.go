package ike

import (
	"crypto/hmac"
	"fmt"
	"slices"
	"strings"
)

// mainMode is the main mode task (RFC 2409 section 5), with preshared
// keys (5.4) or signatures (5.1):
//
//	Initiator                          Responder
//	HDR, SA                     -->
//	                            <--    HDR, SA
//	HDR, KE, Ni [, CR]          -->
//	                            <--    HDR, KE, Nr [, CR]
//	HDR*, IDii, HASH_I          -->    (signatures: IDii, CERT, SIG_I)
//	                            <--    HDR*, IDir, HASH_R (IDir, CERT, SIG_R)
//
// step is the number of the next message this side builds or reads.
type mainMode struct {
	step     int
	dh       DH
	gxi, gxr []byte
	ni, nr   []byte
	saiB     []byte // the initiator's SA payload body as sent
	offered  *SA
	// Signatures: our credentials (fetched once) and the CA names the
	// peer's CERTREQs asked for.
	cred    *LocalCredentials
	peerCAs [][]byte
	// gss is set when the method is GSS-API (gss.go).
	gss *gssState
	// aggressive: this state serves aggressive mode (aggressive.go).
	aggressive bool
}

const nonceLen = 32

func (t *mainMode) build(x *exchange, out *msg) (bool, error) {
	sa := x.sa
	if t.step == 0 {
		t.step = 1
	}
	switch {
	case sa.Initiator && t.step == 1:
		p := sa.Peer
		t.offered = p.phase1Offer()
		gss := slices.Contains(p.Auth, AuthGSS)
		if gss {
			tr := t.offered.Proposals[0].Transforms
			for i := range tr {
				if a, _ := tr[i].Attr(p1Auth); a.Value == AuthGSS {
					tr[i] = withGSSIdentity(tr[i], p.GSS)
				}
			}
		}
		t.saiB = t.offered.appendBody(nil)
		out.add(t.offered) // RFC 2408 section 4.6: the SA comes first
		if gss {
			out.add(&Data{T: PayloadVendorID, Data: vidGSSAPI}, &Data{T: PayloadVendorID, Data: vidMSNT5})
		}
	case !sa.Initiator && t.step == 2:
		out.add(t.offered) // the chosen transform, set by process
		if t.gss != nil {
			out.add(&Data{T: PayloadVendorID, Data: vidGSSAPI})
		}
	case sa.Initiator && t.step == 3, !sa.Initiator && t.step == 4:
		pub := t.gxi
		if !sa.Initiator {
			pub = t.gxr
		}
		nonce := t.ni
		if !sa.Initiator {
			nonce = t.nr
		}
		out.add(&Data{T: PayloadKE, Data: pub}, &Data{T: PayloadNonce, Data: nonce})
		if IsSignature(sa.phase1.Auth) {
			if err := t.addCertReqs(sa, out); err != nil {
				return false, err
			}
		}
		if t.gss != nil {
			if sa.Initiator {
				if err := t.gssStep(sa, nil); err != nil {
					return false, err
				}
			}
			t.addGSS(sa, out)
		}
		if !sa.Initiator {
			sa.p1encrypt = true // message 5 on is encrypted
		}
	case t.gss != nil && t.step >= 5 && (t.step%2 == 1) == sa.Initiator:
		// GSS-API: as many rounds as the contexts need (gss.go).
		done, err := t.buildGSS(sa, out)
		if err != nil || len(out.payloads) == 0 {
			return false, err
		}
		t.step++
		return done, nil
	case sa.Initiator && t.step == 5, !sa.Initiator && t.step == 6:
		if IsSignature(sa.phase1.Auth) {
			if err := t.addSignature(sa, out); err != nil {
				return false, err
			}
		} else {
			id := sa.localID()
			out.add(id, &Data{T: PayloadHash, Data: t.hash(sa, sa.Initiator, id.appendBody(nil))})
		}
		if sa.Initiator && !sa.m.peerEstablished(sa.Peer) {
			// RFC 2407 section 4.6.3.3: we hold nothing with this peer, so
			// whatever it holds with us is stale (we restarted).
			out.add(sa.isakmpNotify(NotifyInitialContact, nil))
		}
	default:
		return false, nil // nothing to send at this step
	}
	t.step++
	return !sa.Initiator && t.step > 6, nil
}

func (t *mainMode) process(x *exchange, in *msg) (bool, error) {
	sa, m := x.sa, managerOf(x)
	if t.step == 0 {
		t.step = 1
	}
	var err error
	switch {
	case !sa.Initiator && t.step == 1:
		err = t.chooseProposal(sa, in)
	case sa.Initiator && t.step == 2:
		err = t.acceptChoice(m, sa, in)
	case !sa.Initiator && t.step == 3, sa.Initiator && t.step == 4:
		err = t.exchangeKeys(m, sa, in)
	case t.gss != nil && t.step >= 5 && (t.step%2 == 1) != sa.Initiator:
		if err := t.processGSS(sa, in); err != nil {
			return false, err
		}
		t.noteInitialContact(sa, in)
		t.step++
		return t.gss.hashSent && t.gss.peerHashOK, nil
	case !sa.Initiator && t.step == 5, sa.Initiator && t.step == 6:
		if err := t.checkPeer(sa, in); err != nil {
			return false, err
		}
		t.noteInitialContact(sa, in)
		t.step++
		return sa.Initiator, nil
	default:
		return false, fail("malformed", NotifyInvalidPayloadType, "main mode: unexpected message at step %d", t.step)
	}
	if err != nil {
		return false, err
	}
	t.step++
	return false, nil
}

// chooseProposal answers message 1: the responder picks one of the
// initiator's proposals (RFC 2409 section 5).
func (t *mainMode) chooseProposal(sa *IKESA, in *msg) error {
	offered, ok := in.get(PayloadSA).(*SA)
	if !ok {
		return fail("malformed", NotifyPayloadMalformed, "main mode message 1 has no SA payload")
	}
	auths := sa.Peer.Auth
	if !sa.vendor.flags.Has(FlagGSSAPI) {
		auths = withoutGSS(auths) // 65001 without the vendor ID is XAUTH's, which we do not speak
	}
	p1, reply, err := SelectPhase1(offered, sa.proposals(), auths)
	if err != nil {
		if len(auths) < len(sa.Peer.Auth) {
			err = fmt.Errorf("%w (gss-krb5 needs the peer's GSSAPI or MS NT5 vendor ID)", err)
		}
		if sa.vendor.interop.Hint != "" {
			err = fmt.Errorf("%w; %s", err, sa.vendor.interop.Hint)
		}
		return &failure{reason: "no-proposal-chosen", notify: NotifyNoProposalChosen, err: fmt.Errorf("main mode: %w", err)}
	}
	if p1.Auth == AuthGSS {
		tr := &reply.Proposals[0].Transforms[0]
		t.gss = &gssState{giI: gssIdentityOf(*tr)}
		*tr = withGSSIdentity(*tr, sa.Peer.GSS)
		t.gss.giR = gssIdentityOf(*tr)
		sa.gss = &t.gss.ctx
	}
	sa.setPhase1(p1)
	t.offered, t.saiB = reply, in.body(PayloadSA)
	return nil
}

// acceptChoice reads message 2: the responder's choice must be one of
// our proposals; then our Diffie-Hellman half is made.
func (t *mainMode) acceptChoice(m *Manager, sa *IKESA, in *msg) error {
	reply, ok := in.get(PayloadSA).(*SA)
	if !ok {
		return fail("malformed", NotifyPayloadMalformed, "main mode message 2 has no SA payload")
	}
	p1, err := sa.Peer.acceptPhase1Reply(reply)
	if err != nil {
		return &failure{reason: "no-proposal-chosen", notify: NotifyNoProposalChosen, err: fmt.Errorf("main mode: %w", err)}
	}
	if p1.Auth == AuthGSS {
		if err := t.startGSSInitiator(sa, in, reply.Proposals[0].Transforms[0]); err != nil {
			return err
		}
	}
	sa.setPhase1(p1)
	if err := t.startDH(m, sa); err != nil {
		return err
	}
	t.gxi, t.ni = t.dh.Public(), m.random(nonceLen)
	return nil
}

// setPhase1 settles the chosen proposal, with the shorter of the two
// lifetimes (ours or the one offered) in force.
func (sa *IKESA) setPhase1(p1 Phase1) {
	sa.phase1 = p1
	sa.phase1.Lifetime = shorter(p1.Lifetime, sa.Peer.Lifetime)
}

// exchangeKeys reads message 3 (responder) or 4 (initiator): the peer's
// KE and nonce give the shared secret and SKEYID; with Kerberos, the
// first GSS token rides along.
func (t *mainMode) exchangeKeys(m *Manager, sa *IKESA, in *msg) error {
	ke, ok1 := in.get(PayloadKE).(*Data)
	nonce, ok2 := in.get(PayloadNonce).(*Data)
	if !ok1 || !ok2 {
		return fail("malformed", NotifyPayloadMalformed, "main mode message %d lacks KE or nonce", t.step)
	}
	peerPub := ke.Data
	if !sa.Initiator {
		if err := t.startDH(m, sa); err != nil {
			return err
		}
		t.gxi, t.gxr, t.ni, t.nr = ke.Data, t.dh.Public(), nonce.Data, m.random(nonceLen)
	} else {
		t.gxr, t.nr = ke.Data, nonce.Data
	}
	t.readCertReqs(in)
	gxy, err := t.dh.Shared(peerPub)
	if err != nil {
		return fail("malformed", NotifyInvalidKeyInformation, "main mode: %v", err)
	}
	if err := t.deriveKeys(m, sa, gxy, nil); err != nil {
		return err
	}
	if t.gss != nil {
		tok, ok := in.get(PayloadGSS).(*GSS)
		if !ok {
			return fail("malformed", NotifyPayloadMalformed, "main mode message %d lacks a GSS token", t.step)
		}
		if err := t.gssStep(sa, tok.Token); err != nil {
			return err
		}
	}
	if sa.Initiator {
		sa.p1encrypt = true
	}
	return nil
}

// checkPeer reads message 5 (responder) or 6 (initiator): the peer's
// identity and its proof, a signature or HASH_I/HASH_R.
func (t *mainMode) checkPeer(sa *IKESA, in *msg) error {
	id, ok := in.get(PayloadID).(*ID)
	if !ok {
		return fail("malformed", NotifyPayloadMalformed, "main mode message %d lacks an ID payload", t.step)
	}
	if IsSignature(sa.phase1.Auth) {
		return t.checkSignature(sa, in, id, in.body(PayloadID))
	}
	h, ok := in.get(PayloadHash).(*Data)
	if !ok {
		return fail("malformed", NotifyPayloadMalformed, "main mode message %d lacks a HASH payload", t.step)
	}
	if !hmac.Equal(t.hash(sa, !sa.Initiator, in.body(PayloadID)), h.Data) {
		return refusedProof(NotifyInvalidHashInformation, "main mode: the peer's HASH does not verify (preshared keys differ)")
	}
	in.authed = true
	// The key was chosen by address (see PeerConfig); the identity the
	// peer proved with it must be the configured one, if any.
	sa.peerID = FormatID(id.IDType, id.Data)
	if p := sa.Peer; p.RemoteID != "" && !SameID(p.RemoteID, sa.peerID) {
		return fail("authentication-failed", NotifyInvalidIDInformation, "main mode: the peer calls itself %s, the tunnel expects %s (remote.id)",
			sa.peerID, p.RemoteID)
	}
	return nil
}

func (t *mainMode) noteInitialContact(sa *IKESA, in *msg) {
	for _, n := range in.all(PayloadNotify) {
		if n.(*Notify).Kind == NotifyInitialContact {
			sa.initialContact = true
		}
	}
}

// startGSSInitiator reads the responder's GSS identity from its choice
// and settles whom our ticket is for.
func (t *mainMode) startGSSInitiator(sa *IKESA, in *msg, chosen Transform) error {
	if !sa.vendor.flags.Has(FlagGSSAPI) {
		return fail("no-proposal-chosen", NotifyNoProposalChosen, "main mode: the responder chose method 65001 without a GSS-API vendor ID (XAUTH?)")
	}
	g := &gssState{ctx: GSSContext{Initiator: true, Target: sa.Peer.GSS.Target}}
	for _, tr := range t.offered.Proposals[0].Transforms {
		if tr.Number == chosen.Number {
			g.giI = gssIdentityOf(tr)
		}
	}
	g.giR = gssIdentityOf(chosen)
	if g.ctx.Target == "" {
		name, err := parseGSSIdentity(g.giR)
		if err != nil || name == "" {
			return fail("authentication-failed", NotifyAuthenticationFailed, "main mode: the responder sent no usable GSS identity (%v) and no target principal is configured", err)
		}
		if strings.Contains(name, "@") && !sa.Peer.GSS.allowed(name) {
			// Not even a ticket for a principal we would not take.
			return refusedProof(NotifyAuthenticationFailed, "main mode: the responder names itself %s, not among this rule's Kerberos peers %v (allowed_peers)",
				name, sa.Peer.GSS.AllowedPeers)
		}
		g.ctx.Target = name
	}
	t.gss, sa.gss = g, &g.ctx
	return nil
}

// hash is HASH_I (of the initiator's identity) or HASH_R.
func (t *mainMode) hash(sa *IKESA, initiators bool, idB []byte) []byte {
	if initiators {
		return HashI(sa.prf, sa.keys.SKEYID, t.gxi, t.gxr, sa.SPIi, sa.SPIr, t.saiB, idB)
	}
	return HashR(sa.prf, sa.keys.SKEYID, t.gxi, t.gxr, sa.SPIi, sa.SPIr, t.saiB, idB)
}

func (t *mainMode) startDH(m *Manager, sa *IKESA) error {
	if t.dh != nil {
		t.dh.Wipe() // a refused message 3 made one before
	}
	dh, err := NewDH(sa.phase1.Group, m.rand)
	if err != nil {
		return fail("no-proposal-chosen", NotifyNoProposalChosen, "main mode: %v", err)
	}
	t.dh = dh
	return nil
}

// deriveKeys computes SKEYID and its children and the first IV.
func (t *mainMode) deriveKeys(m *Manager, sa *IKESA, gxy []byte, peerID *ID) error {
	prf, err := NewPRF(sa.phase1.Hash)
	if err != nil {
		return fail("no-proposal-chosen", NotifyNoProposalChosen, "main mode: %v", err)
	}
	var skeyid []byte
	if IsSignature(sa.phase1.Auth) || sa.phase1.Auth == AuthGSS {
		skeyid = SkeyidSig(prf, t.ni, t.nr, gxy)
	} else {
		psk, err := m.host.PSK(sa.Peer, sa.Remote.Addr(), peerID)
		if err != nil {
			return fail("authentication-failed", NotifyAuthenticationFailed, "main mode: no preshared key for %s: %v", sa.Remote.Addr(), err)
		}
		if len(psk) == 0 {
			return fail("authentication-failed", NotifyAuthenticationFailed, "main mode: empty preshared key for %s", sa.Remote.Addr())
		}
		skeyid = SkeyidPSK(prf, psk, t.ni, t.nr)
		clear(psk) // our copy of the key has done its work
	}
	sa.prf = prf
	sa.keys = DeriveKeys(prf, skeyid, gxy, sa.SPIi, sa.SPIr)
	clear(gxy) // g^xy has done its work
	c, err := newCrypter(sa.phase1, EncryptionKey(prf, sa.keys.E, sa.phase1.keyLen()))
	if err != nil {
		return fail("no-proposal-chosen", NotifyNoProposalChosen, "main mode: %v", err)
	}
	sa.crypt = c
	sa.p1iv = Phase1IV(prf, t.gxi, t.gxr, c.blockSize())
	return nil
}

// wipe zeroes the exchange's private DH value when the exchange ends.
func (t *mainMode) wipe() {
	if t.dh != nil {
		t.dh.Wipe()
	}
}

// managerOf finds the manager through the SA (set when the SA is made).
func managerOf(x *exchange) *Manager { return x.sa.m }
