package radius

import (
	"bytes"
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
	if err := checkRequestMessageAuthenticator(b, secret); err != nil {
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

// checkRequestMessageAuthenticator verifies a request's
// Message-Authenticator: for these requests the HMAC covers the packet
// with a zero Request Authenticator and a zero attribute value (RFC 5176
// section 3.3, RFC 3579 section 3.2).
func checkRequestMessageAuthenticator(b, secret []byte) error {
	c := bytes.Clone(b)
	clear(c[4:20])
	for i := 20; i+2 <= len(c); {
		l := int(c[i+1])
		if l < 2 || i+l > len(c) {
			return fmt.Errorf("%w: attribute overruns the packet", ErrBadResponse)
		}
		if c[i] == 80 && l == 18 {
			got := bytes.Clone(c[i+2 : i+18])
			clear(c[i+2 : i+18])
			if !bytes.Equal(hmacMD5(secret, c), got) {
				return fmt.Errorf("%w: Message-Authenticator", ErrBadResponse)
			}
		}
		i += l
	}
	return nil
}
