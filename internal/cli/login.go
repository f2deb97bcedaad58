package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/token"
)

func loginCmd(a *App) *cobra.Command {
	var o token.LoginOptions
	cmd := &cobra.Command{
		Use:   "login [--headless] [--identity ID --identity-token TOKEN-or-PATH] [--org NAME]",
		Short: "Log in to cgr.dev (browser, device code, or an assumable identity)",
		Long: `Log in to the Chainguard registry and keep the session in the secret store, so that
Docker, crane, helm and the other clients get fresh cgr.dev tokens without asking again.

By default a browser opens the issuer's login page ($BROWSER if set, else the OS opener);
the URL is always printed on stderr, so you can open it yourself.

  --headless      no browser on this machine: print a code and a URL to open on any other
                  device (OAuth device flow), then wait for approval
  --identity ID   log in as an assumable identity (CI, workloads), no browser: the OIDC token
                  given with --identity-token (a token, or better a path to one, read again at
                  every renewal because it rotates; "-" reads it from stdin, so that it never
                  shows in argv) is exchanged at the issuer. On GitHub
                  Actions the job's OIDC token is used when --identity-token is not given.
  --org NAME      the organization (name or id) to log in with (its identity provider)

Exits 0 only once the session is stored.`,
		Example: `  docker-credential-cgr login
  docker-credential-cgr login --headless
  docker-credential-cgr login --identity 0123…cdef/0123456789abcdef --identity-token /var/run/secrets/tokens/oidc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.IdentityToken != "" && o.Identity == "" {
				return &UsageError{errors.New("--identity-token needs --identity")}
			}
			if o.Identity != "" && o.Headless {
				return &UsageError{errors.New("--identity and --headless do not go together")}
			}
			if o.Identity != "" && !token.ValidIdentityID(o.Identity) {
				return &UsageError{fmt.Errorf("--identity %q is not an identity id (<40 hex>/<16 hex>)", o.Identity)}
			}
			if o.IdentityToken == "-" {
				// Read from stdin, so the token never shows in argv.
				b, err := io.ReadAll(io.LimitReader(a.Stdin, 64<<10))
				if err != nil {
					return fmt.Errorf("reading the identity token from stdin: %w", err)
				}
				if o.IdentityToken = strings.TrimSpace(string(b)); o.IdentityToken == "" {
					return &UsageError{errors.New("--identity-token -: nothing on stdin")}
				}
			}
			ctx := cmd.Context()
			d, err := a.Deps(ctx)
			if err != nil {
				return err
			}
			if o.Identity != "" && o.IdentityToken == "" && d.Settings.ActionsTokenURL == "" {
				return &UsageError{errors.New("--identity needs --identity-token (a token or a path to one)")}
			}
			info, err := token.Login(ctx, d, o)
			if err != nil {
				return err
			}
			who := info.Email
			if who == "" {
				who = info.Subject
			}
			if info.Kind == "identity" {
				who = "identity " + info.Identity
			}
			fmt.Fprintf(a.Stderr, "Logged in as %s\n", who)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.Headless, "headless", false, "log in with a device code instead of a local browser")
	f.StringVar(&o.Identity, "identity", "", "assumable identity id to log in as (no browser)")
	f.StringVar(&o.IdentityToken, "identity-token", "", "OIDC token for --identity, a path to a file holding it, or - for stdin")
	f.StringVar(&o.Org, "org", "", "organization name or id to log in with")
	return cmd
}
