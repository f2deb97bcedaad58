package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
)

// errDoctorFailed: the report says what failed; the exit status is 1, and stderr gets only this line.
var errDoctorFailed = errors.New("doctor found problems")

func doctorCmd(a *App) *cobra.Command {
	var image string
	var wantJSON func() (bool, error)
	cmd := &cobra.Command{
		Use:   "doctor [--json] [--image REF]",
		Short: "Check everything a pull depends on and say what to run when something is wrong",
		Long: `Check that the helper is on PATH (and on root's secure_path under sudo), that Docker,
containers (podman, skopeo, buildah) and helm send every served host to it and nothing shadows
it (a static secret in "auths", a file read earlier, a credsStore), that the secret store
answers, and the login session and pull tokens. With --image, request a real registry token for
that image with the credential the helper gives, and say why the registry refuses it.

Each line says what was seen and, when something is wrong, the command that fixes it.
Exit status 1 when anything failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, err := wantJSON()
			if err != nil {
				return err
			}
			if image != "" {
				if _, _, err := doctor.SplitImage(image); err != nil {
					return &UsageError{err}
				}
			}
			exe, _ := os.Executable()
			env := doctor.Env{Settings: a.Settings, Getenv: a.Getenv, Executable: exe, ConfigFile: configFile(a)}
			// The credential checks (the chain's sources, clock, image org) and the --image
			// check share one opening of the store, which never starts a login, one listing
			// of the orgs, and one probe of the image.
			creds := &doctor.CredentialChecks{Settings: a.Settings, Deps: a.Deps}
			if image != "" {
				creds.Probe = doctor.NewImageProbe(doctor.ImageOptions{
					Ref:         image,
					Hosts:       a.Settings.Registries,
					Credentials: helperCredentials(a, exe),
					HTTP:        &http.Client{Timeout: 20 * time.Second},
					OrgName:     creds.OrgName,
				})
			}
			checks := append(doctor.Standard(env), creds.Checks(image)...)
			if creds.Probe != nil {
				checks = append(checks, creds.Probe.Check())
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			r := doctor.Run(ctx, checks)
			if asJSON {
				if err := r.WriteJSON(a.Stdout); err != nil {
					return err
				}
			} else {
				r.WriteText(a.Stdout)
			}
			if !r.OK {
				return errDoctorFailed
			}
			return nil
		},
	}
	wantJSON = outputFlags(cmd, "print the report as JSON")
	cmd.Flags().StringVar(&image, "image", "", "also request a registry token for this image, e.g. cgr.dev/<org>/<image>:latest")
	return cmd
}

// configFile is the config.yaml this run reads (config.Load's path), whether or not it exists.
func configFile(a *App) string {
	if a.Settings.ConfigFile != "" {
		return a.Settings.ConfigFile
	}
	dir := a.Flags.ConfigDir
	if dir == "" {
		dir = config.UserConfigDir(a.Getenv)
	}
	return filepath.Join(dir, config.AppName, "config.yaml")
}

// helperCredentials asks the helper for a host's credential exactly as a client does: it runs
// docker-credential-cgr from PATH (this program when it is not there) with `get`, under the
// same settings as this run.
func helperCredentials(a *App, exe string) doctor.Credentials {
	return func(ctx context.Context, host string) (string, string, error) {
		bin, ok := clientconfig.LookPath(clientconfig.HelperBinary, a.Getenv("PATH"))
		if !ok {
			bin = exe
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c := exec.CommandContext(ctx, bin, "get")
		c.Stdin = strings.NewReader(host)
		c.Env = append(os.Environ(),
			"CGR_REGISTRY="+strings.Join(a.Settings.Registries, ","),
			"CGR_ISSUER="+a.Settings.Issuer,
			"CGR_API="+a.Settings.API,
			"CGR_STORE="+a.Settings.Store,
			"CGR_AUTO_LOGIN=false")
		var out bytes.Buffer
		c.Stdout = &out
		c.Stderr = a.Stderr
		err := c.Run()
		line := strings.TrimSpace(out.String())
		if err != nil {
			if strings.Contains(line, "credentials not found") {
				return "", "", nil
			}
			if line == "" {
				line = err.Error()
			}
			return "", "", errors.New(line)
		}
		var cr struct{ Username, Secret string }
		if err := json.Unmarshal(out.Bytes(), &cr); err != nil {
			return "", "", fmt.Errorf("%s get: answer is not JSON", bin)
		}
		return cr.Username, cr.Secret, nil
	}
}
