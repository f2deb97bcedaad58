// Command cgr-emulator serves the cgr.dev emulator for the demo and manual
// tests, or (`cgr-emulator browse URL`) acts as a browser for BROWSER=.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "browse" {
		// BROWSER may be called with extra arguments; the URL is the last one.
		if len(args) < 2 {
			fmt.Fprintln(stderr, "usage: cgr-emulator browse URL")
			return 2
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := emulator.Browse(ctx, args[len(args)-1]); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}

	fs := flag.NewFlagSet("cgr-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envFile := fs.String("env-file", "", "also write the environment lines to this file")
	tokenTTL := fs.Duration("token-ttl", 0, "Chainguard token lifetime (default 1h)")
	refreshTTL := fs.Duration("refresh-ttl", 0, "refresh token lifetime (default 720h)")
	registryTTL := fs.Duration("registry-token-ttl", 0, "registry token lifetime (default 5m)")
	deviceFlow := fs.Bool("device-flow", false, "also serve an RFC 8628 device flow and name it in discovery (the real issuer does not)")
	deviceInterval := fs.Duration("device-interval", 0, "device flow poll interval (default 1s)")
	orgIDP := fs.Bool("org-idp", false, "give the default org its own identity provider (for login --org)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage:
  cgr-emulator [flags]       serve cgr.dev, its issuer (REST and gRPC) and platform API on loopback;
                             print their environment (CGR_REGISTRY, CGR_ISSUER, CGR_API, and
                             BROWSER: this program's browse) as lines a shell can source
  cgr-emulator browse URL    a fake browser (for BROWSER=): GET URL and follow redirects, also to
                             a login's loopback callback, until a 2xx page; a headless login's
                             URL signs the emulator's user in

flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "cgr-emulator: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	e, err := emulator.Start(emulator.Options{
		TokenTTL: *tokenTTL, RefreshTTL: *refreshTTL, RegistryTokenTTL: *registryTTL, DeviceInterval: *deviceInterval, DeviceFlow: *deviceFlow,
	})
	if err != nil {
		fmt.Fprintf(stderr, "cgr-emulator: %v\n", err)
		return 1
	}
	defer e.Close()

	var b strings.Builder
	for _, kv := range e.Env() {
		fmt.Fprintf(&b, "export %s\n", kv)
	}
	// The fake browser is this program: `login` opens the emulator's login page with it.
	if exe, err := os.Executable(); err == nil {
		fmt.Fprintf(&b, "export BROWSER=%s\n", shellQuote(exe+" browse"))
	}
	if *envFile != "" {
		if err := os.WriteFile(*envFile, []byte(b.String()), 0o600); err != nil {
			fmt.Fprintf(stderr, "cgr-emulator: %v\n", err)
			return 1
		}
	}
	fmt.Fprint(stdout, b.String())
	if *orgIDP {
		fmt.Fprintf(stderr, "cgr-emulator: org %s signs in through its own identity provider %s\n", e.Org().Name, e.SetOrgIDP(e.Org(), true))
	}
	fmt.Fprintf(stderr, "cgr-emulator: org %s (%s), user %s; public %s, private %s; Ctrl-C to stop\n",
		e.Org().Name, e.Org().ID, e.User().Email, e.PublicImage(), e.PrivateImage())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
