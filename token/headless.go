package token

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Chainguard's headless login (PROTOCOL.md 4.1; the SDK's auth/headless and
// login.BuildHeadlessURL): the code is an X25519 public key; the issuer encrypts the upstream
// id token to it once the person has signed in on any device, and hands it out at
// /sts/headless_sessions. Written here rather than with the SDK: the shipped binary links
// neither the SDK nor grpc (their init would cost every get), and the crypto is the standard
// library's (crypto/ecdh, AES-GCM). The emulator serves the other side with the SDK's own
// headless.(*Code).NewSession, so both ends are checked against Chainguard's code.

const (
	// headlessCodeTTL: the issuer lets a headless code lapse after 15 minutes (as chainctl's 900 s).
	headlessCodeTTL = 15 * time.Minute
	// headlessPoll is how often the issuer is asked whether the person has signed in.
	headlessPoll = 2 * time.Second
)

func headlessLogin(ctx context.Context, d Deps, o LoginOptions) (*sessionRecord, *Token, error) {
	priv, err := ecdh.X25519().GenerateKey(depRand(d))
	if err != nil {
		return nil, nil, fmt.Errorf("login: making the headless code: %w", err)
	}
	code := base64.RawURLEncoding.EncodeToString(priv.PublicKey().Bytes())
	q := url.Values{"headless_code": {code}}
	if o.Org != "" { // a headless URL needs no client_id; an org's own provider goes in idp_id
		if err := setProvider(ctx, d, q, o.Org); err != nil {
			return nil, nil, err
		}
	}
	issuer := strings.TrimRight(d.Settings.Issuer, "/")
	stderr := depStderr(d)
	fmt.Fprintf(stderr, "To log in, open this URL in a browser on any device and sign in:\n\n    %s/oauth?%s\n\n", issuer, q.Encode())
	fmt.Fprintf(stderr, "Waiting for you to sign in (the code lapses in %d minutes; Ctrl-C cancels)...\n", int(headlessCodeTTL/time.Minute))

	ctx, cancel := context.WithTimeout(ctx, headlessCodeTTL)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var sess *headlessSession
	var lastShown time.Time
	for {
		sess, err = pollHeadless(ctx, d, code)
		if err != nil {
			return nil, nil, err
		}
		if sess != nil {
			break
		}
		if o.Progress && time.Since(lastShown) >= 10*time.Second {
			fmt.Fprintf(stderr, "\r  still waiting: %s left   ", time.Until(deadline).Round(time.Second))
			lastShown = time.Now()
		}
		if err := stsSleep(ctx, headlessPoll); err != nil {
			if o.Progress {
				fmt.Fprintln(stderr)
			}
			return nil, nil, loginWaitError(ctx, "the headless sign-in", Command("login", "--headless"))
		}
	}
	if o.Progress {
		fmt.Fprintln(stderr)
	}
	idToken, err := sess.decrypt(priv)
	if err != nil {
		return nil, nil, fmt.Errorf("login: the issuer's headless session cannot be opened with this code: %w", err)
	}
	sts := NewSTS(d)
	res, err := sts.Exchange(ctx, string(idToken), []string{d.Settings.Audience}, "")
	if err != nil {
		return nil, nil, loginExchangeError(d, err, "")
	}
	skew, _ := sts.Skew()
	tok, err := verifyToken(ctx, d, res.Token, d.Settings.Audience, skew)
	if err != nil {
		return nil, nil, fmt.Errorf("login: the issuer's token: %w", err)
	}
	if res.RefreshToken == "" {
		fmt.Fprintf(stderr, "warning: the issuer sent no refresh token; you will need to log in again when the token expires at %s\n", sessTime(tok.Expiry))
	}
	return newUserSession(tok, res.RefreshToken, skew, o.Org), tok, nil
}

// headlessSession is the HeadlessSession message in protojson: bytes fields are base64.
type headlessSession struct {
	ECDHPublicKey    []byte // the issuer's ephemeral X25519 public key, as URL-safe base64 text
	EncryptedIDToken []byte // 12-byte nonce, then the AES-256-GCM ciphertext and tag
}

// pollHeadless asks once whether the person has signed in: nil, nil while not (404, or the
// issuer failing for a moment); the session once they have.
func pollHeadless(ctx context.Context, d Deps, code string) (*headlessSession, error) {
	rctx, cancel := context.WithTimeout(ctx, stsAttemptTimeout)
	defer cancel()
	u := strings.TrimRight(d.Settings.Issuer, "/") + "/sts/headless_sessions?" + url.Values{"code": {code}}.Encode()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := depHTTP(d).Do(req)
	if err != nil {
		return nil, nil //nolint:nilerr // the issuer unreachable for a moment: ask again
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode >= 500:
		return nil, nil
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("login: the issuer refused the headless code: %w", parseSTSError(resp.StatusCode, body))
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, errors.New("login: the issuer's headless session is not JSON")
	}
	field := func(names ...string) ([]byte, error) {
		for _, n := range names {
			raw, ok := m[n]
			if !ok {
				continue
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, fmt.Errorf("field %s is not a string", n)
			}
			// protojson writes bytes as standard base64; it reads URL-safe too.
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
				if b, err := enc.DecodeString(s); err == nil {
					return b, nil
				}
			}
			return nil, fmt.Errorf("field %s is not base64", n)
		}
		return nil, fmt.Errorf("no field %s", names[0])
	}
	var hs headlessSession
	if hs.ECDHPublicKey, err = field("ecdhPublicKey", "ecdh_public_key"); err != nil {
		return nil, fmt.Errorf("login: the issuer's headless session: %w", err)
	}
	if hs.EncryptedIDToken, err = field("encryptedIdtoken", "encrypted_idtoken"); err != nil {
		return nil, fmt.Errorf("login: the issuer's headless session: %w", err)
	}
	return &hs, nil
}

// decrypt opens the id token: X25519(own private key, the issuer's key) is the AES-256-GCM key.
func (s *headlessSession) decrypt(priv *ecdh.PrivateKey) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(string(s.ECDHPublicKey))
	if err != nil {
		return nil, fmt.Errorf("the issuer's public key is not URL-safe base64: %w", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("the issuer's public key: %w", err)
	}
	key, err := priv.ECDH(pub)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(s.EncryptedIDToken) < gcm.NonceSize() {
		return nil, errors.New("the encrypted id token is too short")
	}
	nonce, ct := s.EncryptedIDToken[:gcm.NonceSize()], s.EncryptedIDToken[gcm.NonceSize():]
	return gcm.Open(nil, nonce, ct, nil)
}

// setProvider puts the identity provider of a login into its URL: client_id for Chainguard's
// own (org == ""), else idp_id: an identity provider id (a UIDP) as is, an organization name
// only once /orgcheck says it has its own provider (PROTOCOL.md 3; SDK auth/login).
func setProvider(ctx context.Context, d Deps, q url.Values, org string) error {
	switch {
	case org == "":
		q.Set("client_id", browserClientID)
	case ValidIdentityID(org):
		q.Set("idp_id", org)
	default:
		ok, err := orgCheck(ctx, d, org)
		if err != nil {
			return fmt.Errorf("login: checking organization %q at %s: %w", org, d.Settings.Issuer, err)
		}
		if !ok {
			return &FixableError{
				Cause: fmt.Sprintf("organization %s not found, is not verified, or does not have an IDP configured; use identity provider ID to log in", org),
				Fix:   Command("login", "--org", "<identity provider id>"),
			}
		}
		q.Set("idp_id", org)
	}
	return nil
}

// orgCheck asks the issuer whether an organization of that name has its own identity
// provider: GET /orgcheck?name= at the issuer's root (the SDK drops the issuer's path), a
// bare JSON boolean.
func orgCheck(ctx context.Context, d Deps, name string) (bool, error) {
	u, err := url.Parse(d.Settings.Issuer)
	if err != nil {
		return false, err
	}
	u.Path, u.RawQuery = "/orgcheck", url.Values{"name": {name}}.Encode()
	var ok bool
	if err := getJSON(ctx, d, u.String(), &ok); err != nil {
		return false, err
	}
	return ok, nil
}

// loginWaitError says why a login stopped waiting: the person cancelled (Ctrl-C), or the time
// ran out; retry is the command that starts again.
func loginWaitError(ctx context.Context, what, retry string) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return errors.New("login cancelled")
	}
	if retry == "" {
		return &FixableError{Cause: fmt.Sprintf("login: no answer from %s within %s (open the URL above yourself, or log in from another device)", what, browserLoginTimeout), Fix: Command("login", "--headless")}
	}
	return &FixableError{Cause: fmt.Sprintf("login: %s did not happen before the code lapsed", what), Fix: retry}
}
