package token_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// ptSyncBuffer is a stderr shared by concurrent Gets.
type ptSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *ptSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *ptSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *ptSyncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// ptFixture is one emulator and one real file store; the helper's clock is the emulator's.
type ptFixture struct {
	t      *testing.T
	emu    *emulator.Emulator
	d      token.Deps
	stderr *ptSyncBuffer
	host   string
}

func newPTFixture(t *testing.T) *ptFixture {
	t.Helper()
	return newPTFixtureWith(t, emulator.Options{})
}

func newPTFixtureWith(t *testing.T, opts emulator.Options) *ptFixture {
	t.Helper()
	emu, err := emulator.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	dir := t.TempDir()
	st, err := keystore.Open(context.Background(), keystore.Options{Backend: "file", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	f := &ptFixture{t: t, emu: emu, stderr: &ptSyncBuffer{}, host: emu.RegistryHost()}
	f.d = token.Deps{
		Settings: config.Settings{
			Registries: []string{emu.RegistryHost()},
			Issuer:     emu.IssuerURL(),
			API:        emu.APIURL(),
			Audience:   config.DefaultAudience,
			Store:      "file",
			StoreDir:   dir,
		},
		Store:       st,
		HTTP:        &http.Client{Timeout: 10 * time.Second},
		Clock:       emu.Clock(),
		Stderr:      f.stderr,
		Rand:        rand.Reader,
		OpenBrowser: emu.Browse,
	}
	return f
}

func ptCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func (f *ptFixture) login() {
	f.t.Helper()
	if _, err := token.Login(ptCtx(f.t), f.d, token.LoginOptions{}); err != nil {
		f.t.Fatalf("login: %v", err)
	}
	f.stderr.Reset() // the login's "Opening browser" line
}

func (f *ptFixture) logout() {
	f.t.Helper()
	if err := token.NewSession(f.d).Logout(ptCtx(f.t)); err != nil {
		f.t.Fatalf("logout: %v", err)
	}
}

func (f *ptFixture) pts() *token.PullTokens { return token.NewPullTokens(f.d, token.NewSession(f.d)) }

// create makes a pull token and stores it for the registry, as `pull-token create --save`.
func (f *ptFixture) create(ttl time.Duration) *token.PullToken {
	f.t.Helper()
	p := f.pts()
	pt, err := p.Create(ptCtx(f.t), token.CreateOptions{TTL: ttl, Name: "ci"})
	if err != nil {
		f.t.Fatalf("create: %v", err)
	}
	if err := p.Keep(ptCtx(f.t), pt); err != nil {
		f.t.Fatalf("keep: %v", err)
	}
	return pt
}

// pull fetches the private image's manifest with these credentials.
func (f *ptFixture) pull(user, pass string) error {
	f.t.Helper()
	ref, err := name.ParseReference(f.emu.PrivateImage(), name.Insecure)
	if err != nil {
		f.t.Fatal(err)
	}
	_, err = remote.Image(ref, remote.WithContext(ptCtx(f.t)), remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	return err
}

func (f *ptFixture) get() *token.PullToken {
	f.t.Helper()
	pt, err := f.pts().Get(ptCtx(f.t), f.host)
	if err != nil {
		f.t.Fatalf("get: %v", err)
	}
	return pt
}

func TestCreatePullsPrivateImage(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	pt := f.create(0)

	if !token.ValidIdentityID(pt.Identity) || !strings.HasPrefix(pt.Identity, f.emu.Org().ID+"/") {
		t.Fatalf("identity %q is not a child of the org %s", pt.Identity, f.emu.Org().ID)
	}
	if pt.TTL != token.DefaultPullTokenTTL || pt.Name != "ci" || pt.Parent != f.emu.Org().ID {
		t.Errorf("created %+v; want TTL 720h, name ci, parent the org", *pt)
	}
	// The JWT: RS256, the pull-token issuer, a pull-token subject, the issuer as audience, exp = iat + ttl.
	tok, err := jwt.ParseSigned(pt.Token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		t.Fatal(err)
	}
	if c.Issuer != token.PullTokenIssuer || !strings.HasPrefix(c.Subject, "pull-token-") || len(c.Subject) != len("pull-token-")+40 ||
		len(c.Audience) != 1 || c.Audience[0] != f.emu.IssuerURL() || c.Expiry.Time().Sub(c.IssuedAt.Time()) != 720*time.Hour {
		t.Errorf("claims %+v", c)
	}
	if !pt.Expiry.Equal(c.Expiry.Time()) {
		t.Errorf("expiry %v, JWT exp %v", pt.Expiry, c.Expiry.Time())
	}
	if err := f.pull(pt.Identity, pt.Token); err != nil {
		t.Fatalf("pulling %s with the pull token: %v", f.emu.PrivateImage(), err)
	}
	if err := f.pull(pt.Identity, pt.Token+"x"); err == nil {
		t.Error("a tampered pull token pulled the private image")
	}
	// Stored for the served host, served as is.
	got := f.get()
	if got.Identity != pt.Identity || got.Token != pt.Token {
		t.Error("get does not serve the saved pull token")
	}
	if f.stderr.String() != "" {
		t.Errorf("stderr on a fresh token: %q", f.stderr.String())
	}
}

func TestCreateValidatesTTL(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	for _, ttl := range []time.Duration{-time.Hour, 8761 * time.Hour} {
		if _, err := f.pts().Create(ptCtx(t), token.CreateOptions{TTL: ttl}); err == nil || !strings.Contains(err.Error(), "8760h") {
			t.Errorf("create with ttl %v: %v", ttl, err)
		}
	}
	if n := f.emu.Count("api/identities.create"); n != 0 {
		t.Errorf("%d identities created for invalid TTLs", n)
	}
	if _, err := f.pts().Create(ptCtx(t), token.CreateOptions{TTL: 8760 * time.Hour}); err != nil {
		t.Errorf("create with the maximum ttl: %v", err)
	}
}

func TestCreateWithoutLoginSaysLogin(t *testing.T) {
	f := newPTFixture(t)
	_, err := f.pts().Create(ptCtx(t), token.CreateOptions{})
	var fe *token.FixableError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "docker-credential-cgr login") {
		t.Fatalf("create without a session: %v; want a fixable error naming login", err)
	}
}

func TestCreateParentChoice(t *testing.T) {
	f := newPTFixture(t)
	other := f.emu.AddOrg("other.example")
	u := f.emu.AddUser("two@example.com", f.emu.Org(), other)
	f.emu.SetBrowserUser(u)
	f.login()
	_, err := f.pts().Create(ptCtx(t), token.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "--parent") || !strings.Contains(err.Error(), "other.example") {
		t.Fatalf("create with two orgs and no --parent: %v; want a line naming the orgs and --parent", err)
	}
	pt, err := f.pts().Create(ptCtx(t), token.CreateOptions{Parent: "other.example", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if pt.Parent != other.ID || !strings.HasPrefix(pt.Identity, other.ID+"/") {
		t.Errorf("--parent by name: created %s under %s; want %s", pt.Identity, pt.Parent, other.ID)
	}
	if _, err := f.pts().Create(ptCtx(t), token.CreateOptions{Parent: "nope.example"}); err == nil || !strings.Contains(err.Error(), "nope.example") {
		t.Errorf("unknown --parent: %v", err)
	}
}

// Renewal: nothing before two thirds of the lifetime; one replacement after, the old identity
// deleted, the new token pulling.
func TestGetRenewsAfterTwoThirds(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	const ttl = 300 * time.Second
	old := f.create(ttl)
	f.emu.ResetCounts()

	f.emu.Clock().Advance(ttl / 3) // two thirds remain
	if got := f.get(); got.Identity != old.Identity {
		t.Fatal("renewed before two thirds of the lifetime passed")
	}
	if n := f.emu.Count("api/identities.create"); n != 0 {
		t.Fatalf("%d identities created before the renewal mark", n)
	}

	f.emu.Clock().Advance(ttl/3 + 10*time.Second) // less than a third remains
	got := f.get()
	if got.Identity == old.Identity || got.Token == old.Token {
		t.Fatal("not renewed with less than a third of the lifetime left")
	}
	if got.TTL != ttl || got.Name != "ci" || got.Parent != old.Parent {
		t.Errorf("replacement %+v; want the same TTL, name and parent", *got)
	}
	if n := f.emu.Count("api/identities.create"); n != 1 {
		t.Errorf("%d identities created by one renewal", n)
	}
	if f.emu.Identity(old.Identity) {
		t.Error("the replaced identity still exists")
	}
	if !f.emu.Identity(got.Identity) {
		t.Error("the replacement identity does not exist")
	}
	stored, err := f.pts().Stored(ptCtx(t), f.host)
	if err != nil || stored.Identity != got.Identity {
		t.Fatalf("stored after renewal: %v %v", stored, err)
	}
	if err := f.pull(got.Identity, got.Token); err != nil {
		t.Fatalf("the renewed token does not pull: %v", err)
	}
	if again := f.get(); again.Identity != got.Identity || f.emu.Count("api/identities.create") != 1 {
		t.Error("a second get renewed again")
	}
	if s := f.stderr.String(); s != "" {
		t.Errorf("stderr during a successful renewal: %q", s)
	}
}

// Many Gets at once, all past the mark: one replacement, and all serve it.
func TestConcurrentGetsRenewOnce(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	const ttl = 300 * time.Second
	old := f.create(ttl)
	f.emu.ResetCounts()
	f.emu.Clock().Advance(ttl*2/3 + 10*time.Second)

	const n = 8
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A PullTokens per goroutine, as separate `get` processes would have.
			d := f.d
			pt, err := token.NewPullTokens(d, token.NewSession(d)).Get(ptCtx(t), f.host)
			if err == nil {
				ids[i] = pt.Identity
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("get %d: %v", i, errs[i])
		}
		if ids[i] == old.Identity || ids[i] != ids[0] {
			t.Errorf("get %d served %s; want the one replacement %s", i, ids[i], ids[0])
		}
	}
	if c := f.emu.Count("api/identities.create"); c != 1 {
		t.Errorf("%d concurrent gets created %d replacements; want 1", n, c)
	}
	if f.emu.Identity(old.Identity) {
		t.Error("the replaced identity still exists")
	}
}

// Without a session: served with a warning once less than a third remains; after expiry a
// fixable error saying so, never the token.
func TestGetWithoutSessionWarnsThenFails(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	const ttl = 300 * time.Second
	old := f.create(ttl)
	f.logout()

	f.emu.Clock().Advance(ttl / 3)
	f.get()
	if s := f.stderr.String(); s != "" {
		t.Errorf("warning with two thirds left: %q", s)
	}

	f.emu.Clock().Advance(ttl/3 + 10*time.Second)
	got := f.get()
	if got.Identity != old.Identity {
		t.Fatal("renewed without a session")
	}
	warn := f.stderr.String()
	if !strings.Contains(warn, "expire") || !strings.Contains(warn, f.host) || !strings.Contains(warn, "docker-credential-cgr login") {
		t.Errorf("warning = %q; want one naming the host, saying it expires, and how to fix it", warn)
	}
	if strings.Contains(warn, old.Token) {
		t.Fatal("the warning prints the token")
	}
	if strings.Count(warn, "\n") != 1 {
		t.Errorf("warning is not one line: %q", warn)
	}

	f.emu.Clock().Advance(ttl)
	_, err := f.pts().Get(ptCtx(t), f.host)
	var fe *token.FixableError
	if !errors.As(err, &fe) {
		t.Fatalf("get of an expired pull token: %v; want a *FixableError", err)
	}
	if errors.Is(err, token.ErrNoCredential) {
		t.Error("an expired pull token reads as 'nothing configured' (get would say not found)")
	}
	msg := err.Error()
	if !strings.Contains(msg, "expired") || !strings.Contains(msg, old.Expiry.UTC().Format("2006-01-02 15:04")) ||
		!strings.Contains(msg, "docker-credential-cgr login") || strings.Contains(msg, "\n") || strings.Contains(msg, old.Token) {
		t.Errorf("error = %q; want one line saying it expired, when, and the fix", msg)
	}
	if n := f.emu.Count("api/identities.create"); n != 1 {
		t.Errorf("%d identities created; want only the original", n)
	}

	// Logging in again lets get replace even an expired token.
	f.login()
	renewed := f.get()
	if renewed.Identity == old.Identity {
		t.Fatal("not renewed after a new login")
	}
	if err := f.pull(renewed.Identity, renewed.Token); err != nil {
		t.Fatalf("the token renewed after login does not pull: %v", err)
	}
}

// Renewal failing (platform API down) while the token is valid: served, with a warning; the
// failure is remembered for a few minutes (the next gets do not pay for it again), then the
// renewal is tried again and succeeds once the API is back.
func TestGetRenewalFailureServesAndWarns(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	const ttl = 30 * time.Minute
	old := f.create(ttl)
	f.emu.Clock().Advance(ttl*2/3 + 10*time.Second)
	f.emu.SetFault(emulator.Fault{APIStatus: http.StatusServiceUnavailable})
	got := f.get()
	if got.Identity != old.Identity {
		t.Fatal("served something else than the stored token")
	}
	if w := f.stderr.String(); !strings.Contains(w, "expire") || !strings.Contains(w, "could not be renewed") {
		t.Errorf("warning = %q", w)
	}
	f.emu.SetFault(emulator.Fault{})
	f.emu.ResetCounts()
	if got := f.get(); got.Identity != old.Identity || f.emu.Count("api/roles") != 0 {
		t.Fatalf("a renewal was tried again at once (API calls %d): the failure was not remembered", f.emu.Count("api/roles"))
	}
	f.emu.Clock().Advance(3*time.Minute + time.Second)
	if got := f.get(); got.Identity == old.Identity {
		t.Error("not renewed once the API is back and the failure is a few minutes old")
	}
}

func TestSaveFromStore(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	pt, err := f.pts().Create(ptCtx(t), token.CreateOptions{TTL: 300 * time.Second, Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	p := f.pts()
	for _, bad := range []struct{ id, secret string }{
		{"not-an-id", pt.Token},
		{f.emu.Org().ID, pt.Token}, // an org, not a pull token identity
		{pt.Identity, "not-a-jwt"},
	} {
		err := p.Save(ptCtx(t), f.host, bad.id, bad.secret)
		if err == nil {
			t.Errorf("save %q accepted", bad.id)
		} else if strings.Contains(err.Error(), pt.Token) {
			t.Fatal("the error prints the token")
		}
	}
	if err := p.Save(ptCtx(t), f.host, pt.Identity, pt.Token); err != nil {
		t.Fatal(err)
	}
	st, err := p.Stored(ptCtx(t), f.host)
	if err != nil {
		t.Fatal(err)
	}
	if st.Identity != pt.Identity || st.TTL != 300*time.Second || st.Parent != f.emu.Org().ID || !st.Expiry.Equal(pt.Expiry) {
		t.Errorf("stored %+v", *st)
	}
	// Renewal of a stored token learns the name from the old identity.
	f.emu.Clock().Advance(210 * time.Second)
	got := f.get()
	if got.Identity == pt.Identity || got.Name != "ci" || got.TTL != 300*time.Second {
		t.Errorf("renewal of a stored token: %+v", *got)
	}
	if err := p.Forget(ptCtx(t), f.host); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Get(ptCtx(t), f.host); !errors.Is(err, token.ErrNoCredential) {
		t.Errorf("get after forget: %v; want ErrNoCredential", err)
	}
}

func TestListAndDelete(t *testing.T) {
	f := newPTFixture(t)
	f.login()
	kept := f.create(time.Hour)
	p := f.pts()
	other, err := p.Create(ptCtx(t), token.CreateOptions{TTL: 2 * time.Hour, Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := p.List(ptCtx(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Identity != kept.Identity || list[1].Identity != other.Identity ||
		list[0].Name != "ci" || list[1].Name != "other" || !list[1].Expiry.Equal(other.Expiry) || list[0].Token != "" {
		b, _ := json.Marshal(list)
		t.Fatalf("list = %s", b)
	}
	if err := p.Delete(ptCtx(t), kept.Identity); err != nil {
		t.Fatal(err)
	}
	if f.emu.Identity(kept.Identity) {
		t.Error("deleted identity still exists")
	}
	if _, err := p.Stored(ptCtx(t), f.host); !errors.Is(err, token.ErrNoCredential) {
		t.Errorf("the deleted token is still stored: %v", err)
	}
	if list, _ := p.List(ptCtx(t), ""); len(list) != 1 || list[0].Identity != other.Identity {
		t.Errorf("list after delete: %v", list)
	}
	if err := p.Delete(ptCtx(t), kept.Identity); err == nil || !token.IsNotFound(err) {
		t.Errorf("deleting it again: %v", err)
	}
	if err := p.Delete(ptCtx(t), "nope"); err == nil {
		t.Error("delete of a malformed id accepted")
	}
}

// ptLocalClock is our clock when the issuer's runs ahead: the emulator's clock minus off, so
// advancing the emulator advances both.
type ptLocalClock struct {
	emu *emulator.Clock
	off time.Duration
}

func (c ptLocalClock) Now() time.Time { return c.emu.Now().Add(-c.off) }

// newSkewedPTFixture: the issuer (emulator) is an hour ahead of the helper's clock.
func newSkewedPTFixture(t *testing.T) *ptFixture {
	t.Helper()
	f := newPTFixtureWith(t, emulator.Options{Clock: emulator.NewClock(time.Now().Add(time.Hour))})
	f.d.Clock = ptLocalClock{emu: f.emu.Clock(), off: time.Hour}
	return f
}

// The issuer's clock an hour ahead: a stored pull token is judged by the issuer's time, so it
// is refused once its lifetime passed there, although our clock says an hour remains.
func TestPullTokenExpiryUsesIssuerClock(t *testing.T) {
	for _, how := range []string{"create", "save"} {
		t.Run(how, func(t *testing.T) {
			f := newSkewedPTFixture(t)
			f.login()
			const ttl = 30 * time.Second
			var old *token.PullToken
			if how == "create" {
				old = f.create(ttl)
			} else {
				// `store` (docker login) of a token made elsewhere, no session: skew from its iat.
				pt, err := f.pts().Create(ptCtx(t), token.CreateOptions{TTL: ttl, Name: "ci"})
				if err != nil {
					t.Fatal(err)
				}
				f.logout()
				if err := f.pts().Save(ptCtx(t), f.host, pt.Identity, pt.Token); err != nil {
					t.Fatal(err)
				}
				old = pt
			}
			f.logout() // no session: nothing can renew it

			f.emu.Clock().Advance(5 * time.Second)
			if got := f.get(); got.Identity != old.Identity || f.stderr.String() != "" {
				t.Fatalf("early get: identity changed %v, stderr %q", got.Identity != old.Identity, f.stderr.String())
			}
			f.emu.Clock().Advance(17 * time.Second) // less than a third remains (issuer time)
			f.get()
			if w := f.stderr.String(); !strings.Contains(w, "expire") {
				t.Errorf("no expiry warning with less than a third left by the issuer's clock: %q", w)
			}
			f.emu.Clock().Advance(10 * time.Second) // 32 s of issuer time: expired there
			_, err := f.pts().Get(ptCtx(t), f.host)
			var fe *token.FixableError
			if !errors.As(err, &fe) || !errors.Is(err, token.ErrPullTokenExpired) || !strings.Contains(err.Error(), "expired") {
				t.Fatalf("get of a pull token expired by the issuer's clock: %v; want the expired line", err)
			}
			if strings.Contains(err.Error(), old.Token) {
				t.Fatal("the error prints the token")
			}
			if perr := f.pull(old.Identity, old.Token); perr == nil {
				t.Error("the registry still takes the token: the test's clocks are off")
			}
		})
	}
}

// With a session and the issuer an hour ahead, renewal happens at the issuer's two-thirds mark.
func TestPullTokenRenewalUsesIssuerClock(t *testing.T) {
	f := newSkewedPTFixture(t)
	f.login()
	const ttl = 30 * time.Second
	old := f.create(ttl)
	f.emu.ResetCounts()

	f.emu.Clock().Advance(ttl/3 - 2*time.Second)
	if got := f.get(); got.Identity != old.Identity {
		t.Fatal("renewed before the issuer's two-thirds mark")
	}
	f.emu.Clock().Advance(ttl/3 + 3*time.Second) // about 9 s left by the issuer's clock
	got := f.get()
	if got.Identity == old.Identity {
		t.Fatal("not renewed with less than a third left by the issuer's clock")
	}
	if n := f.emu.Count("api/identities.create"); n != 1 {
		t.Errorf("%d identities created by one renewal", n)
	}
	if err := f.pull(got.Identity, got.Token); err != nil {
		t.Fatalf("the renewed token does not pull: %v", err)
	}
	// The replacement carries the skew: it too is renewed at the issuer's mark, not an hour late.
	f.emu.Clock().Advance(ttl*2/3 + 2*time.Second)
	if again := f.get(); again.Identity == got.Identity {
		t.Fatal("the replacement was not renewed at the issuer's two-thirds mark")
	}
	if s := f.stderr.String(); s != "" {
		t.Errorf("stderr during renewals: %q", s)
	}
}

// countingKeychain is the file store dressed as a keychain, counting reads: what a keychain
// round trip would cost.
type countingKeychain struct {
	keystore.Store
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingKeychain) Kind() string { return "keychain" }

func (c *countingKeychain) Get(ctx context.Context, key string) ([]byte, error) {
	c.mu.Lock()
	c.reads[key]++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}

func (c *countingKeychain) count(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.reads {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// On a keychain, a get with no pull token stored asks the keychain for one once (a store from
// before the index), then never again; saving one and forgetting it keep the index true, and
// an index that is lost only costs the round trip.
func TestPullTokenIndexSavesKeychainRoundTrips(t *testing.T) {
	f := newPTFixture(t)
	kc := &countingKeychain{Store: f.d.Store, reads: map[string]int{}}
	f.d.Store = kc
	pts := func() *token.PullTokens { return token.NewPullTokens(f.d, token.NewSession(f.d)) }
	for range 3 {
		if _, err := pts().Get(ptCtx(t), f.host); !errors.Is(err, token.ErrNoCredential) {
			t.Fatalf("nothing stored: %v", err)
		}
	}
	if n := kc.count("pull/"); n != 1 {
		t.Fatalf("%d keychain reads of pull/ for 3 gets with nothing stored; want 1 (then the index knows)", n)
	}
	f.login()
	pt := f.create(time.Hour)
	if err := pts().Keep(ptCtx(t), pt); err != nil {
		t.Fatal(err)
	}
	if got, err := pts().Get(ptCtx(t), f.host); err != nil || got.Identity != pt.Identity {
		t.Fatalf("after --save: %v", err)
	}
	if err := pts().Forget(ptCtx(t), f.host); err != nil {
		t.Fatal(err)
	}
	before := kc.count("pull/")
	if _, err := pts().Get(ptCtx(t), f.host); !errors.Is(err, token.ErrNoCredential) || kc.count("pull/") != before {
		t.Fatalf("after forget: %v, %d more reads", err, kc.count("pull/")-before)
	}
	// The index lost (a store dir emptied of state): the keychain is asked again, and right.
	for _, n := range []string{"pull-index-" + f.host} {
		if err := keystore.RemoveState(f.d.Settings.StoreDir, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := pts().Keep(ptCtx(t), pt); err != nil {
		t.Fatal(err)
	}
	if err := keystore.RemoveState(f.d.Settings.StoreDir, "pull-index-"+f.host); err != nil {
		t.Fatal(err)
	}
	if got, err := pts().Get(ptCtx(t), f.host); err != nil || got.Identity != pt.Identity {
		t.Fatalf("index lost, token stored: %v", err)
	}
}
