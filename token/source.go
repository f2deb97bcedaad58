package token

import (
	"context"
	"errors"
	"time"
)

// Source is one place a registry credential can come from: a workload identity, a stored
// pull token, the login session, an existing chainctl login. Every reader of credentials
// (get, list, status, doctor, kubelet-provider) goes through this seam, and the precedence of
// CONTRACT 1.2 is written once, in DefaultChain.
type Source interface {
	// Name says what the source is, as the user knows it: "workload identity", "pull token",
	// "session", "chainctl".
	Name() string
	// Credential returns a credential for host (a served registry host) whose registry token
	// has the audience aud. ErrNoCredential: nothing configured here, try the next source;
	// any other error is the answer (one line: a *FixableError names its cause and fix).
	Credential(ctx context.Context, host, aud string) (Credential, error)
	// Describe says what the source holds for host, from the store and settings alone: no
	// network, no refresh, no renewal. A source with nothing configured returns a Status with
	// Configured false and no error.
	Describe(ctx context.Context, host string) (Status, error)
}

// Credential is what a client hands the registry.
type Credential struct {
	Username string // "_token", or a pull token's identity id
	Secret   string // a JWT
	// Expiry is when the secret stops being accepted, by the issuer's clock.
	Expiry time.Time
	// Skew is the issuer's clock minus ours, as the source knew it: Expiry is judged against
	// our clock plus Skew (see IssuerNow).
	Skew   time.Duration
	Source string // the Name of the source that gave it
}

// IssuerNow is the issuer's time when ours is now, as far as c knows it.
func (c Credential) IssuerNow(now time.Time) time.Time { return now.Add(c.Skew) }

// TokenUsername is the registry username that goes with a Chainguard token.
const TokenUsername = "_token"

// Status is what a source holds for a host, from the store alone.
type Status struct {
	Source     string
	Configured bool   // something is configured: get would answer from it (or fail with Problem)
	Username   string // what `list` shows: "_token", or a pull token's identity id
	Who        string // email, subject, or "identity <id>"
	Org        string
	// Expiry of the credential held (issuer's clock); zero when it is minted at the next use.
	Expiry time.Time
	// RefreshExpiry: when a new login is needed (sessions with a refresh token).
	RefreshExpiry time.Time
	Skew          time.Duration
	// Tokens are the cached Chainguard tokens of a session: audience → expiry (issuer's clock).
	Tokens map[string]time.Time
	// Renews: get keeps this credential valid by itself (a session refreshes; a pull token
	// with a session renews). A status shows a past expiry of such a credential as "renewed at
	// the next use", not EXPIRED.
	Renews bool
	// Problem is set when what is stored cannot serve as it is (damaged, expired with nothing
	// to renew it): the same *FixableError get would answer with.
	Problem error
	// Detail is source-specific: *SessionInfo, *PullToken, or nil.
	Detail any
}

// Chain is an ordered list of sources: the first that has something configured answers.
type Chain []Source

// Credential asks each source in order and returns the first answer that is not
// ErrNoCredential. ErrNoCredential when none has anything configured.
func (c Chain) Credential(ctx context.Context, host, aud string) (Credential, error) {
	for _, s := range c {
		cred, err := s.Credential(ctx, host, aud)
		if errors.Is(err, ErrNoCredential) {
			continue
		}
		if err == nil && cred.Source == "" {
			cred.Source = s.Name()
		}
		return cred, err
	}
	return Credential{}, ErrNoCredential
}

// Describe is the status of the source get would answer from for host (store only); a
// Status with Configured false when none has anything.
func (c Chain) Describe(ctx context.Context, host string) (Status, error) {
	for _, s := range c {
		st, err := s.Describe(ctx, host)
		if err != nil {
			return Status{Source: s.Name()}, err
		}
		if st.Configured {
			return st, nil
		}
	}
	return Status{}, nil
}

// DescribeAll is the status of every source, in order: what status and doctor show.
func (c Chain) DescribeAll(ctx context.Context, host string) []SourceStatus {
	out := make([]SourceStatus, 0, len(c))
	for _, s := range c {
		st, err := s.Describe(ctx, host)
		if st.Source == "" {
			st.Source = s.Name()
		}
		out = append(out, SourceStatus{Source: s, Status: st, Err: err})
	}
	return out
}

// SourceStatus pairs a source with what it holds.
type SourceStatus struct {
	Source Source
	Status Status
	Err    error // the store could not be read
}

// DefaultChain is the precedence of CONTRACT 1.2: a workload identity from the environment,
// then a stored pull token (the session, if any, renews it), then the helper's own login
// session, then an existing chainctl login.
func DefaultChain(d Deps) Chain {
	s := NewSession(d)
	return Chain{
		workloadSource{d: d},
		pullTokenSource{p: NewPullTokens(d, s)},
		sessionSource{s: s},
		NewChainctl(d),
	}
}
