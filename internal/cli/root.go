// Package cli holds the user commands (login, status, configure, doctor, pull-token, ...).
// Each command lives in its own file as a function that builds it (loginCmd, ...); Root adds
// them, in one list.
package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// App is what every command gets: settings and the process's streams, with the store and the
// token dependencies opened lazily (a command that needs no store never touches the keychain).
type App struct {
	Getenv   func(string) string
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Settings config.Settings
	Flags    config.Flags // global flags, applied over the environment
	// Interactive: stderr is a terminal (a person watches: progress is shown).
	Interactive bool
	// Args is the command line as given (Execute sets it): configure under sudo runs it
	// again as the invoking user.
	Args []string

	// NewDeps builds token.Deps; main sets it (tests may replace it).
	NewDeps func(ctx context.Context, s config.Settings) (token.Deps, error)

	once sync.Once
	deps token.Deps
	err  error
}

// Deps opens the store and returns the token dependencies, once per process.
func (a *App) Deps(ctx context.Context) (token.Deps, error) {
	a.once.Do(func() { a.deps, a.err = a.NewDeps(ctx, a.Settings) })
	return a.deps, a.err
}

// keychainFix words a keychain that cannot be reached for a user command: the cause, and the
// switch to the file store that doctor prints (get's line names doctor instead, to stay short).
func (a *App) keychainFix(err error) error {
	if a.Settings.Store == "file" || !errors.Is(err, keystore.ErrUnavailable) || errors.Is(err, keystore.ErrLocked) {
		return err
	}
	why := err.Error()
	var fe *token.FixableError
	if errors.As(err, &fe) {
		why = fe.Cause
	}
	why = strings.TrimPrefix(why, keystore.ErrUnavailable.Error()+": ")
	env := doctor.Env{Settings: a.Settings, Getenv: a.Getenv, ConfigFile: configFile(a)}
	cause, fix := env.KeychainUnreachable(why)
	return &token.FixableError{Cause: cause, Fix: fix, Err: err}
}

// UsageError marks a usage mistake: exit status 2, usage on stderr.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Root builds the command tree.
func Root(a *App) *cobra.Command {
	root := &cobra.Command{
		Use:   config.AppName,
		Short: "Docker credential helper for the Chainguard registry (cgr.dev)",
		Long: `docker-credential-cgr hands Docker, crane, ko, skopeo, podman, buildah and helm working
credentials for cgr.dev out of the OS keychain, refreshing sessions and renewing pull tokens
before they expire.

Clients call it through the credential-helper protocol (get, store, erase, list). You run:
  docker-credential-cgr login       log in (browser; --headless for a device code)
  docker-credential-cgr configure   wire Docker, containers (podman, skopeo, buildah) and helm
  docker-credential-cgr doctor      say what is wrong and how to fix it`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			s, err := config.Load(a.Getenv, a.Flags)
			if err != nil {
				return err
			}
			a.Settings = s
			return nil
		},
	}
	root.SetIn(a.Stdin)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.Flags.Registry, "registry", "", "registry hosts to serve, comma-separated (env CGR_REGISTRY)")
	pf.StringVar(&a.Flags.Issuer, "issuer", "", "token issuer URL (env CGR_ISSUER)")
	pf.StringVar(&a.Flags.API, "api", "", "platform API URL (env CGR_API)")
	pf.StringVar(&a.Flags.Store, "store", "", "secret store: auto, keychain or file (env CGR_STORE)")

	root.Args = subcommandArgs
	root.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	root.AddCommand(
		loginCmd(a), logoutCmd(a), statusCmd(a), configureCmd(a), doctorCmd(a),
		pullTokenCmd(a), kubeSecretCmd(a), kubeletProviderCmd(a),
		// Hidden: the protocol actions' help, and chainctl's words.
		protocolHelpCmd("get"), protocolHelpCmd("store"), protocolHelpCmd("erase"), protocolHelpCmd("list"),
		chainctlWordsCmd(a),
	)
	usageErrors(root)
	return root
}

// subcommandArgs refuses an argument that names no subcommand, suggesting the closest.
func subcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return &UsageError{errors.New(msg)}
}

// usageErrors makes every argument error of the tree a *UsageError (exit status 2), so that no
// error text of cobra's needs to be read to know it.
func usageErrors(c *cobra.Command) {
	c.SuggestionsMinimumDistance = 2 // a typo of two letters ("logni") is suggested too, as cobra does for the root
	if orig := c.Args; orig != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := orig(cmd, args); err != nil {
				var ue *UsageError
				if errors.As(err, &ue) {
					return err
				}
				return &UsageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		usageErrors(sub)
	}
}

// Execute runs a user command and returns the exit status: 0 success, 1 failure, 2 usage.
func Execute(ctx context.Context, a *App, args []string) int {
	a.Args = args
	root := Root(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		// One line and where the usage is, not the whole usage block.
		fmt.Fprintf(a.Stderr, "%s: %v\n", config.AppName, err)
		path := config.AppName
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(a.Stderr, "Run `%s --help` for usage.\n", path)
		return 2
	}
	fmt.Fprintf(a.Stderr, "%s: %v\n", config.AppName, a.keychainFix(err))
	return 1
}

// DefaultNewDeps opens the configured store and builds the real dependencies.
func DefaultNewDeps(stderr io.Writer, getenv func(string) string) func(context.Context, config.Settings) (token.Deps, error) {
	return func(ctx context.Context, s config.Settings) (token.Deps, error) {
		st, err := keystore.Open(ctx, keystore.Options{Backend: s.Store, Dir: s.StoreDir, Notice: stderr, Getenv: getenv})
		if err != nil {
			// The line get answers with (cause and fix), for every command: a keychain that
			// cannot be reached names doctor, which prints the exact switch to the file store.
			return token.Deps{}, token.StoreFailure(err)
		}
		return token.Deps{
			Settings: s,
			Store:    st,
			// Token endpoints follow no redirect: a refresh token is never replayed to another
			// URL, nor over plain http (CONTRACT 3a). Every request has a context deadline of
			// its call (and a refresh only that of its job).
			HTTP:        &http.Client{CheckRedirect: noRedirect},
			Clock:       token.SystemClock{},
			Stderr:      stderr,
			Rand:        rand.Reader,
			OpenBrowser: token.BrowserOpener(s.Browser, stderr),
			Environ:     os.Environ(),
		}, nil
	}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// outputFlags adds --json and -o/--output (text or json) to a command whose output is data,
// and returns what was asked for: true for JSON, or a usage error for another format.
func outputFlags(cmd *cobra.Command, jsonHelp string) func() (bool, error) {
	var asJSON bool
	var output string
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonHelp)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: text or json")
	return func() (bool, error) {
		switch output {
		case "":
			return asJSON, nil
		case "text":
			return false, nil
		case "json":
			return true, nil
		}
		return false, &UsageError{fmt.Errorf("-o %q: use json or text", output)}
	}
}
