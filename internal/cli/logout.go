package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/token"
)

func logoutCmd(a *App) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "logout [--all]",
		Short: "Forget the login session and its cached tokens",
		Long: `Forget the cgr.dev login session and the tokens cached from it, for the configured issuer.

With --all, also forget every stored pull token and everything else this program keeps in
the secret store (pull tokens stay valid at cgr.dev until they expire; delete them with
` + "`docker-credential-cgr pull-token delete ID`" + `).

Logging out when not logged in is not an error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := a.Deps(ctx)
			if err != nil {
				return err
			}
			s := token.NewSession(d)
			had, err := s.Exists(ctx)
			if err != nil {
				return err
			}
			if err := s.Logout(ctx); err != nil {
				return err
			}
			if all {
				p := token.NewPullTokens(d, s)
				var errs []error
				for _, host := range d.Settings.Registries {
					if err := p.Forget(ctx, host); err != nil {
						errs = append(errs, err)
					}
				}
				if err := d.Store.DeleteAll(ctx); err != nil {
					errs = append(errs, err)
				}
				if err := errors.Join(errs...); err != nil {
					return fmt.Errorf("logout --all: %w", err)
				}
				fmt.Fprintf(a.Stderr, "Logged out; every stored credential removed from %s\n", d.Store.Describe())
				return nil
			}
			if had {
				fmt.Fprintf(a.Stderr, "Logged out of %s\n", d.Settings.IssuerHost())
			} else {
				fmt.Fprintln(a.Stderr, "Not logged in")
			}
			// A saved pull token still answers get: say so, and how to forget it too.
			p := token.NewPullTokens(d, nil)
			for _, host := range d.Settings.Registries {
				if pt, err := p.Stored(ctx, host); err == nil {
					fmt.Fprintf(a.Stderr, "Note: the pull token stored for %s (identity %s) still serves pulls until it expires at %s, no longer renewed; `%s logout --all` forgets it here, `%s pull-token delete %s` deletes it\n",
						host, pt.Identity, pt.Expiry.UTC().Format("2006-01-02 15:04 UTC"), config.AppName, config.AppName, pt.Identity)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "also forget every stored pull token and cgr credential")
	return cmd
}
