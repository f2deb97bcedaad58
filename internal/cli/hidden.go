package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// protocolHelp says what each credential-helper action does: `get --help` explains the
// protocol instead of "unknown command". A switch: a map literal is built by package
// initialisation on every start.
func protocolHelp(action string) string {
	switch action {
	case "get":
		return "reads a server URL on stdin and prints {\"ServerURL\",\"Username\",\"Secret\"} for a served registry, or `credentials not found in native keychain`"
	case "store":
		return "reads {\"ServerURL\",\"Username\",\"Secret\"} on stdin and keeps a pull token (username = its identity id) or remembers a `_token` until it expires"
	case "erase":
		return "reads a server URL on stdin and forgets the pull token, cached tokens and session held for it"
	case "list":
		return "prints {\"<host>\":\"<username>\"} for every served registry that has a credential"
	}
	return ""
}

// protocolHelpCmd is a hidden command that only explains a protocol action: the action itself
// is `docker-credential-cgr <action>` with nothing else on the command line (main.go).
func protocolHelpCmd(action string) *cobra.Command {
	return &cobra.Command{
		Use:    action,
		Hidden: true,
		Short:  "credential-helper protocol: " + action,
		Long: fmt.Sprintf(`%s is an action of the Docker credential-helper protocol, which Docker, crane, helm and the
other clients run: `+"`%s %s`"+` %s.

Clients find the helper through "credHelpers" in their config (`+"`%s configure`"+` writes it).
To try it by hand: printf cgr.dev | %s %s`, action, config.AppName, action, protocolHelp(action), config.AppName, config.AppName, action),
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &UsageError{fmt.Errorf("%s is a protocol action: run it alone, `%s %s`, with its input on stdin (see `%s %s --help`)", action, config.AppName, action, config.AppName, action)}
		},
	}
}

// chainctlWords are chainctl's `auth ...` commands and what they are here.
var chainctlWords = []struct{ chainctl, here string }{
	{"login", "login"},
	{"logout", "logout"},
	{"status", "status"},
	{"configure-docker", "configure --docker"},
	{"token", "auth token"},
}

// chainctlWordsCmd is `auth`, hidden: chainctl's words work here too, and each says the name
// used here on stderr.
func chainctlWordsCmd(a *App) *cobra.Command {
	auth := &cobra.Command{
		Use:    "auth",
		Hidden: true,
		Short:  "chainctl's auth commands, as aliases",
		Args:   subcommandArgs,
		RunE:   func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	for _, w := range chainctlWords {
		if w.chainctl == "token" {
			auth.AddCommand(authTokenCmd(a))
			continue
		}
		target := w
		auth.AddCommand(&cobra.Command{
			Use:                target.chainctl,
			Short:              "chainctl's `auth " + target.chainctl + "`: here `" + config.AppName + " " + target.here + "`",
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				fmt.Fprintf(a.Stderr, "%s: chainctl's `auth %s` is `%s %s` here\n", config.AppName, target.chainctl, config.AppName, target.here)
				root := cmd.Root()
				root.SetArgs(append(strings.Fields(target.here), args...))
				_, err := root.ExecuteC()
				return err
			},
		})
	}
	return auth
}

// authTokenCmd prints a registry token as `chainctl auth token` does: for scripts that pipe it
// to `docker login --password-stdin` or a curl header.
func authTokenCmd(a *App) *cobra.Command {
	var aud string
	cmd := &cobra.Command{
		Use:   "token [--audience AUD]",
		Short: "Print a fresh Chainguard token for the registry (as chainctl auth token)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := a.Deps(ctx)
			if err != nil {
				return err
			}
			if aud == "" {
				aud = d.Settings.Audience
			}
			t, err := token.NewSession(d).Token(ctx, aud)
			if err != nil {
				if err == token.ErrNoCredential {
					return fmt.Errorf("not logged in; run `%s`", token.LoginCommand)
				}
				return err
			}
			fmt.Fprintln(a.Stdout, t.Raw)
			return nil
		},
	}
	cmd.Flags().StringVar(&aud, "audience", "", "audience of the token (default: the registry's)")
	return cmd
}
