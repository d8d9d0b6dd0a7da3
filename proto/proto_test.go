// Package proto holds the .proto files and, under gen/, the Go generated
// from them with `make proto`.
package proto

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates the Go code into a temporary folder
// with the pinned generators and compares it with proto/gen.
func TestGeneratedCodeIsFresh(t *testing.T) {
	tools, err := filepath.Abs("../.tools/bin")
	if err != nil {
		t.Fatal(err)
	}
	buf := filepath.Join(tools, "buf")
	if _, err := os.Stat(buf); err != nil {
		t.Fatalf("%s not found: run `make tools` (make test does) to install the pinned buf and protoc plugins", buf)
	}
	out := t.TempDir()
	cmd := exec.Command(buf, "generate", "-o", out)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "PATH="+tools+":"+os.Getenv("PATH"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, b)
	}
	fresh := filepath.Join(out, "proto", "gen")
	seen := map[string]bool{}
	filepath.WalkDir(fresh, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(fresh, p)
		seen[rel] = true
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join("gen", rel))
		if err != nil {
			t.Errorf("proto/gen/%s is missing; run make proto and commit", rel)
		} else if !bytes.Equal(got, want) {
			t.Errorf("proto/gen/%s is stale; run make proto and commit", rel)
		}
		return nil
	})
	filepath.WalkDir("gen", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("gen", p)
		if !seen[rel] {
			t.Errorf("proto/gen/%s is not generated from any .proto; delete it", rel)
		}
		return nil
	})
}
