package ike

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
)

// GSS-API authentication (draft-ietf-ipsec-isakmp-gss-auth-07, the method
// Windows 2000 shipped as "Kerberos"; docs/kerberos.md): main mode with
// SKEYID as for signatures, GSS tokens in messages 3 and 4 (and later
// ones while a context needs more rounds), and HASH_I and HASH_R sent as
// GSS Wrap tokens:
//
//	Initiator                          Responder
//	HDR, SA(GIi), VID           -->
//	                            <--    HDR, SA(GIr), VID
//	HDR, KE, Ni, GSS            -->
//	                            <--    HDR, KE, Nr, GSS
//	HDR*, IDii, GSS | HASH_I    -->
//	                            <--    HDR*, IDir, GSS | HASH_R
//	HDR*, GSS | HASH_I ...      -->    (until both hashes are through)
//
// GIi and GIr are each side's principal name in UTF-16LE, a transform
// attribute; each HASH covers its sender's GI and every token it sent.

// GSS identity attribute classes: the draft's 16384; some Windows 2000
// releases send 32001. Both are read.
const (
	AttrGSSIdentity      = 16384
	AttrGSSIdentityWin2k = 32001
)

// Vendor IDs that make 65001 mean GSS-API (without one it is XAUTH's
// XAUTHInitPreShared): MD5("GSSAPI"), the draft's title with and without
// a trailing newline, and MS NT5 ISAKMPOAKLEY (a 16-byte prefix and a
// 4-byte Windows version).
var (
	vidGSSAPI      = md5Sum("GSSAPI")
	vidGSSLong     = md5Sum("A GSS-API Authentication Method for IKE")
	vidGSSLongNL   = md5Sum("A GSS-API Authentication Method for IKE\n")
	vidMSNT5Prefix = []byte{0x1e, 0x2b, 0x51, 0x69, 0x05, 0x99, 0x1c, 0x7d, 0x7c, 0x96, 0xfc, 0xbf, 0xb5, 0x87, 0xe4, 0x61}
	// vidMSNT5 is what we send: version 2, Windows 2000, the release
	// whose Kerberos method we speak.
	vidMSNT5 = append(bytes.Clone(vidMSNT5Prefix), 0, 0, 0, 2)
)

func md5Sum(s string) []byte { h := md5.Sum([]byte(s)); return h[:] }

// gssVendor reports whether a vendor ID announces the GSS-API method.
func gssVendor(v []byte) bool {
	return bytes.Equal(v, vidGSSAPI) || bytes.Equal(v, vidGSSLong) || bytes.Equal(v, vidGSSLongNL) ||
		(len(v) == 20 && bytes.HasPrefix(v, vidMSNT5Prefix))
}

// GSSOptions configure the GSS-API method for a peer.
type GSSOptions struct {
	// Identity is our principal (host/gw.example.net@REALM), sent as our
	// GSS identity attribute.
	Identity string
	// Target is the peer's principal our tickets are for; empty: the GSS
	// identity the peer sends in message 2.
	Target string
	// IdentityAttr is the attribute class we send (0: the draft's
	// 16384; 32001 for old Windows).
	IdentityAttr uint16
	// RawTokens leaves out the one-byte vendor encoding before each GSS
	// token (the draft has it; some implementations do not).
	RawTokens bool
	// AllowedPeers are the principals we take as the peer
	// ("host/gw-b.example.net@REALM"; "*" matches any run of characters,
	// so "*$@REALM" is every computer account of the realm). A ticket
	// proves who the peer is, not that it is welcome: no match, no SA.
	AllowedPeers []string
}

// allowed reports whether an authenticated principal is one we take.
func (o GSSOptions) allowed(principal string) bool {
	for _, p := range o.AllowedPeers {
		if globMatch(p, principal) {
			return true
		}
	}
	return false
}

// globMatch matches name against pattern, where '*' stands for any run of
// characters (a principal's '/' included) and nothing else is special.
func globMatch(pattern, name string) bool {
	star, next := -1, 0 // the last '*' seen, and where its match would resume in name
	p, n := 0, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, next = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p, n = p+1, n+1
		case star >= 0:
			next++
			p, n = star+1, next
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func (o GSSOptions) identityAttr() uint16 {
	if o.IdentityAttr == 0 {
		return AttrGSSIdentity
	}
	return o.IdentityAttr
}

// GSSContext is one side's GSS-API security context for an IKE SA. The
// host (an auth plugin) keeps the mechanism state under ID.
type GSSContext struct {
	ID        string
	Initiator bool
	Target    string // the initiator's target principal
	Complete  bool
	// Peer is the peer's authenticated principal, once the context is
	// complete.
	Peer string
}

// ErrGSSHash: the peer's wrapped HASH did not unwrap to the hash we
// computed.
var ErrGSSHash = errors.New("the peer's GSS-wrapped hash does not match")

// GSS is a GSS token payload (type 129). The draft puts a one-byte vendor
// encoding before the token; some implementations omit it. Context tokens
// (RFC 2743 section 3.1 framing) start with 0x60, which tells the two
// apart.
type GSS struct {
	Raw      bool // no vendor encoding byte
	Encoding byte
	Token    []byte
}

func (g *GSS) Type() PayloadType { return PayloadGSS }

func (g *GSS) appendBody(b []byte) []byte {
	if !g.Raw {
		b = append(b, g.Encoding)
	}
	return append(b, g.Token...)
}

func (g *GSS) verify() error {
	if len(g.Token) == 0 {
		return errors.New("empty GSS token")
	}
	return nil
}

// ParseGSS reads a GSS payload body.
func ParseGSS(b []byte) (*GSS, error) {
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("%w: empty GSS payload", ErrMalformed)
	case b[0] == 0x60:
		return &GSS{Raw: true, Token: b}, nil
	case len(b) == 1:
		return nil, fmt.Errorf("%w: GSS payload holds only its vendor encoding", ErrMalformed)
	}
	return &GSS{Encoding: b[0], Token: b[1:]}, nil
}

// gssIdentity encodes a principal as the GSS identity attribute value.
func gssIdentity(principal string) []byte {
	u := utf16.Encode([]rune(principal))
	b := make([]byte, 0, 2*len(u))
	for _, c := range u {
		b = append(b, byte(c), byte(c>>8))
	}
	return b
}

// parseGSSIdentity decodes a UTF-16LE principal.
func parseGSSIdentity(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("GSS identity of %d bytes is not UTF-16", len(b))
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u)), nil
}

// gssIdentityOf finds the GSS identity attribute of a phase 1 transform.
func gssIdentityOf(t Transform) []byte {
	for _, a := range t.Attributes {
		if a.Type == AttrGSSIdentity || a.Type == AttrGSSIdentityWin2k {
			return a.Data
		}
	}
	return nil
}

// withGSSIdentity returns t with its GSS identity attribute set to ours.
func withGSSIdentity(t Transform, o GSSOptions) Transform {
	attrs := make([]Attribute, 0, len(t.Attributes)+1)
	for _, a := range t.Attributes {
		if a.Type != AttrGSSIdentity && a.Type != AttrGSSIdentityWin2k {
			attrs = append(attrs, a)
		}
	}
	t.Attributes = append(attrs, VarAttr(o.identityAttr(), gssIdentity(o.Identity)))
	return t
}

// gssState is main mode's GSS-API part.
type gssState struct {
	ctx GSSContext
	// giI and giR are the GSS identity attribute values as sent.
	giI, giR []byte
	// sent is every token we sent, in order (raw, without the vendor
	// byte), for our hash; peerSent the peer's, for its hash.
	sent, peerSent []byte
	pending        []byte // a token to send in our next message
	idSent         bool
	hashSent       bool
	peerHashOK     bool
	peerIDb        []byte // the peer's ID payload body
}

// gssStep feeds the peer's token (nil to start) to our context and queues
// the answer.
func (t *mainMode) gssStep(sa *IKESA, in []byte) error {
	g := t.gss
	if in != nil && g.ctx.Complete {
		return fail("malformed", NotifyAuthenticationFailed, "main mode: a GSS token after our context completed")
	}
	before := g.ctx
	out, err := sa.m.host.GSSStep(sa.Peer, &g.ctx, in)
	if err == nil && g.ctx.Complete && !sa.Peer.GSS.allowed(g.ctx.Peer) {
		// Authenticated, but not a peer of this tunnel: the context goes,
		// so a genuine peer's message can still start afresh.
		who := g.ctx.Peer
		sa.m.host.GSSRelease(sa.Peer, &g.ctx)
		g.ctx = before
		return refusedProof(NotifyAuthenticationFailed, "main mode: %s (%s) is not among this rule's Kerberos peers %v (allowed_peers)",
			who, sa.Remote.Addr(), sa.Peer.GSS.AllowedPeers)
	}
	if err != nil {
		if g.ctx.Initiator && in == nil {
			// Our own first step (a ticket from the KDC): our failure.
			return fail("authentication-failed", NotifyAuthenticationFailed, "main mode: our Kerberos context for %s: %w", g.ctx.Target, err)
		}
		who := "the peer's Kerberos ticket"
		if g.ctx.Initiator {
			who = "the peer's answer to our Kerberos context for " + g.ctx.Target
		}
		return refusedProof(NotifyAuthenticationFailed, "main mode: %s from %s: %w", who, sa.Remote.Addr(), err)
	}
	g.peerSent = append(g.peerSent, in...) // only tokens the context took count in the peer's hash
	g.pending = out
	return nil
}

// addGSS adds a pending token (messages 3 and 4 and later rounds).
func (t *mainMode) addGSS(sa *IKESA, out *msg) {
	g := t.gss
	if len(g.pending) == 0 {
		return
	}
	out.add(&GSS{Raw: sa.Peer.GSS.RawTokens, Token: g.pending})
	g.sent = append(g.sent, g.pending...)
	g.pending = nil
}

// gssHash is HASH_I or HASH_R with GSS-API: the RFC 2409 hash over the
// ID, then the sender's GSS identity and all tokens it sent.
func (t *mainMode) gssHash(sa *IKESA, initiators bool, idB []byte) []byte {
	g := t.gss
	gi, toks := g.giI, g.sent
	if !initiators {
		gi = g.giR
	}
	if initiators != sa.Initiator {
		toks = g.peerSent
	}
	return t.hash(sa, initiators, append(append(bytes.Clone(idB), gi...), toks...))
}

// buildGSS writes an encrypted main mode message (5 on): our ID the first
// time, then a token while the context has one, else our wrapped hash.
// It reports whether main mode is over for us.
func (t *mainMode) buildGSS(sa *IKESA, out *msg) (bool, error) {
	g := t.gss
	id := addressID(sa.Local.Addr())
	if !g.idSent {
		out.add(id)
		g.idSent = true
		if sa.Initiator && !sa.m.peerEstablished(sa.Peer) {
			out.add(sa.isakmpNotify(NotifyInitialContact, nil)) // as in mainMode.build
		}
	}
	switch {
	case len(g.pending) > 0:
		t.addGSS(sa, out)
	case !g.ctx.Complete:
		return false, fail("authentication-failed", NotifyAuthenticationFailed, "main mode: our GSS context is incomplete and has no token to send")
	case !g.hashSent:
		wrapped, err := sa.m.host.GSSWrap(sa.Peer, &g.ctx, t.gssHash(sa, sa.Initiator, id.appendBody(nil)))
		if err != nil {
			return false, fail("authentication-failed", NotifyAuthenticationFailed, "main mode: wrapping our hash: %v", err)
		}
		out.add(&Data{T: PayloadHash, Data: wrapped})
		g.hashSent = true
	default:
		return false, nil
	}
	return g.hashSent && g.peerHashOK, nil
}

// processGSS reads an encrypted main mode message: the peer's ID the
// first time, then its token or its wrapped hash.
func (t *mainMode) processGSS(sa *IKESA, in *msg) error {
	g := t.gss
	// The peer's ID comes in its first encrypted message; it is kept only
	// once that message is accepted.
	idB, peerID := g.peerIDb, ""
	if idB == nil {
		id, ok := in.get(PayloadID).(*ID)
		if !ok {
			return fail("malformed", NotifyPayloadMalformed, "main mode message %d lacks an ID payload", t.step)
		}
		idB, peerID = bytes.Clone(in.body(PayloadID)), FormatID(id.IDType, id.Data)
	}
	keepID := func() {
		if g.peerIDb == nil {
			g.peerIDb, sa.peerID = idB, peerID
		}
	}
	if tok, ok := in.get(PayloadGSS).(*GSS); ok {
		if err := t.gssStep(sa, tok.Token); err != nil {
			return err
		}
		keepID()
		return nil
	}
	h, ok := in.get(PayloadHash).(*Data)
	if !ok {
		return fail("malformed", NotifyPayloadMalformed, "main mode message %d has neither a GSS token nor a HASH", t.step)
	}
	if !g.ctx.Complete {
		return fail("malformed", NotifyAuthenticationFailed, "main mode: the peer sent its hash before our GSS context completed")
	}
	got, err := sa.m.host.GSSUnwrap(sa.Peer, &g.ctx, h.Data)
	if err != nil {
		return refusedProof(NotifyAuthenticationFailed, "main mode: unwrapping the hash of %s: %v", g.ctx.Peer, err)
	}
	if !hmac.Equal(got, t.gssHash(sa, !sa.Initiator, idB)) {
		return refusedProof(NotifyAuthenticationFailed, "main mode: %s (%s): %w", g.ctx.Peer, sa.Remote.Addr(), ErrGSSHash)
	}
	in.authed = true
	keepID()
	g.peerHashOK = true
	sa.peerID = g.ctx.Peer
	return nil
}

// withoutGSS drops the GSS method from a list.
func withoutGSS(auths []uint16) []uint16 {
	return slices.DeleteFunc(slices.Clone(auths), func(a uint16) bool { return a == AuthGSS })
}
