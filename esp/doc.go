// Package esp is ESP (RFC 4303) and AH (RFC 4302) for Gatehouse's
// user-space data path, as a library: it seals and opens packets in
// caller-owned buffers and knows nothing of sockets or the daemon.
//
//   - algorithms.go: the catalogue of ciphers and integrity algorithms, and
//     Suite, what configuration and policy name an offer with
//     (ParseSuite).
//   - transform.go, backend.go: the AEAD and CBC+HMAC transforms, and
//     Backend, where a crypto implementation plugs in.
//   - sa.go: Outbound and Inbound, one SA each way: sequence numbers
//     (with ESN), lifetimes by time, bytes and packets, statistics.
//   - replay.go: the anti-replay window (RFC 4303 section 3.4.3).
//   - ah.go: AH.
//   - encap.go, ip.go: RFC 3948 UDP encapsulation and the IPv4 header
//     helpers tunnel and transport mode need.
//
// Start with Config, NewOutbound and NewInbound.
package esp
