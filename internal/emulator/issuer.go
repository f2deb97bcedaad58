package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

func (e *Emulator) issuerHandler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern, counter string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			e.hit(counter)
			f := e.faults()
			if f.IssuerDown {
				e.blackHole(w)
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
	route("GET /activate", "activate", e.handleActivate)
	route("GET /.well-known/openid-configuration", "discovery", e.handleDiscovery)
	route("GET /.well-known/jwks.json", "jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, e.issuerKey.jwks())
	})
	route("POST /oauth/device/code", "device/code", e.handleDeviceCode)
	route("POST /oauth/token", "device/token", e.handleDeviceToken)
	route("/sts/exchange", "sts/exchange", e.handleExchange)
	route("/sts/exchange_refresh_token", "sts/exchange_refresh_token", e.handleRefresh)
	route("GET /auth/v1/ok", "auth/ok", e.handleWhoAmI)
	route("/", "issuer/other", func(w http.ResponseWriter, r *http.Request) {
		writeRPC(w, rpcErr(codeNotFound, "Not Found"))
	})

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
	return mux
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

func (e *Emulator) mintToken(sub string, aud []string) (string, time.Time) {
	e.mu.Lock()
	ttl := e.tokenTTL
	email := ""
	if u, ok := e.users[sub]; ok {
		email = u.email
	}
	e.mu.Unlock()
	now := e.now()
	exp := now.Add(ttl)
	return e.issuerKey.sign(cgClaims{
		Iss: e.issuerURL, Sub: sub, Aud: aud, Iat: now.Unix(), Exp: exp.Unix(), Email: email, Jti: randHex(8),
	}), exp
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
	exp := now.Add(e.refreshTTL)
	rt := base64.StdEncoding.EncodeToString(mustJSON(refreshClaims{
		Iss: e.issuerURL, Sub: sub, Aud: aud, Iat: now.Unix(), Exp: exp.Unix(), Jti: randHex(12),
	}))
	e.refresh[rt] = &refreshState{sub: sub, exp: exp}
	return rt, exp
}

// --- browser login (PROTOCOL §3) ---

func (e *Emulator) handleOAuth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := loopbackRedirect(q.Get("redirect"))
	if err != nil {
		http.Error(w, "invalid redirect: "+err.Error(), http.StatusBadRequest)
		return
	}
	for k, want := range map[string]string{"audience": Audience, "client_id": "auth0", "create_refresh_token": "true", "exit": "redirect"} {
		if got := q[k]; len(got) != 1 || got[0] != want {
			http.Error(w, fmt.Sprintf("invalid request: %s must be %q", k, want), http.StatusBadRequest)
			return
		}
	}
	if v, ok := q["skip_registration"]; ok && (len(v) != 1 || v[0] != "true") {
		http.Error(w, "invalid request: skip_registration", http.StatusBadRequest)
		return
	}
	cb := redirect.Query()
	e.mu.Lock()
	u, found := e.users[e.browserUser]
	e.mu.Unlock()
	if !found {
		cb.Set("token", "")
		cb.Set("error", "account not found: the identity is not registered")
		cb.Set("status_code", "404")
	} else {
		tok, _ := e.mintToken(u.id, []string{Audience})
		rt, _ := e.mintRefresh(u.id, []string{Audience})
		cb.Set("token", tok)
		cb.Set("refresh_token", rt)
		cb.Del("error")
	}
	redirect.RawQuery = cb.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
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

// --- discovery and device flow (PROTOCOL §4) ---

func (e *Emulator) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                e.issuerURL,
		"authorization_endpoint":                e.issuerURL + "/oauth",
		"device_authorization_endpoint":         e.issuerURL + "/oauth/device/code",
		"token_endpoint":                        e.issuerURL + "/oauth/token",
		"jwks_uri":                              e.issuerURL + "/.well-known/jwks.json",
		"response_types_supported":              []string{"code", "id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"grant_types_supported":                 []string{"urn:ietf:params:oauth:grant-type:device_code"},
	})
}

const deviceExpiry = 900 * time.Second

const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func (e *Emulator) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "client_id is required (form body)"})
		return
	}
	d := &deviceState{deviceCode: randHex(20), clientID: r.PostForm.Get("client_id"), created: e.now()}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)]
	}
	d.userCode = string(b)
	e.mu.Lock()
	d.interval = e.deviceInterval
	e.devices[d.deviceCode] = d
	e.userCodes[d.userCode] = d.deviceCode
	e.mu.Unlock()
	verify := e.issuerURL + "/activate"
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               d.deviceCode,
		"user_code":                 d.userCode,
		"verification_uri":          verify,
		"verification_uri_complete": verify + "?user_code=" + d.userCode,
		// RFC 8628: whole seconds; a sub-second DeviceInterval is advertised as 1
		// and judged (slow_down) against the DeviceInterval itself.
		"interval":   int64(math.Max(1, math.Ceil(d.interval.Seconds()))),
		"expires_in": int64(deviceExpiry.Seconds()),
	})
}

func deviceErr(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func (e *Emulator) handleDeviceToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		deviceErr(w, "invalid_request", "form body required")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
		deviceErr(w, "unsupported_grant_type", "grant_type must be urn:ietf:params:oauth:grant-type:device_code")
		return
	}
	now := e.now()
	e.mu.Lock()
	d, ok := e.devices[f.Get("device_code")]
	if !ok || d.done {
		e.mu.Unlock()
		deviceErr(w, "invalid_grant", "unknown or used device_code")
		return
	}
	if f.Get("client_id") != d.clientID {
		e.mu.Unlock()
		deviceErr(w, "invalid_client", "client_id does not match the device code")
		return
	}
	last := d.lastPoll
	d.lastPoll = now
	switch {
	case now.Sub(d.created) >= deviceExpiry:
		e.mu.Unlock()
		deviceErr(w, "expired_token", "the device code expired")
		return
	case d.denied:
		d.done = true
		e.mu.Unlock()
		deviceErr(w, "access_denied", "the user denied the request")
		return
	case !last.IsZero() && now.Sub(last) < d.interval*9/10:
		// Tolerate 10% of timer jitter; anything faster is polling too fast.
		d.interval += 5 * time.Second
		e.mu.Unlock()
		deviceErr(w, "slow_down", "polling too fast")
		return
	case d.approvedBy == "":
		e.mu.Unlock()
		deviceErr(w, "authorization_pending", "waiting for the user")
		return
	}
	d.done = true
	user := e.users[d.approvedBy]
	ttl := e.tokenTTL
	e.mu.Unlock()
	if user == nil {
		deviceErr(w, "access_denied", "account not found")
		return
	}
	idTok := e.issuerKey.sign(cgClaims{
		Iss: e.issuerURL, Sub: user.id, Aud: []string{d.clientID}, Iat: now.Unix(), Exp: now.Add(ttl).Unix(), Email: user.email, Jti: randHex(8),
	})
	writeJSON(w, http.StatusOK, map[string]any{
		"id_token": idTok, "token_type": "Bearer", "access_token": randHex(24), "expires_in": int64(ttl.Seconds()), "scope": "openid",
	})
}

func (e *Emulator) handleActivate(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("user_code")
	e.mu.Lock()
	u, found := e.users[e.browserUser]
	e.mu.Unlock()
	if !found {
		http.Error(w, "account not found", http.StatusNotFound)
		return
	}
	if err := e.approve(code, u.id, false); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<html><body>Device %s approved. You may close this window.</body></html>\n", html.EscapeString(code))
}

// ApproveDevice approves a pending device code as the browser user.
func (e *Emulator) ApproveDevice(userCode string) error {
	e.mu.Lock()
	u := e.browserUser
	e.mu.Unlock()
	return e.approve(userCode, u, false)
}

// DenyDevice denies a pending device code.
func (e *Emulator) DenyDevice(userCode string) error { return e.approve(userCode, "", true) }

func (e *Emulator) approve(userCode, userID string, deny bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	dc, ok := e.userCodes[strings.ToUpper(strings.ReplaceAll(userCode, "-", ""))]
	if !ok {
		return fmt.Errorf("unknown user code %q", userCode)
	}
	d := e.devices[dc]
	if d.done {
		return fmt.Errorf("user code %q already used", userCode)
	}
	if deny {
		d.denied = true
		return nil
	}
	if _, ok := e.users[userID]; !ok {
		return fmt.Errorf("account not found")
	}
	d.approvedBy = userID
	return nil
}

// --- STS (PROTOCOL §5) ---

type stsToken struct {
	Token        string  `json:"token"`
	RefreshToken string  `json:"refreshToken"`
	Expiry       *string `json:"expiry"`
}

func rfc3339(t time.Time) *string {
	s := t.UTC().Format(time.RFC3339)
	return &s
}

func (e *Emulator) handleExchange(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeRPC(w, rpcErr(codeUnimplemented, "Method Not Allowed"))
		return
	}
	_ = r.ParseForm() // form body or query; a JSON body is ignored
	subject := bearer(r)
	if subject == "" {
		writeRPC(w, rpcErr(codeUnauthenticated, "missing bearer subject token"))
		return
	}
	aud := r.Form["aud"]
	if len(aud) == 0 {
		writeRPC(w, rpcErr(codeInvalidArgument, "aud is required"))
		return
	}
	sub, human, rerr := e.exchange(subject, r.Form.Get("identity"))
	if rerr != nil {
		writeRPC(w, rerr)
		return
	}
	tok, exp := e.mintToken(sub, aud)
	out := stsToken{Token: tok, Expiry: rfc3339(exp)}
	if human {
		out.RefreshToken, _ = e.mintRefresh(sub, aud)
	}
	writeJSON(w, http.StatusOK, out)
}

// exchange verifies a subject token (optionally assuming identityID) and
// returns the subject of the Chainguard token to mint.
func (e *Emulator) exchange(subject, identityID string) (sub string, human bool, _ *rpcError) {
	tok, c, err := parseUnverified(subject)
	if err != nil {
		return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
	}
	now := e.now()
	if identityID == "" {
		if c.Iss != e.issuerURL {
			return "", false, rpcErr(codeUnauthenticated, fmt.Sprintf("unable to verify token from issuer %q: no identity to assume", c.Iss))
		}
		vc, err := verifyWith(tok, []any{&e.issuerKey.priv.PublicKey}, now)
		if err != nil {
			return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
		}
		e.mu.Lock()
		_, isUser := e.users[vc.Sub]
		_, isIdentity := e.identities[vc.Sub]
		e.mu.Unlock()
		switch {
		case isUser:
			return vc.Sub, true, nil
		case isIdentity:
			return vc.Sub, false, nil
		}
		return "", false, rpcErr(codeNotFound, "identity not found")
	}

	e.mu.Lock()
	id, ok := e.identities[identityID]
	var static *staticIdentity
	var claim *claimMatch
	if ok {
		static, claim = id.Static, id.Claim
	}
	e.mu.Unlock()
	if !ok {
		return "", false, rpcErr(codeNotFound, "identity not found")
	}
	switch {
	case static != nil:
		if c.Iss != static.Issuer || c.Sub != static.Subject {
			return "", false, rpcErr(codePermissionDenied, "token does not match the identity")
		}
		if _, err := verifySig(tok, jwksKeys(static.keys)); err != nil {
			return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
		}
		if !now.Before(static.Expiration) {
			return "", false, rpcErr(codeInvalidArgument, "this identity's keys have expired")
		}
		if !c.hasAud(e.issuerURL) {
			return "", false, rpcErr(codePermissionDenied, fmt.Sprintf("token audience must contain %q", e.issuerURL))
		}
		if c.Exp == nil || !now.Before(c.Exp.Time()) {
			return "", false, rpcErr(codeUnauthenticated, "subject token expired")
		}
		return identityID, false, nil
	case claim != nil:
		var keys []any
		switch c.Iss {
		case e.OIDCIssuerURL():
			keys = []any{&e.oidcKey.priv.PublicKey}
		case e.issuerURL:
			keys = []any{&e.issuerKey.priv.PublicKey}
		default:
			return "", false, rpcErr(codePermissionDenied, fmt.Sprintf("token issuer %q does not match the identity", c.Iss))
		}
		vc, err := verifyWith(tok, keys, now)
		if err != nil {
			return "", false, rpcErr(codeUnauthenticated, "invalid subject token: "+err.Error())
		}
		if vc.Iss != claim.Issuer || vc.Sub != claim.Subject || !vc.hasAud(claim.Audience) {
			return "", false, rpcErr(codePermissionDenied, "token does not match the identity's claim match")
		}
		return identityID, false, nil
	}
	return "", false, rpcErr(codePermissionDenied, "identity cannot be assumed")
}

func (e *Emulator) handleRefresh(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeRPC(w, rpcErr(codeUnimplemented, "Method Not Allowed"))
		return
	}
	_ = r.ParseForm()
	rt := bearer(r)
	if rt == "" {
		writeRPC(w, rpcErr(codeUnauthenticated, "missing bearer refresh token"))
		return
	}
	aud := r.Form["aud"]
	if len(aud) == 0 {
		writeRPC(w, rpcErr(codeInvalidArgument, "aud is required"))
		return
	}
	if raw, err := base64.StdEncoding.DecodeString(rt); err != nil || !json.Valid(raw) {
		writeRPC(w, rpcErr(codeUnauthenticated, "malformed refresh token"))
		return
	}
	now := e.now()
	e.mu.Lock()
	st, ok := e.refresh[rt]
	var rerr *rpcError
	switch {
	case !ok:
		rerr = rpcErr(codeUnauthenticated, "invalid refresh token")
	case st.revoked:
		rerr = rpcErr(codeUnauthenticated, "refresh token revoked")
	case st.used:
		rerr = rpcErr(codeUnauthenticated, "refresh token already used")
	case !now.Before(st.exp):
		rerr = rpcErr(codeUnauthenticated, "refresh token expired")
	default:
		if _, isUser := e.users[st.sub]; !isUser {
			rerr = rpcErr(codeNotFound, "identity not found")
		} else {
			st.used = true
		}
	}
	e.mu.Unlock()
	if rerr != nil {
		writeRPC(w, rerr)
		return
	}
	tok, exp := e.mintToken(st.sub, aud)
	nrt, rexp := e.mintRefresh(st.sub, aud)
	e.mu.Lock()
	hook := e.onRefresh
	e.mu.Unlock()
	if hook != nil {
		hook() // the old refresh token is spent and the new one minted: the worst moment to die
	}
	writeJSON(w, http.StatusOK, map[string]stsToken{
		"token":        {Token: tok, Expiry: rfc3339(exp)},
		"refreshToken": {Token: nrt, Expiry: rfc3339(rexp)},
	})
}

// --- who am I (PROTOCOL §6) ---

func (e *Emulator) handleWhoAmI(w http.ResponseWriter, r *http.Request) {
	c, rerr := e.verifyChainguard(bearer(r), "")
	if rerr != nil {
		writeRPC(w, rerr)
		return
	}
	caps := []string{}
	email := ""
	var groups []map[string]string
	e.mu.Lock()
	if u, ok := e.users[c.Sub]; ok {
		email = u.email
		caps = []string{"groups.list", "identity.create", "identity.delete", "identity.list", "registry.pull", "registry.push", "rolebinding.create", "roles.list"}
	} else if id, ok := e.identities[c.Sub]; ok {
		for _, r := range e.roles {
			if id.Roles[r.ID] {
				caps = append(caps, r.Capabilities...)
			}
		}
	}
	for _, o := range e.callerOrgsLocked(c.Sub) {
		groups = append(groups, map[string]string{"id": o.ID, "name": o.Name})
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer": c.Iss, "subject": c.Sub, "audience": []string(c.Aud),
		"expiry": rfc3339(c.Exp.Time()), "issuedAt": rfc3339(c.Iat.Time()),
		"capabilities": caps, "email": email, "groups": groups,
	})
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
