// Package config loads Gatehouse's YAML configuration strictly: an unknown
// key, a wrong type or a bad value is an error that names the file, the line,
// the field and what is allowed. Defaults live in defaults.go, the one place
// they are written down (docs/configuration.md mirrors it).
package config

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/gatehouse/gatehouse/auth/secretfile"
)

// Config is the whole configuration file.
type Config struct {
	File string `yaml:"-"`

	Listen           []IP                    `yaml:"listen"`
	AdminSocket      string                  `yaml:"admin_socket"`
	MetricsListen    string                  `yaml:"metrics_listen"`
	Log              Log                     `yaml:"log"`
	Exemptions       ExemptionSet            `yaml:"exemptions"`
	LegacyAlgorithms bool                    `yaml:"legacy_algorithms"`
	IKE              IKE                     `yaml:"ike"`
	Tunnels          []Tunnel                `yaml:"tunnels"`
	RemoteAccess     *RemoteAccess           `yaml:"remote_access"`
	FilterLists      map[string][]Filter     `yaml:"filter_lists"`
	FilterActions    map[string]FilterAction `yaml:"filter_actions"`
	Rules            []Rule                  `yaml:"rules"`
	ManualSAs        []ManualSA              `yaml:"manual_sas"`
	Dataplane        Dataplane               `yaml:"dataplane"`
	Plugins          Plugins                 `yaml:"plugins"`

	// Warnings are what the configuration allows but an operator should
	// know (a weakness it opens): --check prints them, the daemon logs
	// them at every start and reload.
	Warnings ErrorList `yaml:"-"`

	Meta Meta `yaml:"-"`
}

// Log configures the daemon's zap loggers.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // console or json
	// Audit is where audit events go as JSON lines: a file, - for
	// stdout, empty for nowhere but the log (docs/events.md).
	Audit string `yaml:"audit"`
	Meta  Meta   `yaml:"-"`
}

// IKE holds phase 1 settings, global or per tunnel.
type IKE struct {
	// Version is the IKE version a tunnel speaks: 1 (RFC 2409) or 2
	// (RFC 7296). The responder answers both on the same ports.
	Version        int      `yaml:"version"`
	Proposals      []string `yaml:"proposals"`
	Lifetime       Duration `yaml:"lifetime"`
	AggressiveMode bool     `yaml:"aggressive_mode"`
	DPD            DPD      `yaml:"dpd"`
	// Fragmentation announces and uses IKE fragmentation (default true);
	// FragmentSize is the datagram size past which messages are cut.
	Fragmentation *bool `yaml:"fragmentation"`
	FragmentSize  int   `yaml:"fragment_size"`
	Meta          Meta  `yaml:"-"`
}

// IKEFor is a tunnel's IKE settings: its own, else the global ones. A
// tunnel for which no version is written anywhere, and that uses what only
// IKEv1 has (Kerberos, aggressive mode), speaks IKEv1.
func (c *Config) IKEFor(t *Tunnel) IKE {
	k := c.IKE
	if t.IKE != nil {
		k = *t.IKE
	}
	if !k.Meta.Has("version") && !c.IKE.Meta.Has("version") && t.ikev1Only() {
		k.Version = 1
	}
	return k
}

// ikev1Only reports whether a tunnel uses what only IKEv1 has.
// SubnetPair is a local subnet and a remote one a tunnel carries between.
type SubnetPair struct{ Local, Remote netip.Prefix }

// SubnetPairs are every local subnet with every remote one of the same
// family, in the configuration's order: the policy's filters and IKE's
// selectors. A tunnel may carry IPv4 and IPv6 networks at once.
func (t *Tunnel) SubnetPairs() []SubnetPair {
	var out []SubnetPair
	for _, l := range t.Local.Subnets {
		for _, r := range t.Remote.Subnets {
			if l.Prefix.Addr().Is4() == r.Prefix.Addr().Is4() {
				out = append(out, SubnetPair{l.Prefix, r.Prefix})
			}
		}
	}
	return out
}

func (t *Tunnel) ikev1Only() bool {
	if t.IKE != nil && t.IKE.AggressiveMode {
		return true
	}
	for _, a := range t.Auth {
		if a.Kind() == "kerberos" {
			return true
		}
	}
	return false
}

// FragmentationOn reports whether IKE fragmentation is on.
func (k IKE) FragmentationOn() bool { return k.Fragmentation == nil || *k.Fragmentation }

// DPD configures dead peer detection (RFC 3706).
type DPD struct {
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	Meta     Meta     `yaml:"-"`
}

// Endpoint is one side of a site-to-site tunnel.
type Endpoint struct {
	Address IP       `yaml:"address"`
	Subnets []Prefix `yaml:"subnets"`
	ID      string   `yaml:"id"`
	Meta    Meta     `yaml:"-"`
}

// ESP holds phase 2 settings.
type ESP struct {
	Proposals  []string `yaml:"proposals"`
	PFS        string   `yaml:"pfs"`
	Lifetime   Duration `yaml:"lifetime"`
	LifetimeKB uint64   `yaml:"lifetime_kb"`
	// UDPEncap carries ESP in UDP 4500 even where no NAT is seen (as
	// strongSwan's encap = yes), for paths that drop IP protocol 50.
	UDPEncap bool `yaml:"udp_encap"`
	Meta     Meta `yaml:"-"`
}

// Tunnel is a site-to-site tunnel (KB 252735); it expands to two rules.
type Tunnel struct {
	Name   string       `yaml:"name"`
	Local  Endpoint     `yaml:"local"`
	Remote Endpoint     `yaml:"remote"`
	Auth   []AuthMethod `yaml:"auth"`
	ESP    ESP          `yaml:"esp"`
	IKE    *IKE         `yaml:"ike"`
	Start  string       `yaml:"start"`
	// Interop names the interop plugins (from plugins.load) asked about
	// this tunnel's peer, for a gateway with quirks; none by default:
	// client families are for remote access.
	Interop []string `yaml:"interop"`
	Meta    Meta     `yaml:"-"`
}

// AuthMethod is one entry of an ordered authentication method list. Exactly
// one of PSKFile, X509 and Kerberos is set.
type AuthMethod struct {
	PSKFile  string    `yaml:"psk_file"`
	PeerID   string    `yaml:"peer_id"`
	X509     *X509     `yaml:"x509"`
	Kerberos *Kerberos `yaml:"kerberos"`
	Meta     Meta      `yaml:"-"`
}

// Kind names the method: psk, x509 or kerberos.
func (a AuthMethod) Kind() string {
	switch {
	case a.X509 != nil:
		return "x509"
	case a.Kerberos != nil:
		return "kerberos"
	}
	return "psk"
}

// CAs are certification authorities' certificates and revocation lists.
type CAs struct {
	CAFiles  []string `yaml:"ca_files"`
	CRLFiles []string `yaml:"crl_files"`
	Meta     Meta     `yaml:"-"`
}

// X509 configures certificate authentication.
type X509 struct {
	CAFiles  []string `yaml:"ca_files"`
	CRLFiles []string `yaml:"crl_files"`
	CertFile string   `yaml:"cert_file"`
	KeyFile  string   `yaml:"key_file"`
	Meta     Meta     `yaml:"-"`
}

// Kerberos configures GSS-API/Kerberos computer authentication
// (docs/kerberos.md).
type Kerberos struct {
	Keytab    string `yaml:"keytab"`
	Principal string `yaml:"principal"`
	Ccache    string `yaml:"ccache"`
	Krb5Conf  string `yaml:"krb5_conf"`
	// PeerPrincipal is whom our tickets are for; empty: the GSS identity
	// the responder sends.
	PeerPrincipal string `yaml:"peer_principal"`
	// AllowedPeers are the principals taken as the peer ("*" matches any
	// run of characters); a tunnel's default is its peer_principal.
	// Entries without @REALM are in our principal's realm.
	AllowedPeers []string `yaml:"allowed_peers"`
	// MaxSkew: how far a peer's clock may be from ours (default 5m).
	MaxSkew Duration `yaml:"max_skew"`
	// ClockOffset moves our Kerberos clock, for labs that test skew.
	ClockOffset Duration `yaml:"clock_offset"`
	// IdentityAttribute is the GSS identity attribute class we send:
	// 16384 (the draft, default) or 32001 (some Windows 2000 releases).
	IdentityAttribute int `yaml:"identity_attribute"`
	// RawTokens sends GSS tokens without the draft's vendor encoding byte.
	RawTokens bool `yaml:"raw_tokens"`
	Meta      Meta `yaml:"-"`
}

// RemoteAccess is the L2TP/IPsec server (KB 265112).
type RemoteAccess struct {
	Auth               []AuthMethod `yaml:"auth"`
	IKE                *IKE         `yaml:"ike"`
	Pool               Prefix       `yaml:"pool"`
	DNS                []IP         `yaml:"dns"`
	NBNS               []IP         `yaml:"nbns"`
	PPP                PPP          `yaml:"ppp"`
	ESP                ESP          `yaml:"esp"`
	AllowCleartextL2TP bool         `yaml:"allow_cleartext_l2tp"`
	// IdleTimeout ends a session after this long with no packet from the
	// client (0: never; keepalives do not count).
	IdleTimeout Duration `yaml:"idle_timeout"`
	// IKEv2, when set, answers IKEv2 road warriors too (the built-in
	// clients of Windows, macOS, iOS and Android), from the same pool and
	// users as L2TP/IPsec.
	IKEv2 *RemoteAccessIKEv2 `yaml:"ikev2"`
	Meta  Meta               `yaml:"-"`
}

// RemoteAccessIKEv2 configures IKEv2 remote access (docs/ikev2-remote-access.md).
// The server proves itself with remote_access.auth; lifetimes, liveness
// checks and fragmentation are remote_access.ike's.
type RemoteAccessIKEv2 struct {
	// EAP is how users log in: mschapv2 (EAP-MSCHAPv2, checked against
	// ppp.users_file or ppp.radius), radius (EAP relayed whole to the
	// ppp.radius servers, which run the method), tls (EAP-TLS: a user
	// certificate that EAPTLS's CAs issued) or none (each client proves
	// itself by the preshared key or a certificate, as remote_access.auth
	// allows).
	EAP string `yaml:"eap"`
	// EAPTLS are the CAs (and their CRLs) that issue users' certificates
	// for eap: tls; unset, those of remote_access.auth's x509 entry.
	EAPTLS    *CAs     `yaml:"eap_tls"`
	Proposals []string `yaml:"proposals"`
	ESP       ESP      `yaml:"esp"`
	// Inside are the networks clients reach through the tunnel (split
	// tunnel); none: all of IPv4 (full tunnel).
	Inside []Prefix `yaml:"inside"`
	// DNSDomains are the domains the DNS servers answer for, for clients
	// that send only those names to them (split DNS, RFC 8598).
	DNSDomains []string `yaml:"dns_domains"`
	Meta       Meta     `yaml:"-"`
}

// PPP configures user authentication inside L2TP.
type PPP struct {
	Auth      []string `yaml:"auth"`
	UsersFile string   `yaml:"users_file"`
	// Radius checks users with RADIUS servers instead of users_file.
	Radius *Radius `yaml:"radius"`
	MRU    uint16  `yaml:"mru"`
	// FailedLogins slows password guessing (docs/configuration.md).
	FailedLogins FailedLogins `yaml:"failed_logins"`
	// MaxAuthenticatingPerSA bounds the logins one client (one IPsec SA)
	// may have being checked at once (default 4).
	MaxAuthenticatingPerSA int  `yaml:"max_authenticating_per_sa"`
	Meta                   Meta `yaml:"-"`
}

// FailedLogins are the limits on failed PPP logins: the failures allowed
// per user and per client address before each further one makes the next
// attempt wait (delay, doubling to max_delay), and an optional lockout.
type FailedLogins struct {
	UserFree     int      `yaml:"user_free"`
	AddressFree  int      `yaml:"address_free"`
	Delay        Duration `yaml:"delay"`
	MaxDelay     Duration `yaml:"max_delay"`
	LockoutAfter int      `yaml:"lockout_after"`
	Lockout      Duration `yaml:"lockout"`
	ForgetAfter  Duration `yaml:"forget_after"`
	Meta         Meta     `yaml:"-"`
}

// Radius configures RADIUS for remote-access users (docs/radius.md).
type Radius struct {
	Servers []RadiusServer `yaml:"servers"`
	// Timeout is how long each server gets before the next is asked.
	Timeout Duration `yaml:"timeout"`
	// Tries is how many times a request is sent to one server.
	Tries         int    `yaml:"tries"`
	NASIdentifier string `yaml:"nas_identifier"`
	// RequireMessageAuthenticator refuses answers without one (default
	// true: BlastRADIUS, CVE-2024-3596).
	RequireMessageAuthenticator *bool `yaml:"require_message_authenticator"`
	// Accounting sends Start and Stop records (default true);
	// InterimInterval adds Interim-Updates (0: none).
	Accounting      *bool    `yaml:"accounting"`
	InterimInterval Duration `yaml:"interim_interval"`
	// DisconnectListen is where Disconnect-Requests (RFC 5176) are taken
	// from the servers' hosts, e.g. 0.0.0.0:3799; empty: not taken.
	DisconnectListen string `yaml:"disconnect_listen"`
	// DisconnectWindow is how far a Disconnect-Request's Event-Timestamp
	// may be from our clock (RFC 5176 section 3.4; default 5m).
	DisconnectWindow Duration `yaml:"disconnect_window"`
	Meta             Meta     `yaml:"-"`
}

// AccountingOn reports whether accounting records are sent.
func (r *Radius) AccountingOn() bool { return r.Accounting == nil || *r.Accounting }

// MessageAuthenticatorRequired reports whether answers must carry a
// Message-Authenticator (the default).
func (r *Radius) MessageAuthenticatorRequired() bool {
	return r.RequireMessageAuthenticator == nil || *r.RequireMessageAuthenticator
}

// RadiusServer is one server, asked in list order.
type RadiusServer struct {
	Address    string `yaml:"address"` // host or host:port (default port 1812)
	SecretFile string `yaml:"secret_file"`
	// AccountingAddress is host:port for accounting (default: the
	// address's host, port 1813).
	AccountingAddress string `yaml:"accounting_address"`
	Meta              Meta   `yaml:"-"`
}

// Filter is one entry of a filter list.
type Filter struct {
	Src      Address  `yaml:"src"`
	Dst      Address  `yaml:"dst"`
	Protocol Protocol `yaml:"protocol"`
	SrcPort  uint16   `yaml:"src_port"`
	DstPort  uint16   `yaml:"dst_port"`
	Mirrored *bool    `yaml:"mirrored"`
	Meta     Meta     `yaml:"-"`
}

// FilterAction says what to do with matching traffic.
type FilterAction struct {
	Action          string   `yaml:"action"` // permit, block, negotiate
	Offers          []string `yaml:"offers"`
	PFS             string   `yaml:"pfs"`
	Lifetime        Duration `yaml:"lifetime"`
	LifetimeKB      uint64   `yaml:"lifetime_kb"`
	AcceptUnsecured bool     `yaml:"accept_unsecured"`
	FallbackToClear bool     `yaml:"fallback_to_clear"`
	Meta            Meta     `yaml:"-"`
}

// Rule is a Windows-style rule: a filter list, a filter action, an optional
// tunnel endpoint, and ordered authentication methods.
type Rule struct {
	Name       string        `yaml:"name"`
	Filters    []Filter      `yaml:"filters"`
	FilterList string        `yaml:"filter_list"`
	Action     string        `yaml:"action"`
	Negotiate  *FilterAction `yaml:"negotiate"`
	Tunnel     *IP           `yaml:"tunnel"`
	Auth       []AuthMethod  `yaml:"auth"`
	Meta       Meta          `yaml:"-"`
}

// ManualSA is a statically keyed SA pair (like `ip xfrm state` or setkey),
// for tests and for peers that cannot run IKE.
type ManualSA struct {
	Name          string    `yaml:"name"`
	Mode          string    `yaml:"mode"` // tunnel or transport
	Local         IP        `yaml:"local"`
	Peer          IP        `yaml:"peer"`
	UDPEncap      bool      `yaml:"udp_encap"` // ESP in UDP 4500 (RFC 3948)
	Suite         string    `yaml:"suite"`
	ESN           bool      `yaml:"esn"`
	ReplayWindow  int       `yaml:"replay_window"`
	LocalSubnets  []Prefix  `yaml:"local_subnets"`
	RemoteSubnets []Prefix  `yaml:"remote_subnets"`
	Out           ManualKey `yaml:"out"`
	In            ManualKey `yaml:"in"`
	// Lifetimes: zero means none. A soft limit is logged; a hard limit
	// removes the SA (manual SAs are not rekeyed).
	Lifetime    Duration `yaml:"lifetime"`
	LifetimeKB  uint64   `yaml:"lifetime_kb"`
	LifetimePkt uint64   `yaml:"lifetime_packets"`
	Meta        Meta     `yaml:"-"`
}

// ManualKey is one direction of a manual SA. The key file holds the key
// material in hex (encryption key, with the salt for AEAD ciphers, then the
// integrity key), mode 0600.
type ManualKey struct {
	SPI     uint32 `yaml:"spi"`
	KeyFile string `yaml:"key_file"`
	Meta    Meta   `yaml:"-"`
}

// Dataplane configures the TUN device and policy routing.
type Dataplane struct {
	TUN   string `yaml:"tun"`
	MTU   int    `yaml:"mtu"`
	Table int    `yaml:"table"`
	Mark  uint32 `yaml:"mark"`
	// TUNSegmentation opens the TUN with IFF_VNET_HDR and TSO (Linux): TCP
	// arrives in super-packets that are cut up in user space, and
	// decrypted TCP segments are joined again before they are written.
	// False: one packet per read and write (water).
	TUNSegmentation bool `yaml:"tun_segmentation"`
	// OldOffload is tun_segmentation's former name, accepted with a
	// warning for one more release.
	OldOffload *bool `yaml:"offload"`
	Meta       Meta  `yaml:"-"`
}

// Plugins says where plugin binaries live and which to load.
type Plugins struct {
	Dir            string      `yaml:"dir"`
	Load           []PluginRef `yaml:"load"`
	HealthInterval Duration    `yaml:"health_interval"`
	Meta           Meta        `yaml:"-"`
}

// Load reads, decodes, defaults and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes data (read from file, used in messages), applies defaults
// and validates. On error it returns an ErrorList.
func Parse(file string, data []byte) (*Config, error) {
	d := &decoder{file: file}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, ErrorList{{File: file, Msg: "not valid YAML: " + err.Error()}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{File: file, Line: extra.Line, Msg: "more than one YAML document; put the whole configuration in one"}}
	}
	c := &Config{File: file}
	d.decode(&root, reflectValue(c), "")
	if len(d.errs) == 0 {
		applyDefaults(c)
		validate(d, c)
	}
	if len(d.errs) > 0 {
		return nil, d.errs
	}
	c.Warnings = d.warns
	return c, nil
}

// ReadManualKey reads a manual SA key file: hex digits, white space and an
// optional 0x ignored. The file must pass secretfile's checks.
func ReadManualKey(path string) ([]byte, error) {
	raw, err := secretfile.Read(path)
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	text := strings.Join(strings.Fields(string(raw)), "")
	text = strings.TrimPrefix(strings.TrimPrefix(text, "0x"), "0X")
	key, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("key file %s is not hex: %v", path, err)
	}
	return key, nil
}
