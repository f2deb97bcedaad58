package keystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// ensureDir creates dir with mode 0700 when it does not exist. A directory that already
// exists is left as it is (the user may have chosen its mode); only one we created is
// chmod-ed, because the umask may have stripped bits from MkdirAll's 0700.
func ensureDir(dir string) error {
	if dir == "" {
		return fmt.Errorf("%w: no store directory configured", ErrUnavailable)
	}
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%w: %s is not a directory", ErrUnavailable, dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("%w: creating %s: %v", ErrUnavailable, dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
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
