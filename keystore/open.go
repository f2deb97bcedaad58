package keystore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

const (
	// probeTimeout bounds auto's check for a usable keychain; it runs on every docker pull.
	probeTimeout = 1500 * time.Millisecond
	// probeKey is read, never written, to see whether the keychain answers.
	probeKey = "probe"
	// noticeFile in Options.Dir records that auto's fallback notice was shown.
	noticeFile = "file-store-notice.state"
)

// Open returns the backend o.Backend names:
//   - "file": the file store in o.Dir.
//   - "keychain": the OS keychain, or an error wrapping ErrUnavailable when it cannot be
//     reached (on Linux: no session bus, no Secret Service).
//   - "auto" (or ""): the keychain when it answers a probe read within 1.5s (not found
//     counts as an answer; so does "locked", since the user's secrets are most likely
//     in it and the locked error says how to unlock or opt out), else the file store, with
//     a one-line notice to o.Notice the first time for this o.Dir.
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
		return openKeychain(ctx, o)
	case "auto", "":
		return openAuto(ctx, o)
	}
	return nil, fmt.Errorf("unknown store backend %q (want auto, keychain or file)", o.Backend)
}

func openKeychain(ctx context.Context, o Options) (*keychain, error) {
	sys, err := newKeychainSystem(ctx, o.Getenv)
	if err != nil {
		return nil, err
	}
	return &keychain{api: goKeyring{}, service: Service, timeout: o.Timeout, sys: sys}, nil
}

func openAuto(ctx context.Context, o Options) (Store, error) {
	kc, err := probeKeychain(ctx, o)
	if err == nil {
		return kc, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	fst, ferr := newFileStore(o.Dir)
	if ferr != nil {
		return nil, ferr
	}
	notifyOnce(o, err)
	return fst, nil
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
