// Package ikev2 is the lab for IKEv2's exchanges against strongSwan in
// network namespaces: ike/ikev2's exchange drivers in testdata/v2dial, and
// its engine as a remote-access server in testdata/v2ra (until gatehoused
// serves IKEv2 road warriors). labs/site runs gatehoused's IKEv2 tunnels.
package ikev2

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
	"github.com/gatehouse/gatehouse/labs/netns"
	"github.com/gatehouse/gatehouse/labs/testbin"
)

var bin string

func TestMain(m *testing.M) {
	testbin.Main(m.Run, &bin, map[string]string{"./testdata/v2dial": "v2dial", "./testdata/v2ra": "v2ra", "../../cmd/gatehouse": "gatehouse"})
}

const psk = "lab-ikev2-preshared-key-0123456789"

func swanctl(ike, esp string) string {
	return fmt.Sprintf(`connections {
  gh {
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = %s
    encap = yes
    local { auth = psk
            id = gw-b.example.net }
    remote { auth = psk
             id = gw-a.example.net }
    children {
      net {
        local_ts = 10.2.0.0/24
        remote_ts = 10.1.0.0/24
        esp_proposals = %s
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-gh { id-a = gw-a.example.net
           id-b = gw-b.example.net
           secret = %q }
}
`, ike, esp, psk)
}

// keyFile writes the preshared key for v2dial.
func keyFile(t *testing.T) string {
	key := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(key, []byte(psk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// startSwan runs strongSwan in GWB with the connection for these suites;
// it stops with the test, and its log is shown if the test failed.
func startSwan(t *testing.T, l *netns.Sites, ike, esp string) *netns.StrongSwan {
	t.Helper()
	return netns.StrongSwanForTest(t, l.GWB, nil, swanctl(ike, esp))
}

// TestAgainstStrongSwan: our IKE_SA_INIT and IKE_AUTH bring up an IKE SA
// and a child SA with strongSwan as responder, for CBC and AEAD suites.
// strongSwan's encap = yes makes it claim a NAT, so IKE_AUTH moves to
// port 4500 as RFC 7296 section 2.23 says. Each side checks the other's
// AUTH; strongSwan lists the SAs with the SPIs and suites we agreed; and
// an echo sealed with our child keys reaches strongSwan, whose reply
// opens with ours: the child keys agree both ways. Then we rekey the
// child (CREATE_CHILD_SA with REKEY_SA, then the old child's delete) and
// ping through the new one, whose SPIs strongSwan lists.
func TestAgainstStrongSwan(t *testing.T) {
	l := netns.SitesForTest(t)
	key := keyFile(t)
	for _, c := range []struct{ ike, esp, swanIKE, swanESP string }{
		{"aes256-sha256-ecp256", "aes256-sha256", "aes256-sha256-ecp256", "aes256-sha256"},
		{"aes128gcm16-prfsha256-curve25519", "aes128gcm16", "aes128gcm16-prfsha256-curve25519", "aes128gcm16"},
		{"aes128-sha1-modp2048", "aes128-sha1", "aes128-sha1-modp2048", "aes128-sha1"},
	} {
		t.Run(c.ike, func(t *testing.T) {
			sw := startSwan(t, l, c.swanIKE, c.swanESP)
			// GWB answers the echo at its inner address, back through the child SA.
			out, err := l.GWA.Output(30*time.Second, filepath.Join(bin, "v2dial"), "--psk-file", key, "--ike", c.ike, "--esp", c.esp,
				"--ping", "10.2.0.1", "--rekey")
			if err != nil {
				t.Fatalf("v2dial: %v\n%s", err, out)
			}
			var r struct {
				IKE, ESP      string
				NAT           bool
				InSPI, OutSPI string
				TSi, TSr      []string
				Pinged        bool
				Children      int
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r.IKE != c.ike || r.ESP != c.esp || !r.NAT || !r.Pinged || r.Children != 2 || strings.Join(r.TSr, ",") != "10.2.0.0-10.2.0.255" {
				t.Fatalf("agreed: %+v", r)
			}
			sas, err := sw.Swanctl(10*time.Second, "--list-sas")
			if err != nil {
				t.Fatal(err)
			}
			flat := netns.Flat(sas)
			if log := sw.Log(); !strings.Contains(log, "CHILD_SA net{2} established") || !strings.Contains(log, "CHILD_SA closed") {
				t.Errorf("strongSwan did not take our rekey and the old child's delete")
			}
			for _, want := range []string{"gh: #", "ESTABLISHED, IKEv2", "gw-a.example.net", "net: #", "INSTALLED, TUNNEL",
				"in " + r.OutSPI, "out " + r.InSPI, "10.2.0.0/24", "10.1.0.0/24"} {
				if !strings.Contains(flat, want) {
					t.Errorf("swanctl --list-sas lacks %q:\n%s", want, sas)
				}
			}
		})
	}
}

// TestStrongSwanInitiates: strongSwan initiates (swanctl --initiate) and
// our responder answers IKE_SA_INIT on port 500 and IKE_AUTH on 4500
// (strongSwan fakes a NAT); it accepts strongSwan's AUTH, narrows nothing
// away, and answers pings from strongSwan's side through the child SA:
// ESP that opens with our keys, replies that open with strongSwan's.
// strongSwan then rekeys the child (swanctl --rekey: CREATE_CHILD_SA
// with REKEY_SA, then the old child's delete), and the pings that follow
// go through the new child.
func TestStrongSwanInitiates(t *testing.T) {
	l := netns.SitesForTest(t)
	key := keyFile(t)
	for _, c := range []struct{ ike, esp string }{
		{"aes256-sha256-ecp256", "aes256-sha256"},
		{"aes256gcm16-prfsha384-ecp384", "aes256gcm16"},
	} {
		t.Run(c.ike, func(t *testing.T) {
			sw := startSwan(t, l, c.ike, c.esp)
			p, err := l.GWA.Start(filepath.Join(bin, "v2dial"), "--respond", "--local", "192.0.2.1", "--id", "gw-a.example.net",
				"--peer-id", "gw-b.example.net", "--psk-file", key, "--ike", c.ike, "--esp", c.esp,
				"--local-ts", "10.1.0.0/24", "--remote-ts", "10.2.0.0/24", "--ping-from", "10.1.0.10", "--echoes", "6")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop(5 * time.Second)
			if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
				t.Fatalf("swanctl --initiate: %v\n%s\nv2dial: %s", err, out, p.Output())
			}
			ping := func(when string) {
				t.Helper()
				if out, err := l.HB.Output(20*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.1.0.10"); err != nil || !strings.Contains(out, " 3 received") {
					t.Fatalf("ping through the child SA %s: %v\n%s\nv2dial: %s", when, err, out, p.Output())
				}
			}
			ping("before the rekey")
			if out, err := sw.Swanctl(30*time.Second, "--rekey", "--child", "net"); err != nil {
				t.Fatalf("swanctl --rekey: %v\n%s", err, out)
			}
			// The rekey is done once strongSwan has deleted the old child.
			if !sw.WaitLog(10*time.Second, "CHILD_SA closed") || !strings.Contains(sw.Log(), "CHILD_SA net{2} established") {
				t.Fatalf("strongSwan did not finish the rekey:\n%s", netns.Tail(sw.Log(), 4000))
			}
			ping("after the rekey")
			select {
			case <-p.Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("v2dial did not finish:\n%s", p.Output())
			}
			var r struct {
				IKE, ESP      string
				InSPI, OutSPI string
				Pinged        bool
				Children      int
			}
			if err := json.Unmarshal([]byte(p.Output()), &r); err != nil || !r.Pinged || r.IKE != c.ike || r.ESP != c.esp || r.Children != 2 {
				t.Fatalf("v2dial: %v %+v\n%s", err, r, p.Output())
			}
			sas, _ := sw.Swanctl(10*time.Second, "--list-sas")
			if flat := netns.Flat(sas); !strings.Contains(flat, "ESTABLISHED, IKEv2") || !strings.Contains(flat, "in "+r.OutSPI) || !strings.Contains(flat, "out "+r.InSPI) {
				t.Fatalf("swanctl --list-sas:\n%s", sas)
			}
		})
	}
}

// rwResult is what v2ra says of the client that came up.
type rwResult struct{ User, Address, Local, Remote, Moved string }

// rwOpts: files are copied into charon's folder first (destination:
// source); after runs once strongSwan's tunnel is up.
type rwOpts struct {
	files map[string]string
	after func(*netns.Sites)
}

// roadWarrior runs v2ra in GWB with args and strongSwan in GWA with a
// road warrior connection rw (conf), starts it, and returns what v2ra
// saw and charon's log.
func roadWarrior(t *testing.T, args []string, conf string, o ...rwOpts) (rwResult, string) {
	t.Helper()
	return roadWarriorIn(t, netns.SitesForTest(t), args, conf, o...)
}

// roadWarriorIn is roadWarrior in a lab already made.
func roadWarriorIn(t *testing.T, l *netns.Sites, args []string, conf string, opts ...rwOpts) (rwResult, string) {
	t.Helper()
	var o rwOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	p, err := l.GWB.Start(filepath.Join(bin, "v2ra"), append([]string{"--local", "192.0.2.2"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(2 * time.Second)
	sw := netns.StrongSwanForTest(t, l.GWA, o.files, conf)
	// Stopped here too: a test may run several road warriors in one lab.
	defer sw.Stop(false)
	if out, err := sw.Swanctl(30*time.Second, "--initiate", "--child", "net"); err != nil {
		t.Fatalf("swanctl --initiate: %v\n%s\nv2ra: %s", err, out, p.Output())
	}
	if o.after != nil {
		o.after(l)
	}
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("v2ra did not finish:\n%s", p.Output())
	}
	var r rwResult
	if err := json.Unmarshal([]byte(p.Output()), &r); err != nil {
		t.Fatalf("v2ra: %v\n%s", err, p.Output())
	}
	return r, sw.Log()
}

// rwConf is strongSwan's road warrior rw against 192.0.2.2: a virtual
// address asked for, ESP in UDP, the child net to NetB, with its local
// and remote authentication and its secrets.
func rwConf(local, remote, secrets string) string {
	return fmt.Sprintf(`connections {
  rw {
    version = 2
    remote_addrs = 192.0.2.2
    vips = 0.0.0.0
    proposals = aes256-sha256-ecp256
    encap = yes
    local { %s }
    remote { %s }
    children { net { remote_ts = 10.2.0.0/24
                     esp_proposals = aes128gcm16 } }
  }
}
secrets { %s }
`, local, remote, secrets)
}

// TestRoadWarriorEAP: strongSwan as a road warrior (vips = 0.0.0.0,
// eap-mschapv2) against the engine as a remote-access server (v2ra): the
// server signs with its RSA certificate, the user logs in by
// EAP-MSCHAPv2, both AUTHs after EAP come from the MSK, and strongSwan
// installs the virtual address the configuration payload gave it, with a
// child to the inside network.
func TestRoadWarriorEAP(t *testing.T) {
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-b", "rsa", "--ip", "192.0.2.2")
	const password = "road-warrior-password-42"
	r, log := roadWarrior(t, []string{"--cert", pki.Path("gw-b.pem"), "--key", pki.Path("gw-b.key"), "--user", "alice", "--password", password},
		rwConf("auth = eap-mschapv2\n eap_id = alice", "auth = pubkey\n id = %any\n cacerts = "+pki.Path("ca.pem"),
			fmt.Sprintf("eap-alice { id = alice\n secret = %q }", password)))
	if r.User != "alice" || r.Address != "10.8.0.2" || r.Local != "10.2.0.0/24" || r.Remote != "10.8.0.2/32" {
		t.Fatalf("v2ra: %+v", r)
	}
	netns.Lacks(t, log, "EAP method EAP_MSCHAPV2 succeeded, MSK established",
		"authentication of 'O=Gatehouse, CN=gw-b' with RSA_EMSA_PKCS1_SHA2_256 successful",
		"authentication of 'O=Gatehouse, CN=gw-b' with EAP successful", "installing new virtual IP 10.8.0.2", "CHILD_SA net{1} established")
}

// TestRoadWarriorPSK: a strongSwan road warrior authenticating by
// preshared key both ways (Android's "IKEv2/IPSec PSK" type), no EAP: it
// asks for an address in IKE_AUTH, and the engine leases it for the
// identity the key proved.
func TestRoadWarriorPSK(t *testing.T) {
	r, log := roadWarrior(t, []string{"--psk", psk}, rwConf("auth = psk\n id = phone.example.net", "auth = psk\n id = %any",
		fmt.Sprintf("ike-rw { secret = %q }", psk)))
	if r.User != "fqdn:phone.example.net" || r.Remote != "10.8.0.2/32" || !strings.Contains(log, "installing new virtual IP 10.8.0.2") {
		t.Fatalf("v2ra: %+v", r)
	}
}

// TestRoadWarriorEAPRelayedToRADIUS: as TestRoadWarriorEAP, with the
// engine relaying EAP to FreeRADIUS (RFC 3579), which runs EAP-MSCHAPv2
// against its users file; the MSK comes back in the MS-MPPE keys and
// strongSwan verifies the AUTH made from it.
func TestRoadWarriorEAPRelayedToRADIUS(t *testing.T) {
	netns.RequireFreeRADIUS(t)
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-b", "ecdsa", "--ip", "192.0.2.2")
	const password = "radius-road-warrior-42"
	l := netns.SitesForTest(t)
	rad := netns.StartFreeRADIUS(t, l.GWB, "10.2.0.1", "lab-radius-secret", fmt.Sprintf("bob Cleartext-Password := %q\n", password),
		netns.FreeRADIUSOptions{EAP: true})
	r, log := roadWarriorIn(t, l, []string{"--cert", pki.Path("gw-b.pem"), "--key", pki.Path("gw-b.key"), "--radius", rad.AuthAddr,
		"--radius-secret", rad.Secret}, rwConf("auth = eap-mschapv2\n eap_id = bob", "auth = pubkey\n id = %any\n cacerts = "+pki.Path("ca.pem"),
		fmt.Sprintf("eap-bob { id = bob\n secret = %q }", password)))
	if r.User != "bob" || r.Remote != "10.8.0.2/32" {
		t.Fatalf("v2ra: %+v", r)
	}
	netns.Lacks(t, log, "EAP method EAP_MSCHAPV2 succeeded, MSK established", "authentication of 'O=Gatehouse, CN=gw-b' with EAP successful",
		"installing new virtual IP 10.8.0.2")
}

// TestRoadWarriorEAPTLS: a strongSwan road warrior logs in by EAP-TLS
// (RFC 5216) with a user certificate of the lab CA; the engine runs TLS
// itself (v2ra --eap-tls), knows the user by the certificate, and both
// AUTHs come from the TLS-exported MSK.
func TestRoadWarriorEAPTLS(t *testing.T) {
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-b", "ecdsa", "--ip", "192.0.2.2")
	pki.Issue("carol", "ecdsa")
	r, log := roadWarrior(t, []string{"--cert", pki.Path("gw-b.pem"), "--key", pki.Path("gw-b.key"), "--eap-tls", pki.Path("ca.pem")},
		rwConf("auth = eap-tls\n certs = "+pki.Path("carol.pem"), "auth = pubkey\n id = %any\n cacerts = "+pki.Path("ca.pem"), ""),
		rwOpts{files: map[string]string{"private/carol.key": pki.Path("carol.key")}})
	if r.User != "carol" || r.Remote != "10.8.0.2/32" {
		t.Fatalf("v2ra: %+v", r)
	}
	netns.Lacks(t, log, "EAP method EAP_TLS succeeded, MSK established", "authentication of 'O=Gatehouse, CN=gw-b' with EAP successful",
		"installing new virtual IP 10.8.0.2")
}

// TestRoadWarriorMOBIKE: a strongSwan road warrior whose address changes
// (192.0.2.1 taken away, 192.0.2.5 given) tells the engine with
// UPDATE_SA_ADDRESSES (RFC 4555), and its IKE SA follows it there.
func TestRoadWarriorMOBIKE(t *testing.T) {
	r, log := roadWarrior(t, []string{"--psk", psk, "--wait-move"}, rwConf("auth = psk\n id = laptop.example.net", "auth = psk\n id = %any",
		fmt.Sprintf("ike-rw { secret = %q }", psk)), rwOpts{after: func(l *netns.Sites) {
		// The new address outlives the old one's removal only if
		// secondaries are promoted.
		_, err := l.GWA.Output(5*time.Second, "sysctl", "-q", "-w", "net.ipv4.conf.gwa1.promote_secondaries=1")
		for _, err := range []error{err, l.GWA.IP("addr", "add", "192.0.2.5/24", "dev", "gwa1"), l.GWA.IP("addr", "del", "192.0.2.1/24", "dev", "gwa1")} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}})
	if !strings.Contains(r.Moved, "from 192.0.2.1:4500 to 192.0.2.5:4500 (MOBIKE)") || !strings.Contains(log, "N(UPD_SA_ADDR)") {
		t.Fatalf("v2ra: %+v\nstrongSwan:\n%s", r, netns.Tail(log, 6000))
	}
}

// TestConnectToStrongSwan: `gatehouse connect ikev2` against strongSwan
// as the remote-access server (a pool, its certificate, EAP-MSCHAPv2
// users): with the default offers and each built-in client's profile
// that strongSwan's defaults take, the client gets an address from
// strongSwan's pool and the route strongSwan's traffic selector names,
// and pings the host behind it; a preshared-key machine (Android's PSK
// type) comes in too.
func TestConnectToStrongSwan(t *testing.T) {
	l := netns.SitesForTest(t)
	pki := netns.NewPKI(t, bin)
	pki.Issue("gw-b", "ecdsa", "--ip", "192.0.2.2")
	const password = "strongswan-server-password"
	sw := netns.StrongSwanForTest(t, l.GWB, map[string]string{"private/gw-b.key": pki.Path("gw-b.key"), "x509/gw-b.pem": pki.Path("gw-b.pem"),
		"x509ca/ca.pem": pki.Path("ca.pem")}, fmt.Sprintf(`connections {
  eap {
    version = 2
    local_addrs = 192.0.2.2
    pools = rw
    proposals = aes256-sha256-modp2048, aes256-sha256-ecp256, aes256gcm16-prfsha256-modp2048, aes128-sha256-modp3072
    local { auth = pubkey
            certs = %[1]s }
    remote { auth = eap-mschapv2
             eap_id = %%any }
    children { net { local_ts = 10.2.0.0/24
                     esp_proposals = aes256gcm16, aes256-sha256, aes256-sha1 } }
  }
  psk {
    version = 2
    local_addrs = 192.0.2.2
    pools = rw
    proposals = aes256gcm16-prfsha256-modp2048, aes256-sha256-modp2048
    local { auth = psk
            id = gw-b.example.net }
    remote { auth = psk }
    children { net { local_ts = 10.2.0.0/24
                     esp_proposals = aes256gcm16 } }
  }
}
pools { rw { addrs = 10.9.0.0/24 } }
secrets {
  eap-alice { id = alice
              secret = %[2]q }
  ike-any { secret = %[3]q }
}
`, pki.Path("gw-b.pem"), password, psk))
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	connected := regexp.MustCompile(`connected: address (10\.9\.0\.\d+), routes \[10\.2\.0\.0/24\]`)
	dial := func(name string, args ...string) {
		t.Helper()
		p, err := l.GWA.Start(filepath.Join(bin, "gatehouse"), append([]string{"connect", "ikev2", "--server", "192.0.2.2", "--setup-timeout", "20s",
			"--tun", "ghv2", "-v"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop(5 * time.Second)
		ok, _ := await.Poll(25*time.Second, func() (bool, string) {
			select {
			case <-p.Done():
				return true, ""
			default:
			}
			return connected.MatchString(p.Output()), ""
		})
		if !ok || !connected.MatchString(p.Output()) {
			t.Fatalf("%s: not connected: %v\n%s\nstrongSwan:\n%s", name, p.Err(), p.Output(), netns.Tail(sw.Log(), 4000))
		}
		if out, err := l.GWA.Output(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.2.0.10"); err != nil || !strings.Contains(out, " 3 received") {
			t.Fatalf("%s: ping through strongSwan: %v\n%s", name, err, out)
		}
		p.Signal(2)
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: did not hang up", name)
		}
		if !strings.Contains(p.Output(), "disconnected:") {
			t.Fatalf("%s at the end:\n%s", name, p.Output())
		}
	}
	eap := []string{"--ca", pki.Path("ca.pem"), "--user", "alice", "--password-file", pw}
	dial("default offers", eap...)
	for _, profile := range []string{"apple", "android", "windows-dh2048"} {
		dial("--profile "+profile, append(append([]string(nil), eap...), "--profile", profile)...)
	}
	dial("preshared key", "--psk-file", keyFile(t), "--profile", "android")
	if log := sw.Log(); !strings.Contains(log, "EAP method EAP_MSCHAPV2 succeeded") || !strings.Contains(log, "assigning virtual IP 10.9.0.") {
		t.Errorf("strongSwan's log lacks the EAP login or the pool address:\n%s", netns.Tail(log, 3000))
	}
}
