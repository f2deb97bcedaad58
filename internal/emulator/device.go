package emulator

import (
	"crypto/rand"
	"fmt"
	"html"
	"math"
	"net/http"
	"strings"
	"time"
)

// The RFC 8628 device flow (PROTOCOL.md 4.2), served only with Options.DeviceFlow: the real
// issuer's discovery names no device endpoint, and a helper must not find one by default.

func (e *Emulator) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	doc := map[string]any{
		"issuer":                                e.issuerURL,
		"authorization_endpoint":                e.issuerURL + "/oauth",
		"jwks_uri":                              e.issuerURL + "/.well-known/jwks.json",
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	}
	if e.deviceFlow { // opt-in: the real issuer's discovery names no device endpoint
		doc["device_authorization_endpoint"] = e.issuerURL + "/oauth/device/code"
		doc["token_endpoint"] = e.issuerURL + "/oauth/token"
		doc["grant_types_supported"] = []string{"urn:ietf:params:oauth:grant-type:device_code"}
		doc["response_types_supported"] = []string{"code", "id_token"}
	}
	writeJSON(w, http.StatusOK, doc)
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
	idTok := e.mintUpstreamIDToken(user, d.clientID, ttl)
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
