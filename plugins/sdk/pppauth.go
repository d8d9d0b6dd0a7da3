package sdk

import (
	"fmt"
	"net/netip"

	"github.com/gatehouse/gatehouse/ppp"
)

// The mapping between a PPP server's credentials and the UserAuthRequest
// that carries them, written once for the L2TP plugin (which asks), the
// core and the user-database plugins (which answer).

// UserAuthRequestFor is the request for credentials a PPP server received
// from peer. For MS-CHAPv2, Response is the 24-byte NT-Response.
func UserAuthRequestFor(c ppp.Credentials, peer netip.AddrPort) UserAuthRequest {
	r := UserAuthRequest{User: c.User, Password: Secret(c.Password), ChapID: c.ID, Challenge: c.Challenge, Response: c.Response, Peer: peer}
	switch c.Proto {
	case ppp.AuthPAP:
		r.Method = MethodPAP
	case ppp.AuthCHAPMD5:
		r.Method = MethodCHAPMD5
	default:
		r.Method = MethodMSCHAPv2
		r.PeerChallenge = c.MSCHAPv2.PeerChallenge[:]
		r.Response = c.MSCHAPv2.NTResponse[:]
	}
	return r
}

// PPPCredentials turns a request back into what ppp's checks take.
func (r UserAuthRequest) PPPCredentials() (ppp.Credentials, error) {
	c := ppp.Credentials{User: r.User, Password: string(r.Password), ID: r.ChapID, Challenge: r.Challenge, Response: r.Response}
	switch r.Method {
	case MethodPAP:
		c.Proto = ppp.AuthPAP
	case MethodCHAPMD5:
		c.Proto = ppp.AuthCHAPMD5
	case MethodMSCHAPv2:
		c.Proto = ppp.AuthMSCHAPv2
		if len(r.PeerChallenge) != 16 || len(r.Response) != 24 {
			return ppp.Credentials{}, fmt.Errorf("%w: MS-CHAPv2 response of %d/%d bytes", ErrInvalid, len(r.PeerChallenge), len(r.Response))
		}
		copy(c.MSCHAPv2.PeerChallenge[:], r.PeerChallenge)
		copy(c.MSCHAPv2.NTResponse[:], r.Response)
	default:
		return ppp.Credentials{}, fmt.Errorf("%w: %v is not a PPP method", ErrUnsupported, r.Method)
	}
	return c, nil
}
