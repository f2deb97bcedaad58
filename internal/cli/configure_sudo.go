package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// Under sudo, configure writes the invoking user's files as that user and root's as root.
// Root never writes into the user's tree: the user owns every directory and link on the way
// there, so whatever root wrote (following a link to a root-only place, creating a file the
// user then owns) would be the user's choice with root's rights. So the parent, root, runs the
// same command line again as the user (keystore.SudoCommand, role "configure"); that child
// reads the user's settings and files as the user, writes what the user may write, and
// reports to the parent, on its stdout, the served hosts and what it did. The parent then
// wires root's files for those hosts (root's clients run the helper, which re-executes as
// the user and serves the user's hosts) and prints one report. The user's settings are
// never read by root.

// sudoRoleConfigure is the role of configure's child under sudo.
const sudoRoleConfigure = "configure"

// sudoUserReport is what configure's child reports to its parent.
type sudoUserReport struct {
	Hosts    []string               `json:"hosts"`
	Changes  []clientconfig.Change  `json:"changes"`
	Warnings []clientconfig.Finding `json:"warnings"`
}

// configureChild reports whether this run is configure's child under sudo.
func configureChild(a *App) bool { return keystore.SudoRole(a.Getenv) == sudoRoleConfigure }

// configureAsSudoUser runs this command line again as the user who ran sudo and returns what
// it did to that user's files. Its stderr is passed on; when it fails without a report, its
// last line is the error (one line, as every failure of configure).
func configureAsSudoUser(a *App) (sudoUserReport, error) {
	var rep sudoUserReport
	cmd, err := keystore.SudoCommand(a.Getenv, a.Args, sudoRoleConfigure)
	if err != nil {
		return rep, err
	}
	if cmd == nil {
		return rep, errors.New("not a sudo run") // callers check clientconfig.Sudo first
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	code, err := keystore.RunSudoCommand(cmd)
	if err != nil {
		return rep, err
	}
	lines := strings.Split(strings.TrimRight(errb.String(), "\n"), "\n")
	if code != 0 || json.Unmarshal(out.Bytes(), &rep) != nil {
		last := strings.TrimPrefix(lines[len(lines)-1], config.AppName+": ")
		for _, l := range lines[:len(lines)-1] {
			fmt.Fprintln(a.Stderr, l)
		}
		if strings.TrimSpace(last) == "" {
			last = fmt.Sprintf("configuring your files failed (exit status %d)", code)
		}
		return rep, fmt.Errorf("%s; root's files were not changed", last)
	}
	if errb.Len() > 0 {
		_, _ = a.Stderr.Write(errb.Bytes())
	}
	return rep, nil
}

// reportToSudoParent is configure's child's answer: the hosts and what it did, as JSON.
func reportToSudoParent(a *App, hosts []string, r configureReport) error {
	return json.NewEncoder(a.Stdout).Encode(sudoUserReport{Hosts: hosts, Changes: r.Changes, Warnings: r.Warnings})
}
