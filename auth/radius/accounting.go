package radius

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2866"
	"layeh.com/radius/rfc2869"
)

// AcctStatus is Acct-Status-Type (RFC 2866 section 5.1).
type AcctStatus int

const (
	AcctStart   AcctStatus = 1
	AcctStop    AcctStatus = 2
	AcctInterim AcctStatus = 3 // Interim-Update (RFC 2869 section 2.1)
)

func (s AcctStatus) String() string {
	switch s {
	case AcctStart:
		return "start"
	case AcctStop:
		return "stop"
	case AcctInterim:
		return "interim-update"
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// Acct-Terminate-Cause values (RFC 2866 section 5.10) Gatehouse uses.
const (
	CauseUserRequest    = 1
	CauseLostCarrier    = 2
	CauseIdleTimeout    = 4
	CauseSessionTimeout = 5
	CauseAdminReset     = 6
	CauseNASError       = 9
	CauseNASRequest     = 10
	CauseNASReboot      = 11
)

// AcctRecord is one accounting record of a session.
type AcctRecord struct {
	Status         AcctStatus
	SessionID      string
	User           string
	FramedAddress  netip.Addr
	CallingStation string
	BytesIn        uint64 // from the client
	BytesOut       uint64 // to the client
	PacketsIn      uint64
	PacketsOut     uint64
	SessionTime    time.Duration
	TerminateCause uint32 // stop only
	Class          [][]byte
}

// Account sends a record to the servers in order until one acknowledges
// it (RFC 2866 section 2: the NAS keeps trying). It returns the server
// that took it.
func (c *Client) Account(ctx context.Context, rec AcctRecord) (string, error) {
	var errs []error
	for _, s := range c.order() {
		err := c.account(ctx, s, rec)
		if err == nil {
			c.mark(s.Addr, true)
			return s.AcctAddr, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w: %v", ErrNoServer, ctx.Err())
		}
		c.mark(s.Addr, false)
		errs = append(errs, fmt.Errorf("%s: %w", s.AcctAddr, err))
	}
	return "", fmt.Errorf("%w: %w", ErrNoServer, errors.Join(errs...))
}

func (c *Client) account(ctx context.Context, s Server, rec AcctRecord) error {
	p := radius.New(radius.CodeAccountingRequest, s.Secret)
	errs := []error{
		rfc2866.AcctStatusType_Set(p, rfc2866.AcctStatusType(rec.Status)),
		rfc2866.AcctSessionID_SetString(p, rec.SessionID),
		rfc2866.AcctAuthentic_Set(p, rfc2866.AcctAuthentic_Value_RADIUS),
		rfc2865.UserName_SetString(p, rec.User),
		rfc2865.ServiceType_Set(p, rfc2865.ServiceType_Value_FramedUser),
		rfc2865.FramedProtocol_Set(p, rfc2865.FramedProtocol_Value_PPP),
		rfc2865.NASPortType_Set(p, rfc2865.NASPortType_Value_Virtual),
	}
	if c.cfg.NASIdentifier != "" {
		errs = append(errs, rfc2865.NASIdentifier_SetString(p, c.cfg.NASIdentifier))
	}
	if rec.FramedAddress.Is4() {
		errs = append(errs, rfc2865.FramedIPAddress_Set(p, rec.FramedAddress.AsSlice()))
	}
	if rec.CallingStation != "" {
		errs = append(errs, rfc2865.CallingStationID_SetString(p, rec.CallingStation))
	}
	for _, cl := range rec.Class {
		errs = append(errs, rfc2865.Class_Add(p, cl))
	}
	if rec.Status != AcctStart {
		// Octets past 4 GiB go in the Gigawords (RFC 2869 section 5.1).
		errs = append(errs,
			rfc2866.AcctInputOctets_Set(p, rfc2866.AcctInputOctets(uint32(rec.BytesIn))),
			rfc2866.AcctOutputOctets_Set(p, rfc2866.AcctOutputOctets(uint32(rec.BytesOut))),
			rfc2866.AcctInputPackets_Set(p, rfc2866.AcctInputPackets(uint32(rec.PacketsIn))),
			rfc2866.AcctOutputPackets_Set(p, rfc2866.AcctOutputPackets(uint32(rec.PacketsOut))),
			rfc2866.AcctSessionTime_Set(p, rfc2866.AcctSessionTime(rec.SessionTime/time.Second)))
		if g := rec.BytesIn >> 32; g > 0 {
			errs = append(errs, rfc2869.AcctInputGigawords_Set(p, rfc2869.AcctInputGigawords(g)))
		}
		if g := rec.BytesOut >> 32; g > 0 {
			errs = append(errs, rfc2869.AcctOutputGigawords_Set(p, rfc2869.AcctOutputGigawords(g)))
		}
	}
	if rec.Status == AcctStop && rec.TerminateCause != 0 {
		errs = append(errs, rfc2866.AcctTerminateCause_Set(p, rfc2866.AcctTerminateCause(rec.TerminateCause)))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	req, err := encodeWithAuthenticator(p)
	if err != nil {
		return err
	}
	resp, err := c.exchange(ctx, s.AcctAddr, req, s.Secret)
	if err != nil {
		return err
	}
	if radius.Code(resp[0]) != radius.CodeAccountingResponse {
		return fmt.Errorf("%w: code %v to an Accounting-Request", ErrBadResponse, radius.Code(resp[0]))
	}
	return nil
}
