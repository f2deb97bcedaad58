package emulator

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"chainguard.dev/sdk/auth/headless"
	authv1 "chainguard.dev/sdk/proto/platform/auth/v1"
	oidcv1 "chainguard.dev/sdk/proto/platform/oidc/v1"
	"chainguard.dev/sdk/uidp"
	"google.golang.org/grpc"
)

// browserClientID is the one client id the issuer knows the CLI tools' browser logins by.
const browserClientID = "auth0"

// issuerCounters name the issuer's RPCs in Count, whichever way they arrive.
var issuerCounters = map[string]string{
	oidcv1.SecurityTokenService_Exchange_FullMethodName:             "sts/exchange",
	oidcv1.SecurityTokenService_ExchangeRefreshToken_FullMethodName: "sts/exchange_refresh_token",
	authv1.Auth_Validate_FullMethodName:                             "auth/ok",
	authv1.Auth_GetHeadlessSession_FullMethodName:                   "sts/headless_sessions",
}

// issuerHandler serves the issuer: its own pages (login, discovery, keys, /orgcheck, the
// opt-in device flow) and the STS and Auth services, through the SDK's generated gateway
// and as gRPC.
func (e *Emulator) issuerHandler() (http.Handler, *grpc.Server, error) {
	sts, au := &stsServer{e: e}, &authServer{e: e}
	gw := newGateway()
	ctx := context.Background()
	if err := oidcv1.RegisterSecurityTokenServiceHandlerServer(ctx, gw, sts); err != nil {
		return nil, nil, fmt.Errorf("STS gateway: %w", err)
	}
	if err := authv1.RegisterAuthHandlerServer(ctx, gw, au); err != nil {
		return nil, nil, fmt.Errorf("Auth gateway: %w", err)
	}
	g := e.grpcServer(issuerCounters, "issuer/other", true)
	oidcv1.RegisterSecurityTokenServiceServer(g, sts)
	authv1.RegisterAuthServer(g, au)

	mux := http.NewServeMux()
	route := func(pattern, counter string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			e.hit(counter)
			f := e.faults()
			if f.IssuerDown {
				e.blackHole(r.Context(), w)
				return
			}
			if err := e.wait(r.Context(), f.IssuerDelay); err != nil {
				return
			}
			if f.IssuerStatus != 0 {
				writeStatusFault(w, f.IssuerStatus)
				return
			}
			h(w, r)
		})
	}
	route("GET /oauth", "oauth", e.handleOAuth)
	route("GET /orgcheck", "orgcheck", e.handleOrgCheck)
	route("GET /.well-known/openid-configuration", "discovery", e.handleDiscovery)
	route("GET /.well-known/jwks.json", "jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.issuerKey.jwks())
	})
	if e.deviceFlow {
		route("GET /activate", "activate", e.handleActivate)
		route("POST /oauth/device/code", "device/code", e.handleDeviceCode)
		route("POST /oauth/token", "device/token", e.handleDeviceToken)
	}
	// The gateway's routes, any method: the gateway itself answers a wrong one (501).
	route("/sts/exchange", "sts/exchange", gw.ServeHTTP)
	route("/sts/exchange_refresh_token", "sts/exchange_refresh_token", gw.ServeHTTP)
	route("/sts/headless_sessions", "sts/headless_sessions", gw.ServeHTTP)
	route("/auth/v1/ok", "auth/ok", gw.ServeHTTP)
	route("/", "issuer/other", gw.ServeHTTP) // the gateway's own 404 body

	// The external OIDC provider: no faults, it is somebody else's service.
	mux.HandleFunc("GET /oidc/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		e.hit("oidc/discovery")
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                e.OIDCIssuerURL(),
			"jwks_uri":                              e.OIDCIssuerURL() + "/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("GET /oidc/jwks", func(w http.ResponseWriter, r *http.Request) {
		e.hit("oidc/jwks")
		writeJSON(w, http.StatusOK, e.oidcKey.jwks())
	})
	return splitGRPC(g, mux), g, nil
}

// MintOIDCToken mints a token of the external OIDC provider (a workload's
// identity token, e.g. GitHub Actions'): iss=OIDCIssuerURL(), sub, aud.
func (e *Emulator) MintOIDCToken(subject, audience string, ttl time.Duration) string {
	now := e.now()
	return e.oidcKey.sign(map[string]any{
		"iss": e.OIDCIssuerURL(), "sub": subject, "aud": audience,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": randHex(8),
	})
}

// MintToken mints a Chainguard token for a user or identity id, as the STS
// would, with the current TokenTTL. Tests use it to skip a login.
func (e *Emulator) MintToken(subject string, aud ...string) string {
	tok, _ := e.mintToken(subject, aud)
	return tok
}

// MintRefreshToken mints a refresh token for a user, as a login would.
func (e *Emulator) MintRefreshToken(subject string) string {
	rt, _ := e.mintRefresh(subject, []string{Audience})
	return rt
}

// mintToken returns a Chainguard token and its expiry (whole seconds, as its exp claim).
func (e *Emulator) mintToken(sub string, aud []string) (string, time.Time) {
	e.mu.Lock()
	ttl := e.tokenTTL
	email := ""
	if u, ok := e.users[sub]; ok {
		email = u.email
	}
	e.mu.Unlock()
	now := e.now()
	exp := time.Unix(now.Add(ttl).Unix(), 0)
	c := cgClaims{Iss: e.issuerURL, Sub: sub, Aud: aud, Iat: now.Unix(), Exp: exp.Unix(), Email: email, Jti: randHex(8)}
	if email != "" {
		c.EmailVerified = new(true)
	}
	return e.issuerKey.sign(c), exp
}

// mintUpstreamIDToken is the id token the upstream identity provider hands the issuer for a
// person (the device flow's id_token, the plaintext of a headless session): the STS exchanges
// it for a Chainguard token and a refresh token.
func (e *Emulator) mintUpstreamIDToken(u *userState, clientID string, ttl time.Duration) string {
	now := e.now()
	return e.issuerKey.sign(cgClaims{
		Iss: e.issuerURL, Sub: u.id, Aud: []string{clientID}, Iat: now.Unix(), Exp: now.Add(ttl).Unix(),
		Email: u.email, EmailVerified: new(true), Jti: randHex(8),
	})
}

type refreshClaims struct {
	Iss string   `json:"iss"`
	Sub string   `json:"sub"`
	Aud []string `json:"aud"`
	Iat int64    `json:"iat"`
	Exp int64    `json:"exp"`
	Jti string   `json:"jti"`
}

func (e *Emulator) mintRefresh(sub string, aud []string) (string, time.Time) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	exp := time.Unix(now.Add(e.refreshTTL).Unix(), 0)
	rt := base64.StdEncoding.EncodeToString(mustJSON(refreshClaims{
		Iss: e.issuerURL, Sub: sub, Aud: aud, Iat: now.Unix(), Exp: exp.Unix(), Jti: randHex(12),
	}))
	e.refresh[rt] = &refreshState{sub: sub, exp: exp}
	return rt, exp
}

// --- browser login (PROTOCOL §3) and the headless code's page (§4.1) ---

// OAuthVisits returns the query of every /oauth visit so far, oldest first (so a test can
// see whether client_id or idp_id came on the URL).
func (e *Emulator) OAuthVisits() []url.Values {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]url.Values, len(e.oauthVisits))
	for i, q := range e.oauthVisits {
		out[i] = cloneValues(q)
	}
	return out
}

func cloneValues(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// single checks that parameter k, when present, appears once with one of the allowed values.
func single(q url.Values, k string, allowed ...string) error {
	v, ok := q[k]
	if !ok {
		return nil
	}
	if len(v) == 1 {
		for _, a := range allowed {
			if v[0] == a {
				return nil
			}
		}
	}
	return fmt.Errorf("invalid request: %s must be %q", k, strings.Join(allowed, `" or "`))
}

// oauthParams checks what both login URLs share: client_id and idp_id are mutually exclusive
// (SDK auth/login/options.go) and the client id is the CLI's. It returns the org signed in
// through its own identity provider, if idp_id named one.
func (e *Emulator) oauthParams(q url.Values, needOne bool) (*orgState, error) {
	_, hasClient := q["client_id"]
	_, hasIDP := q["idp_id"]
	switch {
	case hasClient && hasIDP:
		return nil, fmt.Errorf("invalid request: client_id and idp_id are mutually exclusive")
	case needOne && !hasClient && !hasIDP:
		return nil, fmt.Errorf("invalid request: one of client_id or idp_id is required")
	}
	if err := single(q, "client_id", browserClientID); err != nil {
		return nil, err
	}
	if !hasIDP {
		return nil, nil
	}
	if len(q["idp_id"]) != 1 {
		return nil, fmt.Errorf("invalid request: idp_id must be given once")
	}
	o := e.orgOfIDP(q.Get("idp_id"))
	if o == nil {
		return nil, fmt.Errorf("unknown identity provider %q: no such organization with its own identity provider", q.Get("idp_id"))
	}
	return o, nil
}

// orgOfIDP resolves idp_id: an identity provider's id (a UIDP) or, for a verified
// organization, its name (login.WithOrgName reuses idp_id).
func (e *Emulator) orgOfIDP(idp string) *orgState {
	e.mu.Lock()
	defer e.mu.Unlock()
	if uidp.Valid(idp) {
		for _, o := range e.orgs {
			if o.idp == idp {
				return o
			}
		}
		return nil
	}
	if id, ok := e.orgByName[idp]; ok && e.orgs[id].idp != "" {
		return e.orgs[id]
	}
	return nil
}

// browserUser is who the browser is signed in as, through org's identity provider when org
// is not nil; problem is the callback's error when there is nobody to sign in.
func (e *Emulator) browserUserFor(org *orgState) (u *userState, problem string, statusCode int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u, found := e.users[e.browserUser]
	if !found {
		return nil, "account not found: the identity is not registered", http.StatusNotFound
	}
	if org != nil {
		member := false
		for _, oid := range u.orgs {
			member = member || oid == org.ID
		}
		if !member {
			return nil, fmt.Sprintf("%s is not a member of %s", u.email, org.Name), http.StatusForbidden
		}
	}
	return u, "", 0
}

func (e *Emulator) handleOAuth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e.mu.Lock()
	e.oauthVisits = append(e.oauthVisits, cloneValues(q))
	e.mu.Unlock()
	if _, ok := q["headless_code"]; ok {
		e.handleHeadlessPage(w, q)
		return
	}
	redirect, err := loopbackRedirect(q.Get("redirect"))
	if err != nil {
		http.Error(w, "invalid redirect: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(q["exit"]) != 1 || q.Get("exit") != "redirect" {
		http.Error(w, `invalid request: exit must be "redirect"`, http.StatusBadRequest)
		return
	}
	for _, k := range []string{"create_refresh_token", "skip_registration"} {
		if err := single(q, k, "true"); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	// login.Login joins its audiences with ","; without one the platform's is meant.
	aud := []string{e.apiURL}
	if v, ok := q["audience"]; ok {
		if len(v) != 1 {
			http.Error(w, "invalid request: audience must be given once", http.StatusBadRequest)
			return
		}
		aud = strings.Split(v[0], ",")
		for _, a := range aud {
			if a != Audience && a != e.apiURL {
				http.Error(w, fmt.Sprintf("invalid request: audience must be %q or %q", Audience, e.apiURL), http.StatusBadRequest)
				return
			}
		}
	}
	org, err := e.oauthParams(q, true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cb := redirect.Query()
	if u, problem, code := e.browserUserFor(org); u == nil {
		cb.Set("token", "")
		cb.Set("error", problem)
		cb.Set("status_code", fmt.Sprint(code))
	} else {
		tok, _ := e.mintToken(u.id, aud)
		cb.Set("token", tok)
		if q.Get("create_refresh_token") == "true" {
			rt, _ := e.mintRefresh(u.id, aud)
			cb.Set("refresh_token", rt)
		}
		cb.Del("error")
	}
	redirect.RawQuery = cb.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// handleHeadlessPage is what a person sees opening <issuer>/oauth?headless_code=<code> on
// any device: they sign in, and the issuer leaves the encrypted session for the code's
// holder to fetch (PROTOCOL.md 4.1).
func (e *Emulator) handleHeadlessPage(w http.ResponseWriter, q url.Values) {
	page := func(status int, title, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><head><title>%s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n",
			html.EscapeString(title), html.EscapeString(title), html.EscapeString(msg))
	}
	if len(q["headless_code"]) != 1 {
		page(http.StatusBadRequest, "Invalid login code", "headless_code must be given once")
		return
	}
	code := q.Get("headless_code")
	if err := headless.VerifyCode(code); err != nil {
		page(http.StatusBadRequest, "Invalid login code", err.Error())
		return
	}
	org, err := e.oauthParams(q, false)
	if err != nil {
		page(http.StatusBadRequest, "Invalid request", err.Error())
		return
	}
	u, problem, status := e.browserUserFor(org)
	if u == nil {
		page(status, "Login failed", problem)
		return
	}
	if err := e.approveHeadless(code, u); err != nil {
		page(http.StatusGone, "Login failed", err.Error())
		return
	}
	page(http.StatusOK, "Logged in", "You are logged in. Return to your terminal; you may close this window.")
}

// loopbackRedirect accepts only http://<loopback>:<port>/… callbacks.
func loopbackRedirect(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.User != nil || u.Fragment != "" || u.Port() == "" {
		return nil, fmt.Errorf("must be http://127.0.0.1:<port>/… or http://localhost:<port>/…")
	}
	host := u.Hostname()
	if host != "localhost" {
		ip := net.ParseIP(host)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("host %q is not loopback", host)
		}
	}
	return u, nil
}

// --- organizations with their own identity provider (PROTOCOL §3) ---

// handleOrgCheck answers a bare JSON boolean, as the SDK's orgCheck decodes it: whether the
// organization exists and signs its people in through its own identity provider.
func (e *Emulator) handleOrgCheck(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	e.mu.Lock()
	e.orgChecks = append(e.orgChecks, name)
	e.mu.Unlock()
	if name == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": codeInvalidArgument, "message": "name is required", "details": []any{}})
		return
	}
	e.mu.Lock()
	id, ok := e.orgByName[name]
	ok = ok && e.orgs[id].idp != ""
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, ok)
}

// OrgChecks returns the names asked at /orgcheck so far, oldest first.
func (e *Emulator) OrgChecks() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.orgChecks...)
}

// SetOrgIDP gives org its own identity provider (ok) or takes it away. It returns the
// identity provider's id (a UIDP under the org, for idp_id), "" when it has none.
func (e *Emulator) SetOrgIDP(org Org, ok bool) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	o, found := e.orgs[org.ID]
	if !found {
		return ""
	}
	switch {
	case !ok:
		o.idp = ""
	case o.idp == "":
		o.idp = org.ID + "/" + randHex(8)
	}
	return o.idp
}

// verifyChainguard checks a Chainguard token: signature, iss, exp by the
// emulator clock, and (when aud != "") the audience.
func (e *Emulator) verifyChainguard(raw, aud string) (*inClaims, *rpcError) {
	if raw == "" {
		return nil, rpcErr(codeUnauthenticated, "missing bearer token")
	}
	tok, c, err := parseUnverified(raw)
	if err != nil {
		return nil, rpcErr(codeUnauthenticated, err.Error())
	}
	if c.Iss != e.issuerURL {
		return nil, rpcErr(codeUnauthenticated, fmt.Sprintf("token issuer %q is not %q", c.Iss, e.issuerURL))
	}
	vc, err := verifyWith(tok, []any{&e.issuerKey.priv.PublicKey}, e.now())
	if err != nil {
		return nil, rpcErr(codeUnauthenticated, "invalid token: "+err.Error())
	}
	if vc.Iat == nil {
		return nil, rpcErr(codeUnauthenticated, "invalid token: no iat")
	}
	if aud != "" && !vc.hasAud(aud) {
		return nil, rpcErr(codeUnauthenticated, fmt.Sprintf("token audience does not contain %q", aud))
	}
	return vc, nil
}

// callerOrgsLocked is the orgs a subject may act in: a user's orgs, an
// identity's parent.
func (e *Emulator) callerOrgsLocked(sub string) []Org {
	var out []Org
	if u, ok := e.users[sub]; ok {
		for _, oid := range u.orgs {
			if o, ok := e.orgs[oid]; ok {
				out = append(out, o.Org)
			}
		}
	} else if id, ok := e.identities[sub]; ok {
		if o, ok := e.orgs[id.Parent]; ok {
			out = append(out, o.Org)
		}
	}
	return out
}
