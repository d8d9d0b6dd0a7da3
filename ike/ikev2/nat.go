package ikev2

import (
	"crypto/hmac"
	"fmt"
	"io"
	"net/netip"

	"github.com/gatehouse/gatehouse/ike/alg"
)

// natPRF is SHA-1: NAT detection uses it whatever the suite (section
// 2.23).
var natPRF = func() alg.PRF {
	h, _ := alg.ParseHash("sha1")
	return h.PRF()
}()

// NATNotifies are the NAT_DETECTION_SOURCE_IP and _DESTINATION_IP
// notifies of an IKE_SA_INIT message sent from src to dst (section 2.23).
// The responder's SPI is zero in the request.
func NATNotifies(spii, spir SPI, src, dst netip.AddrPort) []Payload {
	return []Payload{
		&Notify{Kind: NotifyNATDetectionSourceIP, Data: natPRF.NATHash(spii[:], spir[:], src)},
		&Notify{Kind: NotifyNATDetectionDestinationIP, Data: natPRF.NATHash(spii[:], spir[:], dst)},
	}
}

// NAT is what NAT detection found on one IKE_SA_INIT message: whether
// the sender is behind a NAT (none of its source hashes match the
// address it came from) and whether we are (its destination hash does
// not match our address). Supported is false when the peer sent no
// NAT_DETECTION notifies.
type NAT struct {
	Supported, PeerBehind, WeBehind bool
}

// DetectNAT reads the NAT detection notifies of a message that came from
// remote to local (section 2.23). A message may carry several source
// hashes (a host with several addresses), and must carry exactly one
// destination hash when it carries any.
func DetectNAT(ps []Payload, spii, spir SPI, local, remote netip.AddrPort) (NAT, error) {
	srcs, dsts := Notifies(ps, NotifyNATDetectionSourceIP), Notifies(ps, NotifyNATDetectionDestinationIP)
	if len(srcs) == 0 && len(dsts) == 0 {
		return NAT{}, nil
	}
	if len(dsts) != 1 || len(srcs) == 0 {
		return NAT{}, fmt.Errorf("%w: %d NAT_DETECTION_SOURCE_IP and %d NAT_DETECTION_DESTINATION_IP notifies", ErrMalformed, len(srcs), len(dsts))
	}
	n := NAT{Supported: true, PeerBehind: true}
	want := natPRF.NATHash(spii[:], spir[:], remote)
	for _, s := range srcs {
		if hmac.Equal(s.Data, want) {
			n.PeerBehind = false
		}
	}
	n.WeBehind = !hmac.Equal(dsts[0].Data, natPRF.NATHash(spii[:], spir[:], local))
	return n, nil
}

// fakeNATSource makes the NAT_DETECTION_SOURCE_IP notify of our
// IKE_SA_INIT message match no address, so the peer sees us behind a NAT
// and carries ESP in UDP (esp.udp_encap, strongSwan's encap = yes).
func fakeNATSource(ps []Payload, rand io.Reader) error {
	for _, n := range Notifies(ps, NotifyNATDetectionSourceIP) {
		fake := make([]byte, len(n.Data))
		if _, err := io.ReadFull(rand, fake); err != nil {
			return err
		}
		n.Data = fake
	}
	return nil
}
