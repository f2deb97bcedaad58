package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// A token that reaches the helper from outside its own requests (the login callback, which
// any local process can connect to) or that a refresh brings back is checked before anything
// is stored (PROTOCOL.md section 3): its signature against the issuer's published keys
// (discovery's jwks_uri), its iss, its aud, its exp.

// ErrUnverified: a token did not verify against the issuer's keys, iss or aud.
var ErrUnverified = errors.New("the token does not verify")

// jwksTTL is how long the issuer's published keys are kept in the store dir (they are public).
const jwksTTL = time.Hour

type jwksState struct {
	Fetched time.Time          `json:"fetched"`
	Keys    jose.JSONWebKeySet `json:"keys"`
}

// issuerKeys are the issuer's signing keys: from the store dir while young, else discovery
// and its jwks_uri. fresh forces a fetch (a kid we do not know: the issuer rotated its keys).
func issuerKeys(ctx context.Context, d Deps, fresh bool) (*jose.JSONWebKeySet, error) {
	name := "jwks-" + strings.ToLower(d.Settings.IssuerHost())
	if !fresh && d.Settings.StoreDir != "" {
		if b, err := keystore.ReadState(d.Settings.StoreDir, name); err == nil {
			var st jwksState
			if json.Unmarshal(b, &st) == nil && time.Since(st.Fetched) < jwksTTL && len(st.Keys.Keys) > 0 {
				return &st.Keys, nil
			}
		}
	}
	disc, err := discoverIssuer(ctx, d)
	if err != nil {
		return nil, err
	}
	if disc.JWKSURI == "" {
		return nil, fmt.Errorf("OIDC discovery at %s names no jwks_uri", d.Settings.Issuer)
	}
	if err := secureEndpoint(disc.JWKSURI); err != nil {
		return nil, fmt.Errorf("OIDC discovery at %s: %w", d.Settings.Issuer, err)
	}
	var keys jose.JSONWebKeySet
	if err := getJSON(ctx, d, disc.JWKSURI, &keys); err != nil {
		return nil, fmt.Errorf("the issuer's keys (%s): %w", disc.JWKSURI, err)
	}
	if d.Settings.StoreDir != "" {
		if b, err := json.Marshal(jwksState{Fetched: time.Now(), Keys: keys}); err == nil {
			_ = keystore.WriteState(d.Settings.StoreDir, name, b)
		}
	}
	return &keys, nil
}

// verifyToken checks raw against the issuer's keys, iss and aud (and exp, with the skew
// known) and returns it parsed.
func verifyToken(ctx context.Context, d Deps, raw, aud string, skew time.Duration) (*Token, error) {
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384, jose.ES512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}
	parsed, err := jwt.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("%w: not a JWT", ErrUnverified)
	}
	kid := ""
	if len(parsed.Headers) > 0 {
		kid = parsed.Headers[0].KeyID
	}
	var claims jwt.Claims
	verified := false
	for attempt := 0; attempt < 2 && !verified; attempt++ {
		keys, err := issuerKeys(ctx, d, attempt > 0)
		if err != nil {
			return nil, err
		}
		cands := keys.Keys
		if kid != "" {
			cands = keys.Key(kid)
		}
		for _, k := range cands {
			if parsed.Claims(k.Key, &claims) == nil {
				verified = true
				break
			}
		}
		if kid == "" && !verified {
			break // no kid to refetch for
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: not signed by a key %s publishes", ErrUnverified, d.Settings.Issuer)
	}
	if strings.TrimRight(claims.Issuer, "/") != strings.TrimRight(d.Settings.Issuer, "/") {
		return nil, fmt.Errorf("%w: issued by %q, not %s", ErrUnverified, claims.Issuer, d.Settings.Issuer)
	}
	if aud != "" && !claims.Audience.Contains(aud) {
		return nil, fmt.Errorf("%w: for audience %q, not %s", ErrUnverified, strings.Join(claims.Audience, ","), aud)
	}
	tok, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnverified, err)
	}
	tok.Skew = skew
	if !tok.Usable(tok.IssuerNow(depClock(d).Now())) {
		return nil, fmt.Errorf("%w: it expired at %s", ErrUnverified, sessTime(tok.Expiry))
	}
	return tok, nil
}

// issuerDiscovery is the part of the issuer's OIDC discovery document the helper reads.
type issuerDiscovery struct {
	Issuer                      string `json:"issuer"`
	JWKSURI                     string `json:"jwks_uri"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
}

// discoverIssuer reads the discovery document; its issuer must be the configured one exactly.
func discoverIssuer(ctx context.Context, d Deps) (*issuerDiscovery, error) {
	issuer := strings.TrimRight(d.Settings.Issuer, "/")
	var disc issuerDiscovery
	if err := getJSON(ctx, d, issuer+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, fmt.Errorf("OIDC discovery at %s: %w", issuer, err)
	}
	if disc.Issuer != d.Settings.Issuer {
		return nil, fmt.Errorf("OIDC discovery: the document names issuer %q, not %q", disc.Issuer, d.Settings.Issuer)
	}
	return &disc, nil
}

// getJSON GETs a small public JSON document (no credentials), bounded.
func getJSON(ctx context.Context, d Deps, u string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, stsAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := depHTTP(d).Do(req)
	if err != nil {
		return &UnreachableError{Issuer: d.Settings.Issuer, Err: scrubURLError(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &UnreachableError{Issuer: d.Settings.Issuer, Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("unreadable answer: %w", err)
	}
	return nil
}
