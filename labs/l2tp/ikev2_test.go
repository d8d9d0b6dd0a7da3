package l2tp

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
)

// roadWarrior is strongSwan's swanctl.conf for an IKEv2 road warrior
// against the server (192.0.2.1): a virtual address asked for, the
// server's certificate checked against the lab CA, the user logging in
// by EAP-MSCHAPv2, a child to the inside network.
func roadWarrior(ca, user, password string) string {
	return rwConf(ca, "auth = eap-mschapv2\n eap_id = "+user, fmt.Sprintf("eap-u { id = %s\n secret = %q }", user, password))
}

// rwConf is roadWarrior with the local side's authentication and the
// secrets given.
func rwConf(ca, local, secrets string) string {
	return fmt.Sprintf(`connections {
  rw {
    version = 2
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes256-sha256-ecp256
    encap = yes
    local { %[2]s }
    remote { auth = pubkey
             id = %%any
             cacerts = %[1]s }
    children { net { remote_ts = 10.1.0.0/24
                     esp_proposals = aes256gcm16 } }
  }
}
secrets { %[3]s }
`, ca, local, secrets)
}

// TestIKEv2RoadWarriorBesideL2TP: gatehoused answers IKEv2 road warriors
// (remote_access.ikev2) from the pool and users file L2TP/IPsec uses.
// Behind one NAT, four strongSwan road warriors log in by EAP-MSCHAPv2,
// checking the server's RSA certificate, while two `gatehouse connect
// l2tp` clients dial in: all six get distinct addresses and ping a host
// inside, one road warrior runs iperf3 to it, and `gatehouse sessions`
// lists all six with their protocols. `gatehouse disconnect alice` ends
// one road warrior's IKE SA (strongSwan is told) and gives its address
// back; the others stay connected.
func TestIKEv2RoadWarriorBesideL2TP(t *testing.T) {
	x := newLab(t)
	cs := x.behindNAT(6)
	pki := x.serveV2("rsa", "ikev2: {inside: [10.1.0.0/24]}", "{psk_file: "+x.dir+"/l2tp.psk}")

	// alice logs in twice, from c1 and c2 (a laptop and a phone).
	rws := []struct{ user, password string }{{"alice", "correct horse"}, {"alice", "correct horse"}, {"carol", "c4rol!"}, {"dave", "d4ve!"}}
	swans := make([]*netns.StrongSwan, len(rws))
	addrs := map[string]string{}
	for i, rw := range rws {
		swans[i] = netns.StrongSwanForTest(t, cs[i], nil, roadWarrior(pki.Path("ca.pem"), rw.user, rw.password))
		a := initiate(t, swans[i])
		if who, taken := addrs[a]; taken {
			t.Fatalf("%s and %s both hold %s", who, cs[i].Name, a)
		}
		addrs[a] = cs[i].Name
	}
	netns.Lacks(t, swans[0].Log(), "EAP method EAP_MSCHAPV2 succeeded, MSK established", "authentication of 'O=Gatehouse, CN=vpn' with EAP successful")
	var l2tps []*client
	for i, u := range []struct{ user, password string }{{"bob", "battery staple"}, {"carol", "c4rol!"}} {
		c := x.dial(cs[4+i], u.user, u.password)
		if who, taken := addrs[c.addr]; taken {
			t.Fatalf("%s (L2TP) got %s, which %s holds", u.user, c.addr, who)
		}
		addrs[c.addr] = cs[4+i].Name
		l2tps = append(l2tps, c)
	}
	for _, c := range cs {
		ping(t, c, "10.1.0.10")
	}
	mbps, err := netns.Iperf(x.in, cs[2], "10.1.0.10", 3*time.Second)
	if err != nil || mbps < 10 {
		t.Fatalf("iperf3 through IKEv2: %.0f Mbit/s, %v", mbps, err)
	}
	t.Logf("iperf3 from an IKEv2 road warrior behind the NAT: %.0f Mbit/s", mbps)
	sessions := netns.Flat(x.gw.CLI(t, "sessions"))
	for _, want := range []string{"carol ikev2 ", "dave ikev2 ", "bob l2tp " + l2tps[0].addr + " 192.0.2.2:", "carol l2tp " + l2tps[1].addr,
		"6 sessions", "6 of 253 addresses in use"} {
		if !strings.Contains(sessions, want) {
			t.Fatalf("gatehouse sessions lacks %q:\n%s", want, x.gw.CLI(t, "sessions"))
		}
	}
	if n := strings.Count(sessions, "alice ikev2 "); n != 2 {
		t.Fatalf("alice's two IKEv2 sessions: %d listed\n%s", n, x.gw.CLI(t, "sessions"))
	}
	if sa := x.gw.CLI(t, "sa"); !strings.Contains(sa, "remote-access-ikev2") {
		t.Errorf("gatehouse sa does not show the road warriors' SAs:\n%s", sa)
	}

	if out := x.gw.CLI(t, "disconnect", "alice"); strings.Count(out, "disconnected alice (") != 2 {
		t.Fatalf("gatehouse disconnect alice: %s", out)
	}
	for _, sw := range swans[:2] {
		if !sw.WaitLog(10*time.Second, "received DELETE for IKE_SA rw") {
			t.Errorf("strongSwan was not told its IKE SA ended:\n%s", netns.Tail(sw.Log(), 3000))
		}
	}
	if !x.waitLog("user-disconnected", `"protocol": "ikev2"`, "disconnected by the operator") {
		t.Errorf("no audit record of alice's end:\n%s", x.gw.Proc.Output())
	}
	await.State(t, 10*time.Second, "alice's addresses back, the others still connected", func() (bool, string) {
		s := netns.Flat(x.gw.CLI(t, "sessions"))
		return strings.Contains(s, "4 of 253 addresses in use") && !strings.Contains(s, "alice"), s
	})
	for _, c := range cs[2:] {
		ping(t, c, "10.1.0.10")
	}
	for _, c := range l2tps {
		c.hangUp(t)
	}
}

// serveV2 starts the server answering IKEv2 road warriors (ikev2, the
// remote_access.ikev2 line) with a certificate for 192.0.2.1 of a key of
// kind, first in remote_access.auth, then the rest of auth.
func (x *lab) serveV2(kind, ikev2 string, auth ...string) *netns.PKI {
	pki := netns.NewPKI(x.t, bin)
	pki.Issue("vpn", kind, "--ip", "192.0.2.1")
	x.auth = "[" + strings.Join(append([]string{pki.AuthEntry("vpn")}, auth...), ", ") + "]"
	x.serve("mschapv2", ikev2)
	return pki
}

// refused starts strongSwan in ns with conf (and files) and checks that
// the server refuses it, saying so in a log line with every part.
func (x *lab) refused(ns *netns.NS, files map[string]string, conf string, parts ...string) {
	x.t.Helper()
	sw := netns.StrongSwanForTest(x.t, ns, files, conf)
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err == nil {
		x.t.Fatalf("the server took it:\n%s", out)
	}
	if !x.waitLog(parts...) {
		x.t.Errorf("the server did not log %q:\n%s", parts, netns.Tail(x.gw.Proc.Output(), 3000))
	}
}

// moveClient changes the direct client's address (192.0.2.10 taken
// away, 192.0.2.11 given) and waits until the server's log says, in one
// line holding every part of moved, that it followed.
func (x *lab) moveClient(cli *netns.NS, moved ...string) {
	t := x.t
	t.Helper()
	// The new address outlives the old one's removal only if secondaries
	// are promoted.
	if out, err := cli.Output(5*time.Second, "sysctl", "-q", "-w", "net.ipv4.conf."+x.cliOuter+".promote_secondaries=1"); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	must(t, cli.IP("addr", "add", "192.0.2.11/24", "dev", x.cliOuter))
	must(t, cli.IP("addr", "del", "192.0.2.10/24", "dev", x.cliOuter))
	if !x.waitLog(moved...) {
		t.Fatalf("the server did not follow the client:\n%s", netns.Tail(x.gw.Proc.Output(), 3000))
	}
}

// initiate brings strongSwan's road warrior up and returns the virtual
// address it installed.
func initiate(t *testing.T, sw *netns.StrongSwan) string {
	t.Helper()
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`installing new virtual IP (10\.8\.0\.\d+)`).FindStringSubmatch(sw.Log())
	if m == nil {
		t.Fatalf("strongSwan got no virtual address:\n%s", netns.Tail(sw.Log(), 4000))
	}
	return m[1]
}

// TestIKEv2RADIUS: users kept in FreeRADIUS log in over IKEv2 by
// EAP-MSCHAPv2: gatehoused checks the MS-CHAPv2 response with RADIUS and
// keys the MSK with the MS-MPPE keys of the Access-Accept. erin gets her
// Framed-IP-Address, pings, and her session's accounting Start and Stop
// reach FreeRADIUS; henry's Session-Timeout of 4 s ends his IKE SA.
func TestIKEv2RADIUS(t *testing.T) {
	x := newLab(t)
	fr := x.withRADIUS()
	cli := x.direct("cli")
	pki := x.serveV2("ecdsa", "ikev2: {inside: [10.1.0.0/24]}")

	sw := netns.StrongSwanForTest(t, cli, nil, roadWarrior(pki.Path("ca.pem"), "erin", "erin-pass"))
	if addr := initiate(t, sw); addr != "10.8.0.77" {
		t.Fatalf("erin got %s, want her Framed-IP-Address 10.8.0.77", addr)
	}
	ping(t, cli, "10.1.0.10")
	if out, err := sw.Swanctl(20*time.Second, "--terminate", "--ike", "rw"); err != nil {
		t.Fatalf("swanctl --terminate: %v\n%s", err, out)
	}
	if !fr.WaitDetail(15*time.Second, "Acct-Status-Type = Stop") {
		t.Fatalf("no Stop record:\n%s", fr.Detail())
	}
	d := fr.Detail()
	for _, want := range []string{"Acct-Status-Type = Start", `User-Name = "erin"`, "Framed-IP-Address = 10.8.0.77", "Acct-Terminate-Cause = User-Request"} {
		if !strings.Contains(d, want) {
			t.Errorf("the detail file lacks %q:\n%s", want, d)
		}
	}
	sw.Stop(false)

	sw = netns.StrongSwanForTest(t, cli, nil, roadWarrior(pki.Path("ca.pem"), "henry", "henry-pass"))
	initiate(t, sw)
	if !x.waitLog("user-disconnected", "henry", "Session-Timeout 4s from RADIUS") {
		t.Fatalf("henry's session did not end at its Session-Timeout:\n%s", x.gw.Proc.Output())
	}
	if !sw.WaitLog(10*time.Second, "received DELETE for IKE_SA rw") {
		t.Errorf("strongSwan was not told:\n%s", netns.Tail(sw.Log(), 3000))
	}
}

// TestIKEv2PSKRoadWarrior: remote_access.ikev2 with eap: none takes
// clients that prove themselves by the preshared key, as Android's
// "IKEv2/IPSec PSK" does; the session is named by the client's identity.
func TestIKEv2PSKRoadWarrior(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.serve("mschapv2", "ikev2: {eap: none, inside: [10.1.0.0/24]}")
	sw := netns.StrongSwanForTest(t, cli, nil, fmt.Sprintf(`connections {
  rw {
    version = 2
    remote_addrs = 192.0.2.1
    vips = 0.0.0.0
    proposals = aes256-sha256-modp2048
    encap = yes
    local { auth = psk
            id = phone.example.net }
    remote { auth = psk
             id = %%any }
    children { net { remote_ts = 10.1.0.0/24
                     esp_proposals = aes256-sha256 } }
  }
}
secrets { ike-rw { secret = %q } }
`, psk))
	addr := initiate(t, sw)
	ping(t, cli, "10.1.0.10")
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "fqdn:phone.example.net ikev2 "+addr+" 192.0.2.10:4500") {
		t.Fatalf("gatehouse sessions:\n%s", x.gw.CLI(t, "sessions"))
	}
}

// TestIKEv2MOBIKE: a road warrior whose address changes mid-iperf3 (Wi-Fi
// to mobile data: 192.0.2.10 taken away, 192.0.2.11 given) tells the
// server with UPDATE_SA_ADDRESSES (RFC 4555); gatehoused moves its IKE SA
// and its ESP SAs there, keys and counters kept, and iperf3 goes on
// through the same child.
func TestIKEv2MOBIKE(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	pki := x.serveV2("ecdsa", "ikev2: {inside: [10.1.0.0/24]}")
	sw := netns.StrongSwanForTest(t, cli, nil, roadWarrior(pki.Path("ca.pem"), "alice", "correct horse"))
	initiate(t, sw)
	ping(t, cli, "10.1.0.10")
	spis := regexp.MustCompile(`in 0x[0-9a-f]+ out 0x[0-9a-f]+`).FindString(x.gw.Proc.Output())
	type run struct {
		r   netns.IperfResult
		err error
	}
	done := make(chan run, 1)
	go func() {
		r, err := netns.IperfRun(x.in, cli, "10.1.0.10", "", 10*time.Second)
		done <- run{r, err}
	}()
	time.Sleep(4 * time.Second)
	x.moveClient(cli, "alice moved from 192.0.2.10:4500 to 192.0.2.11:4500 (MOBIKE)")
	res := <-done
	if res.err != nil {
		t.Fatalf("iperf3 across the move: %v", res.err)
	}
	in := res.r.Intervals
	if len(in) < 10 || in[len(in)-1] < 1 || in[len(in)-2] < 1 {
		t.Fatalf("iperf3 did not go on after the move: %.1f Mbit/s, per second %.1f", res.r.Mbps, in)
	}
	t.Logf("iperf3 across the move: %.0f Mbit/s, per second %.0f", res.r.Mbps, in)
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "192.0.2.11:4500") {
		t.Fatalf("gatehouse sessions does not show the new address:\n%s", s)
	}
	if strings.Count(x.gw.Proc.Output(), "IPsec SA with remote-access-ikev2 up") != 1 || !strings.Contains(x.gw.Proc.Output(), spis) {
		t.Errorf("the child was renegotiated, not moved:\n%s", x.gw.Proc.Output())
	}
}

// dialV2 runs `gatehouse connect ikev2` in ns against the lab's server
// with args after the common ones.
func (x *lab) dialV2(ns *netns.NS, args ...string) (*client, string, error) {
	return x.run(ns, append([]string{"connect", "ikev2", "--server", "192.0.2.1", "--setup-timeout", "20s", "-v"}, args...))
}

// TestConnectIKEv2: `gatehouse connect ikev2` against gatehoused with
// the interop plugins loaded: alice logs in by EAP-MSCHAPv2 with the
// default offers and with the apple, android and windows-dh2048
// profiles, gets an address and the server's inside network as a route,
// pings through, and shows in gatehouse sessions, and in gatehouse sa
// with the family its plugin named (none for the default offers);
// Windows's default offer (MODP1024 only) is refused, exit status 4,
// with the server naming the registry value and the options that would
// let it in; a wrong password is exit status 5; after a reload, a machine with the preshared key alone comes in by
// its address, and one with a certificate alone by its certificate's
// name.
func TestConnectIKEv2(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.load = interopPlugins(false)
	pki := x.serveV2("ecdsa", "ikev2: {inside: [10.1.0.0/24]}", "{psk_file: "+x.dir+"/l2tp.psk}")
	pw := filepath.Join(x.dir, "alice-v2.password")
	must(t, os.WriteFile(pw, []byte("correct horse\n"), 0o600))
	eap := []string{"--ca", pki.Path("ca.pem"), "--user", "alice", "--password-file", pw}
	for _, profile := range []string{"", "apple", "android", "windows-dh2048"} {
		args := eap
		if profile != "" {
			args = append(append([]string(nil), eap...), "--profile", profile)
		}
		c, out, err := x.dialV2(cli, args...)
		if err != nil {
			t.Fatalf("profile %q: %v\n%s", profile, err, out)
		}
		if !strings.Contains(out, "routes [10.1.0.0/24]") {
			t.Errorf("profile %q: the route from the traffic selectors is missing:\n%s", profile, out)
		}
		ping(t, cli, "10.1.0.10")
		if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "alice ikev2 "+c.addr+" 192.0.2.10") {
			t.Fatalf("gatehouse sessions:\n%s", s)
		}
		// Windows is known by its vendor ID, Apple and Android by
		// their offers.
		want := map[string]string{"": "/", "apple": "apple/interop-apple", "android": "android/interop-android",
			"windows-dh2048": "windows/interop-windows"}[profile]
		if f := x.saFamilies(); len(f) != 1 || f[0] != want {
			t.Errorf("profile %q: families %v, want %s; gatehouse sa:\n%s", profile, f, want, x.gw.CLI(t, "sa"))
		}
		// Windows asks for its routes by DHCPINFORM through the tunnel.
		if profile == "windows-dh2048" && !c.proc.WaitLine(10*time.Second, "routes from DHCP", `"routes": ["10.1.0.0/24"]`, `"server": "10.1.0.53"`) {
			t.Errorf("no DHCP answer:\n%s", c.proc.Output())
		}
		if bye := c.hangUp(t); !strings.Contains(bye, "disconnected:") {
			t.Fatalf("profile %q at the end:\n%s", profile, bye)
		}
		await.State(t, 10*time.Second, "the address back", func() (bool, string) {
			s := netns.Flat(x.gw.CLI(t, "sessions"))
			return strings.Contains(s, "0 of 253 addresses in use"), s
		})
	}
	// A reload keeps the road warriors' peer with its pool and users.
	if out := x.gw.CLI(t, "reload"); !strings.Contains(strings.ToLower(out), "reload") {
		t.Logf("gatehouse reload: %s", out)
	}
	_, out, err := x.dialV2(cli, append(append([]string(nil), eap...), "--profile", "windows")...)
	if exitCode(err) != 4 || !strings.Contains(out, "NO_PROPOSAL_CHOSEN") {
		t.Fatalf("Windows's default offer: exit %v, want 4 and NO_PROPOSAL_CHOSEN:\n%s", err, out)
	}
	if !x.waitLog(`"reason": "no-proposal-chosen"`, "NegotiateDH2048_AES256", "give interop-windows the option allow_legacy: true") {
		t.Errorf("the refusal of Windows's default offer does not say what would let it in:\n%s", netns.Tail(x.gw.Proc.Output(), 3000))
	}
	must(t, os.WriteFile(pw, []byte("wrong\n"), 0o600))
	_, out, err = x.dialV2(cli, eap...)
	if exitCode(err) != 5 {
		t.Fatalf("a wrong password: exit %v, want 5:\n%s", err, out)
	}
	c, out, err := x.dialV2(cli, "--psk-file", filepath.Join(x.dir, "l2tp.psk"), "--profile", "android")
	if err != nil {
		t.Fatalf("by preshared key: %v\n%s", err, out)
	}
	ping(t, cli, "10.1.0.10")
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "ipv4:192.0.2.10 ikev2 "+c.addr) {
		t.Fatalf("gatehouse sessions:\n%s", s)
	}
	c.hangUp(t)
	// A machine certificate alone (Android's "IKEv2/IPSec RSA" type).
	pki.Issue("laptop", "ecdsa")
	c, out, err = x.dialV2(cli, "--cert", pki.Path("laptop.pem"), "--key", pki.Path("laptop.key"), "--ca", pki.Path("ca.pem"))
	if err != nil {
		t.Fatalf("by certificate: %v\n%s", err, out)
	}
	ping(t, cli, "10.1.0.10")
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "laptop") || !strings.Contains(s, "ikev2 "+c.addr) {
		t.Fatalf("gatehouse sessions:\n%s", s)
	}
	c.hangUp(t)
}

// TestIKEv2EAPTLS: remote_access.ikev2.eap: tls. A strongSwan road
// warrior logs in with carol's user certificate through EAP-TLS: the
// server runs TLS with its certificate, whose key stays in the x509
// plugin, names the session after the certificate, and both AUTHs come
// from the TLS-exported key. dave's revoked certificate is refused.
func TestIKEv2EAPTLS(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	pki := netns.NewPKI(t, bin)
	pki.Issue("vpn", "rsa", "--ip", "192.0.2.1")
	pki.Issue("carol", "ecdsa")
	pki.Issue("dave", "ecdsa")
	crl := pki.Revoke("dave")
	x.auth = "[" + pki.AuthEntry("vpn", crl) + "]"
	x.serve("mschapv2", "ikev2: {eap: tls, inside: [10.1.0.0/24]}")
	conf := func(user string) string {
		return rwConf(pki.Path("ca.pem"), "auth = eap-tls\n certs = "+pki.Path(user+".pem"), "")
	}
	sw := netns.StrongSwanForTest(t, cli, map[string]string{"private/carol.key": pki.Path("carol.key")}, conf("carol"))
	addr := initiate(t, sw)
	netns.Lacks(t, sw.Log(), "EAP method EAP_TLS succeeded, MSK established", "authentication of 'O=Gatehouse, CN=vpn' with EAP successful")
	ping(t, cli, "10.1.0.10")
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "carol ikev2 "+addr) {
		t.Fatalf("gatehouse sessions:\n%s", s)
	}
	sw.Stop(false)
	x.refused(cli, map[string]string{"private/dave.key": pki.Path("dave.key")}, conf("dave"), "IKE_AUTH", "authentication-failed", "revoked")
}

// TestIKEv2EAPRelayedToRADIUS: remote_access.ikev2.eap: radius relays the
// road warrior's EAP whole to FreeRADIUS (RFC 3579), which runs
// EAP-MSCHAPv2 itself; the MSK comes from the MS-MPPE keys of its
// Access-Accept. erin gets her Framed-IP-Address and pings; a wrong
// password is refused with an audit record.
func TestIKEv2EAPRelayedToRADIUS(t *testing.T) {
	x := newLab(t)
	fr := x.withRADIUSOptions(netns.FreeRADIUSOptions{EAP: true})
	cli := x.direct("cli")
	pki := x.serveV2("ecdsa", "ikev2: {eap: radius, inside: [10.1.0.0/24]}")
	sw := netns.StrongSwanForTest(t, cli, nil, roadWarrior(pki.Path("ca.pem"), "erin", "erin-pass"))
	if addr := initiate(t, sw); addr != "10.8.0.77" {
		t.Fatalf("erin got %s, want her Framed-IP-Address 10.8.0.77", addr)
	}
	ping(t, cli, "10.1.0.10")
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "erin ikev2 10.8.0.77") {
		t.Fatalf("gatehouse sessions:\n%s", s)
	}
	if !strings.Contains(fr.Output(), "Login OK: [erin]") || !x.waitLog("user accepted by RADIUS", "erin", `"method": "eap"`) {
		t.Errorf("FreeRADIUS did not take erin by EAP:\n%s\n%s", netns.Tail(fr.Output(), 3000), netns.Tail(x.gw.Proc.Output(), 3000))
	}
	sw.Stop(false)
	x.refused(cli, nil, roadWarrior(pki.Path("ca.pem"), "frank", "not-franks"), "user-auth-failed", "frank", "eap-radius")
}

// TestConnectIKEv2Roams: `gatehouse connect ikev2` whose address changes
// mid-ping (192.0.2.10 taken away, 192.0.2.11 given) notices, tells the
// server with UPDATE_SA_ADDRESSES (MOBIKE) and sends its ESP from the new
// address; the server follows, and the pings go on through the same
// child.
func TestConnectIKEv2Roams(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	pki := x.serveV2("ecdsa", "ikev2: {inside: [10.1.0.0/24]}")
	pw := filepath.Join(x.dir, "alice-v2.password")
	must(t, os.WriteFile(pw, []byte("correct horse\n"), 0o600))
	c, out, err := x.dialV2(cli, "--ca", pki.Path("ca.pem"), "--user", "alice", "--password-file", pw)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ping(t, cli, "10.1.0.10")
	pinger, err := cli.Start("ping", "-c", "40", "-i", "0.25", "-W", "1", "10.1.0.10")
	must(t, err)
	time.Sleep(2 * time.Second)
	x.moveClient(cli, "alice moved from 192.0.2.10:", "to 192.0.2.11:", "(MOBIKE)")
	<-pinger.Done()
	m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(pinger.Output())
	n := 0
	if m != nil {
		n = atoi(m[1])
	}
	if n < 30 {
		t.Fatalf("%d of 40 pings across the move\n%s\nclient:\n%s", n, pinger.Output(), c.proc.Output())
	}
	t.Logf("pings across the client's move: %d received of 40", n)
	if !strings.Contains(c.proc.Output(), "our address changed") {
		t.Errorf("the client did not say it moved:\n%s", c.proc.Output())
	}
	if s := netns.Flat(x.gw.CLI(t, "sessions")); !strings.Contains(s, "alice ikev2 "+c.addr+" 192.0.2.11") {
		t.Fatalf("gatehouse sessions:\n%s", s)
	}
	c.hangUp(t)
}
