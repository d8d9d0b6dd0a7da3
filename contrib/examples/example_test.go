// Package examples checks that the shipped example configurations are valid.
package examples

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/policy"
)

func TestExampleConfigIsValid(t *testing.T) {
	raw, err := os.ReadFile("gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, k := range []string{"netb.psk", "l2tp.psk"} {
		if err := os.WriteFile(filepath.Join(dir, k), []byte("example-key-material\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := strings.ReplaceAll(string(raw), "/etc/gatehouse/", dir+"/")
	c, err := config.Parse("gatehouse.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.FromConfig(c)
	if err != nil || len(p.Rules) != 4 {
		t.Fatalf("policy: %v (%d rules)", err, len(p.Rules))
	}
}
