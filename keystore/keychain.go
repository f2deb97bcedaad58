package keystore

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zalando/go-keyring"
)

const (
	// itemMax is the largest value kept in one keychain item. Windows Credential Manager
	// holds 2560 bytes per credential and macOS about 3000 for service, account and the
	// (base64-encoded) password together; larger values are split into parts.
	itemMax = 2000
	// chunkMagic starts the header item of a split value:
	// "cgr-chunks:1:<generation>:<parts>:<sha256 of the value>".
	chunkMagic = "cgr-chunks:"
)

// keyringAPI is the subset of go-keyring the keychain backend uses; tests substitute it.
type keyringAPI interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
	DeleteAll(service string) error
}

type goKeyring struct{}

func (goKeyring) Get(s, u string) (string, error) { return keyring.Get(s, u) }
func (goKeyring) Set(s, u, p string) error        { return keyring.Set(s, u, p) }
func (goKeyring) Delete(s, u string) error        { return keyring.Delete(s, u) }
func (goKeyring) DeleteAll(s string) error        { return keyring.DeleteAll(s) }

// keychain is the OS keychain through go-keyring, guarded: every Store call runs under a
// deadline (a locked keyring's unlock prompt may never complete), errors are mapped to
// ErrNotFound, ErrLocked or ErrUnavailable, and values too big for one item are split.
type keychain struct {
	api     keyringAPI
	service string
	timeout time.Duration
	sys     keychainSystem
}

// keychainSystem is what differs per OS: how to describe the keychain and how to tell,
// after a failure or a timeout, whether it is locked.
type keychainSystem interface {
	describe() string
	locked(ctx context.Context) bool
	present(ctx context.Context) error // nil, or why no keychain answers (ErrUnavailable)
}

func (k *keychain) Kind() string     { return "keychain" }
func (k *keychain) Describe() string { return k.sys.describe() }

// bound applies the per-call deadline unless ctx already has a sooner one.
func (k *keychain) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, k.timeout)
}

// call runs one go-keyring operation under ctx and maps its outcome.
func (k *keychain) call(ctx context.Context, op func() error) error {
	_, err := within(ctx, func() (struct{}, error) { return struct{}{}, op() })
	return k.mapErr(ctx, err)
}

func (k *keychain) get(ctx context.Context, user string) (string, error) {
	var v string
	err := k.call(ctx, func() (err error) { v, err = k.api.Get(k.service, user); return err })
	return v, err
}

func (k *keychain) set(ctx context.Context, user, value string) error {
	return k.call(ctx, func() error { return k.api.Set(k.service, user, value) })
}

func (k *keychain) del(ctx context.Context, user string) error {
	err := k.call(ctx, func() error { return k.api.Delete(k.service, user) })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// errLockedFix is what a locked keychain reports, with the way out. A type of its own rather
// than fmt.Errorf's, so that no package initialisation formats it on every start.
var errLockedFix error = lockedFixError{}

type lockedFixError struct{}

func (lockedFixError) Error() string {
	return ErrLocked.Error() + "; unlock it (e.g. log in to the desktop) or set CGR_STORE=file"
}
func (lockedFixError) Unwrap() error { return ErrLocked }

func (k *keychain) mapErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keyring.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return fmt.Errorf("%w: item too big for the keychain", ErrUnavailable)
	}
	// A failure or a timeout: find out (briefly, the caller's deadline may be spent)
	// whether the keychain is locked, which is the usual reason and has its own fix.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 500*time.Millisecond)
	defer cancel()
	if k.sys.locked(lctx) {
		return errLockedFix
	}
	if perr := k.sys.present(lctx); perr != nil {
		return perr // no Secret Service at all: say that, not the library's words
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %s did not answer in time", ErrUnavailable, k.sys.describe())
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, k.sys.describe(), err)
}

func (k *keychain) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	ctx, cancel := k.bound(ctx)
	defer cancel()
	var last error
	// A split value is read header first, then its parts. A concurrent Set may replace
	// the header and delete the parts we are about to read; the checksum catches any
	// mix, and we start over from the new header.
	for attempt := 0; attempt < 5; attempt++ {
		v, err := k.get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%q: %w", key, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		h, ok := parseHeader(v)
		if !ok {
			return []byte(v), nil
		}
		b, err := k.readParts(ctx, key, h)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, errTorn) {
			return nil, err
		}
		last = err
	}
	// The same header kept pointing at missing or mismatching parts: the item is broken
	// (e.g. a writer died between parts and header of an older layout). Treat it as
	// absent so the caller stores it afresh.
	return nil, fmt.Errorf("%q: keychain item incomplete (%v): %w", key, last, ErrNotFound)
}

var errTorn = errors.New("parts do not match the header")

type header struct {
	gen   string
	parts int
	sum   string
}

func (h header) String() string {
	return fmt.Sprintf("%s1:%s:%d:%s", chunkMagic, h.gen, h.parts, h.sum)
}

func partKey(key, gen string, i int) string { return fmt.Sprintf("%s#%s.%d", key, gen, i) }

func parseHeader(v string) (header, bool) {
	rest, ok := strings.CutPrefix(v, chunkMagic+"1:")
	if !ok {
		return header{}, false
	}
	f := strings.Split(rest, ":")
	if len(f) != 3 {
		return header{}, false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 1 || n > maxValue/itemMax+1 || f[0] == "" || len(f[2]) != 64 {
		return header{}, false
	}
	return header{gen: f[0], parts: n, sum: f[2]}, true
}

func (k *keychain) readParts(ctx context.Context, key string, h header) ([]byte, error) {
	var buf bytes.Buffer
	for i := 1; i <= h.parts; i++ {
		p, err := k.get(ctx, partKey(key, h.gen, i))
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("%w: part %d missing", errTorn, i)
		}
		if err != nil {
			return nil, err
		}
		buf.WriteString(p)
	}
	sum := sha256.Sum256(buf.Bytes())
	if hex.EncodeToString(sum[:]) != h.sum {
		return nil, fmt.Errorf("%w: checksum mismatch", errTorn)
	}
	return buf.Bytes(), nil
}

// Set writes a small value as one item. A large one is written as parts under a fresh
// generation id first and then the header that names them, so the single-item replace of
// the header is the commit point: a reader sees the old header (whose parts are still
// there) or the new one (whose parts are complete). Old parts are deleted last.
// Concurrent Sets of one key should hold Lock (as every read-modify-write does);
// without it the loser's parts may stay behind as garbage until DeleteAll, but a reader
// still never sees a mix.
func (k *keychain) Set(ctx context.Context, key string, value []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := validValue(value); err != nil {
		return err
	}
	ctx, cancel := k.bound(ctx)
	defer cancel()
	old, err := k.get(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	oldHeader, hadParts := parseHeader(old)

	if len(value) <= itemMax && !bytes.HasPrefix(value, []byte(chunkMagic)) {
		if err := k.set(ctx, key, string(value)); err != nil {
			return err
		}
	} else {
		var g [6]byte
		_, _ = rand.Read(g[:])
		sum := sha256.Sum256(value)
		h := header{gen: hex.EncodeToString(g[:]), parts: (len(value) + itemMax - 1) / itemMax, sum: hex.EncodeToString(sum[:])}
		for i := 1; i <= h.parts; i++ {
			part := value[(i-1)*itemMax : min(i*itemMax, len(value))]
			if err := k.set(ctx, partKey(key, h.gen, i), string(part)); err != nil {
				k.deleteParts(ctx, key, header{gen: h.gen, parts: i})
				return err
			}
		}
		if err := k.set(ctx, key, h.String()); err != nil {
			k.deleteParts(ctx, key, h)
			return err
		}
	}
	if hadParts {
		k.deleteParts(ctx, key, oldHeader)
	}
	return nil
}

// deleteParts removes the parts of a split value, best effort: a leftover part is
// garbage, never read, and DeleteAll removes it.
func (k *keychain) deleteParts(ctx context.Context, key string, h header) {
	for i := 1; i <= h.parts; i++ {
		if err := k.del(ctx, partKey(key, h.gen, i)); err != nil && ctx.Err() != nil {
			return
		}
	}
}

func (k *keychain) Delete(ctx context.Context, key string) error {
	if err := validKey(key); err != nil {
		return err
	}
	ctx, cancel := k.bound(ctx)
	defer cancel()
	old, err := k.get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := k.del(ctx, key); err != nil {
		return err
	}
	if h, ok := parseHeader(old); ok {
		k.deleteParts(ctx, key, h)
	}
	return nil
}

func (k *keychain) DeleteAll(ctx context.Context) error {
	ctx, cancel := k.bound(ctx)
	defer cancel()
	err := k.call(ctx, func() error { return k.api.DeleteAll(k.service) })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
