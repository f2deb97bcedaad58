package token

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cgrtools/docker-credential-cgr/internal/safetext"
)

// The STS speaks the REST gateway of a gRPC service (PROTOCOL.md section 5): form bodies in,
// JSON out, gRPC status codes in error bodies.

// gRPC status codes the helper tells apart (an STSError's or APIError's Code).
const (
	CodeInvalidArgument  = 3
	CodeDeadlineExceeded = 4
	CodeNotFound         = 5
	CodePermissionDenied = 7
	CodeInternal         = 13
	CodeUnavailable      = 14
	CodeUnauthenticated  = 16
)

const (
	stsAttempts       = 3
	stsAttemptTimeout = 15 * time.Second // per request, when ctx has no sooner deadline
	// Skews below this are noise (the Date header has one-second resolution).
	skewNoise = 2 * time.Second
)

// STSError is an error answer of the issuer: the HTTP status and the gRPC code and message
// of its body. The message is the issuer's, never a token.
type STSError struct {
	Status  int    // HTTP status
	Code    int    // gRPC code (from the body, else derived from Status)
	Message string // the issuer's message
}

func (e *STSError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("issuer answered %d (code %d): %s", e.Status, e.Code, msg)
}

const refreshPath = "/sts/exchange_refresh_token"

// STSResult is a successful exchange or refresh.
type STSResult struct {
	Token        string    // the Chainguard token (a JWT)
	RefreshToken string    // the new refresh token, "" when none was issued
	Expiry       time.Time // the token's expiry as the issuer states it (zero when not given)
	// RefreshExpiry is the refresh token's expiry (decoded from it, else as stated; zero when unknown).
	RefreshExpiry time.Time
}

// STS is a client of the issuer's security token service.
type STS struct {
	issuer string
	http   *http.Client
	clock  Clock
	rand   io.Reader

	mu      sync.Mutex
	skew    time.Duration
	learned bool
}

// NewSTS returns a client of d.Settings.Issuer's STS.
func NewSTS(d Deps) *STS {
	return &STS{issuer: strings.TrimRight(d.Settings.Issuer, "/"), http: depHTTP(d), clock: depClock(d), rand: depRand(d)}
}

// Skew is the issuer's clock minus ours, learned from the Date header of its last answer;
// ok is false until an answer carried a Date.
func (c *STS) Skew() (skew time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.skew, c.learned
}

// Exchange trades a subject token (an upstream OIDC token, a workload token, a pull-token
// JWT) for a Chainguard token for the audiences aud, assuming identity when not "".
func (c *STS) Exchange(ctx context.Context, subjectToken string, aud []string, identity string) (*STSResult, error) {
	form := url.Values{"aud": aud}
	if identity != "" {
		form.Set("identity", identity)
	}
	return c.do(ctx, "/sts/exchange", subjectToken, form, func(code int) bool { return code == CodeUnavailable })
}

// Refresh trades a refresh token for a Chainguard token for aud and a new (rotated) refresh token.
func (c *STS) Refresh(ctx context.Context, refreshToken string, aud []string) (*STSResult, error) {
	form := url.Values{"aud": aud}
	return c.do(ctx, refreshPath, refreshToken, form, func(code int) bool {
		return code == CodeUnavailable || code == CodeInternal || code == CodeDeadlineExceeded
	})
}

func (c *STS) do(ctx context.Context, path, bearer string, form url.Values, retryable func(int) bool) (*STSResult, error) {
	var res *STSResult
	err := retry(ctx, c.rand, stsAttempts, func(err error) bool {
		var se *STSError
		return errors.As(err, &se) && retryable(se.Code)
	}, func() error {
		var err error
		res, err = c.once(ctx, path, bearer, form)
		return err
	})
	return res, err
}

// retry runs f up to attempts times while retryable says its error may pass, waiting a jitter
// of 100-200 ms between tries (as Chainguard's SDK does: sts/sts.go), never past ctx. It is
// the one retry loop of the STS and platform API clients.
func retry(ctx context.Context, rnd io.Reader, attempts int, retryable func(error) bool, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || attempt >= attempts || !retryable(err) {
			return err
		}
		if werr := stsSleep(ctx, stsJitter(rnd)); werr != nil {
			return err
		}
	}
}

func (c *STS) once(ctx context.Context, path, bearer string, form url.Values) (*STSResult, error) {
	if path != refreshPath {
		// A refresh is bounded by its job alone: abandoned while the issuer works on it, the
		// rotated refresh token would be lost with its answer.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, stsAttemptTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("STS request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	start := c.clock.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &UnreachableError{Issuer: c.issuer, Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	c.learnSkew(resp, start)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &UnreachableError{Issuer: c.issuer, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		return nil, parseSTSError(resp.StatusCode, body)
	}
	res, err := parseSTSAnswer(body)
	if err != nil {
		return nil, fmt.Errorf("STS %s: %w", path, err)
	}
	return res, nil
}

// learnSkew takes the issuer's clock from the Date header: its time is in [Date, Date+1s),
// compared with the middle of our request.
func (c *STS) learnSkew(resp *http.Response, start time.Time) {
	if s, ok := skewFrom(resp, start, c.clock.Now()); ok {
		c.mu.Lock()
		c.skew, c.learned = s, true
		c.mu.Unlock()
	}
}

// ErrNoDate: the issuer's answer carried no Date header to learn its clock from.
var ErrNoDate = errors.New("no Date header")

// MeasureSkew asks the issuer's discovery document once and returns the issuer's clock minus
// ours, learned as every answer of the issuer teaches it (skewFrom). hc nil: a plain client.
func MeasureSkew(ctx context.Context, issuer string, hc *http.Client) (time.Duration, error) {
	if hc == nil {
		hc = &http.Client{Timeout: stsAttemptTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, scrubURLError(err)
	}
	resp.Body.Close()
	skew, ok := skewFrom(resp, start, time.Now())
	if !ok {
		return 0, ErrNoDate
	}
	return skew, nil
}

func skewFrom(resp *http.Response, start, end time.Time) (time.Duration, bool) {
	d := resp.Header.Get("Date")
	if d == "" {
		return 0, false
	}
	t, err := http.ParseTime(d)
	if err != nil {
		return 0, false
	}
	mid := start.Add(end.Sub(start) / 2)
	s := t.Add(500 * time.Millisecond).Sub(mid)
	if s > -skewNoise && s < skewNoise {
		s = 0
	}
	return s, true
}

// UnreachableError: the issuer could not be reached or did not answer in time.
type UnreachableError struct {
	Issuer string
	Err    error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("cannot reach %s: %v", e.Issuer, e.Err) }
func (e *UnreachableError) Unwrap() error { return e.Err }

// scrubURLError drops the URL from a *url.Error (it never holds a secret here, but the
// message is shorter and the issuer is named by UnreachableError).
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("timed out")
		}
		return ue.Err
	}
	return err
}

// parseSTSError reads a grpc-gateway error body {"code","message","details"}; anything else
// keeps the HTTP status and a gRPC code derived from it.
func parseSTSError(status int, body []byte) *STSError {
	e := &STSError{Status: status, Code: codeFromStatus(status)}
	var b struct {
		Code    *int   `json:"code"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil {
		if b.Code != nil && *b.Code > 0 {
			e.Code = *b.Code
		}
		e.Message = b.Message
		if e.Message == "" {
			e.Message = b.Error
		}
	}
	e.Message = stsOneLine(e.Message, 200)
	return e
}

// codeFromStatus is the gRPC code of an error answer whose body carries none, as the SDK
// recovers it (sts/sts.go gatewayStatusCode): 502 and 503 are Unavailable, 504 is
// DeadlineExceeded (retry-relevant); 4xx keep the code the gateway maps them from, so the
// line can say what they mean; 500 (Internal, Unknown and DataLoss all collapse onto it), 429
// and anything else are Unknown, which no retry rule retries.
func codeFromStatus(status int) int {
	switch status {
	case http.StatusBadRequest:
		return CodeInvalidArgument
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return CodeUnavailable
	case http.StatusGatewayTimeout:
		return CodeDeadlineExceeded
	}
	return 2 // Unknown
}

// parseSTSAnswer accepts both answer shapes, lowerCamelCase or snake_case, unknown fields ignored:
//
//	exchange: {"token":"<jwt>","refreshToken":"<rt>","expiry":"<RFC 3339>"|null}
//	refresh:  {"token":{"token":"<jwt>",...,"expiry":...},"refreshToken":{"token":"<rt>",...,"expiry":...}}
func parseSTSAnswer(body []byte) (*STSResult, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errors.New("the answer is not a JSON object")
	}
	res := &STSResult{}
	var err error
	if res.Token, res.Expiry, err = tokenField(m, "token"); err != nil {
		return nil, err
	}
	if res.Token == "" {
		return nil, errors.New("the answer holds no token")
	}
	var rtExp time.Time
	if res.RefreshToken, rtExp, err = tokenField(m, "refreshToken", "refresh_token"); err != nil {
		return nil, err
	}
	if res.RefreshToken != "" {
		res.RefreshExpiry = RefreshTokenExpiry(res.RefreshToken)
		if res.RefreshExpiry.IsZero() {
			res.RefreshExpiry = rtExp
		}
	}
	return res, nil
}

// tokenField reads a field that is either a string (the token itself; the sibling "expiry"
// is its expiry) or an object {"token","expiry",...}.
func tokenField(m map[string]json.RawMessage, names ...string) (string, time.Time, error) {
	var raw json.RawMessage
	for _, n := range names {
		if v, ok := m[n]; ok && string(v) != "null" {
			raw = v
			break
		}
	}
	if raw == nil {
		return "", time.Time{}, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, stsTime(m["expiry"]), nil
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(raw, &inner); err != nil {
		return "", time.Time{}, fmt.Errorf("field %q is neither a string nor an object", names[0])
	}
	var tok string
	if v, ok := inner["token"]; ok {
		if err := json.Unmarshal(v, &tok); err != nil {
			return "", time.Time{}, fmt.Errorf("field %q: token is not a string", names[0])
		}
	}
	return tok, stsTime(inner["expiry"]), nil
}

// parseExpiry reads an RFC 3339 string, a protobuf Timestamp object {"seconds","nanos"}, or
// seconds since the epoch; zero when absent or unreadable.
func stsTime(raw json.RawMessage) time.Time {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		t, _ := time.Parse(time.RFC3339Nano, s)
		return t
	}
	var n float64
	if json.Unmarshal(raw, &n) == nil {
		return stsUnixFloat(n)
	}
	var ts struct {
		Seconds json.Number `json:"seconds"`
		Nanos   int64       `json:"nanos"`
	}
	if json.Unmarshal(raw, &ts) == nil {
		if sec, err := ts.Seconds.Int64(); err == nil {
			return time.Unix(sec, ts.Nanos)
		}
	}
	return time.Time{}
}

func stsUnixFloat(n float64) time.Time {
	if n <= 0 || math.IsNaN(n) || n > 1e12 {
		return time.Time{}
	}
	sec, frac := math.Modf(n)
	return time.Unix(int64(sec), int64(frac*1e9))
}

// RefreshTokenClaims are what a refresh token says about itself: it is standard base64 of a
// JSON object {"iss","sub","aud","iat","exp"} (PROTOCOL.md section 2), not a JWT.
type RefreshTokenClaims struct {
	Issuer   string
	Subject  string
	IssuedAt time.Time
	Expiry   time.Time
}

// ParseRefreshToken decodes a refresh token's claims; ok is false when it is not readable.
func ParseRefreshToken(rt string) (c RefreshTokenClaims, ok bool) {
	rt = strings.TrimSpace(rt)
	var b []byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var err error
		if b, err = enc.DecodeString(rt); err == nil {
			break
		}
	}
	if b == nil {
		return c, false
	}
	var v struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Iat json.RawMessage `json:"iat"`
		Exp json.RawMessage `json:"exp"`
	}
	if json.Unmarshal(b, &v) != nil {
		return c, false
	}
	c = RefreshTokenClaims{Issuer: v.Iss, Subject: v.Sub, IssuedAt: stsTime(v.Iat), Expiry: stsTime(v.Exp)}
	return c, true
}

// RefreshTokenExpiry is the refresh token's exp, zero when it cannot be read.
func RefreshTokenExpiry(rt string) time.Time {
	c, _ := ParseRefreshToken(rt)
	return c.Expiry
}

// jitter is a random wait in [100 ms, 200 ms).
func stsJitter(r io.Reader) time.Duration {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 150 * time.Millisecond
	}
	return 100*time.Millisecond + time.Duration(binary.LittleEndian.Uint64(b[:])%uint64(100*time.Millisecond))
}

func stsSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stsOneLine flattens whitespace and shortens s to at most max bytes (plus "…"), cutting at
// a rune boundary: the message ends up in the one line Docker prints, and half a character
// there is a broken glyph, or invalid UTF-8 in a JSON report.
func stsOneLine(s string, max int) string {
	s = strings.Join(strings.Fields(safetext.Line(s)), " ")
	if len(s) <= max {
		return s
	}
	cut := max
	// Back up over at most UTFMax-1 continuation bytes: further back there is no rune start
	// to find (the text is not UTF-8), and the byte cut is as good as any.
	for i := max; i > 0 && i > max-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			cut = i
			break
		}
	}
	return s[:cut] + "…"
}

// depHTTP is the client of every token endpoint: d.HTTP's transport, following no redirect
// (CONTRACT 3a: a refresh token, an id token or a bearer is never replayed to another URL, nor
// over plain http after a same-host redirect). A 3xx is an answer like any other error.
func depHTTP(d Deps) *http.Client {
	c := http.Client{Timeout: 30 * time.Second}
	if d.HTTP != nil {
		c = *d.HTTP
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func depClock(d Deps) Clock {
	if d.Clock != nil {
		return d.Clock
	}
	return SystemClock{}
}

func depRand(d Deps) io.Reader {
	if d.Rand != nil {
		return d.Rand
	}
	return rand.Reader
}

func depStderr(d Deps) io.Writer {
	if d.Stderr != nil {
		return d.Stderr
	}
	return io.Discard
}
