package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/token"
)

// gRPC codes of the STS's error answers (PROTOCOL.md 5).
const (
	stsUnauthenticated    = 16
	stsNotFound           = 5
	stsPermissionDenied   = 7
	stsInvalidArgument    = 3
	stsUnavailable        = 14
	stsDeadlineExceeded   = 4
	serviceAccountSubject = "system:serviceaccount:"
)

// ServiceAccountExchanger is service-account-token mode (KEP-4412): the kubelet hands the
// plugin a token of the pod's service account (audience: the config's
// serviceAccountTokenAudience), and the STS exchanges it for a Chainguard token of the
// identity the service account's annotation names, if the identity's claim match (issuer =
// the cluster's OIDC issuer, subject = system:serviceaccount:NS:NAME, audience) admits it.
//
// Nothing is cached here: the kubelet caches the answer per service account (its UID and
// annotations), and a cache keyed by identity alone would hand one account's token to any
// other account that names the same identity, without the STS judging that account's token.
func ServiceAccountExchanger(d token.Deps) Exchanger {
	sts := token.NewSTS(d)
	clock := d.Clock
	if clock == nil {
		clock = token.SystemClock{}
	}
	return func(ctx context.Context, host, saToken, identity string) (Credential, error) {
		who := serviceAccountOf(saToken)
		res, err := sts.Exchange(ctx, saToken, []string{d.Settings.Audience}, identity)
		if err != nil {
			return Credential{}, explainExchange(err, d.Settings.Issuer, identity, who, saToken)
		}
		t, err := token.Parse(res.Token)
		if err != nil {
			return Credential{}, fmt.Errorf("the issuer answered the exchange for service account %s with an unreadable token: %w", who, err)
		}
		t.Skew, _ = sts.Skew()
		now := t.IssuerNow(clock.Now())
		if !t.Usable(now) {
			return Credential{}, fmt.Errorf("the issuer answered the exchange for service account %s with a token that expires at %s",
				who, t.Expiry.UTC().Format("2006-01-02 15:04:05 UTC"))
		}
		return TokenCredential(t, clock.Now()), nil
	}
}

// TokenCredential is the registry credential of a Chainguard token at our time now: served
// by get while more than its FreshFor remains (CONTRACT 1.2), so the kubelet keeps it no longer.
func TokenCredential(t *token.Token, now time.Time) Credential {
	return Credential{Username: token.TokenUsername, Password: t.Raw, Expiry: t.Expiry, IssuerNow: t.IssuerNow(now), Margin: t.FreshFor()}
}

// CredentialOf is the registry credential a source of the chain gave, at our time now, with
// the margin its kind is served with: a Chainguard token's FreshFor; for a pull token a third
// of its lifetime (exp - iat of its JWT; the default TTL when it has no iat) until it is due
// for renewal, then nothing (renewal was not possible, so get serves it until it expires).
func CredentialOf(c token.Credential, now time.Time) Credential {
	k := Credential{Username: c.Username, Password: c.Secret, Expiry: c.Expiry, IssuerNow: c.IssuerNow(now)}
	t, err := token.Parse(c.Secret)
	if c.Username == token.TokenUsername {
		if err != nil {
			t = &token.Token{Expiry: c.Expiry} // no iat known: FreshFor's full margin
		}
		k.Margin = t.FreshFor()
		return k
	}
	life := token.DefaultPullTokenTTL
	if err == nil && t.Lifetime() > 0 {
		life = t.Lifetime()
	}
	k.Margin = PullTokenMargin(life, c.Expiry.Sub(k.IssuerNow) < life/3)
	return k
}

// serviceAccountOf names the service account of a Kubernetes service-account token
// ("NS/NAME", from its sub claim, unverified: for messages only).
func serviceAccountOf(saToken string) string {
	t, err := token.Parse(saToken)
	if err != nil {
		return "(unreadable token)"
	}
	ns, name, ok := strings.Cut(strings.TrimPrefix(t.Subject, serviceAccountSubject), ":")
	if !ok || !strings.HasPrefix(t.Subject, serviceAccountSubject) {
		return fmt.Sprintf("(subject %q)", oneLine(t.Subject))
	}
	return oneLine(ns) + "/" + oneLine(name)
}

// explainExchange is the one line the kubelet logs when an annotated service account cannot
// be served: the cause and what fixes it.
func explainExchange(err error, issuer, identity, who, saToken string) error {
	ns, name, _ := strings.Cut(who, "/")
	annotate := fmt.Sprintf("kubectl annotate serviceaccount --namespace %s %s %s=<identity id> --overwrite", ns, name, AnnotationServiceAccountIdentity)
	named := fmt.Sprintf("identity %s (annotation %s of service account %s)", oneLine(identity), AnnotationServiceAccountIdentity, who)
	var se *token.STSError
	if errors.As(err, &se) {
		switch se.Code {
		case stsNotFound:
			return &token.FixableError{Cause: fmt.Sprintf("%s not found at %s: it was deleted or never created", named, issuer), Fix: annotate, Err: err}
		case stsPermissionDenied:
			t, _ := token.Parse(saToken)
			claims := "unreadable"
			if t != nil {
				claims = fmt.Sprintf("iss=%s sub=%s aud=%s", oneLine(t.Issuer), oneLine(t.Subject), oneLine(strings.Join(t.Audience, ",")))
			}
			return &token.FixableError{Cause: fmt.Sprintf("%s refused the service account's token: its claims (%s) do not match the identity's issuer, subject and audience", named, claims),
				Fix: "chainctl iam identities create NAME --identity-issuer=<the cluster's OIDC issuer> --subject=system:serviceaccount:" + ns + ":" + name + " --audience=<serviceAccountTokenAudience> --role=registry.pull", Err: err}
		case stsUnauthenticated, stsInvalidArgument:
			return &token.FixableError{Cause: fmt.Sprintf("%s rejected the token of service account %s for %s: %s", issuer, who, named, oneLine(se.Message)), Err: err}
		case stsUnavailable, stsDeadlineExceeded:
			return &token.FixableError{Cause: fmt.Sprintf("cannot reach %s to exchange the token of service account %s: %s", issuer, who, oneLine(se.Error())), Err: err}
		}
	}
	var ue *token.UnreachableError
	if errors.As(err, &ue) {
		return &token.FixableError{Cause: fmt.Sprintf("%s (exchanging the token of service account %s)", ue.Error(), who), Err: err}
	}
	return fmt.Errorf("exchanging the token of service account %s for %s: %w", who, named, err)
}

// oneLine keeps text that reaches the kubelet's log on one line with no control characters
// (an annotation or a token's claims are anyone's to write).
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
