package radius

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
	"layeh.com/radius/rfc3576"
)

// Error-Cause values (RFC 5176 section 3.5) a NAS answers with.
const (
	CauseSessionContextNotFound = 503
	CauseUnsupportedService     = 405
	CauseMissingAttribute       = 402
)

// DisconnectRequest is a checked Disconnect-Request (RFC 5176 section
// 3): what names the session or sessions to end.
type DisconnectRequest struct {
	User          string
	SessionID     string
	FramedAddress netip.Addr
	p             *radius.Packet
	authenticator [16]byte
}

// ReadDisconnect checks a Dynamic Authorization request under the
// client's secret: a Disconnect-Request (a CoA-Request is refused by the
// caller with Unsupported-Service), its Request Authenticator (as for
// accounting, RFC 5176 section 2.3), a Message-Authenticator (required:
// the Request Authenticator alone is MD5 over the packet and the secret),
// and an Event-Timestamp within window of now (RFC 5176 section 3.4), so
// a captured request cannot be sent again later. Replays inside the
// window are the caller's to catch (Replays).
func ReadDisconnect(b, secret []byte, now time.Time, window time.Duration) (*DisconnectRequest, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadResponse, len(b))
	}
	if radius.Code(b[0]) != radius.CodeDisconnectRequest && radius.Code(b[0]) != radius.CodeCoARequest {
		return nil, fmt.Errorf("%w: code %v on the Dynamic Authorization port", ErrBadResponse, radius.Code(b[0]))
	}
	if !radius.IsAuthenticRequest(b, secret) {
		return nil, fmt.Errorf("%w: Request Authenticator (wrong shared secret?)", ErrBadResponse)
	}
	if err := checkMessageAuthenticator(b, make([]byte, 16), secret, true); err != nil {
		if errors.Is(err, ErrNoMessageAuthenticator) {
			return nil, fmt.Errorf("%w: the request has no Message-Authenticator; the sender must add one (radclient: Message-Authenticator = 0x00)", ErrBadResponse)
		}
		return nil, err
	}
	p, err := radius.Parse(b, secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	ts, err := rfc2869.EventTimestamp_Lookup(p)
	if err != nil {
		return nil, fmt.Errorf("%w: the request has no Event-Timestamp; one is required so that a captured request cannot be replayed later (RFC 5176 section 3.4)", ErrBadResponse)
	}
	if d := now.Sub(ts); d > window || -d > window {
		return nil, fmt.Errorf("%w: Event-Timestamp %s is %s from our clock, more than the %s allowed (a replay, or clocks apart)", ErrBadResponse,
			ts.UTC().Format(time.RFC3339), d.Abs().Round(time.Second), window)
	}
	d := &DisconnectRequest{User: rfc2865.UserName_GetString(p), SessionID: rfc2866.AcctSessionID_GetString(p), p: p}
	copy(d.authenticator[:], b[4:20])
	if ip, err := rfc2865.FramedIPAddress_Lookup(p); err == nil {
		d.FramedAddress, _ = netip.AddrFromSlice(ip.To4())
	}
	return d, nil
}

// Replays remembers the Dynamic Authorization requests answered lately
// (for twice the Event-Timestamp window): the same request again from the
// same source is a retransmission and gets the same answer, with nothing
// done twice (RFC 5080 section 2.2.2); from anywhere else it is a replay.
type Replays struct {
	mu     sync.Mutex
	keep   time.Duration
	max    int
	recent map[[16]byte]answered
}

type answered struct {
	from    string
	reply   []byte
	expires time.Time
}

// NewReplays keeps at most max requests, each for 2*window.
func NewReplays(window time.Duration, max int) *Replays {
	return &Replays{keep: 2 * window, max: max, recent: map[[16]byte]answered{}}
}

// ErrReplay: a request answered before, from another source.
var ErrReplay = errors.New("a replayed Dynamic Authorization request")

// Seen looks a checked request up: a retransmission returns the answer
// sent before; a replay returns ErrReplay; a new request returns nothing.
func (r *Replays) Seen(d *DisconnectRequest, from string, now time.Time) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.recent[d.authenticator]
	switch {
	case !ok || now.After(a.expires):
		return nil, nil
	case a.from == from:
		return a.reply, nil
	}
	return nil, fmt.Errorf("%w: answered before for %s, now from %s", ErrReplay, a.from, from)
}

// Answered records the answer to a request.
func (r *Replays) Answered(d *DisconnectRequest, from string, reply []byte, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recent) >= r.max {
		for k, a := range r.recent {
			if now.After(a.expires) {
				delete(r.recent, k)
			}
		}
		if len(r.recent) >= r.max {
			clear(r.recent) // only authentic requests get here; the window still bounds replays
		}
	}
	r.recent[d.authenticator] = answered{from: from, reply: reply, expires: now.Add(r.keep)}
}

// IsCoA reports a CoA-Request, which a NAS without CoA support NAKs.
func (d *DisconnectRequest) IsCoA() bool { return d.p.Code == radius.CodeCoARequest }

// Empty reports a request that names no session.
func (d *DisconnectRequest) Empty() bool {
	return d.User == "" && d.SessionID == "" && !d.FramedAddress.IsValid()
}

// Reply is the ACK, or the NAK with its Error-Cause (cause 0: ACK).
func (d *DisconnectRequest) Reply(cause uint32) ([]byte, error) {
	ack, nak := radius.CodeDisconnectACK, radius.CodeDisconnectNAK
	if d.IsCoA() {
		ack, nak = radius.CodeCoAACK, radius.CodeCoANAK
	}
	if cause == 0 {
		return d.p.Response(ack).Encode()
	}
	r := d.p.Response(nak)
	if err := rfc3576.ErrorCause_Set(r, rfc3576.ErrorCause(cause)); err != nil {
		return nil, err
	}
	return r.Encode()
}
