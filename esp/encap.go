package esp

// UDP encapsulation of ESP (RFC 3948): on port 4500 a datagram is ESP, or IKE
// behind a 4-byte zero "non-ESP marker", or a one-byte 0xFF NAT keepalive.

// NATTPort is the IKE and ESP-in-UDP port after NAT detection (RFC 3947).
const NATTPort = 4500

// NonESPMarkerLen is the length of the zero marker before IKE on port 4500.
const NonESPMarkerLen = 4

// UDPKind says what a datagram on port 4500 carries.
type UDPKind int

const (
	UDPInvalid   UDPKind = iota
	UDPESP               // ESP: starts with a non-zero SPI
	UDPIKE               // IKE after the non-ESP marker
	UDPKeepalive         // NAT keepalive, RFC 3948 section 2.3
)

func (k UDPKind) String() string {
	switch k {
	case UDPESP:
		return "esp"
	case UDPIKE:
		return "ike"
	case UDPKeepalive:
		return "keepalive"
	}
	return "invalid"
}

// ClassifyUDP sorts a port-4500 datagram and returns what to hand on: the
// ESP packet, or the IKE message without its marker.
func ClassifyUDP(p []byte) (UDPKind, []byte) {
	switch {
	case len(p) == 1 && p[0] == 0xff:
		return UDPKeepalive, nil
	case len(p) >= NonESPMarkerLen && p[0]|p[1]|p[2]|p[3] == 0:
		return UDPIKE, p[NonESPMarkerLen:]
	case len(p) >= HeaderLen:
		return UDPESP, p
	}
	return UDPInvalid, nil
}

// Keepalive is the NAT keepalive payload.
var Keepalive = [1]byte{0xff}
