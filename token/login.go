package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

const (
	// browserLoginTimeout bounds a browser login when ctx allows longer.
	browserLoginTimeout = 5 * time.Minute
	// deviceClientID is the client the issuer knows the CLI tools by.
	deviceClientID = "auth0"
	// browserClientID is the client_id of the browser flow (PROTOCOL.md section 3).
	browserClientID = "auth0"
	// slowDownStep: RFC 8628 section 3.5, "increased by 5 seconds for this and all subsequent requests".
	slowDownStep = 5 * time.Second
)

// LoginOptions choose the login flow: browser (default), Chainguard's headless code
// (Headless, PROTOCOL.md 4.1), an RFC 8628 device flow (DeviceFlow, only where the issuer's
// discovery names one), or an assumable identity (Identity with IdentityToken, a JWT or a path
// to one).
type LoginOptions struct {
	Headless      bool
	DeviceFlow    bool
	Identity      string
	IdentityToken string
	// Org is an organization name (its own identity provider, checked with /orgcheck first)
	// or an identity provider id (a UIDP): the login URL's idp_id. Recorded in the session.
	Org string
	// Progress: a person watches stderr at a terminal; the headless login shows the time left.
	Progress bool
}

// Login runs the chosen flow and stores the session and its first token. It returns only
// once the session is stored.
func Login(ctx context.Context, d Deps, o LoginOptions) (*SessionInfo, error) {
	var (
		rec *sessionRecord
		tok *Token
		err error
	)
	switch {
	case o.Identity != "":
		rec, tok, err = identityLogin(ctx, d, o)
	case o.Headless:
		rec, tok, err = headlessLogin(ctx, d, o)
	case o.DeviceFlow:
		rec, tok, err = deviceLogin(ctx, d, o)
	default:
		rec, tok, err = browserLogin(ctx, d, o)
	}
	if err != nil {
		return nil, err
	}
	s := NewSession(d)
	if err := s.saveLogin(ctx, rec, tok); err != nil {
		return nil, err
	}
	if (rec.Kind == "" || rec.Kind == "user") && rec.Org == "" {
		s.learnOrg(ctx)
	}
	return s.Info(ctx)
}

// learnOrg records the user's organization when there is exactly one, so that `status`
// names it (and `pull-token create` defaults to it) without a network call. Best effort:
// a login never fails for it.
func (s *Session) learnOrg(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	groups, err := NewAPI(s.d, s).Groups(ctx)
	if err != nil || len(groups) != 1 {
		return
	}
	unlock, err := lockStore(ctx, s.d, lockName("refresh", s.ih))
	if err != nil {
		return
	}
	defer unlock()
	rec, err := s.readSession(ctx)
	if err != nil || rec.Org != "" {
		return
	}
	rec.Org = groups[0].Name
	_ = s.writeSession(ctx, rec)
}

// saveLogin replaces the stored session under the refresh lock: cached tokens of the
// previous session go (they may belong to another user), then the new session, then its token.
func (s *Session) saveLogin(ctx context.Context, rec *sessionRecord, tok *Token) error {
	unlock, err := lockStore(ctx, s.d, lockName("refresh", s.ih))
	if err != nil {
		return storeFixable(err)
	}
	defer unlock()
	old, _ := s.readSession(ctx)
	for _, aud := range s.audiences(old) {
		if err := s.d.Store.Delete(ctx, tokenKey(s.ih, aud)); err != nil {
			return storeFixable(fmt.Errorf("clearing the old session's tokens: %w", err))
		}
	}
	auds := tok.Audience
	if tok.HasAudience(s.d.Settings.Audience) {
		auds = []string{s.d.Settings.Audience}
	}
	rec.Tokens = map[string]time.Time{}
	for _, a := range auds {
		rec.Tokens[a] = tok.Expiry
	}
	if rec.Subject == "" {
		rec.Subject = tok.Subject
	}
	if rec.Email == "" {
		rec.Email = tok.Email
	}
	if err := s.writeSession(ctx, rec); err != nil {
		return storeFixable(fmt.Errorf("saving the session: %w", err))
	}
	for _, a := range auds {
		if err := writeTokenRecord(ctx, s.d.Store, tokenKey(s.ih, a), tok, rec.skew()); err != nil {
			return storeFixable(fmt.Errorf("saving the token: %w", err))
		}
	}
	return nil
}

// newUserSession builds the record of a human login from its token and refresh token.
func newUserSession(tok *Token, refreshToken string, skew time.Duration, org string) *sessionRecord {
	return &sessionRecord{
		Kind:          "user",
		RefreshToken:  refreshToken,
		RefreshExpiry: RefreshTokenExpiry(refreshToken),
		Subject:       tok.Subject,
		Email:         tok.Email,
		Org:           org,
		IDP:           org,
		SkewNS:        int64(skew),
	}
}

// ---- browser flow (PROTOCOL.md section 3) ----

type callbackResult struct {
	token, refreshToken string
	verified            *Token // the token, checked against the issuer's keys
	err                 error
}

func browserLogin(ctx context.Context, d Deps, o LoginOptions) (*sessionRecord, *Token, error) {
	ctx, cancel := context.WithTimeout(ctx, browserLoginTimeout)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("login: cannot listen for the browser's callback: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	callback := "http://localhost:" + strconv.Itoa(port) + "/callback?token=true&error=true"
	q := url.Values{
		"audience":             {d.Settings.Audience},
		"create_refresh_token": {"true"},
		"exit":                 {"redirect"},
		"redirect":             {callback},
		"skip_registration":    {"true"},
	}
	// Exactly one of client_id and idp_id (SDK auth/login/options.go: they exclude each other).
	if err := setProvider(ctx, d, q, o.Org); err != nil {
		return nil, nil, err
	}
	authURL := strings.TrimRight(d.Settings.Issuer, "/") + "/oauth?" + q.Encode()

	var (
		mu     sync.Mutex
		result *callbackResult
		done   = make(chan struct{})
		once   sync.Once
	)
	allowedHosts := map[string]bool{"localhost:" + strconv.Itoa(port): true, "127.0.0.1:" + strconv.Itoa(port): true}
	mux := http.NewServeMux()
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		if !allowedHosts[r.Host] {
			http.Error(w, "wrong host", http.StatusBadRequest)
			return
		}
		res := readCallback(r.URL.Query(), d.Settings.Issuer)
		w.Header().Set("Cache-Control", "no-store")
		if res.err == nil {
			// Any local process can connect here: only a token the issuer signed, for this
			// issuer and audience, is taken; anything else is refused and the login waits on.
			tok, err := verifyToken(r.Context(), d, res.token, d.Settings.Audience, 0)
			if err != nil {
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, loginPage("Not accepted", "This is not a login from "+d.Settings.Issuer+": "+err.Error()+"."))
				fmt.Fprintf(depStderr(d), "warning: a login answer that does not verify reached %s and was refused (%s); still waiting for the browser\n", callback, stsOneLine(err.Error(), 200))
				return
			}
			res.verified = tok
		}
		mu.Lock()
		if result == nil || result.err != nil {
			result = res
		}
		mu.Unlock()
		http.Redirect(w, r, "/", http.StatusFound)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" || !allowedHosts[r.Host] {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		res := result
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case res == nil:
			fmt.Fprint(w, loginPage("Waiting for the login…", "Finish logging in with your browser."))
			return
		case res.err != nil:
			fmt.Fprint(w, loginPage("Login failed", res.err.Error()+". You may close this window."))
		default:
			fmt.Fprint(w, loginPage("Logged in", config.AppName+" is logged in. You may close this window."))
		}
		once.Do(func() { close(done) })
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	defer func() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer scancel()
		srv.Shutdown(sctx) //nolint:errcheck // best effort: the page was served
	}()

	stderr := depStderr(d)
	fmt.Fprintf(stderr, "Opening browser to %s\n", authURL)
	if d.OpenBrowser != nil {
		if err := d.OpenBrowser(ctx, authURL); err != nil {
			fmt.Fprintf(stderr, "Could not open a browser (%v): open the URL above yourself, or use `%s`.\n", err, Command("login", "--headless"))
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, nil, loginWaitError(ctx, "the browser", "")
	}
	mu.Lock()
	res := result
	mu.Unlock()
	if res.err != nil {
		return nil, nil, res.err
	}
	tok := res.verified
	// The browser talked to the issuer, not us: its clock shows in the token's iat.
	var skew time.Duration
	if !tok.IssuedAt.IsZero() {
		if s := tok.IssuedAt.Sub(depClock(d).Now()); s > skewNoise || s < -skewNoise {
			skew = s
		}
	}
	if res.refreshToken == "" {
		fmt.Fprintf(stderr, "warning: the issuer sent no refresh token; you will need to log in again when the token expires at %s\n", sessTime(tok.Expiry))
	}
	return newUserSession(tok, res.refreshToken, skew, o.Org), tok, nil
}

// readCallback reads the issuer's redirect: token (replaced) and refresh_token on success;
// error and status_code on failure.
func readCallback(q url.Values, issuer string) *callbackResult {
	tok := q.Get("token")
	if tok != "" && tok != "true" {
		return &callbackResult{token: tok, refreshToken: q.Get("refresh_token")}
	}
	msg := stsOneLine(q.Get("error"), 200)
	if msg == "true" {
		msg = ""
	}
	code, _ := strconv.Atoi(q.Get("status_code"))
	switch {
	case code == http.StatusNotFound:
		return &callbackResult{err: &FixableError{Cause: fmt.Sprintf("login failed: your account is not registered/not found at %s%s", issuer, paren(msg)), Fix: Command("login", "--org", "<your org>")}}
	case msg == "" && code == 0:
		return &callbackResult{err: errors.New("login failed: the issuer sent no token")}
	default:
		return &callbackResult{err: fmt.Errorf("login failed: %s", strings.TrimSpace(sessOr(msg, "error")+" "+paren("HTTP "+q.Get("status_code"))))}
	}
}

func paren(s string) string {
	if s == "" || s == "HTTP " {
		return ""
	}
	return " (" + s + ")"
}

func loginPage(title, msg string) string {
	return "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html.EscapeString(title) +
		"</title></head><body style=\"font-family:sans-serif;margin:4em\"><h1>" + html.EscapeString(title) +
		"</h1><p>" + html.EscapeString(msg) + "</p></body></html>"
}

// ---- device flow (PROTOCOL.md section 4) ----

// discoverDevice finds the issuer's RFC 8628 endpoints; an issuer whose discovery names none
// (Chainguard's own does not) offers the headless code instead.
func discoverDevice(ctx context.Context, d Deps) (*issuerDiscovery, error) {
	disc, err := discoverIssuer(ctx, d)
	if err != nil {
		return nil, err
	}
	if disc.DeviceAuthorizationEndpoint == "" || disc.TokenEndpoint == "" {
		return nil, &FixableError{Cause: fmt.Sprintf("%s offers no device flow (its discovery names no device_authorization_endpoint)", d.Settings.Issuer), Fix: Command("login", "--headless")}
	}
	for _, e := range []string{disc.DeviceAuthorizationEndpoint, disc.TokenEndpoint} {
		if err := secureEndpoint(e); err != nil {
			return nil, fmt.Errorf("OIDC discovery at %s: %w", d.Settings.Issuer, err)
		}
	}
	return disc, nil
}

// secureEndpoint: tokens travel over https, or plain http only to loopback.
func secureEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("endpoint %q is not a URL", raw)
	}
	if u.Scheme == "https" {
		return nil
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); u.Scheme == "http" && (strings.EqualFold(h, "localhost") || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("endpoint %q is not https", raw)
}

func deviceLogin(ctx context.Context, d Deps, o LoginOptions) (*sessionRecord, *Token, error) {
	disc, err := discoverDevice(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	cfg := &oauth2.Config{
		ClientID: deviceClientID,
		Endpoint: oauth2.Endpoint{DeviceAuthURL: disc.DeviceAuthorizationEndpoint, TokenURL: disc.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams},
		Scopes:   []string{"openid"},
	}
	actx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, depHTTP(d)), stsAttemptTimeout)
	da, err := cfg.DeviceAuth(actx)
	cancel()
	if err != nil {
		return nil, nil, fmt.Errorf("device login: %w", describeOAuthError(err))
	}
	stderr := depStderr(d)
	fmt.Fprintf(stderr, "To log in, open %s and enter the code: %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(stderr, "Or open %s\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(stderr, "Waiting for approval…")
	idToken, err := pollDevice(ctx, d, cfg, da, stsSleep)
	if err != nil {
		return nil, nil, err
	}
	sts := NewSTS(d)
	res, err := sts.Exchange(ctx, idToken, []string{d.Settings.Audience}, "")
	if err != nil {
		return nil, nil, loginExchangeError(d, err, "")
	}
	tok, err := Parse(res.Token)
	if err != nil {
		return nil, nil, fmt.Errorf("device login: the issuer sent an unreadable token: %w", err)
	}
	skew, _ := sts.Skew()
	if res.RefreshToken == "" {
		fmt.Fprintf(stderr, "warning: the issuer sent no refresh token; you will need to log in again when the token expires at %s\n", sessTime(tok.Expiry))
	}
	return newUserSession(tok, res.RefreshToken, skew, o.Org), tok, nil
}

// pollDevice polls the token endpoint (RFC 8628 section 3.4) until the user approves or
// denies, or the code expires. Hand-written rather than oauth2.Config.DeviceAccessToken: the
// issuer's answer carries an id_token and may have no access_token (which x/oauth2 rejects),
// and the interval may be fractional in tests.
// wait sleeps between polls (injected so tests need not).
func pollDevice(ctx context.Context, d Deps, cfg *oauth2.Config, da *oauth2.DeviceAuthResponse, wait func(context.Context, time.Duration) error) (string, error) {
	if !da.Expiry.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, da.Expiry)
		defer cancel()
	}
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second // RFC 8628 section 3.2 default
	}
	form := url.Values{
		"client_id":   {cfg.ClientID},
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {da.DeviceCode},
	}
	for {
		if err := wait(ctx, interval); err != nil {
			return "", fmt.Errorf("device login: the code expired before it was approved: %w", err)
		}
		idTok, code, err := devicePollOnce(ctx, d, cfg.Endpoint.TokenURL, form)
		if err != nil {
			return "", err
		}
		switch code {
		case "":
			return idTok, nil
		case "authorization_pending":
		case "slow_down":
			interval += slowDownStep
		case "access_denied":
			return "", errors.New("device login: access_denied: the login was denied in the browser")
		case "expired_token":
			return "", fmt.Errorf("device login: expired_token: the code expired before it was approved; run `%s` again", Command("login", "--device-flow"))
		default:
			return "", fmt.Errorf("device login: the issuer answered %q", code)
		}
	}
}

// devicePollOnce makes one token request: the id_token, or the OAuth error code.
func devicePollOnce(ctx context.Context, d Deps, tokenURL string, form url.Values) (idToken, errCode string, err error) {
	rctx, cancel := context.WithTimeout(ctx, stsAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := depHTTP(d).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("device login: the code expired before it was approved: %w", ctx.Err())
		}
		return "", "", fmt.Errorf("device login: %w", &UnreachableError{Issuer: d.Settings.Issuer, Err: scrubURLError(err)})
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("device login: reading the answer: %w", err)
	}
	var v struct {
		IDToken     string `json:"id_token"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &v) != nil {
		if resp.StatusCode/100 == 5 {
			return "", "authorization_pending", nil // a hiccup of the issuer: poll on
		}
		return "", "", fmt.Errorf("device login: unreadable answer (HTTP %d)", resp.StatusCode)
	}
	if v.Error != "" {
		return "", v.Error, nil
	}
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode/100 == 5 {
			return "", "authorization_pending", nil
		}
		return "", "", fmt.Errorf("device login: HTTP %d", resp.StatusCode)
	}
	if v.IDToken == "" {
		return "", "", errors.New("device login: the answer holds no id_token")
	}
	return v.IDToken, "", nil
}

// describeOAuthError keeps x/oauth2's error short: the code and description, never the body.
func describeOAuthError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		if msg == "" && re.Response != nil {
			msg = re.Response.Status
		}
		return errors.New(stsOneLine(msg, 200))
	}
	return scrubURLError(err)
}

// ---- assumable identity ----

func identityLogin(ctx context.Context, d Deps, o LoginOptions) (*sessionRecord, *Token, error) {
	if !ValidIdentityID(o.Identity) {
		return nil, nil, fmt.Errorf("login: %q is not an identity id (<40 hex>[/<16 hex>...])", o.Identity)
	}
	rec := &sessionRecord{Kind: "identity", Identity: o.Identity, Org: o.Org}
	switch spec := strings.TrimSpace(o.IdentityToken); {
	case spec == "" && d.Settings.CIProvider != "":
		rec.IdentityCI = d.Settings.CIProvider
	case spec == "":
		return nil, nil, errors.New("login --identity needs --identity-token (a token or a path to one), or a CI's own OIDC token (GitHub Actions, GitLab, Buildkite, CircleCI)")
	case looksLikeJWT(spec):
		// A literal token is kept only in the secret store; a path is better (it rotates).
		rec.IdentityToken = spec
	default:
		p, err := filepath.Abs(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("login: identity token path: %w", err)
		}
		rec.IdentityTokenPath = p
	}
	if rec.Org == "" {
		rec.Org = rootOf(o.Identity)
	}
	subject, err := identityToken(ctx, d, rec.IdentityTokenPath, rec.IdentityToken, rec.ci())
	if err != nil {
		return nil, nil, err
	}
	sts := NewSTS(d)
	res, err := sts.Exchange(ctx, subject, []string{d.Settings.Audience}, o.Identity)
	if err != nil {
		return nil, nil, loginExchangeError(d, err, subject)
	}
	tok, err := Parse(res.Token)
	if err != nil {
		return nil, nil, fmt.Errorf("login: the issuer sent an unreadable token: %w", err)
	}
	skew, _ := sts.Skew()
	rec.SkewNS = int64(skew)
	rec.RefreshToken = res.RefreshToken
	rec.RefreshExpiry = res.RefreshExpiry
	rec.Subject, rec.Email = tok.Subject, tok.Email
	return rec, tok, nil
}

func rootOf(id string) string {
	if i := strings.IndexByte(id, '/'); i > 0 {
		return id[:i]
	}
	return id
}

// loginExchangeError explains a failed STS exchange during login.
func loginExchangeError(d Deps, err error, subject string) error {
	var se *STSError
	if errors.As(err, &se) {
		switch se.Code {
		case CodeNotFound:
			return fmt.Errorf("login failed: identity not found at %s: your account is not registered/not found (%s)", d.Settings.Issuer, sessOr(se.Message, "not found"))
		case CodePermissionDenied:
			if subject != "" {
				return fmt.Errorf("login failed: the token's claims (%s) do not match the identity's issuer/subject/audience (%s)", claimsOf(subject), sessOr(se.Message, "permission denied"))
			}
			return fmt.Errorf("login failed: permission denied (%s)", sessOr(se.Message, "permission denied"))
		}
		return fmt.Errorf("login failed: %w", se)
	}
	return fmt.Errorf("login failed: %w", err)
}
