package keystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/fsread"
)

const (
	// probeTimeout bounds auto's check for a usable keychain; it runs on every docker pull.
	probeTimeout = 1500 * time.Millisecond
	// probeKey is read, never written, to see whether the keychain answers.
	probeKey = "probe"
	// noticeFile in Options.Dir records that auto's fallback notice was shown.
	noticeFile = "file-store-notice.state"
	// chosenFile in Options.Dir records where "auto" first put a secret ("keychain" or
	// "file"); later runs look there and only there. Without it a keychain that is slow or
	// gone for one run would send get to an empty file store (a silent anonymous pull and a
	// bare 401), and a keychain that appears later would hide a login kept in files.
	chosenFile = "auto-store.state"
)

// Open returns the backend o.Backend names:
//   - "file": the file store in o.Dir. A dir that does not exist and cannot be created gives
//     a store that holds nothing and takes no writes (see Unusable), not an error.
//   - "keychain": the OS keychain, or an error wrapping ErrUnavailable when it cannot be
//     reached (on Linux: no session bus, no Secret Service).
//   - "auto" (or ""): the keychain when it answers a probe read within 1.5s (not found
//     counts as an answer; so does "locked", since the user's secrets are most likely
//     in it and the locked error says how to unlock or opt out), else the file store, with
//     a one-line notice to o.Notice the first time for this o.Dir. Once auto has stored
//     a secret, that choice sticks (recorded in o.Dir): a file store is opened without
//     probing, and a keychain that no longer answers is an error that says so, never a
//     silent switch to an empty file store.
func Open(ctx context.Context, o Options) (Store, error) {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	switch o.Backend {
	case "file":
		return newFileStore(o.Dir)
	case "keychain":
		ctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		o.recorded = true // the first read says whether it answers (see keychain.mapErr)
		return openKeychain(ctx, o)
	case "auto", "":
		return openAuto(ctx, o)
	}
	return nil, fmt.Errorf("unknown store backend %q (want auto, keychain or file)", o.Backend)
}

func openKeychain(ctx context.Context, o Options) (*keychain, error) {
	sys, err := newKeychainSystem(ctx, o.Getenv, !o.recorded)
	if err != nil {
		return nil, err
	}
	return &keychain{api: newKeyringAPI(), service: Service, timeout: o.Timeout, sys: sys}, nil
}

func openAuto(ctx context.Context, o Options) (Store, error) {
	switch chosen(o.Dir) {
	case "file":
		fst, err := newFileStore(o.Dir)
		if err != nil {
			return nil, err
		}
		return &remembered{Store: fst, dir: o.Dir, done: true}, nil
	case "keychain":
		// No probe read: the first real read says whether the keychain answers (a D-Bus
		// round trip less on every get), and its failure is worded as the probe's was.
		kctx, cancel := context.WithTimeout(ctx, min(probeTimeout, o.Timeout))
		defer cancel()
		o.recorded = true
		kc, err := openKeychain(kctx, o)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, keptInKeychain(err)
		}
		return &remembered{Store: chosenKeychain{kc}, dir: o.Dir, done: true}, nil
	}
	kc, err := probeKeychain(ctx, o)
	if err == nil {
		return &remembered{Store: kc, dir: o.Dir}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	fst, ferr := newFileStore(o.Dir)
	if ferr != nil {
		return nil, ferr
	}
	if fst.missing == nil { // else nothing is kept anywhere, which doctor says
		notifyOnce(o, err)
	}
	return &remembered{Store: fst, dir: o.Dir}, nil
}

// keptInKeychain words a keychain failure when auto recorded the keychain as where the
// credentials are: never a silent switch to an empty file store.
func keptInKeychain(err error) error {
	why := strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
	return fmt.Errorf("%w: your credentials are kept in the keychain, which did not answer (%s); start or unlock it, or set CGR_STORE=file and log in again", ErrUnavailable, why)
}

// chosenKeychain is the keychain auto recorded: a read it cannot answer says where the
// credentials are and what to do.
type chosenKeychain struct{ *keychain }

func (c chosenKeychain) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := c.keychain.Get(ctx, key)
	if err != nil && errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrLocked) {
		return nil, keptInKeychain(err)
	}
	return b, err
}

// chosen is the backend auto recorded in dir, or "" when it has stored nothing yet.
func chosen(dir string) string {
	b, err := fsread.ReadFile(filepath.Join(dir, chosenFile))
	if err != nil {
		return ""
	}
	switch k := strings.TrimSpace(string(b)); k {
	case "keychain", "file":
		return k
	}
	return ""
}

// remembered is auto's first choice of backend; its first successful Set records the
// choice, so every later run opens the same backend.
type remembered struct {
	Store
	dir  string
	done bool
}

func (r *remembered) Set(ctx context.Context, key string, value []byte) error {
	if err := r.Store.Set(ctx, key, value); err != nil {
		return err
	}
	if !r.done && ensureDir(r.dir) == nil {
		// O_EXCL: when two first logins race, the first record stands.
		if f, err := os.OpenFile(filepath.Join(r.dir, chosenFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			fmt.Fprintln(f, r.Store.Kind())
			_ = f.Close()
		}
		r.done = true
	}
	return nil
}

// DeleteAll forgets the choice too: after `logout --all` the next login probes again.
func (r *remembered) DeleteAll(ctx context.Context) error {
	if err := r.Store.DeleteAll(ctx); err != nil {
		return err
	}
	if Unusable(r.Store) != nil {
		return nil // no directory, no record
	}
	if err := os.Remove(filepath.Join(r.dir, chosenFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// probeKeychain returns the keychain when it is usable, judged by one bounded read.
func probeKeychain(ctx context.Context, o Options) (*keychain, error) {
	pctx, cancel := context.WithTimeout(ctx, min(probeTimeout, o.Timeout))
	defer cancel()
	kc, err := openKeychain(pctx, o)
	if err != nil {
		return nil, err
	}
	_, err = kc.Get(pctx, probeKey)
	if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrLocked) {
		return kc, nil
	}
	return nil, err
}

// notifyOnce prints the fallback notice unless it was shown before for this directory.
// Creating the marker with O_EXCL makes "once" hold across concurrent helpers too.
func notifyOnce(o Options, why error) {
	if o.Notice == nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(o.Dir, noticeFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return
	}
	if err == nil {
		fmt.Fprintf(f, "shown %s\n", time.Now().UTC().Format(time.RFC3339))
		_ = f.Close()
	}
	fmt.Fprintf(o.Notice, "docker-credential-cgr: no usable keychain (%v); keeping credentials in %s (files only you can read). Set CGR_STORE=file to keep it so, or CGR_STORE=keychain to require a keychain.\n", why, o.Dir)
}
