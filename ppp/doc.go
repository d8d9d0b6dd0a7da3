// Package ppp is PPP over L2TP. Built so far: frames (with address/control
// and protocol field compression), control packets and options, the CHAP
// and PAP codecs, MS-CHAPv2 with MPPE keys (RFC 2759, RFC 3079; checked
// against their published vectors), and the RFC 1661 option negotiation
// automaton that LCP and IPCP will share. Still to come: LCP and IPCP
// themselves (with DNS/NBNS, RFC 1877), and the CHAP/PAP exchanges. It
// knows nothing of the daemon.
package ppp
