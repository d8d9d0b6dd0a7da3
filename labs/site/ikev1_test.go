// Package site is the lab for site-to-site tunnels, IKEv1 and IKEv2: two
// gateways in network namespaces (192.0.2.1 with NetA 10.1.0.0/24 behind
// it, 192.0.2.2 with NetB 10.2.0.0/24), negotiated by gatehoused on both
// sides or against strongSwan (charon with kernel-libipsec, encap = yes)
// on one. ikev2_test.go holds the IKEv2 tunnels.
package site

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/labs/pcap"
	"github.com/gatehouse/gatehouse/labs/testbin"
)

var bin string

func TestMain(m *testing.M) {
	testbin.Main(m.Run, &bin, map[string]string{"../../cmd/gatehoused": "gatehoused", "../../cmd/gatehouse": "gatehouse",
		"../../plugins/auth-psk": "plugins/auth-psk", "../../plugins/auth-x509": "plugins/auth-x509",
		"../../plugins/auth-krb5": "plugins/auth-krb5", "../../plugins/interop-windows": "plugins/interop-windows",
		"../../plugins/interop-apple": "plugins/interop-apple", "../../plugins/interop-android": "plugins/interop-android"})
}

const psk = "lab-preshared-key-0123456789"

type lab = netns.Sites

func newLab(t *testing.T) *lab { return netns.SitesForTest(t) }

type gw = netns.Gateway

// side is one gateway's view of the tunnel.
type side struct {
	local, remote, localNet, remoteNet string
}

var (
	siteA = side{"192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24"}
	siteB = side{"192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24"}
)

// tunnelOpts are the knobs a test turns.
type tunnelOpts struct {
	version int    // IKE version, both sides (default 1)
	ike     string // phase 1 proposals
	esp     string // phase 2 proposals
	pfs     string
	start   string
	key     string
	dpd     string // gatehoused's ike.dpd block
	// Lifetimes: gatehoused's ike and esp lifetimes, and strongSwan's
	// rekey times to match.
	ikeLife, espLife string
	// Extra flow-mapping entries for gatehoused's remote and ike blocks.
	remoteExtra, ikeExtra string
	// auth is gatehoused's auth list (default: the PSK); swanAuth
	// strongSwan's local and remote sections and swanSecrets its secrets
	// (default: the PSK).
	auth, swanAuth, swanSecrets string
	// swanFiles are copied into strongSwan's folder before it loads
	// (destination relative to it, such as private/gw.key: swanctl reads
	// keys and certificates from its x509, x509ca and private folders).
	swanFiles map[string]string
	// swanExtra: more options for strongSwan's connection (aggressive = yes).
	swanExtra string
	// load is gatehoused's plugins.load (default: what it needs).
	load string
	// pairs: the sides' subnets are comma-separated lists, and
	// strongSwan gets one child per subnet pair.
	pairs bool
	// moreTunnels are more entries for gatehoused's tunnels list.
	moreTunnels string
	// keylog, when set, is where gatehoused appends the ESP keys.
	keylog string
	// listen is gatehoused's listen list (default: the side's address).
	listen string
	// swanChildRekey, when set, is strongSwan's children's rekey_time
	// in place of espLife.
	swanChildRekey string
	// espExtra: more entries for gatehoused's esp block (udp_encap: true).
	espExtra string
}

func defaults(o tunnelOpts) tunnelOpts {
	o.version = cmp.Or(o.version, 1)
	o.ike = cmp.Or(o.ike, "aes256-sha256-modp2048")
	o.esp = cmp.Or(o.esp, "aes128gcm16")
	o.pfs = cmp.Or(o.pfs, "none")
	o.start = cmp.Or(o.start, "on-traffic")
	o.key = cmp.Or(o.key, psk)
	o.dpd = cmp.Or(o.dpd, "{interval: 30s, timeout: 150s}")
	o.ikeLife = cmp.Or(o.ikeLife, "1h")
	o.espLife = cmp.Or(o.espLife, "20m")
	o.swanAuth = cmp.Or(o.swanAuth, "local { auth = psk }\n    remote { auth = psk }")
	o.swanSecrets = cmp.Or(o.swanSecrets, fmt.Sprintf("ike-site { secret = %q }", o.key))
	return o
}

// startGatehouse runs gatehoused in ns with one tunnel.
func startGatehouse(t *testing.T, ns *netns.NS, s side, o tunnelOpts) *gw {
	t.Helper()
	dir := t.TempDir()
	path := writeGatehouseConfig(t, dir, s, o)
	var extra []string
	if o.keylog != "" {
		extra = []string{"--keylog", o.keylog}
	}
	g := netns.StartGateway(t, ns, bin, path, dir+"/admin.sock", extra...)
	key := defaults(o).key
	t.Cleanup(func() { netns.NoSecrets(t, map[string]string{"gatehoused's log": g.Proc.Output()}, key) })
	return g
}

// writeGatehouseConfig writes gatehoused's configuration and key into dir
// and returns the configuration's path (a reload reads it again).
func writeGatehouseConfig(t *testing.T, dir string, s side, o tunnelOpts) string {
	t.Helper()
	o = defaults(o)
	if err := os.WriteFile(filepath.Join(dir, "site.psk"), []byte(o.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`listen: [%[19]s]
admin_socket: %[5]s/admin.sock
metrics_listen: ""
log: {level: debug}
tunnels:
  - name: site
    local:  {address: %[1]s, subnets: [%[3]s]}
    remote: {address: %[2]s, subnets: [%[4]s]%[14]s}
    auth: %[16]s
    ike: {version: %[20]d, proposals: [%[6]s], lifetime: %[12]s, dpd: %[11]s%[15]s}
    esp: {proposals: [%[7]s], pfs: %[8]s, lifetime: %[13]s%[21]s}
    start: %[9]s
%[18]splugins: {dir: %[10]s/plugins, load: [%[17]s]}
`, s.local, s.remote, s.localNet, s.remoteNet, dir, o.ike, o.esp, o.pfs, o.start, bin, o.dpd, o.ikeLife, o.espLife, o.remoteExtra, o.ikeExtra,
		cmp.Or(o.auth, "[{psk_file: "+dir+"/site.psk}]"), o.load, o.moreTunnels, cmp.Or(o.listen, s.local), o.version, o.espExtra)
	path := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// swanctlConf is strongSwan's side of the tunnel: the IKE version, PSK
// (or certificates), and encap = yes because kernel-libipsec carries ESP
// in UDP only.
func swanctlConf(s side, o tunnelOpts) string {
	o = defaults(o)
	esp := o.esp
	if o.pfs != "none" {
		esp += "-" + o.pfs
	}
	return fmt.Sprintf(`connections {
  site {
    version = %[9]d
    local_addrs = %[1]s
    remote_addrs = %[2]s
    proposals = %[3]s
    encap = yes
    dpd_delay = 10s
    rekey_time = %[4]s
    %[5]s
    %[6]s
    children {
%[7]s    }
  }
}
secrets {
  %[8]s
}
`, s.local, s.remote, o.ike, o.ikeLife, o.swanExtra, o.swanAuth, swanChildren(s, o, esp), o.swanSecrets, o.version)
}

// swanChildren is strongSwan's children section: one child "net" for the
// first subnets of each side, or with o.pairs one child per subnet pair
// ("net-10_1_0_0-10_2_0_0"), as strongSwan's IKEv1 negotiates one pair
// per child; IKEv2 carries them all in one child "net".
func swanChildren(s side, o tunnelOpts, esp string) string {
	child := func(name, local, remote string) string {
		return fmt.Sprintf(`      %s {
        local_ts = %s
        remote_ts = %s
        esp_proposals = %s
        mode = tunnel
        start_action = trap
        rekey_time = %s
      }
`, name, local, remote, esp, cmp.Or(o.swanChildRekey, o.espLife))
	}
	if !o.pairs || o.version == 2 {
		return child("net", s.localNet, s.remoteNet)
	}
	var b strings.Builder
	for _, l := range strings.Split(s.localNet, ",") {
		for _, r := range strings.Split(s.remoteNet, ",") {
			l, r = strings.TrimSpace(l), strings.TrimSpace(r)
			b.WriteString(child(pairChild(l, r), l, r))
		}
	}
	return b.String()
}

// pairChild names strongSwan's child for a subnet pair (no dots: they
// separate the levels of swanctl.conf's names; nor an IPv6 prefix's colons
// and slash).
func pairChild(local, remote string) string {
	return strings.NewReplacer(".", "_", ":", "_", "/", "_").Replace("net-" + strings.TrimSuffix(local, "/24") + "-" + strings.TrimSuffix(remote, "/24"))
}

func startStrongSwan(t *testing.T, ns *netns.NS, s side, o tunnelOpts) *netns.StrongSwan {
	t.Helper()
	return netns.StrongSwanForTest(t, ns, o.swanFiles, swanctlConf(s, o))
}

// checkWire reads the capture of the link between the gateways: every
// ping crossed it inside ESP, none in clear, and, for the suites tshark
// decrypts, A's key log opens the ESP to the pings inside.
func checkWire(t *testing.T, capture *netns.Capture, keylog, suite string) {
	t.Helper()
	var prefs []string
	if pcap.CanDecrypt(suite) {
		var err error
		if prefs, err = pcap.KeyLogPrefs(keylog); err != nil {
			t.Fatal(err)
		}
	}
	// At least PingThrough's four pings each way.
	capture.Until(t, 10*time.Second, "eight ESP packets", func(text string) bool {
		return strings.Count(text, "\nEncapsulating Security Payload\n") >= 8
	}, prefs...)
	in, err := pcap.CountICMP(capture.File, prefs)
	if err != nil {
		t.Fatal(err)
	}
	if in.Clear != 0 || (prefs != nil && in.InESP < 8) {
		t.Fatalf("on the wire: %d ICMP packets in clear, %d decrypted out of ESP; want none in clear and at least 8 in ESP", in.Clear, in.InESP)
	}
}

func iperf(t *testing.T, l *lab) float64 {
	t.Helper()
	mbps, err := netns.Iperf(l.HB, l.HA, "10.2.0.10", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return mbps
}

// checkSA asserts that gatehouse sa shows the tunnel up.
func checkSA(t *testing.T, g *gw, wants ...string) {
	t.Helper()
	sa := netns.Flat(g.CLI(t, "sa"))
	for _, w := range wants {
		if !strings.Contains(sa, w) {
			t.Fatalf("gatehouse sa in %s lacks %q:\n%s", g.NS.Name, w, g.CLI(t, "sa"))
		}
	}
}

// TestGatehouseToGatehouse: both gateways are Gatehouse; A starts on
// traffic; raw ESP, no NAT; each AEAD suite IKEv1 has in turn (manual SAs
// may not use them, so they are carried end to end here, with negotiated
// keys).
func TestGatehouseToGatehouse(t *testing.T) {
	for _, suite := range []string{"aes128gcm16", "aes256gcm16"} {
		t.Run(suite, func(t *testing.T) {
			l := newLab(t)
			keylog := filepath.Join(t.TempDir(), "keys")
			a := startGatehouse(t, l.GWA, siteA, tunnelOpts{esp: suite, keylog: keylog})
			b := startGatehouse(t, l.GWB, siteB, tunnelOpts{esp: suite, start: "passive"})
			capture := l.GWB.StartCapture(t, "gwb1", "not arp and not udp port 500", filepath.Join(t.TempDir(), "outer.pcap"))
			netns.PingThrough(t, l.HA, "10.2.0.10")
			checkWire(t, capture, keylog, suite)
			t.Logf("%s: iperf3 %.0f Mbit/s", suite, iperf(t, l))
			// (A's first packet is dropped for want of an SA: it starts IKE.)
			checkSA(t, a, "site established initiator", "aes256-sha256-modp2048", "site out", "tunnel ESP "+suite)
			checkSA(t, b, "site established responder", "site in", "tunnel ESP "+suite, "Drops: none")
		})
	}
}

// TestStrongSwanResponds: Gatehouse starts on traffic, strongSwan
// answers, with each IKE version (IKEv2 with an AEAD IKE SA); one child
// carries the tunnel.
func TestStrongSwanResponds(t *testing.T) {
	for _, o := range []tunnelOpts{{version: 1}, {version: 2, ike: "aes128gcm16-prfsha256-ecp256"}} {
		t.Run(fmt.Sprintf("IKEv%d", o.version), func(t *testing.T) {
			l := newLab(t)
			startStrongSwan(t, l.GWB, siteB, o)
			a := startGatehouse(t, l.GWA, siteA, o)
			netns.PingThrough(t, l.HA, "10.2.0.10")
			t.Logf("iperf3 %.0f Mbit/s", iperf(t, l))
			// encap = yes makes strongSwan claim a NAT: ESP goes in UDP.
			checkSA(t, a, fmt.Sprintf("site established initiator IKEv%d", o.version), defaults(o).ike, "yes", "tunnel/udp ESP aes128gcm16")
		})
	}
}

// TestStrongSwanInitiates: strongSwan starts, Gatehouse (passive) answers,
// with each IKE version: AES-CBC/HMAC-SHA1 and MODP2048 PFS with IKEv1,
// AES-CBC/HMAC-SHA-256 and ECP256 PFS with IKEv2. The interop plugins are
// loaded: none takes strongSwan for a client family of its own. With
// IKEv1, strongSwan proposes a lifetime 10% longer than its rekey time,
// ours, so Gatehouse's answer carries RESPONDER-LIFETIME, which strongSwan
// reads past.
func TestStrongSwanInitiates(t *testing.T) {
	load := "interop-windows, interop-apple, interop-android"
	for _, o := range []tunnelOpts{{version: 1, esp: "aes128-sha1", pfs: "modp2048", start: "passive", load: load},
		{version: 2, esp: "aes128-sha256", pfs: "ecp256", start: "passive", load: load}} {
		t.Run(fmt.Sprintf("IKEv%d", o.version), func(t *testing.T) {
			l := newLab(t)
			b := startGatehouse(t, l.GWB, siteB, o)
			sw := startStrongSwan(t, l.GWA, siteA, o)
			if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
				t.Fatalf("swanctl --initiate: %v\n%s", err, out)
			}
			netns.PingThrough(t, l.HA, "10.2.0.10")
			t.Logf("iperf3 %.0f Mbit/s", iperf(t, l))
			checkSA(t, b, fmt.Sprintf("site established responder IKEv%d", o.version), "tunnel/udp ESP "+o.esp)
			if sa := b.CLI(t, "sa"); strings.Contains(sa, "by interop-") {
				t.Fatalf("strongSwan classified as a client family:\n%s", sa)
			}
			if log := sw.Log(); o.version == 1 && !regexp.MustCompile(`parsed QUICK_MODE response \d+ \[.*N\(\(24576\)\).*\]`).MatchString(log) {
				t.Fatalf("strongSwan saw no RESPONDER-LIFETIME in our quick mode answer:\n%s", log)
			}
		})
	}
}

// natLab is the two sites with A behind a NAT router (masquerade):
//
//	HA 10.1.0.10 - GWA 10.1.0.1 | 10.99.0.2 - NAT 10.99.0.1 | 192.0.2.1 - 192.0.2.2 | 10.2.0.1 GWB - HB 10.2.0.10
func natLab(t *testing.T) *lab {
	nl := netns.ForTest(t)
	l := &lab{Lab: nl, TwoSites: &netns.TwoSites{}}
	l.GWA, l.GWB, l.HA, l.HB = nl.MustNS(t, "gwa"), nl.MustNS(t, "gwb"), nl.MustNS(t, "ha"), nl.MustNS(t, "hb")
	nat := nl.MustNS(t, "nat")
	nl.MustLink(t, l.GWA, "10.99.0.2/24", nat, "10.99.0.1/24")
	_, natOut := nl.MustLink(t, l.GWB, "192.0.2.2/24", nat, "192.0.2.1/24")
	nl.MustLink(t, l.HA, "10.1.0.10/24", l.GWA, "10.1.0.1/24")
	nl.MustLink(t, l.HB, "10.2.0.10/24", l.GWB, "10.2.0.1/24")
	for _, err := range []error{l.HA.Route("default", "10.1.0.1"), l.HB.Route("default", "10.2.0.1"), l.GWA.Route("default", "10.99.0.1"),
		l.GWA.Forwarding(), l.GWB.Forwarding(), nat.Masquerade(natOut)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestGatehouseThroughNAT: A sits behind a NAT router (natLab), so NAT-T
// floats IKE to 4500 and ESP goes in UDP; B is Gatehouse with each IKE
// version, then strongSwan with IKEv2.
func TestGatehouseThroughNAT(t *testing.T) {
	for _, c := range []struct {
		version int
		swan    bool
	}{{1, false}, {2, false}, {2, true}} {
		name := fmt.Sprintf("IKEv%d/gatehouse", c.version)
		if c.swan {
			name = fmt.Sprintf("IKEv%d/strongswan", c.version)
		}
		t.Run(name, func(t *testing.T) {
			l := natLab(t)
			o := tunnelOpts{version: c.version}
			a := startGatehouse(t, l.GWA, side{"10.99.0.2", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24"}, o)
			o.start = "passive"
			bSide := side{"192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24"}
			var b *gw
			if c.swan {
				startStrongSwan(t, l.GWB, bSide, o)
			} else {
				b = startGatehouse(t, l.GWB, bSide, o)
			}
			netns.PingThrough(t, l.HA, "10.2.0.10")
			t.Logf("iperf3 through the NAT: %.0f Mbit/s", iperf(t, l))
			v := fmt.Sprintf(" IKEv%d", c.version)
			checkSA(t, a, "site established initiator"+v, "10.99.0.2:4500 192.0.2.2:4500", "yes", "tunnel/udp ESP aes128gcm16")
			if b != nil {
				checkSA(t, b, "site established responder"+v, "192.0.2.1:4500", "yes", "tunnel/udp ESP aes128gcm16")
			}
		})
	}
}

// TestTunnelsOnTwoListenAddresses: A listens on 192.0.2.1 and 192.0.2.3,
// so its outer sockets are on 0.0.0.0. B's tunnel is on the first address
// (A initiates), C's on the second (C initiates), and A's route to C would
// answer from 198.51.100.1: every IKE and ESP packet A sends C must come
// from 192.0.2.3, the address C dialled. With each IKE version.
//
//	HA 10.1.0.10 - GWA 10.1.0.1 | 192.0.2.1, .3 - 192.0.2.2 GWB | 10.2.0.1 - HB 10.2.0.10
//	                GWA 198.51.100.1 - 198.51.100.2 GWC | 10.5.0.1 - HC 10.5.0.10
func TestTunnelsOnTwoListenAddresses(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("IKEv%d", v), func(t *testing.T) {
			l := newLab(t)
			gwc, hc := l.MustNS(t, "gwc"), l.MustNS(t, "hc")
			_, toC := l.MustLink(t, gwc, "198.51.100.2/24", l.GWA, "198.51.100.1/24")
			l.MustLink(t, hc, "10.5.0.10/24", gwc, "10.5.0.1/24")
			for _, err := range []error{l.GWA.IP("addr", "add", "192.0.2.3/24", "dev", "gwa1"), gwc.Route("192.0.2.0/24", "198.51.100.1"),
				hc.Route("default", "10.5.0.1"), gwc.Forwarding()} {
				if err != nil {
					t.Fatal(err)
				}
			}
			dirA := t.TempDir()
			if err := os.WriteFile(filepath.Join(dirA, "site.psk"), []byte(psk+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			a := startGatehouse(t, l.GWA, siteA, tunnelOpts{version: v, listen: "192.0.2.1, 192.0.2.3", moreTunnels: `  - name: far
    local:  {address: 192.0.2.3, subnets: [10.1.0.0/24]}
    remote: {address: 198.51.100.2, subnets: [10.5.0.0/24]}
    auth: [{psk_file: ` + dirA + `/site.psk}]
    ike: {version: ` + fmt.Sprint(v) + `, proposals: [aes256-sha256-modp2048]}
    esp: {proposals: [aes128gcm16]}
    start: passive
`})
			startGatehouse(t, l.GWB, siteB, tunnelOpts{version: v, start: "passive"})
			startGatehouse(t, gwc, side{"198.51.100.2", "192.0.2.3", "10.5.0.0/24", "10.1.0.0/24"}, tunnelOpts{version: v})
			capture := l.GWA.StartCapture(t, toC, "not arp", filepath.Join(t.TempDir(), "to-c.pcap"))
			waitLog(t, a.Proc, "several listen addresses", "0.0.0.0")
			for _, p := range []struct {
				from *netns.NS
				to   string
			}{{l.HA, "10.2.0.10"}, {hc, "10.1.0.10"}, {l.HA, "10.5.0.10"}} {
				ok, _ := await.Poll(20*time.Second, func() (bool, string) {
					_, err := p.from.Output(5*time.Second, "ping", "-c", "1", "-W", "1", p.to)
					return err == nil, ""
				})
				out, err := p.from.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", p.to)
				if !ok || err != nil || !strings.Contains(out, " 3 received") {
					t.Fatalf("ping %s from %s: %v\n%s", p.to, p.from.Name, err, out)
				}
			}
			checkSA(t, a, "site established initiator", "192.0.2.1 192.0.2.2", "far established responder", "192.0.2.3 198.51.100.2")
			capture.Until(t, 10*time.Second, "ESP both ways", func(text string) bool {
				return strings.Count(text, "\nEncapsulating Security Payload\n") >= 12
			})
			src, err := l.GWA.Output(20*time.Second, "tshark", "-n", "-r", capture.File, "-T", "fields", "-e", "ip.src", "-e", "_ws.col.Protocol")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, line := range strings.Split(strings.TrimSpace(src), "\n") {
				if addr, proto, ok := strings.Cut(line, "\t"); ok && addr != "" {
					seen[addr+" "+proto]++
				}
			}
			// A answers C's exchanges: main mode and quick mode (IKEv1), or
			// IKE_SA_INIT and IKE_AUTH (IKEv2).
			if seen["192.0.2.3 ESP"] < 6 || seen["192.0.2.3 ISAKMP"] < 2 {
				t.Errorf("A's IKE and ESP to C do not come from 192.0.2.3: %v", seen)
			}
			for k := range seen {
				if strings.HasPrefix(k, "198.51.100.1 ") {
					t.Errorf("A sent %s from 198.51.100.1, not the address C dialled: %v", strings.TrimPrefix(k, "198.51.100.1 "), seen)
				}
			}
		})
	}
}

// waitLog waits until a line of a process's output holds every part.
func waitLog(t *testing.T, p *netns.Proc, parts ...string) {
	t.Helper()
	if !p.WaitLine(10*time.Second, parts...) {
		t.Fatalf("the log never said %q:\n%s", parts, p.Output())
	}
}

// TestFailuresAreNamed: a wrong preshared key, no common proposal and
// aggressive mode each fail with an audit event that names the reason,
// and the daemon goes on to negotiate when the peer is put right. (A
// message 5 under another key reads as garbage, which a forger could send
// as well: it is dropped, and the negotiation fails when its
// retransmissions run out, about a minute later, with the reason.)
func TestFailuresAreNamed(t *testing.T) {
	l := newLab(t)
	b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive"})
	for _, c := range []struct {
		name   string
		o      tunnelOpts
		extra  string // swanctl connection options
		reason string
		text   string
	}{
		{"wrong key", tunnelOpts{key: "not-the-key-we-agreed-on"}, "", `"reason": "authentication-failed"`, "preshared keys differ"},
		{"no common proposal", tunnelOpts{ike: "aes128-sha256-ecp384"}, "", `"reason": "no-proposal-chosen"`, "peer offered aes128-sha256-ecp384"},
		{"aggressive mode", tunnelOpts{}, "aggressive = yes", `"reason": "aggressive-mode-disabled"`, "aggressive mode is off"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := swanctlConf(siteA, c.o)
			if c.extra != "" {
				conf = strings.Replace(conf, "    encap = yes\n", "    encap = yes\n    "+c.extra+"\n", 1)
			}
			sw := netns.StrongSwanForTest(t, l.GWA, nil, conf)
			sw.Swanctl(15*time.Second, "--initiate", "--child", "net", "--timeout", "10")
			// The wrong key's event comes when the responder's
			// retransmissions run out: 1+2+4+8+16+32 s after message 4.
			if !b.Proc.WaitLine(80*time.Second, c.reason, c.text) {
				t.Fatalf("no event with %s and %q:\n%s", c.reason, c.text, b.Proc.Output())
			}
		})
	}
	// Put right, the same peer gets through: the daemon kept serving.
	sw := startStrongSwan(t, l.GWA, siteA, tunnelOpts{})
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, b, "site established responder")
}

// TestDPDAgainstStrongSwan: strongSwan is killed; Gatehouse notices
// within its DPD timeout, clears the SAs, and the tunnel comes back on
// traffic once strongSwan is running again.
func TestDPDAgainstStrongSwan(t *testing.T) {
	l := newLab(t)
	a := startGatehouse(t, l.GWA, siteA, tunnelOpts{dpd: "{interval: 2s, timeout: 8s}"})
	sw := startStrongSwan(t, l.GWB, siteB, tunnelOpts{})
	netns.PingThrough(t, l.HA, "10.2.0.10")
	sw.Stop(true) // kill -9
	// The engine says how long the peer was silent by its own clock: at
	// least the 8 s timeout, and at most one 2 s probe interval more.
	if !a.Proc.WaitLine(30*time.Second, "is dead: silent for") {
		t.Fatalf("the dead peer was never noticed:\n%s", a.Proc.Output())
	}
	m := deadFor.FindStringSubmatch(a.Proc.Output())
	if m == nil {
		t.Fatalf("no silence in the dead-peer event:\n%s", a.Proc.Output())
	}
	if silent, _ := time.ParseDuration(m[1]); silent < 8*time.Second || silent > 10*time.Second {
		t.Fatalf("declared dead after %v of silence, with an 8 s timeout and a 2 s interval", silent)
	}
	if sa := a.CLI(t, "sa"); strings.Contains(sa, "established") || strings.Contains(sa, "site out") {
		t.Fatalf("SAs left after the peer died:\n%s", sa)
	}
	startStrongSwan(t, l.GWB, siteB, tunnelOpts{})
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, a, "site established initiator")
}

var deadFor = regexp.MustCompile(`is dead: silent for (\d+s) despite`)

// rekeyDuration is how long TestRekeyUnderLoad runs iperf3 (the issue asks
// for three minutes); GATEHOUSE_REKEY_SECONDS shortens it by hand.
func rekeyDuration() time.Duration {
	if s := os.Getenv("GATEHOUSE_REKEY_SECONDS"); s != "" {
		var n int
		fmt.Sscan(s, &n)
		return time.Duration(n) * time.Second
	}
	return 3 * time.Minute
}

// TestRekeyUnderLoad: IKE SAs of 60 s and ESP SAs of 20 s, strongSwan
// answering, iperf3 running throughout: the TCP connection survives every
// rekey and reauthentication, and old SAs are deleted.
func TestRekeyUnderLoad(t *testing.T) {
	l := newLab(t)
	o := tunnelOpts{ikeLife: "60s", espLife: "20s"}
	a := startGatehouse(t, l.GWA, siteA, o)
	startStrongSwan(t, l.GWB, siteB, o)
	netns.PingThrough(t, l.HA, "10.2.0.10")
	d := rekeyDuration()
	if d < 45*time.Second {
		t.Fatalf("GATEHOUSE_REKEY_SECONDS=%v: under 45 s the 20 s SAs are rekeyed too few times for the check to mean anything", d.Seconds())
	}
	mbps, err := netns.Iperf(l.HB, l.HA, "10.2.0.10", d)
	if err != nil {
		t.Fatalf("iperf3 across %v of rekeying: %v", d, err)
	}
	t.Logf("iperf3 over %v with rekeys: %.0f Mbit/s", d, mbps)
	log := a.Proc.Output()
	rekeys, reauths := strings.Count(log, "IPsec SA rekeyed"), strings.Count(log, "reauthenticating IKE SA")+strings.Count(log, "IKE SA established")
	deleted := strings.Count(log, "deleted")
	t.Logf("rekeys %d, IKE SAs established %d, deletions %d", rekeys, reauths, deleted)
	if want := int(d / (20 * time.Second)); rekeys+strings.Count(log, "IPsec SA up") < want {
		t.Fatalf("%d child SAs in %v with a 20 s lifetime, want at least %d", rekeys, d, want)
	}
	if deleted == 0 {
		t.Fatal("no old SA was deleted")
	}
	// What remains is the current pair, and at most one on its way out.
	sa := a.CLI(t, "sa")
	var events []string
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "event_id") {
			events = append(events, line)
		}
	}
	t.Logf("events:\n%s\n\ngatehouse sa:\n%s", strings.Join(events, "\n"), sa)
	if n := strings.Count(netns.Flat(sa), "site out"); n < 1 || n > 2 {
		t.Fatalf("%d outbound SAs left:\n%s", n, sa)
	}
}

// TestAggressiveModeWithStrongSwan: a tunnel with aggressive mode on and
// the peer's identity configured accepts strongSwan's aggressive mode.
func TestAggressiveModeWithStrongSwan(t *testing.T) {
	l := newLab(t)
	b := startGatehouse(t, l.GWB, siteB, tunnelOpts{start: "passive", remoteExtra: `, id: "fqdn:gw-a.example.net"`, ikeExtra: ", aggressive_mode: true"})
	conf := strings.Replace(swanctlConf(siteA, tunnelOpts{}), "    encap = yes\n", "    encap = yes\n    aggressive = yes\n", 1)
	conf = strings.Replace(conf, "    local { auth = psk }", "    local { auth = psk\n      id = gw-a.example.net }", 1)
	sw := netns.StrongSwanForTest(t, l.GWA, nil, conf)
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s\n%s", err, out, sw.Log())
	}
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, b, "site established responder", "tunnel/udp ESP aes128gcm16")
}
