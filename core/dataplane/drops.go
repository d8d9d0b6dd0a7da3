package dataplane

// DropReason is why a packet was dropped; each has a counter.
type DropReason int

const (
	DropMalformed     DropReason = iota // not a well-formed IP, ESP or UDP-encapsulated packet
	DropPolicyBlock                     // a block rule matched
	DropNoSA                            // negotiate rule, no SA yet (acquire sent)
	DropNoClearPath                     // permitted in clear, but no clear socket
	DropSendFailed                      // a socket or the TUN refused the packet
	DropSAExpired                       // the SA reached a hard limit
	DropUnknownSPI                      // no inbound SA for the SPI
	DropWrongPeer                       // SA used from another address or encapsulation
	DropReplay                          // replayed or too old
	DropAuth                            // ICV did not verify
	DropDummy                           // RFC 4303 dummy packet (not an error)
	DropSelector                        // decrypted packet outside the SA's selectors
	DropIKEUnhandled                    // IKE on port 4500 with no IKE engine attached
	DropLinkLocal                       // the host's own link-local or multicast chatter on the TUN
	DropInternal                        // a bug: a packet made the data path panic (logged)
	DropL2TPNoSession                   // L2TP data for a session not installed (yet, or any more)
	DropL2TPProtocol                    // a PPP data protocol we did not negotiate (IPv6)
	DropL2TPSpoof                       // a client sent from an address that is not its own
	DropL2TPUnhandled                   // L2TP control with no L2TP plugin attached
	DropDHCP                            // a broadcast to the DHCP server port through a tunnel, not answered
	numDrops
)

var dropNames = [numDrops]string{
	"malformed", "policy-block", "no-sa", "no-clear-path", "send-failed", "sa-expired", "unknown-spi",
	"wrong-peer", "replay", "auth-failed", "dummy", "selector-mismatch", "ike-unhandled", "link-local", "internal-error",
	"l2tp-no-session", "l2tp-protocol", "l2tp-spoofed-source", "l2tp-unhandled", "dhcp-unanswered",
}

func (r DropReason) String() string { return dropNames[r] }
