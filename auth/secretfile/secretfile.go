// Package secretfile opens files that hold secrets (preshared keys,
// private keys, user databases, RADIUS shared secrets, keytabs) and checks
// them on the file it opened, not on its name: a regular file that group
// and others can neither read nor write, owned by root or by the user
// reading it. A symbolic link on the way is followed only when root owns
// it. Checking the opened file (fstat) means a file swapped in between
// the check and the read is still checked.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Why a file is refused; callers test with errors.Is.
var (
	ErrMode    = errors.New("key file is readable by group or others")
	ErrOwner   = errors.New("a secret file must be owned by root or by the user that reads it")
	ErrSymlink = errors.New("a secret file's symbolic link must be owned by root")
)

// maxSize bounds what Read takes: secrets are small, and a file that is
// not one (a device, /proc) must not fill memory.
const maxSize = 16 << 20

// Open opens path for reading after the checks above.
func Open(path string) (*os.File, error) {
	lst, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("key file %s does not exist", path)
		}
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if lst.Mode()&fs.ModeSymlink != 0 {
		if uid, ok := owner(lst); ok && uid != 0 {
			return nil, fmt.Errorf("%w: %s is a link owned by uid %d (anyone who owns it can point it elsewhere); link it as root, or name the file itself", ErrSymlink, path, uid)
		}
	}
	// O_NONBLOCK: a FIFO put where a secret belongs must not hold us up
	// (it has no effect on a regular file); fstat refuses it below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	st, err := f.Stat()
	if err == nil {
		err = check(path, st)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Check opens path and checks it, without reading it.
func Check(path string) error {
	f, err := Open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Read returns the contents of a secret file that passes the checks.
func Read(path string) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if len(b) > maxSize {
		clear(b)
		return nil, fmt.Errorf("key file %s is larger than %d bytes; it is not a secret file", path, maxSize)
	}
	return b, nil
}

func check(path string, st fs.FileInfo) error {
	if !st.Mode().IsRegular() {
		return fmt.Errorf("key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod 600 %s", ErrMode, path, perm, path)
	}
	if uid, ok := owner(st); ok && uid != 0 && int(uid) != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, and we run as uid %d; run chown root %s", ErrOwner, path, uid, os.Geteuid(), path)
	}
	return nil
}

func owner(st fs.FileInfo) (uint32, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return s.Uid, true
}
