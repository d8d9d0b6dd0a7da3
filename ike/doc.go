// Package ike is Gatehouse's IKEv1 engine (RFC 2409, with RFC 2407's DOI),
// as a library: it imports nothing from core/ and does no I/O; the host
// (Host) sends, keeps the keys and installs SAs.
//
//   - header.go, payload.go, message.go: the ISAKMP codec (RFC 2408).
//   - algorithms.go, proposal.go, dh.go, keys.go, crypter.go: the
//     algorithm catalogue, proposals and their selection, Diffie-Hellman,
//     SKEYID and its children, phase 1 encryption.
//   - manager.go: Manager, the IKE SAs and their life; Receive, Initiate
//     and Tick drive it. exchange.go runs each exchange as tasks, one
//     message at a time.
//   - mainmode.go, aggressive.go, quickmode.go, informational.go: the
//     exchanges; sigauth.go, signature.go and gss.go the signature and
//     Kerberos (GSS-API) methods.
//   - natt.go (RFC 3947), dpd.go (RFC 3706), fragment.go, rekey.go,
//     vendor.go: NAT traversal, dead peer detection, IKE fragmentation,
//     rekeying, and the vendor IDs and interop plugins' answers.
//   - clients/: what the clients built into Windows, macOS/iOS and
//     Android send, for the interop plugins and `gatehouse connect`.
//
// Start with Config, PeerConfig and NewManager.
package ike
