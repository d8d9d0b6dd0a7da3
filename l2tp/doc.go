// Package l2tp is L2TPv2 (RFC 2661) for both ends, LNS and LAC, as a
// library: no sockets, no clock, no daemon. The caller feeds it packets and
// the time and sends what it is given.
//
//   - header.go: the header of control and data messages (section 3.1),
//     AppendDataHeader for framing PPP.
//   - avp.go, message.go: every AVP with its length rules, hidden AVPs
//     (section 4.3), and control messages as a whole (ParseMessage).
//   - tunnel.go: Tunnel, one control connection with reliable delivery
//     (Ns/Nr, retransmission, ZLB, HELLO; section 5.8), tunnel
//     authentication (section 5.1.1), StopCCN with result codes, and its
//     incoming calls.
//   - session.go: Session, one call (ICRQ, ICRP, ICCN, CDN with the RFC
//     3145 PPP cause).
//   - server.go: Server, the LNS's table of tunnels keyed by where their
//     packets come from.
//
// Start with Config and NewTunnel; plugins/l2tp (the LNS) and `gatehouse
// connect l2tp` (the LAC) are its two users.
package l2tp
