package ike

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// FormatID renders an identification payload body in the text form used by
// configuration: "ipv4:198.51.100.2", "fqdn:gw.example.net",
// "user:ops@example.net", "keyid:6b6579" (hex), "dn:CN=gw,O=Example" (a
// DER DN, shown only: not a configurable form); other types as "type:N:hex".
func FormatID(idType uint8, data []byte) string {
	switch idType {
	case IDIPv4Addr:
		if a, ok := netip.AddrFromSlice(data); ok && a.Is4() {
			return "ipv4:" + a.String()
		}
	case IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(data); ok && a.Is6() {
			return "ipv6:" + a.String()
		}
	case IDFQDN:
		return "fqdn:" + strings.ToLower(string(data))
	case IDUserFQDN:
		return "user:" + strings.ToLower(string(data))
	case IDKeyID:
		return "keyid:" + hex.EncodeToString(data)
	case IDDERASN1DN:
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(data, &rdn); err == nil && len(rest) == 0 {
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			return "dn:" + n.String()
		}
	}
	return fmt.Sprintf("type:%d:%s", idType, hex.EncodeToString(data))
}

// ParseID normalises a configured identity to FormatID's form. "dn:" (a
// certificate's subject, "dn:CN=gw-b,O=Example") is accepted for matching
// a peer, and compared by SameID.
func ParseID(text string) (string, error) {
	kind, value, ok := strings.Cut(text, ":")
	if !ok || value == "" {
		return "", fmt.Errorf("identity %q: want kind:value with kind one of ipv4, ipv6, fqdn, user, keyid, dn", text)
	}
	switch strings.ToLower(kind) {
	case "dn":
		if !strings.Contains(value, "=") {
			return "", fmt.Errorf("identity %q: a dn is attribute=value pairs, such as dn:CN=gw-b,O=Example", text)
		}
		return "dn:" + canonicalDN(value), nil
	case "ipv4", "ipv6":
		a, err := netip.ParseAddr(value)
		if err != nil || (kind == "ipv4") != a.Is4() {
			return "", fmt.Errorf("identity %q: %q is not an %s address", text, value, kind)
		}
		return strings.ToLower(kind) + ":" + a.String(), nil
	case "fqdn", "user":
		return strings.ToLower(kind) + ":" + strings.ToLower(value), nil
	case "keyid":
		if _, err := hex.DecodeString(value); err != nil {
			return "", fmt.Errorf("identity %q: keyid value must be hex", text)
		}
		return "keyid:" + strings.ToLower(value), nil
	}
	return "", fmt.Errorf("identity %q: unknown kind %q (ipv4, ipv6, fqdn, user, keyid, dn)", text, kind)
}

// canonicalDN writes a DN for comparison: attribute types and values
// lower case (directory strings compare without case, RFC 4517 section
// 4.2.11), no spaces around the separators.
func canonicalDN(dn string) string {
	var parts []string
	start := 0
	for i := 0; i <= len(dn); i++ {
		if i == len(dn) || (dn[i] == ',' && (i == 0 || dn[i-1] != '\\')) {
			typ, val, _ := strings.Cut(dn[start:i], "=")
			parts = append(parts, strings.ToLower(strings.TrimSpace(typ))+"="+strings.ToLower(strings.TrimSpace(val)))
			start = i + 1
		}
	}
	return strings.Join(parts, ",")
}

// SameID reports whether a configured identity (ParseID's form) names the
// identity got (FormatID's form).
func SameID(configured, got string) bool {
	if rest, ok := strings.CutPrefix(got, "dn:"); ok {
		got = "dn:" + canonicalDN(rest)
	}
	return configured == got
}

// CertNames lists the identities a certificate holds, in FormatID's form:
// its subject, then its DNS names, addresses and e-mail addresses (RFC
// 4945 section 3.1's ID types).
func CertNames(c *x509.Certificate) []string {
	out := []string{FormatID(IDDERASN1DN, c.RawSubject)}
	for _, n := range c.DNSNames {
		out = append(out, "fqdn:"+strings.ToLower(n))
	}
	for _, ip := range c.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, FormatID(addressID(a).IDType, a.Unmap().AsSlice()))
		}
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "user:"+strings.ToLower(e))
	}
	return out
}

// AnyID reports whether a configured identity names any of names (a
// certificate's subject and alternative names).
func AnyID(configured string, names []string) bool {
	for _, n := range names {
		if SameID(configured, n) {
			return true
		}
	}
	return false
}

// IDFromText builds the ID payload of a configured identity ("fqdn:...",
// "ipv4:...", "user:...", "keyid:hex", "ipv6:...").
func IDFromText(text string) (*ID, error) {
	norm, err := ParseID(text)
	if err != nil {
		return nil, err
	}
	kind, value, _ := strings.Cut(norm, ":")
	switch kind {
	case "ipv4":
		return &ID{IDType: IDIPv4Addr, Data: netip.MustParseAddr(value).AsSlice()}, nil
	case "ipv6":
		return &ID{IDType: IDIPv6Addr, Data: netip.MustParseAddr(value).AsSlice()}, nil
	case "fqdn":
		return &ID{IDType: IDFQDN, Data: []byte(value)}, nil
	case "user":
		return &ID{IDType: IDUserFQDN, Data: []byte(value)}, nil
	case "dn":
		return nil, fmt.Errorf("identity %q: a dn names a peer's certificate; our own ID with a certificate is the certificate's", text)
	}
	b, _ := hex.DecodeString(value)
	return &ID{IDType: IDKeyID, Data: b}, nil
}
