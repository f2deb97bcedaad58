package token

import (
	"context"
	"errors"
	"time"
)

// The sources of DefaultChain. Each is a thin face over the type that does the work
// (Workload, PullTokens, Session, Chainctl), so that get, list, status, doctor and the kubelet
// provider read one chain.

// workloadSource is CGR_IDENTITY with its OIDC token (given, or the CI's own).
type workloadSource struct{ d Deps }

func (workloadSource) Name() string { return "workload identity" }

func (w workloadSource) Credential(ctx context.Context, _, aud string) (Credential, error) {
	wl := NewWorkload(w.d)
	if wl == nil {
		return Credential{}, ErrNoCredential
	}
	t, err := wl.Token(ctx, aud)
	if err != nil {
		return Credential{}, err
	}
	return Credential{Username: TokenUsername, Secret: t.Raw, Expiry: t.Expiry, Skew: t.Skew, Source: w.Name()}, nil
}

func (w workloadSource) Describe(ctx context.Context, _ string) (Status, error) {
	id := w.d.Settings.Identity
	st := Status{Source: w.Name()}
	if id == "" {
		return st, nil
	}
	st.Configured, st.Username, st.Who, st.Org, st.Renews = true, TokenUsername, "identity "+id, rootOf(id), true
	if wl := NewWorkload(w.d); wl != nil {
		if t := wl.cached(ctx, workloadKey(wl.ih, id, w.d.Settings.Audience)); t != nil {
			st.Expiry, st.Skew = t.Expiry, t.Skew
		}
	}
	return st, nil
}

// pullTokenSource is the pull token stored for the host.
type pullTokenSource struct{ p *PullTokens }

func (pullTokenSource) Name() string { return "pull token" }

func (s pullTokenSource) Credential(ctx context.Context, host, _ string) (Credential, error) {
	pt, err := s.p.Get(ctx, host)
	if err != nil {
		return Credential{}, err
	}
	return Credential{Username: pt.Identity, Secret: pt.Token, Expiry: pt.Expiry, Skew: pt.skew, Source: s.Name()}, nil
}

func (s pullTokenSource) Describe(ctx context.Context, host string) (Status, error) {
	st := Status{Source: s.Name()}
	r, err := s.p.read(ctx, host)
	var fe *FixableError
	switch {
	case errors.Is(err, ErrNoCredential) && !errors.As(err, &fe):
		return st, nil
	case errors.Is(err, errPullDamaged):
		st.Configured, st.Problem = true, err // what get says, with its fix
		return st, nil
	case err != nil:
		return st, err
	}
	pt := r.pullToken()
	st.Configured, st.Username, st.Who, st.Org = true, pt.Identity, "pull token "+pt.Identity, rootOf(pt.Identity)
	st.Expiry, st.Skew, st.Detail = pt.Expiry, pt.skew, pt
	canRenew := s.p.canRenew(ctx, r)
	st.Renews = canRenew == nil
	switch {
	case r.Gone != "" && canRenew != nil:
		st.Problem = goneFailure(r, canRenew)
	case r.expired(s.p.issuerNow(r)) && canRenew != nil:
		st.Problem = expiredFailure(host, r, canRenew)
	}
	return st, nil
}

// sessionSource is the helper's own login session (or a `_token` handed to store, while it lasts).
type sessionSource struct{ s *Session }

func (sessionSource) Name() string { return "session" }

func (s sessionSource) Credential(ctx context.Context, _, aud string) (Credential, error) {
	t, err := s.s.Token(ctx, aud)
	if err != nil {
		return Credential{}, err
	}
	return Credential{Username: TokenUsername, Secret: t.Raw, Expiry: t.Expiry, Skew: t.Skew, Source: s.Name()}, nil
}

func (s sessionSource) Describe(ctx context.Context, _ string) (Status, error) {
	st := Status{Source: s.Name()}
	aud := s.s.d.Settings.Audience
	info, err := s.s.Info(ctx)
	var fe *FixableError
	switch {
	case errors.Is(err, ErrNoCredential):
		// No session; a `_token` given to store is served while it is usable.
		if tok, rec, err := s.s.cached(ctx, aud); err == nil && s.s.usable(tok, rec) {
			st.Configured, st.Username, st.Who, st.Expiry, st.Skew = true, TokenUsername, orWho(tok.Email, tok.Subject), tok.Expiry, tok.Skew
		}
		return st, nil
	case errors.As(err, &fe) && errors.Is(err, ErrLoginRequired):
		st.Configured, st.Username, st.Problem = true, TokenUsername, err
		return st, nil
	case err != nil:
		return st, err
	}
	st.Configured, st.Username, st.Org, st.Detail = true, TokenUsername, info.Org, info
	st.Who = orWho(info.Email, info.Subject)
	if info.Kind == "identity" {
		st.Who = "identity " + info.Identity
	}
	st.RefreshExpiry, st.Skew, st.Tokens = info.RefreshExpiry, info.Skew, info.Tokens
	st.Expiry = info.Tokens[aud]
	now := info.IssuerNow(depClock(s.s.d).Now())
	switch {
	case info.Kind == "identity":
		st.Renews = true
	case info.RefreshExpiry.IsZero():
		if tok, rec, err := s.s.cached(ctx, aud); err != nil || !s.s.usable(tok, rec) {
			st.Problem = loginRequired("your "+aud+" session cannot be refreshed (no refresh token) and its token expired", "", errors.New("no refresh token"))
		}
	case !info.RefreshExpiry.After(now):
		st.Problem = loginRequired("your "+aud+" session expired at "+sessTime(info.RefreshExpiry), "", &sessionExpired{at: info.RefreshExpiry})
	default:
		st.Renews = true
	}
	return st, nil
}

func orWho(email, subject string) string {
	if email != "" {
		return email
	}
	return subject
}

// Remaining is how long st's credential has left at our time now, by the issuer's clock.
func (st Status) Remaining(now time.Time) time.Duration { return st.Expiry.Sub(now.Add(st.Skew)) }
