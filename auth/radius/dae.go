package radius

import (
	"fmt"
	"net/netip"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
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
}

// ReadDisconnect checks a Dynamic Authorization request under the
// client's secret: a Disconnect-Request (a CoA-Request is refused by the
// caller with Unsupported-Service), its Request Authenticator (as for
// accounting, RFC 5176 section 2.3) and its Message-Authenticator when
// present.
func ReadDisconnect(b, secret []byte) (*DisconnectRequest, error) {
	if len(b) < 20 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadResponse, len(b))
	}
	if radius.Code(b[0]) != radius.CodeDisconnectRequest && radius.Code(b[0]) != radius.CodeCoARequest {
		return nil, fmt.Errorf("%w: code %v on the Dynamic Authorization port", ErrBadResponse, radius.Code(b[0]))
	}
	if !radius.IsAuthenticRequest(b, secret) {
		return nil, fmt.Errorf("%w: Request Authenticator (wrong shared secret?)", ErrBadResponse)
	}
	if err := checkMessageAuthenticator(b, make([]byte, 16), secret, false); err != nil {
		return nil, err
	}
	p, err := radius.Parse(b, secret)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	d := &DisconnectRequest{User: rfc2865.UserName_GetString(p), SessionID: rfc2866.AcctSessionID_GetString(p), p: p}
	if ip, err := rfc2865.FramedIPAddress_Lookup(p); err == nil {
		d.FramedAddress, _ = netip.AddrFromSlice(ip.To4())
	}
	return d, nil
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
