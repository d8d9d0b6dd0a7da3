// Package ikev2 is IKEv2 (RFC 7296) beside the IKEv1 engine in package
// ike. This first part is the codec: the header, every payload of section
// 3 with the limits the RFC puts on its fields (verify), the critical bit
// (section 2.5), and the Encrypted and Encrypted Fragment payloads' layout
// (sections 3.14, RFC 7383). Exchanges, keys and the SK payload's
// protection come next.
//
// The package is called ikev2 rather than v2 so that its import path
// cannot be read as a module's major version.
package ikev2
