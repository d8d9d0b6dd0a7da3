package site

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/labs/pcap"
)

// The same tunnels over IKEv2 (RFC 7296): gatehoused's IKEv2 engine
// against strongSwan's, and against itself.

// TestIKEv2GatehouseToGatehouse: both gateways are Gatehouse, raw ESP,
// with ChaCha20-Poly1305 (RFC 7634), which only IKEv2 negotiates.
func TestIKEv2GatehouseToGatehouse(t *testing.T) {
	l := newLab(t)
	keylog := filepath.Join(t.TempDir(), "keys")
	o := tunnelOpts{version: 2, esp: "chacha20poly1305", keylog: keylog}
	a := startGatehouse(t, l.GWA, siteA, o)
	o.start, o.keylog = "passive", ""
	b := startGatehouse(t, l.GWB, siteB, o)
	capture := l.GWB.StartCapture(t, "gwb1", "not arp and not udp port 500", filepath.Join(t.TempDir(), "outer.pcap"))
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkWire(t, capture, keylog, "chacha20poly1305")
	t.Logf("iperf3 %.0f Mbit/s", iperf(t, l))
	checkSA(t, a, "site established initiator IKEv2", "site out", "tunnel ESP chacha20poly1305")
	checkSA(t, b, "site established responder IKEv2", "site in", "Drops: none")
}

// TestIKEv2SubnetsWithStrongSwan: two subnets behind each gateway, in
// one child SA's traffic selectors (section 2.9). strongSwan offers wider
// ones (a /16 for each /24), and Gatehouse's narrowing answers with its
// four /24 pairs, which strongSwan installs; each pair carries traffic
// both ways on the one SA pair.
func TestIKEv2SubnetsWithStrongSwan(t *testing.T) {
	l := newLab(t)
	if err := l.SecondSubnets(); err != nil {
		t.Fatal(err)
	}
	o := tunnelOpts{version: 2, pairs: true, start: "passive"}
	b := startGatehouse(t, l.GWB, pairsB, o)
	wide := side{pairsA.local, pairsA.remote, "10.1.0.0/16, 10.3.0.0/16", "10.2.0.0/16, 10.4.0.0/16"}
	sw := startStrongSwan(t, l.GWA, wide, o)
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	if !strings.Contains(sw.Log(), "10.1.0.0/24 10.3.0.0/24 === 10.2.0.0/24 10.4.0.0/24") {
		t.Fatalf("strongSwan did not take the narrowed selectors:\n%s", netns.Tail(sw.Log(), 4000))
	}
	for _, p := range fourPairs {
		netns.PingThroughFrom(t, l.HA, p.a, p.b)
		netns.PingThroughFrom(t, l.HB, p.b, p.a)
	}
	list := listSAs(t, b)
	if len(list.IkeSas) != 1 || list.IkeSas[0].Children != 1 {
		t.Fatalf("IKE SAs %+v, want one with one child", list.IkeSas)
	}
	for _, sa := range list.Sas {
		if sa.Name == "site" && len(sa.Selectors) != 4 {
			t.Errorf("SA %#x carries %v, want the four pairs", sa.Spi, sa.Selectors)
		}
	}
}

// TestIKEv2LivenessAgainstStrongSwan: strongSwan is killed; Gatehouse's
// liveness check (dpd.timeout 8 s) finds it gone and clears the SAs; the
// tunnel comes back on traffic once strongSwan runs again.
func TestIKEv2LivenessAgainstStrongSwan(t *testing.T) {
	l := newLab(t)
	o := tunnelOpts{version: 2, dpd: "{interval: 2s, timeout: 8s}"}
	a := startGatehouse(t, l.GWA, siteA, o)
	sw := startStrongSwan(t, l.GWB, siteB, o)
	netns.PingThrough(t, l.HA, "10.2.0.10")
	sw.Stop(true) // kill -9
	if !a.Proc.WaitLine(30*time.Second, "IKE SA with site down (IKEv2): the peer does not answer") {
		t.Fatalf("the dead peer was never noticed:\n%s", a.Proc.Output())
	}
	if !strings.Contains(a.Proc.Output(), "no answer from 192.0.2.2 to our INFORMATIONAL request in 8s") {
		t.Fatalf("the liveness failure does not say how long the peer was silent:\n%s", a.Proc.Output())
	}
	if sa := a.CLI(t, "sa"); strings.Contains(sa, "established") || strings.Contains(sa, "site out") {
		t.Fatalf("SAs left after the peer died:\n%s", sa)
	}
	startStrongSwan(t, l.GWB, siteB, o)
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, a, "site established initiator IKEv2")
}

// TestIKEv1AndIKEv2AtOnce: two tunnels between the same gateways, one
// for each IKE version, on the same ports: each engine keeps its own.
func TestIKEv1AndIKEv2AtOnce(t *testing.T) {
	l := newLab(t)
	if err := l.SecondSubnets(); err != nil {
		t.Fatal(err)
	}
	more := func(s side, dir string) string {
		return `  - name: old
    local:  {address: ` + s.local + `, subnets: [` + secondNet(s.localNet) + `]}
    remote: {address: ` + s.remote + `, subnets: [` + secondNet(s.remoteNet) + `]}
    auth: [{psk_file: ` + dir + `/site.psk}]
    ike: {version: 1}
    esp: {proposals: [aes128gcm16]}
`
	}
	// One key file for both tunnels: a peer has one preshared key.
	dirA, dirB := pskDir(t), pskDir(t)
	a := startGatehouse(t, l.GWA, siteA, tunnelOpts{version: 2, moreTunnels: more(siteA, dirA), auth: "[{psk_file: " + dirA + "/site.psk}]"})
	b := startGatehouse(t, l.GWB, siteB, tunnelOpts{version: 2, moreTunnels: more(siteB, dirB), auth: "[{psk_file: " + dirB + "/site.psk}]", start: "passive"})
	netns.PingThroughFrom(t, l.HA, "10.1.0.10", "10.2.0.10")
	netns.PingThroughFrom(t, l.HA, "10.3.0.10", "10.4.0.10")
	checkSA(t, a, "site established initiator IKEv2", "old established initiator IKEv1")
	checkSA(t, b, "site established responder IKEv2", "old established responder IKEv1")
}

// outSA is an outbound SA's line in gatehouse sa.
var outSA = regexp.MustCompile(`(?m)^site\s+out\s+0x[0-9a-f]+\s+tunnel`)

// secondNet is the second subnet SecondSubnets gives a site: 10.1 has
// 10.3, 10.2 has 10.4.
func secondNet(first string) string {
	if strings.HasPrefix(first, "10.1.") {
		return "10.3.0.0/24"
	}
	return "10.4.0.0/24"
}

// pskDir writes the lab's key into a folder of its own.
func pskDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "site.psk"), []byte(psk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestIKEv2RekeyUnderLoad: IKE SAs of 60 s and child SAs of 18 s (a
// 17 s rekey time at strongSwan), both sides rekeying, with PFS, during
// a 60 s iperf3: the TCP connection survives, no second of it passes
// without data, and old SAs are deleted. Children are rekeyed by
// whichever side's timer runs out first (Gatehouse's at 14.4-15.3 s for
// a child it made, 16.7 s for one strongSwan made; strongSwan's at
// 15.3-17 s), the IKE SA by Gatehouse (48-51 s; strongSwan's 54-60 s);
// where both start a child rekey at once, section 2.8.1's nonce rule
// settles it.
func TestIKEv2RekeyUnderLoad(t *testing.T) {
	l := newLab(t)
	o := tunnelOpts{version: 2, ikeLife: "60s", espLife: "18s", swanChildRekey: "17s", pfs: "ecp256"}
	a := startGatehouse(t, l.GWA, siteA, o)
	sw := startStrongSwan(t, l.GWB, siteB, o)
	netns.PingThrough(t, l.HA, "10.2.0.10")
	r, err := netns.IperfRun(l.HB, l.HA, "10.2.0.10", "", time.Minute)
	if err != nil {
		t.Fatalf("iperf3 across a minute of rekeying: %v", err)
	}
	t.Logf("iperf3 over 60 s with rekeys: %.0f Mbit/s; per second: %.0f", r.Mbps, r.Intervals)
	for i, mbps := range r.Intervals {
		if mbps == 0 {
			t.Errorf("second %d of iperf3 carried nothing", i+1)
		}
	}
	log, swLog := a.Proc.Output(), sw.Log()
	ours, ikeRekeys := strings.Count(log, "rekeying IPsec SA"), strings.Count(log, "IKEv2 SA rekeyed")
	rekeyed, deleted := strings.Count(log, "IPsec SA with site rekeyed (IKEv2)"), strings.Count(log, "replaced by a rekeyed SA")
	theirs := strings.Count(swLog, "CREATE_CHILD_SA request") - ours - ikeRekeys
	t.Logf("child rekeys: %d ours, %d strongSwan's (%d in all); IKE SA rekeys %d; old children deleted %d", ours, theirs, rekeyed, ikeRekeys, deleted)
	if rekeyed < 3 || ikeRekeys < 1 || deleted < 2 {
		t.Fatalf("too few rekeys in a minute of 18 s children and a 60 s IKE SA:\n%s", log)
	}
	if n := strings.Count(log, "negotiation failed") + strings.Count(log, "IKE SA with site down"); n != 0 {
		t.Fatalf("a negotiation failed during the rekeys:\n%s", log)
	}
	if sa := a.CLI(t, "sa"); len(outSA.FindAllString(sa, -1)) != 1 || strings.Count(sa, "IKEv2") != 1 {
		t.Fatalf("want one IKE SA and one outbound SA left:\n%s", sa)
	}
}

// TestIKEv2FragmentsWithStrongSwan: a 576-byte fragment size on both
// sides (RFC 7383) and child rekeys with a MODP4096 key exchange, whose
// CREATE_CHILD_SA messages are too large for it: Gatehouse's rekey (at
// 80-85 % of a 15 s lifetime) and strongSwan's (swanctl --rekey) each go
// in fragments the other joins, and traffic carries on.
func TestIKEv2FragmentsWithStrongSwan(t *testing.T) {
	l := newLab(t)
	extra := filepath.Join(t.TempDir(), "charon-extra.conf")
	if err := os.WriteFile(extra, []byte("fragment_size = 576\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := tunnelOpts{version: 2, pfs: "modp4096", espLife: "15s", ikeExtra: ", fragment_size: 576", swanFiles: map[string]string{"charon-extra.conf": extra}}
	a := startGatehouse(t, l.GWA, siteA, o)
	sw := startStrongSwan(t, l.GWB, siteB, o)
	netns.PingThrough(t, l.HA, "10.2.0.10")
	if !a.Proc.WaitLine(30*time.Second, "IPsec SA with site rekeyed (IKEv2)") {
		t.Fatalf("Gatehouse did not rekey its child:\n%s", a.Proc.Output())
	}
	if !sw.WaitLog(10*time.Second, "reassembled fragmented IKE message") {
		t.Fatalf("strongSwan never joined fragments of ours:\n%s", netns.Tail(sw.Log(), 6000))
	}
	if out, err := sw.Swanctl(30*time.Second, "--rekey", "--child", "net"); err != nil {
		t.Fatalf("swanctl --rekey: %v\n%s", err, out)
	}
	if !sw.WaitLog(10*time.Second, "splitting IKE message") {
		t.Fatalf("strongSwan did not fragment its rekey:\n%s", netns.Tail(sw.Log(), 6000))
	}
	netns.PingThrough(t, l.HA, "10.2.0.10")
	if log := a.Proc.Output(); strings.Contains(log, "negotiation failed") || strings.Count(log, "IPsec SA with site rekeyed (IKEv2)") < 2 {
		t.Fatalf("both rekeys should have gone through:\n%s", log)
	}
}

// TestIKEv2X509WithStrongSwan: RSA and ECDSA certificates from one CA,
// each side initiating in turn. Both announce RFC 7427 signature hashes,
// so both sign that way; each checks the other's chain against the CA.
func TestIKEv2X509WithStrongSwan(t *testing.T) {
	for _, c := range []struct{ kind, method, scheme string }{{"rsa", "rsa-sig", "RSA_EMSA_PKCS1_SHA2_256"}, {"ecdsa", "ecdsa-256", "ECDSA_WITH_SHA256_DER"}} {
		pki := netns.NewPKI(t, bin)
		pki.Issue("gw-a", c.kind, "--ip", siteA.local)
		pki.Issue("gw-b", c.kind, "--ip", siteB.local)
		o := tunnelOpts{version: 2}
		t.Run(c.kind+"/gatehouse-initiates", func(t *testing.T) {
			l := newLab(t)
			startStrongSwan(t, l.GWB, siteB, swanCert(pki, o, "gw-b"))
			a := startGatehouse(t, l.GWA, siteA, tunnelOpts{version: 2, auth: "[" + pki.AuthEntry("gw-a") + "]", remoteExtra: `, id: "dn:CN=gw-b,O=Gatehouse"`})
			netns.PingThrough(t, l.HA, "10.2.0.10")
			t.Logf("iperf3 %.0f Mbit/s", iperf(t, l))
			checkSA(t, a, "site established initiator IKEv2", c.method+" CN=gw-b,O=Gatehouse", "tunnel/udp ESP aes128gcm16")
		})
		t.Run(c.kind+"/strongswan-initiates", func(t *testing.T) {
			l := newLab(t)
			b := startGatehouse(t, l.GWB, siteB, tunnelOpts{version: 2, start: "passive", auth: "[" + pki.AuthEntry("gw-b") + "]"})
			sw := startStrongSwan(t, l.GWA, siteA, swanCert(pki, o, "gw-a"))
			if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
				t.Fatalf("swanctl --initiate: %v\n%s", err, out)
			}
			netns.PingThrough(t, l.HA, "10.2.0.10")
			t.Logf("iperf3 %.0f Mbit/s", iperf(t, l))
			checkSA(t, b, "site established responder IKEv2", c.method+" CN=gw-a,O=Gatehouse")
			if !strings.Contains(sw.Log(), "authentication of 'O=Gatehouse, CN=gw-b' with "+c.scheme+" successful") {
				t.Fatalf("strongSwan did not check our RFC 7427 signature:\n%s", sw.Log())
			}
		})
	}
}

// TestIPv6InIPv4: Gatehouse to Gatehouse over IPv4, each site with an
// IPv6 network beside its IPv4 one. IKEv2 carries both pairs in one child
// (traffic selectors of both families); IKEv1 makes a child for each
// (ID_IPV6_ADDR_SUBNET for the IPv6 one). ping6 goes through the tunnel
// both ways, as ping does.
func TestIPv6InIPv4(t *testing.T) {
	for _, version := range []int{2, 1} {
		t.Run(fmt.Sprintf("IKEv%d", version), func(t *testing.T) {
			l := newLab(t)
			if err := l.InnerIPv6(); err != nil {
				t.Fatal(err)
			}
			a6 := side{siteA.local, siteA.remote, "10.1.0.0/24, fd00:1::/64", "10.2.0.0/24, fd00:2::/64"}
			b6 := side{siteB.local, siteB.remote, "10.2.0.0/24, fd00:2::/64", "10.1.0.0/24, fd00:1::/64"}
			keylog := filepath.Join(t.TempDir(), "keys")
			o := tunnelOpts{version: version, pairs: true, keylog: keylog}
			a := startGatehouse(t, l.GWA, a6, o)
			o.start, o.keylog = "passive", ""
			b := startGatehouse(t, l.GWB, b6, o)
			capture := l.GWB.StartCapture(t, "gwb1", "not arp and not udp port 500", filepath.Join(t.TempDir(), "outer.pcap"))
			netns.PingThrough(t, l.HA, "fd00:2::10")
			netns.PingThrough(t, l.HB, "fd00:1::10")
			// tshark decrypts the ICMPv6 out of ESP, well formed, and finds
			// none in clear.
			checkWire(t, capture, keylog, "aes128gcm16")
			prefs, err := pcap.KeyLogPrefs(keylog)
			if err != nil {
				t.Fatal(err)
			}
			text, err := capture.Decode(append(prefs, "-Y", "icmpv6")...)
			if bad := pcap.Malformed(text); err != nil || len(bad) > 0 || !strings.Contains(text, "Internet Protocol Version 6, Src: fd00:1::10, Dst: fd00:2::10") {
				t.Fatalf("tshark on the IPv6 in ESP: %v %v\n%s", err, bad, netns.Tail(text, 3000))
			}
			netns.PingThrough(t, l.HA, "10.2.0.10")
			// The TUN's IPv6 has no link-local address, but the kernel
			// still sends the odd multicast report into it: counted as
			// link-local.
			checkSA(t, a, fmt.Sprintf("site established initiator IKEv%d", version), "fd00:1::/64")
			checkSA(t, b, fmt.Sprintf("site established responder IKEv%d", version), "fd00:2::/64")
		})
	}
}

// TestIPv6InIPv4WithStrongSwan: strongSwan (kernel-libipsec) initiates an
// IKEv2 child with IPv4 and IPv6 traffic selectors to Gatehouse, over
// IPv4; Gatehouse's narrowing answers with the two same-family pairs,
// and ping6 and ping pass both ways.
func TestIPv6InIPv4WithStrongSwan(t *testing.T) {
	l := newLab(t)
	if err := l.InnerIPv6(); err != nil {
		t.Fatal(err)
	}
	a6 := side{siteA.local, siteA.remote, "10.1.0.0/24, fd00:1::/64", "10.2.0.0/24, fd00:2::/64"}
	b6 := side{siteB.local, siteB.remote, "10.2.0.0/24, fd00:2::/64", "10.1.0.0/24, fd00:1::/64"}
	o := tunnelOpts{version: 2, pairs: true, start: "passive"}
	b := startGatehouse(t, l.GWB, b6, o)
	sw := startStrongSwan(t, l.GWA, a6, o)
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	netns.PingThrough(t, l.HA, "fd00:2::10")
	netns.PingThrough(t, l.HB, "fd00:1::10")
	netns.PingThrough(t, l.HA, "10.2.0.10")
	checkSA(t, b, "site established responder IKEv2", "fd00:2::/64")
}

// TestIPv6Outer: Gatehouse to Gatehouse between IPv6 addresses, carrying
// IPv4 and IPv6 networks (v4-in-v6 and v6-in-v6), with IKEv2 and IKEv1,
// ESP raw (IP protocol 50 over IPv6) and in UDP 4500 over IPv6. tshark
// decrypts the pings out of the ESP it captured between the gateways.
func TestIPv6Outer(t *testing.T) {
	for _, c := range []struct {
		version int
		encap   bool
	}{{2, false}, {2, true}, {1, false}} {
		t.Run(fmt.Sprintf("IKEv%d-udp-%v", c.version, c.encap), func(t *testing.T) {
			l := newLab(t)
			if err := l.InnerIPv6(); err != nil {
				t.Fatal(err)
			}
			if err := l.OuterIPv6(); err != nil {
				t.Fatal(err)
			}
			a6 := side{"2001:db8:12::1", "2001:db8:12::2", "10.1.0.0/24, fd00:1::/64", "10.2.0.0/24, fd00:2::/64"}
			b6 := side{"2001:db8:12::2", "2001:db8:12::1", "10.2.0.0/24, fd00:2::/64", "10.1.0.0/24, fd00:1::/64"}
			keylog := filepath.Join(t.TempDir(), "keys")
			o := tunnelOpts{version: c.version, pairs: true, keylog: keylog, listen: "192.0.2.1, 2001:db8:12::1"}
			if c.encap {
				o.espExtra = ", udp_encap: true"
			}
			a := startGatehouse(t, l.GWA, a6, o)
			o.start, o.keylog, o.listen = "passive", "", "192.0.2.2, 2001:db8:12::2"
			b := startGatehouse(t, l.GWB, b6, o)
			capture := l.GWB.StartCapture(t, "gwb1", "ip6 and not udp port 500", filepath.Join(t.TempDir(), "outer.pcap"))
			netns.PingThrough(t, l.HA, "fd00:2::10")
			netns.PingThrough(t, l.HA, "10.2.0.10")
			checkWire(t, capture, keylog, "aes128gcm16")
			checkSA(t, a, fmt.Sprintf("site established initiator IKEv%d", c.version), "2001:db8:12::2")
			checkSA(t, b, fmt.Sprintf("site established responder IKEv%d", c.version), "fd00:2::/64")
		})
	}
}

// TestIPv6OuterWithStrongSwan: strongSwan (kernel-libipsec, ESP in UDP
// 4500) and Gatehouse between IPv6 addresses, IKEv2 and IKEv1, each side
// initiating; IPv4 and IPv6 networks behind them. IKEv2 carries both pairs
// in one child; strongSwan's IKEv1 makes one per pair. ping6 and ping pass,
// and iperf3 over IPv6 runs through.
func TestIPv6OuterWithStrongSwan(t *testing.T) {
	for _, c := range []struct {
		version         int
		gatehouseStarts bool
	}{{2, false}, {2, true}, {1, false}, {1, true}} {
		t.Run(fmt.Sprintf("IKEv%d-gatehouse-starts-%v", c.version, c.gatehouseStarts), func(t *testing.T) {
			l := newLab(t)
			for _, err := range []error{l.InnerIPv6(), l.OuterIPv6()} {
				if err != nil {
					t.Fatal(err)
				}
			}
			sa := side{"2001:db8:12::1", "2001:db8:12::2", "10.1.0.0/24, fd00:1::/64", "10.2.0.0/24, fd00:2::/64"}
			gb := side{"2001:db8:12::2", "2001:db8:12::1", "10.2.0.0/24, fd00:2::/64", "10.1.0.0/24, fd00:1::/64"}
			o := tunnelOpts{version: c.version, pairs: true, listen: "192.0.2.2, 2001:db8:12::2"}
			if !c.gatehouseStarts {
				o.start = "passive"
			}
			var sw *netns.StrongSwan
			var b *gw
			if c.gatehouseStarts {
				sw = startStrongSwan(t, l.GWA, sa, o)
				b = startGatehouse(t, l.GWB, gb, o)
			} else {
				b = startGatehouse(t, l.GWB, gb, o)
				sw = startStrongSwan(t, l.GWA, sa, o)
				children := []string{"net"}
				if c.version == 1 {
					// One child a pair; each started by hand (strongSwan's
					// trap for the IPv4 pair of an IKE SA over IPv6 routes
					// nothing into its TUN).
					children = []string{pairChild("fd00:1::/64", "fd00:2::/64"), pairChild("10.1.0.0/24", "10.2.0.0/24")}
				}
				for _, child := range children {
					if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", child); err != nil {
						t.Fatalf("swanctl --initiate --child %s: %v\n%s", child, err, out)
					}
				}
			}
			// The traffic starts on the initiator's side (strongSwan traps,
			// a passive Gatehouse does not start).
			if c.gatehouseStarts {
				netns.PingThrough(t, l.HB, "fd00:1::10")
				netns.PingThrough(t, l.HB, "10.1.0.10")
			} else {
				netns.PingThrough(t, l.HA, "fd00:2::10")
				netns.PingThrough(t, l.HA, "10.2.0.10")
			}
			mbps, err := netns.Iperf(l.HA, l.HB, "fd00:1::10", 2*time.Second)
			if err != nil {
				t.Fatalf("iperf3 over IPv6: %v\n%s", err, netns.Tail(sw.Log(), 3000))
			}
			t.Logf("iperf3 -6 %.0f Mbit/s", mbps)
			role := map[bool]string{true: "initiator", false: "responder"}[c.gatehouseStarts]
			checkSA(t, b, fmt.Sprintf("site established %s IKEv%d", role, c.version), "2001:db8:12::1", "fd00:2::/64")
		})
	}
}
