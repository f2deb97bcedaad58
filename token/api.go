package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/lazy"
)

// apiTimeout bounds one platform API call when the caller's context has no sooner deadline.
const apiTimeout = 20 * time.Second

// uidpRE matches an identity id (UIDP): a 40-hex root, then /16-hex per level.
// Compiled on first use: package inits are paid by every `get`.
var uidpRE = lazy.Regexp{Expr: `^[0-9a-f]{40}(?:/[0-9a-f]{16})*$`}

// ValidIdentityID reports whether id is a well-formed identity id (UIDP).
func ValidIdentityID(id string) bool { return uidpRE.Get().MatchString(id) }

// parentOf is the id one level up ("" for a root).
func parentOf(id string) string {
	if i := strings.LastIndexByte(id, '/'); i > 0 {
		return id[:i]
	}
	return ""
}

// Identity is the platform API's Identity, as far as pull tokens need it.
type Identity struct {
	ID          string          `json:"id,omitempty"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Static      *StaticIdentity `json:"static,omitempty"`
}

// StaticIdentity is an identity whose tokens are verified with fixed keys until Expiration:
// what a pull token is.
type StaticIdentity struct {
	Issuer     string    `json:"issuer"`
	Subject    string    `json:"subject"`
	IssuerKeys string    `json:"issuerKeys"` // a JWKS, as a JSON string
	Expiration time.Time `json:"expiration"`
}

// Group is an organization (or folder) the caller may act in.
type Group struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// APIError is a failed platform API call, as one line without secrets.
type APIError struct {
	Op      string // "create identity"
	Status  int    // HTTP status
	Code    int    // gRPC code from the gateway body, 0 when none
	Message string // the gateway's message, flattened and shortened
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("platform API: %s: %s (HTTP %d)", e.Op, msg, e.Status)
}

// tokenSource is the part of *Session the API client needs.
type tokenSource interface {
	Token(ctx context.Context, aud string) (*Token, error)
}

// API is a client of the platform API (PROTOCOL section 6). It authenticates with a
// Chainguard token for the API's audience from the login session.
type API struct {
	d   Deps
	src tokenSource

	mu   sync.Mutex
	skew time.Duration // the API's clock minus ours, learned from Date headers
}

// NewAPI returns a platform API client using the session s for its tokens (s may be nil:
// every call then fails as "not logged in").
func NewAPI(d Deps, s *Session) *API {
	a := &API{d: d}
	if s != nil {
		a.src = s
	}
	return a
}

// Now is the platform's clock as far as it is known (ours, corrected by the skew seen in the
// API's Date headers).
func (a *API) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return depClock(a.d).Now().Add(a.skew)
}

// RoleID finds the id of the role with that name ("registry.pull").
func (a *API) RoleID(ctx context.Context, name string) (string, error) {
	var out struct {
		Items []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"items"`
	}
	if err := a.call(ctx, "find role "+name, http.MethodGet, "/iam/v1/roles", url.Values{"name": {name}}, nil, &out); err != nil {
		return "", err
	}
	for _, r := range out.Items {
		if r.Name == name && r.ID != "" {
			return r.ID, nil
		}
	}
	return "", &APIError{Op: "find role " + name, Status: http.StatusNotFound, Code: 5, Message: "no such role"}
}

// CreateIdentity creates id under parent and returns it with its new id.
func (a *API) CreateIdentity(ctx context.Context, parent string, id Identity) (*Identity, error) {
	if !ValidIdentityID(parent) {
		return nil, fmt.Errorf("create identity: %q is not an organization id", parent)
	}
	var out Identity
	if err := a.call(ctx, "create identity", http.MethodPost, "/iam/v1/identities/"+parent, nil, id, &out); err != nil {
		return nil, err
	}
	if !ValidIdentityID(out.ID) || parentOf(out.ID) != parent {
		return nil, fmt.Errorf("platform API: create identity: unexpected identity id %q", out.ID)
	}
	return &out, nil
}

// BindRole grants role to identity in parent.
func (a *API) BindRole(ctx context.Context, parent, identity, role string) error {
	in := struct {
		Identity string `json:"identity"`
		Role     string `json:"role"`
	}{identity, role}
	var out json.RawMessage
	return a.call(ctx, "bind role", http.MethodPost, "/iam/v1/rolebindings/"+parent, nil, in, &out)
}

// Identities lists the identities under parent.
func (a *API) Identities(ctx context.Context, parent string) ([]Identity, error) {
	var out struct {
		Items []Identity `json:"items"`
	}
	err := a.call(ctx, "list identities", http.MethodGet, "/iam/v1/identities", url.Values{"uidp.childrenOf": {parent}}, nil, &out)
	return out.Items, err
}

// Identity looks one identity up; an *APIError with Status 404 when there is none.
func (a *API) Identity(ctx context.Context, id string) (*Identity, error) {
	var out struct {
		Items []Identity `json:"items"`
	}
	if err := a.call(ctx, "get identity", http.MethodGet, "/iam/v1/identities", url.Values{"id": {id}}, nil, &out); err != nil {
		return nil, err
	}
	for _, it := range out.Items {
		if it.ID == id {
			return &it, nil
		}
	}
	return nil, &APIError{Op: "get identity", Status: http.StatusNotFound, Code: 5, Message: "identity " + id + " not found"}
}

// DeleteIdentity deletes an identity (and with it its role bindings).
func (a *API) DeleteIdentity(ctx context.Context, id string) error {
	if !ValidIdentityID(id) {
		return fmt.Errorf("delete identity: %q is not an identity id", id)
	}
	var out json.RawMessage
	return a.call(ctx, "delete identity", http.MethodDelete, "/iam/v1/identities/"+id, nil, nil, &out)
}

// Groups lists the organizations the caller may act in.
func (a *API) Groups(ctx context.Context) ([]Group, error) {
	var out struct {
		Items []Group `json:"items"`
	}
	err := a.call(ctx, "list organizations", http.MethodGet, "/iam/v1/groups", nil, nil, &out)
	return out.Items, err
}

// IsNotFound reports whether err is the API saying "no such thing".
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Code == 5)
}

// bearer gets a token for the API audience, turning "never logged in" into a fixable line.
func (a *API) bearer(ctx context.Context) (string, error) {
	if a.src == nil {
		return "", a.notLoggedIn(ErrNoCredential)
	}
	t, err := a.src.Token(ctx, a.d.Settings.API)
	var fe *FixableError
	switch {
	case err == nil:
		return t.Raw, nil
	case errors.As(err, &fe):
		return "", err
	case errors.Is(err, ErrNoCredential):
		return "", a.notLoggedIn(err)
	default:
		return "", fmt.Errorf("token for the platform API: %w", err)
	}
}

func (a *API) notLoggedIn(err error) error {
	return &FixableError{
		Cause: fmt.Sprintf("not logged in to %s, which pull tokens need", a.d.Settings.IssuerHost()),
		Fix:   LoginCommand,
		Err:   err,
	}
}

// call does one JSON request. Only idempotent calls are retried, and only on 503
// (gRPC Unavailable), at most 3 attempts.
func (a *API) call(ctx context.Context, op, method, path string, q url.Values, in, out any) error {
	tok, err := a.bearer(ctx)
	if err != nil {
		return err
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	u := a.d.Settings.API + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	attempts := 1
	if method == http.MethodGet || method == http.MethodDelete {
		attempts = 3
	}
	return retry(ctx, depRand(a.d), attempts, func(err error) bool {
		var ae *APIError
		return errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable
	}, func() error { return a.once(ctx, op, method, u, tok, body, out) })
}

func (a *API) once(ctx context.Context, op, method, u, tok string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("platform API: %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := depHTTP(a.d)
	start := depClock(a.d).Now()
	resp, err := hc.Do(req)
	if err != nil {
		return transient(fmt.Errorf("platform API %s: %s: %w", a.d.Settings.API, op, scrubURLError(err)))
	}
	defer resp.Body.Close()
	if skew, ok := skewFrom(resp, start, depClock(a.d).Now()); ok {
		a.mu.Lock()
		a.skew = skew
		a.mu.Unlock()
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("platform API: %s: reading the answer: %w", op, err)
	}
	if resp.StatusCode/100 != 2 {
		err := apiError(op, resp.StatusCode, data)
		if resp.StatusCode == http.StatusUnauthorized {
			return &FixableError{Cause: err.Error(), Fix: LoginCommand, Err: err}
		}
		return err
	}
	if out == nil {
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("platform API: %s: unreadable answer: %w", op, err)
	}
	return nil
}

// apiError turns a grpc-gateway error body ({"code","message"}) into one line.
func apiError(op string, status int, body []byte) error {
	se := parseSTSError(status, body) // the same gateway error shape as the issuer's
	return &APIError{Op: op, Status: status, Code: se.Code, Message: se.Message}
}
