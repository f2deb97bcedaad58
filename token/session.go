package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// LoginCommand is the command that fixes a missing, expired or revoked session.
const LoginCommand = "docker-credential-cgr login"

// ErrLoginRequired is wrapped by a *FixableError when only a new login can help (the session
// expired, its refresh token was revoked or rejected, its identity is gone).
var ErrLoginRequired = errors.New("a new login is required")

// errSessionDamaged: the stored session is unreadable. It also wraps keystore.ErrNotFound, so
// everything but `get` treats it as no session (login overwrites it, logout removes it).
var errSessionDamaged = errors.New("the stored session is damaged")

// ErrNotCacheable is returned (wrapped) by Remember for a secret it will not cache: not a
// Chainguard token of this issuer, or already expired.
var ErrNotCacheable = errors.New("not a cacheable token")

// expiryMargin: a cached token with less than this left (issuer clock; for short-lived
// tokens, a tenth of the lifetime: see Token.Usable) is treated as expired,
// even when the issuer is unreachable, so a pull never starts with a token about to die.
const expiryMargin = 10 * time.Second

// usableRenewTimeout bounds a refresh when the cached token, though not fresh, is still
// usable and would be served if the issuer does not answer.
const usableRenewTimeout = 5 * time.Second

// sessionTimeout bounds one Token call when the caller's ctx has no deadline.
const sessionTimeout = 45 * time.Second

// Session is the login session of one issuer: a refresh token in the store, and the
// Chainguard tokens minted from it cached per audience.
type Session struct {
	d   Deps
	sts *STS
	ih  string // issuer host: scopes every key
}

// NewSession returns the session of d.Settings.Issuer. It touches nothing until used.
func NewSession(d Deps) *Session {
	return &Session{d: d, sts: NewSTS(d), ih: strings.ToLower(d.Settings.IssuerHost())}
}

// SessionInfo describes the stored session (store only).
type SessionInfo struct {
	Kind                string // "user" or "identity"
	Subject, Email, Org string // Org: org id given at login (--org) or learned, may be ""
	RefreshExpiry       time.Time
	Tokens              map[string]time.Time // cached tokens: audience → expiry
	// Identity is the assumed identity id of an "identity" session.
	Identity string
	// Skew is the issuer's clock minus ours, as the session learned it: RefreshExpiry and
	// Tokens are the issuer's times (see IssuerNow).
	Skew time.Duration
}

// IssuerNow is the issuer's time when ours is now: the session's expiries are judged with it.
func (i *SessionInfo) IssuerNow(now time.Time) time.Time { return now.Add(i.Skew) }

// sessionRecord is the value under session/<ih>.
type sessionRecord struct {
	Kind          string               `json:"kind,omitempty"` // "" means "user"
	RefreshToken  string               `json:"refresh_token,omitempty"`
	RefreshExpiry time.Time            `json:"refresh_expiry,omitzero"`
	Subject       string               `json:"subject,omitempty"`
	Email         string               `json:"email,omitempty"`
	Org           string               `json:"org,omitempty"`
	SkewNS        int64                `json:"skew_ns"`
	Tokens        map[string]time.Time `json:"tokens,omitempty"` // cached audiences → expiry

	// "identity" sessions re-exchange an OIDC token for the identity instead of refreshing.
	Identity          string `json:"identity,omitempty"`
	IdentityTokenPath string `json:"identity_token_path,omitempty"` // re-read at every exchange
	IdentityToken     string `json:"identity_token,omitempty"`      // a literal token, when no path was given
	IdentityActions   bool   `json:"identity_token_actions,omitempty"`
}

func (r *sessionRecord) kind() string {
	if r.Kind == "" {
		return "user"
	}
	return r.Kind
}

func (r *sessionRecord) skew() time.Duration { return time.Duration(r.SkewNS) }

// tokenRecord is the value under token/<ih>/<aud> (and the workload cache). The skew is kept
// with the token so that the hot path judges freshness with one store read.
type tokenRecord struct {
	Token  string    `json:"token"`
	Expiry time.Time `json:"expiry"`
	SkewNS int64     `json:"skew_ns,omitempty"`
}

func sessionKey(ih string) string { return storeKey("session/" + ih) }

func tokenKey(ih, aud string) string { return storeKey("token/" + ih + "/" + aud) }

// storeKey keeps a key within the store's alphabet and length ([A-Za-z0-9._:/@-], 200 bytes).
func storeKey(k string) string {
	b := []byte(k)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("._:/@-", c) >= 0:
		default:
			b[i] = '_'
		}
	}
	if len(b) > 200 {
		sum := sha256.Sum256([]byte(k))
		return string(b[:150]) + "@" + hex.EncodeToString(sum[:16])
	}
	return string(b)
}

// lockName makes a lock name safe as a file name.
func lockName(prefix, s string) string {
	b := []byte(prefix + "-" + s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

// procLocks serialises the goroutines of this process before they take the cross-process
// lock, so that a refresh is single-flight whatever the lock's per-process semantics.
var procLocks sync.Map // lock path → chan struct{} (capacity 1)

// lockStore takes the named cross-process lock in the store dir, ctx-bounded.
func lockStore(ctx context.Context, d Deps, name string) (func(), error) {
	v, _ := procLocks.LoadOrStore(d.Settings.StoreDir+"\x00"+name, make(chan struct{}, 1))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the %s lock: %w", name, ctx.Err())
	}
	unlock, err := keystore.Lock(ctx, d.Settings.StoreDir, name)
	if err != nil {
		<-sem
		return nil, fmt.Errorf("taking the %s lock: %w", name, err)
	}
	var once sync.Once
	return func() { once.Do(func() { unlock(); <-sem }) }, nil
}

// Token returns a Chainguard token for aud ("" means Settings.Audience): the cached one while
// fresh (issuer clock; one store read, no lock, no network), else one refreshed under the
// cross-process lock and written back. ErrNoCredential when never logged in; *FixableError
// when the session cannot be made valid. It never returns an expired token.
func (s *Session) Token(ctx context.Context, aud string) (*Token, error) {
	if aud == "" {
		aud = s.d.Settings.Audience
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sessionTimeout)
		defer cancel()
	}
	tok, rec, err := s.cached(ctx, aud)
	if err != nil {
		return nil, storeFixable(err)
	}
	if tok != nil && tok.Fresh(depClock(s.d).Now().Add(time.Duration(rec.SkewNS))) {
		return tok, nil
	}
	t, err := s.renewLocked(ctx, aud)
	if err == nil || !errors.Is(err, ErrLoginRequired) || !s.d.Interactive || s.d.OpenBrowser == nil {
		return t, err
	}
	// Auto-login (as chainctl does): only at a terminal, not in CI, unless CGR_AUTO_LOGIN=false.
	info, ierr := s.Info(ctx)
	if ierr != nil || info.Kind != "user" {
		return nil, err
	}
	fmt.Fprintf(depStderr(s.d), "%s\nStarting a new login.\n", err.Error())
	if _, lerr := Login(ctx, s.d, LoginOptions{Org: info.Org}); lerr != nil {
		return nil, err
	}
	return s.renewLocked(ctx, aud)
}

// HasToken reports whether a still-usable token for aud is cached (a `_token` given to
// `store`, or one of the session's): store only, no network, no refresh.
func (s *Session) HasToken(ctx context.Context, aud string) bool {
	tok, rec, err := s.cached(ctx, aud)
	return err == nil && tok != nil && tok.Usable(depClock(s.d).Now().Add(time.Duration(rec.SkewNS)))
}

// cached reads token/<ih>/<aud>; (nil, nil, nil) when absent or unreadable.
func (s *Session) cached(ctx context.Context, aud string) (*Token, *tokenRecord, error) {
	return readTokenRecord(ctx, s.d.Store, tokenKey(s.ih, aud))
}

func readTokenRecord(ctx context.Context, st keystore.Store, key string) (*Token, *tokenRecord, error) {
	b, err := st.Get(ctx, key)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var rec tokenRecord
	if json.Unmarshal(b, &rec) != nil || rec.Token == "" {
		return nil, nil, nil // a damaged cache entry is no entry
	}
	tok, err := Parse(rec.Token)
	if err != nil {
		return nil, nil, nil
	}
	tok.Skew = time.Duration(rec.SkewNS)
	return tok, &rec, nil
}

func (s *Session) readSession(ctx context.Context) (*sessionRecord, error) {
	return readSessionRecord(ctx, s.d.Store, s.ih)
}

func readSessionRecord(ctx context.Context, st keystore.Store, ih string) (*sessionRecord, error) {
	b, err := st.Get(ctx, sessionKey(ih))
	if err != nil {
		return nil, err
	}
	var rec sessionRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%w: %w", errSessionDamaged, keystore.ErrNotFound)
	}
	return &rec, nil
}

// usable reports whether a cached token may still be served at all (not fresh, but not
// about to expire by the issuer's clock).
func (s *Session) usable(tok *Token, rec *tokenRecord) bool {
	if tok == nil {
		return false
	}
	now := depClock(s.d).Now().Add(time.Duration(rec.SkewNS))
	return tok.Usable(now)
}

// renewLocked is the slow path: lock, re-read, refresh if still stale, write back.
func (s *Session) renewLocked(ctx context.Context, aud string) (*Token, error) {
	// Whether there is a session at all (read again under the lock).
	switch _, err := s.readSession(ctx); {
	case errors.Is(err, errSessionDamaged):
		// Not "not found": that answer makes the pull anonymous and hides the cause.
		if tok, rec, _ := s.cached(ctx, aud); s.usable(tok, rec) {
			return tok, nil
		}
		return nil, &FixableError{Cause: "your " + s.d.Settings.Audience + " session in the store is damaged (unreadable)", Fix: LoginCommand, Err: fmt.Errorf("%w: %w", ErrLoginRequired, errSessionDamaged)}
	case errors.Is(err, keystore.ErrNotFound):
		// No session: a token remembered from `store` is served until it stops being usable.
		if tok, rec, _ := s.cached(ctx, aud); s.usable(tok, rec) {
			return tok, nil
		}
		return nil, ErrNoCredential
	case err != nil:
		return nil, storeFixable(err)
	}
	lctx := ctx
	if tok, rec, _ := s.cached(ctx, aud); s.usable(tok, rec) {
		// A usable token is at hand: wait for another refresher only briefly, not the
		// whole get deadline, then serve it.
		var cancel context.CancelFunc
		lctx, cancel = context.WithTimeout(ctx, usableRenewTimeout)
		defer cancel()
	}
	unlock, err := lockStore(lctx, s.d, lockName("refresh", s.ih))
	if err != nil {
		// Another process may be stuck refreshing against a dead issuer; an unexpired
		// token is still better than nothing.
		if tok, rec, _ := s.cached(context.WithoutCancel(ctx), aud); s.usable(tok, rec) {
			return tok, nil
		}
		if errors.Is(err, keystore.ErrLocked) || errors.Is(err, keystore.ErrUnavailable) {
			return nil, storeFixable(err)
		}
		return nil, &FixableError{Cause: "timed out waiting for another docker-credential-cgr to refresh the session", Fix: "docker-credential-cgr doctor", Err: err}
	}
	defer unlock()

	// Re-read: another process may have refreshed while we waited.
	tok, rec, err := s.cached(ctx, aud)
	if err != nil {
		return nil, storeFixable(err)
	}
	if tok != nil && tok.Fresh(depClock(s.d).Now().Add(time.Duration(rec.SkewNS))) {
		return tok, nil
	}
	sess, err := s.readSession(ctx)
	if err != nil {
		if errors.Is(err, keystore.ErrNotFound) {
			return nil, ErrNoCredential // logged out meanwhile
		}
		return nil, storeFixable(err)
	}

	// A refresh spends the refresh token (the issuer rotates it). Spend it only if the store
	// takes writes: on a full or read-only disk the new one could not be saved, the old one
	// would be dead, and the session lost.
	if sess.RefreshToken != "" {
		if err := s.writeSession(ctx, sess); err != nil {
			if s.usable(tok, rec) {
				fmt.Fprintf(depStderr(s.d), "warning: not refreshing: the store cannot be written (%v); using the cached token (expires %s)\n", err, sessTime(tok.Expiry))
				return tok, nil
			}
			if errors.Is(err, keystore.ErrLocked) {
				return nil, storeFixable(err)
			}
			return nil, &FixableError{Cause: fmt.Sprintf("cannot refresh your %s session: the store cannot be written (%v); free space or make it writable, then retry", s.d.Settings.Audience, err), Err: err}
		}
	}

	rctx := ctx
	if s.usable(tok, rec) {
		// A usable token is at hand: do not let a dead issuer hold the pull for long.
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, usableRenewTimeout)
		defer cancel()
	}
	res, err := s.renew(rctx, sess, aud)
	if err != nil {
		if isTransient(err) && s.usable(tok, rec) {
			fmt.Fprintf(depStderr(s.d), "warning: %v; using the cached token (expires %s)\n", err, sessTime(tok.Expiry))
			return tok, nil
		}
		return nil, s.explain(err, sess, tok)
	}
	newTok, err := Parse(res.Token)
	if err != nil {
		return nil, fmt.Errorf("the issuer answered with an unreadable token: %w", err)
	}
	if skew, ok := s.sts.Skew(); ok {
		sess.SkewNS = int64(skew)
	}
	if !newTok.Usable(depClock(s.d).Now().Add(sess.skew())) {
		return nil, fmt.Errorf("the issuer answered with a token that expires at %s", sessTime(newTok.Expiry))
	}
	// The refresh token is rotated: the old one is dead now. Write the session (new refresh
	// token) FIRST: a crash before the token write costs one more refresh, never the session.
	if res.RefreshToken != "" {
		sess.RefreshToken = res.RefreshToken
		sess.RefreshExpiry = res.RefreshExpiry
	}
	if sess.Subject == "" {
		sess.Subject = newTok.Subject
	}
	if sess.Email == "" {
		sess.Email = newTok.Email
	}
	if sess.Tokens == nil {
		sess.Tokens = map[string]time.Time{}
	}
	sess.Tokens[aud] = newTok.Expiry
	if err := s.writeSession(ctx, sess); err != nil {
		fmt.Fprintf(depStderr(s.d), "warning: could not save the refreshed session (%v); the next refresh may need `%s`\n", err, LoginCommand)
	}
	if err := writeTokenRecord(ctx, s.d.Store, tokenKey(s.ih, aud), newTok, sess.skew()); err != nil {
		fmt.Fprintf(depStderr(s.d), "warning: could not cache the token: %v\n", err)
	}
	return newTok, nil
}

// renew gets a new token for aud: by the refresh token for a user session, by a new
// exchange of the identity's OIDC token for an identity session.
func (s *Session) renew(ctx context.Context, sess *sessionRecord, aud string) (*STSResult, error) {
	now := depClock(s.d).Now().Add(sess.skew())
	if sess.kind() == "identity" && sess.RefreshToken == "" {
		subject, err := identityToken(ctx, s.d, sess.IdentityTokenPath, sess.IdentityToken, sess.IdentityActions)
		if err != nil {
			return nil, err
		}
		return s.sts.Exchange(ctx, subject, []string{aud}, sess.Identity)
	}
	if sess.RefreshToken == "" {
		return nil, &sessionExpired{}
	}
	if !sess.RefreshExpiry.IsZero() && !sess.RefreshExpiry.After(now) {
		return nil, &sessionExpired{at: sess.RefreshExpiry}
	}
	return s.sts.Refresh(ctx, sess.RefreshToken, []string{aud})
}

type sessionExpired struct{ at time.Time }

func (e *sessionExpired) Error() string {
	if e.at.IsZero() {
		return "the session has no refresh token"
	}
	return "the session expired at " + sessTime(e.at)
}

// isTransient: the issuer is down, slow or failing; a later try may work.
func isTransient(err error) bool {
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return true
	}
	var se *STSError
	if errors.As(err, &se) {
		switch se.Code {
		case codeUnavailable, codeInternal, codeDeadlineExceeded:
			return true
		}
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// explain turns a renewal failure into the one line the user sees.
func (s *Session) explain(err error, sess *sessionRecord, cached *Token) error {
	issuer := s.d.Settings.Issuer
	what := "your " + s.d.Settings.Audience + " session"
	fix := LoginCommand
	if sess.kind() == "identity" {
		what = "your session as identity " + sess.Identity
		fix = LoginCommand + " --identity " + sess.Identity + " --identity-token <token-or-path>"
	}
	login := func(cause string) error {
		return &FixableError{Cause: cause, Fix: fix, Err: fmt.Errorf("%w: %w", ErrLoginRequired, err)}
	}
	var ex *sessionExpired
	if errors.As(err, &ex) {
		if ex.at.IsZero() {
			return login(what + " cannot be refreshed (no refresh token) and its token expired")
		}
		return login(what + " expired at " + sessTime(ex.at))
	}
	var fe *FixableError
	if errors.As(err, &fe) {
		return err
	}
	if isTransient(err) {
		cause := err.Error()
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			cause = fmt.Sprintf("cannot reach %s: %v", issuer, err)
		}
		if cached != nil {
			cause += "; cached token expired at " + sessTime(cached.Expiry)
		} else {
			cause += "; no cached token"
		}
		return &FixableError{Cause: cause, Fix: "docker-credential-cgr doctor", Err: err}
	}
	var se *STSError
	if errors.As(err, &se) {
		msg := se.Message
		switch {
		case se.Code == codeNotFound:
			return login(fmt.Sprintf("%s is not usable: identity not found at %s (deleted or not registered)", what, issuer))
		case strings.Contains(strings.ToLower(msg), "expire"):
			return login(fmt.Sprintf("%s expired (%s: %s)", what, issuer, msg))
		case se.Code == codeUnauthenticated:
			return login(fmt.Sprintf("%s was revoked or rejected by %s (%s)", what, issuer, sessOr(msg, "unauthenticated")))
		case se.Code == codePermissionDenied:
			return login(fmt.Sprintf("%s was refused by %s (%s)", what, issuer, sessOr(msg, "permission denied")))
		default:
			return login(fmt.Sprintf("%s could not be refreshed: %v", what, se))
		}
	}
	return &FixableError{Cause: fmt.Sprintf("%s could not be refreshed: %v", what, err), Fix: fix, Err: err}
}

func sessOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// storeError turns a store failure into the one line the user sees.
func storeFixable(err error) error {
	switch {
	case errors.Is(err, keystore.ErrLocked):
		return &FixableError{Cause: "the keychain holding your cgr.dev credentials is locked: unlock it, or use the file store", Fix: "CGR_STORE=file " + LoginCommand, Err: err}
	case errors.Is(err, keystore.ErrUnavailable):
		return &FixableError{Cause: err.Error(), Fix: "docker-credential-cgr doctor", Err: err}
	}
	return err
}

func (s *Session) writeSession(ctx context.Context, rec *sessionRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return s.d.Store.Set(ctx, sessionKey(s.ih), b)
}

func writeTokenRecord(ctx context.Context, st keystore.Store, key string, tok *Token, skew time.Duration) error {
	tok.Skew = skew
	b, err := json.Marshal(tokenRecord{Token: tok.Raw, Expiry: tok.Expiry, SkewNS: int64(skew)})
	if err != nil {
		return err
	}
	return st.Set(ctx, key, b)
}

// Exists reports whether a session is stored (store only, no network).
func (s *Session) Exists(ctx context.Context) (bool, error) {
	_, err := s.readSession(ctx)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, keystore.ErrNotFound):
		return false, nil
	default:
		return false, storeFixable(err)
	}
}

// Info describes the stored session (store only); ErrNoCredential when there is none.
func (s *Session) Info(ctx context.Context) (*SessionInfo, error) {
	sess, err := s.readSession(ctx)
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, storeFixable(err)
	}
	info := &SessionInfo{
		Kind: sess.kind(), Subject: sess.Subject, Email: sess.Email, Org: sess.Org,
		RefreshExpiry: sess.RefreshExpiry, Identity: sess.Identity, Tokens: map[string]time.Time{},
		Skew: sess.skew(),
	}
	if sess.RefreshToken == "" {
		info.RefreshExpiry = time.Time{}
	}
	for _, aud := range s.audiences(sess) {
		if tok, _, err := s.cached(ctx, aud); err == nil && tok != nil {
			info.Tokens[aud] = tok.Expiry
		}
	}
	return info, nil
}

// audiences are the audiences that may have a cached token: those the session minted, and
// the two the program uses.
func (s *Session) audiences(sess *sessionRecord) []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	add(s.d.Settings.Audience)
	add(s.d.Settings.API)
	if sess != nil {
		for a := range sess.Tokens {
			add(a)
		}
	}
	return out
}

// Logout forgets the session and the cached tokens of this issuer.
func (s *Session) Logout(ctx context.Context) error {
	if unlock, err := lockStore(ctx, s.d, lockName("refresh", s.ih)); err == nil {
		defer unlock()
	}
	sess, err := s.readSession(ctx)
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		return storeFixable(err)
	}
	var errs []error
	// The session first: with it gone nothing can re-mint the tokens deleted next.
	if err := s.d.Store.Delete(ctx, sessionKey(s.ih)); err != nil {
		errs = append(errs, err)
	}
	for _, aud := range s.audiences(sess) {
		if err := s.d.Store.Delete(ctx, tokenKey(s.ih, aud)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return storeFixable(fmt.Errorf("logout: %w", err))
	}
	return nil
}

// Remember caches a Chainguard token handed back by `store` (docker login re-stores what `get`
// gave it) until its exp, under each of its audiences: never as a static credential. A
// secret that is not an unexpired token of this issuer is not kept (ErrNotCacheable).
func (s *Session) Remember(ctx context.Context, raw string) error {
	tok, err := Parse(strings.TrimSpace(raw))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotCacheable, err)
	}
	if strings.TrimRight(tok.Issuer, "/") != strings.TrimRight(s.d.Settings.Issuer, "/") {
		return fmt.Errorf("%w: issued by %q, not %s", ErrNotCacheable, tok.Issuer, s.d.Settings.Issuer)
	}
	var skew time.Duration
	sess, err := s.readSession(ctx)
	switch {
	case err == nil:
		skew = sess.skew()
	case !errors.Is(err, keystore.ErrNotFound):
		return storeFixable(err)
	}
	if !tok.Usable(depClock(s.d).Now().Add(skew)) {
		return fmt.Errorf("%w: it expired at %s", ErrNotCacheable, sessTime(tok.Expiry))
	}
	auds := tok.Audience
	if len(auds) > 8 {
		auds = auds[:8]
	}
	unlock, err := lockStore(ctx, s.d, lockName("refresh", s.ih))
	if err != nil {
		return storeFixable(err)
	}
	defer unlock()
	for _, aud := range auds {
		key := tokenKey(s.ih, aud)
		if old, _, err := readTokenRecord(ctx, s.d.Store, key); err == nil && old != nil && !old.Expiry.Before(tok.Expiry) {
			continue // what is cached lives as long: keep it
		}
		if err := writeTokenRecord(ctx, s.d.Store, key, tok, skew); err != nil {
			return storeFixable(err)
		}
	}
	return nil
}

func sessTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
