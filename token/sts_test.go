package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

var (
	sessTestKeyOnce sync.Once
	sessTestSigner  jose.Signer
)

// sessMint signs a test JWT with the given claims (ES256, a throwaway key).
func sessMint(t testing.TB, iss, sub string, aud []string, iat, exp time.Time) string {
	t.Helper()
	sessTestKeyOnce.Do(func() {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		sessTestSigner, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, nil)
		if err != nil {
			panic(err)
		}
	})
	c := jwt.Claims{Issuer: iss, Subject: sub, Audience: aud, IssuedAt: jwt.NewNumericDate(iat), Expiry: jwt.NewNumericDate(exp)}
	s, err := jwt.Signed(sessTestSigner).Claims(c).Claims(map[string]any{"email": sub + "@example.com"}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sessRefreshToken builds a refresh token as the issuer does: base64 of a JSON object.
func sessRefreshToken(sub string, exp time.Time) string {
	b, _ := json.Marshal(map[string]any{"iss": "test", "sub": sub, "aud": []string{"cgr.dev"}, "iat": exp.Add(-time.Hour).Unix(), "exp": exp.Unix()})
	return base64.StdEncoding.EncodeToString(b)
}

func TestParseSTSAnswer(t *testing.T) {
	rtExp := time.Unix(1900000000, 0)
	rt := sessRefreshToken("u", rtExp)
	tests := []struct {
		name      string
		body      string
		wantTok   string
		wantRT    string
		wantRTExp time.Time
		wantErr   bool
	}{
		{name: "exchange camel", body: `{"token":"T","refreshToken":"` + rt + `","expiry":"2030-01-01T00:00:00Z"}`, wantTok: "T", wantRT: rt, wantRTExp: rtExp},
		{name: "exchange snake, null expiry, unknown field", body: `{"token":"T","refresh_token":"` + rt + `","expiry":null,"other":{"x":1}}`, wantTok: "T", wantRT: rt, wantRTExp: rtExp},
		{name: "exchange without refresh token", body: `{"token":"T","refreshToken":"","expiry":"2030-01-01T00:00:00Z"}`, wantTok: "T"},
		{name: "refresh camel", body: `{"token":{"token":"T","refreshToken":"","expiry":"2030-01-01T00:00:00Z"},"refreshToken":{"token":"` + rt + `","refreshToken":"","expiry":"2031-01-01T00:00:00Z"}}`, wantTok: "T", wantRT: rt, wantRTExp: rtExp},
		{name: "refresh snake", body: `{"token":{"token":"T","refresh_token":"","expiry":null},"refresh_token":{"token":"` + rt + `","expiry":null},"unknown":1}`, wantTok: "T", wantRT: rt, wantRTExp: rtExp},
		{name: "opaque refresh token takes the stated expiry", body: `{"token":{"token":"T"},"refreshToken":{"token":"opaque!","expiry":"2031-01-01T00:00:00Z"}}`, wantTok: "T", wantRT: "opaque!", wantRTExp: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)},
		{name: "no token", body: `{"refreshToken":"x"}`, wantErr: true},
		{name: "not JSON", body: `<html>`, wantErr: true},
		{name: "token of the wrong type", body: `{"token":42}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := parseSTSAnswer([]byte(tt.body))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got %+v", res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Token != tt.wantTok || res.RefreshToken != tt.wantRT || !res.RefreshExpiry.Equal(tt.wantRTExp) {
				t.Errorf("got token=%q rt-match=%v rtExp=%v; want %q %v %v", res.Token, res.RefreshToken == tt.wantRT, res.RefreshExpiry, tt.wantTok, true, tt.wantRTExp)
			}
		})
	}
}

func TestParseRefreshToken(t *testing.T) {
	exp := time.Unix(1900000000, 0)
	rt := sessRefreshToken("abc", exp)
	c, ok := ParseRefreshToken(rt)
	if !ok || c.Subject != "abc" || !c.Expiry.Equal(exp) {
		t.Fatalf("got %+v %v", c, ok)
	}
	if _, ok := ParseRefreshToken("not base64 at all!"); ok {
		t.Error("garbage parsed")
	}
	raw := strings.TrimRight(rt, "=")
	if got := RefreshTokenExpiry(raw); !got.Equal(exp) {
		t.Errorf("unpadded: %v", got)
	}
}

func TestParseSTSError(t *testing.T) {
	tests := []struct {
		status   int
		body     string
		wantCode int
		wantMsg  string
	}{
		{404, `{"code":5,"message":"identity not found","details":[]}`, CodeNotFound, "identity not found"},
		{401, `{"code":16,"message":"refresh token revoked"}`, CodeUnauthenticated, "refresh token revoked"},
		{503, `upstream connect error`, CodeUnavailable, ""},
		{500, ``, 2, ""}, // Internal, Unknown or DataLoss: not retried (as the SDK)
		{500, `{"code":13,"message":"x"}`, CodeInternal, "x"}, // the body's code is exact
		{502, `bad gateway`, CodeUnavailable, ""},
		{429, `slow down`, 2, ""},
		{504, `{}`, CodeDeadlineExceeded, ""},
		{403, `{"code":7,"message":"mismatch\nwith newline"}`, CodePermissionDenied, "mismatch with newline"},
	}
	for _, tt := range tests {
		e := parseSTSError(tt.status, []byte(tt.body))
		if e.Code != tt.wantCode || e.Message != tt.wantMsg || e.Status != tt.status {
			t.Errorf("%d %s: got %+v", tt.status, tt.body, e)
		}
		if strings.Contains(e.Error(), "\n") {
			t.Errorf("multi-line error %q", e.Error())
		}
	}
}

func TestSTSOneLine(t *testing.T) {
	euro := strings.Repeat("€", 100) // 3 bytes each: byte 200 falls inside the 67th
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "identity\n\tnot found ", 200, "identity not found"},
		{"exactly max", strings.Repeat("a", 200), 200, strings.Repeat("a", 200)},
		{"ascii cut", strings.Repeat("a", 201), 200, strings.Repeat("a", 200) + "…"},
		{"cut inside a rune", euro, 200, strings.Repeat("€", 66) + "…"},
		{"cut at a rune start", euro, 201, strings.Repeat("€", 67) + "…"},
		{"4-byte runes", strings.Repeat("𝄞", 60), 10, "𝄞𝄞…"},
		{"not UTF-8: dropped (safetext), never passed to a terminal", strings.Repeat("\x80", 20) + "ok", 10, "ok"},
	}
	for _, tt := range tests {
		got := stsOneLine(tt.in, tt.max)
		if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
		if utf8.ValidString(tt.in) && !utf8.ValidString(got) {
			t.Errorf("%s: cut a character in half: %q", tt.name, got)
		}
	}
	// Through the error parser, as a long non-ASCII message from the issuer arrives.
	e := parseSTSError(400, []byte(`{"code":3,"message":"`+euro+`"}`))
	if !utf8.ValidString(e.Error()) {
		t.Errorf("STS error is not valid UTF-8: %q", e.Error())
	}
}

// sessDeps are test dependencies around an issuer URL (no store).
func sessDeps(issuer string) Deps {
	return Deps{
		Settings: config.Settings{Issuer: issuer, Audience: "cgr.dev", Registries: []string{"cgr.dev"}},
		HTTP:     &http.Client{},
		Clock:    SystemClock{},
		Stderr:   io.Discard,
		Rand:     rand.Reader,
	}
}

func TestSTSRequestsAndRetries(t *testing.T) {
	good := `{"token":"T","refreshToken":"R"}`
	tests := []struct {
		name      string
		refresh   bool
		answers   []string // "<status> <body>"
		wantCalls int
		wantErr   int // gRPC code, 0: success
	}{
		{name: "exchange ok", answers: []string{"200 " + good}, wantCalls: 1},
		{name: "exchange retries 14", answers: []string{`503 {"code":14,"message":"try later"}`, `503 {"code":14}`, "200 " + good}, wantCalls: 3},
		{name: "exchange gives up after 3", answers: []string{`503 {"code":14}`, `503 {"code":14}`, `503 {"code":14}`, "200 " + good}, wantCalls: 3, wantErr: CodeUnavailable},
		{name: "exchange does not retry 13", answers: []string{`500 {"code":13}`, "200 " + good}, wantCalls: 1, wantErr: CodeInternal},
		{name: "refresh retries 13 and 4", refresh: true, answers: []string{`500 {"code":13}`, `504 {"code":4}`, "200 " + good}, wantCalls: 3},
		{name: "refresh does not retry 16", refresh: true, answers: []string{`401 {"code":16,"message":"revoked"}`, "200 " + good}, wantCalls: 1, wantErr: CodeUnauthenticated},
		{name: "exchange does not retry 5", answers: []string{`404 {"code":5,"message":"identity not found"}`}, wantCalls: 1, wantErr: CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1)) - 1
				wantPath := "/sts/exchange"
				if tt.refresh {
					wantPath = "/sts/exchange_refresh_token"
				}
				if r.Method != http.MethodPost || r.URL.Path != wantPath {
					t.Errorf("%s %s", r.Method, r.URL.Path)
				}
				if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
					t.Errorf("Content-Type %q", ct)
				}
				if r.Header.Get("Authorization") != "Bearer SUBJECT" {
					t.Error("wrong Authorization header")
				}
				if err := r.ParseForm(); err != nil {
					t.Error(err)
				}
				if got := r.PostForm["aud"]; len(got) != 2 || got[0] != "cgr.dev" || got[1] != "https://api" {
					t.Errorf("aud %v", got)
				}
				if !tt.refresh && r.PostForm.Get("identity") != "ID" {
					t.Errorf("identity %q", r.PostForm.Get("identity"))
				}
				status, body, _ := strings.Cut(tt.answers[n], " ")
				var code int
				fmt.Sscan(status, &code)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				io.WriteString(w, body)
			}))
			defer srv.Close()
			c := NewSTS(sessDeps(srv.URL))
			var err error
			var res *STSResult
			if tt.refresh {
				res, err = c.Refresh(context.Background(), "SUBJECT", []string{"cgr.dev", "https://api"})
			} else {
				res, err = c.Exchange(context.Background(), "SUBJECT", []string{"cgr.dev", "https://api"}, "ID")
			}
			if got := int(calls.Load()); got != tt.wantCalls {
				t.Errorf("calls = %d, want %d", got, tt.wantCalls)
			}
			if tt.wantErr == 0 {
				if err != nil || res.Token != "T" || res.RefreshToken != "R" {
					t.Fatalf("got %+v, %v", res, err)
				}
				return
			}
			var se *STSError
			if !errors.As(err, &se) || se.Code != tt.wantErr {
				t.Fatalf("err = %v, want code %d", err, tt.wantErr)
			}
		})
	}
}

func TestSTSLearnsSkewFromDate(t *testing.T) {
	for _, off := range []time.Duration{10 * time.Minute, -10 * time.Minute, 0} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", time.Now().Add(off).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"code":5,"message":"nope"}`)
		}))
		c := NewSTS(sessDeps(srv.URL))
		c.Exchange(context.Background(), "S", []string{"cgr.dev"}, "")
		srv.Close()
		skew, ok := c.Skew()
		if !ok {
			t.Fatalf("offset %v: no skew learned", off)
		}
		if d := skew - off; d > 2*time.Second || d < -2*time.Second {
			t.Errorf("offset %v: learned %v", off, skew)
		}
	}
}

func TestSTSUnreachableIsTyped(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close() // nothing listens there now
	_, err := NewSTS(sessDeps(u)).Refresh(context.Background(), "SECRET-RT", []string{"cgr.dev"})
	var ue *UnreachableError
	if !errors.As(err, &ue) || !isTransient(err) {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "SECRET-RT") {
		t.Error("the error leaks the refresh token")
	}
	if _, perr := url.Parse(u); perr != nil || !strings.Contains(err.Error(), "cannot reach "+u) {
		t.Errorf("err = %v", err)
	}
}

// Token endpoints follow no redirect, whatever client the caller hands in: a refresh token or
// an id token is never replayed to another URL, nor to another path of the same host (a
// redirect to plain http there would put it on the wire in the clear).
func TestTokenEndpointsFollowNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()
	var issuer *httptest.Server
	issuer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			elsewhere.Add(1)
			w.WriteHeader(http.StatusOK)
		case "/sts/exchange_refresh_token":
			http.Redirect(w, r, other.URL+r.URL.Path, http.StatusTemporaryRedirect)
		default:
			http.Redirect(w, r, issuer.URL+"/moved", http.StatusTemporaryRedirect)
		}
	}))
	defer issuer.Close()
	d := Deps{Settings: config.Settings{Issuer: issuer.URL}, HTTP: &http.Client{}} // a client that would follow
	s := NewSTS(d)
	if _, err := s.Refresh(context.Background(), "a-refresh-token", []string{"cgr.dev"}); err == nil {
		t.Fatal("a redirected refresh succeeded")
	}
	if _, err := s.Exchange(context.Background(), "an-id-token", []string{"cgr.dev"}, ""); err == nil {
		t.Fatal("a redirected exchange succeeded")
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("%d requests followed a redirect with the token", n)
	}
}

// An issuer's error text reaches the user's terminal (and Docker's) without control
// characters: no escape sequence from a hostile or compromised issuer survives.
func TestIssuerTextIsSafe(t *testing.T) {
	e := parseSTSError(400, []byte(`{"code":3,"message":"\u001b]0;pwned\u0007\u001b[31mred\u001b[0m \u202egnp.exe\u0000 done"}`))
	for _, r := range e.Error() {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e {
			t.Fatalf("a control character %U reaches the line: %q", r, e.Error())
		}
	}
	if !strings.Contains(e.Error(), "red") || !strings.Contains(e.Error(), "done") {
		t.Errorf("the text itself was lost: %q", e.Error())
	}
}
