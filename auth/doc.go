// Package auth holds identities and credential checks that plugins wrap:
// psk/ (preshared keys), x509/ (certificate chains, CRLs, ID matching, our
// own certificate and key) and users/ (the PPP users file); Kerberos later.
package auth
