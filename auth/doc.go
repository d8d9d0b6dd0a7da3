// Package auth holds the identity and credential checks the auth plugins
// wrap, each a library of its own:
//
//   - psk: preshared keys and their key files;
//   - x509: certificate chains, CRLs, ID matching, our certificate and
//     key, and a lab PKI (x509/pki, behind `gatehouse pki`);
//   - krb5: Kerberos V5 for IKE's GSS-API method (initiator and acceptor
//     contexts, RFC 4121 wrap tokens, a replay cache);
//   - radius: a RADIUS client (RFC 2865, 2866, 3579) and Disconnect-Request
//     (RFC 5176) reading;
//   - users: the PPP users file;
//   - throttle: limits on failed logins by user and by address;
//   - secretfile: reading a secret file only when its mode and owner keep
//     it secret.
//
// None of them knows the daemon; the plugins in plugins/ and contrib/
// and the core use them.
package auth
