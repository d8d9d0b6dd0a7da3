// Package ike is Gatehouse's IKEv1 (RFC 2409) engine: codec, key material,
// exchanges and IKE SA state. It imports nothing from core/. This file set
// starts with the phase 1 algorithm catalogue used by configuration.
package ike
