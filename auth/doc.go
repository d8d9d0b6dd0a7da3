// Package auth holds identities and credential checks that plugins wrap:
// psk/ (preshared keys) now; X.509, Kerberos and PPP user databases later.
package auth
