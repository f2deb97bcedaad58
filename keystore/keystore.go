// Package keystore is where secrets rest: the OS keychain or a file store, a cross-process
// lock, and sharing one store between a user and `sudo`. It knows nothing of tokens.
package keystore

import (
	"context"
	"errors"
	"io"
	"time"
)

// Service is the keychain service name every item is filed under.
const Service = "docker-credential-cgr"

var (
	// ErrNotFound: no item under that key.
	ErrNotFound = errors.New("not found in the store")
	// ErrLocked: the keychain is locked and did not unlock within the deadline.
	ErrLocked = errors.New("the keychain is locked")
	// ErrUnavailable: the chosen backend cannot be reached (no session bus, no Secret
	// Service, a deadline passed, a read-only or full disk ...). Wrapped with the detail.
	ErrUnavailable = errors.New("the secret store is unavailable")
)

// Store holds small secrets under string keys ("session", "token/cgr.dev", "pull/cgr.dev", ...).
// Keys are at most 200 bytes of [A-Za-z0-9._:/@-]; values up to 64 KiB (the keychain backend
// splits what its platform cannot hold in one item). Every call honours ctx's deadline.
type Store interface {
	// Get returns the value, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set replaces the value atomically: a reader sees the old or the new value, never a mix.
	Set(ctx context.Context, key string, value []byte) error
	// Delete removes the key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// DeleteAll removes every item this program stored in this backend.
	DeleteAll(ctx context.Context) error
	// Describe says where secrets rest, for `status` and `doctor`
	// ("Secret Service keychain (gnome-keyring)", "file store /home/u/.local/share/...").
	Describe() string
	// Kind is "keychain" or "file".
	Kind() string
}

// Options choose and configure a backend.
type Options struct {
	Backend string        // "auto", "keychain" or "file"
	Dir     string        // file store, locks and state directory (created 0700 when needed)
	Timeout time.Duration // deadline for one keychain call when ctx has none sooner; 0: 3s
	// Notice receives the one-time line printed when "auto" falls back to the file store
	// (usually stderr). The line is shown once per Dir, then remembered in Dir.
	Notice io.Writer
	// Getenv reads the environment (DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR); nil: os.Getenv.
	Getenv func(string) string

	recorded bool // auto recorded the keychain: opened without checking the service first
}

// Unusable says why nothing can be stored in s (its directory does not exist and cannot be
// created: a read-only home, a hardened container), or nil. Such a store reads as empty, so
// `get` answers not-found and public images still pull; `doctor` names it.
func Unusable(s Store) error {
	if r, ok := s.(*remembered); ok {
		s = r.Store
	}
	if u, ok := s.(interface{ unusable() error }); ok {
		return u.unusable()
	}
	return nil
}
