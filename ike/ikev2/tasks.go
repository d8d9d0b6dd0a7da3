package ikev2

import (
	"bytes"
	stdx509 "crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"go.uber.org/zap"

	"github.com/gatehouse/gatehouse/auth/x509"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/alg"
)

// The engine's exchanges, both sides: the tasks this side starts
// (IKE_SA_INIT, IKE_AUTH, a child's creation, rekey and delete, the IKE
// SA's rekey and delete, liveness checks) and the answers to the peer's
// requests. The payload work is in ikeinit.go, ikeauth.go and
// createchild.go; here is what the engine does around it.

// authSide is our side of the peer's IKE_AUTH and children: our
// identity, the ESP suites, and the selectors of every child (each
// local subnet in TSi, each remote one in TSr: one child for a whole
// tunnel, section 2.9).
func (s *ikeSA) authSide(psk []byte) AuthSide {
	p := s.peer
	a := AuthSide{ID: s.localID(), PSK: psk, Suites: s.espSuites(), Transport: p.Transport}
	if len(p.Pairs) == 0 {
		a.Local = []Selector{PrefixSelector(hostPrefix(s.local))}
		a.Remote = []Selector{PrefixSelector(hostPrefix(s.remote))}
		return a
	}
	for _, pr := range p.Pairs {
		a.Local = appendSelector(a.Local, pr.Local)
		a.Remote = appendSelector(a.Remote, pr.Remote)
	}
	return a
}

func appendSelector(to []Selector, s ike.Selector) []Selector {
	t := PrefixSelector(s.Prefix)
	t.Protocol = s.Proto
	if s.Port != 0 {
		t.StartPort, t.EndPort = s.Port, s.Port
	}
	for _, o := range to {
		if o == t {
			return to
		}
	}
	return append(to, t)
}

// localID is what we call ourselves: the configured local.id, else our
// address.
func (s *ikeSA) localID() *ID {
	if id := s.peer.LocalID; id != nil {
		return &ID{IDType: id.IDType, Data: id.Data}
	}
	a := s.local.Addr().Unmap()
	if a.Is4() {
		return &ID{IDType: IDIPv4, Data: a.AsSlice()}
	}
	return &ID{IDType: IDIPv6, Data: a.AsSlice()}
}

// initTask is the initiator's IKE_SA_INIT; its response is read by
// initResponse, which is not a protected exchange.
type initTask struct{}

func (initTask) exchange() ExchangeType { return ExchangeIKESAInit }
func (initTask) request(s *ikeSA) ([]Payload, error) {
	ps := s.init.request(s.local, s.remote)
	for _, v := range s.peer.VendorIDs {
		ps = append(ps, &VendorID{Data: v}) // a client family's (gatehouse connect ikev2 --profile)
	}
	if s.peer.NoFragmentation {
		ps = withoutNotify(ps, NotifyFragmentationSupported)
	}
	if s.peer.ForceEncap {
		return ps, fakeNATSource(ps, s.rand)
	}
	return ps, nil
}
func (initTask) response(*ikeSA, []Payload) error { return nil }
func (initTask) failed(s *ikeSA, err error)       { s.m.failIKE(s, ExchangeIKESAInit, err) }

func (s *ikeSA) initResponse(msg *Message, b []byte) {
	err := s.init.response(msg, s.local, s.remote)
	if errors.Is(err, ErrRetry) {
		// Another group or a cookie: the same exchange again, message ID 0.
		s.req = nil
		if err := s.startRequest(initTask{}); err != nil {
			s.m.failIKE(s, ExchangeIKESAInit, err)
		}
		return
	}
	if err != nil {
		s.req = nil
		s.m.failIKE(s, ExchangeIKESAInit, err)
		return
	}
	s.msg1, s.msg2 = s.req.b[0], append([]byte(nil), b[:msg.Length]...)
	s.req = nil
	s.lastHeard = s.m.now()
	s.suite, s.keys, s.spir, s.nat = s.init.chosen, s.init.keys, s.init.spir, s.init.nat
	s.fragments = s.init.fragmentation && !s.peer.NoFragmentation
	if err := s.protectors(); err != nil {
		s.m.failIKE(s, ExchangeIKESAInit, err)
		return
	}
	if s.nat.Supported && (s.nat.PeerBehind || s.nat.WeBehind || s.peer.ForceEncap) {
		// Section 2.23: past a NAT, IKE_AUTH and ESP go to port 4500.
		s.encap = true
		s.local, s.remote = withPort(s.local, esp.NATTPort), withPort(s.remote, esp.NATTPort)
	}
	s.state, s.nextID = stateAuth, 1
	if s.peer.EAPClient != nil {
		s.queueTask(&eapAuthTask{first: true})
		return
	}
	me, err := s.ourAuthSide(s.peer.firstMethod())
	if err != nil {
		s.m.failIKE(s, ExchangeIKEAuth, err)
		return
	}
	if s.peer.AskAddress {
		me.CP, me.Local, me.Remote = cpRequest(), anyIPv4, anyIPv4
	}
	me.Others = s.m.othersWith(s)
	s.queueTask(&authTask{me: me})
}

// firstMethod is the method the tunnel authenticates with first, in
// IKEv1's numbering as the host and its plugins know it: an initiator
// uses it.
func (p *Peer) firstMethod() uint16 {
	if len(p.Auth) == 0 {
		return ike.AuthPSK
	}
	return p.Auth[0]
}

// certMethod is the tunnel's signature method (its certificate's key
// kind), 0 if it has none.
func (p *Peer) certMethod() uint16 {
	for _, m := range p.Auth {
		if ike.IsSignature(m) {
			return m
		}
	}
	return 0
}

// ourAuthSide is our side of IKE_AUTH for an auth method: the preshared
// key, or our certificate chain, identity and signer.
func (s *ikeSA) ourAuthSide(method uint16) (AuthSide, error) {
	if !ike.IsSignature(method) {
		psk, err := s.m.host.PSK(s.peer.PeerConfig, s.remote.Addr(), nil)
		if err != nil {
			return AuthSide{}, fmt.Errorf("the preshared key: %w", err)
		}
		return s.authSide(psk), nil
	}
	creds, err := s.m.host.LocalCredentials(s.peer.PeerConfig, method, nil)
	if err != nil {
		return AuthSide{}, fmt.Errorf("our certificate: %w", err)
	}
	me := s.authSide(nil)
	if creds.ID != nil && s.peer.LocalID == nil {
		me.ID = &ID{IDType: creds.ID.IDType, Data: creds.ID.Data}
	}
	me.Certs, me.CAs = creds.Chain, bytes.Join(creds.CAKeyIDs, nil)
	me.Sign = func(octets []byte, digital bool) (*Auth, error) {
		ds, ok := s.m.host.(DigestSigner)
		if !ok {
			return nil, errors.New("the host cannot sign for IKEv2")
		}
		return signAuth(method, digital, octets, func(scheme string, digest []byte) ([]byte, error) {
			return ds.SignDigest(s.peer.PeerConfig, method, scheme, digest)
		})
	}
	return me, nil
}

// nameAs answers, when we sign, with the identity the initiator asked
// for in its IDr if our certificate names it (section 3.5; RFC 4945
// section 3.1): macOS, iOS and strongSwan send the server's name as
// IDr and check that the IDr of the answer is that name, not our
// subject's DN.
func nameAs(me *AuthSide, req []Payload) {
	want, _ := Find(req, PayloadIDr).(*ID)
	if want == nil || len(me.Certs) == 0 {
		return
	}
	leaf, err := stdx509.ParseCertificate(me.Certs[0])
	if err == nil && x509.MatchID(leaf, want.IDType, want.Data) == nil {
		me.ID = &ID{IDType: want.IDType, Data: want.Data}
	}
}

// DigestSigner is what a host offers to sign IKEv2's AUTH: a digest,
// signed with the key of the tunnel's method by a scheme its auth plugin
// knows ("rsa-pkcs1-sha1" to "-sha512": PKCS #1 v1.5 with the DigestInfo;
// "ecdsa-der": an ASN.1 signature; IKEv1's method names: r and s).
type DigestSigner interface {
	SignDigest(peer *ike.PeerConfig, method uint16, scheme string, digest []byte) ([]byte, error)
}

// checkAuth verifies the peer's AUTH (CheckAuth): with the preshared key
// for its identity, or with its certificate chain, which the host's auth
// plugin checks against the tunnel's CAs; remote.id, when set, must be
// its identity (with a key) or one of its certificate's names.
func (s *ikeSA) checkAuth(prf alg.PRF, id *ID, auth *Auth, octets []byte, certs [][]byte) ([]byte, error) {
	p := s.peer
	claimed := ike.FormatID(id.IDType, id.Data)
	s.peerID = claimed
	if auth.Method == AuthPSK {
		if !slices.Contains(p.Auth, ike.AuthPSK) {
			return nil, errors.New("a preshared key, which this tunnel does not take")
		}
		if p.RemoteID != "" && !ike.SameID(p.RemoteID, claimed) {
			return nil, fmt.Errorf("the peer calls itself %s, not %s", claimed, p.RemoteID)
		}
		s.authName = "psk"
		return PSKCheck(func(*ID) ([]byte, error) {
			return s.m.host.PSK(p.PeerConfig, s.remote.Addr(), &ike.ID{IDType: id.IDType, Data: id.Data})
		})(prf, id, auth, octets, certs)
	}
	m := p.certMethod()
	if m == 0 {
		return nil, fmt.Errorf("a signature (method %d), but this tunnel takes a preshared key only", auth.Method)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("a signature from %s without its certificate", claimed)
	}
	pc, err := s.m.host.VerifyPeer(p.PeerConfig, m, certs, &ike.ID{IDType: id.IDType, Data: id.Data})
	if err != nil {
		return nil, fmt.Errorf("the certificate of %s is refused: %w", claimed, err)
	}
	if err := verifyAuth(pc.PublicKey, auth, octets); err != nil {
		return nil, fmt.Errorf("%s: %w", pc.Subject, err)
	}
	s.peerID = pc.Subject
	if m, err := ike.SignatureMethod(pc.PublicKey); err == nil {
		s.authName = ike.MethodName(m)
	}
	if p.RemoteID != "" && !ike.AnyID(p.RemoteID, pc.Names) {
		return nil, fmt.Errorf("the certificate of %s (%s) does not name %s, the tunnel's remote.id", s.remote.Addr(), pc.Subject, p.RemoteID)
	}
	return nil, nil
}

// authTask is the initiator's IKE_AUTH with its first child.
type authTask struct {
	me    AuthSide
	inSPI uint32
}

func (*authTask) exchange() ExchangeType { return ExchangeIKEAuth }

func (t *authTask) request(s *ikeSA) ([]Payload, error) {
	var err error
	if t.inSPI, err = s.m.host.AllocSPI(); err != nil {
		return nil, err
	}
	return s.init.authRequest(t.me, s.msg1, t.inSPI)
}

func (t *authTask) response(s *ikeSA, inner []Payload) error {
	defer clear(t.me.PSK)
	c, err := s.init.authResponse(t.me, s.checkAuth, inner, s.msg2, t.inSPI)
	var ne *NotifyError
	if err != nil && (!errors.As(err, &ne) || ne.Kind == NotifyAuthenticationFailed) {
		return err
	}
	s.m.up(s)
	if s.peer.AskAddress {
		s.eap = &eapState{}
		s.eap.addr, s.eap.dns = readCP(inner)
		s.mobike = len(Notifies(inner, NotifyMobikeSupported)) > 0
	}
	if err != nil {
		// Authenticated, but the child was refused: the IKE SA stands.
		s.m.negotiationError(s, ExchangeIKEAuth, true, err)
		return nil
	}
	if _, err := s.install(c, true, false, false); err != nil {
		s.m.negotiationError(s, ExchangeIKEAuth, true, err)
	}
	return nil
}

func (*authTask) failed(s *ikeSA, err error) { s.m.failIKE(s, ExchangeIKEAuth, err) }

// answerAuth is the responder's IKE_AUTH: check the initiator's
// identity and AUTH, answer with ours (by the same kind of method) and
// the first child. A failed authentication is answered with
// AUTHENTICATION_FAILED, and the SA goes.
func (s *ikeSA) answerAuth(inner []Payload) ([]Payload, func()) {
	// Section 2.23: behind a NAT, ESP goes in UDP.
	s.encap = s.nat.PeerBehind || s.nat.WeBehind || s.peer.ForceEncap
	if s.eap != nil {
		return s.continueEAP(inner)
	}
	if auth, _ := Find(inner, PayloadAuth).(*Auth); auth == nil && s.peer.RemoteAccess != nil && s.peer.RemoteAccess.EAP != nil {
		return s.startEAP(inner)
	}
	inSPI, err := s.m.host.AllocSPI()
	if err != nil {
		s.m.log.Warn("no SPI for an IKEv2 child", zapPeer(s), zapErr(err))
		return []Payload{&Notify{Kind: NotifyTemporaryFailure}}, func() {}
	}
	me := s.authSide(nil)
	if auth, _ := Find(inner, PayloadAuth).(*Auth); auth != nil && auth.Method != AuthPSK && s.peer.certMethod() != 0 {
		if me, err = s.ourAuthSide(s.peer.certMethod()); err != nil {
			return []Payload{&Notify{Kind: NotifyAuthenticationFailed}}, func() { s.m.failIKE(s, ExchangeIKEAuth, err) }
		}
		nameAs(&me, inner)
	}
	ra := s.peer.RemoteAccess
	if ra != nil {
		// A road warrior by key or certificate: its address is leased for
		// the identity it claims, and goes back if it does not prove it.
		idi, _ := Find(inner, PayloadIDi).(*ID)
		if idi == nil {
			return s.refuseAuth(errors.New("IKE_AUTH without IDi"))
		}
		if err := s.lease(ike.FormatID(idi.IDType, idi.Data), netip.Addr{}); err != nil {
			// Before its AUTH is checked: the notify alone (section 3.15.4).
			return []Payload{&Notify{Kind: NotifyInternalAddressFailure}}, func() {
				s.m.failIKE(s, ExchangeIKEAuth, &NotifyError{Kind: NotifyInternalAddressFailure, Why: err.Error()})
			}
		}
		me.Local, me.Remote = s.insideSelectors(), []Selector{PrefixSelector(netip.PrefixFrom(s.eap.addr, s.eap.addr.BitLen()))}
	}
	var key []byte
	check := func(prf alg.PRF, id *ID, auth *Auth, octets []byte, certs [][]byte) ([]byte, error) {
		key, err = s.checkAuth(prf, id, auth, octets, certs)
		return key, err
	}
	defer func() { clear(key) }()
	ps, c, err := s.init.authRespond(me, check, inner, s.msg1, s.msg2, inSPI)
	if ra != nil && ps != nil {
		ps = s.mobikeAnswer(inner, append(ps, s.cpReply(inner)))
	}
	if ps == nil {
		kind := NotifyAuthenticationFailed
		var ne *NotifyError
		if errors.As(err, &ne) {
			kind = ne.Kind
		}
		return []Payload{&Notify{Kind: kind}}, func() { s.m.failIKE(s, ExchangeIKEAuth, err) }
	}
	s.m.up(s)
	if len(Notifies(inner, NotifyInitialContact)) > 0 {
		// Section 2.4: the peer holds no other SA with us (it restarted);
		// what we still hold with it is stale.
		s.m.forgetOthers(s)
	}
	if err != nil {
		s.m.negotiationError(s, ExchangeIKEAuth, false, err)
		return ps, func() {}
	}
	// Inbound and outbound now: the initiator may send as soon as it
	// reads the answer.
	if _, err := s.install(c, false, false, false); err != nil {
		s.m.negotiationError(s, ExchangeIKEAuth, false, err)
	}
	return ps, func() {}
}

// childTask creates a child, or rekeys old (section 1.3.3).
type childTask struct {
	old *child
	x   *childExchange
}

func (*childTask) exchange() ExchangeType { return ExchangeCreateChildSA }

func (t *childTask) request(s *ikeSA) ([]Payload, error) {
	inSPI, err := s.m.host.AllocSPI()
	if err != nil {
		return nil, err
	}
	me := s.authSide(nil)
	t.x = &childExchange{sa: s, me: me, inSPI: inSPI, pfs: s.peer.PFS}
	if t.old != nil {
		if t.old.superseded || !s.hasChild(t.old) {
			return nil, errGone
		}
		t.x.me.Local, t.x.me.Remote, t.x.rekey = t.old.local, t.old.remote, t.old.sa.InSPI
	}
	return t.x.request()
}

// errGone: the child a queued task was for went in the meantime.
var errGone = errors.New("the child SA is gone")

func (t *childTask) response(s *ikeSA, inner []Payload) error {
	c, err := t.x.response(inner)
	if err != nil {
		return err
	}
	old := t.old
	if old != nil && old.peerRekey != nil && bytes.Compare(lowest(t.x.ni, t.x.nr), old.peerRekeyNonce) < 0 {
		// Section 2.8.1: both sides rekeyed the child at once, and ours
		// holds the lowest nonce: ours is the redundant one. We delete
		// it (never sending on it) and the peer deletes the old child.
		n, err := s.install(c, true, true, true)
		if err == nil {
			s.m.log.Info("simultaneous child rekey: ours is redundant and goes", zapPeer(s), zap.Stringer("child", n.sa))
			s.deleteChild(n, "redundant: the peer rekeyed the same SA at once")
		}
		return err
	}
	if _, err := s.install(c, true, old != nil, false); err != nil {
		return err
	}
	if old != nil && old.peerRekey != nil {
		old.peerRekey.outPending = false // the peer's is the redundant one: never ours to send on
	}
	if old != nil && s.hasChild(old) {
		old.superseded = true
		s.deleteChild(old, "replaced by a rekeyed SA")
	}
	return nil
}

// lowest is the lower of an exchange's two nonces.
func lowest(ni, nr []byte) []byte {
	if bytes.Compare(ni, nr) < 0 {
		return ni
	}
	return nr
}

func (t *childTask) failed(s *ikeSA, err error) {
	if errors.Is(err, errGone) {
		return
	}
	if t.old != nil {
		t.old.rekeying = false
		t.old.rekeyAt = s.m.now().Add(s.m.retryDelay())
	}
	if temporary(err) {
		s.m.log.Info("the peer asked us to rekey later", zapPeer(s), zap.Error(err))
		return
	}
	s.m.negotiationError(s, ExchangeCreateChildSA, true, err)
}

// temporary: the peer answered TEMPORARY_FAILURE (section 2.25): it is
// busy with a rekey of its own; we try again a little later.
func temporary(err error) bool {
	var ne *NotifyError
	return errors.As(err, &ne) && ne.Kind == NotifyTemporaryFailure
}

func (s *ikeSA) hasChild(c *child) bool {
	for _, o := range s.children {
		if o == c {
			return true
		}
	}
	return false
}

// answerCreateChild answers a new child, a child's rekey, or the IKE
// SA's rekey; a refusal is answered with its notify and the IKE SA
// stands.
func (s *ikeSA) answerCreateChild(inner []Payload) ([]Payload, func()) {
	nothing := func() {}
	var ours task
	if s.req != nil {
		ours = s.req.t
	}
	_, rekeyingIKE := ours.(*ikeRekeyTask)
	if offer, _ := Find(inner, PayloadSA).(*SA); offer != nil && len(offer.Proposals) > 0 && offer.Proposals[0].Protocol == ProtoIKE {
		if _, rekeyingChild := ours.(*childTask); rekeyingChild || rekeyingIKE {
			// Section 2.25.2: not while a rekey of ours is under way
			// (for two IKE SA rekeys at once both sides say so, and
			// each tries again after its own random delay).
			return []Payload{&Notify{Kind: NotifyTemporaryFailure}}, nothing
		}
		ps, rk, err := s.respondIKE(s.suites(), s.m.newSPI(), inner)
		if err != nil {
			return s.refused(err)
		}
		s.m.rekeyed(s, rk, false)
		return ps, nothing
	}
	if rekeyingIKE {
		return []Payload{&Notify{Kind: NotifyTemporaryFailure}}, nothing // section 2.25.2
	}
	me := s.authSide(nil)
	var old *child
	for _, n := range Notifies(inner, NotifyRekeySA) {
		if n.Protocol != ProtoESP || len(n.SPI) != 4 {
			continue
		}
		// The SPI the initiator receives on: our outbound one.
		if old = s.childByOutSPI(binary.BigEndian.Uint32(n.SPI)); old == nil {
			return s.refused(&NotifyError{Kind: NotifyChildSANotFound, Why: fmt.Sprintf("no child SA with SPI %x to rekey", n.SPI)})
		}
		me.Local, me.Remote = old.local, old.remote
	}
	inSPI, err := s.m.host.AllocSPI()
	if err != nil {
		return s.refused(&NotifyError{Kind: NotifyTemporaryFailure, Why: err.Error()})
	}
	ps, c, err := s.respondChild(me, s.peer.PFS, inner, inSPI)
	if err != nil {
		return s.refused(err)
	}
	// A rekey's outbound SA waits for the old one's delete (childDeleted).
	n, err := s.install(c, false, old != nil, old != nil)
	if err != nil {
		return s.refused(&NotifyError{Kind: NotifyTemporaryFailure, Why: err.Error()})
	}
	if old != nil {
		if t, ok := ours.(*childTask); ok && t.old == old {
			// Our rekey of the same child is in flight: whichever
			// exchange has the lowest nonce loses (section 2.8.1).
			nr, _ := Find(ps, PayloadNonce).(*Nonce)
			ni, _ := Find(inner, PayloadNonce).(*Nonce)
			old.peerRekey, old.peerRekeyNonce = n, bytes.Clone(lowest(ni.Data, nr.Data))
		} else {
			old.superseded = true
		}
	}
	return ps, nothing
}

// refused answers a request with the notify of its refusal, and tells
// the operator.
func (s *ikeSA) refused(err error) ([]Payload, func()) {
	kind := NotifyNoProposalChosen
	var data []byte
	var ne *NotifyError
	if errors.As(err, &ne) {
		kind, data = ne.Kind, ne.Data
	}
	s.m.negotiationError(s, ExchangeCreateChildSA, false, err)
	return []Payload{&Notify{Kind: kind, Data: data}}, func() {}
}

// deleteChild tells the peer a child goes, and removes it when the
// peer answers (or does not).
func (s *ikeSA) deleteChild(c *child, why string) {
	c.deleting = true
	s.queueTask(&deleteChildTask{c: c, why: why})
}

// deleteChildTask deletes a child: our inbound SPI goes to the peer,
// which answers with its own (section 1.4.1).
type deleteChildTask struct {
	c   *child
	why string
}

func (*deleteChildTask) exchange() ExchangeType { return ExchangeInformational }

func (t *deleteChildTask) request(s *ikeSA) ([]Payload, error) {
	if !s.hasChild(t.c) {
		return nil, errGone
	}
	return []Payload{&Delete{Protocol: ProtoESP, SPIs: [][]byte{spiBytes(t.c.sa.InSPI)}}}, nil
}

func (t *deleteChildTask) response(s *ikeSA, _ []Payload) error {
	t.failed(s, nil)
	return nil
}

func (t *deleteChildTask) failed(s *ikeSA, _ error) {
	if !s.hasChild(t.c) {
		return
	}
	why := t.why
	if t.c.superseded {
		why = "replaced by a rekeyed SA"
	}
	s.removeChild(t.c, why)
}

// ikeRekeyTask rekeys the IKE SA (section 1.3.2); the old one is
// deleted once the new one is up.
type ikeRekeyTask struct{ r *ikeRekey }

func (*ikeRekeyTask) exchange() ExchangeType { return ExchangeCreateChildSA }

func (t *ikeRekeyTask) request(s *ikeSA) ([]Payload, error) {
	ours := s.suites()
	if s.flags.Has(ike.FlagRekeyMODP2048First) {
		ours = modp2048First(ours)
	}
	t.r = &ikeRekey{sa: s, ours: ours, spi: s.m.newSPI()}
	return t.r.request()
}

func (t *ikeRekeyTask) response(s *ikeSA, inner []Payload) error {
	rk, err := t.r.response(inner)
	if err != nil {
		return err
	}
	s.m.rekeyed(s, rk, true)
	s.queueTask(deleteIKETask{})
	return nil
}

func (t *ikeRekeyTask) failed(s *ikeSA, err error) {
	s.rekeying = false
	s.rekeyAt = s.m.now().Add(s.m.retryDelay())
	if temporary(err) {
		s.m.log.Info("the peer asked us to rekey the IKE SA later", zapPeer(s), zap.Error(err))
		return
	}
	s.m.negotiationError(s, ExchangeCreateChildSA, true, fmt.Errorf("IKE SA rekey: %w", err))
}

// deleteIKETask deletes the IKE SA; its children (if any are left) go
// with it.
type deleteIKETask struct{}

func (deleteIKETask) exchange() ExchangeType { return ExchangeInformational }
func (deleteIKETask) request(*ikeSA) ([]Payload, error) {
	return []Payload{&Delete{Protocol: ProtoIKE}}, nil
}
func (deleteIKETask) response(s *ikeSA, _ []Payload) error {
	s.m.remove(s, "deleted", false)
	return nil
}
func (deleteIKETask) failed(s *ikeSA, _ error) { s.m.remove(s, "deleted", false) }

// livenessTask is an empty INFORMATIONAL request (section 2.4): any
// answer proves the peer alive.
type livenessTask struct{}

func (livenessTask) exchange() ExchangeType            { return ExchangeInformational }
func (livenessTask) request(*ikeSA) ([]Payload, error) { return nil, nil }
func (livenessTask) response(*ikeSA, []Payload) error  { return nil }
func (livenessTask) failed(*ikeSA, error)              {}
