package token

// Fuzz targets for everything token/ reads from outside: JWTs (from the issuer, the user,
// a workload's token file), the STS answers and error bodies, refresh tokens, the platform
// API's error bodies, and the records a store hands back (a file anyone with the user's
// rights may have edited). Seed corpora: testdata/fuzz/<FuzzName>/; scripts/fuzz.sh runs them.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// FuzzParse: a JWT's claims are read from any string without a panic; what Parse accepts has
// an expiry, and freshness can be judged of it.
func FuzzParse(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjE5MDAwMDAwMDB9.c2ln")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := Parse(raw)
		if err != nil {
			if tok != nil {
				t.Fatal("Parse returned a token and an error")
			}
			return
		}
		if tok.Raw != raw || tok.Expiry.IsZero() {
			t.Fatalf("Parse accepted a token without exp or changed Raw: %+v", tok)
		}
		tok.Fresh(time.Now())
		tok.HasAudience("cgr.dev")
		if l := tok.Lifetime(); tok.IssuedAt.IsZero() && l != 0 {
			t.Fatalf("Lifetime %v without iat", l)
		}
		_ = claimsOf(raw)
	})
}

// FuzzParseSTSAnswer: any issuer answer body decodes or fails cleanly; a decoded answer
// always holds a token, and a refresh token's own exp wins over the stated one.
func FuzzParseSTSAnswer(f *testing.F) {
	f.Add([]byte(`{"token":"a.b.c","refreshToken":"eyJleHAiOjE5MDAwMDAwMDB9","expiry":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"token":{"token":"a.b.c","expiry":{"seconds":"1900000000","nanos":5}},"refresh_token":{"token":"x","expiry":1.9e9}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := parseSTSAnswer(body)
		if err != nil {
			if res != nil {
				t.Fatal("parseSTSAnswer returned a result and an error")
			}
			return
		}
		if res.Token == "" {
			t.Fatal("parseSTSAnswer accepted an answer without a token")
		}
		if res.RefreshToken == "" && !res.RefreshExpiry.IsZero() {
			t.Fatal("a refresh expiry without a refresh token")
		}
		if c, ok := ParseRefreshToken(res.RefreshToken); ok && !c.Expiry.IsZero() && !c.Expiry.Equal(res.RefreshExpiry) {
			t.Fatalf("refresh expiry %v, but the refresh token says %v", res.RefreshExpiry, c.Expiry)
		}
	})
}

// FuzzParseSTSError: an issuer error body always becomes a one-line error with a gRPC code.
func FuzzParseSTSError(f *testing.F) {
	f.Add(401, []byte(`{"code":16,"message":"token expired"}`))
	f.Add(503, []byte("<html>\n\tbad gateway</html>"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseSTSError(status, body)
		if e.Status != status || e.Code <= 0 {
			t.Fatalf("status %d code %d for HTTP %d", e.Status, e.Code, status)
		}
		if strings.ContainsAny(e.Message, "\r\n") || strings.ContainsAny(e.Error(), "\r\n") {
			t.Fatalf("error is not one line: %q", e.Error())
		}
		if len(e.Message) > 200+len("…") {
			t.Fatalf("message of %d bytes; want at most 200", len(e.Message))
		}
	})
}

// FuzzParseRefreshToken: a refresh token (base64 JSON, not a JWT) decodes or is unreadable,
// and RefreshTokenExpiry agrees with it.
func FuzzParseRefreshToken(f *testing.F) {
	f.Add("eyJpc3MiOiJ0ZXN0Iiwic3ViIjoidSIsImlhdCI6MTg5OTk5NjQwMCwiZXhwIjoxOTAwMDAwMDAwfQ==")
	f.Add("eyJleHAiOnsic2Vjb25kcyI6IjE5MDAwMDAwMDAifX0")
	f.Fuzz(func(t *testing.T, rt string) {
		c, ok := ParseRefreshToken(rt)
		if !ok && c != (RefreshTokenClaims{}) {
			t.Fatal("claims of an unreadable refresh token")
		}
		if exp := RefreshTokenExpiry(rt); !exp.Equal(c.Expiry) {
			t.Fatalf("RefreshTokenExpiry %v, ParseRefreshToken %v", exp, c.Expiry)
		}
	})
}

// FuzzAPIError: a platform API error body becomes one line of valid UTF-8.
func FuzzAPIError(f *testing.F) {
	f.Add(404, []byte(`{"code":5,"message":"identity \"x\" not found"}`))
	f.Add(500, []byte("\xff\xfe not json\n"))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := apiError("create identity", status, body)
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("apiError returned %T", err)
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("error is not one line: %q", msg)
		}
		if utf8.ValidString(string(body)) && !utf8.ValidString(ae.Message) {
			t.Fatalf("message made invalid UTF-8 from valid input: %q", ae.Message)
		}
	})
}

// fuzzStore is an in-memory keystore.Store.
type fuzzStore map[string][]byte

func (s fuzzStore) Get(_ context.Context, k string) ([]byte, error) {
	if v, ok := s[k]; ok {
		return v, nil
	}
	return nil, keystore.ErrNotFound
}
func (s fuzzStore) Set(_ context.Context, k string, v []byte) error { s[k] = v; return nil }
func (s fuzzStore) Delete(_ context.Context, k string) error        { delete(s, k); return nil }
func (s fuzzStore) DeleteAll(context.Context) error                 { clear(s); return nil }
func (s fuzzStore) Describe() string                                { return "fuzz store" }
func (s fuzzStore) Kind() string                                    { return "file" }

// FuzzStoredRecords: whatever bytes the store holds under the session, cached-token and
// pull-token keys (a damaged or hand-edited file), reading them never panics, and what comes
// back is either a usable record or one of the documented errors.
func FuzzStoredRecords(f *testing.F) {
	f.Add([]byte(`{"token":"a.b.c","expiry":"2030-01-01T00:00:00Z","skew_ns":5}`))
	f.Add([]byte(`{"kind":"identity","refresh_token":"x","tokens":{"cgr.dev":"2030-01-01T00:00:00Z"},"skew_ns":-1}`))
	f.Add([]byte(`{"identity":"0123456789012345678901234567890123456789/0123456789abcdef","token":"a.b.c","expiry":"2030-01-01T00:00:00Z","ttl_ns":1}`))
	const ih, host = "issuer.example", "cgr.dev"
	s := config.Settings{Issuer: "https://" + ih, API: "https://api.example", Audience: "cgr.dev", Registries: []string{host}, StoreDir: f.TempDir()}
	f.Fuzz(func(t *testing.T, val []byte) {
		st := fuzzStore{sessionKey(ih): val, tokenKey(ih, "cgr.dev"): val, pullKey(host): val}
		d := Deps{Settings: s, Store: st, Clock: SystemClock{}}
		ctx := context.Background()
		if tok, rec, err := readTokenRecord(ctx, st, tokenKey(ih, "cgr.dev")); err != nil || (tok == nil) != (rec == nil) {
			t.Fatalf("readTokenRecord: token %v, record %v, err %v", tok != nil, rec != nil, err)
		} else if tok != nil {
			tok.Fresh(time.Now().Add(time.Duration(rec.SkewNS)))
		}
		sess := NewSession(d)
		if info, err := sess.Info(ctx); err != nil && !errors.Is(err, ErrNoCredential) && !errors.Is(err, keystore.ErrNotFound) {
			var fe *FixableError
			if !errors.As(err, &fe) {
				t.Fatalf("Info: undocumented error %T: %v", err, err)
			}
		} else if err == nil && info == nil {
			t.Fatal("Info: no info and no error")
		}
		pt, err := NewPullTokens(d, sess).Stored(ctx, host)
		switch {
		case err == nil:
			if pt == nil || pt.Token == "" || !ValidIdentityID(pt.Identity) {
				t.Fatalf("Stored served an unusable pull token: %+v", pt)
			}
		case errors.Is(err, ErrNoCredential):
		default:
			var fe *FixableError
			if !errors.As(err, &fe) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("Stored: not a one-line fixable error: %T: %q", err, err)
			}
		}
	})
}

// FuzzParseAgreesWithJose: Parse reads a JWT's claims as go-jose's jwt.ParseSigned and
// UnsafeClaimsWithoutVerification do: what one accepts the other accepts, with the same claims.
func FuzzParseAgreesWithJose(f *testing.F) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, c := range []struct{ h, p string }{
		{`{"alg":"RS256"}`, `{"iss":"https://i","sub":"s","aud":"cgr.dev","iat":1,"exp":1900000000,"email":"e@x"}`},
		{`{"alg":"ES256","kid":"k"}`, `{"aud":["a","b"],"exp":1.9e9}`},
		{`{"alg":"none"}`, `{"exp":1}`},
		{`{"alg":"RS256"}`, `{"EXP":1900000000}`},
		{`{"alg":"RS256"}`, `{"exp":"1900000000"}`},
		{`{"alg":"RS256"}`, `{"exp":1e300}`},
		{`{"alg":"RS256"}`, `{"exp":1900000000.7,"aud":5}`},
	} {
		f.Add(enc(c.h) + "." + enc(c.p) + "." + enc("sig"))
	}
	f.Add("a.b.c")
	f.Add("..")
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}
	f.Fuzz(func(t *testing.T, raw string) {
		ours, err := Parse(raw)
		var want *Token
		if tok, jerr := jwt.ParseSigned(raw, algs); jerr == nil {
			var c struct {
				jwt.Claims
				Email string `json:"email"`
			}
			if tok.UnsafeClaimsWithoutVerification(&c) == nil && c.Expiry != nil {
				want = &Token{Raw: raw, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience, Email: c.Email, Expiry: c.Expiry.Time()}
				if c.IssuedAt != nil {
					want.IssuedAt = c.IssuedAt.Time()
				}
			}
		}
		switch {
		case want == nil && err == nil:
			t.Fatalf("Parse accepts %q, go-jose does not", raw)
		case want != nil && err != nil:
			t.Fatalf("go-jose accepts %q, Parse does not: %v", raw, err)
		case want != nil && !reflect.DeepEqual(normAud(ours), normAud(want)):
			t.Fatalf("claims differ for %q:\n ours %+v\n jose %+v", raw, ours, want)
		}
	})
}

func normAud(t *Token) Token {
	c := *t
	if len(c.Audience) == 0 {
		c.Audience = nil
	}
	return c
}

// FuzzDecodeTokenRecord: the token-record reader that skips encoding/json for json.Marshal's own
// form reads whatever it accepts as json.Unmarshal does; the rest goes to json.Unmarshal.
func FuzzDecodeTokenRecord(f *testing.F) {
	for _, r := range marshalledRecordSeeds() {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"token":"a","expiry":"2026-12-04T18:36:06Z","skew_ns":01}`))
	f.Add([]byte(`{"token":"a\u0062","expiry":"2026-12-04T18:36:06Z"}`))
	f.Add([]byte(`{"token":"a","expiry":"2026-12-04T18:36:06Z","skew_ns":-0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast tokenRecord
		if !decodeMarshalledTokenRecord(b, &fast) {
			return // decodeTokenRecord hands it to json.Unmarshal
		}
		var want tokenRecord
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("the fast reader accepts %q, json.Unmarshal does not: %v", b, err)
		}
		if !reflect.DeepEqual(fast, want) {
			t.Fatalf("readings of %q differ:\n fast %+v\n json %+v", b, fast, want)
		}
	})
}

func marshalledRecordSeeds() []tokenRecord {
	return []tokenRecord{
		{Token: "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln", Expiry: time.Unix(1900000000, 0).UTC()},
		{Token: "a.b.c", Expiry: time.Date(2026, 12, 4, 18, 36, 6, 123456789, time.UTC), SkewNS: -1500},
		{Token: "a.b.c", Expiry: time.Unix(1, 0).In(time.FixedZone("", 3600)), SkewNS: 7},
		{Token: "", Expiry: time.Time{}},
	}
}

// TestTokenRecordReadWithoutJSON: what Remember writes is what the fast reader reads (were the
// writer's form to change, a warm get would quietly pay encoding/json again).
func TestTokenRecordReadWithoutJSON(t *testing.T) {
	for _, r := range marshalledRecordSeeds() {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got tokenRecord
		if !decodeMarshalledTokenRecord(b, &got) {
			t.Fatalf("the fast reader does not take json.Marshal's %s", b)
		}
		if !got.Expiry.Equal(r.Expiry) || got.Token != r.Token || got.SkewNS != r.SkewNS {
			t.Fatalf("read %+v from %s, want %+v", got, b, r)
		}
	}
	var rec tokenRecord
	if err := decodeTokenRecord([]byte(` {"token":"a\u0062","expiry":"2026-12-04T18:36:06Z"}`), &rec); err != nil || rec.Token != "ab" {
		t.Fatalf("a record in another form is json.Unmarshal's: %+v, %v", rec, err)
	}
}

// FuzzDecodeObject: what flatObject reads (a JWT's header and claims as issuers write them), it
// reads as json.Unmarshal into a map of raw values does, and it refuses a name given twice.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"alg":"RS256","kid":"bc3aabf0819849f9","typ":"JWT"}`,
		`{"aud":["cgr.dev"],"email":"user@acme.example","email_verified":true,"exp":1796409366,"iat":1796322966,"iss":"http://127.0.0.1:42997","jti":"e5156138ba55941f","sub":"5a23b0c42949518aca16c16566756ff91c99bf3d"}`,
		`{}`, `{"a":[]}`, `{"a":null,"b":false,"c":-0}`, `{"a":1,"a":2}`, `{"a":01}`, `{"a":1.5}`, `{"a":"\u0041"}`, `{ "a":1}`, `{"a":["x",]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := flatObject(b)
		if !ok {
			return // decodeObject hands it to json.Unmarshal
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("flatObject reads %q, json.Unmarshal does not: %v", b, err)
		}
		if members(b) != len(want) {
			t.Fatalf("flatObject reads %q, which gives a name twice", b)
		}
		if len(fast) != len(want) {
			t.Fatalf("%q: %d members read, json.Unmarshal reads %d", b, len(fast), len(want))
		}
		for k, v := range want {
			if string(fast[k]) != string(v) {
				t.Fatalf("%q: member %q is %q, json.Unmarshal reads %q", b, k, fast[k], v)
			}
		}
	})
}

// TestIssuersTokensAreReadWithoutJSON: the header and claims an issuer writes take flatObject's
// path (were it to fall back, a warm get would quietly pay encoding/json again).
func TestIssuersTokensAreReadWithoutJSON(t *testing.T) {
	for _, s := range []string{
		`{"alg":"RS256","kid":"bc3aabf0819849f9","typ":"JWT"}`,
		`{"aud":["cgr.dev"],"email":"user@acme.example","email_verified":true,"exp":1796409366,"iat":1796322966,"iss":"http://127.0.0.1:42997","jti":"e5156138ba55941f","sub":"5a23b0c42949518aca16c16566756ff91c99bf3d"}`,
		`{"aud":"cgr.dev","exp":1796409366,"iat":1796322966,"iss":"https://issuer.enforce.dev","sub":"a/b"}`,
	} {
		if _, ok := flatObject([]byte(s)); !ok {
			t.Errorf("flatObject does not read %s", s)
		}
	}
	if _, err := decodeObject([]byte(`{"a":1, "a":2}`)); !errors.Is(err, errNamedTwice) {
		t.Errorf("a name given twice, in a form for json.Unmarshal: %v", err)
	}
}
