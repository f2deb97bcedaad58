package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/cgrtools/docker-credential-cgr/internal/fsread"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// Workload is an assumable identity from the environment (CGR_IDENTITY and CGR_IDENTITY_TOKEN,
// or GitHub Actions' ambient OIDC token): its OIDC token is exchanged at the STS for a
// Chainguard token, which is cached while fresh.
type Workload struct {
	d   Deps
	sts *STS
	ih  string
}

// NewWorkload returns the workload identity of d.Settings, nil when Settings.Identity == "".
func NewWorkload(d Deps) *Workload {
	if d.Settings.Identity == "" {
		return nil
	}
	return &Workload{d: d, sts: NewSTS(d), ih: strings.ToLower(d.Settings.IssuerHost())}
}

// workloadKey is where a workload's token for aud is cached: scoped by issuer host, identity
// and audience.
func workloadKey(ih, identity, aud string) string {
	return storeKey("workload/" + ih + "/" + identity + "/" + aud)
}

// Token returns a Chainguard token for aud ("" means Settings.Audience) as the workload
// identity: the cached one while fresh, else a new exchange (single-flight under the
// cross-process lock). A cached token that is not fresh but still usable is served when the
// exchange cannot finish within staleWait or failed against a failing issuer a moment ago. The
// store is an optimisation here: without one, every call exchanges. Nothing is spent by an
// exchange (the OIDC token is read again each time), so it runs in this process.
func (w *Workload) Token(ctx context.Context, aud string) (*Token, error) {
	if aud == "" {
		aud = w.d.Settings.Audience
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sessionTimeout)
		defer cancel()
	}
	key := workloadKey(w.ih, w.d.Settings.Identity, aud)
	tok := w.cached(ctx, key)
	if tok != nil && tok.Fresh(tok.IssuerNow(depClock(w.d).Now())) {
		return tok, nil
	}
	usable := tok != nil && tok.Usable(tok.IssuerNow(depClock(w.d).Now()))
	lock := lockName("workload", w.ih)
	if w.d.Store != nil {
		if usable {
			if _, failed := recentFailure(w.d, lock); failed {
				return tok, nil
			}
			h, ok, err := keystore.TryAcquire(w.d.Settings.StoreDir, lock)
			if err != nil || !ok {
				return tok, nil // another process is exchanging; this one is still good
			}
			defer h.Release()
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, staleWait)
			defer cancel()
		} else if unlock, err := lockStore(ctx, w.d, lock); err == nil {
			defer unlock()
		}
		if again := w.cached(ctx, key); again != nil && again.Fresh(again.IssuerNow(depClock(w.d).Now())) {
			return again, nil
		}
	}
	fresh, err := w.exchange(ctx, key, aud)
	if w.d.Store != nil {
		noteFailure(w.d, lock, err)
	}
	if err != nil && usable && isTransient(err) {
		return tok, nil
	}
	return fresh, err
}

// exchange trades the identity's OIDC token for a token for aud and caches it.
func (w *Workload) exchange(ctx context.Context, key, aud string) (*Token, error) {
	subject, err := identityToken(ctx, w.d, w.d.Settings.IdentityToken, "", w.d.Settings.CIProvider)
	if err != nil {
		return nil, err
	}
	res, err := w.sts.Exchange(ctx, subject, []string{aud}, w.d.Settings.Identity)
	if err != nil {
		return nil, w.explain(err, subject)
	}
	tok, err := Parse(res.Token)
	if err != nil {
		return nil, fmt.Errorf("the issuer answered with an unreadable token: %w", err)
	}
	skew, _ := w.sts.Skew()
	tok.Skew = skew
	if !tok.Usable(depClock(w.d).Now().Add(skew)) {
		return nil, fmt.Errorf("the issuer answered with a token that expires at %s", sessTime(tok.Expiry))
	}
	if w.d.Store != nil {
		if err := writeTokenRecord(ctx, w.d.Store, key, tok, skew); err != nil && !errors.Is(err, keystore.ErrUnavailable) {
			fmt.Fprintf(depStderr(w.d), "warning: could not cache the workload token: %v\n", err)
		}
	}
	return tok, nil
}

func (w *Workload) cached(ctx context.Context, key string) *Token {
	if w.d.Store == nil {
		return nil
	}
	tok, _, err := readTokenRecord(ctx, w.d.Store, key)
	if err != nil {
		return nil
	}
	return tok
}

func (w *Workload) explain(err error, subject string) error {
	id := w.d.Settings.Identity
	issuer := w.d.Settings.Issuer
	var se *STSError
	if errors.As(err, &se) {
		switch {
		case se.Code == CodeNotFound:
			return &FixableError{Cause: fmt.Sprintf("identity %s (CGR_IDENTITY) not found at %s: it was deleted or never created; set CGR_IDENTITY to an existing assumable identity", id, issuer), Err: err}
		case se.Code == CodePermissionDenied:
			return &FixableError{Cause: fmt.Sprintf("identity %s (CGR_IDENTITY) refused the workload token: its claims (%s) do not match the identity's issuer/subject/audience", id, claimsOf(subject)), Err: err}
		case se.Code == CodeUnauthenticated:
			return &FixableError{Cause: fmt.Sprintf("%s rejected the workload token for identity %s (CGR_IDENTITY): %s", issuer, id, sessOr(se.Message, "unauthenticated")), Err: err}
		}
	}
	if isTransient(err) {
		var ue *UnreachableError
		if errors.As(err, &ue) {
			return &FixableError{Cause: err.Error(), Err: err}
		}
		return &FixableError{Cause: fmt.Sprintf("cannot reach %s: %v", issuer, err), Err: err}
	}
	return fmt.Errorf("exchanging the workload token for identity %s: %w", id, err)
}

// claimsOf names the iss, sub and aud of a JWT (public claims, never the token).
func claimsOf(raw string) string {
	t, err := Parse(raw)
	if err != nil {
		return "unreadable token"
	}
	return fmt.Sprintf("iss=%s sub=%s aud=%s", t.Issuer, t.Subject, strings.Join(t.Audience, ","))
}

// identityToken finds the OIDC token for an assumable identity: given as a literal JWT or a
// path to one (read again at every use: it rotates), or asked of the CI the job runs in, at
// every exchange (CI tokens live minutes: GitHub's 5). spec is a literal or a path; literal is
// a literal kept from login; ci is the CI whose own token to use when neither is given.
func identityToken(ctx context.Context, d Deps, spec, literal, ci string) (string, error) {
	if spec == "" && literal != "" {
		spec = literal
	}
	if spec == "" {
		return ciToken(ctx, d, ci)
	}
	if looksLikeJWT(spec) {
		return spec, nil
	}
	b, err := fsread.ReadFile(spec)
	if err != nil {
		if !looksLikePath(spec) {
			// Not a JWT and not a path: it may be an opaque token. Never echo it.
			return "", &FixableError{Cause: "the identity token is neither a JWT nor a readable file: give a JWT, or a path to a file holding one (CGR_IDENTITY_TOKEN, --identity-token)"}
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is the spec itself: say it once, below
		}
		return "", &FixableError{Cause: fmt.Sprintf("cannot read the identity token file %s: %v", spec, err)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", &FixableError{Cause: fmt.Sprintf("the identity token file %s is empty", spec)}
	}
	return tok, nil
}

// looksLikeJWT: three base64url segments separated by dots (a path has slashes or no dots).
func looksLikeJWT(s string) bool {
	if strings.Count(s, ".") != 2 || strings.ContainsAny(s, "/\\ \t\n") {
		return false
	}
	for _, p := range strings.Split(s, ".") {
		if p == "" {
			return false
		}
	}
	return true
}

// actionsToken fetches GitHub Actions' OIDC token for the issuer host's audience.
func actionsToken(ctx context.Context, d Deps) (string, error) {
	u := d.Settings.ActionsTokenURL
	sep := "&"
	if !strings.Contains(u, "?") {
		sep = "?"
	}
	u += sep + "audience=" + url.QueryEscape(d.Settings.IssuerHost())
	ctx, cancel := context.WithTimeout(ctx, stsAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("GitHub Actions token URL: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+d.Settings.ActionsTokenToken)
	req.Header.Set("Accept", "application/json")
	resp, err := depHTTP(d).Do(req)
	if err != nil {
		return "", &FixableError{Cause: fmt.Sprintf("cannot fetch the GitHub Actions OIDC token: %v", scrubURLError(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading the GitHub Actions OIDC token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &FixableError{Cause: fmt.Sprintf("GitHub Actions refused an OIDC token (HTTP %d): does the job have `permissions: id-token: write`?", resp.StatusCode)}
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Value == "" {
		return "", errors.New("GitHub Actions answered without an OIDC token")
	}
	return v.Value, nil
}

// looksLikePath: absolute or explicitly relative, one line, no blanks. Only such a value is
// echoed in an error; anything else may be a token (opaque, or a mangled JWT).
func looksLikePath(s string) bool {
	if strings.ContainsAny(s, " \t\r\n") || len(s) > 4096 {
		return false
	}
	return strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") || strings.HasPrefix(s, "~/")
}
