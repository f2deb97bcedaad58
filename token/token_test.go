package token

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestFresh(t *testing.T) {
	iat := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	hour := &Token{IssuedAt: iat, Expiry: iat.Add(time.Hour)}
	short := &Token{IssuedAt: iat, Expiry: iat.Add(8 * time.Second)}
	noIat := &Token{Expiry: iat.Add(time.Hour)}
	for _, c := range []struct {
		name string
		tok  *Token
		now  time.Time
		want bool
	}{
		{"just issued", hour, iat, true},
		{"more than 15 min left", hour, iat.Add(44 * time.Minute), true},
		{"15 min left: refresh (BuildKit keeps an answer 10 min)", hour, iat.Add(45 * time.Minute), false},
		{"6 min left: refresh (served under the old 5-minute rule)", hour, iat.Add(54 * time.Minute), false},
		{"expired", hour, iat.Add(2 * time.Hour), false},
		{"short-lived: more than half left", short, iat.Add(3 * time.Second), true},
		{"short-lived: half left", short, iat.Add(4 * time.Second), false},
		{"clock jumped back 2 h: issued in the future", hour, iat.Add(-2 * time.Hour), false},
		{"issued a few seconds ahead (skew noise)", hour, iat.Add(-30 * time.Second), true},
		{"no iat: 15 min margin", noIat, iat.Add(44 * time.Minute), true},
		{"no iat: 15 min margin, less left", noIat, iat.Add(46 * time.Minute), false},
	} {
		if got := c.tok.Fresh(c.now); got != c.want {
			t.Errorf("%s: Fresh = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestUsable(t *testing.T) {
	iat := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	four := &Token{IssuedAt: iat, Expiry: iat.Add(4 * time.Second)}
	hour := &Token{IssuedAt: iat, Expiry: iat.Add(time.Hour)}
	if !four.Usable(iat) {
		t.Error("a fresh 4 s token is not usable: short lifetimes must not be dead on arrival")
	}
	if four.Usable(iat.Add(3700 * time.Millisecond)) {
		t.Error("a 4 s token with 0.3 s left is usable")
	}
	if !hour.Usable(iat.Add(59 * time.Minute)) {
		t.Error("an hour token with a minute left is not usable")
	}
	if hour.Usable(iat.Add(time.Hour - 5*time.Second)) {
		t.Error("an hour token with 5 s left is usable")
	}
}

// An identity token that is neither a JWT nor a file may be an opaque secret: the error
// says what is wrong without echoing it. A real path is named.
func TestIdentityTokenErrorsDoNotEchoTheToken(t *testing.T) {
	for _, opaque := range []string{"s3cr3t-opaque-token-value", "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln.x", "a/b+c=="} {
		_, err := identityToken(context.Background(), Deps{}, opaque, "", "")
		if err == nil || strings.Contains(err.Error(), opaque) {
			t.Fatalf("error %v; want one that does not echo the value", err)
		}
	}
	missing := filepath.Join(t.TempDir(), "token")
	_, err := identityToken(context.Background(), Deps{}, missing, "", "")
	if err == nil || !strings.Contains(err.Error(), missing) || strings.Count(err.Error(), missing) != 1 {
		t.Fatalf("error %v; want one naming the path once", err)
	}
}

// The constants are what Command would build: they are written out only so that no package
// initialisation builds them on every start.
func TestCommandConstantsAreCommand(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{LoginCommand, Command("login")},
		{DoctorCommand, Command("doctor")},
		{SaveCommand, Command("pull-token", "create", "--save")},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

// signatureAlg names exactly the algorithms go-jose verifies a token with.
func TestSignatureAlgsAreJose(t *testing.T) {
	want := map[string]bool{}
	for _, a := range []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA} {
		want[string(a)] = true
	}
	for _, a := range []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA", "HS256", "none", "rs256", "", "RS2566"} {
		if signatureAlg(a) != want[a] {
			t.Errorf("signatureAlg(%q) = %v", a, signatureAlg(a))
		}
	}
}
