package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/token"
)

func pullTokenCmd(a *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pull-token",
		Short: "Create, list and delete pull tokens (long-lived registry credentials)",
		Long: `A pull token is a registry credential for machines: an identity in your organization allowed
to pull (registry.pull), and a token signed by a key registered with it. It lasts --ttl
(default 720h, at most 8760h). Saved with --save, ` + "`get`" + ` serves it and, while you have a
login session, replaces it with a new one before it expires.`,
		Args: subcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(pullTokenCreate(a), pullTokenList(a), pullTokenDelete(a))
	return cmd
}

// ptParseTTL reads a Go duration, also with a days suffix ("30d").
func ptParseTTL(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil {
			return time.Duration(days) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("--ttl %q is not a duration like 720h or 30d", s)
	}
	return d, nil
}

// ptTTLFlag validates --ttl as a usage error.
func ptTTLFlag(s string) (time.Duration, error) {
	d, err := ptParseTTL(s)
	if err == nil {
		err = token.ValidPullTokenTTL(d)
	}
	if err != nil {
		return 0, &UsageError{err}
	}
	return d, nil
}

// pullTokenJSON is the --json shape of a created token.
type pullTokenJSON struct {
	IdentityID string `json:"identity_id"`
	Token      string `json:"token"`
	Expires    string `json:"expires"`
}

func pullTokenCreate(a *App) *cobra.Command {
	var (
		ttl, name, parent, repository string
		save                          bool
		wantJSON                      func() (bool, error)
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a pull token and print it with a ready docker login line",
		Example: `  docker-credential-cgr pull-token create --ttl 2160h --name ci
  docker-credential-cgr pull-token create --save        # let get serve and renew it
  docker-credential-cgr pull-token create --json | jq -r .token`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := wantJSON()
			if err != nil {
				return err
			}
			if repository != "" {
				return &UsageError{fmt.Errorf("--repository %q: a pull token grants registry.pull on its whole organization, as chainctl's does; name the organization with --parent", repository)}
			}
			d, err := ptTTLFlag(ttl)
			if err != nil {
				return err
			}
			deps, err := a.Deps(cmd.Context())
			if err != nil {
				return err
			}
			pts := token.NewPullTokens(deps, token.NewSession(deps))
			pt, err := pts.Create(cmd.Context(), token.CreateOptions{TTL: d, Name: name, Parent: parent})
			if err != nil {
				return err
			}
			if save {
				replaced := ptStoredElse(cmd.Context(), pts, a.Settings.Registries, pt.Identity)
				if err := pts.Keep(cmd.Context(), pt); err != nil {
					return err
				}
				// The old one still works and may be in use elsewhere (a CI secret, another
				// machine): say what was replaced and how to delete it, never delete it here.
				now := pts.API().Now()
				for _, old := range replaced {
					validity := "valid until " + old.Expiry.UTC().Format(time.RFC3339)
					if !old.Expiry.After(now) {
						validity = "expired " + old.Expiry.UTC().Format(time.RFC3339)
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "note: replaced the stored pull token %s (%s); it is not deleted: if nothing else uses it, run `%s pull-token delete %s`\n",
						old.Identity, validity, config.AppName, old.Identity)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return ptWriteJSON(out, pullTokenJSON{IdentityID: pt.Identity, Token: pt.Token, Expires: pt.Expiry.UTC().Format(time.RFC3339)})
			}
			printCreated(out, a.Settings.Registries, pt, save)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&ttl, "ttl", "720h", "lifetime, at most 8760h (days allowed: 30d)")
	f.StringVar(&name, "name", "", "name of the pull token's identity (default \"pull-token\")")
	f.StringVar(&parent, "parent", "", "organization (id or name) to create it in (default: your login's org, or your only org)")
	f.BoolVar(&save, "save", false, "store it so that get serves it and renews it before it expires")
	f.StringVar(&repository, "repository", "", "chainctl's word; here a pull token covers its whole organization (--parent)")
	_ = f.MarkHidden("repository")
	wantJSON = outputFlags(cmd, `print {"identity_id","token","expires"} as JSON`)
	return cmd
}

// ptStoredElse returns the pull tokens stored for hosts other than identity, once each.
func ptStoredElse(ctx context.Context, pts *token.PullTokens, hosts []string, identity string) []*token.PullToken {
	var out []*token.PullToken
	seen := map[string]bool{identity: true}
	for _, h := range hosts {
		if pt, err := pts.Stored(ctx, h); err == nil && !seen[pt.Identity] {
			seen[pt.Identity] = true
			out = append(out, pt)
		}
	}
	return out
}

// printCreated shows the token once, and how to log in without putting it in argv.
func printCreated(w io.Writer, hosts []string, pt *token.PullToken, saved bool) {
	fmt.Fprintf(w, "Pull token %s (%s) expires %s.\n", pt.Identity, pt.Name, pt.Expiry.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Username: %s\nPassword (shown once; keep it secret):\n%s\n\n", pt.Identity, pt.Token)
	// A line that runs as pasted. printf is a shell builtin, so the token travels through
	// stdin and never shows in a process's argv; a JWT needs no escaping inside ''.
	fmt.Fprintln(w, "Log in with it (the token goes through stdin, never argv):")
	for _, h := range hosts {
		fmt.Fprintf(w, "  printf '%%s' '%s' | docker login %s --username %s --password-stdin\n", pt.Token, h, pt.Identity)
	}
	if saved {
		fmt.Fprintf(w, "\nSaved: `get` serves it for %s and renews it before it expires while you are logged in.\n", strings.Join(hosts, ", "))
	}
}

// pullTokenListJSON is one row of `pull-token list --json`.
type pullTokenListJSON struct {
	IdentityID string   `json:"identity_id"`
	Name       string   `json:"name"`
	Expires    string   `json:"expires"`
	StoredFor  []string `json:"stored_for"`
	// Expired is judged with the platform's clock (learned from the API's Date headers),
	// as the registry will judge it.
	Expired bool `json:"expired"`
}

func pullTokenList(a *App) *cobra.Command {
	var (
		parent   string
		wantJSON func() (bool, error)
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the pull tokens of your organization (* marks the one saved here for get)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := wantJSON()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			deps, err := a.Deps(ctx)
			if err != nil {
				return err
			}
			pts := token.NewPullTokens(deps, token.NewSession(deps))
			list, err := pts.List(ctx, parent)
			if err != nil {
				return err
			}
			stored := map[string][]string{} // identity → hosts
			for _, h := range a.Settings.Registries {
				if pt, err := pts.Stored(ctx, h); err == nil {
					stored[pt.Identity] = append(stored[pt.Identity], h)
				}
			}
			// The expirations are the platform's: judge them with its clock, not ours.
			now := pts.API().Now()
			out := cmd.OutOrStdout()
			if asJSON {
				rows := make([]pullTokenListJSON, 0, len(list))
				for _, pt := range list {
					rows = append(rows, pullTokenListJSON{
						IdentityID: pt.Identity, Name: pt.Name, Expires: pt.Expiry.UTC().Format(time.RFC3339),
						StoredFor: append([]string{}, stored[pt.Identity]...),
						Expired:   !pt.Expiry.After(now),
					})
				}
				return ptWriteJSON(out, rows)
			}
			if len(list) == 0 {
				fmt.Fprintln(out, "No pull tokens.")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IDENTITY\tNAME\tEXPIRES\tSAVED FOR GET")
			for _, pt := range list {
				mark := ""
				if hs := stored[pt.Identity]; len(hs) > 0 {
					mark = "* " + strings.Join(hs, ",")
				}
				exp := pt.Expiry.UTC().Format(time.RFC3339)
				if !pt.Expiry.After(now) {
					exp += " (expired)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", pt.Identity, pt.Name, exp, mark)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&parent, "parent", "", "organization (id or name) to list (default: your login's org, or your only org)")
	wantJSON = outputFlags(cmd, "print JSON")
	return cmd
}

func pullTokenDelete(a *App) *cobra.Command {
	var parent string
	cmd := &cobra.Command{
		Use:   "delete ID-or-NAME",
		Short: "Delete a pull token (and forget it here if it is stored)",
		Long: `Delete a pull token at the platform (its identity), and forget it here if it is stored.
Name it by its identity id, or by its name when one pull token of the organization has it
(as pull-token list shows both).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := args[0]
			deps, err := a.Deps(cmd.Context())
			if err != nil {
				return err
			}
			pts := token.NewPullTokens(deps, token.NewSession(deps))
			if !token.ValidIdentityID(id) || !strings.Contains(id, "/") {
				// A name: it must name exactly one pull token of the organization.
				list, err := pts.List(cmd.Context(), parent)
				if err != nil {
					return err
				}
				var ids []string
				for _, pt := range list {
					if pt.Name == args[0] {
						ids = append(ids, pt.Identity)
					}
				}
				switch len(ids) {
				case 0:
					return &UsageError{fmt.Errorf("no pull token is named %q (pull-token list shows their names and ids)", args[0])}
				case 1:
					id = ids[0]
				default:
					return &UsageError{fmt.Errorf("%d pull tokens are named %q (%s); give the identity id of the one to delete", len(ids), args[0], strings.Join(ids, ", "))}
				}
			}
			if err := pts.Delete(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Deleted pull token %s.\n", id)
			return nil
		},
	}
	cmd.Flags().StringVar(&parent, "parent", "", "organization (id or name) whose pull tokens a NAME is looked up in")
	return cmd
}

func ptWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
