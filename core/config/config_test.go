package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// setup writes key files into a temp dir and returns it.
func setup(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, mode := range map[string]os.FileMode{"good.psk": 0o600, "open.psk": 0o644, "group.psk": 0o640} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("a-long-enough-key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func parse(t *testing.T, dir, yaml string) (*Config, error) {
	t.Helper()
	yaml = strings.ReplaceAll(yaml, "DIR", dir)
	return Parse(filepath.Join(dir, "gatehouse.yaml"), []byte(yaml))
}

const good = `
listen: [203.0.113.1]
exemptions: windows2003
tunnels:
  - name: neta-netb
    local:  {address: 203.0.113.1,  subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth: [{psk_file: DIR/good.psk}]
    esp: {proposals: [aes128gcm16, aes256-sha256], pfs: modp2048, lifetime: 1h, lifetime_kb: 4000000}
remote_access:
  auth: [{psk_file: good.psk}]
  pool: 10.8.0.0/24
  dns: [10.1.0.53]
  ppp: {auth: [mschapv2, chap]}
filter_lists:
  mgmt: [{src: me, dst: 192.0.2.0/24, protocol: tcp, dst_port: 22}]
filter_actions:
  strict: {action: negotiate, offers: [aes256gcm16], pfs: ecp256}
rules:
  - name: no-telnet-to-neta
    filters: [{src: any, dst: 10.1.0.0/16, protocol: tcp, dst_port: 23}]
    action: block
  - name: mgmt
    filter_list: mgmt
    action: strict
    auth: [{psk_file: good.psk, peer_id: "fqdn:admin.example.net"}]
plugins: {dir: plugins, load: [auth-psk, {name: other, path: /opt/x}]}
`

func TestGoodConfigAndDefaults(t *testing.T) {
	dir := setup(t)
	c, err := parse(t, dir, good)
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminSocket != DefaultAdminSocket || c.MetricsListen != DefaultMetricsListen || c.Log.Level != "info" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.IKE.Lifetime.Duration != DefaultIKELifetime || len(c.IKE.Proposals) != 2 {
		t.Errorf("ike defaults: %+v", c.IKE)
	}
	tn := c.Tunnels[0]
	if tn.Start != "on-traffic" || tn.ESP.PFS != "modp2048" || tn.ESP.LifetimeKB != 4000000 || tn.ESP.Lifetime.Duration != time.Hour {
		t.Errorf("tunnel: %+v", tn)
	}
	if c.RemoteAccess.Auth[0].PSKFile != filepath.Join(dir, "good.psk") {
		t.Errorf("relative key file not resolved against the config's folder: %s", c.RemoteAccess.Auth[0].PSKFile)
	}
	if c.RemoteAccess.ESP.Proposals[0] != "aes256-sha1" || c.RemoteAccess.PPP.MRU != 1400 {
		t.Errorf("remote access defaults: %+v", c.RemoteAccess)
	}
	if c.Plugins.Dir != filepath.Join(dir, "plugins") || c.Plugins.Load[0].Name != "auth-psk" || c.Plugins.Load[1].Path != "/opt/x" {
		t.Errorf("plugins: %+v", c.Plugins)
	}
	if c.Rules[1].Auth[0].PeerID != "fqdn:admin.example.net" {
		t.Errorf("peer id: %+v", c.Rules[1].Auth[0])
	}

	// Kerberos defaults: the draft's identity attribute, 5 minutes of
	// skew, paths against the config's folder.
	c, err = parse(t, dir, "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - kerberos: {keytab: good.psk, krb5_conf: good.psk, principal: host/gw@EXAMPLE.TEST, allowed_peers: [\"*$\"]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if k := c.RemoteAccess.Auth[0].Kerberos; k.IdentityAttribute != 16384 || k.MaxSkew.Duration != 5*time.Minute || k.Keytab != filepath.Join(dir, "good.psk") ||
		!slices.Equal(k.AllowedPeers, []string{"*$@EXAMPLE.TEST"}) {
		t.Errorf("kerberos defaults: %+v", k)
	}
	// Whom Kerberos takes as the peer: a tunnel's peer_principal by
	// default (in our realm); remote access must say; a tunnel with
	// neither is refused.
	tunnel := "listen: [203.0.113.1]\ntunnels:\n  - name: t\n    local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}\n    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}\n    auth:\n      - kerberos: {keytab: good.psk, krb5_conf: good.psk, principal: host/gw@EXAMPLE.TEST%s}\n"
	if c, err = parse(t, dir, fmt.Sprintf(tunnel, ", peer_principal: host/gw-b")); err != nil || !slices.Equal(c.Tunnels[0].Auth[0].Kerberos.AllowedPeers, []string{"host/gw-b@EXAMPLE.TEST"}) {
		t.Errorf("allowed_peers from peer_principal: %v %+v", err, c)
	}
	if _, err = parse(t, dir, fmt.Sprintf(tunnel, "")); err == nil || !strings.Contains(err.Error(), "set peer_principal (the peer gateway's principal) or allowed_peers") {
		t.Errorf("a tunnel that would take anyone: %v", err)
	}
	if _, err = parse(t, dir, "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - kerberos: {keytab: good.psk, krb5_conf: good.psk, principal: host/gw@EXAMPLE.TEST}\n"); err == nil ||
		!strings.Contains(err.Error(), `required for remote access: the computers that may connect, such as ["*$@EXAMPLE.TEST"]`) {
		t.Errorf("remote access that would take anyone: %v", err)
	}

	// RADIUS: the default port, timeout and tries; secret files against
	// the config's folder.
	c, err = parse(t, dir, "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    radius: {servers: [{address: 10.1.0.5, secret_file: good.psk}, {address: \"[2001:db8::5]:11812\", secret_file: good.psk}]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if r := c.RemoteAccess.PPP.Radius; r.Servers[0].Address != "10.1.0.5:1812" || r.Servers[1].Address != "[2001:db8::5]:11812" ||
		r.Servers[0].AccountingAddress != "10.1.0.5:1813" || r.Servers[1].AccountingAddress != "[2001:db8::5]:1813" || !r.AccountingOn() ||
		r.Servers[0].SecretFile != filepath.Join(dir, "good.psk") || r.Timeout.Duration != DefaultRadiusTimeout || r.Tries != DefaultRadiusTries ||
		!r.MessageAuthenticatorRequired() || r.DisconnectWindow.Duration != 5*time.Minute || len(c.Warnings) != 0 {
		t.Errorf("radius defaults: %+v", r)
	}
	// Login limits: on by default, no lockout.
	if p := c.RemoteAccess.PPP; p.FailedLogins.UserFree != 3 || p.FailedLogins.AddressFree != 20 || p.FailedLogins.Delay.Duration != time.Second ||
		p.FailedLogins.MaxDelay.Duration != time.Minute || p.FailedLogins.LockoutAfter != 0 || p.MaxAuthenticatingPerSA != 4 {
		t.Errorf("login limit defaults: %+v %d", p.FailedLogins, p.MaxAuthenticatingPerSA)
	}
	// Turning the Message-Authenticator off is allowed, and warned about.
	c, err = parse(t, dir, "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    radius: {servers: [{address: 10.1.0.5, secret_file: good.psk}], require_message_authenticator: false}\n")
	if err != nil || c.RemoteAccess.PPP.Radius.MessageAuthenticatorRequired() || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0].Msg, "BlastRADIUS") {
		t.Errorf("require_message_authenticator: false: %v %+v", err, c.Warnings)
	}
}

// Each bad file yields exactly one error that names file, line and field.
func TestBadConfigs(t *testing.T) {
	dir := setup(t)
	for _, f := range []string{"ca.pem", "gw.pem"} {
		os.WriteFile(filepath.Join(dir, f), []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "gw.key"), []byte("key"), 0o600)
	cases := []struct {
		name, yaml string
		line       int
		field      string
		says       string
	}{
		{"unknown key", "listen: [203.0.113.1]\nlisten_on: [1.2.3.4]\n", 2, "listen_on", "unknown field; allowed here: admin_socket"},
		{"unknown nested key", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  dnss: [10.1.0.53]\n", 5, "remote_access.dnss", "allowed here: allow_cleartext_l2tp, auth, dns"},
		{"bad CIDR", "listen: [203.0.113.1]\ntunnels:\n  - name: t\n    local: {address: 203.0.113.1, subnets: [10.1.0.0/33]}\n    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}\n    auth: [{psk_file: DIR/good.psk}]\n", 4, "tunnels[0].local.subnets[0]", "not a CIDR subnet"},
		{"host bits", "listen: [203.0.113.1]\nrules:\n  - name: r\n    filters: [{src: 10.1.0.1/16, dst: any}]\n    action: block\n", 4, "rules[0].filters[0].src", "the subnet is 10.1.0.0/16"},
		{"tunnel rule with a port", "listen: [203.0.113.1]\nrules:\n  - name: r\n    tunnel: 198.51.100.2\n    filters:\n      - {src: 10.1.0.0/16, dst: 10.2.0.0/16,\n         protocol: tcp, dst_port: 80}\n    action: negotiate\n    auth: [{psk_file: DIR/good.psk}]\n", 7, "rules[0].filters[0].protocol", "a tunnel rule filters on addresses only"},
		{"missing key file", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - psk_file: DIR/nope.psk\n", 5, "remote_access.auth[0].psk_file", "does not exist"},
		{"idle timeout too short", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  idle_timeout: 5s\n", 5, "remote_access.idle_timeout", "use 0 (never) or at least 10s"},
		{"road warriors in aggressive mode", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ike: {aggressive_mode: true}\n", 5, "remote_access.ike.aggressive_mode", "could crack it offline"},
		{"world-readable key file", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - psk_file: DIR/open.psk\n", 5, "remote_access.auth[0].psk_file", "readable by group or others"},
		{"group-readable key file", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth: [{psk_file: DIR/group.psk}]\n", 4, "remote_access.auth[0].psk_file", "chmod 600"},
		{"bad exemption set", "listen: [203.0.113.1]\nexemptions: windowsxp\n", 2, "exemptions", "windows2000, windows2003, none"},
		{"weak proposal", "listen: [203.0.113.1]\nike: {proposals: [des-md5-modp1024]}\n", 2, "ike.proposals[0]", "too weak"},
		{"legacy without opt-in", "listen: [203.0.113.1]\nike: {proposals: [3des-sha1-modp2048]}\n", 2, "ike.proposals[0]", "legacy_algorithms: true"},
		{"ChaCha20-Poly1305 in IKEv1", "listen: [203.0.113.1]\ntunnels:\n  - name: t\n    local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}\n    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}\n    auth: [{psk_file: DIR/good.psk}]\n    ike: {version: 1}\n    esp: {proposals: [chacha20poly1305]}\n",
			8, "tunnels[0].esp.proposals[0]", "IKEv2 only"},
		{"no listen", "log: {level: info}\n", 1, "listen", "at least one address"},
		{"bad log level", "listen: [203.0.113.1]\nlog: {level: loud}\n", 2, "log.level", "debug, info, warn, error"},
		{"wrong type", "listen: 203.0.113.1\n", 1, "listen", "want a list"},
		{"mirrored tunnel filter", "listen: [203.0.113.1]\nrules:\n  - name: r\n    tunnel: 198.51.100.2\n    filters: [{src: 10.1.0.0/16, dst: 10.2.0.0/16, mirrored: true}]\n    action: negotiate\n    auth: [{psk_file: DIR/good.psk}]\n", 5, "rules[0].filters[0].mirrored", "cannot be mirrored"},
		{"unknown filter list", "listen: [203.0.113.1]\nrules:\n  - name: r\n    filter_list: nope\n    action: block\n", 4, "rules[0].filter_list", "no filter list named"},
		{"duplicate rule name", "listen: [203.0.113.1]\nrules:\n  - {name: r, filters: [{src: any, dst: any}], action: block}\n  - {name: r, filters: [{src: any, dst: any}], action: permit}\n", 4, "rules[1].name", "already used"},
		{"local address not listened on", "listen: [203.0.113.1]\ntunnels:\n  - name: t\n    local: {address: 203.0.113.9, subnets: [10.1.0.0/16]}\n    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}\n    auth: [{psk_file: DIR/good.psk}]\n", 4, "tunnels[0].local.address", "not one of listen"},
		{"ports without protocol", "listen: [203.0.113.1]\nrules:\n  - {name: r, filters: [{src: any, dst: any, dst_port: 80}], action: block}\n", 3, "rules[0].filters[0].dst_port", "protocol: tcp"},
		{"auth on block rule", "listen: [203.0.113.1]\nrules:\n  - name: r\n    filters: [{src: any, dst: any}]\n    action: block\n    auth: [{psk_file: DIR/good.psk}]\n", 6, "rules[0].auth", "only negotiate rules"},
		{"not yaml", "listen: [203.0.113.1\n", 0, "", "not valid YAML"},
		{"kerberos principal without a realm", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - kerberos: {keytab: DIR/good.psk, krb5_conf: DIR/good.psk, principal: gw-a, allowed_peers: [x@R]}\n", 5, "remote_access.auth[0].kerberos.principal", "want service/host@REALM"},
		{"kerberos identity attribute", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - kerberos: {keytab: DIR/good.psk, krb5_conf: DIR/good.psk, principal: host/a@R, identity_attribute: 7, allowed_peers: [x@R]}\n", 5, "remote_access.auth[0].kerberos.identity_attribute", "16384 (the draft) or 32001"},
		{"kerberos without krb5.conf", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - kerberos: {keytab: DIR/good.psk, krb5_conf: DIR/krb5.conf, principal: host/a@R, allowed_peers: [x@R]}\n", 5, "remote_access.auth[0].kerberos.krb5_conf", "does not exist"},
		{"kerberos keytab readable by others", "listen: [203.0.113.1]\nremote_access:\n  pool: 10.8.0.0/24\n  auth:\n    - kerberos: {keytab: DIR/open.psk, krb5_conf: DIR/good.psk, principal: host/a@R, allowed_peers: [x@R]}\n", 5, "remote_access.auth[0].kerberos.keytab", "readable by group or others"},
		{"radius and users file", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    users_file: DIR/good.psk\n    radius: {servers: [{address: 10.1.0.5, secret_file: DIR/good.psk}]}\n", 6, "remote_access.ppp.users_file", "not both"},
		{"radius server address", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    radius: {servers: [{address: radius.example, secret_file: DIR/good.psk}]}\n", 6, "remote_access.ppp.radius.servers[0].address", "not a server address"},
		{"radius secret readable", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    radius: {servers: [{address: 10.1.0.5, secret_file: DIR/open.psk}]}\n", 6, "remote_access.ppp.radius.servers[0].secret_file", "readable by group or others"},
		{"radius timeout", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    radius: {servers: [{address: 10.1.0.5, secret_file: DIR/good.psk}], timeout: 1m}\n", 6, "remote_access.ppp.radius.timeout", "allowed 100ms to 30s"},
		{"radius interim", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ppp:\n    radius: {servers: [{address: 10.1.0.5, secret_file: DIR/good.psk}], interim_interval: 1s}\n", 6, "remote_access.ppp.radius.interim_interval", "5s to 24h"},
		{"fragment size", "listen: [203.0.113.1]\nike: {fragment_size: 100}\n", 2, "ike.fragment_size", "allowed 576 to 9000"},
		{"IKE version", "listen: [203.0.113.1]\nike: {version: 3}\n", 2, "ike.version", "use 2 (RFC 7296) or 1"},
		{"IKEv2 suite offered to IKEv1", "listen: [203.0.113.1]\nike: {version: 1, proposals: [aes128gcm16-prfsha256-ecp256]}\n", 2, "ike.proposals[0]", "set version: 2 to offer it"},
		{"aggressive mode in IKEv2", "listen: [203.0.113.1]\ntunnels:\n  - name: t\n    local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}\n    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16], id: \"fqdn:b\"}\n    auth: [{psk_file: DIR/good.psk}]\n    ike: {version: 2, aggressive_mode: true}\n", 7, "tunnels[0].ike.aggressive_mode", "IKEv2 has none"},
		{"Kerberos in IKEv2", "listen: [203.0.113.1]\ntunnels:\n  - name: t\n    local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}\n    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16], id: \"fqdn:b\"}\n    auth: [{kerberos: {keytab: DIR/good.psk, krb5_conf: DIR/good.psk, principal: host/a@R, peer_principal: host/b@R}}]\n    ike: {version: 2}\n", 6, "tunnels[0].auth[0].kerberos", "set ike.version: 1"},
		{"IKEv2 for L2TP", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ike: {version: 2}\n", 5, "remote_access.ike.version", "add remote_access.ikev2"},
		{"IKEv2 EAP without users", "listen: [203.0.113.1]\nremote_access:\n  auth: [{x509: {ca_files: [DIR/ca.pem], cert_file: DIR/gw.pem, key_file: DIR/gw.key}}]\n  pool: 10.8.0.0/24\n  ikev2: {eap: mschapv2}\n", 5, "remote_access.ikev2.eap", "users_file or ppp.radius"},
		{"IKEv2 EAP without a certificate", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ppp: {users_file: DIR/good.psk}\n  ikev2: {}\n", 6, "remote_access.ikev2", "add an x509 entry"},
		{"IKEv2 unknown EAP", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ikev2:\n    eap: peap\n", 6, "remote_access.ikev2.eap", "allowed: mschapv2, radius, tls, none"},
		{"IKEv2 EAP-TLS without a certificate", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ikev2:\n    eap: tls\n", 6, "remote_access.ikev2", "add an x509 entry"},
		{"IKEv2 eap_tls without eap: tls", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ikev2:\n    eap: none\n    eap_tls: {ca_files: [DIR/ca.pem]}\n", 7, "remote_access.ikev2.eap_tls", "goes with eap: tls"},
		{"IKEv2 legacy road-warrior suite", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ikev2:\n    eap: none\n    proposals: [aes256-sha1-modp1024]\n", 7, "remote_access.ikev2.proposals[0]", "legacy_algorithms: true"},
		{"IKEv2 inside not IPv4", "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  ikev2:\n    eap: none\n    inside: [2001:db8::/32]\n", 7, "remote_access.ikev2.inside[0]", "only IPv4"},
		{"bad duration", "listen: [203.0.113.1]\nike: {lifetime: forever}\n", 2, "ike.lifetime", "not a duration"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, dir, c.yaml)
			var list ErrorList
			if !errors.As(err, &list) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want an ErrorList, got %v", err)
			}
			if len(list) != 1 {
				t.Fatalf("want one error, got %d:\n%v", len(list), err)
			}
			e := list[0]
			if e.File != filepath.Join(dir, "gatehouse.yaml") || e.Line != c.line || e.Field != c.field || !strings.Contains(e.Msg, c.says) {
				t.Fatalf("got  %s:%d field %q: %s\nwant line %d field %q containing %q", e.File, e.Line, e.Field, e.Msg, c.line, c.field, c.says)
			}
			if !strings.Contains(e.Error(), "gatehouse.yaml") {
				t.Fatalf("message does not name the file: %s", e.Error())
			}
		})
	}
}

// IKE versions: tunnels inherit the global one (1 by default), and an
// IKEv2 tunnel takes AEAD IKE suites and ChaCha20-Poly1305 children.
func TestIKEVersions(t *testing.T) {
	dir := setup(t)
	c, err := parse(t, dir, `listen: [203.0.113.1]
ike: {version: 2, proposals: [aes128gcm16-prfsha256-ecp256]}
tunnels:
  - name: v2
    local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth: [{psk_file: DIR/good.psk}]
    esp: {proposals: [chacha20poly1305]}
  - name: v1
    local: {address: 203.0.113.1, subnets: [10.3.0.0/16]}
    remote: {address: 198.51.100.3, subnets: [10.4.0.0/16]}
    auth: [{psk_file: DIR/good.psk}]
    ike: {version: 1, proposals: [aes256-sha256-modp2048]}
remote_access:
  auth: [{psk_file: DIR/good.psk}]
  pool: 10.8.0.0/24
  ikev2: {eap: none}
`)
	if err != nil {
		t.Fatal(err)
	}
	if x := c.RemoteAccess.IKEv2; x == nil || strings.Join(x.Proposals, ", ") != strings.Join(DefaultRemoteAccessIKEv2Proposals, ", ") ||
		strings.Join(x.ESP.Proposals, ", ") != strings.Join(DefaultRemoteAccessIKEv2ESPProposals, ", ") || x.ESP.Lifetime.Duration != DefaultESPLifetime {
		t.Errorf("remote_access.ikev2 with its defaults: %+v", x)
	}
	if v := c.IKEFor(&c.Tunnels[0]).Version; v != 2 {
		t.Errorf("the first tunnel speaks IKEv%d, want the global 2", v)
	}
	if v := c.IKEFor(&c.Tunnels[1]).Version; v != 1 {
		t.Errorf("the second tunnel speaks IKEv%d", v)
	}
	if c.RemoteAccess.IKE.Version != 1 {
		t.Errorf("remote access speaks IKEv%d", c.RemoteAccess.IKE.Version)
	}
	c, err = parse(t, dir, `listen: [203.0.113.1]
tunnels:
  - name: v2
    local: {address: 203.0.113.1, subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth: [{psk_file: DIR/good.psk}]
  - name: aggressive
    local: {address: 203.0.113.1, subnets: [10.3.0.0/16]}
    remote: {address: 198.51.100.3, subnets: [10.4.0.0/16], id: "fqdn:b"}
    auth: [{psk_file: DIR/good.psk}]
    ike: {aggressive_mode: true}
`)
	if err != nil || c.IKE.Version != 2 || c.IKEFor(&c.Tunnels[0]).Version != 2 {
		t.Fatalf("default version %d, %v", c.IKE.Version, err)
	}
	if v := c.IKEFor(&c.Tunnels[1]).Version; v != 1 {
		t.Errorf("a tunnel in aggressive mode with no version written speaks IKEv%d", v)
	}
}

// A tunnel carries IPv4 and IPv6 networks at once, each family paired with
// its own; a subnet with none of its family on the other side is an error
// at its line.
func TestTunnelSubnetFamilies(t *testing.T) {
	dir := setup(t)
	const both = `listen: [203.0.113.1]
tunnels:
  - name: dual
    local: {address: 203.0.113.1, subnets: [10.1.0.0/24, fd00:1::/64]}
    remote: {address: 198.51.100.2, subnets: [REMOTE]}
    auth: [{psk_file: DIR/good.psk}]
`
	c, err := parse(t, dir, strings.Replace(both, "REMOTE", "fd00:2::/64, 10.2.0.0/24", 1))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Tunnels[0].SubnetPairs() {
		got = append(got, p.Local.String()+">"+p.Remote.String())
	}
	if want := "10.1.0.0/24>10.2.0.0/24 fd00:1::/64>fd00:2::/64"; strings.Join(got, " ") != want {
		t.Fatalf("pairs %v, want %s", got, want)
	}
	_, err = parse(t, dir, strings.Replace(both, "REMOTE", "10.2.0.0/24", 1))
	if err == nil || !strings.Contains(err.Error(), "tunnels[0].local.subnets[1]") || !strings.Contains(err.Error(), "fd00:1::/64: the other side lists no IPv6 subnet") ||
		!strings.Contains(err.Error(), ":4:") {
		t.Fatalf("an IPv6 subnet with no IPv6 peer subnet: %v", err)
	}
}

// IPv6 gateways: one IPv6 listen address, tunnels whose two ends are of
// one family; what is not carried yet (an IPv6 pool, remote access first
// on IPv6) is refused at its line with what to do instead.
func TestIPv6Gateways(t *testing.T) {
	dir := setup(t)
	c, err := parse(t, dir, `listen: [203.0.113.1, 2001:db8::1]
tunnels:
  - name: v6
    local: {address: 2001:db8::1, subnets: [fd00:1::/64, 10.1.0.0/24]}
    remote: {address: 2001:db8::2, subnets: [fd00:2::/64, 10.2.0.0/24]}
    auth: [{psk_file: DIR/good.psk}]
`)
	if err != nil || c.Tunnels[0].Remote.Address.Addr.String() != "2001:db8::2" {
		t.Fatalf("a tunnel between IPv6 addresses: %v", err)
	}
	_, err = parse(t, dir, `listen: [2001:db8::1, 203.0.113.1, 2001:db8::3]
tunnels:
  - name: t
    local: {address: 203.0.113.1, subnets: [fd00:1::/64]}
    remote: {address: 2001:db8::2, subnets: [fd00:2::/64]}
    auth: [{psk_file: DIR/good.psk}]
remote_access:
  auth: [{psk_file: DIR/good.psk}]
  pool: fd00:8::/64
`)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 4 {
		t.Fatalf("want 4 errors, got %v", err)
	}
	for i, want := range []string{"listen[0]: 2001:db8::1: remote access answers on the first listen address, which must be IPv4",
		"listen[2]: 2001:db8::3: one IPv6 listen address at most", "tunnels[0].remote.address: 2001:db8::2 and local.address 203.0.113.1 are of different families",
		"remote_access.pool: fd00:8::/64: the pool is IPv4"} {
		if !strings.Contains(list[i].Error(), want) {
			t.Errorf("error %d: %v; want %q", i, list[i], want)
		}
	}
}

func TestSeveralErrorsInFileOrder(t *testing.T) {
	dir := setup(t)
	_, err := parse(t, dir, "listen: [203.0.113.1]\nlog: {level: [x]}\nexemptions: bogus\nfoo: 1\n")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 3 {
		t.Fatalf("want 3 errors, got %v", err)
	}
	for i := 1; i < len(list); i++ {
		if list[i].Line < list[i-1].Line {
			t.Fatalf("errors out of order:\n%v", err)
		}
	}
}

// TestDefaultsDocumented keeps docs/configuration.md in step with defaults.go.
func TestDefaultsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{DefaultAdminSocket, DefaultMetricsListen, DefaultLogLevel, DefaultLogFormat, DefaultExemptions,
		DefaultIKELifetime.String(), DefaultDPDInterval.String(), DefaultDPDTimeout.String(), DefaultESPLifetime.String(),
		DefaultStart, DefaultPFS, "1400", DefaultRadiusTimeout.String(), fmt.Sprint(DefaultFragmentSize), DefaultPluginDir, DefaultHealthInterval.String(), fmt.Sprint(DefaultTUNSegmentation),
		strings.Join(DefaultIKEProposals, ", "), strings.Join(DefaultESPProposals, ", "), strings.Join(DefaultRemoteAccessESPProposals, ", "), strings.Join(DefaultRemoteAccessIKEProposals, ", "),
		strings.Join(DefaultRemoteAccessIKEv2Proposals, ", "), strings.Join(DefaultRemoteAccessIKEv2ESPProposals, ", ")} {
		if !strings.Contains(string(doc), "`"+v+"`") {
			t.Errorf("docs/configuration.md does not show the default `%s`", v)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("listen: [203.0.113.1]\nexemptions: [ike, ike]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("listen: [::1]\nrules: [{name: r, filters: [{src: me, dst: me}], action: negotiate}]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("plugins: {load: [{name: {x: 1}}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error not an ErrorList: %v", err)
		}
	})
}

func TestAliasBombIsRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 12; i++ {
		format := "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n"
		j := i - 1
		b.WriteString(fmt.Sprintf(format, i, i, j, j, j, j, j, j, j, j, j, j))
	}
	b.WriteString("filter_lists: {x: [{src: any, dst: any}]}\nrules: *a11\n")
	done := make(chan error, 1)
	go func() { _, err := Parse("bomb.yaml", []byte(b.String())); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("alias bomb accepted")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("alias bomb not bounded")
	}
}

func TestManualSAs(t *testing.T) {
	dir := setup(t)
	os.WriteFile(filepath.Join(dir, "k36.key"), []byte("00112233445566778899aabbccddeeff 00112233445566778899aabbccddeeff00112233\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "k16.key"), []byte("0x00112233 44556677 8899aabb ccddeeff\n"), 0o600)
	good := `listen: [192.0.2.1]
manual_sas:
  - name: to-b
    local: 192.0.2.1
    peer: 192.0.2.2
    suite: aes128-sha1
    local_subnets: [10.1.0.0/24]
    remote_subnets: [10.2.0.0/24]
    out: {spi: 0x1001, key_file: k36.key}
    in:  {spi: 0x2001, key_file: k36.key}
`
	c, err := parse(t, dir, good)
	if err != nil {
		t.Fatal(err)
	}
	if m := c.ManualSAs[0]; m.Mode != "tunnel" || m.Out.SPI != 0x1001 || c.Dataplane.TUN != DefaultTUN || c.Dataplane.Mark != DefaultMark {
		t.Fatalf("manual SA defaults: %+v %+v", m, c.Dataplane)
	}
	if k, err := ReadManualKey(filepath.Join(dir, "k16.key")); err != nil || len(k) != 16 {
		t.Fatalf("ReadManualKey with 0x and spaces: %x %v", k, err)
	}
	cases := []struct {
		name, from, to string
		line           int
		says           string
	}{
		{"short key", "out: {spi: 0x1001, key_file: k36.key}", "out: {spi: 0x1001, key_file: k16.key}", 9, "holds 16 bytes of key; aes128-sha1 needs 36"},
		{"reserved SPI", "out: {spi: 0x1001,", "out: {spi: 7,", 9, "1-255 are reserved"},
		{"transport with subnets", "    local: 192.0.2.1\n", "    mode: transport\n    local: 192.0.2.1\n", 0, "remove the subnets"},
		{"bad suite", "suite: aes128-sha1", "suite: des-md5", 6, "too weak"},
		{"peer of the other family", "peer: 192.0.2.2", "peer: 2001:db8::2", 0, "2001:db8::2 and local 192.0.2.1 are of different families"},
		{"AH over IPv6", "listen: [192.0.2.1]\nmanual_sas:\n  - name: to-b\n    local: 192.0.2.1\n    peer: 192.0.2.2\n    suite: aes128-sha1",
			"listen: [2001:db8::1]\nmanual_sas:\n  - name: to-b\n    local: 2001:db8::1\n    peer: 2001:db8::2\n    suite: ah-sha256", 0, "AH over IPv6 is not built yet"},
	}
	for _, c := range cases[:2] {
		_, err := parse(t, dir, strings.Replace(good, c.from, c.to, 1))
		var list ErrorList
		if !errors.As(err, &list) || len(list) != 1 || list[0].Line != c.line || !strings.Contains(list[0].Msg, c.says) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, c := range cases[2:] {
		_, err := parse(t, dir, strings.Replace(good, c.from, c.to, 1))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// AEAD suites are refused with the file, the line and the reason,
	// whatever the key: a static key repeats nonces after a restart.
	for _, suite := range []string{"aes128gcm16", "aes256gcm16", "chacha20poly1305"} {
		_, err := parse(t, dir, strings.Replace(good, "suite: aes128-sha1", "suite: "+suite, 1))
		var list ErrorList
		if !errors.As(err, &list) || list[0].Line != 6 || !strings.HasSuffix(list[0].File, "gatehouse.yaml") ||
			!strings.Contains(list[0].Msg, suite+" cannot be keyed by hand") || !strings.Contains(list[0].Msg, "RFC 4106") ||
			!strings.Contains(list[0].Msg, "IKE") {
			t.Errorf("manual %s: %v", suite, err)
		}
	}
	dup := good + strings.Replace(strings.Replace(good[strings.Index(good, "  - name"):], "to-b", "to-c", 1), "0x1001", "0x1002", 1)
	if _, err := parse(t, dir, dup); err == nil || !strings.Contains(err.Error(), "inbound SPI 0x2001 is also used by manual_sas[0].in") {
		t.Errorf("duplicate inbound SPI: %v", err)
	}
}

// TestSecurityWarnings: what the configuration allows but weakens is
// warned about with the file and line: a certificate tunnel without
// remote.id (any certificate of the CA would do), aggressive mode and
// cleartext L2TP.
func TestSecurityWarnings(t *testing.T) {
	dir := setup(t)
	for _, f := range []string{"ca.pem", "gw.pem"} {
		os.WriteFile(filepath.Join(dir, f), []byte("-----BEGIN CERTIFICATE-----\n"), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "gw.key"), []byte("key"), 0o600)
	cfg := `listen: [203.0.113.1]
tunnels:
  - name: by-cert
    local:  {address: 203.0.113.1,  subnets: [10.1.0.0/16]}
    remote: {address: 198.51.100.2, subnets: [10.2.0.0/16]}
    auth:
      - x509: {ca_files: [DIR/ca.pem], cert_file: DIR/gw.pem, key_file: DIR/gw.key}
  - name: aggressive
    local:  {address: 203.0.113.1,  subnets: [10.3.0.0/16]}
    remote: {address: 198.51.100.3, subnets: [10.4.0.0/16], id: "fqdn:gw-c.example.net"}
    auth: [{psk_file: DIR/good.psk}]
    ike: {aggressive_mode: true}
`
	c, err := parse(t, dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 2 {
		t.Fatalf("want 2 warnings, got %v", c.Warnings)
	}
	if w := c.Warnings[0]; w.Line != 7 || w.Field != "tunnels[0].auth[0].x509" || !strings.Contains(w.Msg, "no remote.id: any certificate") {
		t.Errorf("certificate warning: %v", w)
	}
	if w := c.Warnings[1]; w.Line != 12 || w.Field != "tunnels[1].ike.aggressive_mode" || !strings.Contains(w.Msg, "crack offline") {
		t.Errorf("aggressive mode warning: %v", w)
	}
	// Pinned, the certificate tunnel says nothing; main mode neither.
	cfg = strings.Replace(cfg, "subnets: [10.2.0.0/16]}", `subnets: [10.2.0.0/16], id: "dn:CN=gw-b,O=Example"}`, 1)
	cfg = strings.Replace(cfg, "ike: {aggressive_mode: true}", "ike: {aggressive_mode: false}", 1)
	if c, err = parse(t, dir, cfg); err != nil || len(c.Warnings) != 0 {
		t.Fatalf("pinned: %v %v", err, c.Warnings)
	}
	// Cleartext L2TP is allowed, and said loudly.
	clear := "listen: [203.0.113.1]\nremote_access:\n  auth: [{psk_file: DIR/good.psk}]\n  pool: 10.8.0.0/24\n  allow_cleartext_l2tp: true\n"
	if c, err = parse(t, dir, clear); err != nil || len(c.Warnings) != 1 || !c.RemoteAccess.AllowCleartextL2TP {
		t.Fatalf("cleartext L2TP: %v %v", err, c.Warnings)
	}
	if w := c.Warnings[0]; w.Line != 5 || w.Field != "remote_access.allow_cleartext_l2tp" || !strings.Contains(w.Msg, "cross the network unencrypted") {
		t.Errorf("cleartext L2TP warning: %v", w)
	}
	// A dn names a peer; it cannot be ours.
	bad := strings.Replace(cfg, "local:  {address: 203.0.113.1,  subnets: [10.3.0.0/16]}", `local:  {address: 203.0.113.1,  subnets: [10.3.0.0/16], id: "dn:CN=me"}`, 1)
	if _, err := parse(t, dir, bad); err == nil || !strings.Contains(err.Error(), "tunnels[1].local.id") {
		t.Fatalf("dn as local.id: %v", err)
	}
}

// TestRenamedOffloadKey: dataplane.offload, tun_segmentation's old name,
// still works for one release, with a warning naming the new key; set to
// another value than the new key it is an error.
func TestRenamedOffloadKey(t *testing.T) {
	dir := setup(t)
	c, err := parse(t, dir, "listen: [203.0.113.1]\ndataplane: {offload: false}\n")
	if err != nil || c.Dataplane.TUNSegmentation || len(c.Warnings) != 1 || c.Warnings[0].Line != 2 ||
		!strings.Contains(c.Warnings[0].Msg, "renamed dataplane.tun_segmentation") {
		t.Fatalf("old key: %v %+v %v", err, c, c.Warnings)
	}
	if c, err = parse(t, dir, "listen: [203.0.113.1]\ndataplane: {tun_segmentation: false}\n"); err != nil || c.Dataplane.TUNSegmentation || len(c.Warnings) != 0 {
		t.Fatalf("new key: %v %v", err, c.Warnings)
	}
	if _, err = parse(t, dir, "listen: [203.0.113.1]\ndataplane: {tun_segmentation: false, offload: true}\n"); err == nil ||
		!strings.Contains(err.Error(), "keep tun_segmentation only") {
		t.Fatalf("both, differing: %v", err)
	}
}
