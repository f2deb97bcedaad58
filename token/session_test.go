package token

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// sessClock is the test's local clock: the emulator's clock (so advancing it is time passing
// for both sides) plus an offset (a local clock that is wrong by that much).
type sessClock struct {
	c   *emulator.Clock
	off time.Duration
}

func (c sessClock) Now() time.Time { return c.c.Now().Add(c.off) }

// sessBuffer is a goroutine-safe stderr.
type sessBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *sessBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *sessBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type sessEnv struct {
	e      *emulator.Emulator
	d      Deps
	stderr *sessBuffer
	ctx    context.Context
}

// newSessEnv starts an emulator and a file store in a temp dir, with the local clock off
// the emulator's by off.
func newSessEnv(t testing.TB, off time.Duration) *sessEnv {
	t.Helper()
	e, err := emulator.Start(emulator.Options{DeviceInterval: 100 * time.Millisecond, DeviceFlow: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	dir := t.TempDir()
	st, err := keystore.Open(ctx, keystore.Options{Backend: "file", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stderr := &sessBuffer{}
	d := Deps{
		Settings: config.Settings{
			Registries: []string{e.RegistryHost()},
			Issuer:     e.IssuerURL(),
			API:        e.APIURL(),
			Audience:   "cgr.dev",
			Store:      "file",
			StoreDir:   dir,
		},
		Store:       st,
		HTTP:        &http.Client{Timeout: 20 * time.Second},
		Clock:       sessClock{e.Clock(), off},
		Stderr:      stderr,
		Rand:        rand.Reader,
		OpenBrowser: e.Browse,
	}
	return &sessEnv{e: e, d: d, stderr: stderr, ctx: ctx}
}

// login runs the browser login against the emulator.
func (v *sessEnv) login(t testing.TB) *SessionInfo {
	t.Helper()
	info, err := Login(v.ctx, v.d, LoginOptions{})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return info
}

func (v *sessEnv) session(t testing.TB) *sessionRecord {
	t.Helper()
	rec, err := readSessionRecord(v.ctx, v.d.Store, strings.ToLower(v.d.Settings.IssuerHost()))
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// noSecrets fails when stderr or any of errs shows a stored secret.
func (v *sessEnv) noSecrets(t testing.TB, errs ...error) {
	t.Helper()
	var secrets []string
	if rec, err := readSessionRecord(v.ctx, v.d.Store, strings.ToLower(v.d.Settings.IssuerHost())); err == nil {
		secrets = append(secrets, rec.RefreshToken, rec.IdentityToken)
	}
	for _, aud := range []string{"cgr.dev", v.d.Settings.API} {
		if tok, _, _ := readTokenRecord(v.ctx, v.d.Store, tokenKey(strings.ToLower(v.d.Settings.IssuerHost()), aud)); tok != nil {
			secrets = append(secrets, tok.Raw)
		}
	}
	out := v.stderr.String()
	for _, err := range errs {
		if err != nil {
			out += err.Error()
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			t.Fatal("a secret shows on stderr or in an error")
		}
	}
	if strings.Contains(out, "eyJ") {
		t.Fatal("something that looks like a JWT shows on stderr or in an error")
	}
}

func wantFixable(t *testing.T, err error, contains ...string) *FixableError {
	t.Helper()
	var fe *FixableError
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *FixableError", err, err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("not one line: %q", msg)
	}
	for _, c := range contains {
		if !strings.Contains(msg, c) {
			t.Errorf("%q does not contain %q", msg, c)
		}
	}
	return fe
}

func TestBrowserLoginEndToEnd(t *testing.T) {
	v := newSessEnv(t, 0)
	info := v.login(t)
	u := v.e.User()
	if info.Kind != "user" || info.Subject != u.ID || info.Email != u.Email {
		t.Errorf("info = %+v, want subject %s email %s", info, u.ID, u.Email)
	}
	if info.RefreshExpiry.IsZero() || info.Tokens["cgr.dev"].IsZero() {
		t.Errorf("info = %+v: no refresh expiry or cached token", info)
	}
	if !strings.Contains(v.stderr.String(), "Opening browser to "+v.e.IssuerURL()+"/oauth?") {
		t.Errorf("stderr = %q", v.stderr.String())
	}
	if n := v.e.Count("oauth"); n != 1 {
		t.Errorf("oauth hits = %d", n)
	}
	// The token is served from the store with no network call.
	v.e.ResetCounts()
	tok, err := NewSession(v.d).Token(v.ctx, "cgr.dev")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != u.ID || !tok.HasAudience("cgr.dev") {
		t.Errorf("token: sub %s aud %v", tok.Subject, tok.Audience)
	}
	if n := v.e.Count("sts/exchange_refresh_token") + v.e.Count("sts/exchange"); n != 0 {
		t.Errorf("%d STS calls for a fresh token", n)
	}
	v.noSecrets(t)
}

func TestBrowserLoginUnregisteredAccount(t *testing.T) {
	v := newSessEnv(t, 0)
	v.e.SetBrowserUser(emulator.User{ID: strings.Repeat("0", 40)})
	_, err := Login(v.ctx, v.d, LoginOptions{})
	if err == nil || !strings.Contains(err.Error(), "not registered/not found") {
		t.Fatalf("err = %v", err)
	}
	if ok, _ := NewSession(v.d).Exists(v.ctx); ok {
		t.Error("a session was stored")
	}
}

func TestBrowserLoginOrgIsRecorded(t *testing.T) {
	v := newSessEnv(t, 0)
	v.e.SetOrgIDP(v.e.Org(), true) // the emulator's orgs have no IdP of their own by default
	var seen string
	v.d.OpenBrowser = func(ctx context.Context, u string) error {
		p, _ := url.Parse(u)
		seen = p.Query().Get("idp_id")
		return v.e.Browse(ctx, u)
	}
	info, err := Login(v.ctx, v.d, LoginOptions{Org: "acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	if seen != "acme.example" || info.Org != "acme.example" {
		t.Errorf("idp_id %q, org %q", seen, info.Org)
	}
}

func TestNotLoggedIn(t *testing.T) {
	v := newSessEnv(t, 0)
	s := NewSession(v.d)
	if _, err := s.Token(v.ctx, ""); !errors.Is(err, ErrNoCredential) {
		t.Errorf("Token: %v", err)
	}
	if _, err := s.Info(v.ctx); !errors.Is(err, ErrNoCredential) {
		t.Errorf("Info: %v", err)
	}
	if ok, err := s.Exists(v.ctx); ok || err != nil {
		t.Errorf("Exists: %v %v", ok, err)
	}
	if err := s.Logout(v.ctx); err != nil {
		t.Errorf("Logout: %v", err)
	}
}

func TestRefreshOnExpiryWritesBack(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	first, err := NewSession(v.d).Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	oldRT := v.session(t).RefreshToken
	v.e.ResetCounts()

	v.e.Clock().Advance(44 * time.Minute) // 16 min left: still fresh
	if tok, err := NewSession(v.d).Token(v.ctx, ""); err != nil || tok.Raw != first.Raw {
		t.Fatalf("at +44m: %v (same token: %v)", err, err == nil && tok.Raw == first.Raw)
	}
	if n := v.e.Count("sts/exchange_refresh_token"); n != 0 {
		t.Fatalf("refreshed %d times while fresh", n)
	}

	v.e.Clock().Advance(2 * time.Minute) // 14 min left: refresh (BuildKit keeps an answer 10 min)
	tok, err := NewSession(v.d).Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Raw == first.Raw || !tok.Fresh(v.e.Clock().Now()) {
		t.Fatal("not a new, fresh token")
	}
	if n := v.e.Count("sts/exchange_refresh_token"); n != 1 {
		t.Fatalf("refreshes = %d, want 1", n)
	}
	if rt := v.session(t).RefreshToken; rt == oldRT || rt == "" {
		t.Fatal("the rotated refresh token was not stored")
	}
	// Written back: the next call (a new process) makes no network call.
	v.e.ResetCounts()
	again, err := NewSession(v.d).Token(v.ctx, "")
	if err != nil || again.Raw != tok.Raw {
		t.Fatalf("second call: %v", err)
	}
	if n := v.e.Count("sts/exchange_refresh_token") + v.e.Count("sts/exchange"); n != 0 {
		t.Fatalf("%d STS calls after write-back", n)
	}
	// And the rotated refresh token works for the next expiry.
	v.e.Clock().Advance(56 * time.Minute)
	if _, err := NewSession(v.d).Token(v.ctx, ""); err != nil {
		t.Fatal(err)
	}
	v.noSecrets(t)
}

func TestRefreshOtherAudience(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	v.e.ResetCounts()
	s := NewSession(v.d)
	// Login fetched an API token (to learn the org); drop it so this audience is refreshed.
	if err := v.d.Store.Delete(v.ctx, tokenKey(s.ih, v.d.Settings.API)); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Token(v.ctx, v.d.Settings.API)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.HasAudience(v.d.Settings.API) {
		t.Errorf("aud %v", tok.Audience)
	}
	if _, err := s.Token(v.ctx, v.d.Settings.API); err != nil {
		t.Fatal(err)
	}
	// The registry token minted at login is still cached, and the refresh token rotated
	// by the API-audience refresh is the one stored.
	if _, err := s.Token(v.ctx, "cgr.dev"); err != nil {
		t.Fatal(err)
	}
	if n := v.e.Count("sts/exchange_refresh_token"); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
	info, err := s.Info(v.ctx)
	if err != nil || len(info.Tokens) != 2 {
		t.Errorf("info %+v %v", info, err)
	}
}

func TestRefreshIsSingleFlight(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	v.e.Clock().Advance(56 * time.Minute)
	v.e.ResetCounts()
	const n = 16
	var wg sync.WaitGroup
	toks := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A Session each, as separate processes would have.
			t, err := NewSession(v.d).Token(v.ctx, "")
			if err == nil {
				toks[i] = t.Raw
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
		if toks[i] != toks[0] {
			t.Fatalf("goroutine %d got another token", i)
		}
	}
	if got := v.e.Count("sts/exchange_refresh_token"); got != 1 {
		t.Fatalf("refreshes = %d, want exactly 1", got)
	}
}

func TestSkewUsesIssuerClock(t *testing.T) {
	for _, tc := range []struct {
		name string
		off  time.Duration // local clock minus issuer clock
	}{
		{"local clock 10m behind the issuer", -10 * time.Minute},
		{"local clock 10m ahead of the issuer", 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newSessEnv(t, tc.off)
			v.login(t)
			if skew := v.session(t).skew(); (skew + tc.off).Abs() > 3*time.Second {
				t.Fatalf("learned skew %v for a local offset of %v", skew, tc.off)
			}
			v.e.ResetCounts()
			v.e.Clock().Advance(44 * time.Minute) // issuer: 16 min left
			if _, err := NewSession(v.d).Token(v.ctx, ""); err != nil {
				t.Fatal(err)
			}
			if n := v.e.Count("sts/exchange_refresh_token"); n != 0 {
				t.Fatalf("refreshed at 16 min left (issuer clock)")
			}
			v.e.Clock().Advance(2 * time.Minute) // issuer: 14 min left
			tok, err := NewSession(v.d).Token(v.ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if n := v.e.Count("sts/exchange_refresh_token"); n != 1 {
				t.Fatalf("refreshes at 14 min left (issuer clock) = %d, want 1", n)
			}
			if !tok.Fresh(v.e.Clock().Now()) {
				t.Fatal("served a token that is not fresh by the issuer's clock")
			}
			// The skew learned from the refresh's Date header is kept.
			if skew := v.session(t).skew(); (skew + tc.off).Abs() > 3*time.Second {
				t.Fatalf("skew after refresh %v", skew)
			}
		})
	}
}

func TestIssuerDown(t *testing.T) {
	short := func(v *sessEnv) (context.Context, context.CancelFunc) {
		return context.WithTimeout(v.ctx, 2*time.Second)
	}
	t.Run("fresh cached token is served", func(t *testing.T) {
		v := newSessEnv(t, 0)
		v.login(t)
		v.e.SetFault(emulator.Fault{IssuerDown: true})
		ctx, cancel := short(v)
		defer cancel()
		if _, err := NewSession(v.d).Token(ctx, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unexpired but stale token is served within 2 s, and the next get does not wait", func(t *testing.T) {
		v := newSessEnv(t, 0)
		v.login(t)
		v.e.Clock().Advance(57 * time.Minute)
		v.e.SetFault(emulator.Fault{IssuerDown: true})
		for i := range 3 {
			ctx, cancel := short(v)
			start := time.Now()
			tok, err := NewSession(v.d).Token(ctx, "")
			took := time.Since(start)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if !tok.Expiry.After(v.e.Clock().Now()) {
				t.Fatal("served an expired token")
			}
			if i > 0 && took > time.Second {
				t.Errorf("get %d waited %v for a refresh already known to hang", i, took)
			}
		}
		v.noSecrets(t)
	})
	t.Run("unexpired but stale token, issuer answering 503: served with a warning", func(t *testing.T) {
		v := newSessEnv(t, 0)
		v.login(t)
		v.e.Clock().Advance(57 * time.Minute)
		v.e.SetFault(emulator.Fault{IssuerStatus: 503})
		ctx, cancel := short(v)
		defer cancel()
		tok, err := NewSession(v.d).Token(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if !tok.Expiry.After(v.e.Clock().Now()) {
			t.Fatal("served an expired token")
		}
		if !strings.Contains(v.stderr.String(), "using the cached token") {
			t.Errorf("no warning: %q", v.stderr.String())
		}
		v.e.ResetCounts()
		if _, err := NewSession(v.d).Token(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if n := v.e.Count("sts/exchange_refresh_token"); n != 0 {
			t.Errorf("the next get asked the failing issuer again (%d times) instead of remembering", n)
		}
		v.noSecrets(t)
	})
	t.Run("expired token: one fixable line within the deadline", func(t *testing.T) {
		v := newSessEnv(t, 0)
		v.login(t)
		v.e.Clock().Advance(61 * time.Minute)
		v.e.SetFault(emulator.Fault{IssuerDown: true})
		ctx, cancel := short(v)
		defer cancel()
		tok, err := NewSession(v.d).Token(ctx, "")
		if tok != nil {
			t.Fatal("served a token")
		}
		wantFixable(t, err, "cannot reach "+v.e.IssuerURL(), "cached token expired at")
		v.noSecrets(t, err)
	})
}

func TestIssuer503(t *testing.T) {
	t.Run("persistent: 3 attempts then a fixable line", func(t *testing.T) {
		v := newSessEnv(t, 0)
		v.login(t)
		v.e.Clock().Advance(61 * time.Minute)
		v.e.SetFault(emulator.Fault{IssuerStatus: http.StatusServiceUnavailable})
		v.e.ResetCounts()
		_, err := NewSession(v.d).Token(v.ctx, "")
		wantFixable(t, err, "cached token expired at")
		if n := v.e.Count("sts/exchange_refresh_token"); n != 3 {
			t.Errorf("attempts = %d, want 3", n)
		}
	})
	t.Run("transient: retried and refreshed", func(t *testing.T) {
		v := newSessEnv(t, 0)
		v.login(t)
		// The issuer answers 503 until the first refresh has reached it; the retry, 100-200 ms
		// later, finds it answering again.
		v.e.Clock().Advance(61 * time.Minute)
		v.e.ResetCounts()
		v.e.SetFault(emulator.Fault{IssuerStatus: http.StatusServiceUnavailable})
		go func() {
			for v.e.Count("sts/exchange_refresh_token") == 0 {
				time.Sleep(2 * time.Millisecond)
			}
			v.e.SetFault(emulator.Fault{})
		}()
		tok, err := NewSession(v.d).Token(v.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if n := v.e.Count("sts/exchange_refresh_token"); n != 2 || tok == nil {
			t.Errorf("refresh attempts: %d, want 2 (one 503, one retry)", n)
		}
	})
}

func TestRevokedRefreshToken(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	v.e.RevokeRefreshTokens()
	v.e.Clock().Advance(56 * time.Minute)
	_, err := NewSession(v.d).Token(v.ctx, "")
	wantFixable(t, err, "revoked", "run: docker-credential-cgr login")
	if !errors.Is(err, ErrLoginRequired) {
		t.Error("not ErrLoginRequired")
	}
	v.noSecrets(t, err)
}

func TestRefreshTokenExpired(t *testing.T) {
	v := newSessEnv(t, 0)
	v.e.SetRefreshTTL(30 * time.Minute)
	v.login(t)
	v.e.Clock().Advance(56 * time.Minute)
	v.e.ResetCounts()
	_, err := NewSession(v.d).Token(v.ctx, "")
	wantFixable(t, err, "expire", "run: docker-credential-cgr login")
	if n := v.e.Count("sts/exchange_refresh_token"); n != 0 {
		t.Errorf("a refresh token known to be expired was sent (%d)", n)
	}
}

func TestNeverServesExpiredToken(t *testing.T) {
	v := newSessEnv(t, 0)
	v.e.SetRefreshTTL(30 * time.Minute)
	v.login(t)
	v.e.Clock().Advance(2 * time.Hour)
	tok, err := NewSession(v.d).Token(v.ctx, "")
	if tok != nil || err == nil {
		t.Fatal("served an expired token")
	}
}

func TestLogout(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	s := NewSession(v.d)
	if _, err := s.Token(v.ctx, v.d.Settings.API); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(v.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(v.ctx, ""); !errors.Is(err, ErrNoCredential) {
		t.Errorf("after logout: %v", err)
	}
	for _, aud := range []string{"cgr.dev", v.d.Settings.API} {
		if _, err := v.d.Store.Get(v.ctx, tokenKey(s.ih, aud)); !errors.Is(err, keystore.ErrNotFound) {
			t.Errorf("token for %s still stored: %v", aud, err)
		}
	}
}

func TestRemember(t *testing.T) {
	v := newSessEnv(t, 0)
	s := NewSession(v.d)
	raw := v.e.MintToken(v.e.User().ID, "cgr.dev")
	if err := s.Remember(v.ctx, raw); err != nil {
		t.Fatal(err)
	}
	// Served while usable, though there is no session.
	tok, err := s.Token(v.ctx, "")
	if err != nil || tok.Raw != raw {
		t.Fatalf("Token: %v", err)
	}
	// Gone once expired: never a static credential.
	v.e.Clock().Advance(time.Hour)
	if _, err := s.Token(v.ctx, ""); !errors.Is(err, ErrNoCredential) {
		t.Errorf("expired remembered token: %v", err)
	}
	if err := s.Remember(v.ctx, raw); !errors.Is(err, ErrNotCacheable) {
		t.Errorf("expired: %v", err)
	}
	if err := s.Remember(v.ctx, "a-static-password"); !errors.Is(err, ErrNotCacheable) {
		t.Errorf("static: %v", err)
	}
	foreign := sessMint(t, "https://evil.example", "x", []string{"cgr.dev"}, v.e.Clock().Now(), v.e.Clock().Now().Add(time.Hour))
	if err := s.Remember(v.ctx, foreign); !errors.Is(err, ErrNotCacheable) {
		t.Errorf("foreign issuer: %v", err)
	}
}

func TestRememberKeepsLongerLivedToken(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	s := NewSession(v.d)
	cur, err := s.Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	older := sessMint(t, v.e.IssuerURL(), "x", []string{"cgr.dev"}, v.e.Clock().Now(), cur.Expiry.Add(-time.Minute))
	if err := s.Remember(v.ctx, older); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.Token(v.ctx, ""); tok.Raw != cur.Raw {
		t.Error("a shorter-lived token replaced the cached one")
	}
}

func TestSessionRecordShape(t *testing.T) {
	// The documented keys of session/<ih> (docs/DESIGN.md).
	b, _ := json.Marshal(sessionRecord{RefreshToken: "r", RefreshExpiry: time.Unix(1, 0), Subject: "s", Email: "e", Org: "o", SkewNS: 5})
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"refresh_token", "refresh_expiry", "subject", "email", "org", "skew_ns"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
}

func TestStoreKeys(t *testing.T) {
	if got := tokenKey("127.0.0.1:4000", "http://127.0.0.1:5000"); got != "token/127.0.0.1:4000/http://127.0.0.1:5000" {
		t.Errorf("tokenKey = %q", got)
	}
	if got := tokenKey("h", "a b?c"); got != "token/h/a_b_c" {
		t.Errorf("tokenKey = %q", got)
	}
	if got := tokenKey("h", strings.Repeat("x", 300)); len(got) > 200 {
		t.Errorf("key of %d bytes", len(got))
	}
	if got := lockName("refresh", "127.0.0.1:4000"); got != "refresh-127.0.0.1_4000" {
		t.Errorf("lockName = %q", got)
	}
}

func BenchmarkSessionTokenWarm(b *testing.B) {
	v := newSessEnv(b, 0)
	v.login(b)
	v.e.ResetCounts() // login itself refreshes once, for the platform API (it learns the org)
	s := NewSession(v.d)
	for b.Loop() {
		if _, err := s.Token(v.ctx, ""); err != nil {
			b.Fatal(err)
		}
	}
	if n := v.e.Count("sts/exchange_refresh_token"); n != 0 {
		b.Fatalf("%d refreshes", n)
	}
}

func BenchmarkSessionRefresh(b *testing.B) {
	v := newSessEnv(b, 0)
	v.login(b)
	s := NewSession(v.d)
	v.e.ResetCounts()
	n := 0
	for b.Loop() {
		v.e.Clock().Advance(56 * time.Minute) // stale: every call refreshes
		if _, err := s.Token(v.ctx, ""); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if got := v.e.Count("sts/exchange_refresh_token"); got != n {
		b.Fatalf("%d refreshes for %d calls", got, n)
	}
}

// lockedStore is a keychain that stays locked.
type lockedStore struct{ keystore.Store }

func (lockedStore) Get(context.Context, string) ([]byte, error) {
	return nil, fmt.Errorf("secret service: %w", keystore.ErrLocked)
}

func TestKeychainLocked(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	d := v.d
	d.Store = lockedStore{v.d.Store}
	_, err := NewSession(d).Token(v.ctx, "")
	fe := wantFixable(t, err, "locked", "CGR_STORE=file")
	if !errors.Is(fe, keystore.ErrLocked) {
		t.Error("not keystore.ErrLocked")
	}
}

// Another process holds the refresh lock (stuck against a slow issuer): a get with a stale
// but usable token waits only briefly for it, then serves that token, not the whole deadline.
func TestUsableTokenServedWhileAnotherHoldsTheRefreshLock(t *testing.T) {
	v := newSessEnv(t, 0)
	v.login(t)
	s := NewSession(v.d)
	first, err := s.Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	v.e.Clock().Advance(57 * time.Minute) // 3 min left: stale (< 5 min), still usable
	unlock, err := lockStore(v.ctx, v.d, lockName("refresh", s.ih))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(v.ctx, 30*time.Second)
	defer cancel()
	tok, err := s.Token(ctx, "")
	if err != nil || tok.Raw != first.Raw {
		t.Fatalf("Token while the lock is held: %v; want the cached, usable token", err)
	}
	if ctx.Err() != nil {
		t.Fatal("it waited out the whole deadline")
	}
}
