package ike

import (
	"bytes"
	"crypto/md5"
	"net/netip"
	"time"
)

// NAT traversal in IKEv1 (RFC 3947, and the drafts Windows XP and racoon
// speak): vendor IDs in main mode messages 1 and 2 say both sides can;
// NAT-D payloads in messages 3 and 4 carry hashes of the addresses and
// ports each side sees; if they differ, a NAT is in the way, IKE moves to
// port 4500 from message 5 on, and ESP is UDP-encapsulated.

// NAT-T dialects.
const (
	nattNone  = 0
	nattRFC   = 1 // RFC 3947: NAT-D 20, NAT-OA 21, modes 3/4
	nattDraft = 2 // draft-02/03: NAT-D 130, NAT-OA 131, modes 61443/61444
)

// Vendor IDs are MD5 hashes of the document names (TestNATTVendorIDs).
var (
	vidRFC3947 = md5Of("RFC 3947")
	vidDraft02 = md5Of("draft-ietf-ipsec-nat-t-ike-02")
	// Windows and others send the draft name with a newline; it is in
	// common use, so we accept and send it too.
	vidDraft02N = md5Of("draft-ietf-ipsec-nat-t-ike-02\n")
	vidDraft03  = md5Of("draft-ietf-ipsec-nat-t-ike-03")
)

func md5Of(s string) []byte { h := md5.Sum([]byte(s)); return h[:] }

// natt is the NAT-T task of main and aggressive mode. It runs beside the
// phase 1 task and sees every message in order: step counts them. Vendor
// IDs go in messages 1 and 2; NAT-D in 3 and 4 of main mode, 2 and 3 of
// aggressive mode (RFC 3947 section 3.2).
type natt struct {
	step       int
	aggressive bool
}

func (t *natt) natdStep(step int) bool {
	if t.aggressive {
		return step == 2 || step == 3
	}
	return step == 3 || step == 4
}

func (t *natt) last() int {
	if t.aggressive {
		return 3
	}
	return 4
}

func (t *natt) build(x *exchange, out *msg) (bool, error) {
	sa := x.sa
	t.step++
	switch t.step {
	case 1: // initiator: we can do both dialects
		out.add(&Data{T: PayloadVendorID, Data: vidRFC3947}, &Data{T: PayloadVendorID, Data: vidDraft03},
			&Data{T: PayloadVendorID, Data: vidDraft02N})
	case 2: // responder: the dialect we picked
		switch sa.nat.dialect {
		case nattRFC:
			out.add(&Data{T: PayloadVendorID, Data: vidRFC3947})
		case nattDraft:
			out.add(&Data{T: PayloadVendorID, Data: vidDraft02N})
		}
	}
	if t.natdStep(t.step) && sa.nat.dialect != nattNone {
		typ := PayloadNATD
		if sa.nat.dialect == nattDraft {
			typ = PayloadNATDDraft
		}
		// RFC 3947 section 3.2: first the peer's address as we send to
		// it, then ours.
		ours := natHash(sa, sa.Local)
		if sa.Peer.ForceEncap {
			ours = sa.m.random(len(ours))
		}
		out.add(&Data{T: typ, Data: natHash(sa, sa.Remote)}, &Data{T: typ, Data: ours})
	}
	return t.step >= t.last(), nil
}

func (t *natt) process(x *exchange, in *msg) (bool, error) {
	sa := x.sa
	t.step++
	if t.step <= 2 {
		// The drafts only when a flag says this peer speaks them.
		switch {
		case sa.vendor.flags.Has(FlagNATT):
			sa.nat.dialect = nattRFC
		case sa.vendor.flags.Has(FlagNATTDraft):
			sa.nat.dialect = nattDraft
		}
	}
	if !t.natdStep(t.step) || sa.nat.dialect == nattNone {
		return t.step >= t.last(), nil
	}
	var hashes [][]byte
	for _, p := range in.payloads {
		if p.Type() == PayloadNATD || p.Type() == PayloadNATDDraft {
			hashes = append(hashes, p.(*Data).Data)
		}
	}
	if len(hashes) < 2 {
		return t.step >= t.last(), nil // the peer sends none: no NAT-T
	}
	// The first is what the peer thinks our address is.
	sa.nat.local = !bytes.Equal(hashes[0], natHash(sa, sa.Local)) || sa.Peer.ForceEncap
	sa.nat.remote = true
	for _, h := range hashes[1:] {
		if bytes.Equal(h, natHash(sa, sa.Remote)) {
			sa.nat.remote = false
		}
	}
	if sa.Initiator && sa.natDetected() {
		// RFC 3947 section 4: the initiator moves to 4500 now.
		sa.Local = netip.AddrPortFrom(sa.Local.Addr(), natPort)
		sa.Remote = netip.AddrPortFrom(sa.Remote.Addr(), natPort)
	}
	return t.step >= t.last(), nil
}

const natPort = 4500

// natKeepalive is how often the side behind a NAT sends a keepalive; NATs
// commonly forget idle UDP mappings after 30 s or more.
const natKeepalive = 20 * time.Second

// natHash is HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash
// (RFC 3947 section 3.2).
func natHash(sa *IKESA, ap netip.AddrPort) []byte {
	prf, err := NewPRF(sa.phase1.Hash)
	if err != nil {
		return nil
	}
	return prf.NATHash(sa.SPIi[:], sa.SPIr[:], ap)
}

func (sa *IKESA) natDetected() bool { return sa.nat.local || sa.nat.remote }

// udpEncap is the quick mode encapsulation for a tunnel or transport SA
// on this IKE SA: UDP-encapsulated in the negotiated dialect behind a NAT.
func (sa *IKESA) udpEncap(transport bool) uint16 {
	switch {
	case !sa.natDetected() && transport:
		return EncapTransport
	case !sa.natDetected():
		return EncapTunnel
	case sa.nat.dialect == nattDraft && transport:
		return EncapUDPTransportDraft
	case sa.nat.dialect == nattDraft:
		return EncapUDPTunnelDraft
	case transport:
		return EncapUDPTransport
	}
	return EncapUDPTunnel
}
