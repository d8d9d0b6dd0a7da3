package ikev2

import "github.com/gatehouse/gatehouse/ike/clients"

// Client families the engine itself must tell apart, by the vendor IDs
// of their IKE_SA_INIT, for rules the protocol leaves open. Windows's
// built-in IKEv2 client sends MS NT5 ISAKMPOAKLEY with its version, as in
// IKEv1. The interop plugins do not see IKEv2 peers yet.
const familyWindows = "windows"

// clientFamily names the family an IKE_SA_INIT request's vendor IDs
// show, and what they say of it.
func clientFamily(ps []Payload) (family, detail string) {
	for _, p := range ps {
		if v, ok := p.(*VendorID); ok {
			if ver, ok := clients.WindowsVersion(v.Data); ok {
				return familyWindows, clients.WindowsRelease(ver)
			}
		}
	}
	return "", ""
}

// clientRekeysChildren reports whether a road warrior must rekey its
// children itself: Windows behind a NAT refuses the server's rekeys
// (error 13863) and makes its own.
func (s *ikeSA) clientRekeysChildren() bool {
	return s.peer.RemoteAccess != nil && s.family == familyWindows && s.nat.PeerBehind
}

// modp2048First puts the suites with MODP2048 first, keeping their order
// otherwise: Windows takes the server's IKE SA rekey with MODP2048 even
// where its own offer had MODP1024 only.
func modp2048First(ours []Proposal) []Proposal {
	out := make([]Proposal, 0, len(ours))
	for _, first := range []bool{true, false} {
		for _, p := range ours {
			if (p.Group.Number == 14) == first {
				out = append(out, p)
			}
		}
	}
	return out
}
