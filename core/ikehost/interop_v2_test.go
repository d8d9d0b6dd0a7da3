package ikehost

import (
	"crypto/rand"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/remote"
	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/ike/ikev2"
	"github.com/gatehouse/gatehouse/internal/must"
)

// Synthetic IKEv2 clients: each built-in client's IKE_SA_INIT, as
// ike/clients describes it, goes to a road-warrior responder on the
// default suites whose interop host asks the real plugins in process.

// v2Responder is IKEv2's road-warrior peer on the default suites.
func v2Responder(t *testing.T, in ikev2.Interop) (*ikev2.Manager, *replayHost) {
	t.Helper()
	suites := must.ParseAll(t, ikev2.ParseProposal, config.DefaultRemoteAccessIKEv2Proposals...)
	esps := must.ParseAll(t, esp.ParseSuite, config.DefaultRemoteAccessIKEv2ESPProposals...)
	h := &replayHost{}
	m, err := ikev2.NewManager(ikev2.Config{Host: h, Rand: rand.Reader, Interop: in})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPeers([]*ikev2.Peer{{PeerConfig: &ike.PeerConfig{Name: remote.RuleIKEv2, Local: synthServer, Auth: []uint16{ike.AuthPSK},
		Lifetime: 8 * time.Hour, ESP: esps, ESPLifetime: time.Hour}, Suites: suites, RemoteAccess: &ikev2.RemoteAccess{}}})
	return m, h
}

// v2Hello is a family's IKE_SA_INIT request, made by an initiating engine
// that offers what the family offers.
func v2Hello(t *testing.T, f *clients.V2Family) []byte {
	t.Helper()
	suites := must.ParseAll(t, ikev2.ParseProposal, f.IKE...)
	h := &replayHost{}
	m, err := ikev2.NewManager(ikev2.Config{Host: h, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	m.SetPeers([]*ikev2.Peer{{PeerConfig: &ike.PeerConfig{Name: "server", Local: synthClient.Addr(), Remote: synthServer, Auth: []uint16{ike.AuthPSK},
		Lifetime: time.Hour, VendorIDs: f.VendorIDs}, Suites: suites}})
	if err := m.Initiate("server"); err != nil || len(h.sent) != 1 {
		t.Fatalf("%s: %v, %d datagrams", f.Name, err, len(h.sent))
	}
	return h.sent[0]
}

// v2Answer sends the family's IKE_SA_INIT and returns the suite chosen
// ("" if refused) and the server's one SA, if any.
func v2Answer(t *testing.T, m *ikev2.Manager, h *replayHost, f *clients.V2Family) (string, *ike.SAInfo) {
	t.Helper()
	m.Receive(v2Hello(t, f), netip.AddrPortFrom(synthServer, 500), synthClient)
	if len(h.sent) == 0 {
		t.Fatalf("%s: no answer", f.Name)
	}
	got, err := ikev2.Decode(h.sent[len(h.sent)-1])
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := ikev2.Find(got.Payloads, ikev2.PayloadSA).(*ikev2.SA)
	if sa == nil {
		return "", nil
	}
	chosen := ikev2.OfferedSuites(sa.Proposals)
	sas := m.SAs()
	if len(chosen) != 1 || len(sas) != 1 {
		t.Fatalf("%s: chose %v; SAs %+v", f.Name, chosen, sas)
	}
	return chosen[0].String(), &sas[0]
}

func TestSyntheticIKEv2Clients(t *testing.T) {
	for _, c := range []struct {
		family, want, chose string
	}{
		{"windows-dh2048", "windows", "aes256-sha256-modp2048"},
		{"apple", "apple", "aes256-sha256-modp2048"},
		// interop-android puts Curve25519 first: ours has MODP2048 first.
		{"android", "android", "aes256gcm16-prfsha256-curve25519"},
	} {
		m, h := v2Responder(t, interopWith(t, nil, allInterop()...))
		f, _ := clients.V2ByName(c.family)
		chose, sa := v2Answer(t, m, h, f)
		if chose != c.chose || sa == nil || sa.Family != c.want || sa.Plugin != "interop-"+c.want || sa.Detail == "" {
			t.Errorf("%s: chose %q, SA %+v; want %s classified as %s", c.family, chose, sa, c.chose, c.want)
		}
		if c.want == "windows" && !strings.Contains(strings.Join(sa.Flags, ","), "client-rekeys-children,rekey-modp2048-first") {
			t.Errorf("windows flags %v", sa.Flags)
		}
	}
}

// Windows's default offer (MODP1024 only) is refused, and the refusal
// names the registry value and the settings that would let it in: with
// allow_legacy and legacy_algorithms it is let in.
func TestSyntheticIKEv2WindowsDefault(t *testing.T) {
	for _, c := range []struct {
		name   string
		in     *interopHost
		refuse []string
	}{
		{"no plugins", interopWith(t, nil), []string{"NegotiateDH2048_AES256", "load the interop-windows plugin with the option allow_legacy: true"}},
		{"interop-windows", interopWith(t, nil, allInterop()...), []string{"NegotiateDH2048_AES256", "give interop-windows the option allow_legacy: true"}},
		{"allow_legacy only", interopWith(t, map[string]string{"allow_legacy": "true"}, allInterop()...),
			[]string{"interop-windows would accept aes256-sha1-modp1024", "legacy_algorithms: true"}},
		{"allowed", interopLegacy(t, map[string]string{"allow_legacy": "true"}, allInterop()...), nil},
	} {
		m, h := v2Responder(t, c.in)
		chose, sa := v2Answer(t, m, h, &clients.V2Windows)
		if c.refuse == nil {
			if chose != "aes256-sha1-modp1024" || sa.Family != "windows" {
				t.Errorf("%s: chose %q, SA %+v", c.name, chose, sa)
			}
			continue
		}
		msg := refusal(t, h)
		for _, w := range c.refuse {
			if chose != "" || !strings.Contains(msg, w) {
				t.Errorf("%s: chose %q; refusal %q lacks %q", c.name, chose, msg, w)
			}
		}
	}
}

// A client no plugin knows (strongSwan's offer) is not classified, and
// its answer is cached: new IKE SAs with the same offer cost no calls.
func TestSyntheticIKEv2Unknown(t *testing.T) {
	strongswan := &clients.V2Family{Name: "strongswan", IKE: []string{"aes256-sha256-modp2048", "aes128-sha256-ecp256", "aes128gcm16-prfsha256-curve25519"}}
	in := interopWith(t, nil, allInterop()...)
	for range 3 {
		m, h := v2Responder(t, in)
		chose, sa := v2Answer(t, m, h, strongswan)
		if chose != "aes256-sha256-modp2048" || sa.Family != "" {
			t.Fatalf("chose %q, SA %+v", chose, sa)
		}
	}
	if len(in.cache) != 1 {
		t.Fatalf("%d answers cached for one offer", len(in.cache))
	}
}
