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
		Short: "Log in to cgr.dev (browser, a URL for another device, or an assumable identity)",
		Long: `Log in to the Chainguard registry and keep the session in the secret store, so that
Docker, crane, helm and the other clients get fresh cgr.dev tokens without asking again.

By default a browser opens the issuer's login page ($BROWSER if set, else the OS opener);
the URL is always printed on stderr, so you can open it yourself.

  --headless      no browser on this machine (SSH, a server, a container): print a URL to
                  open in a browser on any other device, then wait while you sign in there
                  (Chainguard's headless login; the code in the URL lapses after 15 minutes)
  --identity ID   log in as an assumable identity (CI, workloads), no browser: the OIDC token
                  given with --identity-token (a token, or better a path to one, read again at
                  every renewal because it rotates; "-" reads it from stdin, so that it never
                  shows in argv) is exchanged at the issuer. On GitHub
                  Actions the job's OIDC token is used when --identity-token is not given.
  --org NAME      log in through your organization's own identity provider: an org name
                  (checked with the issuer first) or an identity provider id

Exits 0 only once the session is stored.`,
		Example: `  docker-credential-cgr login
  docker-credential-cgr login --headless
  docker-credential-cgr login --org example.com
  docker-credential-cgr login --identity 0123…cdef/0123456789abcdef --identity-token /var/run/secrets/tokens/oidc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.IdentityToken != "" && o.Identity == "" {
				return &UsageError{errors.New("--identity-token needs --identity")}
			}
			if o.Identity != "" && (o.Headless || o.DeviceFlow) {
				return &UsageError{errors.New("--identity and --headless do not go together")}
			}
			if o.Headless && o.DeviceFlow {
				return &UsageError{errors.New("--headless and --device-flow do not go together")}
			}
			o.Progress = a.Interactive
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
			if o.Identity != "" && o.IdentityToken == "" && d.Settings.CIProvider == "" {
				return &UsageError{errors.New("--identity needs --identity-token (a token or a path to one)")}
			}
			if st, err := token.NewSession(d).Info(ctx); err == nil && st.Kind == "user" && o.Identity == "" {
				who := st.Email
				if who == "" {
					who = st.Subject
				}
				fmt.Fprintf(a.Stderr, "Logged in as %s already; this login replaces that session.\n", who)
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
	f.BoolVar(&o.Headless, "headless", false, "print a URL to open on another device instead of opening a local browser")
	f.BoolVar(&o.DeviceFlow, "device-flow", false, "an RFC 8628 device code, where the issuer's discovery offers one")
	_ = f.MarkHidden("device-flow")
	f.StringVar(&o.Identity, "identity", "", "assumable identity id to log in as (no browser)")
	f.StringVar(&o.IdentityToken, "identity-token", "", "OIDC token for --identity, a path to a file holding it, or - for stdin")
	f.StringVar(&o.Org, "org", "", "organization name or id to log in with")
	return cmd
}
