package token

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cgrtools/docker-credential-cgr/keystore"
)

const (
	// PullTokenIssuer is the iss of every pull-token JWT and the issuer of its identity.
	PullTokenIssuer = "https://pulltoken.issuer.chainguard.dev"
	// DefaultPullTokenTTL and MaxPullTokenTTL bound a pull token's lifetime.
	DefaultPullTokenTTL = 720 * time.Hour
	MaxPullTokenTTL     = 8760 * time.Hour
	// DefaultPullTokenName names the identity when no name is given.
	DefaultPullTokenName = "pull-token"

	pullRole = "registry.pull"
	// renewTimeout bounds the wait for a renewal within a `get` whose pull token expired
	// (within the get's own 10 s).
	renewTimeout = 8 * time.Second
	// cleanupTimeout bounds the best-effort deletion of a replaced identity.
	cleanupTimeout = 10 * time.Second
)

// errPullDamaged: the stored pull token cannot be read.
var errPullDamaged = errors.New("the stored pull token is damaged")

// ErrPullTokenExpired is wrapped by the *FixableError of a stored pull token that expired and
// could not be renewed.
var ErrPullTokenExpired = errors.New("the pull token expired")

// PullToken is a long-lived registry credential: username Identity, password Token (a JWT
// signed by a key registered with that identity).
type PullToken struct {
	Identity string
	Token    string
	Expiry   time.Time
	TTL      time.Duration // the lifetime it was created with; a renewal keeps it
	Name     string
	Parent   string // the organization (or folder) id it lives in

	// skew is the issuer's clock minus ours when the token was made or read: its Expiry is in
	// the issuer's time. Kept with it in the store.
	skew time.Duration
}

// CreateOptions are the choices of `pull-token create`.
type CreateOptions struct {
	TTL         time.Duration // 0: DefaultPullTokenTTL
	Name        string        // "": DefaultPullTokenName
	Parent      string        // org id or name; "": the session's org, else the only org the user has
	Description string        // "": a default naming the helper
}

// PullTokens creates, stores, serves and renews pull tokens.
type PullTokens struct {
	d   Deps
	s   *Session
	api *API
}

// NewPullTokens returns the pull tokens of d's store; s (may be nil) is the login session
// that creates and renews them.
func NewPullTokens(d Deps, s *Session) *PullTokens {
	return &PullTokens{d: d, s: s, api: NewAPI(d, s)}
}

// API is the platform API client the pull tokens use.
func (p *PullTokens) API() *API { return p.api }

// pullRecord is the value under pull/<registry host>.
type pullRecord struct {
	Identity string    `json:"identity"`
	Token    string    `json:"token"`
	Expiry   time.Time `json:"expiry"`
	TTLNS    int64     `json:"ttl_ns"`
	Name     string    `json:"name,omitempty"`
	Parent   string    `json:"parent"`
	Issuer   string    `json:"issuer"`
	// SkewNS is the issuer's clock minus ours (learned at create, save or renewal): Expiry is
	// in the issuer's time, so every expiry decision uses our clock plus this. 0 in old records.
	SkewNS int64 `json:"skew_ns"`
	// Checked is when the issuer last accepted the token (our clock); Gone, when it said its
	// identity no longer exists: get then answers that line instead of a bare 403 at pull time.
	Checked time.Time `json:"checked,omitzero"`
	Gone    string    `json:"gone,omitempty"`
}

// pullCheckEvery is how often a saved pull token is shown to the issuer, in the background,
// to learn that its identity was deleted before a pull fails with a bare Forbidden.
const pullCheckEvery = time.Hour

func pullKey(host string) string { return storeKey("pull/" + host) }

func (r *pullRecord) pullToken() *PullToken {
	return &PullToken{Identity: r.Identity, Token: r.Token, Expiry: r.Expiry, TTL: time.Duration(r.TTLNS), Name: r.Name, Parent: r.Parent, skew: time.Duration(r.SkewNS)}
}

// lifetime is what renewal counts thirds of.
func (r *pullRecord) lifetime() time.Duration {
	if r.TTLNS > 0 {
		return time.Duration(r.TTLNS)
	}
	return DefaultPullTokenTTL
}

// due reports whether less than a third of the token's lifetime remains at now.
func (r *pullRecord) due(now time.Time) bool { return r.Expiry.Sub(now) < r.lifetime()/3 }

// expired reports whether the token is dead (or too close to death to start a pull with).
func (r *pullRecord) expired(now time.Time) bool {
	margin := min(30*time.Second, r.lifetime()/10)
	return r.Expiry.Sub(now) <= margin
}

// IssuerNow is the issuer's time when ours is now, as far as t knows it: t's Expiry is the
// issuer's, so Due and Expired judge it with this, as Get does.
func (t *PullToken) IssuerNow(now time.Time) time.Time { return now.Add(t.skew) }

// Skew is the issuer's clock minus ours, as learned when t was made or stored.
func (t *PullToken) Skew() time.Duration { return t.skew }

// Due reports whether Get would renew t at our time now (less than a third of its lifetime
// left by the issuer's clock).
func (t *PullToken) Due(now time.Time) bool { return t.record().due(t.IssuerNow(now)) }

// Expired reports whether Get would refuse to serve t at our time now.
func (t *PullToken) Expired(now time.Time) bool { return t.record().expired(t.IssuerNow(now)) }

// record is what the expiry judgements of t read.
func (t *PullToken) record() *pullRecord {
	return &pullRecord{Expiry: t.Expiry, TTLNS: int64(t.TTL), SkewNS: int64(t.skew)}
}

func (p *PullTokens) now() time.Time { return depClock(p.d).Now() }

// issuerNow is the issuer's time as far as r knows it: every expiry and renewal decision about
// r is made with it, since r's Expiry is the issuer's.
func (p *PullTokens) issuerNow(r *pullRecord) time.Time {
	return p.now().Add(time.Duration(r.SkewNS))
}

// pullSkewNoise: an iat ahead of our clock by less than this is not taken for a skew.
const pullSkewNoise = 5 * time.Second

// apiSkew is the platform's clock minus ours, as the API client learned it from Date headers.
func (p *PullTokens) apiSkew() time.Duration {
	local := p.now()
	return p.api.Now().Sub(local).Round(time.Millisecond)
}

// read loads pull/<host>: ErrNoCredential when there is none.
func (p *PullTokens) read(ctx context.Context, host string) (*pullRecord, error) {
	present, known := p.indexed(host)
	if known && !present {
		return nil, ErrNoCredential // no keychain round trip for what is known not to be there
	}
	b, err := p.d.Store.Get(ctx, pullKey(host))
	if !known && (err == nil || errors.Is(err, keystore.ErrNotFound)) {
		p.learnIndex(host, err == nil)
	}
	if errors.Is(err, keystore.ErrNotFound) {
		return nil, ErrNoCredential
	}
	if err != nil {
		return nil, storeFixable(err)
	}
	var r pullRecord
	if err := json.Unmarshal(b, &r); err != nil || r.Token == "" || !ValidIdentityID(r.Identity) || r.Expiry.IsZero() {
		fix := SaveCommand
		if p.canRenew(ctx, &pullRecord{}) != nil { // creating one needs a login
			fix = LoginCommand + " && " + SaveCommand
		}
		return nil, &FixableError{Cause: "the pull token stored for " + host + " is damaged (unreadable)", Fix: fix, Err: errPullDamaged}
	}
	return &r, nil
}

func (p *PullTokens) write(ctx context.Context, host string, r *pullRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := p.d.Store.Set(ctx, pullKey(host), b); err != nil {
		return storeFixable(err)
	}
	p.setIndex(host, true)
	return nil
}

// The pull-token index (keychain stores only): a state file per host that says whether a pull
// token is stored for it, so that a warm get, which asks for a pull token before the session's
// token, does not pay a keychain round trip (a D-Bus search, unlock and property reads) to
// learn there is none. Every write and deletion of pull/<host> updates it, under the host's
// pull lock; without the file (a store from before it existed) the keychain is asked, and the
// answer recorded when no writer holds the lock. A stale "present" costs only the round trip.

func (p *PullTokens) indexName(host string) string { return "pull-index-" + host }

func (p *PullTokens) useIndex() bool {
	return p.d.Store != nil && p.d.Store.Kind() == "keychain" && p.d.Settings.StoreDir != ""
}

// indexed says whether a pull token is stored for host, when the index knows.
func (p *PullTokens) indexed(host string) (present, known bool) {
	if !p.useIndex() {
		return false, false
	}
	b, err := keystore.ReadState(p.d.Settings.StoreDir, p.indexName(host))
	switch strings.TrimSpace(string(b)) {
	case "present":
		return true, err == nil
	case "absent":
		return false, err == nil
	}
	return false, false
}

// setIndex records what a writer (holding host's pull lock) just did; when that cannot be
// recorded, the index forgets host, and the keychain is asked again.
func (p *PullTokens) setIndex(host string, present bool) {
	if !p.useIndex() {
		return
	}
	v := "absent"
	if present {
		v = "present"
	}
	if keystore.WriteState(p.d.Settings.StoreDir, p.indexName(host), []byte(v+"\n")) != nil {
		_ = keystore.RemoveState(p.d.Settings.StoreDir, p.indexName(host))
	}
}

// learnIndex records what a read found, only when no writer holds host's pull lock (so it
// cannot overwrite a write it raced with).
func (p *PullTokens) learnIndex(host string, present bool) {
	if !p.useIndex() {
		return
	}
	h, ok, err := keystore.TryAcquire(p.d.Settings.StoreDir, lockName("pull", host))
	if err != nil || !ok {
		return
	}
	defer h.Release()
	if _, known := p.indexed(host); !known {
		p.setIndex(host, present)
	}
}

// Stored returns the pull token stored for host (store only, no network, no renewal);
// ErrNoCredential when there is none.
func (p *PullTokens) Stored(ctx context.Context, host string) (*PullToken, error) {
	r, err := p.read(ctx, host)
	if err != nil {
		return nil, err
	}
	return r.pullToken(), nil
}

// Get returns the pull token to serve for host. While more than a third of its lifetime
// remains it is served as stored. Then, when a login session exists, a replacement with the
// same TTL, name and parent is created (once, however many Gets run at once, as a Job that
// outlives this call), stored, served, and the old identity deleted; while the old one is still
// valid, Get waits at most staleWait for that and otherwise serves the old one. Without a
// session it is served with a warning on stderr until it expires; after that Get fails with a
// *FixableError saying when it expired. ErrNoCredential when nothing is stored for host.
func (p *PullTokens) Get(ctx context.Context, host string) (*PullToken, error) {
	r, err := p.read(ctx, host)
	if err != nil {
		return nil, err
	}
	if !r.due(p.issuerNow(r)) && r.Gone == "" {
		p.checkLater(ctx, host, r)
		return r.pullToken(), nil
	}
	rerr := p.canRenew(ctx, r)
	if rerr == nil {
		var renewed *PullToken
		renewed, rerr = p.renewFor(ctx, host, r)
		if rerr == nil {
			return renewed, nil
		}
	}
	now := p.issuerNow(r)
	if r.Gone != "" {
		return nil, goneFailure(r, rerr)
	}
	if r.expired(now) {
		return nil, expiredFailure(host, r, rerr)
	}
	w := depStderr(p.d)
	switch {
	case errors.Is(rerr, errBusy), errors.Is(rerr, errPending), errors.Is(rerr, errRetryLater):
		// Being renewed, or the API failed a moment ago: serve the valid one quietly.
	case errors.Is(rerr, ErrNoCredential):
		fmt.Fprintf(w, "warning: the pull token for %s expires %s (%s); run `%s` so it renews itself, or create a new one with `%s`\n",
			host, untilText(r.Expiry.Sub(now)), pullTime(r.Expiry), LoginCommand, SaveCommand)
	default:
		fmt.Fprintf(w, "warning: the pull token for %s expires %s (%s) and could not be renewed: %s\n",
			host, untilText(r.Expiry.Sub(now)), pullTime(r.Expiry), stsOneLine(rerr.Error(), 300))
	}
	return r.pullToken(), nil
}

// expiredFailure is the line for a pull token that expired and could not be renewed (rerr
// says why: ErrNoCredential when no session can).
func expiredFailure(host string, r *pullRecord, rerr error) error {
	fix := LoginCommand
	cause := fmt.Sprintf("the pull token for %s (identity %s) expired at %s", host, r.Identity, pullTime(r.Expiry))
	var fe *FixableError
	switch {
	case errors.Is(rerr, ErrNoCredential) && !errors.As(rerr, &fe):
		cause += " and no login session can renew it"
	case errors.As(rerr, &fe):
		cause += " and could not be renewed: " + fe.Cause
		if fe.Fix != "" {
			fix = fe.Fix
		}
	default:
		cause += " and could not be renewed: " + rerr.Error()
		fix = SaveCommand
	}
	// Err must not unwrap to ErrNoCredential: `get` would answer "not found" instead.
	return &FixableError{Cause: cause, Fix: fix, Err: ErrPullTokenExpired}
}

// goneFailure is the line for a saved pull token whose identity was deleted at the issuer
// (rerr: why no session could replace it).
func goneFailure(r *pullRecord, rerr error) error {
	fix := SaveCommand
	if errors.Is(rerr, ErrNoCredential) {
		fix = LoginCommand + " && " + SaveCommand
	}
	return &FixableError{Cause: r.Gone, Fix: fix, Err: ErrPullTokenExpired}
}

// checkLater shows r to the issuer in the background once pullCheckEvery has passed since it
// last did: this get does not wait for it, and only one process checks at a time.
func (p *PullTokens) checkLater(ctx context.Context, host string, r *pullRecord) {
	if p.d.Settings.StoreDir == "" || (r.Issuer != "" && r.Issuer != p.d.Settings.Issuer) ||
		depClock(p.d).Now().Sub(r.Checked) < pullCheckEvery {
		return
	}
	if _, inProcess := depRunner(p.d).(InProcess); inProcess {
		return // only a runner whose job outlives this short-lived process checks in the background
	}
	h, ok, err := keystore.TryAcquire(p.d.Settings.StoreDir, lockName("pull", host))
	if err != nil || !ok {
		return
	}
	done, cancel := context.WithCancel(ctx)
	cancel() // do not wait: the job goes on by itself
	_ = depRunner(p.d).Run(done, p.d, Job{Kind: jobPullCheck, Host: host}, []*keystore.Held{h})
}

// checkJob exchanges the pull token held for host at the issuer, as the registry does at pull
// time, and records what it said: accepted (Checked), or its identity gone (Gone). A failing
// issuer leaves it for the next check.
func (p *PullTokens) checkJob(ctx context.Context, host string) error {
	r, err := p.read(ctx, host)
	if err != nil {
		return err
	}
	if depClock(p.d).Now().Sub(r.Checked) < pullCheckEvery {
		return nil
	}
	_, err = NewSTS(p.d).Exchange(ctx, r.Token, []string{p.d.Settings.Audience}, r.Identity)
	var se *STSError
	switch {
	case err == nil:
		r.Gone = ""
	case errors.As(err, &se) && se.Code == CodeNotFound:
		r.Gone = fmt.Sprintf("the pull token stored for %s (identity %s) no longer exists at %s (identity not found: deleted)", host, r.Identity, p.d.Settings.Issuer)
	default:
		return err
	}
	r.Checked = depClock(p.d).Now()
	return p.write(ctx, host, r)
}

// errRetryLater: a renewal failed against a failing API a moment ago.
var errRetryLater = errors.New("the last renewal failed a moment ago")

// canRenew says whether a session can replace r (store only): ErrNoCredential when none can.
func (p *PullTokens) canRenew(ctx context.Context, r *pullRecord) error {
	if p.s == nil {
		return ErrNoCredential
	}
	if r.Issuer != "" && r.Issuer != p.d.Settings.Issuer {
		return ErrNoCredential // created by another issuer: this session cannot replace it
	}
	// A session that can mint an API token: present, readable, and not past its refresh
	// token's expiry (store only).
	info, err := p.s.Info(ctx)
	switch {
	case errors.Is(err, ErrNoCredential), errors.Is(err, ErrLoginRequired):
		return ErrNoCredential
	case err != nil:
		return err
	case info.Kind == "user" && !info.RefreshExpiry.IsZero() && !info.RefreshExpiry.After(info.IssuerNow(p.now())):
		return ErrNoCredential
	}
	return nil
}

// renewFor takes the pull locks of every served host (a token saved with --save is held by
// each; only if they are free while r is still valid, and then waiting at most staleWait),
// re-reads, and hands the locks to a job that renews. It returns the token to serve.
func (p *PullTokens) renewFor(ctx context.Context, host string, r *pullRecord) (*PullToken, error) {
	valid := !r.expired(p.issuerNow(r)) && r.Gone == ""
	lock := lockName("pull", host)
	if _, failed := recentFailure(p.d, lock); failed && valid {
		return nil, errRetryLater
	}
	// While r is valid, the locks (another process renewing now) and the renewal get at most
	// staleWait in all; then r is served.
	var cancel context.CancelFunc
	if valid {
		ctx, cancel = context.WithTimeout(ctx, staleWait)
	} else {
		ctx, cancel = context.WithTimeout(ctx, renewTimeout)
	}
	defer cancel()
	var held []*keystore.Held
	for _, h := range p.hostsWith(host) {
		var hl *keystore.Held
		var err error
		if valid {
			hl, err = acquireStale(ctx, p.d, lockName("pull", h))
		} else {
			hl, err = keystore.Acquire(ctx, p.d.Settings.StoreDir, lockName("pull", h))
		}
		if err != nil {
			releaseAll(held)
			if errors.Is(err, errBusy) || ctx.Err() != nil {
				return nil, errBusy
			}
			return nil, storeFixable(err)
		}
		held = append(held, hl)
	}
	// Re-read: another helper may have renewed it while we waited for the lock.
	if cur, err := p.read(ctx, host); err == nil && !cur.due(p.issuerNow(cur)) && cur.Gone == "" {
		releaseAll(held)
		return cur.pullToken(), nil
	}
	if err := depRunner(p.d).Run(ctx, p.d, Job{Kind: jobPull, Host: host}, held); err != nil {
		return nil, err
	}
	cur, err := p.read(context.WithoutCancel(ctx), host)
	if err != nil {
		return nil, err
	}
	if cur.due(p.issuerNow(cur)) || cur.Gone != "" {
		return nil, errors.New("the renewed pull token was not saved")
	}
	return cur.pullToken(), nil
}

// renewJob is the job that replaces the pull token held for host; the caller holds the pull
// locks of every served host.
func (p *PullTokens) renewJob(ctx context.Context, host string) (err error) {
	defer noteRunning(p.d, lockName("pull", host))()
	defer func() { noteFailure(p.d, lockName("pull", host), err) }()
	cur, err := p.read(ctx, host)
	if err != nil {
		return err
	}
	if !cur.due(p.issuerNow(cur)) && cur.Gone == "" {
		return nil
	}
	if err := p.canRenew(ctx, cur); err != nil {
		return err
	}
	name, parent := cur.Name, cur.Parent
	if parent == "" {
		parent = parentOf(cur.Identity)
	}
	if name == "" {
		// Saved through `store`: learn the old identity's name, if it still exists.
		if id, err := p.api.Identity(ctx, cur.Identity); err == nil {
			name = id.Name
		}
	}
	created, err := p.Create(ctx, CreateOptions{TTL: cur.lifetime(), Name: name, Parent: parent})
	if err != nil {
		return err
	}
	next := &pullRecord{
		Identity: created.Identity, Token: created.Token, Expiry: created.Expiry,
		TTLNS: int64(created.TTL), Name: created.Name, Parent: created.Parent, Issuer: p.d.Settings.Issuer,
		SkewNS: int64(created.skew),
	}
	// Switch every host that held the old token; the host asked about first.
	if err := p.write(ctx, host, next); err != nil {
		p.cleanup(created.Identity)
		return err
	}
	stillUsed := false
	for _, h := range p.hostsWith(host) {
		if h == host {
			continue
		}
		if r, err := p.read(ctx, h); err == nil && r.Identity == cur.Identity {
			if p.write(ctx, h, next) != nil {
				stillUsed = true
			}
		}
	}
	if !stillUsed {
		p.cleanup(cur.Identity)
	}
	return nil
}

// hostsWith is host and the other served hosts, sorted (the lock order).
func (p *PullTokens) hostsWith(host string) []string {
	hs := []string{host}
	for _, h := range p.d.Settings.Registries {
		if h != host {
			hs = append(hs, h)
		}
	}
	sort.Strings(hs)
	return hs
}

// cleanup deletes an identity that is no longer used, best effort.
func (p *PullTokens) cleanup(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if err := p.api.DeleteIdentity(ctx, id); err != nil && !IsNotFound(err) {
		fmt.Fprintf(depStderr(p.d), "note: could not delete the replaced pull token identity %s: %s; delete it with `%s`\n",
			id, stsOneLine(err.Error(), 300), Command("pull-token", "delete", id))
	}
}

// Save stores identity and jwt (a `store` of <identity id>:<pull-token JWT>) for host. A
// re-store of what is already stored keeps its name, parent and TTL.
func (p *PullTokens) Save(ctx context.Context, host, identity, raw string) error {
	if !ValidIdentityID(identity) || parentOf(identity) == "" {
		return fmt.Errorf("%q is not a pull token identity id (<40 hex>/<16 hex>)", identity)
	}
	t, err := Parse(raw)
	if err != nil {
		return errors.New("the password is not a pull-token JWT")
	}
	issuer := p.d.Settings.Issuer
	if len(t.Audience) == 1 && strings.HasPrefix(t.Audience[0], "http") {
		issuer = strings.TrimRight(t.Audience[0], "/") // the issuer that accepts it
	}
	unlock, err := lockStore(ctx, p.d, lockName("pull", host))
	if err != nil {
		return err
	}
	defer unlock()
	r := &pullRecord{
		Identity: identity, Token: raw, Expiry: t.Expiry, TTLNS: int64(t.Lifetime()),
		Parent: parentOf(identity), Issuer: issuer,
	}
	skew, err := p.saveSkew(ctx, issuer, t)
	if err != nil {
		return err
	}
	r.SkewNS = int64(skew)
	if old, err := p.read(ctx, host); err == nil && old.Identity == identity {
		if old.Token == raw {
			return nil
		}
		r.Name, r.Parent, r.Issuer = old.Name, old.Parent, old.Issuer
		if r.TTLNS <= 0 {
			r.TTLNS = old.TTLNS
		}
	}
	return p.write(ctx, host, r)
}

// saveSkew is the issuer's clock minus ours for a token handed to Save (no network): the
// session's learned skew when a session of that issuer exists, else what the token's iat
// tells (an iat clearly ahead of our clock means the issuer's clock is ahead), else 0.
func (p *PullTokens) saveSkew(ctx context.Context, issuer string, t *Token) (time.Duration, error) {
	if strings.TrimRight(issuer, "/") == strings.TrimRight(p.d.Settings.Issuer, "/") {
		sess, err := readSessionRecord(ctx, p.d.Store, strings.ToLower(p.d.Settings.IssuerHost()))
		switch {
		case err == nil:
			return sess.skew(), nil
		case !errors.Is(err, keystore.ErrNotFound) && !errors.Is(err, errSessionDamaged):
			return 0, storeFixable(err)
		}
	}
	if !t.IssuedAt.IsZero() {
		if ahead := t.IssuedAt.Sub(p.now()); ahead > pullSkewNoise {
			return ahead, nil
		}
	}
	return 0, nil
}

// store saves a freshly created token for host.
func (p *PullTokens) store(ctx context.Context, host string, t *PullToken) error {
	unlock, err := lockStore(ctx, p.d, lockName("pull", host))
	if err != nil {
		return err
	}
	defer unlock()
	return p.write(ctx, host, &pullRecord{
		Identity: t.Identity, Token: t.Token, Expiry: t.Expiry, TTLNS: int64(t.TTL),
		Name: t.Name, Parent: t.Parent, Issuer: p.d.Settings.Issuer, SkewNS: int64(t.skew),
	})
}

// Keep stores t for every served host, so `get` serves it and renews it.
func (p *PullTokens) Keep(ctx context.Context, t *PullToken) error {
	for _, h := range p.d.Settings.Registries {
		if err := p.store(ctx, h, t); err != nil {
			return fmt.Errorf("storing the pull token for %s: %w", h, err)
		}
	}
	return nil
}

// Forget removes the pull token stored for host (none stored is not an error).
func (p *PullTokens) Forget(ctx context.Context, host string) error {
	if unlock, err := lockStore(ctx, p.d, lockName("pull", host)); err == nil {
		defer unlock()
	}
	if err := p.d.Store.Delete(ctx, pullKey(host)); err != nil {
		return storeFixable(err)
	}
	p.setIndex(host, false)
	return nil
}

// Create makes a new pull token: an RSA key whose public half is registered as a static
// identity under the parent org (expiring with the token), bound to registry.pull, and a JWT
// signed with it. The private key is dropped once the JWT is signed.
func (p *PullTokens) Create(ctx context.Context, o CreateOptions) (*PullToken, error) {
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultPullTokenTTL
	}
	if err := ValidPullTokenTTL(ttl); err != nil {
		return nil, err
	}
	ttl = ttl.Truncate(time.Second)
	name := o.Name
	if name == "" {
		name = DefaultPullTokenName
	}
	desc := o.Description
	if desc == "" {
		desc = "pull token created by docker-credential-cgr"
	}
	parent, err := p.ResolveParent(ctx, o.Parent)
	if err != nil {
		return nil, err
	}
	role, err := p.api.RoleID(ctx, pullRole)
	if err != nil {
		return nil, err
	}

	rnd := depRand(p.d)
	key, err := rsa.GenerateKey(rnd, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the pull token key: %w", err)
	}
	sub := make([]byte, 20)
	if _, err := io.ReadFull(rnd, sub); err != nil {
		return nil, fmt.Errorf("generating the pull token subject: %w", err)
	}
	subject := "pull-token-" + hex.EncodeToString(sub)
	pub := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("pull token key id: %w", err)
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	if err != nil {
		return nil, fmt.Errorf("pull token JWKS: %w", err)
	}

	// The role lookup taught the API client the platform's clock: iat and exp follow it.
	skew := p.apiSkew()
	iat := p.now().Add(skew).Truncate(time.Second)
	exp := iat.Add(ttl)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: pub.KeyID}}, nil)
	if err != nil {
		return nil, fmt.Errorf("pull token signer: %w", err)
	}
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer:   PullTokenIssuer,
		Subject:  subject,
		Audience: jwt.Audience{p.d.Settings.Issuer},
		IssuedAt: jwt.NewNumericDate(iat),
		Expiry:   jwt.NewNumericDate(exp),
	}).Serialize() // the private key is used for this one signature and never leaves here
	if err != nil {
		return nil, fmt.Errorf("signing the pull token: %w", err)
	}

	id, err := p.api.CreateIdentity(ctx, parent, Identity{
		Name:        name,
		Description: desc,
		Static:      &StaticIdentity{Issuer: PullTokenIssuer, Subject: subject, IssuerKeys: string(jwks), Expiration: exp.UTC()},
	})
	if err != nil {
		return nil, ttlRefused(err, ttl)
	}
	if err := p.api.BindRole(ctx, parent, id.ID, role); err != nil {
		p.cleanup(id.ID)
		return nil, err
	}
	return &PullToken{Identity: id.ID, Token: raw, Expiry: exp, TTL: ttl, Name: name, Parent: parent, skew: skew}, nil
}

// ttlRefused words the platform's refusal of a pull token's lifetime: the organization's plan
// caps it (Starter 720h, Team 168h, others 8760h). The cap named in the message goes in the fix.
func ttlRefused(err error, ttl time.Duration) error {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != CodeInvalidArgument || !strings.Contains(strings.ToLower(ae.Message), "expiration") {
		return err
	}
	limit := "<the cap>"
	for _, f := range strings.Fields(ae.Message) {
		if d, perr := time.ParseDuration(strings.Trim(f, ".,;()")); perr == nil && d > 0 {
			limit = strings.Trim(f, ".,;()")
		}
	}
	return &FixableError{
		Cause: fmt.Sprintf("the organization refused a pull token of %s (%s): its plan caps pull tokens (Starter 720h, Team 168h, others 8760h); give --ttl %s or less", shortTTL(ttl), ae.Message, limit),
		Fix:   Command("pull-token", "create", "--ttl", limit), Err: err}
}

// shortTTL prints a lifetime as --ttl reads it.
func shortTTL(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// ValidPullTokenTTL checks a pull token lifetime: positive, at most MaxPullTokenTTL.
func ValidPullTokenTTL(ttl time.Duration) error {
	if ttl < time.Second || ttl > MaxPullTokenTTL {
		return fmt.Errorf("a pull token lifetime must be between 1s and 8760h (365 days), not %s", ttl)
	}
	return nil
}

// ResolveParent turns --parent (an org id, an org name, or "") into an org id: "" means the
// session's org, else the only org the user belongs to.
func (p *PullTokens) ResolveParent(ctx context.Context, parent string) (string, error) {
	if ValidIdentityID(parent) {
		return parent, nil
	}
	if parent == "" && p.s != nil {
		if info, err := p.s.Info(ctx); err == nil && ValidIdentityID(info.Org) {
			return info.Org, nil
		}
	}
	groups, err := p.api.Groups(ctx)
	if err != nil {
		return "", err
	}
	var orgs []Group
	for _, g := range groups {
		if ValidIdentityID(g.ID) && parentOf(g.ID) == "" {
			orgs = append(orgs, g)
		}
	}
	if parent != "" {
		for _, g := range groups {
			if strings.EqualFold(g.Name, parent) {
				return g.ID, nil
			}
		}
		return "", fmt.Errorf("no organization %q among yours (%s)", parent, groupNames(orgs))
	}
	switch len(orgs) {
	case 1:
		return orgs[0].ID, nil
	case 0:
		return "", errors.New("your account belongs to no organization; pass --parent with an organization id")
	default:
		return "", fmt.Errorf("you belong to several organizations (%s); choose one with --parent", groupNames(orgs))
	}
}

func groupNames(gs []Group) string {
	if len(gs) == 0 {
		return "none"
	}
	names := make([]string, len(gs))
	for i, g := range gs {
		names[i] = g.Name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// List returns the pull tokens of parent (resolved as in Create), soonest expiry first.
// Their Token is empty: the platform never knows it.
func (p *PullTokens) List(ctx context.Context, parent string) ([]PullToken, error) {
	parent, err := p.ResolveParent(ctx, parent)
	if err != nil {
		return nil, err
	}
	ids, err := p.api.Identities(ctx, parent)
	if err != nil {
		return nil, err
	}
	var out []PullToken
	for _, id := range ids {
		if id.Static == nil || id.Static.Issuer != PullTokenIssuer {
			continue
		}
		out = append(out, PullToken{Identity: id.ID, Expiry: id.Static.Expiration, Name: id.Name, Parent: parentOf(id.ID)})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Expiry.Equal(out[j].Expiry) {
			return out[i].Expiry.Before(out[j].Expiry)
		}
		return out[i].Identity < out[j].Identity
	})
	return out, nil
}

// Delete deletes the pull token identity id and forgets it wherever it is stored locally.
func (p *PullTokens) Delete(ctx context.Context, id string) error {
	if !ValidIdentityID(id) || parentOf(id) == "" {
		return fmt.Errorf("%q is not a pull token identity id (<40 hex>/<16 hex>)", id)
	}
	err := p.api.DeleteIdentity(ctx, id)
	if err != nil && !IsNotFound(err) {
		return err
	}
	for _, h := range p.d.Settings.Registries {
		if r, rerr := p.read(ctx, h); rerr == nil && r.Identity == id {
			if ferr := p.Forget(ctx, h); ferr != nil {
				return ferr
			}
		}
	}
	if err != nil {
		return fmt.Errorf("no pull token %s: %w", id, err)
	}
	return nil
}

func pullTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

// untilText says "in 3 days", "in 5 hours", "in 12 minutes", "in 40 seconds".
func untilText(d time.Duration) string {
	unit := func(n int64, s string) string {
		if n == 1 {
			return fmt.Sprintf("in 1 %s", s)
		}
		return fmt.Sprintf("in %d %ss", n, s)
	}
	switch {
	case d >= 48*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return unit(int64(d/time.Hour), "hour")
	case d >= 2*time.Minute:
		return unit(int64(d/time.Minute), "minute")
	default:
		return unit(max(int64(d/time.Second), 0), "second")
	}
}
