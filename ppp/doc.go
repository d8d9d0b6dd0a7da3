// Package ppp is PPP over L2TP. Built so far: frames (with address/control
// and protocol field compression), control packets and options, the CHAP
// and PAP codecs, and MS-CHAPv2 with MPPE keys (RFC 2759, RFC 3079; checked
// against their published vectors). Still to come: the RFC 1661 option
// negotiation automaton shared by LCP and IPCP, LCP, IPCP with DNS/NBNS
// (RFC 1877). It knows nothing of the daemon.
package ppp
