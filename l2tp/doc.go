// Package l2tp will hold L2TPv2 (RFC 2661): the codec and AVPs, reliable
// control delivery (Ns/Nr, retransmit, ZLB, hello), and the tunnel and session
// state machines for both ends. It knows nothing of the daemon; the L2TP
// plugin drives it and the core frames data packets. See shared/DESIGN.md.
package l2tp
