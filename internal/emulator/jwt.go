package emulator

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// signingKey is an RSA key with its kid, serving RS256 JWTs and a JWKS.
type signingKey struct {
	priv   *rsa.PrivateKey
	kid    string
	signer jose.Signer
}

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate RSA key: %w", err)
	}
	kid := randHex(8)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.RS256)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	return &signingKey{priv: priv, kid: kid, signer: signer}, nil
}

func (k *signingKey) sign(claims any) string {
	s, err := jwt.Signed(k.signer).Claims(claims).Serialize()
	if err != nil {
		panic(fmt.Sprintf("emulator: sign JWT: %v", err)) // only on a programming error
	}
	return s
}

func (k *signingKey) jwks() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}}
}

// cgClaims are the claims of a Chainguard token as the emulator mints them.
type cgClaims struct {
	Iss   string   `json:"iss"`
	Sub   string   `json:"sub"`
	Aud   []string `json:"aud"`
	Iat   int64    `json:"iat"`
	Exp   int64    `json:"exp"`
	Nbf   int64    `json:"nbf,omitempty"`
	Email string   `json:"email,omitempty"`
	// EmailVerified is set with email: the SDK (auth.ExtractEmail) reads both.
	EmailVerified *bool  `json:"email_verified,omitempty"`
	Jti           string `json:"jti,omitempty"`
}

// inClaims are the claims of any JWT the emulator receives.
type inClaims struct {
	Iss    string           `json:"iss"`
	Sub    string           `json:"sub"`
	Aud    jwt.Audience     `json:"aud"`
	Iat    *jwt.NumericDate `json:"iat"`
	Exp    *jwt.NumericDate `json:"exp"`
	Nbf    *jwt.NumericDate `json:"nbf"`
	Email  string           `json:"email"`
	Access []access         `json:"access"`
}

func (c *inClaims) hasAud(aud string) bool {
	for _, a := range c.Aud {
		if a == aud {
			return true
		}
	}
	return false
}

var errTokenExpired = errors.New("token expired")

// parseUnverified reads a JWT's claims without checking its signature.
func parseUnverified(raw string) (*jwt.JSONWebToken, *inClaims, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, nil, fmt.Errorf("malformed token: %w", err)
	}
	var c inClaims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil {
		return nil, nil, fmt.Errorf("malformed claims: %w", err)
	}
	return tok, &c, nil
}

// verifyWith checks the signature of tok against any of keys and the time
// claims against now.
func verifyWith(tok *jwt.JSONWebToken, keys []any, now time.Time) (*inClaims, error) {
	c, err := verifySig(tok, keys)
	if err != nil {
		return nil, err
	}
	if c.Exp == nil {
		return nil, errors.New("token has no exp")
	}
	if !now.Before(c.Exp.Time()) {
		return nil, errTokenExpired
	}
	if c.Nbf != nil && now.Add(time.Minute).Before(c.Nbf.Time()) {
		return nil, errors.New("token not yet valid")
	}
	return c, nil
}

// verifySig checks only the signature of tok against any of keys.
func verifySig(tok *jwt.JSONWebToken, keys []any) (*inClaims, error) {
	var c inClaims
	var lastErr error = errors.New("no key")
	ok := false
	for _, k := range keys {
		if err := tok.Claims(k, &c); err != nil {
			lastErr = err
			continue
		}
		ok = true
		break
	}
	if !ok {
		return nil, fmt.Errorf("signature: %w", lastErr)
	}
	return &c, nil
}

func jwksKeys(set jose.JSONWebKeySet) []any {
	var keys []any
	for _, k := range set.Keys {
		if k.Valid() && k.IsPublic() {
			keys = append(keys, k.Key)
		}
	}
	return keys
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
