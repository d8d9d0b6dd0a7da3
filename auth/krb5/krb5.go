// Package krb5 is the Kerberos V5 GSS-API mechanism (RFC 1964 framing,
// RFC 4121 tokens) as IKEv1's GSS-API authentication method uses it: an
// AP-REQ from the initiator, an AP-REP back for mutual authentication,
// then sealed Wrap tokens carrying the exchange hashes. gokrb5 provides
// tickets, keytabs and the Kerberos encryption types; what it lacks (the
// AP-REP, both directions, and sealed Wrap tokens) is written here.
package krb5

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/chksumtype"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Why a context fails; callers test with errors.Is and log the message.
var (
	ErrMalformed   = errors.New("malformed Kerberos GSS-API token")
	ErrKeytab      = errors.New("the keytab cannot open the ticket")
	ErrClockSkew   = errors.New("clock skew too great")
	ErrTicket      = errors.New("ticket not valid now")
	ErrIntegrity   = errors.New("Kerberos integrity check failed")
	ErrMutualAuth  = errors.New("mutual authentication failed")
	ErrPeerRefused = errors.New("the peer refused the ticket")
	ErrSequence    = errors.New("Wrap token out of sequence")
	ErrNotComplete = errors.New("the security context is not complete")
	ErrService     = errors.New("the ticket is for another service")
	ErrReplay      = errors.New("a replayed authenticator")
)

// Token IDs inside the RFC 1964 framing, and of RFC 4121 Wrap tokens.
var (
	tokAPReq = [2]byte{0x01, 0x00}
	tokAPRep = [2]byte{0x02, 0x00}
	tokError = [2]byte{0x03, 0x00}
	tokWrap  = [2]byte{0x05, 0x04}
)

// GSS context flags in the authenticator checksum (RFC 4121 section
// 4.1.1.1). IKE needs mutual authentication and integrity; sequence and
// confidentiality come with the sealed Wrap tokens.
const (
	gssMutual   = 2
	gssSequence = 8
	gssConf     = 16
	gssInteg    = 32
)

// Wrap token flags (RFC 4121 section 4.2.2).
const (
	flagSentByAcceptor = 0x01
	flagSealed         = 0x02
	flagAcceptorSubkey = 0x04
)

// frame puts an inner token in the RFC 2743 section 3.1 framing:
// [APPLICATION 0] { mech OID, token ID, body } (RFC 1964 section 1.1).
func frame(id [2]byte, body []byte) []byte {
	oid, _ := asn1.Marshal(gssapi.OIDKRB5.OID())
	b := append(append(oid, id[:]...), body...)
	return asn1tools.AddASNAppTag(b, 0)
}

// unframe checks the framing and the Kerberos OID.
func unframe(b []byte) ([2]byte, []byte, error) {
	var oid asn1.ObjectIdentifier
	rest, err := asn1.UnmarshalWithParams(b, &oid, "application,explicit,tag:0")
	if err != nil {
		return [2]byte{}, nil, fmt.Errorf("%w: framing: %v", ErrMalformed, err)
	}
	if !oid.Equal(gssapi.OIDKRB5.OID()) {
		return [2]byte{}, nil, fmt.Errorf("%w: mechanism %s is not Kerberos V5 (SPNEGO is not used in IKE)", ErrMalformed, oid)
	}
	if len(rest) < 2 {
		return [2]byte{}, nil, fmt.Errorf("%w: no token ID", ErrMalformed)
	}
	return [2]byte{rest[0], rest[1]}, rest[2:], nil
}

// peerError reads a KRB-ERROR token's reason.
func peerError(body []byte) error {
	var e messages.KRBError
	if err := e.Unmarshal(body); err != nil {
		return fmt.Errorf("%w: KRB-ERROR: %v", ErrMalformed, err)
	}
	return fmt.Errorf("%w: %s", ErrPeerRefused, e.Error())
}

// Context is an established (or establishing) security context: the key
// and sequence numbers its Wrap tokens use.
type Context struct {
	acceptor bool
	// sessionKey from the ticket; subkey the initiator's; acceptorKey the
	// acceptor's from the AP-REP, which takes precedence (RFC 4121
	// section 2).
	sessionKey, subkey, acceptorKey types.EncryptionKey
	sendSeq, recvSeq                uint64
	complete                        bool
	peer                            string
}

// Complete reports whether mutual authentication is done.
func (c *Context) Complete() bool { return c.complete }

// Peer is the authenticated peer's principal (acceptor side: the
// client's name@REALM).
func (c *Context) Peer() string { return c.peer }

func (c *Context) key() (types.EncryptionKey, byte) {
	if len(c.acceptorKey.KeyValue) > 0 {
		return c.acceptorKey, flagAcceptorSubkey
	}
	if len(c.subkey.KeyValue) > 0 {
		return c.subkey, 0
	}
	return c.sessionKey, 0
}

func randomSeq() uint64 {
	n, _ := rand.Int(rand.Reader, big.NewInt(math.MaxUint32))
	return n.Uint64() & 0x3fffffff
}

func randomKey(like types.EncryptionKey) (types.EncryptionKey, error) {
	et, err := crypto.GetEtype(like.KeyType)
	if err != nil {
		return types.EncryptionKey{}, err
	}
	k := make([]byte, et.GetKeyByteSize())
	if _, err := rand.Read(k); err != nil {
		return types.EncryptionKey{}, err
	}
	return types.EncryptionKey{KeyType: like.KeyType, KeyValue: k}, nil
}

// Initiator is the initiator's side until the AP-REP arrives.
type Initiator struct {
	Context
	ctime time.Time
	cusec int
}

// NewInitiator makes the AP-REQ token for a service ticket (from
// client.GetServiceTicket, or messages.NewTicket in tests): an
// authenticator at now with a fresh subkey and sequence number, and
// mutual authentication required.
func NewInitiator(tkt messages.Ticket, sessionKey types.EncryptionKey, cname types.PrincipalName, crealm string, now time.Time) (*Initiator, []byte, error) {
	now = now.UTC()
	auth := types.Authenticator{AVNO: 5, CRealm: crealm, CName: cname, CTime: now.Truncate(time.Second),
		Cusec: now.Nanosecond() / 1000}
	cksum := make([]byte, 24) // RFC 4121 section 4.1.1: Lgth 16, no channel bindings, flags
	binary.LittleEndian.PutUint32(cksum, 16)
	binary.LittleEndian.PutUint32(cksum[20:], gssMutual|gssSequence|gssConf|gssInteg)
	auth.Cksum = types.Checksum{CksumType: chksumtype.GSSAPI, Checksum: cksum}
	sub, err := randomKey(sessionKey)
	if err != nil {
		return nil, nil, err
	}
	auth.SubKey, auth.SeqNumber = sub, int64(randomSeq())
	req, err := messages.NewAPReq(tkt, sessionKey, auth)
	if err != nil {
		return nil, nil, err
	}
	types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	body, err := req.Marshal()
	if err != nil {
		return nil, nil, err
	}
	i := &Initiator{ctime: auth.CTime, cusec: auth.Cusec}
	i.sessionKey, i.subkey, i.sendSeq = sessionKey, sub, uint64(auth.SeqNumber)
	i.peer = tkt.SName.PrincipalNameString() + "@" + tkt.Realm
	return i, frame(tokAPReq, body), nil
}

// Step takes the acceptor's reply: an AP-REP proving it opened our
// ticket (our authenticator's time, encrypted under the session key), or
// a KRB-ERROR.
func (i *Initiator) Step(token []byte) error {
	id, body, err := unframe(token)
	if err != nil {
		return err
	}
	switch id {
	case tokError:
		return peerError(body)
	case tokAPRep:
	default:
		return fmt.Errorf("%w: token ID %x where an AP-REP belongs", ErrMalformed, id)
	}
	var rep messages.APRep
	if err := rep.Unmarshal(body); err != nil {
		return fmt.Errorf("%w: AP-REP: %v", ErrMalformed, err)
	}
	if err := checkSealed("AP-REP", i.sessionKey.KeyType, rep.EncPart.Cipher); err != nil {
		return err
	}
	plain, err := crypto.DecryptEncPart(rep.EncPart, i.sessionKey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return fmt.Errorf("%w: the AP-REP is not sealed with our session key: %v", ErrMutualAuth, err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		return fmt.Errorf("%w: AP-REP part: %v", ErrMalformed, err)
	}
	// RFC 4120 section 3.2.5: the acceptor echoes our ctime and cusec.
	if !part.CTime.Equal(i.ctime) || part.Cusec != i.cusec {
		return fmt.Errorf("%w: the AP-REP answers another authenticator", ErrMutualAuth)
	}
	if len(part.Subkey.KeyValue) > 0 {
		i.acceptorKey = part.Subkey
	}
	i.recvSeq = uint64(part.SequenceNumber)
	i.complete = true
	return nil
}

// Acceptor is the acceptor's established context.
type Acceptor struct{ Context }

// AcceptConfig is what an acceptor checks a ticket against.
type AcceptConfig struct {
	Keytab *keytab.Keytab
	// Service is our principal, "host/gw.example.net@REALM": a ticket for
	// any other principal is refused, whatever keys the keytab holds.
	Service string
	// MaxSkew is how far the peer's clock may be from ours.
	MaxSkew time.Duration
	// Replay remembers the authenticators accepted within the skew window
	// (RFC 4120 section 3.2.3); nil only in tests.
	Replay *ReplayCache
}

// Accept opens an AP-REQ token with the service's key from the keytab,
// checks the ticket's times and the authenticator's clock against now
// within MaxSkew and that the authenticator is new, and returns the
// context and the AP-REP token to send back.
func Accept(cfg AcceptConfig, token []byte, now time.Time) (*Acceptor, []byte, error) {
	id, body, err := unframe(token)
	if err != nil {
		return nil, nil, err
	}
	if id != tokAPReq {
		return nil, nil, fmt.Errorf("%w: token ID %x where an AP-REQ belongs", ErrMalformed, id)
	}
	var req messages.APReq
	if err := req.Unmarshal(body); err != nil {
		return nil, nil, fmt.Errorf("%w: AP-REQ: %v", ErrMalformed, err)
	}
	sname := req.Ticket.SName.PrincipalNameString() + "@" + req.Ticket.Realm
	ours, err := servicePrincipal(cfg.Service)
	if err != nil {
		return nil, nil, err
	}
	if sname != cfg.Service {
		// The key is ours to choose: a keytab may hold other services'
		// keys, and a ticket for one of them does not name this gateway.
		return nil, nil, fmt.Errorf("%w: %s, not %s", ErrService, sname, cfg.Service)
	}
	if err := checkSealed("ticket", req.Ticket.EncPart.EType, req.Ticket.EncPart.Cipher); err != nil {
		return nil, nil, err
	}
	if err := req.Ticket.DecryptEncPart(cfg.Keytab, &ours); err != nil {
		return nil, nil, fmt.Errorf("%w for %s (kvno %d): %v", ErrKeytab, sname, req.Ticket.EncPart.KVNO, err)
	}
	maxSkew := cfg.MaxSkew
	tp := req.Ticket.DecryptedEncPart
	start := tp.StartTime
	if start.IsZero() {
		start = tp.AuthTime
	}
	if now.Before(start.Add(-maxSkew)) || now.After(tp.EndTime.Add(maxSkew)) {
		return nil, nil, fmt.Errorf("%w: the ticket for %s runs %s to %s, it is %s here", ErrTicket, sname,
			start.UTC().Format(time.RFC3339), tp.EndTime.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if err := checkSealed("authenticator", tp.Key.KeyType, req.EncryptedAuthenticator.Cipher); err != nil {
		return nil, nil, err
	}
	if err := req.DecryptAuthenticator(tp.Key); err != nil {
		return nil, nil, fmt.Errorf("%w: the authenticator does not open with the ticket's key", ErrIntegrity)
	}
	a := req.Authenticator
	if !a.CName.Equal(tp.CName) || a.CRealm != tp.CRealm {
		return nil, nil, fmt.Errorf("%w: the authenticator names %s@%s, the ticket %s@%s", ErrIntegrity,
			a.CName.PrincipalNameString(), a.CRealm, tp.CName.PrincipalNameString(), tp.CRealm)
	}
	ct := a.CTime.Add(time.Duration(a.Cusec) * time.Microsecond)
	client := a.CName.PrincipalNameString() + "@" + a.CRealm
	if skew := now.Sub(ct); skew > maxSkew || -skew > maxSkew {
		return nil, nil, fmt.Errorf("%w: %s's clock is %s from ours, more than the %s allowed", ErrClockSkew,
			client, skew.Abs().Round(time.Second), maxSkew)
	}
	if cfg.Replay != nil && cfg.Replay.seen(client, ct, req.EncryptedAuthenticator.Cipher, ct.Add(maxSkew), now) {
		return nil, nil, fmt.Errorf("%w: %s's authenticator of %s was accepted before", ErrReplay, client, ct.UTC().Format(time.RFC3339Nano))
	}
	sub, err := randomKey(tp.Key)
	if err != nil {
		return nil, nil, err
	}
	c := &Acceptor{}
	c.acceptor, c.sessionKey, c.subkey, c.acceptorKey = true, tp.Key, a.SubKey, sub
	c.recvSeq, c.sendSeq = uint64(a.SeqNumber), randomSeq()
	c.peer = a.CName.PrincipalNameString() + "@" + a.CRealm
	rep, err := apRep(tp.Key, messages.EncAPRepPart{CTime: a.CTime, Cusec: a.Cusec, Subkey: sub, SequenceNumber: int64(c.sendSeq)})
	if err != nil {
		return nil, nil, err
	}
	c.complete = true
	return c, frame(tokAPRep, rep), nil
}

// apRep builds a KRB_AP_REP (RFC 4120 section 5.5.2), its part sealed
// under the ticket's session key with key usage 12.
func apRep(key types.EncryptionKey, part messages.EncAPRepPart) ([]byte, error) {
	pb, err := asn1.Marshal(part)
	if err != nil {
		return nil, err
	}
	pb = asn1tools.AddASNAppTag(pb, asnAppTag.EncAPRepPart)
	enc, err := crypto.GetEncryptedData(pb, key, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return nil, err
	}
	b, err := asn1.Marshal(messages.APRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: enc})
	if err != nil {
		return nil, err
	}
	return asn1tools.AddASNAppTag(b, asnAppTag.APREP), nil
}

// checkSealed makes sure a ciphertext holds at least its enctype's
// confounder and checksum: gokrb5 slices it without looking, and a peer's
// short ciphertext would panic there.
func checkSealed(what string, etype int32, cipher []byte) error {
	et, err := crypto.GetEtype(etype)
	if err != nil {
		return fmt.Errorf("%w: %s: encryption type %d: %v", ErrMalformed, what, etype, err)
	}
	if min := et.GetConfounderByteSize() + et.GetHMACBitLength()/8; len(cipher) < min {
		return fmt.Errorf("%w: %s: %d bytes of ciphertext, at least %d needed", ErrMalformed, what, len(cipher), min)
	}
	return nil
}

const wrapHeaderLen = 16

// Wrap seals data in an RFC 4121 section 4.2.4 Wrap token with
// confidentiality: header, then E(data | header) with the sender's seal
// key usage. EC and RRC are 0: AES needs no filler, and we rotate nothing.
func (c *Context) Wrap(data []byte) ([]byte, error) {
	if !c.complete {
		return nil, ErrNotComplete
	}
	key, fl := c.key()
	usage := uint32(keyusage.GSSAPI_INITIATOR_SEAL)
	if c.acceptor {
		fl |= flagSentByAcceptor
		usage = keyusage.GSSAPI_ACCEPTOR_SEAL
	}
	hdr := make([]byte, wrapHeaderLen)
	copy(hdr, tokWrap[:])
	hdr[2], hdr[3] = fl|flagSealed, 0xff
	binary.BigEndian.PutUint64(hdr[8:], c.sendSeq)
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, err
	}
	_, ct, err := et.EncryptMessage(key.KeyValue, append(append([]byte(nil), data...), hdr...), usage)
	if err != nil {
		return nil, err
	}
	c.sendSeq++
	return append(hdr, ct...), nil
}

// Unwrap opens the peer's sealed Wrap token. Tokens must come in
// sequence: IKE sends one or two, so any other is a replay or a loss.
func (c *Context) Unwrap(token []byte) ([]byte, error) {
	if !c.complete {
		return nil, ErrNotComplete
	}
	if len(token) < wrapHeaderLen || !bytes.Equal(token[:2], tokWrap[:]) || token[3] != 0xff {
		return nil, fmt.Errorf("%w: not an RFC 4121 Wrap token", ErrMalformed)
	}
	fl := token[2]
	if (fl&flagSentByAcceptor != 0) == c.acceptor {
		return nil, fmt.Errorf("%w: a Wrap token from our own side", ErrMalformed)
	}
	if fl&flagSealed == 0 {
		return nil, fmt.Errorf("%w: the Wrap token is not sealed", ErrMalformed)
	}
	key, _ := c.key()
	if fl&flagAcceptorSubkey == 0 && len(c.acceptorKey.KeyValue) > 0 {
		return nil, fmt.Errorf("%w: the Wrap token does not use the acceptor's subkey", ErrIntegrity)
	}
	ec, rrc := int(binary.BigEndian.Uint16(token[4:])), int(binary.BigEndian.Uint16(token[6:]))
	seq := binary.BigEndian.Uint64(token[8:])
	body := append([]byte(nil), token[wrapHeaderLen:]...)
	if len(body) > 0 && rrc > 0 { // RFC 4121 section 4.2.5: undo the right rotation
		r := rrc % len(body)
		body = append(body[r:], body[:r]...)
	}
	usage := uint32(keyusage.GSSAPI_ACCEPTOR_SEAL)
	if c.acceptor {
		usage = keyusage.GSSAPI_INITIATOR_SEAL
	}
	if err := checkSealed("Wrap token", key.KeyType, body); err != nil {
		return nil, err
	}
	plain, err := crypto.DecryptMessage(body, key, usage)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIntegrity, err)
	}
	if len(plain) < ec+wrapHeaderLen {
		return nil, fmt.Errorf("%w: sealed part too short", ErrMalformed)
	}
	inner := plain[len(plain)-wrapHeaderLen:]
	// The sealed header copy must match, RRC aside (it is 0 inside).
	if !bytes.Equal(inner[:6], token[:6]) || !bytes.Equal(inner[8:], token[8:16]) {
		return nil, fmt.Errorf("%w: the sealed header differs from the token's", ErrIntegrity)
	}
	if seq != c.recvSeq {
		return nil, fmt.Errorf("%w: sequence %d, want %d", ErrSequence, seq, c.recvSeq)
	}
	c.recvSeq++
	return plain[:len(plain)-wrapHeaderLen-ec], nil
}

// servicePrincipal parses "service/host@REALM".
func servicePrincipal(text string) (types.PrincipalName, error) {
	name, realm, ok := strings.Cut(text, "@")
	if !ok || realm == "" || !strings.Contains(name, "/") {
		return types.PrincipalName{}, fmt.Errorf("service principal %q: want service/host@REALM", text)
	}
	return types.NewPrincipalName(nametype.KRB_NT_SRV_HST, name), nil
}

// ReplayCache remembers accepted authenticators until they could no
// longer pass the clock check, so the same AP-REQ is not accepted twice
// (RFC 4120 section 3.2.3). It lives in memory: a restarted acceptor
// starts empty, as MIT's does without its on-disk cache.
type ReplayCache struct {
	mu   sync.Mutex
	max  int
	live map[[sha256.Size]byte]time.Time // authenticator digest -> when it expires
}

// NewReplayCache holds at most max authenticators; when it is full of
// live ones, new authenticators are refused (only valid tickets get in,
// so that takes a flood from inside the realm).
func NewReplayCache(max int) *ReplayCache {
	return &ReplayCache{max: max, live: map[[sha256.Size]byte]time.Time{}}
}

// seen records an authenticator, reporting whether it was there already
// (or the cache is full).
func (r *ReplayCache) seen(client string, ctime time.Time, cipher []byte, expires, now time.Time) bool {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|", client, ctime.UnixMicro())
	h.Write(cipher)
	key := [sha256.Size]byte(h.Sum(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.live[key]; ok {
		return true
	}
	if len(r.live) >= r.max {
		for k, t := range r.live {
			if now.After(t) {
				delete(r.live, k)
			}
		}
		if len(r.live) >= r.max {
			return true
		}
	}
	r.live[key] = expires
	return false
}
