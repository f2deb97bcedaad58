package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

var userCodeRE = regexp.MustCompile(`enter the code: (\S+)`)

// deviceLoginWith runs `login --headless` and lets act handle the user code it prints.
func deviceLoginWith(t *testing.T, v *sessEnv, act func(code string) error) (*SessionInfo, error) {
	t.Helper()
	type result struct {
		info *SessionInfo
		err  error
	}
	done := make(chan result, 1)
	go func() {
		info, err := Login(v.ctx, v.d, LoginOptions{DeviceFlow: true})
		done <- result{info, err}
	}()
	// Wait for the code on stderr (the test's ctx bounds the wait).
	var code string
	for code == "" {
		select {
		case r := <-done:
			t.Fatalf("login ended before printing a code: %v", r.err)
		case <-v.ctx.Done():
			t.Fatal("no user code printed")
		case <-time.After(20 * time.Millisecond):
		}
		if m := userCodeRE.FindStringSubmatch(v.stderr.String()); m != nil {
			code = m[1]
		}
	}
	if err := act(code); err != nil {
		t.Fatal(err)
	}
	r := <-done
	return r.info, r.err
}

func TestDeviceLoginApproved(t *testing.T) {
	v := newSessEnv(t, 0)
	info, err := deviceLoginWith(t, v, v.e.ApproveDevice)
	if err != nil {
		t.Fatal(err)
	}
	if info.Subject != v.e.User().ID || info.Email != v.e.User().Email || info.RefreshExpiry.IsZero() {
		t.Errorf("info %+v", info)
	}
	out := v.stderr.String()
	if !strings.Contains(out, v.e.IssuerURL()+"/activate") {
		t.Errorf("no verification URL on stderr: %q", out)
	}
	for _, c := range []string{"device/code", "sts/exchange"} {
		if v.e.Count(c) != 1 {
			t.Errorf("%s hits = %d", c, v.e.Count(c))
		}
	}
	if v.e.Count("discovery") < 1 { // the device endpoints, and the issuer's keys
		t.Errorf("discovery hits = %d", v.e.Count("discovery"))
	}
	if v.e.Count("device/token") < 1 {
		t.Error("never polled")
	}
	// The session refreshes like a browser one.
	v.e.Clock().Advance(56 * time.Minute)
	if _, err := NewSession(v.d).Token(v.ctx, ""); err != nil {
		t.Fatal(err)
	}
	v.noSecrets(t)
}

func TestDeviceLoginDenied(t *testing.T) {
	v := newSessEnv(t, 0)
	_, err := deviceLoginWith(t, v, v.e.DenyDevice)
	if err == nil || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("err = %v", err)
	}
	if ok, _ := NewSession(v.d).Exists(v.ctx); ok {
		t.Error("a session was stored")
	}
}

func TestDeviceLoginDiscoveryIssuerMustMatch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"issuer":"https://evil.example","device_authorization_endpoint":"https://evil.example/d","token_endpoint":"https://evil.example/t"}`)
	}))
	defer srv.Close()
	d := sessDeps(srv.URL)
	_, err := Login(context.Background(), d, LoginOptions{DeviceFlow: true})
	if err == nil || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("err = %v", err)
	}
}

func TestPollDevice(t *testing.T) {
	tests := []struct {
		name      string
		answers   []string
		wantWaits []time.Duration
		wantErr   string
	}{
		{
			name:      "pending, slow_down adds 5 s for good, then the id_token",
			answers:   []string{`{"error":"authorization_pending"}`, `{"error":"slow_down"}`, `{"error":"authorization_pending"}`, `{"id_token":"ID","access_token":"x"}`},
			wantWaits: []time.Duration{2 * time.Second, 2 * time.Second, 7 * time.Second, 7 * time.Second},
		},
		{name: "an id_token without access_token is enough", answers: []string{`{"id_token":"ID"}`}, wantWaits: []time.Duration{2 * time.Second}},
		{name: "access_denied", answers: []string{`{"error":"authorization_pending"}`, `{"error":"access_denied"}`}, wantErr: "access_denied"},
		{name: "expired_token", answers: []string{`{"error":"expired_token"}`}, wantErr: "expired_token"},
		{name: "no id_token", answers: []string{`{"access_token":"x"}`}, wantErr: "no id_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers := tt.answers
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r.ParseForm()
				if r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" || r.PostForm.Get("device_code") != "DC" || r.PostForm.Get("client_id") != "c" {
					t.Errorf("form %v", r.PostForm)
				}
				w.Header().Set("Content-Type", "application/json")
				a := answers[0]
				answers = answers[1:]
				if strings.Contains(a, "error") {
					w.WriteHeader(http.StatusBadRequest)
				}
				io.WriteString(w, a)
			}))
			defer srv.Close()
			var waits []time.Duration
			wait := func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
			cfg := &oauth2.Config{ClientID: "c", Endpoint: oauth2.Endpoint{TokenURL: srv.URL}}
			da := &oauth2.DeviceAuthResponse{DeviceCode: "DC", Interval: 2}
			idt, err := pollDevice(context.Background(), sessDeps(srv.URL), cfg, da, wait)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || idt != "ID" {
				t.Fatalf("%q %v", idt, err)
			}
			if fmt.Sprint(waits) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits %v, want %v", waits, tt.wantWaits)
			}
		})
	}
}

func TestReadCallback(t *testing.T) {
	tests := []struct {
		q       string
		wantTok string
		wantErr string
	}{
		{"token=JWT&refresh_token=RT&error=true", "JWT", ""},
		{"token=&error=account+not+found&status_code=404", "", "not registered/not found"},
		{"token=true&error=true", "", "sent no token"},
		{"token=&error=boom&status_code=500", "", "boom"},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.q)
		r := readCallback(q, "https://issuer.example")
		if tt.wantErr == "" {
			if r.err != nil || r.token != tt.wantTok || r.refreshToken != "RT" {
				t.Errorf("%s: %+v", tt.q, r)
			}
			continue
		}
		if r.err == nil || !strings.Contains(r.err.Error(), tt.wantErr) {
			t.Errorf("%s: err %v", tt.q, r.err)
		}
	}
}

func TestIdentityLogin(t *testing.T) {
	v := newSessEnv(t, 0)
	const sub = "repo:acme/app:ref:refs/heads/main"
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")
	path := filepath.Join(t.TempDir(), "oidc-token")
	write := func() {
		if err := os.WriteFile(path, []byte(v.e.MintOIDCToken(sub, v.d.Settings.IssuerHost(), 30*time.Minute)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write()
	info, err := Login(v.ctx, v.d, LoginOptions{Identity: id, IdentityToken: path})
	if err != nil {
		t.Fatal(err)
	}
	if info.Kind != "identity" || info.Identity != id || info.Subject != id || info.Org != v.e.Org().ID {
		t.Errorf("info %+v", info)
	}
	rec := v.session(t)
	if rec.IdentityTokenPath != path || rec.IdentityToken != "" {
		t.Errorf("stored path %q, literal stored: %v", rec.IdentityTokenPath, rec.IdentityToken != "")
	}
	// The OIDC token rotates; the session re-reads the file at the next exchange.
	v.e.Clock().Advance(56 * time.Minute)
	write()
	v.e.ResetCounts()
	tok, err := NewSession(v.d).Token(v.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != id || v.e.Count("sts/exchange") != 1 {
		t.Errorf("sub %s, exchanges %d", tok.Subject, v.e.Count("sts/exchange"))
	}
	// The identity is deleted: one line, "not found", and the login command.
	v.e.DeleteIdentity(id)
	v.e.Clock().Advance(56 * time.Minute)
	write()
	_, err = NewSession(v.d).Token(v.ctx, "")
	wantFixable(t, err, "not found", "docker-credential-cgr login")
	v.noSecrets(t, err)
}

func TestIdentityLoginErrors(t *testing.T) {
	v := newSessEnv(t, 0)
	const sub = "repo:acme/app"
	id := v.e.AddAssumableIdentity(v.e.Org(), v.e.OIDCIssuerURL(), sub, "")
	good := v.e.MintOIDCToken(sub, v.d.Settings.IssuerHost(), time.Hour)
	other := v.e.MintOIDCToken("repo:someone/else", v.d.Settings.IssuerHost(), time.Hour)

	_, err := Login(v.ctx, v.d, LoginOptions{Identity: v.e.Org().ID + "/0123456789abcdef", IdentityToken: good})
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown identity: %v", err)
	}
	_, err = Login(v.ctx, v.d, LoginOptions{Identity: id, IdentityToken: other})
	if err == nil || !strings.Contains(err.Error(), "do not match") || !strings.Contains(err.Error(), "repo:someone/else") {
		t.Errorf("mismatch: %v", err)
	}
	if _, err = Login(v.ctx, v.d, LoginOptions{Identity: "nope", IdentityToken: good}); err == nil {
		t.Error("accepted a malformed identity id")
	}
	// A literal token is accepted (kept only in the secret store).
	if _, err := Login(v.ctx, v.d, LoginOptions{Identity: id, IdentityToken: good}); err != nil {
		t.Fatal(err)
	}
	if rec := v.session(t); rec.IdentityToken != good || rec.IdentityTokenPath != "" {
		t.Error("literal token not kept")
	}
	for _, e := range []error{err} {
		if e != nil && strings.Contains(e.Error(), good) {
			t.Fatal("error shows the token")
		}
	}
}

func TestBrowserOpener(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses a shell script")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	script := filepath.Join(dir, "fake-browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+out+"\necho opened >&1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	var stderr sessBuffer
	open := BrowserOpener(script+" --new-window", &stderr)
	if err := open(context.Background(), "http://x/oauth?a=1&b=2"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSpace(string(b)), "\n"); len(got) != 2 || got[0] != "--new-window" || got[1] != "http://x/oauth?a=1&b=2" {
		t.Errorf("argv %q", got)
	}
	if !strings.Contains(stderr.String(), "opened") {
		t.Errorf("the opener's stdout did not go to stderr: %q", stderr.String())
	}
	// A browser that stays in the foreground does not hold the login.
	slow := filepath.Join(dir, "slow-browser")
	os.WriteFile(slow, []byte("#!/bin/sh\nexec sleep 5\n"), 0o700)
	if err := BrowserOpener(slow, nil)(context.Background(), "http://x"); err != nil {
		t.Errorf("slow browser: %v", err)
	}
	if err := BrowserOpener(filepath.Join(dir, "missing"), nil)(context.Background(), "http://x"); err == nil {
		t.Error("a missing opener is not an error")
	}
	if got := browserCommand("", "linux", "U"); strings.Join(got, " ") != "xdg-open U" {
		t.Errorf("linux: %q", got)
	}
	if got := browserCommand("", "darwin", "U"); strings.Join(got, " ") != "open U" {
		t.Errorf("darwin: %q", got)
	}
	if got := browserCommand("", "windows", "U"); got[0] != "rundll32" || got[len(got)-1] != "U" {
		t.Errorf("windows: %q", got)
	}
}

func TestBrowserLoginNoBrowser(t *testing.T) {
	// The opener fails: the URL is on stderr, and the user can open it elsewhere.
	v := newSessEnv(t, 0)
	urls := make(chan string, 1)
	v.d.OpenBrowser = func(ctx context.Context, u string) error {
		urls <- u
		return errors.New("no display")
	}
	done := make(chan error, 1)
	go func() { _, err := Login(v.ctx, v.d, LoginOptions{}); done <- err }()
	u := <-urls
	if !strings.Contains(v.stderr.String(), "Opening browser to "+u) {
		t.Errorf("stderr %q", v.stderr.String())
	}
	if err := v.e.Browse(v.ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Another local process can connect to the login's callback port before the browser does. A
// token it hands over that the issuer did not sign (a well-formed JWT, for the right issuer and
// audience, signed by a key of its own) is refused with an error page, and the login waits on
// for the real browser: the stored session is the user's, never the forger's.
func TestBrowserLoginRefusesForgedCallback(t *testing.T) {
	v := newSessEnv(t, 0)
	now := v.e.Clock().Now()
	forged := sessMint(t, v.e.IssuerURL(), "forger", []string{"cgr.dev"}, now, now.Add(time.Hour))
	forgedStatus := 0
	v.d.OpenBrowser = func(ctx context.Context, authURL string) error {
		u, err := url.Parse(authURL)
		if err != nil {
			return err
		}
		cb, err := url.Parse(u.Query().Get("redirect"))
		if err != nil {
			return err
		}
		q := cb.Query()
		q.Set("token", forged)
		q.Set("refresh_token", "forged-refresh")
		cb.RawQuery = q.Encode()
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(cb.String())
		if err != nil {
			return err
		}
		resp.Body.Close()
		forgedStatus = resp.StatusCode
		return v.e.Browse(ctx, authURL) // then the real browser
	}
	info, err := Login(v.ctx, v.d, LoginOptions{})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if forgedStatus != http.StatusBadRequest {
		t.Errorf("the forged callback got HTTP %d; want 400", forgedStatus)
	}
	if info.Subject != v.e.User().ID || v.session(t).RefreshToken == "forged-refresh" {
		t.Fatalf("the stored session is %q's; want the browser user %s", info.Subject, v.e.User().ID)
	}
	if !strings.Contains(v.stderr.String(), "does not verify") {
		t.Errorf("nothing said of the refused answer: %q", v.stderr.String())
	}
}
