package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func write(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestModes(t *testing.T) {
	dir := t.TempDir()
	if b, err := Read(write(t, dir, "good", 0o600)); err != nil || string(b) != "s3cret\n" {
		t.Fatalf("a 0600 file: %q %v", b, err)
	}
	if err := Check(write(t, dir, "ro", 0o400)); err != nil {
		t.Fatalf("a 0400 file: %v", err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o620, 0o666} {
		if _, err := Read(write(t, dir, "open", mode)); !errors.Is(err, ErrMode) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	if err := Check(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a folder: %v", err)
	}
	if err := Check(filepath.Join(dir, "nope")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing file: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err == nil {
		// Opening a FIFO for reading would block until a writer comes;
		// Lstat sees it first.
		if err := Check(fifo); err == nil {
			t.Errorf("a FIFO passed")
		}
	}
}

// TestOwnersAndLinks (as root): a file another user owns is refused (it
// could change it); a link is followed only when root owns the link.
func TestOwnersAndLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: changing owners needs root; make test runs as root")
	}
	dir := t.TempDir()
	theirs := write(t, dir, "theirs", 0o600)
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(theirs); !errors.Is(err, ErrOwner) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("a file nobody owns: %v", err)
	}
	good := write(t, dir, "good", 0o600)
	rootLink := filepath.Join(dir, "root-link")
	if err := os.Symlink(good, rootLink); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(rootLink); err != nil {
		t.Fatalf("root's link to a good file: %v", err)
	}
	theirLink := filepath.Join(dir, "their-link")
	os.Symlink(good, theirLink)
	if err := os.Lchown(theirLink, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(theirLink); !errors.Is(err, ErrSymlink) {
		t.Fatalf("another user's link: %v", err)
	}
	// Root's link to a bad file: the file is what is checked.
	bad := write(t, dir, "bad", 0o644)
	badLink := filepath.Join(dir, "bad-link")
	os.Symlink(bad, badLink)
	if _, err := Read(badLink); !errors.Is(err, ErrMode) {
		t.Fatalf("a link to a 0644 file: %v", err)
	}
}
