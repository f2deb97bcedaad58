package emulator

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestOAuthStrictness(t *testing.T) {
	e := start(t, Options{})
	cb := newCallback(t)
	for name, mutate := range map[string]func(q url.Values){
		"wrong client_id":        func(q url.Values) { q.Set("client_id", "chainctl") },
		"wrong audience":         func(q url.Values) { q.Set("audience", "example.com") },
		"client_id and idp_id":   func(q url.Values) { q.Set("idp_id", "acme.example") },
		"neither client nor idp": func(q url.Values) { q.Del("client_id") },
		"unknown idp_id":         func(q url.Values) { q.Del("client_id"); q.Set("idp_id", "nope.example") },
		"exit not redirect":      func(q url.Values) { q.Set("exit", "close") },
		"https redirect":         func(q url.Values) { q.Set("redirect", strings.Replace(cb.url, "http:", "https:", 1)) },
		"non-loopback redirect":  func(q url.Values) { q.Set("redirect", "http://evil.example:8080/callback?token=true") },
		"redirect without port":  func(q url.Values) { q.Set("redirect", "http://localhost/callback?token=true") },
		"missing redirect":       func(q url.Values) { q.Del("redirect") },
		"skip_registration junk": func(q url.Values) { q.Set("skip_registration", "maybe") },
	} {
		u, _ := url.Parse(oauthURL(e, cb.url))
		q := u.Query()
		mutate(q)
		u.RawQuery = q.Encode()
		r := do(t, "GET", u.String(), "", "", nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", name, r.status)
		}
	}
}

// Without create_refresh_token the login brings no refresh token (the SDK's login.Login asks
// for one only with WithCreateRefreshToken).
func TestOAuthWithoutRefreshToken(t *testing.T) {
	e := start(t, Options{})
	cb := newCallback(t)
	u, _ := url.Parse(oauthURL(e, cb.url))
	q := u.Query()
	q.Del("create_refresh_token")
	u.RawQuery = q.Encode()
	if err := e.Browse(context.Background(), u.String()); err != nil {
		t.Fatal(err)
	}
	if got := <-cb.query; got.Get("token") == "" || got.Has("refresh_token") {
		t.Errorf("callback keys %v: want a token and no refresh_token", keys(got))
	}
}

func TestOAuthUnknownUser(t *testing.T) {
	e := start(t, Options{})
	e.SetBrowserUser(User{})
	q := browserLogin(t, e)
	if q.Get("token") != "" || q.Get("status_code") != "404" || q.Get("error") == "" || q.Get("refresh_token") != "" {
		t.Fatalf("callback query = %v, want empty token, error and status_code=404", q)
	}
}

func TestBrowserLoginTokenClaims(t *testing.T) {
	e := start(t, Options{TokenTTL: 10 * time.Minute})
	q := browserLogin(t, e)
	_, c, err := parseUnverified(q.Get("token"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Iss != e.IssuerURL() || c.Sub != e.User().ID || !c.hasAud("cgr.dev") || c.Email != e.User().Email {
		t.Errorf("claims iss=%q sub=%q aud=%v email=%q", c.Iss, c.Sub, c.Aud, c.Email)
	}
	if got := c.Exp.Time().Sub(c.Iat.Time()); got != 10*time.Minute {
		t.Errorf("exp-iat = %v, want 10m", got)
	}
	r := do(t, "GET", e.IssuerURL()+"/auth/v1/ok", q.Get("token"), "", nil)
	m := r.json(t)
	if r.status != 200 || m["subject"] != e.User().ID || m["email"] != e.User().Email || m["issuer"] != e.IssuerURL() {
		t.Errorf("whoami: %d %v", r.status, m)
	}
	if d := r.header.Get("Date"); d == "" {
		t.Error("no Date header")
	}
}

func TestDateHeaderFollowsClock(t *testing.T) {
	e := start(t, Options{})
	e.Clock().Advance(3 * time.Hour)
	for _, u := range []string{e.IssuerURL() + "/.well-known/openid-configuration", e.APIURL() + "/iam/v1/roles", "http://" + e.RegistryHost() + "/v2/"} {
		r := do(t, "GET", u, "", "", nil)
		d, err := http.ParseTime(r.header.Get("Date"))
		if err != nil {
			t.Fatalf("%s: Date %q: %v", u, r.header.Get("Date"), err)
		}
		if skew := d.Sub(time.Now()); skew < 2*time.Hour {
			t.Errorf("%s: Date %v does not follow the emulator clock", u, d)
		}
	}
}

func TestDiscovery(t *testing.T) {
	// By default, as on the real issuer, no device flow: discovery names none, its endpoints 404.
	plain := start(t, Options{})
	m := do(t, "GET", plain.IssuerURL()+"/.well-known/openid-configuration", "", "", nil).json(t)
	if _, ok := m["device_authorization_endpoint"]; ok || m["jwks_uri"] == nil {
		t.Errorf("default discovery: %v", m)
	}
	if r := do(t, "POST", plain.IssuerURL()+"/oauth/device/code", "", formType, form("client_id", "cli")); r.status != 404 {
		t.Errorf("device/code without DeviceFlow: %d", r.status)
	}

	e := start(t, Options{DeviceFlow: true})
	m = do(t, "GET", e.IssuerURL()+"/.well-known/openid-configuration", "", "", nil).json(t)
	if m["issuer"] != e.IssuerURL() {
		t.Errorf("issuer = %v, want exactly %s", m["issuer"], e.IssuerURL())
	}
	for _, k := range []string{"device_authorization_endpoint", "token_endpoint", "jwks_uri"} {
		s, _ := m[k].(string)
		if !strings.HasPrefix(s, e.IssuerURL()+"/") {
			t.Errorf("%s = %q", k, s)
		}
	}
	if k := do(t, "GET", m["jwks_uri"].(string), "", "", nil).json(t); len(k["keys"].([]any)) != 1 {
		t.Errorf("jwks: %v", k)
	}
	if e.Count("discovery") != 1 {
		t.Errorf("discovery count = %d", e.Count("discovery"))
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	e := start(t, Options{})
	rt := browserLogin(t, e).Get("refresh_token")
	refresh := func(rt string, aud ...string) resp {
		kv := []string{}
		for _, a := range aud {
			kv = append(kv, "aud", a)
		}
		return do(t, "POST", e.IssuerURL()+"/sts/exchange_refresh_token", rt, formType, form(kv...))
	}
	r := refresh(rt, "cgr.dev")
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	m := r.json(t)
	tok := m["token"].(map[string]any)
	nrt := m["refreshToken"].(map[string]any)
	if tok["token"] == "" || tok["refreshToken"] != "" || tok["expiry"] == nil || nrt["token"] == "" || nrt["token"] == rt || nrt["expiry"] == nil {
		t.Fatalf("refresh answer has the wrong shape: keys %v / %v", keys2(tok), keys2(nrt))
	}
	if e.Count("sts/exchange_refresh_token") != 1 {
		t.Errorf("count = %d", e.Count("sts/exchange_refresh_token"))
	}
	// Re-use of the old one: rejected.
	r = refresh(rt, "cgr.dev")
	if m := r.json(t); r.status != 401 || m["code"] != float64(16) {
		t.Errorf("reuse: %d %s, want 401 code 16", r.status, r.body)
	}
	// The new one works, for another audience too (the API).
	r = refresh(nrt["token"].(string), e.APIURL())
	if r.status != 200 {
		t.Fatalf("refresh with the new token: %d %s", r.status, r.body)
	}
	newest := r.json(t)["refreshToken"].(map[string]any)["token"].(string)
	// Missing aud → InvalidArgument.
	if r := refresh(newest); r.status != 400 || r.json(t)["code"] != float64(3) {
		t.Errorf("refresh without aud: %d %s", r.status, r.body)
	}
	e.RevokeRefreshTokens()
	if r := refresh(newest, "cgr.dev"); r.status != 401 {
		t.Errorf("revoked: %d %s", r.status, r.body)
	}
}

func TestRefreshExpiresByClock(t *testing.T) {
	e := start(t, Options{RefreshTTL: time.Hour})
	rt := browserLogin(t, e).Get("refresh_token")
	e.Clock().Advance(time.Hour + time.Second)
	r := do(t, "POST", e.IssuerURL()+"/sts/exchange_refresh_token", rt, formType, form("aud", "cgr.dev"))
	if r.status != 401 {
		t.Errorf("expired refresh token: %d %s", r.status, r.body)
	}
}

func keys2(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestExchangeStrictness(t *testing.T) {
	e := start(t, Options{})
	tok := e.MintToken(e.User().ID, "cgr.dev")
	// A JSON body is ignored: aud is missing.
	r := do(t, "POST", e.IssuerURL()+"/sts/exchange", tok, "application/json", strings.NewReader(`{"aud":["cgr.dev"]}`))
	if m := r.json(t); r.status != 400 || m["code"] != float64(3) || m["message"] == "" {
		t.Errorf("JSON body: %d %s, want 400 code 3", r.status, r.body)
	}
	// GET with the query works.
	r = do(t, "GET", e.IssuerURL()+"/sts/exchange?aud=cgr.dev&aud="+url.QueryEscape(e.APIURL()), tok, "", nil)
	if r.status != 200 {
		t.Fatalf("GET exchange: %d %s", r.status, r.body)
	}
	_, c, _ := parseUnverified(r.json(t)["token"].(string))
	if !c.hasAud("cgr.dev") || !c.hasAud(e.APIURL()) {
		t.Errorf("aud = %v", c.Aud)
	}
	// No bearer.
	if r := do(t, "POST", e.IssuerURL()+"/sts/exchange", "", formType, form("aud", "cgr.dev")); r.status != 401 || r.json(t)["code"] != float64(16) {
		t.Errorf("no bearer: %d %s", r.status, r.body)
	}
	// A token of another issuer without identity.
	oidc := e.MintOIDCToken("repo:x", "whatever", time.Hour)
	if r := do(t, "POST", e.IssuerURL()+"/sts/exchange", oidc, formType, form("aud", "cgr.dev")); r.status != 401 {
		t.Errorf("foreign token: %d %s", r.status, r.body)
	}
	// An expired token.
	e.Clock().Advance(2 * time.Hour)
	if r := do(t, "POST", e.IssuerURL()+"/sts/exchange", tok, formType, form("aud", "cgr.dev")); r.status != 401 {
		t.Errorf("expired token: %d %s", r.status, r.body)
	}
}

func TestAssumableIdentity(t *testing.T) {
	e := start(t, Options{})
	aud := strings.TrimPrefix(e.IssuerURL(), "http://")
	id := e.AddAssumableIdentity(e.Org(), e.OIDCIssuerURL(), "repo:acme/app:ref:refs/heads/main", "")
	exchange := func(subject, identity string) resp {
		return do(t, "POST", e.IssuerURL()+"/sts/exchange", subject, formType, form("aud", "cgr.dev", "identity", identity))
	}
	good := e.MintOIDCToken("repo:acme/app:ref:refs/heads/main", aud, time.Hour)
	r := exchange(good, id)
	if r.status != 200 {
		t.Fatalf("assume: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["refreshToken"] != "" {
		t.Error("a workload exchange must not carry a refresh token")
	}
	if err := pull(t, e.PrivateImage(), basic("_token", m["token"].(string))); err != nil {
		t.Errorf("pull as the assumed identity: %v", err)
	}
	if r := exchange(e.MintOIDCToken("repo:other", aud, time.Hour), id); r.status != 403 || r.json(t)["code"] != float64(7) {
		t.Errorf("subject mismatch: %d %s", r.status, r.body)
	}
	if r := exchange(e.MintOIDCToken("repo:acme/app:ref:refs/heads/main", "other-aud", time.Hour), id); r.status != 403 {
		t.Errorf("audience mismatch: %d %s", r.status, r.body)
	}
	unknown := e.Org().ID + "/0123456789abcdef"
	if r := exchange(good, unknown); r.status != 404 || r.json(t)["message"] != "identity not found" {
		t.Errorf("unknown identity: %d %s", r.status, r.body)
	}
	e.DeleteIdentity(id)
	if e.Identity(id) {
		t.Error("Identity after delete")
	}
	if r := exchange(good, id); r.status != 404 {
		t.Errorf("deleted identity: %d %s", r.status, r.body)
	}
	if e.Count("sts/exchange") != 5 {
		t.Errorf("sts/exchange count = %d", e.Count("sts/exchange"))
	}
}

func TestDeviceFlow(t *testing.T) {
	e := start(t, Options{DeviceInterval: 100 * time.Millisecond, DeviceFlow: true})
	r := do(t, "POST", e.IssuerURL()+"/oauth/device/code", "", formType, form("client_id", "cli", "scope", "openid"))
	if r.status != 200 {
		t.Fatalf("device/code: %d %s", r.status, r.body)
	}
	m := r.json(t)
	code, _ := m["user_code"].(string)
	if len(code) != 8 || m["expires_in"] != float64(900) || m["interval"] != float64(1) || m["device_code"] == "" || m["verification_uri"] == "" {
		t.Fatalf("device/code answer: %v", m)
	}
	poll := func() map[string]any {
		return do(t, "POST", e.IssuerURL()+"/oauth/token", "", formType, form("client_id", "cli",
			"grant_type", "urn:ietf:params:oauth:grant-type:device_code", "device_code", m["device_code"].(string))).json(t)
	}
	if got := poll()["error"]; got != "authorization_pending" {
		t.Fatalf("first poll: %v", got)
	}
	if got := poll()["error"]; got != "slow_down" {
		t.Fatalf("immediate second poll: %v, want slow_down", got)
	}
	e.Clock().Advance(6 * time.Second)
	if err := e.Browse(context.Background(), m["verification_uri_complete"].(string)); err != nil {
		t.Fatalf("Browse verification_uri_complete: %v", err)
	}
	e.Clock().Advance(6 * time.Second)
	got := poll()
	idTok, _ := got["id_token"].(string)
	if idTok == "" || got["token_type"] != "Bearer" || got["access_token"] == "" {
		t.Fatalf("approved poll: keys %v", keys2(got))
	}
	r = do(t, "POST", e.IssuerURL()+"/sts/exchange", idTok, formType, form("aud", "cgr.dev"))
	if m := r.json(t); r.status != 200 || m["token"] == "" || m["refreshToken"] == "" {
		t.Fatalf("exchange of the id_token: %d, keys %v", r.status, keys2(m))
	}
	if e.Count("device/code") != 1 || e.Count("device/token") != 3 {
		t.Errorf("counts: code=%d token=%d", e.Count("device/code"), e.Count("device/token"))
	}
}

func TestDeviceDeniedAndExpired(t *testing.T) {
	e := start(t, Options{DeviceFlow: true})
	newCode := func() map[string]any {
		return do(t, "POST", e.IssuerURL()+"/oauth/device/code", "", formType, form("client_id", "cli")).json(t)
	}
	poll := func(m map[string]any) any {
		return do(t, "POST", e.IssuerURL()+"/oauth/token", "", formType, form("client_id", "cli",
			"grant_type", "urn:ietf:params:oauth:grant-type:device_code", "device_code", m["device_code"].(string))).json(t)["error"]
	}
	d := newCode()
	if err := e.DenyDevice(d["user_code"].(string)); err != nil {
		t.Fatal(err)
	}
	if got := poll(d); got != "access_denied" {
		t.Errorf("denied: %v", got)
	}
	x := newCode()
	e.Clock().Advance(901 * time.Second)
	if got := poll(x); got != "expired_token" {
		t.Errorf("expired: %v", got)
	}
	if err := e.ApproveDevice("NOPE1234"); err == nil {
		t.Error("ApproveDevice of an unknown code succeeded")
	}
}

func TestIssuerFaults(t *testing.T) {
	e := start(t, Options{})
	e.SetFault(Fault{IssuerStatus: 503})
	r := do(t, "POST", e.IssuerURL()+"/sts/exchange_refresh_token", "x", formType, form("aud", "cgr.dev"))
	if m := r.json(t); r.status != 503 || m["code"] != float64(14) {
		t.Errorf("IssuerStatus 503: %d %s", r.status, r.body)
	}
	e.SetFault(Fault{IssuerDown: true})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.IssuerURL()+"/.well-known/openid-configuration", nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Errorf("IssuerDown: got an answer %s", res.Status)
	}
	e.SetFault(Fault{APIStatus: 500})
	if r := do(t, "GET", e.APIURL()+"/iam/v1/roles", "", "", nil); r.status != 500 || r.json(t)["code"] != float64(13) {
		t.Errorf("APIStatus 500: %d %s", r.status, r.body)
	}
	e.SetFault(Fault{})
	if r := do(t, "GET", e.IssuerURL()+"/.well-known/openid-configuration", "", "", nil); r.status != 200 {
		t.Errorf("after clearing faults: %d", r.status)
	}
}
