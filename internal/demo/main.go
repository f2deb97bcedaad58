// Command demo shows docker-credential-cgr at work, offline: it starts the project's
// emulator of cgr.dev, logs in through a fake browser, wires the clients, and pulls a
// private image again and again while access tokens expire every few seconds.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "browse" { // we are the fake browser
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := emulator.Browse(ctx, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "browser:", err)
			os.Exit(1)
		}
		return
	}
	helper := flag.String("helper", "bin/docker-credential-cgr", "the helper binary")
	ttl := flag.Duration("token-ttl", 6*time.Second, "lifetime of access tokens")
	soak := flag.Duration("for", 20*time.Second, "how long to keep pulling")
	flag.Parse()
	if err := demo(*helper, *ttl, *soak); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func demo(helper string, ttl, soak time.Duration) error {
	helper, err := filepath.Abs(helper)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	emu, err := emulator.Start(emulator.Options{TokenTTL: ttl})
	if err != nil {
		return err
	}
	defer emu.Close()
	home, err := os.MkdirTemp("", "cgr-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)

	// A user of our own: HOME, configs and store under a temp dir; the helper on PATH.
	env := map[string]string{
		"HOME":                 home,
		"DOCKER_CONFIG":        filepath.Join(home, ".docker"),
		"REGISTRY_AUTH_FILE":   filepath.Join(home, ".config", "containers", "auth.json"),
		"XDG_CONFIG_HOME":      filepath.Join(home, ".config"),
		"XDG_DATA_HOME":        filepath.Join(home, ".local", "share"),
		"HELM_REGISTRY_CONFIG": filepath.Join(home, ".config", "helm", "registry", "config.json"),
		"CGR_STORE":            "file",
		"CGR_AUTO_LOGIN":       "false",
		"BROWSER":              self + " browse",
		"PATH":                 filepath.Dir(helper) + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	for _, kv := range emu.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for k, v := range env {
		os.Setenv(k, v)
	}
	os.Unsetenv("DBUS_SESSION_BUS_ADDRESS")

	fmt.Printf("emulator: registry %s, issuer %s, api %s\n", emu.RegistryHost(), emu.IssuerURL(), emu.APIURL())
	fmt.Printf("access tokens live %s; the helper refreshes them once less than half their life is left (at most 15 minutes before they expire, for hourly tokens)\n\n", ttl)

	if err := step(helper, "login"); err != nil {
		return err
	}
	if err := step(helper, "configure"); err != nil {
		return err
	}
	img := emu.PrivateImage()
	ref, err := name.ParseReference(img, name.Insecure)
	if err != nil {
		return err
	}
	engine := exec.Command("docker", "info").Run() == nil
	how := "go-containerregistry (as crane and ko do)"
	if engine {
		how += " and the Docker Engine (docker pull)"
	}
	fmt.Printf("\npulling %s every second for %s through %s:\n", img, soak, how)
	emu.ResetCounts()
	start := time.Now()
	var pulls, failures int
	pullOnce := func(label func(client, status string)) {
		for _, client := range clients(engine) {
			err := pullWith(client, ref, img)
			pulls++
			status := "ok"
			if err != nil {
				failures++
				status = "FAILED: " + err.Error()
			}
			label(client, status)
		}
	}
	for time.Since(start) < soak {
		pullOnce(func(client, status string) {
			fmt.Printf("  t=%4.1fs  %-22s pull %-3s  refreshes so far: %d\n", time.Since(start).Seconds(), client, status, emu.Count("sts/exchange_refresh_token"))
		})
		time.Sleep(time.Second)
	}
	if engine {
		exec.Command("docker", "rmi", "-f", img).Run()
	}
	refreshes := emu.Count("sts/exchange_refresh_token")
	fmt.Printf("\n%d pulls, %d failures, %d token refreshes (one per expiry), %d logins\n\n", pulls, failures, refreshes, emu.Count("oauth"))

	if failures > 0 {
		return fmt.Errorf("%d pulls failed", failures)
	}

	// A failure and its fix: the session is revoked at the issuer (as when an admin removes
	// the account's sessions), and the cached token runs out.
	fmt.Printf("now the issuer revokes the session, and the cached token expires (%s):\n", ttl)
	emu.RevokeRefreshTokens()
	time.Sleep(ttl)
	if err := stepMayFail(helper, emu.RegistryHost(), "get"); err != nil {
		return err
	}
	fmt.Println("  (crane, skopeo and helm print that line; docker run at a terminal shows it too)")
	if err := stepMayFail(helper, "", "doctor"); err != nil {
		return err
	}
	fmt.Println("running the fix doctor names:")
	if err := step(helper, "login"); err != nil {
		return err
	}
	failures = 0
	pullOnce(func(client, status string) { fmt.Printf("  %-22s pull %s\n", client, status) })
	if failures > 0 {
		return fmt.Errorf("%d pulls failed after the fix", failures)
	}
	fmt.Println()

	if err := step(helper, "pull-token", "create", "--ttl", "1h", "--save"); err != nil {
		return err
	}
	if err := stepMayFail(helper, "", "status"); err != nil {
		return err
	}
	return nil
}

// clients are the clients the demo pulls with.
func clients(engine bool) []string {
	c := []string{"go-containerregistry"}
	if engine {
		c = append(c, "docker pull")
	}
	return c
}

// pullWith pulls img with one client through the helper.
func pullWith(client string, ref name.Reference, img string) error {
	if client == "docker pull" {
		if out, err := exec.Command("docker", "pull", "-q", img).CombinedOutput(); err != nil {
			return fmt.Errorf("docker pull: %s", bytes.TrimSpace(out))
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx))
	return err
}

// stepMayFail runs a helper command whose failure is part of the story: shown with its exit
// status, never an error of the demo.
func stepMayFail(helper, stdin string, args ...string) error {
	if stdin != "" {
		fmt.Printf("$ printf %s | docker-credential-cgr %s\n", stdin, strings.Join(args, " "))
	} else {
		fmt.Printf("$ docker-credential-cgr %s\n", strings.Join(args, " "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helper, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return err
	}
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			fmt.Println("  " + redact(line))
		}
	}
	if ee != nil {
		fmt.Printf("  (exit %d)\n", ee.ExitCode())
	}
	return nil
}

// step runs one helper command as a user would, showing it and what it printed.
func step(helper string, args ...string) error {
	fmt.Printf("$ docker-credential-cgr %s\n", strings.Join(args, " "))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helper, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			fmt.Println("  " + redact(line))
		}
	}
	if err != nil {
		return fmt.Errorf("docker-credential-cgr %s: %w", args[0], err)
	}
	return nil
}

// redact keeps a token out of the demo's output: a JWT is shown by its first characters.
func redact(line string) string {
	fields := strings.Fields(line)
	for _, f := range fields {
		f = strings.Trim(f, `'"`+"`,;") // a quoted token keeps its quotes
		if strings.Count(f, ".") == 2 && len(f) > 100 {
			line = strings.ReplaceAll(line, f, f[:12]+"…(redacted)")
		}
	}
	return line
}
