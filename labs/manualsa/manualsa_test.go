// Package manualsa is the lab for the ESP data path: two gateways in
// network namespaces with manually keyed SAs, a host behind each, and
// traffic through tunnel mode (raw ESP and ESP in UDP) and transport mode.
package manualsa

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/labs/pcap"
	"github.com/gatehouse/gatehouse/labs/testbin"
)

var bin string

// topLevel is prepended to every gatehoused configuration the lab writes.
var topLevel string

func TestMain(m *testing.M) {
	testbin.Main(m.Run, &bin, map[string]string{"../../cmd/gatehoused": "gatehoused", "../../cmd/gatehouse": "gatehouse"})
}

type lab = netns.Sites

func newLab(t *testing.T) *lab { return netns.SitesForTest(t) }

type gw = netns.Gateway

// start runs gatehoused in ns with one manual SA pair.
func start(t *testing.T, ns *netns.NS, local, peer, mode, suite string, udp bool, outSPI, inSPI uint32, outKey, inKey string, subnets [2]string, extra ...string) *gw {
	t.Helper()
	dir := t.TempDir()
	for name, key := range map[string]string{"out.key": outKey, "in.key": inKey} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nets := ""
	if mode == "tunnel" {
		nets = fmt.Sprintf("    local_subnets: [%s]\n    remote_subnets: [%s]\n", subnets[0], subnets[1])
	}
	cfg := fmt.Sprintf(`listen: [%s]
admin_socket: %s/admin.sock
metrics_listen: ""
legacy_algorithms: true
log: {level: debug}
manual_sas:
  - name: lab
    mode: %s
    local: %s
    peer: %s
    udp_encap: %v
    suite: %s
%s    out: {spi: %#x, key_file: out.key}
    in:  {spi: %#x, key_file: in.key}
%s`, local, dir, mode, local, peer, udp, suite, nets, outSPI, inSPI, strings.Join(extra, ""))
	path := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(path, []byte(topLevel+cfg), 0o644)
	return netns.StartGateway(t, ns, bin, path, dir+"/admin.sock")
}

func key(t *testing.T, suite string) string {
	s, err := esp.ParseSuite(suite)
	if err != nil {
		t.Fatal(err)
	}
	e, i := esp.KeyLengths(s)
	b := make([]byte, e+i)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ping checks that three pings in a row pass through the tunnel
// (netns.PingThrough: the gateways' counters move, nothing in clear).
func ping(t *testing.T, ns *netns.NS, dst string) {
	t.Helper()
	netns.PingThrough(t, ns, dst)
}

// iperf runs a 2-second TCP test from client to server and returns Mbit/s.
func iperf(t *testing.T, server, client *netns.NS, addr string) float64 {
	t.Helper()
	mbps, err := netns.Iperf(server, client, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return mbps
}

// TestTunnelModeEveryAlgorithm runs every suite a manual SA may use. The
// AEAD suites are refused in manual_sas (a static key repeats their
// nonces after a restart); labs/site runs them with negotiated keys.
func TestTunnelModeEveryAlgorithm(t *testing.T) {
	suites := []string{"aes128-sha1", "aes256-sha256", "3des-sha1", "null-sha256"}
	for _, udp := range []bool{false, true} {
		for _, suite := range suites {
			t.Run(fmt.Sprintf("%s/udp=%v", suite, udp), func(t *testing.T) {
				l := newLab(t)
				k1, k2 := key(t, suite), key(t, suite)
				a := start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", suite, udp, 0x1001, 0x2001, k1, k2, [2]string{"10.1.0.0/24", "10.2.0.0/24"})
				b := start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", suite, udp, 0x2001, 0x1001, k2, k1, [2]string{"10.2.0.0/24", "10.1.0.0/24"})
				ping(t, l.HA, "10.2.0.10")
				t.Logf("%s udp=%v: iperf3 %.0f Mbit/s", suite, udp, iperf(t, l.HB, l.HA, "10.2.0.10"))
				mode := "tunnel"
				if udp {
					mode = "tunnel/udp"
				}
				for _, g := range []*gw{a, b} {
					sa := netns.Flat(g.CLI(t, "sa"))
					for _, want := range []string{"lab out", "lab in", mode + " ESP " + suite, "Drops: none"} {
						if !strings.Contains(sa, want) {
							t.Fatalf("gatehouse sa in %s lacks %q:\n%s", g.NS.Name, want, sa)
						}
					}
				}
			})
		}
	}
}

func TestTransportMode(t *testing.T) {
	l := newLab(t)
	k1, k2 := key(t, "aes256-sha256"), key(t, "aes256-sha256")
	a := start(t, l.GWA, "192.0.2.1", "192.0.2.2", "transport", "aes256-sha256", false, 0x3001, 0x4001, k1, k2, [2]string{})
	start(t, l.GWB, "192.0.2.2", "192.0.2.1", "transport", "aes256-sha256", false, 0x4001, 0x3001, k2, k1, [2]string{})
	ping(t, l.GWA, "192.0.2.2")
	if sa := netns.Flat(a.CLI(t, "sa")); !strings.Contains(sa, "transport ESP aes256-sha256") || !strings.Contains(sa, "Drops: none") {
		t.Fatalf("gatehouse sa:\n%s", sa)
	}
	t.Logf("transport mode: iperf3 %.0f Mbit/s", iperf(t, l.GWB, l.GWA, "192.0.2.2"))
	if sa := netns.Flat(a.CLI(t, "sa")); !strings.Contains(sa, "Drops: none") {
		t.Fatalf("gatehouse sa:\n%s", sa)
	}
}

// With mismatched keys every packet fails the ICV: counted, nothing passes.
func TestWrongKeyIsCountedNotDelivered(t *testing.T) {
	l := newLab(t)
	k1, k2 := key(t, "aes128-sha1"), key(t, "aes128-sha1")
	start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", "aes128-sha1", false, 0x1001, 0x2001, k1, k2, [2]string{"10.1.0.0/24", "10.2.0.0/24"})
	b := start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", "aes128-sha1", false, 0x2001, 0x1001, k2, key(t, "aes128-sha1"), [2]string{"10.2.0.0/24", "10.1.0.0/24"})
	if out, err := l.HA.Output(10*time.Second, "ping", "-c", "2", "-W", "1", "10.2.0.10"); err == nil {
		t.Fatalf("ping passed with a wrong key:\n%s", out)
	}
	if sa := b.CLI(t, "sa"); !strings.Contains(sa, "auth-failed=") {
		t.Fatalf("ICV failures not counted:\n%s", sa)
	}
}

// Wireshark's names for our suites (its ESP SA table); it has no
// ChaCha20-Poly1305 in version 4.0, so that suite is not decoded here.
// espSA is tshark's SA option for a manual SA with key keyHex (the
// encryption key, then the integrity key).
func espSA(suite, src, dst string, spi uint32, keyHex string) string {
	s, _ := esp.ParseSuite(suite)
	el, _ := esp.KeyLengths(s)
	return pcap.ESPSA(suite, src, dst, spi, keyHex[:2*el], keyHex[2*el:])
}

// TestTsharkDecodesCapturedESP captures the outer link while pinging, then
// has tshark decrypt the capture with the SA keys: the inner ICMP packets
// must come out intact and nothing may be malformed.
func TestTsharkDecodesCapturedESP(t *testing.T) {
	// ESN changes only the integrity check's input (the high half of the
	// sequence number, which is 0 here): the packets are those of a
	// 32-bit SA, and tshark decodes them alike.
	for _, udp := range []bool{false, true} {
		for _, c := range []struct {
			suite string
			esn   bool
		}{{"aes256-sha256", false}, {"aes256-sha256", true}, {"aes128-sha1", false}, {"3des-sha1", false}, {"null-sha256", false}} {
			suite, name, extra := c.suite, c.suite, []string(nil)
			if c.esn {
				name, extra = suite+"+esn", []string{"    esn: true\n"}
			}
			t.Run(fmt.Sprintf("%s/udp=%v", name, udp), func(t *testing.T) {
				l := newLab(t)
				k1, k2 := key(t, suite), key(t, suite)
				start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", suite, udp, 0x1001, 0x2001, k1, k2, [2]string{"10.1.0.0/24", "10.2.0.0/24"}, extra...)
				start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", suite, udp, 0x2001, 0x1001, k2, k1, [2]string{"10.2.0.0/24", "10.1.0.0/24"}, extra...)
				// Everything but ARP: an ICMP packet in clear would show.
				capture := l.GWB.StartCapture(t, "gwb1", "not arp", filepath.Join(t.TempDir(), "outer.pcap"))
				ping(t, l.HA, "10.2.0.10")
				count := func(text, what string) int { return strings.Count(text, "Type: "+what) }
				prefs := []string{"-o", "esp.enable_encryption_decode:TRUE", "-o", espSA(suite, "192.0.2.1", "192.0.2.2", 0x1001, k1),
					"-o", espSA(suite, "192.0.2.2", "192.0.2.1", 0x2001, k2)}
				text := capture.Until(t, 10*time.Second, "two pings and two answers", func(text string) bool {
					return count(text, "8 (Echo (ping) request)") >= 2 && count(text, "0 (Echo (ping) reply)") >= 2
				}, prefs...)
				if in, err := pcap.CountICMP(capture.File, prefs); err != nil || in.Clear != 0 {
					t.Fatalf("ICMP in clear on the wire: %+v (%v)", in, err)
				}
				// Everything captured must decode: one inner ICMP packet per
				// ESP frame.
				frames := strings.Count(text, "\nEncapsulating Security Payload\n")
				requests := strings.Count(text, "Type: 8 (Echo (ping) request)")
				replies := strings.Count(text, "Type: 0 (Echo (ping) reply)")
				if requests < 2 || replies < 2 || requests+replies != frames || strings.Contains(text, "Malformed") || !strings.Contains(text, "Src: 10.1.0.10, Dst: 10.2.0.10") {
					t.Fatalf("tshark: %d ESP frames, %d requests and %d replies decoded:\n%s", frames, requests, replies, netns.Tail(text, 4000))
				}
				if udp && !strings.Contains(text, "UDP Encapsulation of IPsec Packets") {
					t.Fatalf("not decoded as RFC 3948 UDP encapsulation:\n%s", netns.Tail(text, 3000))
				}
			})
		}
	}
}

// AH (RFC 4302) in tunnel and transport mode, through the raw protocol 51
// socket and the IP_HDRINCL sender.
func TestAH(t *testing.T) {
	for _, mode := range []string{"tunnel", "transport"} {
		t.Run(mode, func(t *testing.T) {
			l := newLab(t)
			k1, k2 := key(t, "ah-sha256"), key(t, "ah-sha256")
			nets := [2]string{"10.1.0.0/24", "10.2.0.0/24"}
			a := start(t, l.GWA, "192.0.2.1", "192.0.2.2", mode, "ah-sha256", false, 0x5001, 0x6001, k1, k2, nets)
			start(t, l.GWB, "192.0.2.2", "192.0.2.1", mode, "ah-sha256", false, 0x6001, 0x5001, k2, k1, [2]string{nets[1], nets[0]})
			if mode == "tunnel" {
				ping(t, l.HA, "10.2.0.10")
			} else {
				ping(t, l.GWA, "192.0.2.2")
			}
			if sa := netns.Flat(a.CLI(t, "sa")); !strings.Contains(sa, mode+" AH ah-sha256") || !strings.Contains(sa, "Drops: none") {
				t.Fatalf("gatehouse sa:\n%s", sa)
			}
		})
	}
}

// Cleartext from NetB's range sent straight to gateway A (not through ESP)
// must be dropped there: the policy says that traffic is protected.
func TestCleartextBypassIsDropped(t *testing.T) {
	l := newLab(t)
	k1, k2 := key(t, "aes128-sha1"), key(t, "aes128-sha1")
	nets := [2]string{"10.1.0.0/24", "10.2.0.0/24"}
	start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", "aes128-sha1", false, 0x1001, 0x2001, k1, k2, nets)
	start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", "aes128-sha1", false, 0x2001, 0x1001, k2, k1, [2]string{nets[1], nets[0]})
	ping(t, l.HA, "10.2.0.10") // the tunnel works
	// On B, a main-table route to NetA; packets with our mark use the main
	// table, so this ping leaves B in clear, from B's inside address.
	if err := l.GWB.IP("route", "add", "10.1.0.0/24", "via", "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if out, err := l.GWB.Output(10*time.Second, "ping", "-m", "18248" /* 0x4748, decimal for ping */, "-I", "10.2.0.1", "-c", "2", "-W", "1", "10.1.0.10"); err == nil {
		t.Fatalf("cleartext crossed gateway A:\n%s", out)
	}
	out, err := l.GWA.Output(10*time.Second, "nft", "list", "table", "inet", "gatehouse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(netns.Flat(out), `ip saddr 10.2.0.0/24 ip daddr 10.1.0.0/24 counter packets 2`) {
		t.Fatalf("the drop rule did not count the cleartext:\n%s", out)
	}
}

// A hard packet lifetime removes the SA: traffic stops with a counted
// reason, and the log says why. ESN is on to exercise it end to end.
func TestHardLifetimeRemovesSA(t *testing.T) {
	l := newLab(t)
	k1, k2 := key(t, "aes256-sha256"), key(t, "aes256-sha256")
	nets := [2]string{"10.1.0.0/24", "10.2.0.0/24"}
	opts := []string{"    esn: true\n", "    lifetime_packets: 4\n"}
	a := start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", "aes256-sha256", false, 0x1001, 0x2001, k1, k2, nets, opts...)
	start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", "aes256-sha256", false, 0x2001, 0x1001, k2, k1, [2]string{nets[1], nets[0]}, opts...)
	// Three packets each way, under the limit (ping's first probe would
	// make it four).
	if out, err := l.HA.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.2.0.10"); err != nil || !strings.Contains(out, " 3 received") {
		t.Fatalf("three pings under the packet limit: %v\n%s", err, out)
	}
	if sa := netns.Flat(a.CLI(t, "sa")); !strings.Contains(sa, "esn") {
		t.Fatalf("ESN not shown:\n%s", sa)
	}
	l.HA.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.2.0.10")
	await.State(t, 5*time.Second, "the SA removed after its hard lifetime", func() (bool, string) {
		sa := netns.Flat(a.CLI(t, "sa"))
		return !strings.Contains(sa, "lab out"), sa
	})
	if !strings.Contains(a.Proc.Output(), "hard lifetime reached") {
		t.Fatalf("removal not logged:\n%s", a.Proc.Output())
	}
	if out, err := l.HA.Output(10*time.Second, "ping", "-c", "1", "-W", "1", "10.2.0.10"); err == nil {
		t.Fatalf("traffic passed after the SA was removed:\n%s", out)
	}
	if sa := netns.Flat(a.CLI(t, "sa")); !strings.Contains(sa, "no-sa=") {
		t.Fatalf("dropped traffic not counted:\n%s", sa)
	}
}

// tunCounters reads "TUN: P packets in R reads, W packets in N writes".
func tunCounters(t *testing.T, g *gw) (packets, reads, written, writes int, sa string) {
	t.Helper()
	sa = g.CLI(t, "sa")
	for _, line := range strings.Split(sa, "\n") {
		if strings.HasPrefix(line, "TUN:") {
			fmt.Sscanf(line, "TUN: %d packets in %d reads, %d packets in %d writes", &packets, &reads, &written, &writes)
		}
	}
	return
}

// With dataplane.tun_segmentation (the default) the kernel hands the TUN TCP
// super-packets (TSO), which must be cut up correctly and sealed; on the
// far side decrypted segments are joined again (GRO) before the TUN write.
// Both must carry iperf3 intact, raw and UDP-encapsulated.
func TestTUNOffloadBothWays(t *testing.T) {
	for _, udp := range []bool{false, true} {
		t.Run(fmt.Sprintf("udp=%v", udp), func(t *testing.T) {
			l := newLab(t)
			k1, k2 := key(t, "aes128-sha1"), key(t, "aes128-sha1")
			nets := [2]string{"10.1.0.0/24", "10.2.0.0/24"}
			a := start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", "aes128-sha1", udp, 0x1001, 0x2001, k1, k2, nets)
			b := start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", "aes128-sha1", udp, 0x2001, 0x1001, k2, k1, [2]string{nets[1], nets[0]})
			ping(t, l.HA, "10.2.0.10")
			t.Logf("offload udp=%v: iperf3 %.0f Mbit/s", udp, iperf(t, l.HB, l.HA, "10.2.0.10"))
			packets, reads, _, _, sa := tunCounters(t, a)
			if reads == 0 || packets < 2*reads || !strings.Contains(netns.Flat(sa), "Drops: none") {
				t.Fatalf("sender: no super-packets read (%d packets in %d reads), or drops:\n%s", packets, reads, sa)
			}
			_, _, written, writes, sa := tunCounters(t, b)
			if writes == 0 || written < 2*writes || !strings.Contains(netns.Flat(sa), "Drops: none") {
				t.Fatalf("receiver: segments not joined (%d packets in %d writes), or drops:\n%s", written, writes, sa)
			}
		})
	}
}

// dataplane.tun_segmentation: false keeps the portable water TUN: one packet per
// read and per write, and still a working tunnel.
func TestPlainTUN(t *testing.T) {
	topLevel = "dataplane: {tun_segmentation: false}\n"
	defer func() { topLevel = "" }()
	l := newLab(t)
	k1, k2 := key(t, "aes128-sha1"), key(t, "aes128-sha1")
	nets := [2]string{"10.1.0.0/24", "10.2.0.0/24"}
	a := start(t, l.GWA, "192.0.2.1", "192.0.2.2", "tunnel", "aes128-sha1", true, 0x1001, 0x2001, k1, k2, nets)
	b := start(t, l.GWB, "192.0.2.2", "192.0.2.1", "tunnel", "aes128-sha1", true, 0x2001, 0x1001, k2, k1, [2]string{nets[1], nets[0]})
	ping(t, l.HA, "10.2.0.10")
	t.Logf("plain TUN: iperf3 %.0f Mbit/s", iperf(t, l.HB, l.HA, "10.2.0.10"))
	for _, g := range []*gw{a, b} {
		packets, reads, written, writes, sa := tunCounters(t, g)
		if reads == 0 || packets != reads || written != writes || !strings.Contains(netns.Flat(sa), "Drops: none") {
			t.Fatalf("%s: want one packet per TUN read and write, got %d/%d and %d/%d:\n%s", g.NS.Name, packets, reads, written, writes, sa)
		}
	}
}

// Transport mode between IPv6 addresses (RFC 4303 section 3.1.1: ESP
// after the fixed header), raw ESP and in UDP 4500: ping6 and iperf3
// between the gateways themselves. The cleartext rules let neighbour
// discovery through: the first run of this test found the peers'
// neighbour advertisements dropped, and no ESP could leave.
func TestTransportModeIPv6(t *testing.T) {
	for _, udp := range []bool{false, true} {
		t.Run(fmt.Sprintf("udp=%v", udp), func(t *testing.T) {
			l := newLab(t)
			if err := l.OuterIPv6(); err != nil {
				t.Fatal(err)
			}
			k1, k2 := key(t, "aes256-sha256"), key(t, "aes256-sha256")
			a := start(t, l.GWA, "2001:db8:12::1", "2001:db8:12::2", "transport", "aes256-sha256", udp, 0x5001, 0x6001, k1, k2, [2]string{})
			start(t, l.GWB, "2001:db8:12::2", "2001:db8:12::1", "transport", "aes256-sha256", udp, 0x6001, 0x5001, k2, k1, [2]string{})
			ping(t, l.GWA, "2001:db8:12::2")
			mode := "transport"
			if udp {
				mode = "transport/udp"
			}
			if sa := netns.Flat(a.CLI(t, "sa")); !strings.Contains(sa, mode+" ESP aes256-sha256") || !strings.Contains(sa, "2001:db8:12::2") {
				t.Fatalf("gatehouse sa:\n%s", sa)
			}
			t.Logf("transport mode over IPv6, udp=%v: iperf3 %.0f Mbit/s", udp, iperf(t, l.GWB, l.GWA, "2001:db8:12::2"))
		})
	}
}
