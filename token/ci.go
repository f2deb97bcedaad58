package token

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// The OIDC token a CI gives its own jobs, asked for at every exchange: CI tokens live
// minutes, so a token read once at the start of a job would be dead by its end.
//
//	CI              how the helper gets it                           audience
//	GitHub Actions  GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…     the issuer's host
//	                (needs `permissions: id-token: write`)
//	GitLab          the job's id_tokens: entry named CGR_IDENTITY_TOKEN  as the entry says
//	Buildkite       buildkite-agent oidc request-token --audience …  the issuer's host
//	CircleCI        $CIRCLE_OIDC_TOKEN_V2 (or $CIRCLE_OIDC_TOKEN)     the CircleCI org id
//
// A projected Kubernetes service-account token, AWS's outbound identity federation or any other
// file the platform keeps fresh: CGR_IDENTITY_TOKEN=<path> (read again at every use).

// ciTimeout bounds asking a CI for a token.
const ciTimeout = 8 * time.Second

func ciToken(ctx context.Context, d Deps, ci string) (string, error) {
	aud := d.Settings.IssuerHost()
	if ci == "" && d.Settings.ActionsTokenURL != "" {
		ci = "github-actions"
	}
	switch ci {
	case "github-actions":
		if d.Settings.ActionsTokenURL == "" {
			return "", &FixableError{Cause: "this GitHub Actions job gives no OIDC token: the workflow or job needs `permissions: id-token: write`"}
		}
		return actionsToken(ctx, d)
	case "gitlab":
		return "", &FixableError{Cause: fmt.Sprintf("GitLab gives a job an OIDC token only when asked: add `id_tokens: { CGR_IDENTITY_TOKEN: { aud: %s } }` to the job (the identity's claim match must name that audience)", aud)}
	case "buildkite":
		agent, ok := config.LookPath("buildkite-agent", d.Settings.Path)
		if !ok {
			return "", &FixableError{Cause: "Buildkite: buildkite-agent is not on the PATH, so no OIDC token can be asked for; set CGR_IDENTITY_TOKEN instead"}
		}
		ctx, cancel := context.WithTimeout(ctx, ciTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, agent, "oidc", "request-token", "--audience", aud)
		cmd.Env = d.Environ
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &limited{b: &out, n: 64 << 10}, &limited{b: &errb, n: 4 << 10}
		if err := cmd.Run(); err != nil {
			why := stsOneLine(firstLine(errb.String()), 200)
			if why == "" {
				why = err.Error()
			}
			return "", &FixableError{Cause: "Buildkite refused an OIDC token (buildkite-agent oidc request-token: " + why + ")"}
		}
		tok := strings.TrimSpace(out.String())
		if !looksLikeJWT(tok) {
			return "", &FixableError{Cause: "buildkite-agent oidc request-token printed no token"}
		}
		return tok, nil
	case "circleci":
		if d.Settings.CIOIDCToken == "" {
			return "", &FixableError{Cause: "this CircleCI job gives no OIDC token: CIRCLE_OIDC_TOKEN_V2 is empty (OIDC tokens come with a context or a project of an organization)"}
		}
		return d.Settings.CIOIDCToken, nil
	}
	return "", &FixableError{Cause: "CGR_IDENTITY is set but there is no identity token: set CGR_IDENTITY_TOKEN to a token or a path to one (GitHub Actions: grant `id-token: write`)"}
}
