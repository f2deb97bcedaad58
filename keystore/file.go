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

	"github.com/cgrtools/docker-credential-cgr/internal/fsread"
)

const (
	secretSuffix = ".secret" // one file per key: <escaped key>.secret
	tempPrefix   = ".tmp-"   // os.CreateTemp pattern for files being written: .tmp-<escaped key>-<random>
	createTries  = 50        // createTemp's tries at a temp file no sweep is looking at
)

// fileStore keeps one 0600 file per key in a 0700 directory. Set writes a temporary file
// in the same directory, fsyncs it and renames it over the old one, so a reader (or a
// writer killed at any point) sees the old or the new value, never a torn one.
//
// A temp file holds a secret, so none may outlive the next run: its writer holds an
// exclusive lock on it from creation until the rename, and every run that opens the store
// removes the temp files it can lock, whose writers are gone (killed, or the machine lost
// power). A writer still running is never robbed of its file.
type fileStore struct {
	dir string
	// missing: the directory does not exist and cannot be created (a read-only home, a
	// hardened container). Nothing can be stored there, so nothing is: reads find nothing,
	// writes fail with this error (ErrUnavailable and the reason).
	missing error
}

func newFileStore(dir string) (*fileStore, error) {
	if err := ensureDir(dir); err != nil {
		var md *missingDirError
		if errors.As(err, &md) {
			return &fileStore{dir: dir, missing: err}, nil
		}
		return nil, err
	}
	f := &fileStore{dir: dir}
	f.removeAbandonedTemps()
	return f, nil
}

func (f *fileStore) Kind() string { return "file" }
func (f *fileStore) Describe() string {
	if f.missing != nil {
		var md *missingDirError
		if errors.As(f.missing, &md) {
			return fmt.Sprintf("file store %s (cannot be created: %v)", f.dir, pathErrCause(md.err))
		}
	}
	return "file store " + f.dir
}

// unusable is why nothing can be stored, or nil (see Unusable).
func (f *fileStore) unusable() error { return f.missing }

// fileName maps a key to a file name: bytes outside [A-Za-z0-9._@-] are %XX-escaped (so
// '/' can never make a path); names that would grow too long for the file system use a
// hash instead, marked with '#', which the escaped form never contains.
func fileName(key string) string { return escapeName(key) + secretSuffix }

// escapeName is fileName without the suffix; lock names use it too.
func escapeName(key string) string {
	const upperHex = "0123456789ABCDEF" // %02X, without fmt on every get
	var b strings.Builder
	b.Grow(len(key) + 32)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '@' || c == '-' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
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
	if f.missing != nil {
		return nil, fmt.Errorf("%q: %w", key, ErrNotFound)
	}
	b, err := fsread.ReadFile(f.path(key))
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
	if f.missing != nil {
		return fmt.Errorf("writing %q: %w", key, f.missing)
	}
	if err := f.write(key, value); err != nil {
		return fmt.Errorf("%w: writing %q: %v", ErrUnavailable, key, err)
	}
	return nil
}

func (f *fileStore) write(key string, value []byte) (err error) {
	dst := f.path(key)
	tmp, err := f.createTemp(key)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name())
		}
		_ = tmp.Close() // after the rename: releases the temp file's lock
	}()
	if _, err = tmp.Write(value); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if !renameOpenFile {
		if err = tmp.Close(); err != nil {
			return err
		}
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	return syncDir(f.dir)
}

// createTemp creates a temp file for key, locked (lockTemp) and still in place. CreateTemp
// opens with O_CREATE|O_EXCL and mode 0600: it never follows a link, the file is never
// readable by others, not even for an instant, and no chmod follows its creation. Between
// its creation and its lock, another run's sweep may look at it (holding its lock for an
// instant) or take it for abandoned and remove it; then a new one is made. Many parallel
// helpers sweep often, so that is tried up to createTries times, pausing a millisecond
// from the third try on (three tries were too few: TestFileSetsSurviveTempSweeps).
func (f *fileStore) createTemp(key string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		if attempt >= 2 {
			time.Sleep(time.Millisecond)
		}
		tmp, err := os.CreateTemp(f.dir, tempPrefix+escapeName(key)+"-*")
		if err != nil {
			return nil, err
		}
		err = lockTemp(tmp)
		if err == nil {
			var fi, li fs.FileInfo
			if fi, err = tmp.Stat(); err == nil {
				if li, err = os.Lstat(tmp.Name()); err == nil && !os.SameFile(fi, li) {
					err = fs.ErrNotExist
				}
			}
			if err == nil {
				return tmp, nil
			}
		}
		_ = tmp.Close()
		// Left in place, empty and unlocked: the sweep that is looking at it removes it.
		if attempt == createTries-1 {
			return nil, fmt.Errorf("creating a temp file: %w", err)
		}
	}
}

func (f *fileStore) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if f.missing != nil {
		return nil // nothing can be stored, so nothing is
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
	if f.missing != nil {
		return nil
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

// removeAbandonedTemps deletes the temp files whose writers are gone (removeAbandoned): a
// temp file holds a secret, and one left by a killed writer must not outlive this run.
// It runs on every open (every get), so it reads names only, unsorted; a name is looked at
// further only when it is a temp file's.
func (f *fileStore) removeAbandonedTemps() {
	d, err := fsread.Open(f.dir)
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	_ = d.Close()
	removed := false
	for _, n := range names {
		if strings.HasPrefix(n, tempPrefix) {
			removed = removeAbandoned(filepath.Join(f.dir, n)) || removed
		}
	}
	if removed {
		_ = syncDir(f.dir)
	}
}

// syncDir makes a rename or removal durable. Not every platform can fsync a directory
// (Windows cannot open one for it); that is not an error.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := fsread.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, fs.ErrInvalid) && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}
