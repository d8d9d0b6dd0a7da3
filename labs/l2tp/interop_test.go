package l2tp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/await"
)

// interopPlugins loads the three interop plugins; Windows's legacy
// settings are allowed or not.
func interopPlugins(legacy bool) string {
	allow := "false"
	if legacy {
		allow = "true"
	}
	return "{name: interop-windows, options: {allow_legacy: " + allow + "}}, interop-apple, interop-android"
}

// saFamilies reads the client family of every IKE SA from `gatehouse sa
// --json`.
func (x *lab) saFamilies() []string {
	x.t.Helper()
	var r struct {
		IkeSas []struct {
			Family, FamilyDetail, InteropPlugin string
			Flags                               []string
		}
	}
	out := x.gw.CLI(x.t, "sa", "--json")
	must(x.t, json.Unmarshal([]byte(out), &r))
	var fams []string
	for _, s := range r.IkeSas {
		fams = append(fams, s.Family+"/"+s.InteropPlugin)
	}
	return fams
}

// TestProfilesConnect: a client offering exactly what Windows, legacy
// Windows, macOS/iOS and Android offer completes an L2TP/IPsec session
// with the interop plugins loaded and legacy algorithms allowed; `gatehouse
// sa` names each family.
func TestProfilesConnect(t *testing.T) {
	x := newLab(t)
	cli := x.direct("cli")
	x.load = interopPlugins(true)
	x.top = "legacy_algorithms: true\n"
	x.serve("mschapv2", "ike: {proposals: [aes256-sha1-modp2048, aes256-sha1-ecp384, aes128-sha1-ecp256]}")
	for _, c := range []struct{ profile, family, proposal string }{
		{"windows", "windows/interop-windows", "aes256-sha1-ecp384"},
		{"windows-legacy", "windows/interop-windows", "3des-sha1-modp1024"},
		{"apple", "apple/interop-apple", "aes256-sha256-modp2048"},
		{"android", "android/interop-android", "aes256-sha1-modp1024"},
	} {
		cl := x.dial(cli, "alice", "correct horse", "--profile", c.profile)
		ping(t, cli, "10.1.0.10")
		if f := x.saFamilies(); len(f) != 1 || f[0] != c.family {
			t.Errorf("%s: gatehouse sa shows families %v, want %s", c.profile, f, c.family)
		}
		if sa := x.gw.CLI(t, "sa"); !strings.Contains(sa, c.proposal) || !strings.Contains(sa, strings.Split(c.family, "/")[0]+" (") {
			t.Errorf("%s: gatehouse sa lacks %s and the family:\n%s", c.profile, c.proposal, sa)
		}
		cl.hangUp(t)
		await.State(t, 10*time.Second, c.profile+": no IKE SA left after hanging up", func() (bool, string) {
			f := x.saFamilies()
			return len(f) == 0, fmt.Sprint(f)
		})
	}
	// The log says when a plugin lets a legacy algorithm in.
	for _, note := range []string{"3des-sha1-modp1024 accepted for this peer", "aes256-sha1-modp1024, aes128-sha1-modp1024 accepted for this peer"} {
		if !x.waitLog("interop: " + note) {
			t.Errorf("the server did not log %q", note)
		}
	}
}

// TestLegacyWindowsRefused: with interop-windows loaded but legacy not
// allowed (by the plugin's option, or by legacy_algorithms), and with no
// interop plugin at all, a Windows 7 client offering only 3DES/MODP1024 is
// refused; the audit event says what would let it in. A reload that
// allows both lets it in. A Windows 10 client still connects without any
// plugin.
func TestLegacyWindowsRefused(t *testing.T) {
	for _, c := range []struct{ load, top, want string }{
		{interopPlugins(false), "legacy_algorithms: true\n", "allow_legacy: true (plugins.load)"},
		{interopPlugins(true), "", "which the configuration does not allow: legacy algorithms need legacy_algorithms: true"},
		{"", "", "load the interop-windows plugin with the option allow_legacy: true"},
	} {
		x := newLab(t)
		cli := x.direct("cli")
		x.load, x.top = c.load, c.top
		x.serve("mschapv2")
		_, out, err := x.try(cli, "alice", "correct horse", "--profile", "windows-legacy", "--setup-timeout", "6s")
		if exitCode(err) != 4 || !strings.Contains(out, "NO-PROPOSAL-CHOSEN") {
			t.Fatalf("load [%s]: exit %v, want 4 and no proposal chosen:\n%s", c.load, err, out)
		}
		if !x.waitLog("5403", "3des-sha1-modp1024", c.want) {
			t.Fatalf("load [%s]: no audit event naming %q:\n%s", c.load, c.want, x.gw.Proc.Output())
		}
		if c.load != "" {
			x.load, x.top = interopPlugins(true), "legacy_algorithms: true\n"
			x.writeConfig("mschapv2")
			x.gw.CLI(t, "reload")
			x.dial(cli, "alice", "correct horse", "--profile", "windows-legacy").hangUp(t)
		}
		if c.load == "" {
			cl := x.dial(cli, "alice", "correct horse", "--profile", "windows")
			if f := x.saFamilies(); len(f) != 1 || f[0] != "/" {
				t.Errorf("without plugins: families %v, want none", f)
			}
			cl.hangUp(t)
		}
	}
}
