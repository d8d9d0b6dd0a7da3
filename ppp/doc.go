// Package ppp is PPP as L2TP carries it, for the server and the client, as
// a library: no I/O, no clock.
//
//   - frame.go: frames (with address/control and protocol field
//     compression), control packets and options, the PAP and CHAP codecs.
//   - fsm.go: the RFC 1661 option negotiation automaton.
//   - lcp.go, ipcp.go: LCP and IPCP (with RFC 1877 name servers) on it.
//   - auth.go, mschapv2.go: PAP, CHAP-MD5 and MS-CHAPv2 (RFC 2759, with
//     RFC 3079's MPPE keys, checked against their published vectors) for
//     both roles; CheckWithPassword is a reference credential check.
//   - link.go: Link, which strings the layers together in RFC 1661's
//     phases (LCP, authentication, IPCP, then echoes) and reports why a
//     link ended with an RFC 3145 cause.
//
// Start with LinkConfig and NewLink.
package ppp
