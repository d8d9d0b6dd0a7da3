package ikev2

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/gatehouse/gatehouse/auth/eap"
	"github.com/gatehouse/gatehouse/ike"
)

// Remote access by EAP (RFC 7296 sections 2.16 and 3.15): a client that
// sends no AUTH in its first IKE_AUTH asks for EAP. The server answers
// with its own AUTH (certificate or key) and the first EAP request; EAP
// runs over further IKE_AUTH exchanges; then both send AUTH keyed with
// the EAP method's MSK, and the server's last answer carries the
// client's virtual address (configuration payload) and its child SA.
//
//	Client                                 Server
//	IDi, [CERTREQ,] CP(CFG_REQUEST), SA, TSi, TSr  -->
//	                                       <--  IDr, [CERT,] AUTH, EAP(Request/Identity)
//	EAP(Response)                          -->
//	                                       <--  EAP(Request) ... EAP(Success)
//	AUTH (from the MSK)                    -->
//	                                       <--  AUTH, CP(CFG_REPLY), SA, TSi, TSr

// Configuration attributes (section 3.15.1).
const (
	CfgInternalIP4Address uint16 = 1
	CfgInternalIP4Netmask uint16 = 2
	CfgInternalIP4DNS     uint16 = 3
	CfgInternalIP4NBNS    uint16 = 4
	CfgInternalIP6Address uint16 = 8
	CfgInternalIP6DNS     uint16 = 10
	CfgInternalDNSDomain  uint16 = 25 // RFC 8598
)

// RemoteAccess makes a wildcard peer serve road warriors: each, once
// authenticated (by EAP, or by the peer's key or a certificate), gets a
// virtual address in a configuration payload and a child from it to the
// inside networks.
type RemoteAccess struct {
	// Lease gives an authenticated user a virtual address (outer is
	// where the client is; want, when valid, the address a RADIUS server
	// gave it as Framed-IP-Address), with the DNS servers to announce;
	// Release returns it when the IKE SA goes, saying why.
	Lease   func(user string, outer netip.AddrPort, want netip.Addr) (addr netip.Addr, dns []netip.Addr, err error)
	Release func(addr netip.Addr, why string)
	// NBNS are WINS servers, for the clients that ask (Windows);
	// DNSDomains the domains whose names the DNS servers resolve, for
	// clients that do split DNS (INTERNAL_DNS_DOMAIN, RFC 8598).
	NBNS       []netip.Addr
	DNSDomains []string
	// Inside are the networks the clients reach (TSr); none: all of IPv4.
	Inside []netip.Prefix
	// EAP, when set, starts an EAP session for a client (at outer) that
	// asks for EAP (no AUTH in its first IKE_AUTH).
	EAP func(outer netip.AddrPort) EAPSession
	// SlowEAP runs each EAP round outside the engine's lock, on a
	// goroutine of its own, for methods that may wait (a RADIUS server,
	// a plugin): the other SAs go on meanwhile, and the client's
	// retransmissions are ignored until the answer is sent.
	SlowEAP bool
}

// EAPSession is the server's side of one client's EAP method: EAP-MSCHAPv2
// here (eap.Server), or a relay to a RADIUS server that runs the method.
type EAPSession interface {
	Start() ([]byte, error)
	Receive(b []byte) ([]byte, error)
	Done() bool
	Succeeded() bool
	MSK() []byte
	User() string
	Err() error
}

// framedAddress is what an EAPSession offers when its server chose the
// user's address (a RADIUS Framed-IP-Address).
type framedAddress interface{ FramedAddress() netip.Addr }

// MSCHAPv2 is EAP-MSCHAPv2 against verify, the server calling itself
// name.
func MSCHAPv2(name string, verify eap.Verifier, rand io.Reader) func(netip.AddrPort) EAPSession {
	return func(netip.AddrPort) EAPSession { return eap.NewServer(name, verify, rand) }
}

// EAPClient makes a peer authenticate us by EAP-MSCHAPv2 and ask for a
// virtual address (gatehouse connect ikev2).
type EAPClient struct {
	Identity, Password string
}

// eapState is an IKE SA's EAP exchange under way: the server's or the
// client's side, the first IKE_AUTH request (whose SA, TSi, TSr and CP
// the last round answers) and the client's IDi.
type eapState struct {
	server   EAPSession
	client   *eap.Peer
	first    []Payload
	idi, idr *ID
	inSPI    uint32 // the client's child's inbound SPI
	// What the server gave the client.
	addr netip.Addr
	dns  []netip.Addr
	// busy: a round runs outside the lock (RemoteAccess.SlowEAP).
	busy bool
}

// startEAP answers a client's first IKE_AUTH that asks for EAP: our
// identity, our AUTH and EAP-Request/Identity.
func (s *ikeSA) startEAP(inner []Payload) ([]Payload, func()) {
	idi, _ := Find(inner, PayloadIDi).(*ID)
	if idi == nil {
		return s.refuseAuth(errors.New("IKE_AUTH without IDi"))
	}
	method := s.peer.certMethod()
	if method == 0 {
		method = s.peer.firstMethod()
	}
	me, err := s.ourAuthSide(method)
	if err != nil {
		return s.refuseAuth(err)
	}
	nameAs(&me, inner)
	prf := s.suite.PRF.PRF()
	idr := &ID{T: PayloadIDr, IDType: me.ID.IDType, Data: me.ID.Data}
	auth, err := s.init.ourAuth(me, me.PSK, signedOctets(prf, s.msg2, s.init.ni, s.keys.Pr, idr))
	clear(me.PSK)
	if err != nil {
		return s.refuseAuth(err)
	}
	s.eap = &eapState{server: s.peer.RemoteAccess.EAP(s.remote), first: inner, idi: idi, idr: idr}
	req, err := s.eap.server.Start()
	if err != nil {
		return s.refuseAuth(err)
	}
	s.peerID = ike.FormatID(idi.IDType, idi.Data)
	ps := append([]Payload{idr}, certPayloads(me.Certs)...)
	return append(ps, auth, &EAP{Data: req}), func() {}
}

// eapAsync starts an EAP round on a goroutine of its own, when the
// method may wait (RemoteAccess.SlowEAP), and reports whether it did. The
// answer goes out once the round is done, if the SA is still there.
func (s *ikeSA) eapAsync(msg *Message, b []byte, inner []Payload, local, remote netip.AddrPort) bool {
	st, ra := s.eap, s.peer.RemoteAccess
	e, _ := Find(inner, PayloadEAP).(*EAP)
	if st == nil || st.server == nil || ra == nil || !ra.SlowEAP || e == nil || st.server.Done() {
		return false
	}
	st.busy = true
	b = append([]byte(nil), b...)
	go func() {
		out, err := st.server.Receive(e.Data)
		s.m.mu.Lock()
		defer s.m.mu.Unlock()
		st.busy = false
		if s.state != stateAuth || s.eap != st || msg.MessageID != s.peerNext {
			return // the SA went meanwhile
		}
		ps, after := s.eapRound(out, err)
		s.answer(msg, b, ps, after, local, remote)
	}()
	return true
}

// continueEAP carries one EAP round, or checks the client's final AUTH
// and answers with ours, its address and its child.
func (s *ikeSA) continueEAP(inner []Payload) ([]Payload, func()) {
	st := s.eap
	if e, _ := Find(inner, PayloadEAP).(*EAP); e != nil && !st.server.Done() {
		return s.eapRound(st.server.Receive(e.Data))
	}
	auth, _ := Find(inner, PayloadAuth).(*Auth)
	if auth == nil || !st.server.Succeeded() {
		return s.refuseAuth(errors.New("IKE_AUTH without EAP or the final AUTH"))
	}
	prf, msk := s.suite.PRF.PRF(), st.server.MSK()
	if auth.Method != AuthPSK || !hmac.Equal(auth.Data, pskAuth(prf, msk, signedOctets(prf, s.msg1, s.init.nr, s.keys.Pi, st.idi))) {
		return s.refuseAuth(fmt.Errorf("the AUTH after EAP does not verify with the MSK of %s", st.server.User()))
	}
	s.peerID, s.authName = st.server.User(), "eap"
	var want netip.Addr
	if f, ok := st.server.(framedAddress); ok {
		want = f.FramedAddress()
	}
	// Our AUTH over our octets, keyed with the MSK too (section 2.16).
	ours := &Auth{Method: AuthPSK, Data: pskAuth(prf, msk, signedOctets(prf, s.msg2, s.init.ni, s.keys.Pr, st.idr))}
	if err := s.lease(st.server.User(), want); err != nil {
		return s.noAddress(ours, err)
	}
	s.m.up(s)
	if len(Notifies(st.first, NotifyInitialContact)) > 0 {
		s.m.forgetOthers(s)
	}
	return s.mobikeAnswer(st.first, append([]Payload{ours}, s.roadWarriorChild(st.first)...)), func() {}
}

// noAddress answers an authenticated road warrior that no address could
// be found for (section 3.15.4): our AUTH, so the client knows it is not
// its password, and INTERNAL_ADDRESS_FAILURE; the IKE SA is deleted once
// the answer is out, for it carries nothing.
func (s *ikeSA) noAddress(ours *Auth, err error) ([]Payload, func()) {
	s.m.up(s)
	s.m.negotiationError(s, ExchangeIKEAuth, false, &NotifyError{Kind: NotifyInternalAddressFailure, Why: err.Error()})
	return []Payload{ours, &Notify{Kind: NotifyInternalAddressFailure}}, func() { s.queueTask(deleteIKETask{}) }
}

// eapRound answers with the EAP method's next message (out), and ends
// the SA once a failure is sent.
func (s *ikeSA) eapRound(out []byte, err error) ([]Payload, func()) {
	if err != nil {
		return s.refuseAuth(fmt.Errorf("EAP: %w", err))
	}
	if st := s.eap; st.server.Done() && !st.server.Succeeded() {
		return []Payload{&EAP{Data: out}}, func() {
			s.m.failIKE(s, ExchangeIKEAuth, &NotifyError{Kind: NotifyAuthenticationFailed, Why: st.server.Err().Error()})
		}
	}
	return []Payload{&EAP{Data: out}}, func() {}
}

// lease gives an authenticated road warrior its virtual address.
func (s *ikeSA) lease(user string, want netip.Addr) error {
	if s.eap == nil {
		s.eap = &eapState{}
	}
	addr, dns, err := s.peer.RemoteAccess.Lease(user, s.remote, want)
	if err != nil {
		return fmt.Errorf("no address for %s: %w", user, err)
	}
	s.eap.addr, s.eap.dns = addr, dns
	return nil
}

// roadWarriorChild answers an authenticated road warrior's request (the
// first IKE_AUTH: SA, TSi, TSr, CP) with its configuration and its child
// from the leased address to the inside networks.
func (s *ikeSA) roadWarriorChild(req []Payload) []Payload {
	addr := s.eap.addr
	ps := []Payload{s.cpReply(req)}
	inSPI, err := s.m.host.AllocSPI()
	if err != nil {
		s.m.negotiationError(s, ExchangeIKEAuth, false, err)
		return append(ps, &Notify{Kind: NotifyTemporaryFailure})
	}
	me := s.authSide(nil)
	me.Local, me.Remote = s.insideSelectors(), []Selector{PrefixSelector(netip.PrefixFrom(addr, addr.BitLen()))}
	c, chosen, refusal := respondChild(me, req, inSPI, 0, "IKE_AUTH")
	if refusal == nil {
		refusal = s.init.childKeys(c)
	}
	if refusal != nil {
		s.m.negotiationError(s, ExchangeIKEAuth, false, refusal)
		return append(ps, &Notify{Kind: refusal.Kind})
	}
	if _, err := s.install(c, false, false, false); err != nil {
		s.m.negotiationError(s, ExchangeIKEAuth, false, err)
	}
	return append(ps, &SA{Proposals: []SAProposal{chosen}}, &TS{T: PayloadTSi, Selectors: c.TSi}, &TS{T: PayloadTSr, Selectors: c.TSr})
}

// refuseAuth answers AUTHENTICATION_FAILED, and the SA goes once sent.
func (s *ikeSA) refuseAuth(err error) ([]Payload, func()) {
	return []Payload{&Notify{Kind: NotifyAuthenticationFailed}}, func() {
		s.m.failIKE(s, ExchangeIKEAuth, &NotifyError{Kind: NotifyAuthenticationFailed, Why: err.Error()})
	}
}

// cpReply is the client's configuration (section 3.15.1): its address and
// DNS servers always; a netmask (of the one address), WINS servers and
// the split-DNS domains (RFC 8598) only to a client that asked for them
// in req.
func (s *ikeSA) cpReply(req []Payload) *CP {
	asked := map[uint16]bool{}
	if cp, _ := Find(req, PayloadCP).(*CP); cp != nil && cp.CfgType == CfgRequest {
		for _, a := range cp.Attrs {
			asked[a.Type] = true
		}
	}
	ra := s.peer.RemoteAccess
	cp := &CP{CfgType: CfgReply, Attrs: []CPAttr{{Type: CfgInternalIP4Address, Data: s.eap.addr.AsSlice()}}}
	if asked[CfgInternalIP4Netmask] {
		cp.Attrs = append(cp.Attrs, CPAttr{Type: CfgInternalIP4Netmask, Data: []byte{255, 255, 255, 255}})
	}
	add := func(t uint16, list []netip.Addr) {
		for _, a := range list {
			if a.Is4() {
				cp.Attrs = append(cp.Attrs, CPAttr{Type: t, Data: a.AsSlice()})
			}
		}
	}
	add(CfgInternalIP4DNS, s.eap.dns)
	if asked[CfgInternalIP4NBNS] {
		add(CfgInternalIP4NBNS, ra.NBNS)
	}
	if asked[CfgInternalDNSDomain] {
		for _, d := range ra.DNSDomains {
			cp.Attrs = append(cp.Attrs, CPAttr{Type: CfgInternalDNSDomain, Data: []byte(d)})
		}
	}
	return cp
}

// readCP reads the address and DNS servers a server's configuration
// payload gave us.
func readCP(inner []Payload) (addr netip.Addr, dns []netip.Addr) {
	cp, _ := Find(inner, PayloadCP).(*CP)
	if cp == nil || cp.CfgType != CfgReply {
		return addr, nil
	}
	for _, a := range cp.Attrs {
		ip, ok := netip.AddrFromSlice(a.Data)
		switch {
		case ok && a.Type == CfgInternalIP4Address && ip.Is4():
			addr = ip
		case ok && a.Type == CfgInternalIP4DNS && ip.Is4():
			dns = append(dns, ip)
		}
	}
	return addr, dns
}

// cpRequest is what a road warrior asks for: an address and DNS servers.
func cpRequest() *CP {
	return &CP{CfgType: CfgRequest, Attrs: []CPAttr{{Type: CfgInternalIP4Address}, {Type: CfgInternalIP4DNS}}}
}

// anyIPv4 is a road warrior's selectors before the server narrows them.
var anyIPv4 = []Selector{PrefixSelector(netip.MustParsePrefix("0.0.0.0/0"))}

// insideSelectors are the networks remote-access clients reach.
func (s *ikeSA) insideSelectors() []Selector {
	inside := s.peer.RemoteAccess.Inside
	if len(inside) == 0 {
		return []Selector{PrefixSelector(netip.MustParsePrefix("0.0.0.0/0"))}
	}
	out := make([]Selector, len(inside), len(inside)+1)
	for i, p := range inside {
		out[i] = PrefixSelector(p)
	}
	if s.flags.Has(ike.FlagDHCPInform) {
		// Its DHCPINFORM for the routes goes to the broadcast address.
		out = append(out, PrefixSelector(netip.MustParsePrefix("255.255.255.255/32")))
	}
	return out
}

// The client's side.

// eapAuthTask is a client's IKE_AUTH round: the first (IDi, CP, SA, TS,
// no AUTH), each EAP response, and the final AUTH.
type eapAuthTask struct {
	first bool
	eap   []byte // our EAP response to send
	final bool
	inSPI uint32
	me    AuthSide
}

func (*eapAuthTask) exchange() ExchangeType { return ExchangeIKEAuth }

func (t *eapAuthTask) request(s *ikeSA) ([]Payload, error) {
	prf := s.suite.PRF.PRF()
	switch {
	case t.first:
		var err error
		if t.inSPI, err = s.m.host.AllocSPI(); err != nil {
			return nil, err
		}
		s.eap = &eapState{client: eap.NewPeer(s.peer.EAPClient.Identity, s.peer.EAPClient.Password, s.rand), inSPI: t.inSPI}
		id := &ID{T: PayloadIDi, IDType: IDRFC822, Data: []byte(s.peer.EAPClient.Identity)}
		s.eap.idi = id
		ps := []Payload{id, &CertReq{Encoding: CertX509Sig}, cpRequest(), &SA{Proposals: ChildProposals(s.espSuites(), t.inSPI)},
			&TS{T: PayloadTSi, Selectors: anyIPv4}, &TS{T: PayloadTSr, Selectors: anyIPv4}, &Notify{Kind: NotifyMobikeSupported}}
		if !s.m.othersWith(s) {
			ps = append(ps, &Notify{Kind: NotifyInitialContact})
		}
		return ps, nil
	case t.final:
		msk := s.eap.client.MSK()
		return []Payload{&Auth{Method: AuthPSK, Data: pskAuth(prf, msk, signedOctets(prf, s.msg1, s.init.nr, s.keys.Pi, s.eap.idi))}}, nil
	}
	return []Payload{&EAP{Data: t.eap}}, nil
}

func (t *eapAuthTask) response(s *ikeSA, inner []Payload) error {
	refused := refusal(inner, "the server refused us")
	if refused != nil {
		var ne *NotifyError
		if errors.As(refused, &ne) && ne.Kind == NotifyAuthenticationFailed {
			return refused
		}
		if !t.final {
			return refused
		}
	}
	prf := s.suite.PRF.PRF()
	if t.first {
		// The server's identity and AUTH, checked as any responder's.
		idr, _ := Find(inner, PayloadIDr).(*ID)
		auth, _ := Find(inner, PayloadAuth).(*Auth)
		if idr == nil || auth == nil {
			return fmt.Errorf("%w: the server's first answer lacks IDr or AUTH", ErrMalformed)
		}
		if _, err := s.checkAuth(prf, idr, auth, signedOctets(prf, s.msg2, s.init.ni, s.keys.Pr, idr), peerCerts(inner)); err != nil {
			return &NotifyError{Kind: NotifyAuthenticationFailed, Why: fmt.Sprintf("the server: %v", err)}
		}
		s.eap.idr = idr
	}
	if t.final {
		auth, _ := Find(inner, PayloadAuth).(*Auth)
		msk := s.eap.client.MSK()
		if auth == nil || !hmac.Equal(auth.Data, pskAuth(prf, msk, signedOctets(prf, s.msg2, s.init.ni, s.keys.Pr, s.eap.idr))) {
			return &NotifyError{Kind: NotifyAuthenticationFailed, Why: "the server's AUTH after EAP does not verify with the MSK"}
		}
		s.m.up(s)
		if refused != nil {
			// Authenticated, but no child: INTERNAL_ADDRESS_FAILURE, say.
			s.m.negotiationError(s, ExchangeIKEAuth, true, refused)
			return nil
		}
		s.mobike = len(Notifies(inner, NotifyMobikeSupported)) > 0
		s.eap.addr, s.eap.dns = readCP(inner)
		if !s.eap.addr.IsValid() {
			s.m.negotiationError(s, ExchangeIKEAuth, true, fmt.Errorf("%w: no virtual address in the server's answer", ErrMalformed))
			return nil
		}
		me := s.authSide(nil)
		me.Local = []Selector{PrefixSelector(netip.PrefixFrom(s.eap.addr, 32))}
		me.Remote = anyIPv4
		c, err := acceptChild(me, inner, s.eap.inSPI, 0, "IKE_AUTH")
		if err == nil {
			if r := s.init.childKeys(c); r != nil {
				err = r
			}
		}
		if err != nil {
			s.m.negotiationError(s, ExchangeIKEAuth, true, err)
			return nil
		}
		_, err = s.install(c, true, false, false)
		return err
	}
	e, _ := Find(inner, PayloadEAP).(*EAP)
	if e == nil {
		return fmt.Errorf("%w: the server's answer carries no EAP", ErrMalformed)
	}
	out, err := s.eap.client.Receive(e.Data)
	if err != nil {
		return &NotifyError{Kind: NotifyAuthenticationFailed, Why: err.Error()}
	}
	if s.eap.client.Done() {
		if s.eap.client.Err() != nil {
			return &NotifyError{Kind: NotifyAuthenticationFailed, Why: s.eap.client.Err().Error()}
		}
		s.queueTask(&eapAuthTask{final: true})
		return nil
	}
	s.queueTask(&eapAuthTask{eap: out})
	return nil
}

func (*eapAuthTask) failed(s *ikeSA, err error) { s.m.failIKE(s, ExchangeIKEAuth, err) }

// VirtualAddress is the address the server gave this client, and its
// DNS servers (gatehouse connect ikev2).
func (m *Manager) VirtualAddress(name string) (netip.Addr, []netip.Addr, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sas {
		if s.peer.Name == name && s.eap != nil && s.peer.RemoteAccess == nil && s.eap.addr.IsValid() && s.state == stateEstablished {
			return s.eap.addr, slices.Clone(s.eap.dns), true
		}
	}
	return netip.Addr{}, nil, false
}
