package keystore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const (
	secretSuffix = ".secret" // one file per key: <escaped key>.secret
	tempPrefix   = ".tmp-"   // os.CreateTemp pattern for files being written
	staleTemp    = time.Hour // temp files older than this were left by a killed writer
)

// fileStore keeps one 0600 file per key in a 0700 directory. Set writes a temporary file
// in the same directory, fsyncs it and renames it over the old one, so a reader (or a
// writer killed at any point) sees the old or the new value, never a torn one.
type fileStore struct {
	dir string
}

func newFileStore(dir string) (*fileStore, error) {
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	return &fileStore{dir: dir}, nil
}

func (f *fileStore) Kind() string     { return "file" }
func (f *fileStore) Describe() string { return "file store " + f.dir }

// fileName maps a key to a file name: bytes outside [A-Za-z0-9._@-] are %XX-escaped (so
// '/' can never make a path); names that would grow too long for the file system use a
// hash instead, marked with '#', which the escaped form never contains.
func fileName(key string) string { return escapeName(key) + secretSuffix }

// escapeName is fileName without the suffix; lock names use it too.
func escapeName(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '@' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > 200 {
		sum := sha256.Sum256([]byte(key))
		return "#" + hex.EncodeToString(sum[:])
	}
	return b.String()
}

func (f *fileStore) path(key string) string { return filepath.Join(f.dir, fileName(key)) }

func (f *fileStore) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: reading %q: %v", ErrUnavailable, key, err)
	}
	return b, nil
}

func (f *fileStore) Set(ctx context.Context, key string, value []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := validValue(value); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.write(f.path(key), value); err != nil {
		return fmt.Errorf("%w: writing %q: %v", ErrUnavailable, key, err)
	}
	f.removeStaleTemps()
	return nil
}

func (f *fileStore) write(dst string, value []byte) (err error) {
	// CreateTemp opens with O_CREATE|O_EXCL and mode 0600: the file is never readable by
	// others, not even for an instant, and no chmod follows its creation.
	tmp, err := os.CreateTemp(f.dir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(value); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return syncDir(f.dir)
}

func (f *fileStore) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	err := os.Remove(f.path(key))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: deleting %q: %v", ErrUnavailable, key, err)
	}
	if err == nil {
		_ = syncDir(f.dir)
	}
	return nil
}

// DeleteAll removes every secret file and any temp file left behind; locks and state
// files in the same directory stay.
func (f *fileStore) DeleteAll(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(f.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, secretSuffix) || strings.HasPrefix(n, tempPrefix)) {
			continue
		}
		if err := os.Remove(filepath.Join(f.dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = syncDir(f.dir)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// removeStaleTemps deletes temp files a killed writer left behind. Only old ones: a
// younger one may belong to a writer that is still running.
func (f *fileStore) removeStaleTemps() {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			_ = os.Remove(filepath.Join(f.dir, e.Name()))
		}
	}
}

// syncDir makes a rename or removal durable. Not every platform can fsync a directory
// (Windows cannot open one for it); that is not an error.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}
