package config

import "time"

// The defaults, in one place. docs/configuration.md lists the same values;
// TestDefaultsDocumented keeps the two in step.
const (
	DefaultAdminSocket   = "/run/gatehouse/admin.sock"
	DefaultMetricsListen = "127.0.0.1:9273"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "console"
	DefaultExemptions    = "windows2003"
	DefaultIKELifetime   = 8 * time.Hour
	// DefaultIKEVersion is a tunnel's IKE version when none is set:
	// IKEv2, which today's gateways prefer (RFC 9395 deprecates IKEv1).
	// Peers that speak only IKEv1 (Windows 2000 and 2003) need version: 1.
	DefaultIKEVersion = 2
	// DefaultFragmentSize: IKE messages past this datagram size go in
	// fragments to peers that take them (strongSwan's default too).
	DefaultFragmentSize = 1280
	// RADIUS: each server's time to answer, and tries within it.
	DefaultRadiusTimeout = 3 * time.Second
	DefaultRadiusTries   = 2
	DefaultDPDInterval   = 30 * time.Second
	DefaultDPDTimeout    = 150 * time.Second
	DefaultESPLifetime   = time.Hour
	DefaultStart         = "on-traffic"
	DefaultPFS           = "none"
	DefaultPPPMRU        = 1400
	// DefaultMaxAuthenticatingPerSA: logins one client may have checked
	// at once (a Windows client makes one call per connection).
	DefaultMaxAuthenticatingPerSA = 4
	DefaultPluginDir              = "/usr/lib/gatehouse/plugins"
	DefaultHealthInterval         = 5 * time.Second
	DefaultTUN                    = "gatehouse0"
	DefaultTUNMTU                 = 1400
	DefaultRouteTable             = 4747
	DefaultMark                   = 0x4748
	// DefaultTUNSegmentation: the TUN with virtio-net headers (TCP
	// super-packets in, segments joined on the way out) doubles to triples
	// throughput; see docs/dataplane.md.
	DefaultTUNSegmentation = true
)

// DefaultIKEProposals are offered in this order when ike.proposals is unset.
var DefaultIKEProposals = []string{"aes256-sha256-modp2048", "aes128-sha256-ecp256"}

// DefaultESPProposals are offered by tunnels and negotiate rules.
var DefaultESPProposals = []string{"aes128gcm16", "aes256-sha256"}

// DefaultRemoteAccessESPProposals match what Windows 10/11 L2TP clients offer
// in quick mode (AES-CBC with HMAC-SHA1; ike/clients).
var DefaultRemoteAccessESPProposals = []string{"aes256-sha1", "aes128-sha1"}

// DefaultRemoteAccessIKEProposals: what macOS and iOS pick first, then
// what Windows 10/11 offer, in their order (ike/clients).
var DefaultRemoteAccessIKEProposals = []string{"aes256-sha256-modp2048", "aes256-sha1-ecp384", "aes128-sha1-ecp256", "aes256-sha1-modp2048"}

// DefaultRemoteAccessIKEv2Proposals are what IKEv2 road warriors are
// answered with: MODP2048 with SHA2 (macOS and iOS by default, Android
// 12+, Windows with NegotiateDH2048_AES256), AES-GCM with Curve25519
// (Android) or NIST P-256 (strongSwan, iOS), SHA-1 with MODP2048 (older
// Windows set to MODP2048). Windows's default MODP1024 needs
// legacy_algorithms (docs/ikev2-remote-access.md).
var DefaultRemoteAccessIKEv2Proposals = []string{"aes256-sha256-modp2048", "aes256gcm16-prfsha256-curve25519", "aes256gcm16-prfsha256-ecp256",
	"aes256-sha256-ecp256", "aes128-sha256-modp2048", "aes256-sha1-modp2048"}

// DefaultRemoteAccessIKEv2ESPProposals: AES-GCM for the clients that
// offer it (Android, Apple, Windows 11), AES-CBC with SHA2 (Apple's
// default) or SHA-1 (Windows's default; Android refuses SHA-1 for ESP).
var DefaultRemoteAccessIKEv2ESPProposals = []string{"aes256gcm16", "aes128gcm16", "aes256-sha256", "aes256-sha1", "aes128-sha1"}

// DefaultPPPAuth is what the L2TP server asks users for.
var DefaultPPPAuth = []string{"mschapv2"}

func applyDefaults(c *Config) {
	if c.AdminSocket == "" {
		c.AdminSocket = DefaultAdminSocket
	}
	if !c.Meta.Has("metrics_listen") {
		c.MetricsListen = DefaultMetricsListen
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Exemptions.Name == "" {
		c.Exemptions.Name = DefaultExemptions
		c.Exemptions.Classes = exemptionSets[DefaultExemptions]
	}
	defaultIKE(&c.IKE, nil)
	for i := range c.Tunnels {
		t := &c.Tunnels[i]
		if t.IKE != nil {
			defaultIKE(t.IKE, &c.IKE)
		}
		defaultESP(&t.ESP, DefaultESPProposals)
		if t.Start == "" {
			t.Start = DefaultStart
		}
	}
	if ra := c.RemoteAccess; ra != nil {
		if ra.IKE == nil {
			ra.IKE = &IKE{}
		}
		if ra.IKE.Version == 0 {
			ra.IKE.Version = 1 // L2TP/IPsec is IKEv1's, whatever tunnels speak
		}
		if len(ra.IKE.Proposals) == 0 {
			ra.IKE.Proposals = append([]string(nil), DefaultRemoteAccessIKEProposals...)
		}
		defaultIKE(ra.IKE, &c.IKE)
		defaultESP(&ra.ESP, DefaultRemoteAccessESPProposals)
		if len(ra.PPP.Auth) == 0 {
			ra.PPP.Auth = append([]string(nil), DefaultPPPAuth...)
		}
		if ra.PPP.MRU == 0 {
			ra.PPP.MRU = DefaultPPPMRU
		}
		if v2 := ra.IKEv2; v2 != nil {
			if v2.EAP == "" {
				v2.EAP = "mschapv2"
			}
			if len(v2.Proposals) == 0 {
				v2.Proposals = append([]string(nil), DefaultRemoteAccessIKEv2Proposals...)
			}
			defaultESP(&v2.ESP, DefaultRemoteAccessIKEv2ESPProposals)
		}
	}
	for name, fa := range c.FilterActions {
		defaultAction(&fa)
		c.FilterActions[name] = fa
	}
	for i := range c.Rules {
		if n := c.Rules[i].Negotiate; n != nil {
			if n.Action == "" {
				n.Action = "negotiate"
			}
			defaultAction(n)
		}
	}
	for i := range c.ManualSAs {
		if c.ManualSAs[i].Mode == "" {
			c.ManualSAs[i].Mode = "tunnel"
		}
	}
	if c.Dataplane.TUN == "" {
		c.Dataplane.TUN = DefaultTUN
	}
	if c.Dataplane.MTU == 0 {
		c.Dataplane.MTU = DefaultTUNMTU
	}
	if c.Dataplane.Table == 0 {
		c.Dataplane.Table = DefaultRouteTable
	}
	if c.Dataplane.Mark == 0 {
		c.Dataplane.Mark = DefaultMark
	}
	if !c.Dataplane.Meta.Has("tun_segmentation") {
		c.Dataplane.TUNSegmentation = DefaultTUNSegmentation
	}
	if c.Plugins.Dir == "" {
		c.Plugins.Dir = DefaultPluginDir
	}
	if c.Plugins.HealthInterval.Duration == 0 {
		c.Plugins.HealthInterval.Duration = DefaultHealthInterval
	}
}

func defaultIKE(k *IKE, parent *IKE) {
	if k.Version == 0 {
		k.Version = DefaultIKEVersion
		if parent != nil {
			k.Version = parent.Version
		}
	}
	if len(k.Proposals) == 0 {
		if parent != nil {
			k.Proposals = parent.Proposals
		} else {
			k.Proposals = append([]string(nil), DefaultIKEProposals...)
		}
	}
	if k.Lifetime.Duration == 0 {
		k.Lifetime.Duration = DefaultIKELifetime
		if parent != nil {
			k.Lifetime = parent.Lifetime
		}
	}
	if k.Fragmentation == nil && parent != nil {
		k.Fragmentation = parent.Fragmentation
	}
	if k.FragmentSize == 0 {
		k.FragmentSize = DefaultFragmentSize
		if parent != nil {
			k.FragmentSize = parent.FragmentSize
		}
	}
	if k.DPD.Interval.Duration == 0 {
		k.DPD.Interval.Duration = DefaultDPDInterval
	}
	if k.DPD.Timeout.Duration == 0 {
		k.DPD.Timeout.Duration = DefaultDPDTimeout
	}
}

func defaultESP(e *ESP, proposals []string) {
	if len(e.Proposals) == 0 {
		e.Proposals = append([]string(nil), proposals...)
	}
	if e.PFS == "" {
		e.PFS = DefaultPFS
	}
	if e.Lifetime.Duration == 0 {
		e.Lifetime.Duration = DefaultESPLifetime
	}
}

func defaultAction(a *FilterAction) {
	if a.Action != "negotiate" {
		return
	}
	if len(a.Offers) == 0 {
		a.Offers = append([]string(nil), DefaultESPProposals...)
	}
	if a.PFS == "" {
		a.PFS = DefaultPFS
	}
	if a.Lifetime.Duration == 0 {
		a.Lifetime.Duration = DefaultESPLifetime
	}
}
