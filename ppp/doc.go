// Package ppp is PPP over L2TP. Built so far: frames (with address/control
// and protocol field compression), control packets and options, the CHAP
// and PAP codecs, MS-CHAPv2 with MPPE keys (RFC 2759, RFC 3079; checked
// against their published vectors), the RFC 1661 option negotiation
// automaton, and LCP and IPCP (with DNS and NBNS, RFC 1877) on it for the
// server and the client, and the PAP, CHAP-MD5 and MS-CHAPv2 exchanges for
// both roles. Still to come: the session that strings the layers together
// (LCP, then authentication, then IPCP). It knows nothing of the daemon.
package ppp
