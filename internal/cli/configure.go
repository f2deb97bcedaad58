package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
)

// configureReport is `configure --json`.
type configureReport struct {
	Changes  []clientconfig.Change  `json:"changes"`
	Warnings []clientconfig.Finding `json:"warnings"`
	Helper   []clientconfig.Reach   `json:"helper"`
}

func init() {
	register("configure", func(a *App) *cobra.Command {
		var docker, containers, helm, remove, dryRun, fix bool
		var wantJSON func() (bool, error)
		cmd := &cobra.Command{
			Use:   "configure [--docker] [--containers] [--helm] [--remove] [--dry-run] [--fix-shadowing]",
			Short: "Wire Docker, containers (podman, skopeo, buildah) and helm to this helper",
			Long: `Write a credHelpers entry {"<host>": "cgr"} for every served registry host into:
  Docker's config.json      $DOCKER_CONFIG/config.json, else ~/.docker/config.json
                            (also read by crane, ko, cosign, nerdctl)
  containers' auth.json     $REGISTRY_AUTH_FILE, else ~/.config/containers/auth.json and, when
                            it exists, $XDG_RUNTIME_DIR/containers/auth.json (read first)
  helm's registry config    $HELM_REGISTRY_CONFIG, else ~/.config/helm/registry/config.json
All three unless flags pick some. Every other key keeps its value, order and formatting; a
file that already says the right thing is not rewritten; --remove deletes only entries that
name this helper. Under sudo, the invoking user's files and root's files are both written.

Warns about what keeps a client from asking the helper: a static secret in "auths" for a
served host (--fix-shadowing deletes those entries), a file read earlier, a credsStore.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				asJSON, err := wantJSON()
				if err != nil {
					return err
				}
				var clients []clientconfig.Client
				for _, c := range []struct {
					on bool
					c  clientconfig.Client
				}{{docker, clientconfig.Docker}, {containers, clientconfig.Containers}, {helm, clientconfig.Helm}} {
					if c.on {
						clients = append(clients, c.c)
					}
				}
				if len(clients) == 0 {
					clients = clientconfig.AllClients
				}
				if remove && fix {
					return &UsageError{errors.New("--remove and --fix-shadowing do not go together")}
				}
				accounts, err := clientconfig.Accounts(a.Getenv)
				if err != nil {
					return err
				}
				hosts := a.Settings.Registries
				opts := clientconfig.Options{Hosts: hosts, Clients: clients, Remove: remove, FixShadowing: fix, DryRun: dryRun}
				r := configureReport{Changes: []clientconfig.Change{}, Warnings: []clientconfig.Finding{}}
				failed := 0
				for _, acct := range accounts {
					for _, c := range clientconfig.Configure(acct, opts) {
						if c.Action == clientconfig.Failed {
							failed++
						}
						r.Changes = append(r.Changes, c)
					}
					if remove {
						continue
					}
					for _, w := range clientconfig.Inspect(acct, hosts, clients) {
						for _, f := range w.Findings {
							// A file that failed to parse is already reported as a change.
							if !failedPath(r.Changes, f.Path) {
								r.Warnings = append(r.Warnings, f)
							}
						}
					}
				}
				if !remove {
					exe, _ := os.Executable()
					sudo := clientconfig.Sudo(a.Getenv)
					userHome := ""
					if sudo {
						userHome = accounts[0].Home
					}
					r.Helper = clientconfig.ReachHelper(a.Getenv, sudo, "/etc/sudoers", exe, userHome)
				}
				if asJSON {
					enc := json.NewEncoder(a.Stdout)
					enc.SetIndent("", "  ")
					if err := enc.Encode(r); err != nil {
						return err
					}
				} else {
					for _, c := range r.Changes {
						if len(accounts) > 1 {
							fmt.Fprintf(a.Stderr, "%s: ", c.Account)
						}
						fmt.Fprintln(a.Stderr, c.Line())
					}
					for _, f := range r.Warnings {
						host := ""
						if f.Host != "" {
							host = " " + f.Host
						}
						fmt.Fprintf(a.Stderr, "%s:%s %s (%s); fix: %s\n", f.Level, host, f.Saw, f.Path, f.Fix)
					}
					for _, h := range r.Helper {
						if h.Fix != "" {
							fmt.Fprintf(a.Stderr, "warn: %s: %s; fix: %s\n", h.Who, h.Saw, h.Fix)
						}
					}
				}
				if failed > 0 {
					return fmt.Errorf("%d config file(s) could not be changed", failed)
				}
				return nil
			},
		}
		f := cmd.Flags()
		f.BoolVar(&docker, "docker", false, "wire Docker's config.json")
		f.BoolVar(&containers, "containers", false, "wire containers' auth.json (podman, skopeo, buildah)")
		f.BoolVar(&helm, "helm", false, "wire helm's registry config")
		f.BoolVar(&remove, "remove", false, "remove this helper's credHelpers entries instead")
		f.BoolVar(&dryRun, "dry-run", false, "say what would change, write nothing")
		f.BoolVar(&fix, "fix-shadowing", false, `also delete "auths" entries holding a static secret for a served host`)
		wantJSON = outputFlags(cmd, "print the changes as JSON on stdout")
		return cmd
	})
}

func failedPath(cs []clientconfig.Change, path string) bool {
	for _, c := range cs {
		if c.Action == clientconfig.Failed && c.Path == path {
			return true
		}
	}
	return false
}
