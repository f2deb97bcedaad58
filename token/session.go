package token

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// errSessionDamaged: the stored session is unreadable. get, status and doctor say so and
// name the fix (a new login overwrites it; logout removes it).
var errSessionDamaged = errors.New("the stored session is damaged")

// ErrNotCacheable is returned (wrapped) by Remember for a secret it will not cache: not a
// Chainguard token of this issuer, or already expired.
var ErrNotCacheable = errors.New("not a cacheable token")

// expiryMargin: a cached token with less than this left (issuer clock; for short-lived
// tokens, a tenth of the lifetime: see Token.Usable) is treated as expired,
// even when the issuer is unreachable, so a pull never starts with a token about to die.
const expiryMargin = 10 * time.Second

// sessionTimeout bounds one Token call when the caller's ctx has no deadline.
const sessionTimeout = 30 * time.Second

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
	Subject, Email, Org string // Org: org given at login (--org) or learned, may be ""
	// IDP is the identity provider the login went through (login --org), "" for Chainguard's
	// own: a new login (auto-login) goes the same way.
	IDP           string
	RefreshExpiry time.Time
	Tokens        map[string]time.Time // cached tokens: audience → expiry
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
	IDP           string               `json:"idp,omitempty"`
	SkewNS        int64                `json:"skew_ns"`
	Tokens        map[string]time.Time `json:"tokens,omitempty"` // cached audiences → expiry

	// "identity" sessions re-exchange an OIDC token for the identity instead of refreshing.
	Identity          string `json:"identity,omitempty"`
	IdentityTokenPath string `json:"identity_token_path,omitempty"`    // re-read at every exchange
	IdentityToken     string `json:"identity_token,omitempty"`         // a literal token, when no path was given
	IdentityActions   bool   `json:"identity_token_actions,omitempty"` // GitHub Actions (older records)
	IdentityCI        string `json:"identity_token_ci,omitempty"`      // the CI whose own token is used
}

// ci is the CI whose own OIDC token an identity session uses ("" when it was given one).
func (r *sessionRecord) ci() string {
	if r.IdentityCI == "" && r.IdentityActions {
		return "github-actions"
	}
	return r.IdentityCI
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

// lockStore takes the named cross-process lock in the store dir, ctx-bounded. The lock is
// an flock on a file opened for the purpose, so it also serialises the goroutines of one
// process (each opens the file anew).
func lockStore(ctx context.Context, d Deps, name string) (func(), error) {
	unlock, err := keystore.Lock(ctx, d.Settings.StoreDir, name)
	if err != nil {
		return nil, fmt.Errorf("taking the %s lock: %w", name, err)
	}
	return unlock, nil
}

// Token returns a Chainguard token for aud ("" means Settings.Audience): the cached one while
// fresh (issuer clock; one store read, no lock, no network), else a refreshed one. The refresh
// runs as a Job under the cross-process lock (once per expiry however many gets wait for it),
// and it outlives this call. A cached token that is no longer fresh but still usable is served
// when the refresh cannot finish within staleWait, when another process is refreshing, or when
// a refresh failed against a failing issuer less than retryAfter ago. ErrNoCredential when never
// logged in; *FixableError when the session cannot be made valid. Never an expired token.
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
	if tok != nil && tok.Fresh(s.issuerNow(rec)) {
		return tok, nil
	}
	usable := s.usable(tok, rec)
	switch _, err := s.readSession(ctx); {
	case errors.Is(err, errSessionDamaged):
		if usable {
			return tok, nil
		}
		return nil, s.damaged()
	case errors.Is(err, keystore.ErrNotFound):
		// No session: a token remembered from `store` is served while it is usable.
		if usable {
			return tok, nil
		}
		return nil, ErrNoCredential
	case err != nil:
		return nil, storeFixable(err)
	}
	lock := s.lockName()
	if _, failed := recentFailure(s.d, lock); failed && usable {
		return tok, nil // the issuer failed a moment ago: do not make this pull wait for it again
	}
	fresh, err := s.refresh(ctx, aud, usable)
	switch {
	case err == nil:
		return fresh, nil
	case usable && (errors.Is(err, errBusy) || errors.Is(err, errPending)):
		return tok, nil
	case usable && isTransient(err):
		fmt.Fprintf(depStderr(s.d), "warning: %s; using the cached token (expires %s)\n", stsOneLine(err.Error(), 300), sessTime(tok.Expiry))
		return tok, nil
	case errors.Is(err, errPending):
		return nil, unreachable(&UnreachableError{Issuer: s.d.Settings.Issuer, Err: errors.New("no answer in time (the refresh goes on in the background)")}, tok)
	case errors.Is(err, errTransient) && !errors.As(err, new(*FixableError)):
		return nil, unreachable(err, tok)
	}
	return nil, err
}

// errBusy: another process holds the refresh lock (it is refreshing right now).
var errBusy = errors.New("another docker-credential-cgr is refreshing")

func (s *Session) lockName() string { return lockName("refresh", s.ih) }

func (s *Session) issuerNow(rec *tokenRecord) time.Time {
	now := depClock(s.d).Now()
	if rec == nil {
		return now
	}
	return now.Add(time.Duration(rec.SkewNS))
}

// refresh takes the refresh lock (only if free when a usable token is at hand, and then waits
// at most staleWait), re-reads, and hands the lock to a job that refreshes and saves.
func (s *Session) refresh(ctx context.Context, aud string, usable bool) (*Token, error) {
	dir := s.d.Settings.StoreDir
	var held *keystore.Held
	if usable {
		// Wait for the lock (another process refreshing now) and the refresh at most
		// staleWait in all: then the still-valid token is served.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, staleWait)
		defer cancel()
		h, err := acquireStale(ctx, s.d, s.lockName())
		if err != nil {
			if errors.Is(err, errBusy) {
				return nil, err
			}
			return nil, storeFixable(err)
		}
		held = h
	} else {
		h, err := keystore.Acquire(ctx, dir, s.lockName())
		if err != nil {
			if ctx.Err() != nil {
				why := "timed out waiting for another " + config.AppName + " to refresh the session"
				if took, ok := runningFor(s.d, s.lockName()); ok {
					why = fmt.Sprintf("no answer from %s to a refresh started %s ago by another %s", s.d.Settings.Issuer, took.Round(time.Second), config.AppName)
				}
				return nil, transient(errors.New(why))
			}
			return nil, storeFixable(err)
		}
		held = h
	}
	// Re-read: another process may have refreshed while we waited for the lock.
	if tok, rec, err := s.cached(ctx, aud); err == nil && tok != nil && tok.Fresh(s.issuerNow(rec)) {
		held.Release()
		return tok, nil
	}
	if err := depRunner(s.d).Run(ctx, s.d, Job{Kind: jobSession, Audience: aud}, []*keystore.Held{held}); err != nil {
		return nil, err
	}
	tok, _, err := s.cached(context.WithoutCancel(ctx), aud)
	if err != nil {
		return nil, storeFixable(err)
	}
	if tok == nil {
		return nil, errors.New("the refreshed token was not saved")
	}
	return tok, nil
}

// damaged is the failure of a session record that cannot be read.
func (s *Session) damaged() error {
	return loginRequired("your "+s.d.Settings.Audience+" session in the store is damaged (unreadable)", "", errSessionDamaged)
}

// refreshJob is the job that spends the session's refresh token (or exchanges an identity
// session's OIDC token) for a token for aud and saves the result. The caller holds the refresh
// lock. The rotated refresh token is written durably before anything else happens, before
// any check of the new access token too: a refresh token answered and not saved is a lost login.
func (s *Session) refreshJob(ctx context.Context, aud string) (err error) {
	defer noteRunning(s.d, s.lockName())()
	defer func() { noteFailure(s.d, s.lockName(), err) }()
	tok, rec, err := s.cached(ctx, aud)
	if err != nil {
		return storeFixable(err)
	}
	if tok != nil && tok.Fresh(s.issuerNow(rec)) {
		return nil
	}
	sess, err := s.readSession(ctx)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		return ErrNoCredential // logged out meanwhile
	case errors.Is(err, errSessionDamaged):
		return s.damaged()
	case err != nil:
		return storeFixable(err)
	}
	// A refresh spends the refresh token. Spend it only if the store takes writes: on a full
	// or read-only disk the new one could not be saved, the old one would be dead, and the
	// session lost.
	if sess.RefreshToken != "" {
		if err := s.writeSession(ctx, sess); err != nil {
			if errors.Is(err, keystore.ErrLocked) {
				return storeFixable(err)
			}
			return &FixableError{Cause: fmt.Sprintf("not refreshing your %s session: the store cannot be written (%v); free space or make it writable", s.d.Settings.Audience, err), Fix: DoctorCommand, Err: transient(err)}
		}
	}
	res, err := s.renew(ctx, sess, aud)
	if err != nil {
		return s.explain(err, sess, tok)
	}
	if skew, ok := s.sts.Skew(); ok {
		sess.SkewNS = int64(skew)
	}
	if res.RefreshToken != "" {
		// The old refresh token is dead now. Save the new one first, and hard.
		sess.RefreshToken = res.RefreshToken
		sess.RefreshExpiry = res.RefreshExpiry
		if err := s.writeSessionDurably(ctx, sess); err != nil {
			return &FixableError{Cause: fmt.Sprintf("the refreshed session could not be saved (%v): the next refresh will need a new login", err), Fix: LoginCommand, Err: err}
		}
	}
	// Checked against the issuer's keys, iss and aud before it is cached or served.
	newTok, err := verifyToken(ctx, s.d, res.Token, aud, sess.skew())
	if err != nil {
		if errors.Is(err, ErrUnverified) {
			return fmt.Errorf("the issuer's answer to a refresh: %w", err)
		}
		return transient(fmt.Errorf("checking the refreshed token: %w", err))
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
		fmt.Fprintf(depStderr(s.d), "warning: could not record the refreshed token in the session (%v)\n", err)
	}
	if err := writeTokenRecord(ctx, s.d.Store, tokenKey(s.ih, aud), newTok, sess.skew()); err != nil {
		return fmt.Errorf("could not cache the refreshed token: %w", storeFixable(err))
	}
	return nil
}

// writeSessionDurably writes the session, trying again with a fresh deadline when the first
// write fails (a keychain that was slow once): it holds the only valid refresh token.
func (s *Session) writeSessionDurably(ctx context.Context, rec *sessionRecord) error {
	err := s.writeSession(ctx, rec)
	for i := 0; err != nil && i < 2; i++ {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		err = s.writeSession(wctx, rec)
		cancel()
	}
	return err
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
	if decodeTokenRecord(b, &rec) != nil || rec.Token == "" {
		return nil, nil, nil // a damaged cache entry is no entry
	}
	tok, err := Parse(rec.Token)
	if err != nil {
		return nil, nil, nil
	}
	tok.Skew = time.Duration(rec.SkewNS)
	return tok, &rec, nil
}

// decodeTokenRecord reads a token record. The exact form json.Marshal gives a tokenRecord is
// read without encoding/json: its validity scan, reflection and unquoting of the 700-byte token
// were about 100,000 instructions of a warm get (callgrind), more than the rest of its own work.
// Any other form (a record of an older version, one edited by hand) is json.Unmarshal's, and
// FuzzDecodeTokenRecord holds the two readings to one.
func decodeTokenRecord(b []byte, rec *tokenRecord) error {
	if decodeMarshalledTokenRecord(b, rec) {
		return nil
	}
	return json.Unmarshal(b, rec)
}

// decodeMarshalledTokenRecord reads {"token":T,"expiry":E} and {"token":T,"expiry":E,"skew_ns":N},
// T and E strings without escapes, N an integer as JSON writes it, and reports whether b was one.
func decodeMarshalledTokenRecord(b []byte, rec *tokenRecord) bool {
	rest, ok := bytes.CutPrefix(b, []byte(`{"token":`))
	if !ok {
		return false
	}
	var tok, exp []byte
	if tok, rest, ok = cutPlainString(rest); !ok {
		return false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"expiry":`)); !ok {
		return false
	}
	if exp, rest, ok = cutPlainString(rest); !ok {
		return false
	}
	var expiry time.Time
	if expiry.UnmarshalJSON(exp) != nil {
		return false
	}
	var skew int64
	if n, ok := bytes.CutPrefix(rest, []byte(`,"skew_ns":`)); ok {
		end := bytes.IndexByte(n, '}')
		if end < 0 || !jsonInteger(n[:end]) {
			return false
		}
		v, err := strconv.ParseInt(string(n[:end]), 10, 64)
		if err != nil {
			return false
		}
		skew, rest = v, n[end:]
	}
	if string(rest) != "}" {
		return false
	}
	*rec = tokenRecord{Token: string(tok[1 : len(tok)-1]), Expiry: expiry, SkewNS: skew}
	return true
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
		return nil, errSessionDamaged
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

// renew gets a new token for aud: by the refresh token for a user session, by a new
// exchange of the identity's OIDC token for an identity session.
func (s *Session) renew(ctx context.Context, sess *sessionRecord, aud string) (*STSResult, error) {
	now := depClock(s.d).Now().Add(sess.skew())
	if sess.kind() == "identity" && sess.RefreshToken == "" {
		subject, err := identityToken(ctx, s.d, sess.IdentityTokenPath, sess.IdentityToken, sess.ci())
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
		case CodeUnavailable, CodeInternal, CodeDeadlineExceeded:
			return true
		}
	}
	var ae *APIError
	if errors.As(err, &ae) && (ae.Status >= 500 || ae.Code == CodeUnavailable || ae.Code == CodeDeadlineExceeded) {
		return true
	}
	return errors.Is(err, errTransient) || errors.Is(err, context.DeadlineExceeded)
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
		return unreachable(err, cached)
	}
	var se *STSError
	if errors.As(err, &se) {
		msg := se.Message
		switch {
		case se.Code == CodeNotFound:
			return login(fmt.Sprintf("%s is not usable: identity not found at %s (deleted or not registered)", what, issuer))
		case strings.Contains(strings.ToLower(msg), "expire"):
			return login(fmt.Sprintf("%s expired (%s: %s)", what, issuer, msg))
		case se.Code == CodeUnauthenticated:
			return login(fmt.Sprintf("%s was revoked or rejected by %s (%s)", what, issuer, sessOr(msg, "unauthenticated")))
		case se.Code == CodePermissionDenied:
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
	case errors.Is(err, errSessionDamaged):
		return true, nil // something is stored there; get says it is damaged
	case errors.Is(err, keystore.ErrNotFound):
		return false, nil
	default:
		return false, storeFixable(err)
	}
}

// Info describes the stored session (store only); ErrNoCredential when there is none, and the
// *FixableError get answers with when the stored session is damaged.
func (s *Session) Info(ctx context.Context) (*SessionInfo, error) {
	sess, err := s.readSession(ctx)
	switch {
	case errors.Is(err, keystore.ErrNotFound):
		return nil, ErrNoCredential
	case errors.Is(err, errSessionDamaged):
		return nil, s.damaged()
	case err != nil:
		return nil, storeFixable(err)
	}
	info := &SessionInfo{
		Kind: sess.kind(), Subject: sess.Subject, Email: sess.Email, Org: sess.Org, IDP: sess.IDP,
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
	if err != nil && !errors.Is(err, keystore.ErrNotFound) && !errors.Is(err, errSessionDamaged) {
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
	case !errors.Is(err, keystore.ErrNotFound) && !errors.Is(err, errSessionDamaged):
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
