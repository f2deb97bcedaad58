// Package token is where credentials come from and how they stay fresh: the login session
// (login, refresh), workload identities (OIDC exchange), pull tokens (expiry, renewal).
package token

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// Clock tells the time; tests move it.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

// Now is time.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// Deps is what every source needs from its surroundings, built once in main.
type Deps struct {
	Settings config.Settings
	Store    keystore.Store
	HTTP     *http.Client // every request also carries a context deadline
	Clock    Clock
	Stderr   io.Writer // warnings and login prompts; never secrets
	Rand     io.Reader // key generation, PKCE/state
	// OpenBrowser opens a URL for the user ($BROWSER, else the OS opener). Injected so tests
	// use a fake browser that follows the issuer's redirects.
	OpenBrowser func(ctx context.Context, url string) error
	// Runner runs the jobs that must outlive their caller (refreshes, renewals); nil: in this
	// process. main sets Exec, a child process of its own.
	Runner Runner
	// Environ is the environment of programs the helper runs (chainctl); nil: this process's.
	Environ []string
}

// ErrNoCredential means nothing is configured for this source (never logged in, no pull
// token stored, no workload identity): `get` answers "not found" so anonymous pulls work.
var ErrNoCredential = errors.New("no credential configured")

// FixableError is a failure the user can fix with one command. Its Error() is ONE line
// naming the cause and the command, which Docker, crane, skopeo and helm print as is.
type FixableError struct {
	Cause string // "your cgr.dev session expired at 2026-11-26 21:00 UTC"
	Fix   string // "docker-credential-cgr login"
	Err   error  // underlying error, for errors.Is/As; never printed when it could hold a secret
}

func (e *FixableError) Error() string {
	if e.Fix == "" {
		return e.Cause
	}
	// No backticks: clients quote the line themselves (docker: "out: `...`"), and a quote
	// inside a quote reads as noise.
	return fmt.Sprintf("%s; run: %s", e.Cause, e.Fix)
}

func (e *FixableError) Unwrap() error { return e.Err }

// Token is a JWT with the claims the helper reads. Claims are read WITHOUT verifying the
// signature: the helper only decides freshness and identity from them; the registry and the
// issuer verify.
type Token struct {
	Raw      string
	Issuer   string
	Subject  string
	Audience []string
	Email    string
	IssuedAt time.Time
	Expiry   time.Time
	// Skew is the issuer's clock minus ours as known where the token was minted or cached
	// (zero when unknown): Expiry is the issuer's time, so IssuerNow judges it.
	Skew time.Duration
}

// IssuerNow is the issuer's time when ours is now, as far as t knows it.
func (t *Token) IssuerNow(now time.Time) time.Time { return now.Add(t.Skew) }

// Parse reads a JWT's claims (see Token). It fails on anything that is not a compact JWS (a
// signing algorithm of the JOSE list, never "none") with an exp claim.
//
// Read by hand rather than with go-jose's jwt.ParseSigned: this runs on every warm get, where
// go-jose's own JSON decoder cost a tenth of the process's instructions, and reading two
// base64url segments as JSON is all it needs (nothing here trusts the signature: the registry
// and issuer verify it; verify.go checks tokens that come from outside with go-jose).
// FuzzParseAgreesWithJose holds it to go-jose's reading.
func Parse(raw string) (*Token, error) {
	head, rest, ok1 := strings.Cut(raw, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	// An empty signature is read too, as go-jose reads one: nothing here checks it.
	if !ok1 || !ok2 || head == "" || payload == "" || strings.Contains(sig, ".") {
		return nil, errors.New("not a JWT: not three dot-separated segments")
	}
	// The header by its exact names too: a struct tag would take "Alg" for alg, JOSE does not.
	var alg string
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return nil, errors.New("not a JWT: unreadable header")
	}
	if h, err := decodeObject(hb); err != nil || !claimInto(h["alg"], &alg) {
		return nil, errors.New("not a JWT: unreadable header")
	}
	if !signatureAlg(alg) {
		return nil, fmt.Errorf("not a JWT: algorithm %q", stsOneLine(alg, 20))
	}
	if _, err := base64.RawURLEncoding.DecodeString(sig); err != nil {
		return nil, errors.New("not a JWT: unreadable signature")
	}
	pb, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, errors.New("not a JWT: unreadable claims")
	}
	// Claims by their exact names (encoding/json would also take "EXP" for exp; JOSE does not).
	m, err := decodeObject(pb)
	if err != nil {
		return nil, fmt.Errorf("JWT claims: %w", err)
	}
	var c struct {
		Issuer, Subject, Email string
		Audience               audience
		IssuedAt, Expiry       *numericDate
	}
	for _, cl := range [...]struct {
		name string
		dst  any
	}{{"iss", &c.Issuer}, {"sub", &c.Subject}, {"email", &c.Email}, {"aud", &c.Audience}, {"iat", &c.IssuedAt}, {"exp", &c.Expiry}} {
		if v, ok := m[cl.name]; ok && !claimInto(v, cl.dst) {
			if err := json.Unmarshal(v, cl.dst); err != nil {
				return nil, fmt.Errorf("JWT claims: %s: %w", cl.name, err)
			}
		}
	}
	if c.Expiry == nil {
		return nil, errors.New("JWT has no exp claim")
	}
	t := &Token{Raw: raw, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, Email: c.Email, Expiry: c.Expiry.time()}
	if c.IssuedAt != nil {
		t.IssuedAt = c.IssuedAt.time()
	}
	return t, nil
}

// claimInto reads a claim in the plain form every issuer writes (a string without escapes, a
// list of such strings, a whole number of seconds) without encoding/json, and reports whether it
// did; any other form is left to json.Unmarshal, which reads it as before. Written by hand because
// json.Unmarshal's cost is per call (a validity scan, then reflection), and a get reads eight
// small values of every token; FuzzParseAgreesWithJose holds the two readings to go-jose's.
func claimInto(v json.RawMessage, dst any) bool {
	switch d := dst.(type) {
	case *string:
		s, ok := plainString(v)
		if ok {
			*d = s
		}
		return ok
	case *audience:
		if s, ok := plainString(v); ok {
			*d = audience{s}
			return true
		}
		if len(v) == 0 || v[0] != '[' || flatValueLen(v) != len(v) {
			return false
		}
		l := audience{}
		for rest := v[1:]; len(rest) > 1; rest = rest[1:] { // "a","b"] then ,"b"] then ]
			s, r, _ := cutPlainString(rest)
			l, rest = append(l, string(s[1:len(s)-1])), r
		}
		*d = l
		return true
	case **numericDate:
		// Up to 15 digits: exactly a float64, far below maxNumericDate.
		if len(v) > 15 || len(v) == 0 || v[0] == '-' || !jsonInteger(v) {
			return false
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return false
		}
		nd := numericDate(n)
		*d = &nd
		return true
	}
	return false
}

// errNamedTwice: go-jose refuses a name given twice in a JWT's header or claims, so Parse does.
var errNamedTwice = errors.New("a name is given twice")

// decodeObject reads a JSON object as json.Unmarshal into a map[string]json.RawMessage does,
// refusing a name given twice. The flat form issuers write (names and strings without escapes,
// integers, true, false, null, lists of such strings; no spaces) is read by flatObject, without
// encoding/json, whose two calls per token were a third of a warm get's own instructions
// (callgrind); anything else is json.Unmarshal's. FuzzParseAgreesWithJose and FuzzDecodeObject
// hold the two readings to one.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	if m, ok := flatObject(b); ok {
		return m, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if members(b) != len(m) {
		return nil, errNamedTwice
	}
	return m, nil
}

// flatObject reads b when it is a JSON object in the flat form (decodeObject) with no name
// given twice, and reports whether it was.
func flatObject(b []byte) (map[string]json.RawMessage, bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, false
	}
	m := make(map[string]json.RawMessage, 8)
	if len(b) == 2 {
		return m, true
	}
	rest := b[1 : len(b)-1]
	for {
		name, r, ok := cutPlainString(rest)
		if !ok || len(r) == 0 || r[0] != ':' {
			return nil, false
		}
		n := flatValueLen(r[1:])
		if n == 0 {
			return nil, false
		}
		key := string(name[1 : len(name)-1])
		if _, twice := m[key]; twice {
			return nil, false
		}
		m[key] = json.RawMessage(r[1 : 1+n])
		r = r[1+n:]
		if len(r) == 0 {
			return m, true
		}
		if r[0] != ',' {
			return nil, false
		}
		rest = r[1:]
	}
}

// flatValueLen is the length of the flat value (decodeObject) at the start of b; 0 when there is
// none.
func flatValueLen(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; {
	case c == '"':
		s, _, ok := cutPlainString(b)
		if !ok {
			return 0
		}
		return len(s)
	case c == '[':
		if len(b) > 1 && b[1] == ']' {
			return 2
		}
		for i := 1; ; i++ {
			s, _, ok := cutPlainString(b[i:])
			if !ok {
				return 0
			}
			i += len(s)
			if i < len(b) && b[i] == ']' {
				return i + 1
			}
			if i >= len(b) || b[i] != ',' {
				return 0
			}
		}
	case c == 't', c == 'f', c == 'n':
		for _, lit := range [...]string{"true", "false", "null"} {
			if bytes.HasPrefix(b, []byte(lit)) {
				return len(lit)
			}
		}
		return 0
	case c == '-' || (c >= '0' && c <= '9'):
		j := 1
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if !jsonInteger(b[:j]) || (j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E')) {
			return 0 // not an integer, or one with a fraction or an exponent: json.Unmarshal's
		}
		return j
	}
	return 0
}

// jsonInteger reports whether b is an integer in JSON's grammar: -?(0|[1-9][0-9]*).
func jsonInteger(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("-"))
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// cutPlainString cuts a JSON string with no escape, control or non-ASCII byte off the front of
// b, quotes included.
func cutPlainString(b []byte) (str, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, b, false
	}
	end := bytes.IndexByte(b[1:], '"') + 1
	if end == 0 || !isPlainString(b[:end+1]) {
		return nil, b, false
	}
	return b[:end+1], b[end+1:], true
}

// members counts the names of the JSON object b (valid JSON, decoded before): fewer names in
// the decoded map than here means one was given twice.
func members(b []byte) int {
	n, depth, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		case c == ':' && depth == 1:
			n++
		}
	}
	return n
}

// plainString is the value of a JSON string with no escape, control or non-ASCII byte.
func plainString(v []byte) (string, bool) {
	if !isPlainString(v) {
		return "", false
	}
	return string(v[1 : len(v)-1]), true
}

// isPlainString reports whether v is a JSON string with no escape, control or non-ASCII byte:
// its value is the bytes between the quotes.
func isPlainString(v []byte) bool {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// signatureAlg: the JWS algorithms a token may name (RFC 7518), as go-jose accepts them.
// A switch, not a map: a map literal is built by package initialisation on every start.
func signatureAlg(alg string) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA":
		return true
	}
	return false
}

// audience is a JWT aud: a string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = l
	return nil
}

// numericDate is a JWT NumericDate: seconds since the epoch, possibly fractional.
type numericDate float64

// time is the date in whole seconds, as go-jose's NumericDate reads it.
func (n numericDate) time() time.Time { return time.Unix(int64(n), 0) }

// maxNumericDate (2^62 s) keeps int64(n) and time.Unix from overflowing (go-jose's bound).
const maxNumericDate = 1 << 62

func (n *numericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil || math.IsNaN(f) || f >= maxNumericDate || f <= -maxNumericDate {
		return errors.New("a date claim is not a number of seconds")
	}
	*n = numericDate(f)
	return nil
}

// HasAudience reports whether aud is among the token's audiences.
func (t *Token) HasAudience(aud string) bool {
	for _, a := range t.Audience {
		if a == aud {
			return true
		}
	}
	return false
}

// Lifetime is exp - iat (zero when iat is missing).
func (t *Token) Lifetime() time.Duration {
	if t.IssuedAt.IsZero() {
		return 0
	}
	return t.Expiry.Sub(t.IssuedAt)
}

// freshMargin is the least a served token must have left: BuildKit (docker build, buildx)
// keeps a helper's answer for 10 minutes and uses it for every registry token it needs in
// that time (CONTRACT 1.2), so a token served with less would die in the middle of a build.
const freshMargin = 15 * time.Minute

// Fresh reports whether a cached Chainguard token may still be served at now (the issuer's
// clock): more than min(15 minutes, half of its lifetime) must remain.
func (t *Token) Fresh(now time.Time) bool {
	// Issued "in the future": the local clock jumped back since the skew was learned (a
	// resumed laptop or VM, an NTP step). Refresh, which learns the clock again, rather
	// than trust an expiry judged by a clock that moved.
	if !t.IssuedAt.IsZero() && t.IssuedAt.Sub(now) > time.Minute {
		return false
	}
	return t.Expiry.Sub(now) > t.FreshFor()
}

// FreshFor is how much life a token must have left to be served from the cache:
// min(15 minutes, half of its lifetime).
func (t *Token) FreshFor() time.Duration {
	margin := freshMargin
	if l := t.Lifetime(); l > 0 && l/2 < margin {
		margin = l / 2
	}
	return margin
}

// Usable reports whether a token may still be handed out at now (the issuer's clock) when a
// fresher one cannot be had: more than expiryMargin must remain, or for a short-lived token a
// tenth of its lifetime, so a pull never starts with a token about to die.
func (t *Token) Usable(now time.Time) bool {
	margin := expiryMargin
	if l := t.Lifetime(); l > 0 && l/10 < margin {
		margin = l / 10
	}
	return t.Expiry.Sub(now) > margin
}
