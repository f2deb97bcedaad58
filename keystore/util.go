package keystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
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
// one may be trusted with secrets (CONTRACT sections 3 and 3a): anyone else who can write to
// the store directory could plant a session or a pull token that Get would then serve.
//   - A relative dir is refused: the store would depend on the working directory.
//   - A directory (or a link to one) owned by someone other than the effective user or root
//     is refused (ErrUnavailable), whatever its mode.
//   - A directory writable by group or others is refused, even when ours: files may already
//     have been planted in it, so it is not silently tightened; the line says how to fix it.
//   - A directory of ours that others can only read or enter is tightened to 0700: nothing
//     can have been planted, and the names of what it holds are nobody else's business.
//
// A dir that does not exist and cannot be created (a read-only home, a hardened container)
// is a *missingDirError: nothing can be stored there, so nothing is. One we create is
// chmod-ed too, because the umask may have stripped bits from MkdirAll's 0700. Where
// permission bits mean nothing (Windows) only existence is checked.
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
		if err := trustedLink(dir); err != nil {
			return err
		}
		return privateDir(dir, fi, false)
	}
	if errors.Is(err, syscall.ENOTDIR) { // a parent is a file: no store can be there
		return &missingDirError{dir: dir, err: err}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &missingDirError{dir: dir, err: err}
	}
	// Stat again rather than chmod blindly: another process (or user) may have created
	// the directory between our Stat and MkdirAll.
	if fi, err = os.Stat(dir); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return privateDir(dir, fi, true)
}

// missingDirError: the store directory does not exist and cannot be created.
type missingDirError struct {
	dir string
	err error
}

func (e *missingDirError) Error() string {
	return fmt.Sprintf("%v: the store directory %s cannot be created (%v); nothing is stored there; make it writable or set CGR_STORE_DIR to a writable directory", ErrUnavailable, e.dir, pathErrCause(e.err))
}

func (e *missingDirError) Unwrap() error { return ErrUnavailable }

// pathErrCause is err without the path a *fs.PathError repeats ("read-only file system").
func pathErrCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// trustedLink refuses a store dir that is a symbolic link owned by someone other than the
// effective user or root: whoever owns the link chooses where secrets go.
func trustedLink(dir string) error {
	li, err := os.Lstat(dir)
	if err != nil || li.Mode()&fs.ModeSymlink == 0 {
		return nil
	}
	if uid, ok := fileOwner(li); ok && uid != os.Geteuid() && uid != 0 {
		return fmt.Errorf("%w: %s is a link owned by uid %d, not by you: not used; use a directory of your own (CGR_STORE_DIR)", ErrUnavailable, dir, uid)
	}
	return nil
}

// privateDir refuses a store directory that is not the user's (or root's) or that others
// can write, and tightens one of ours that others can read. One just created is also given
// back the owner bits a strange umask may have stripped.
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
	switch {
	case !mine && uid != 0:
		return fmt.Errorf("%w: %s is owned by uid %d, not by you: not used; use a directory of your own (CGR_STORE_DIR)", ErrUnavailable, dir, uid)
	case perm&0o022 != 0 && fi.Mode()&fs.ModeSticky != 0:
		return fmt.Errorf("%w: %s is a shared (sticky) directory open to others; use a directory only you can write (CGR_STORE_DIR)", ErrUnavailable, dir)
	case perm&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by others (mode %04o): not used, anyone could have put a credential there; check what it holds, then chmod 700 %s", ErrUnavailable, dir, perm, dir)
	case !mine: // root's and closed to others: usable as it is
		return nil
	case perm&0o077 == 0 && (!created || perm == 0o700):
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		if errors.Is(err, syscall.EROFS) && !created {
			return nil // read-only: nobody can plant anything, and we cannot store anything
		}
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
