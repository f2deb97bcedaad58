package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// configureReport is `configure --json`.
type configureReport struct {
	Changes  []clientconfig.Change  `json:"changes"`
	Warnings []clientconfig.Finding `json:"warnings"`
	Helper   []clientconfig.Reach   `json:"helper"`
}

func configureCmd(a *App) *cobra.Command {
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
name this helper. Under sudo, the invoking user's files are written by that user (this
program runs again as the user for them), then root's files by root.

Warns about what keeps a client from asking the helper: a static secret in "auths" for a
served host (--fix-shadowing deletes those entries), a file read earlier, a credsStore (and
--fix-shadowing deletes one whose helper is not installed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := wantJSON()
			if err != nil {
				return err
			}
			if remove && fix {
				return &UsageError{errors.New("--remove and --fix-shadowing do not go together")}
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
			return a.configure(clientconfig.Options{Clients: clients, Remove: remove, FixShadowing: fix, DryRun: dryRun}, asJSON)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&docker, "docker", false, "wire Docker's config.json")
	f.BoolVar(&containers, "containers", false, "wire containers' auth.json (podman, skopeo, buildah)")
	f.BoolVar(&helm, "helm", false, "wire helm's registry config")
	f.BoolVar(&remove, "remove", false, "remove this helper's credHelpers entries instead")
	f.BoolVar(&dryRun, "dry-run", false, "say what would change, write nothing")
	f.BoolVar(&fix, "fix-shadowing", false, `also delete "auths" entries holding a static secret for a served host, and a "credsStore" whose helper is not installed`)
	wantJSON = outputFlags(cmd, "print the changes as JSON on stdout")
	return cmd
}

// configure writes the client config files of every account this run is for (under sudo: the
// invoking user's, by that user, then root's) and reports what it changed and what still keeps
// a client from asking the helper.
func (a *App) configure(opts clientconfig.Options, asJSON bool) error {
	accounts, err := clientconfig.Accounts(a.Getenv)
	if err != nil {
		return err
	}
	hosts := a.Settings.Registries
	r := configureReport{Changes: []clientconfig.Change{}, Warnings: []clientconfig.Finding{}}
	failed := 0
	sudo := clientconfig.Sudo(a.Getenv)
	var user sudoUserReport
	if sudo { // the user's files as the user (configure_sudo.go), then root's here
		if user, err = configureAsSudoUser(a); err != nil {
			return err
		}
		if !keystore.SudoShareDisabled(a.Getenv) {
			hosts = user.Hosts // root's runs work as the user, for the user's hosts
		}
	}
	opts.Hosts = hosts
	remove, dryRun, fix, clients := opts.Remove, opts.DryRun, opts.FixShadowing, opts.Clients
	for i, acct := range accounts {
		var changes []clientconfig.Change
		done := clientconfig.Configure
		if sudo && i == 0 {
			done = func(clientconfig.Account, clientconfig.Options) []clientconfig.Change { return user.Changes }
		}
		for _, c := range done(acct, opts) {
			if c.Action == clientconfig.Failed {
				failed++
				if sudo { // run again as it was run: with sudo
					c.Error = strings.ReplaceAll(c.Error, "`"+clientconfig.HelperBinary+" ", "`sudo "+clientconfig.HelperBinary+" ")
				}
			}
			changes = append(changes, c)
		}
		r.Changes = append(r.Changes, changes...)
		if remove {
			continue
		}
		if sudo && i == 0 {
			r.Warnings = append(r.Warnings, user.Warnings...)
			continue
		}
		for _, w := range clientconfig.Inspect(acct, hosts, clients) {
			for _, f := range w.Findings {
				// A file that failed to parse is already reported as a change; in a
				// dry run, what the changes would fix is not a finding.
				if failedPath(changes, f.Path) {
					continue
				}
				if dryRun {
					var stays bool
					if f, stays = afterChanges(changes, f, fix); !stays {
						continue
					}
				}
				if sudo && i > 0 { // root's file: the person at the keyboard is not root
					f.Fix = doctor.SudoFix(f.Fix)
				}
				r.Warnings = append(r.Warnings, f)
			}
		}
	}
	if configureChild(a) {
		return reportToSudoParent(a, hosts, r)
	}
	if !remove {
		exe, _ := os.Executable()
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
				fmt.Fprintf(a.Stdout, "%s: ", c.Account)
			}
			fmt.Fprintln(a.Stdout, c.Line())
		}
		for _, f := range r.Warnings {
			label := string(f.Level) + ":"
			if dryRun { // what would still be in the way after these changes
				label = "would remain:"
			}
			if len(accounts) > 1 {
				label = f.Account + ": " + label
			}
			fmt.Fprintf(a.Stdout, "%s %s (%s); fix: %s\n", label, f.Saw, f.Path, f.Fix)
		}
		for _, h := range r.Helper {
			if h.Fix != "" {
				fmt.Fprintf(a.Stdout, "warn: %s: %s; fix: %s\n", h.Who, h.Saw, h.Fix)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d config file(s) could not be changed", failed)
	}
	return nil
}

// afterChanges is finding f as it would be once the planned changes cs (of f's account) are
// written, and false when they would fix it: its host gets the helper's credHelpers entry in
// f's file, or --fix-shadowing deletes the static secret. A static secret for a host that
// then reaches the helper first stays on disk, unused (a secret keyed by a repository stays in
// use by crane, ko and cosign, or podman, and its finding stands).
func afterChanges(cs []clientconfig.Change, f clientconfig.Finding, fixShadowing bool) (clientconfig.Finding, bool) {
	if f.CredsStore != "" {
		for _, c := range cs {
			if f.StoreMissing && c.Path == f.Path && c.DroppedStore != "" {
				return f, false // --fix-shadowing deletes a credsStore nothing answers
			}
		}
		return f, true // else configure never changes the credsStore
	}
	static := f.StaticKey != ""
	routed := func(c clientconfig.Change) bool {
		return f.Host != "" && c.Action != clientconfig.Failed && (slices.Contains(c.Added, f.Host) || c.Replaced[f.Host] != "")
	}
	for _, c := range cs {
		switch {
		case static && fixShadowing && c.Path == f.Path && c.Action != clientconfig.Failed:
			return f, false
		case !static && c.Path == f.Path && routed(c):
			return f, false
		case static && f.Client == clientconfig.Containers && c.Client == clientconfig.Containers && routed(c):
			// Every file podman reads before this one, and this one if it is among them,
			// would send the host to the helper: the secret is no longer read.
			return f, false
		}
	}
	for _, c := range cs {
		if static && c.Path == f.Path && routed(c) && !f.Repository {
			f.Level = clientconfig.Warn
			f.Saw = fmt.Sprintf("auths[%q] still holds a static secret: unused once credHelpers sends %s to the helper, but it rests on disk and expires unnoticed", f.StaticKey, f.Host)
		}
	}
	return f, true
}

func failedPath(cs []clientconfig.Change, path string) bool {
	for _, c := range cs {
		if c.Action == clientconfig.Failed && c.Path == path {
			return true
		}
	}
	return false
}
