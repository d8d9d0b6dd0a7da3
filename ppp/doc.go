// Package ppp will hold PPP over L2TP: frames, the RFC 1661 option
// negotiation automaton shared by LCP and IPCP, PAP, CHAP-MD5, MS-CHAPv2 with
// MPPE keys, and IPCP with DNS/NBNS (RFC 1877). It knows nothing of the daemon.
package ppp
