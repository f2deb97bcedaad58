package keystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// maxValue is the largest value a Store accepts (see the Store documentation).
const maxValue = 64 << 10

// defaultTimeout bounds one keychain call when Options.Timeout is zero.
const defaultTimeout = 3 * time.Second

// validKey enforces the documented key alphabet, so a key can never name a path outside
// the store nor collide with the keychain backend's part names (which use '#').
func validKey(key string) error {
	if key == "" || len(key) > 200 {
		return fmt.Errorf("invalid store key: length %d not in 1..200", len(key))
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '@', c == '-':
		default:
			return fmt.Errorf("invalid store key %q: character %q not allowed", key, c)
		}
	}
	return nil
}

func validValue(v []byte) error {
	if len(v) > maxValue {
		return fmt.Errorf("value of %d bytes exceeds the store limit of %d bytes", len(v), maxValue)
	}
	return nil
}

// ensureDir creates dir with mode 0700 when it does not exist, and makes sure an existing
// one is private (CONTRACT section 3: "directory 0700"): anyone else who can write to the
// store directory could plant a secret or session file that Get would then serve.
//   - A relative dir is refused: the store would depend on the working directory.
//   - A directory that exists with group or other permission bits is tightened to 0700
//     when the effective user owns it, and refused (ErrUnavailable) when someone else
//     does, or when it is a shared sticky directory such as /tmp.
//
// One we create is chmod-ed too, because the umask may have stripped bits from
// MkdirAll's 0700. Where permission bits mean nothing (Windows) only existence is checked.
func ensureDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: no store directory configured", ErrUnavailable)
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%w: store directory %q is not an absolute path (it would depend on the working directory); set CGR_STORE_DIR to an absolute path", ErrUnavailable, dir)
	}
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrUnavailable, dir)
		}
		return privateDir(dir, fi, false)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: creating %s: %v", ErrUnavailable, dir, err)
	}
	// Stat again rather than chmod blindly: another process (or user) may have created
	// the directory between our Stat and MkdirAll.
	if fi, err = os.Stat(dir); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return privateDir(dir, fi, true)
}

// privateDir tightens or refuses a store directory with group/other bits. One just
// created is also given back the owner bits a strange umask may have stripped.
func privateDir(dir string, fi fs.FileInfo, created bool) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	perm := fi.Mode().Perm()
	uid, ok := fileOwner(fi)
	if !ok {
		return nil // no uid to compare (not a unix system)
	}
	mine := uid == os.Geteuid()
	if perm&0o077 == 0 {
		if !created || !mine || perm == 0o700 {
			return nil
		}
	} else if fi.Mode()&fs.ModeSticky != 0 {
		return fmt.Errorf("%w: %s is a shared (sticky) directory open to others; use a directory only you can write (CGR_STORE_DIR)", ErrUnavailable, dir)
	} else if !mine {
		return fmt.Errorf("%w: %s is owned by uid %d and open to others; use a directory only you can write (CGR_STORE_DIR)", ErrUnavailable, dir, uid)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("%w: making %s private (0700): %v", ErrUnavailable, dir, err)
	}
	return nil
}

// within runs f in a goroutine and gives up when ctx is done. A keychain call can block
// forever (an unlock prompt nobody answers, a wedged D-Bus peer); the goroutine is then
// abandoned, which is acceptable in a short-lived helper process.
func within[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
