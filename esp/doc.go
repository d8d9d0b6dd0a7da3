// Package esp holds ESP (RFC 4303) and AH (RFC 4302) for Gatehouse's user-space
// data path. It knows nothing of the daemon. This file set starts with the
// algorithm catalogue that policy and configuration name offers with.
package esp
