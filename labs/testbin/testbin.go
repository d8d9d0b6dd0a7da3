// Package testbin builds the project's binaries for tests that run them as
// processes (end-to-end tests, labs, the demo test).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Build runs `go build` for each package (a path relative to the caller's
// folder, or an import path) into dir/name and returns dir; with dir "" a
// temporary folder is made, which the caller removes.
func Build(dir string, pkgs map[string]string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "gatehouse-testbin"); err != nil {
			return "", err
		}
	}
	for pkg, name := range pkgs {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			return dir, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir, nil
}

// Main is the body of a TestMain that needs binaries: it builds them, sets
// *dir, runs the tests and cleans up.
func Main(run func() int, dir *string, pkgs map[string]string) {
	d, err := Build("", pkgs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(d)
		os.Exit(1)
	}
	*dir = d
	code := run()
	os.RemoveAll(d)
	os.Exit(code)
}
