package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/auth/psk"
	"github.com/gatehouse/gatehouse/auth/throttle"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/ppp"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

const nameRule = "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"

type validator struct {
	*decoder
	c         *Config
	ruleNames map[string]string // name -> where it was defined
	configDir string
}

func validate(d *decoder, c *Config) {
	v := &validator{decoder: d, c: c, ruleNames: map[string]string{}, configDir: filepath.Dir(c.File)}
	v.top()
	for i := range c.Tunnels {
		v.tunnel(i, &c.Tunnels[i])
	}
	if c.RemoteAccess != nil {
		v.remoteAccess(c.RemoteAccess)
	}
	for name, list := range c.FilterLists {
		if !nameRE.MatchString(name) {
			v.errorAt(c.Meta.At("filter_lists"), "filter_lists."+name, "bad name; %s", nameRule)
		}
		if len(list) == 0 {
			v.errorAt(c.Meta.At("filter_lists"), "filter_lists."+name, "a filter list needs at least one filter")
		}
		for i := range list {
			v.filter(&list[i], fmt.Sprintf("filter_lists.%s[%d]", name, i), false)
		}
	}
	for name, fa := range c.FilterActions {
		if !nameRE.MatchString(name) || name == "permit" || name == "block" || name == "negotiate" {
			v.errorAt(fa.Meta.Pos, "filter_actions."+name, "bad name; %s, and not permit, block or negotiate", nameRule)
		}
		v.filterAction(&fa, "filter_actions."+name)
	}
	for i := range c.Rules {
		v.rule(i, &c.Rules[i])
	}
	spis := map[uint32]string{}
	for i := range c.ManualSAs {
		v.manualSA(i, &c.ManualSAs[i], spis)
	}
	v.dataplane()
	v.plugins()
	// Errors come out in file order, whatever order the checks ran in.
	sortErrors(d.errs)
	sortErrors(d.warns)
}

func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		return l[i].Line < l[j].Line || (l[i].Line == l[j].Line && l[i].Col < l[j].Col)
	})
}

func (v *validator) top() {
	c := v.c
	if len(c.Listen) == 0 {
		v.errorAt(c.Meta.At("listen"), "listen", "at least one address to serve IKE and ESP on is required (e.g. listen: [203.0.113.1])")
	}
	seen := map[netip.Addr]bool{}
	v6 := 0
	for i, a := range c.Listen {
		if seen[a.Addr] {
			v.errorAt(c.Meta.At("listen"), fmt.Sprintf("listen[%d]", i), "%s is listed twice", a.Addr)
		}
		seen[a.Addr] = true
		if a.Addr.IsUnspecified() || a.Addr.IsMulticast() {
			v.errorAt(c.Meta.At("listen"), fmt.Sprintf("listen[%d]", i), "%s cannot be listened on; give the gateway's own unicast address", a.Addr)
		} else if a.Addr.Unmap().Is6() {
			if v6++; v6 > 1 {
				v.errorAt(c.Meta.At("listen"), fmt.Sprintf("listen[%d]", i), "%s: one IPv6 listen address at most in this release", a.Addr)
			}
			if i == 0 && c.RemoteAccess != nil {
				v.errorAt(c.Meta.At("listen"), "listen[0]", "%s: remote access answers on the first listen address, which must be IPv4 (road warriors over IPv6 are not carried yet); list an IPv4 address first", a.Addr)
			}
		}
	}
	if !filepath.IsAbs(c.AdminSocket) {
		v.errorAt(c.Meta.At("admin_socket"), "admin_socket", "%q must be an absolute path", c.AdminSocket)
	}
	if c.MetricsListen != "" {
		if _, err := netip.ParseAddrPort(c.MetricsListen); err != nil {
			v.errorAt(c.Meta.At("metrics_listen"), "metrics_listen", "%q is not address:port (e.g. 127.0.0.1:9273; empty turns metrics off)", c.MetricsListen)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.errorAt(c.Log.Meta.At("level"), "log.level", "%q is not a level; allowed: debug, info, warn, error", c.Log.Level)
	}
	if a := c.Log.Audit; a != "" && a != "-" {
		c.Log.Audit = v.abs(a)
		if st, err := os.Stat(filepath.Dir(c.Log.Audit)); err != nil || !st.IsDir() {
			v.errorAt(c.Log.Meta.At("audit"), "log.audit", "folder %s does not exist; create it or give another file (- is stdout)", filepath.Dir(c.Log.Audit))
		}
	}
	switch c.Log.Format {
	case "console", "json":
	default:
		v.errorAt(c.Log.Meta.At("format"), "log.format", "%q is not a format; allowed: console, json", c.Log.Format)
	}
	v.ike(&c.IKE, "ike")
}

func (v *validator) isListen(a netip.Addr) bool {
	for _, l := range v.c.Listen {
		if l.Addr == a {
			return true
		}
	}
	return false
}

func (v *validator) ike(k *IKE, path string) {
	if k.Version != 1 && k.Version != 2 {
		v.errorAt(k.Meta.At("version"), path+".version", "%d is not an IKE version; use 2 (RFC 7296) or 1 (RFC 2409, for peers such as Windows 2000 that speak nothing newer)", k.Version)
	}
	v.ikeProposals(k.Proposals, k.Version, k.Meta.At("proposals"), path)
	v.lifetime(k.Lifetime.Duration, time.Minute, 24*time.Hour, k.Meta.At("lifetime"), path+".lifetime")
	if k.AggressiveMode {
		// Aggressive mode with a PSK sends a hash that can be cracked offline
		// (RFC 9395 section 3); it is allowed only with a configured identity.
		if path == "ike" {
			v.errorAt(k.Meta.At("aggressive_mode"), path+".aggressive_mode", "aggressive mode may be enabled only per tunnel, where the peer's identity is configured")
		}
	}
	if k.FragmentSize < 576 || k.FragmentSize > 9000 {
		v.errorAt(k.Meta.At("fragment_size"), path+".fragment_size", "%d is out of range; allowed 576 to 9000 (the IP datagram size; 1280 by default)", k.FragmentSize)
	}
	if d := k.DPD; d.Interval.Duration < time.Second || d.Timeout.Duration <= d.Interval.Duration {
		v.errorAt(k.DPD.Meta.Pos, path+".dpd", "interval must be at least 1s and timeout longer than interval (got %s and %s)", d.Interval.Duration, d.Timeout.Duration)
	}
}

// ikeProposals checks IKE SA suites for a version: each parses, and a
// legacy one only with legacy_algorithms.
func (v *validator) ikeProposals(list []string, version int, pos Pos, path string) {
	for i, p := range list {
		legacy, err := ikeProposal(p, version)
		if err != nil {
			v.errorAt(pos, fmt.Sprintf("%s.proposals[%d]", path, i), "%v", err)
			continue
		}
		if legacy && !v.c.LegacyAlgorithms {
			v.errorAt(pos, fmt.Sprintf("%s.proposals[%d]", path, i), "%s uses a legacy algorithm; set legacy_algorithms: true to allow it", p)
		}
	}
}

// ikeProposal parses an IKE SA suite for a version; a suite only IKEv2
// has, offered to IKEv1, says which version takes it.
func ikeProposal(text string, version int) (legacy bool, err error) {
	if version == 2 {
		p, err := ikev2.ParseProposal(text)
		return err == nil && p.Legacy(), err
	}
	p, err := ike.ParseProposal(text)
	if err != nil {
		if _, err2 := ikev2.ParseProposal(text); err2 == nil {
			return false, fmt.Errorf("%w; %s is an IKEv2 suite: set version: 2 to offer it", err, text)
		}
		return false, err
	}
	return p.Legacy(), nil
}

func (v *validator) lifetime(d, lo, hi time.Duration, p Pos, path string) {
	if d < lo || d > hi {
		v.errorAt(p, path, "%s is out of range; allowed %s to %s", d, lo, hi)
	}
}

// espSettings checks ESP's settings for an IKE version's child SAs.
func (v *validator) espSettings(e *ESP, path string, version int) {
	v.offers(e.Proposals, e.Meta.At("proposals"), path+".proposals", version)
	v.pfs(e.PFS, e.Meta.At("pfs"), path+".pfs")
	v.lifetime(e.Lifetime.Duration, 10*time.Second, 24*time.Hour, e.Meta.At("lifetime"), path+".lifetime")
}

func (v *validator) offers(list []string, p Pos, path string, version int) {
	if len(list) == 0 {
		v.errorAt(p, path, "at least one offer is required (e.g. aes128gcm16, aes256-sha256)")
	}
	for i, o := range list {
		s, err := esp.ParseSuite(o)
		if err != nil {
			v.errorAt(p, fmt.Sprintf("%s[%d]", path, i), "%v", err)
			continue
		}
		if s.Legacy() && !v.c.LegacyAlgorithms {
			v.errorAt(p, fmt.Sprintf("%s[%d]", path, i), "%s uses a legacy algorithm; set legacy_algorithms: true to allow it", o)
		}
		if err := esp.CheckIKEv1(s); err != nil && version == 1 {
			v.errorAt(p, fmt.Sprintf("%s[%d]", path, i), "%v", err)
		}
	}
}

func (v *validator) pfs(name string, p Pos, path string) {
	if name == "none" {
		return
	}
	g, err := ike.ParseGroup(name)
	if err != nil {
		v.errorAt(p, path, "%v; or none", err)
		return
	}
	if g.Legacy && !v.c.LegacyAlgorithms {
		v.errorAt(p, path, "%s is a legacy group; set legacy_algorithms: true to allow it", name)
	}
}

// defineRule checks a rule or tunnel name: well formed, and unique among
// rules (tunnels and remote access make rules too).
func (v *validator) defineRule(kind, name, where string, p Pos, path string) {
	if !nameRE.MatchString(name) {
		v.errorAt(p, path, "%s needs a name; %s", kind, nameRule)
		return
	}
	if prev, ok := v.ruleNames[name]; ok {
		v.errorAt(p, path, "name %q is already used by %s", name, prev)
		return
	}
	v.ruleNames[name] = where
}

func (v *validator) tunnel(i int, t *Tunnel) {
	path := fmt.Sprintf("tunnels[%d]", i)
	v.defineRule("a tunnel", t.Name, path, t.Meta.At("name"), path+".name")
	if !t.Local.Address.IsValid() {
		v.errorAt(t.Local.Meta.Pos, path+".local.address", "required: this gateway's address for the tunnel (one of listen)")
	} else if !v.isListen(t.Local.Address.Addr) {
		v.errorAt(t.Local.Meta.At("address"), path+".local.address", "%s is not one of listen (%s)", t.Local.Address.Addr, v.listenText())
	}
	if !t.Remote.Address.IsValid() {
		v.errorAt(t.Remote.Meta.Pos, path+".remote.address", "required: the peer gateway's static address")
	} else if v.isListen(t.Remote.Address.Addr) {
		v.errorAt(t.Remote.Meta.At("address"), path+".remote.address", "%s is one of this gateway's own addresses", t.Remote.Address.Addr)
	} else if t.Local.Address.IsValid() && t.Remote.Address.Addr.Unmap().Is6() != t.Local.Address.Addr.Unmap().Is6() {
		v.errorAt(t.Remote.Meta.At("address"), path+".remote.address", "%s and local.address %s are of different families; a tunnel's two ends must both be IPv4 or both IPv6",
			t.Remote.Address.Addr, t.Local.Address.Addr)
	}
	for side, ep := range map[string]*Endpoint{"local": &t.Local, "remote": &t.Remote} {
		if len(ep.Subnets) == 0 {
			v.errorAt(ep.Meta.At("subnets"), path+"."+side+".subnets", "at least one subnet is required (the %s side's protected network)", side)
		}
		if ep.ID != "" {
			if _, err := psk.ParseID(ep.ID); err != nil {
				v.errorAt(ep.Meta.At("id"), path+"."+side+".id", "%v", err)
			} else if side == "local" {
				if _, err := ike.IDFromText(ep.ID); err != nil {
					v.errorAt(ep.Meta.At("id"), path+".local.id", "%v", err)
				}
			}
		}
	}
	for _, side := range []struct {
		name        string
		mine, other []Prefix
		meta        Meta
	}{{"local", t.Local.Subnets, t.Remote.Subnets, t.Local.Meta}, {"remote", t.Remote.Subnets, t.Local.Subnets, t.Remote.Meta}} {
		for i, s := range side.mine {
			if len(side.other) > 0 && !slices.ContainsFunc(side.other, func(o Prefix) bool { return o.Prefix.Addr().Is4() == s.Prefix.Addr().Is4() }) {
				v.errorAt(side.meta.At("subnets"), fmt.Sprintf("%s.%s.subnets[%d]", path, side.name, i),
					"%s: the other side lists no %s subnet to carry it to (a tunnel pairs IPv4 with IPv4 and IPv6 with IPv6)", s.Prefix, familyName(s.Prefix))
			}
		}
	}
	for li, l := range t.Local.Subnets {
		for _, r := range t.Remote.Subnets {
			// Overlap is legitimate (remote 0.0.0.0/0 sends everything to
			// the peer), but the same subnet on both sides is a mistake.
			if l.Prefix == r.Prefix {
				v.errorAt(t.Local.Meta.At("subnets"), fmt.Sprintf("%s.local.subnets[%d]", path, li), "%s is also a remote subnet; traffic could not be told apart", l.Prefix)
			}
		}
	}
	v.authList(t.Auth, t.Meta.At("auth"), path+".auth", false)
	k := v.c.IKEFor(t)
	v.espSettings(&t.ESP, path+".esp", k.Version)
	if k.Version == 2 {
		if len(t.Interop) > 0 {
			v.warnAt(t.Meta.At("interop"), path+".interop", "interop plugins are asked about IKEv1 peers only in this release; on this IKEv2 tunnel they are not consulted")
		}
		if k.AggressiveMode {
			v.errorAt(t.IKE.Meta.At("aggressive_mode"), path+".ike.aggressive_mode", "aggressive mode is an IKEv1 exchange; IKEv2 has none (its identities always travel encrypted): remove it, or set version: 1")
		}
		for i, a := range t.Auth {
			switch a.Kind() {
			case "kerberos":
				v.errorAt(a.Meta.Pos, fmt.Sprintf("%s.auth[%d].kerberos", path, i), "Kerberos (GSS-API) authentication is an IKEv1 method; IKEv2 has none: set ike.version: 1 for this tunnel")
			}
		}
	}
	for j, name := range t.Interop {
		if !slices.ContainsFunc(v.c.Plugins.Load, func(r PluginRef) bool { return r.Name == name }) {
			v.errorAt(t.Meta.At("interop"), fmt.Sprintf("%s.interop[%d]", path, j), "%s is not in plugins.load: load it there to ask it about this tunnel's peer", name)
		}
	}
	for i, a := range t.Auth {
		if a.Kind() == "x509" && t.Remote.ID == "" {
			v.warnAt(a.Meta.Pos, fmt.Sprintf("%s.auth[%d].x509", path, i),
				"no remote.id: any certificate the configured CAs issued is accepted from %s; set remote.id to the peer certificate's subject or a name in it (dn:CN=..., fqdn:...) to accept only the peer's", t.Remote.Address.Addr)
		}
	}
	if t.IKE != nil {
		v.ike(t.IKE, path+".ike")
		if t.IKE.AggressiveMode && t.Remote.ID == "" && (len(t.Auth) == 0 || t.Auth[0].Kind() == "psk") {
			v.errorAt(t.IKE.Meta.At("aggressive_mode"), path+".ike.aggressive_mode", "aggressive mode with a preshared key needs remote.id, so the key is chosen by a configured identity")
		}
		if t.IKE.AggressiveMode {
			what := "its identities travel in clear"
			if len(t.Auth) == 0 || t.Auth[0].Kind() == "psk" {
				what = "anyone who sends a first message with the right identity, or watches one exchange, gets a hash of the preshared key to crack offline (RFC 9395 section 3)"
			}
			v.warnAt(t.IKE.Meta.At("aggressive_mode"), path+".ike.aggressive_mode", "aggressive mode is on: %s; use main mode where the peer can", what)
		}
	}
	switch t.Start {
	case "on-traffic", "always", "passive":
	default:
		v.errorAt(t.Meta.At("start"), path+".start", "%q is not allowed; use on-traffic, always or passive", t.Start)
	}
}

func (v *validator) listenText() string {
	s := make([]string, len(v.c.Listen))
	for i, l := range v.c.Listen {
		s[i] = l.Addr.String()
	}
	return strings.Join(s, ", ")
}

// authList checks an ordered method list; remoteAccess: it answers any
// client rather than one peer.
func (v *validator) authList(list []AuthMethod, p Pos, path string, remoteAccess bool) {
	if len(list) == 0 {
		v.errorAt(p, path, "at least one authentication method is required (psk_file, x509 or kerberos)")
	}
	for i := range list {
		v.authMethod(&list[i], fmt.Sprintf("%s[%d]", path, i), remoteAccess)
	}
}

func (v *validator) authMethod(a *AuthMethod, path string, remoteAccess bool) {
	n := 0
	for _, k := range []string{"psk_file", "x509", "kerberos"} {
		if a.Meta.Has(k) {
			n++
		}
	}
	if n != 1 {
		v.errorAt(a.Meta.Pos, path, "set exactly one of psk_file, x509, kerberos")
		return
	}
	switch {
	case a.Meta.Has("psk_file"):
		a.PSKFile = v.abs(a.PSKFile)
		if err := psk.CheckKeyFile(a.PSKFile); err != nil {
			v.errorAt(a.Meta.At("psk_file"), path+".psk_file", "%v", err)
		}
		if a.PeerID != "" {
			id, err := psk.ParseID(a.PeerID)
			if err != nil {
				v.errorAt(a.Meta.At("peer_id"), path+".peer_id", "%v", err)
			}
			a.PeerID = id
		}
	case a.X509 != nil:
		if a.PeerID != "" {
			v.errorAt(a.Meta.At("peer_id"), path+".peer_id", "peer_id goes with psk_file; certificates carry their own identity")
		}
		x := a.X509
		v.caFiles(x.CAFiles, x.CRLFiles, x.Meta, path+".x509", "at least one CA file is required")
		x.CertFile = v.abs(x.CertFile)
		v.fileExists(x.CertFile, x.Meta.At("cert_file"), path+".x509.cert_file")
		x.KeyFile = v.abs(x.KeyFile)
		v.secretFile(x.KeyFile, x.Meta.At("key_file"), path+".x509.key_file")
	case a.Kerberos != nil:
		if a.PeerID != "" {
			v.errorAt(a.Meta.At("peer_id"), path+".peer_id", "peer_id goes with psk_file")
		}
		k := a.Kerberos
		if k.Keytab == "" && k.Ccache == "" {
			v.errorAt(k.Meta.Pos, path+".kerberos", "set keytab (and for an initiator, or instead, ccache)")
		}
		if k.Keytab != "" {
			k.Keytab = v.abs(k.Keytab)
			v.secretFile(k.Keytab, k.Meta.At("keytab"), path+".kerberos.keytab")
		}
		if k.Ccache != "" {
			k.Ccache = v.abs(k.Ccache)
			v.secretFile(k.Ccache, k.Meta.At("ccache"), path+".kerberos.ccache")
		}
		if k.Krb5Conf == "" {
			k.Krb5Conf = "/etc/krb5.conf"
		}
		k.Krb5Conf = v.abs(k.Krb5Conf)
		v.fileExists(k.Krb5Conf, k.Meta.At("krb5_conf"), path+".kerberos.krb5_conf")
		if !strings.Contains(k.Principal, "/") || !strings.Contains(k.Principal, "@") {
			v.errorAt(k.Meta.At("principal"), path+".kerberos.principal", "want service/host@REALM, e.g. host/gw.example.net@EXAMPLE.NET, not %q", k.Principal)
		}
		if k.PeerPrincipal != "" && !strings.Contains(k.PeerPrincipal, "/") {
			v.errorAt(k.Meta.At("peer_principal"), path+".kerberos.peer_principal", "want service/host[@REALM], e.g. host/gw-b.example.net, not %q", k.PeerPrincipal)
		}
		_, realm, _ := strings.Cut(k.Principal, "@")
		for i, p := range k.AllowedPeers {
			if p == "" || strings.Count(p, "@") > 1 || strings.HasPrefix(p, "@") || strings.HasSuffix(p, "@") {
				v.errorAt(k.Meta.At("allowed_peers"), fmt.Sprintf("%s.kerberos.allowed_peers[%d]", path, i), "want a principal such as host/gw-b.example.net@REALM or a pattern such as *$@REALM, not %q", p)
			} else if !strings.Contains(p, "@") && realm != "" {
				k.AllowedPeers[i] = p + "@" + realm
			}
		}
		if len(k.AllowedPeers) == 0 {
			switch {
			case remoteAccess:
				v.errorAt(k.Meta.Pos, path+".kerberos.allowed_peers", "required for remote access: the computers that may connect, such as [\"*$@%s\"] for every computer account of the realm; without it any principal of the realm would get in", cmp.Or(realm, "REALM"))
			case k.PeerPrincipal != "":
				peer := k.PeerPrincipal
				if !strings.Contains(peer, "@") && realm != "" {
					peer += "@" + realm
				}
				k.AllowedPeers = []string{peer}
			default:
				v.errorAt(k.Meta.Pos, path+".kerberos", "set peer_principal (the peer gateway's principal) or allowed_peers; without them any principal of the realm would be taken as the peer")
			}
		}
		switch {
		case k.MaxSkew.Duration == 0:
			k.MaxSkew.Duration = 5 * time.Minute
		case k.MaxSkew.Duration < time.Second || k.MaxSkew.Duration > time.Hour:
			v.errorAt(k.Meta.At("max_skew"), path+".kerberos.max_skew", "between 1s and 1h (Kerberos' usual limit is 5m)")
		}
		switch k.IdentityAttribute {
		case 0:
			k.IdentityAttribute = 16384
		case 16384, 32001:
		default:
			v.errorAt(k.Meta.At("identity_attribute"), path+".kerberos.identity_attribute", "16384 (the draft) or 32001 (some Windows 2000 releases), not %d", k.IdentityAttribute)
		}
	}
}

func (v *validator) radius(r *Radius, path string) {
	if len(r.Servers) == 0 {
		v.errorAt(r.Meta.Pos, path+".servers", "at least one server is required, e.g. {address: 10.1.0.5, secret_file: radius.secret}")
	}
	for i := range r.Servers {
		s := &r.Servers[i]
		where := fmt.Sprintf("%s.servers[%d]", path, i)
		if a, err := addrPort(s.Address, 1812); err != nil {
			v.errorAt(s.Meta.At("address"), where+".address", "%q is not a server address (an IP address, optionally with :port)", s.Address)
		} else {
			s.Address = a.String()
			if s.AccountingAddress == "" {
				s.AccountingAddress = netip.AddrPortFrom(a.Addr(), 1813).String()
			}
		}
		if _, err := addrPort(s.AccountingAddress, 0); s.AccountingAddress != "" && err != nil {
			v.errorAt(s.Meta.At("accounting_address"), where+".accounting_address", "%q is not host:port, e.g. 10.1.0.5:1813", s.AccountingAddress)
		}
		if s.SecretFile == "" {
			v.errorAt(s.Meta.Pos, where+".secret_file", "required: the file holding the shared secret (mode 0600)")
		} else {
			s.SecretFile = v.abs(s.SecretFile)
			v.secretFile(s.SecretFile, s.Meta.At("secret_file"), where+".secret_file")
		}
	}
	switch d := r.Timeout.Duration; {
	case d == 0:
		r.Timeout.Duration = DefaultRadiusTimeout
	case d < 100*time.Millisecond || d > 30*time.Second:
		v.errorAt(r.Meta.At("timeout"), path+".timeout", "%v is out of range; allowed 100ms to 30s (clients give up on PPP after about 30 s in all)", d)
	}
	if _, err := addrPort(r.DisconnectListen, 0); r.DisconnectListen != "" && err != nil {
		v.errorAt(r.Meta.At("disconnect_listen"), path+".disconnect_listen", "%q is not address:port, e.g. 0.0.0.0:3799", r.DisconnectListen)
	}
	switch d := r.DisconnectWindow.Duration; {
	case d == 0:
		r.DisconnectWindow.Duration = 5 * time.Minute // RFC 5176 section 3.4's 300 s
	case d < 10*time.Second || d > time.Hour:
		v.errorAt(r.Meta.At("disconnect_window"), path+".disconnect_window", "%v is out of range; allowed 10s to 1h (RFC 5176 suggests 5m)", d)
	}
	if !r.MessageAuthenticatorRequired() {
		v.warnAt(r.Meta.At("require_message_authenticator"), path+".require_message_authenticator",
			"answers without a Message-Authenticator are accepted: someone on the path to the RADIUS server can forge an Access-Accept (BlastRADIUS, CVE-2024-3596); patch the servers (FreeRADIUS 3.2.5 or later, Windows NPS of July 2024 or later) and remove this setting")
	}
	if d := r.InterimInterval.Duration; d != 0 && (d < 5*time.Second || d > 24*time.Hour) {
		v.errorAt(r.Meta.At("interim_interval"), path+".interim_interval", "%v is out of range; use 0 (none) or 5s to 24h (RFC 2869 asks for 600s or more in production)", d)
	}
	switch {
	case r.Tries == 0:
		r.Tries = DefaultRadiusTries
	case r.Tries < 1 || r.Tries > 5:
		v.errorAt(r.Meta.At("tries"), path+".tries", "%d is out of range; allowed 1 to 5", r.Tries)
	}
}

// addrPort parses address:port, or a bare address taking defPort when
// that is not 0. The port must not be 0; for a server, nor the address
// unspecified.
func addrPort(s string, defPort uint16) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil && defPort != 0 {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			ap = netip.AddrPortFrom(a, defPort)
		}
	}
	if err != nil {
		return netip.AddrPort{}, err
	}
	if ap.Port() == 0 || (defPort != 0 && ap.Addr().IsUnspecified()) {
		return netip.AddrPort{}, fmt.Errorf("%s: no port, or no address", s)
	}
	return ap, nil
}

// abs resolves a relative path against the configuration file's folder.
func (v *validator) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(v.configDir, p)
}

func (v *validator) fileExists(path string, p Pos, field string) {
	if path == "" {
		v.errorAt(p, field, "required")
		return
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			v.errorAt(p, field, "file %s does not exist", path)
		} else {
			v.errorAt(p, field, "%v", err)
		}
	}
}

// secretFile checks a file holding a secret the way key files are checked.
func (v *validator) secretFile(path string, p Pos, field string) {
	if path == "" {
		v.errorAt(p, field, "required")
		return
	}
	if err := psk.CheckKeyFile(path); err != nil {
		v.errorAt(p, field, "%v", err)
	}
}

func (v *validator) remoteAccess(ra *RemoteAccess) {
	path := "remote_access"
	v.defineRule("remote access", "remote-access", path, ra.Meta.Pos, path)
	v.authList(ra.Auth, ra.Meta.At("auth"), path+".auth", true)
	if !ra.Pool.IsValid() {
		v.errorAt(ra.Meta.Pos, path+".pool", "required: the subnet client addresses come from (e.g. 10.8.0.0/24)")
	} else if !ra.Pool.Addr().Is4() {
		v.errorAt(ra.Meta.At("pool"), path+".pool", "%s: the pool is IPv4; road warriors get no IPv6 addresses yet", ra.Pool.Prefix)
	} else if ra.Pool.Bits() > 30 {
		v.errorAt(ra.Meta.At("pool"), path+".pool", "%s is too small for a pool; use /30 or larger", ra.Pool.Prefix)
	}
	for i, a := range ra.PPP.Auth {
		if _, err := ppp.ParseAuthProto(a); err != nil {
			v.errorAt(ra.PPP.Meta.At("auth"), fmt.Sprintf("%s.ppp.auth[%d]", path, i), "%q is not a PPP method; allowed: mschapv2, chap, pap", a)
		}
	}
	if ra.PPP.UsersFile != "" {
		ra.PPP.UsersFile = v.abs(ra.PPP.UsersFile)
		v.secretFile(ra.PPP.UsersFile, ra.PPP.Meta.At("users_file"), path+".ppp.users_file")
	}
	if r := ra.PPP.Radius; r != nil {
		v.radius(r, path+".ppp.radius")
		if ra.PPP.UsersFile != "" {
			v.errorAt(ra.PPP.Meta.At("users_file"), path+".ppp.users_file", "set users_file or radius, not both: users are checked in one place")
		}
	}
	v.failedLogins(&ra.PPP, path+".ppp")
	if ra.PPP.MRU < 576 || ra.PPP.MRU > 1500 {
		v.errorAt(ra.PPP.Meta.At("mru"), path+".ppp.mru", "%d is out of range; allowed 576 to 1500", ra.PPP.MRU)
	}
	v.espSettings(&ra.ESP, path+".esp", 1)
	if d := ra.IdleTimeout.Duration; d < 0 || (d > 0 && d < 10*time.Second) {
		v.errorAt(ra.Meta.At("idle_timeout"), path+".idle_timeout", "%v is too short: a session would end between two packets; use 0 (never) or at least 10s, e.g. 30m", d)
	}
	if ra.AllowCleartextL2TP {
		v.warnAt(ra.Meta.At("allow_cleartext_l2tp"), path+".allow_cleartext_l2tp",
			"cleartext L2TP is on: clients may connect on UDP 1701 without IPsec, and their traffic and PPP logins (PAP passwords, MS-CHAPv2 exchanges open to offline cracking) cross the network unencrypted; "+
				"use it only for clients that cannot do IPsec or while troubleshooting")
	}
	if ra.IKE != nil {
		v.ike(ra.IKE, path+".ike")
		if ra.IKE.Version == 2 {
			v.errorAt(ra.IKE.Meta.At("version"), path+".ike.version", "L2TP/IPsec clients use IKEv1: remove version or set 1, and add remote_access.ikev2 to answer IKEv2 clients as well")
		}
		if ra.IKEv2 != nil {
			v.remoteAccessIKEv2(ra)
		}
		if ra.IKE.AggressiveMode {
			v.errorAt(ra.IKE.Meta.At("aggressive_mode"), path+".ike.aggressive_mode", "aggressive mode is not offered to road warriors: with one preshared key for every client, any client could crack it offline from a captured hash")
		}
	}
}

// caFiles makes CA and CRL files absolute and checks they exist (none
// says why at least one CA is needed).
func (v *validator) caFiles(cas, crls []string, m Meta, path, none string) {
	if len(cas) == 0 {
		v.errorAt(m.Pos, path+".ca_files", "%s", none)
	}
	for i := range cas {
		cas[i] = v.abs(cas[i])
		v.fileExists(cas[i], m.At("ca_files"), fmt.Sprintf("%s.ca_files[%d]", path, i))
	}
	for i := range crls {
		crls[i] = v.abs(crls[i])
		v.fileExists(crls[i], m.At("crl_files"), fmt.Sprintf("%s.crl_files[%d]", path, i))
	}
}

// remoteAccessIKEv2 checks IKEv2 remote access: how users log in, and
// that the server can prove itself to them.
func (v *validator) remoteAccessIKEv2(ra *RemoteAccess) {
	x, path := ra.IKEv2, "remote_access.ikev2"
	kinds := map[string]bool{}
	for _, a := range ra.Auth {
		kinds[a.Kind()] = true
	}
	if x.EAPTLS != nil && x.EAP != "tls" {
		v.errorAt(x.Meta.At("eap_tls"), path+".eap_tls", "eap_tls goes with eap: tls")
	}
	switch x.EAP {
	case "mschapv2":
		if ra.PPP.UsersFile == "" && ra.PPP.Radius == nil {
			v.errorAt(x.Meta.At("eap"), path+".eap", "EAP-MSCHAPv2 checks users against remote_access.ppp.users_file or ppp.radius; set one, or eap: none for clients that log in by key or certificate")
		}
		if !kinds["x509"] {
			v.errorAt(x.Meta.Pos, path, "clients that log in by EAP check the server's certificate (Windows, macOS, iOS and Android all do): add an x509 entry to remote_access.auth")
		}
	case "radius":
		if ra.PPP.Radius == nil {
			v.errorAt(x.Meta.At("eap"), path+".eap", "eap: radius relays EAP to the servers of remote_access.ppp.radius; set them")
		}
		if !kinds["x509"] {
			v.errorAt(x.Meta.Pos, path, "clients that log in by EAP check the server's certificate: add an x509 entry to remote_access.auth")
		}
	case "tls":
		if !kinds["x509"] {
			v.errorAt(x.Meta.Pos, path, "EAP-TLS runs TLS with the server's certificate: add an x509 entry to remote_access.auth")
		}
		if c := x.EAPTLS; c != nil {
			v.caFiles(c.CAFiles, c.CRLFiles, c.Meta, path+".eap_tls", "at least one CA file is required (or leave eap_tls out to use remote_access.auth's CAs)")
		}
	case "none":
		if !kinds["psk"] && !kinds["x509"] {
			v.errorAt(x.Meta.At("eap"), path+".eap", "with eap: none clients prove themselves by a preshared key or a certificate: add psk_file or x509 to remote_access.auth")
		}
	default:
		v.errorAt(x.Meta.At("eap"), path+".eap", "%q is not an EAP method here; allowed: mschapv2, radius, tls, none", x.EAP)
	}
	v.ikeProposals(x.Proposals, 2, x.Meta.At("proposals"), path)
	v.espSettings(&x.ESP, path+".esp", 2)
	for i, p := range x.Inside {
		if !p.Addr().Is4() {
			v.errorAt(x.Meta.At("inside"), fmt.Sprintf("%s.inside[%d]", path, i), "%s: only IPv4 networks are carried to road warriors yet", p.Prefix)
		}
	}
	for i, d := range x.DNSDomains {
		if d == "" || len(d) > 253 || strings.ContainsAny(d, " \t/") {
			v.errorAt(x.Meta.At("dns_domains"), fmt.Sprintf("%s.dns_domains[%d]", path, i), "%q is not a domain name (e.g. corp.example.com)", d)
		}
	}
}

// failedLogins fills the login limits' defaults and checks their ranges.
func (v *validator) failedLogins(p *PPP, path string) {
	f := &p.FailedLogins
	fp := path + ".failed_logins"
	count := func(n *int, key string, def, max int) {
		switch {
		case *n == 0:
			*n = def
		case *n < 1 || *n > max:
			v.errorAt(f.Meta.At(key), fp+"."+key, "%d is out of range; allowed 1 to %d", *n, max)
		}
	}
	count(&f.UserFree, "user_free", throttle.DefaultUserFree, 100)
	count(&f.AddressFree, "address_free", throttle.DefaultAddressFree, 10000)
	dur := func(d *Duration, key string, def, lo, hi time.Duration) {
		switch {
		case d.Duration == 0:
			d.Duration = def
		case d.Duration < lo || d.Duration > hi:
			v.errorAt(f.Meta.At(key), fp+"."+key, "%v is out of range; allowed %v to %v", d.Duration, lo, hi)
		}
	}
	dur(&f.Delay, "delay", throttle.DefaultDelay, 100*time.Millisecond, time.Minute)
	dur(&f.MaxDelay, "max_delay", throttle.DefaultMaxDelay, f.Delay.Duration, time.Hour)
	dur(&f.Lockout, "lockout", throttle.DefaultLockout, time.Minute, 24*time.Hour)
	dur(&f.ForgetAfter, "forget_after", throttle.DefaultForget, time.Minute, 24*time.Hour)
	if f.LockoutAfter < 0 || f.LockoutAfter > 1000 || (f.LockoutAfter > 0 && f.LockoutAfter <= f.UserFree) {
		v.errorAt(f.Meta.At("lockout_after"), fp+".lockout_after", "%d: use 0 (no lockout) or more than user_free (%d), at most 1000", f.LockoutAfter, f.UserFree)
	}
	switch {
	case p.MaxAuthenticatingPerSA == 0:
		p.MaxAuthenticatingPerSA = DefaultMaxAuthenticatingPerSA
	case p.MaxAuthenticatingPerSA < 1 || p.MaxAuthenticatingPerSA > 1024:
		v.errorAt(p.Meta.At("max_authenticating_per_sa"), path+".max_authenticating_per_sa", "%d is out of range; allowed 1 to 1024", p.MaxAuthenticatingPerSA)
	}
}

func (v *validator) filter(f *Filter, path string, tunnel bool) {
	if !f.Meta.Has("src") || !f.Meta.Has("dst") {
		v.errorAt(f.Meta.Pos, path, "a filter needs src and dst (an address, a subnet, any, or me)")
		return
	}
	if f.Src.Kind == AddrPrefix && f.Dst.Kind == AddrPrefix && f.Src.Prefix.Addr().Is4() != f.Dst.Prefix.Addr().Is4() {
		v.errorAt(f.Meta.At("dst"), path+".dst", "%s and src %s are of different IP versions", f.Dst.Prefix, f.Src.Prefix)
	}
	if (f.SrcPort != 0 || f.DstPort != 0) && f.Protocol.Number != 6 && f.Protocol.Number != 17 {
		key := "src_port"
		if f.DstPort != 0 {
			key = "dst_port"
		}
		v.errorAt(f.Meta.At(key), path+"."+key, "ports need protocol: tcp or protocol: udp")
	}
	if tunnel {
		// KB 252735: tunnel filters take addresses only and are never mirrored.
		var extra []string
		for _, key := range []string{"protocol", "src_port", "dst_port"} {
			if f.Meta.Has(key) {
				extra = append(extra, key)
			}
		}
		if len(extra) > 0 {
			v.errorAt(f.Meta.At(extra[0]), path+"."+extra[0], "a tunnel rule filters on addresses only; remove %s (use a separate permit or block rule for protocols and ports)", strings.Join(extra, " and "))
		}
		if f.Mirrored != nil && *f.Mirrored {
			v.errorAt(f.Meta.At("mirrored"), path+".mirrored", "tunnel filters cannot be mirrored; write one rule per direction, each naming the far tunnel endpoint")
		}
		if f.Src.Kind == AddrMe || f.Dst.Kind == AddrMe {
			v.errorAt(f.Meta.Pos, path, "a tunnel filter names the protected subnets, not me")
		}
	}
}

func (v *validator) filterAction(fa *FilterAction, path string) {
	switch fa.Action {
	case "permit", "block":
		for _, key := range []string{"offers", "pfs", "lifetime", "lifetime_kb", "accept_unsecured", "fallback_to_clear"} {
			if fa.Meta.Has(key) {
				v.errorAt(fa.Meta.At(key), path+"."+key, "only a negotiate action takes %s", key)
			}
		}
	case "negotiate":
		v.offers(fa.Offers, fa.Meta.At("offers"), path+".offers", 1) // rules negotiate with IKEv1
		v.pfs(fa.PFS, fa.Meta.At("pfs"), path+".pfs")
		v.lifetime(fa.Lifetime.Duration, 10*time.Second, 24*time.Hour, fa.Meta.At("lifetime"), path+".lifetime")
	default:
		v.errorAt(fa.Meta.At("action"), path+".action", "%q is not an action; allowed: permit, block, negotiate", fa.Action)
	}
}

func (v *validator) rule(i int, r *Rule) {
	path := fmt.Sprintf("rules[%d]", i)
	v.defineRule("a rule", r.Name, path, r.Meta.At("name"), path+".name")
	tunnel := r.Tunnel != nil
	switch {
	case r.Meta.Has("filters") && r.Meta.Has("filter_list"):
		v.errorAt(r.Meta.At("filter_list"), path+".filter_list", "set filters or filter_list, not both")
	case r.Meta.Has("filter_list"):
		list, ok := v.c.FilterLists[r.FilterList]
		if !ok {
			v.errorAt(r.Meta.At("filter_list"), path+".filter_list", "no filter list named %q under filter_lists%s", r.FilterList, names(v.c.FilterLists))
		}
		for j := range list {
			if tunnel {
				v.filter(&list[j], fmt.Sprintf("filter_lists.%s[%d] (used by %s)", r.FilterList, j, path), true)
			}
		}
	case len(r.Filters) == 0:
		v.errorAt(r.Meta.Pos, path+".filters", "a rule needs filters or a filter_list")
	default:
		for j := range r.Filters {
			v.filter(&r.Filters[j], fmt.Sprintf("%s.filters[%d]", path, j), tunnel)
		}
	}
	action := r.Action
	switch action {
	case "permit", "block":
		if r.Negotiate != nil {
			v.errorAt(r.Meta.At("negotiate"), path+".negotiate", "only action: negotiate takes a negotiate block")
		}
	case "negotiate":
		if r.Negotiate == nil {
			r.Negotiate = &FilterAction{Action: "negotiate", Meta: Meta{Pos: r.Meta.At("action")}}
			defaultAction(r.Negotiate)
		}
		v.filterAction(r.Negotiate, path+".negotiate")
	case "":
		v.errorAt(r.Meta.Pos, path+".action", "required: permit, block, negotiate, or the name of one of filter_actions")
	default:
		fa, ok := v.c.FilterActions[action]
		if !ok {
			v.errorAt(r.Meta.At("action"), path+".action", "%q is neither permit, block, negotiate nor one of filter_actions%s", action, names(v.c.FilterActions))
		} else if r.Negotiate != nil {
			v.errorAt(r.Meta.At("negotiate"), path+".negotiate", "the rule uses filter action %q; set negotiation there", action)
		} else {
			action = fa.Action
		}
	}
	if action == "negotiate" {
		v.authList(r.Auth, r.Meta.At("auth"), path+".auth", false)
	} else if len(r.Auth) > 0 && action != "" {
		v.errorAt(r.Meta.At("auth"), path+".auth", "only negotiate rules authenticate peers; remove auth from a %s rule", action)
	}
	if tunnel {
		if action != "negotiate" && action != "" {
			v.errorAt(r.Meta.At("tunnel"), path+".tunnel", "a tunnel endpoint needs action negotiate")
		}
		if r.Tunnel.IsUnspecified() || r.Tunnel.IsMulticast() {
			v.errorAt(r.Meta.At("tunnel"), path+".tunnel", "%s cannot be a tunnel endpoint", r.Tunnel.Addr)
		}
	}
}

func names[T any](m map[string]T) string {
	if len(m) == 0 {
		return " (there are none)"
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return " (" + strings.Join(out, ", ") + ")"
}

func (v *validator) plugins() {
	p := &v.c.Plugins
	p.Dir = v.abs(p.Dir)
	seen := map[string]bool{}
	for i := range p.Load {
		ref := &p.Load[i]
		path := fmt.Sprintf("plugins.load[%d]", i)
		if !nameRE.MatchString(ref.Name) {
			v.errorAt(ref.Meta.Pos, path+".name", "a plugin needs a name; %s", nameRule)
			continue
		}
		if seen[ref.Name] {
			v.errorAt(ref.Meta.Pos, path+".name", "plugin %q is loaded twice", ref.Name)
		}
		seen[ref.Name] = true
		ref.Path = v.abs(ref.Path)
	}
	if p.HealthInterval.Duration < 100*time.Millisecond {
		v.errorAt(p.Meta.At("health_interval"), "plugins.health_interval", "%s is too short; use at least 100ms", p.HealthInterval.Duration)
	}
}

func (v *validator) manualSA(i int, m *ManualSA, spis map[uint32]string) {
	path := fmt.Sprintf("manual_sas[%d]", i)
	v.defineRule("a manual SA", m.Name, path, m.Meta.At("name"), path+".name")
	switch m.Mode {
	case "tunnel":
		if len(m.LocalSubnets) == 0 || len(m.RemoteSubnets) == 0 {
			v.errorAt(m.Meta.Pos, path, "tunnel mode needs local_subnets and remote_subnets")
		}
	case "transport":
		if len(m.LocalSubnets) > 0 || len(m.RemoteSubnets) > 0 {
			v.errorAt(m.Meta.At("local_subnets"), path+".local_subnets", "transport mode protects traffic between local and peer only; remove the subnets")
		}
	default:
		v.errorAt(m.Meta.At("mode"), path+".mode", "%q is not a mode; use tunnel or transport", m.Mode)
	}
	if !m.Local.IsValid() || !v.isListen(m.Local.Addr) {
		v.errorAt(m.Meta.At("local"), path+".local", "required, and one of listen (%s)", v.listenText())
	}
	if !m.Peer.IsValid() {
		v.errorAt(m.Meta.At("peer"), path+".peer", "required: the peer's address")
	} else if m.Local.IsValid() && m.Peer.Unmap().Is4() != m.Local.Unmap().Is4() {
		v.errorAt(m.Meta.At("peer"), path+".peer", "%s and local %s are of different families; both IPv4 or both IPv6", m.Peer.Addr, m.Local.Addr)
	}
	suite, err := esp.ParseSuite(m.Suite)
	if err != nil {
		v.errorAt(m.Meta.At("suite"), path+".suite", "%v", err)
		return
	}
	if suite.Legacy() && !v.c.LegacyAlgorithms {
		v.errorAt(m.Meta.At("suite"), path+".suite", "%s uses a legacy algorithm; set legacy_algorithms: true to allow it", m.Suite)
	}
	if suite.Protocol == esp.ProtoAH && m.Peer.IsValid() && m.Peer.Unmap().Is6() {
		v.errorAt(m.Meta.At("suite"), path+".suite", "AH over IPv6 is not built yet; use an ESP suite with this IPv6 peer")
	}
	if suite.Encryption != nil && suite.Encryption.AEAD {
		// The AEAD nonce is the salt from the key file and the sequence
		// number, which starts again at 1 with every start of the daemon:
		// a static key repeats nonces, which breaks GCM and ChaCha20-Poly1305
		// entirely (RFC 4106 section 8.1, RFC 7634 section 4).
		v.errorAt(m.Meta.At("suite"), path+".suite", "%s cannot be keyed by hand: its nonces would repeat after every restart (RFC 4106 section 8.1); "+
			"use a CBC suite such as aes256-sha256 here, or a tunnel with IKE, which makes fresh keys for every SA", m.Suite)
	}
	if m.ReplayWindow != 0 && (m.ReplayWindow < esp.MinWindow || m.ReplayWindow > esp.MaxWindow) {
		v.errorAt(m.Meta.At("replay_window"), path+".replay_window", "%d is out of range %d..%d", m.ReplayWindow, esp.MinWindow, esp.MaxWindow)
	}
	el, il := esp.KeyLengths(suite)
	for _, d := range []struct {
		name string
		k    *ManualKey
	}{{"out", &m.Out}, {"in", &m.In}} {
		kp := path + "." + d.name
		if d.k.SPI < 256 {
			// SPIs 1-255 are reserved (RFC 4303 section 2.1).
			v.errorAt(d.k.Meta.At("spi"), kp+".spi", "required, 256 or more (1-255 are reserved)")
		}
		if d.name == "in" {
			if prev, dup := spis[d.k.SPI]; dup {
				v.errorAt(d.k.Meta.At("spi"), kp+".spi", "inbound SPI %#x is also used by %s", d.k.SPI, prev)
			}
			spis[d.k.SPI] = kp
		}
		d.k.KeyFile = v.abs(d.k.KeyFile)
		v.secretFile(d.k.KeyFile, d.k.Meta.At("key_file"), kp+".key_file")
		if key, err := ReadManualKey(d.k.KeyFile); err == nil && len(key) != el+il {
			v.errorAt(d.k.Meta.At("key_file"), kp+".key_file", "%s holds %d bytes of key; %s needs %d (%d encryption%s, %d integrity)",
				d.k.KeyFile, len(key), suite, el+il, el, map[bool]string{true: " with salt", false: ""}[suite.Encryption != nil && suite.Encryption.AEAD], il)
		} else if err != nil && !errors.Is(err, os.ErrNotExist) { // a missing file is reported above
			v.errorAt(d.k.Meta.At("key_file"), kp+".key_file", "%v", err)
		}
	}
}

func (v *validator) dataplane() {
	d := &v.c.Dataplane
	if d.OldOffload != nil {
		switch {
		case !d.Meta.Has("tun_segmentation"):
			d.TUNSegmentation = *d.OldOffload
			v.warnAt(d.Meta.At("offload"), "dataplane.offload", "renamed dataplane.tun_segmentation (it is the TUN's TCP segmentation, not crypto offload); the old name is accepted in this release only")
		case *d.OldOffload != d.TUNSegmentation:
			v.errorAt(d.Meta.At("offload"), "dataplane.offload", "the old name of tun_segmentation, set to another value; keep tun_segmentation only")
		default:
			v.warnAt(d.Meta.At("offload"), "dataplane.offload", "the old name of tun_segmentation; remove it")
		}
	}
	if len(d.TUN) > 15 || strings.ContainsAny(d.TUN, "/ ") {
		v.errorAt(d.Meta.At("tun"), "dataplane.tun", "%q is not a usable interface name (at most 15 characters, no / or space)", d.TUN)
	}
	if d.MTU < 576 || d.MTU > 9000 {
		v.errorAt(d.Meta.At("mtu"), "dataplane.mtu", "%d is out of range 576..9000", d.MTU)
	}
	if d.Table < 1 || d.Table > 252 && d.Table < 256 {
		v.errorAt(d.Meta.At("table"), "dataplane.table", "%d is not a free routing table (use 1-252 or 256 and up)", d.Table)
	}
}

// familyName is "IPv4" or "IPv6".
func familyName(p netip.Prefix) string {
	if p.Addr().Is4() {
		return "IPv4"
	}
	return "IPv6"
}
