package clients_test

import (
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/esp"
	"github.com/gatehouse/gatehouse/ike/clients"
	"github.com/gatehouse/gatehouse/ike/ikev2"
)

// Every IKEv2 family's suites are ones we parse, and each family has
// the traits its clients are known by: Windows offers MODP1024 only
// (legacy), Android neither MODP1024, NIST curves nor SHA-1 for ESP.
func TestV2Families(t *testing.T) {
	for _, f := range clients.V2All {
		legacy := 0
		for _, s := range f.IKE {
			p, err := ikev2.ParseProposal(s)
			if err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
			if p.Legacy() {
				legacy++
			}
		}
		for _, s := range f.ESP {
			if _, err := esp.ParseSuite(s); err != nil {
				t.Fatalf("%s: %v", f.Name, err)
			}
		}
		switch f.Name {
		case "windows":
			if legacy != len(f.IKE) {
				t.Errorf("windows: %d of %d suites legacy; Windows offers MODP1024 only", legacy, len(f.IKE))
			}
		case "android":
			if legacy != 0 || strings.Contains(strings.Join(f.IKE, " "), "ecp") || strings.Contains(strings.Join(f.ESP, " "), "sha1") {
				t.Errorf("android offers %v / %v", f.IKE, f.ESP)
			}
		}
		if g, ok := clients.V2ByName(f.Name); !ok || g != f {
			t.Errorf("V2ByName(%q)", f.Name)
		}
	}
}
