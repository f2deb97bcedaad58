// Command docker-credential-cgr is a Docker credential helper for the Chainguard registry
// (cgr.dev). Docker, crane, ko, skopeo, podman, buildah and helm call it with one protocol
// action (get, store, erase, list, version); people call its commands (login, configure,
// doctor, ...).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker-credential-helpers/credentials"
	"golang.org/x/term"

	"github.com/cgrtools/docker-credential-cgr/credhelper"
	"github.com/cgrtools/docker-credential-cgr/internal/cli"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/coredump"
	"github.com/cgrtools/docker-credential-cgr/internal/lazy"
	// Maps the read-only image at once, before nearly all other packages are initialised.
	_ "github.com/cgrtools/docker-credential-cgr/internal/prefault"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// modulePath is this module's path, printed by `version`.
const modulePath = "github.com/cgrtools/docker-credential-cgr"

// version is set at build time (-ldflags "-X main.version=v1.2.3"); otherwise it comes from
// the module's build info (`go install ...@v1.2.3`).
var version = ""

// getDeadline bounds one `get` (and the other protocol actions): a get that fails does so
// within 10 s whatever the issuer or API do (CONTRACT 1.2), unless a person is there to
// finish an interactive login.
const (
	getDeadline         = 9 * time.Second
	interactiveDeadline = 5 * time.Minute
)

func main() {
	// First, before any secret is in memory: no core dump may hold one, and no other
	// process of the user may read this one's memory. A refusal changes nothing the user
	// could act on, so it is not reported (internal/coredump's test checks it works).
	_ = coredump.Disable()
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	ctx := context.Background()
	if len(args) == 4 && args[0] == token.RefreshAction {
		if uid := getenv("SUDO_UID"); os.Geteuid() == 0 && uid != "" && uid != "0" {
			// Only this program starts a job, as the user it runs as: never one through sudo.
			fmt.Fprintf(stderr, "%s: %s is not a command\n", config.AppName, token.RefreshAction)
			return 2
		}
		return refreshWorker(ctx, args[1:], getenv)
	}

	// Under sudo, work as the invoking user, with that user's settings and store, so
	// `docker pull` and `sudo docker pull` share one login; when that is impossible, stop
	// (never carry on as root with the user's settings). configure splits itself: the user's
	// files written as the user, then root's as root (internal/cli/configure_sudo.go).
	if commandName(args) != "configure" {
		ran, code, err := keystore.SudoReexec(getenv, args, stdin, stdout, stderr)
		if err != nil {
			return sudoStop(args, err, stdout, stderr)
		}
		if ran {
			return code
		}
	}

	interactive := term.IsTerminal(int(os.Stderr.Fd()))
	if len(args) == 1 {
		switch args[0] {
		case "get", "store", "erase", "list":
			return protocol(ctx, args[0], stdin, stdout, stderr, getenv, interactive)
		case "version", "-v", "--version":
			fmt.Fprintf(stdout, "%s (%s) %s\n", config.AppName, modulePath, Version())
			return 0
		}
	}
	// User commands may wait (a browser login): Ctrl-C cancels them cleanly. A protocol
	// action is short and bounded by its deadline, so it skips the signal machinery.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &cli.App{
		Getenv:      getenv,
		Stdin:       stdin,
		Stdout:      stdout,
		Stderr:      stderr,
		Interactive: interactive,
		NewDeps:     detached(cli.DefaultNewDeps(stderr, getenv)),
	}
	return cli.Execute(ctx, app, args)
}

// protocol answers one credential-helper action exactly as docker-credential-helpers does.
func protocol(ctx context.Context, action string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string, interactive bool) int {
	growStack()
	s, err := config.Load(getenv, config.Flags{})
	if err != nil {
		return settingsError(ctx, action, err, stdin, stdout, stderr, getenv)
	}
	deadline := getDeadline
	if interactive && s.AutoLogin && !s.CI {
		deadline = interactiveDeadline
	}
	// The deadline's timer starts only if something waits (lazy.WithDeadline).
	ctx, cancel := lazy.WithDeadline(ctx, time.Now().Add(deadline))
	defer cancel()
	newDeps := detached(cli.DefaultNewDeps(stderr, getenv))
	h := &credhelper.Helper{
		Ctx:       ctx,
		Settings:  s,
		Deps:      func(ctx context.Context) (token.Deps, error) { return newDeps(ctx, s) },
		Stderr:    stderr,
		Hint:      interactive,
		AutoLogin: interactive && s.AutoLogin && !s.CI,
	}
	if action != "get" {
		return credhelper.Handle(h, action, stdin, stdout)
	}
	var out bytes.Buffer
	code := credhelper.Handle(h, action, stdin, &out)
	_, _ = stdout.Write(out.Bytes())
	if code != 0 {
		tellDockerUser(out.String())
	}
	return code
}

// growStack grows this goroutine's stack to what a protocol action needs, once and while it is
// shallow. Left alone, a warm get made the runtime double the stack three times on the way
// down (the token dependencies are passed by value; JSON and reflection are at the bottom),
// each time copying every frame and looking up each one's stack map: 77,000 instructions and
// about ten page faults (callgrind; perf's page faults 383, then 374). One frame of growFrame
// bytes, taken here, makes newstack size the stack to 16 KB in one step with only main's few
// frames to copy, and a warm get then fits (callgrind counts one copy, not three). Nothing
// shrinks it before the process exits: a protocol action ends before any garbage collection.
//
//go:noinline
func growStack() {
	var frame [growFrame]byte
	stackSink = frame[stackIndex] // a read the compiler cannot drop keeps the frame
}

const growFrame = 12 << 10

var (
	stackSink  byte
	stackIndex int
)

// detached makes the dependencies run refreshes and renewals as a child process of this
// program that outlives the caller (token.Exec; docs/DESIGN.md "Kill safety"). The child gets
// this process's environment with the settings as they were resolved (flags included), so it
// works on the same issuer, store and registries.
func detached(newDeps func(context.Context, config.Settings) (token.Deps, error)) func(context.Context, config.Settings) (token.Deps, error) {
	return func(ctx context.Context, s config.Settings) (token.Deps, error) {
		d, err := newDeps(ctx, s)
		if err != nil {
			return d, err
		}
		exe, err := os.Executable()
		if err != nil {
			return d, nil // in-process refreshes
		}
		d.Runner = childRunner{exe: exe, s: s, store: d.Store.Kind()}
		return d, nil
	}
}

// childRunner is token.Exec with the child's environment put together when a job starts:
// a warm get starts none, and copying the environment was work on every get.
type childRunner struct {
	exe   string
	s     config.Settings
	store string
}

func (r childRunner) Run(ctx context.Context, d token.Deps, job token.Job, held []*keystore.Held) error {
	env := append(os.Environ(),
		"CGR_REGISTRY="+strings.Join(r.s.Registries, ","), "CGR_ISSUER="+r.s.Issuer, "CGR_API="+r.s.API,
		"CGR_AUDIENCE="+r.s.Audience, "CGR_STORE="+r.store, "CGR_STORE_DIR="+r.s.StoreDir)
	return token.Exec{Exe: r.exe, Env: env}.Run(ctx, d, job, held)
}

// refreshWorker is the child of token.Exec: it runs one job (kind, its argument) holding the
// locks inherited on fd 4 and on, reports on fd 3, and exits. It is in a session of its own,
// and ignores SIGPIPE so that a caller gone away cannot kill it halfway.
func refreshWorker(ctx context.Context, args []string, getenv func(string) string) int {
	signal.Ignore(syscall.SIGPIPE, syscall.SIGHUP, syscall.SIGINT)
	result := os.NewFile(3, "job-result")
	report := func(err error, warnings string) int {
		if result != nil {
			_ = json.NewEncoder(result).Encode(token.EncodeJobResult(err, warnings))
			_ = result.Close()
		}
		return 0
	}
	n, err := strconv.Atoi(args[2])
	if err != nil || n < 0 || n > 64 {
		return report(fmt.Errorf("bad lock count %q", args[2]), "")
	}
	var held []*keystore.Held
	for i := 0; i < n; i++ {
		held = append(held, keystore.Adopt(os.NewFile(uintptr(4+i), "lock")))
	}
	defer func() {
		for _, h := range held {
			h.Release()
		}
	}()
	job := token.Job{Kind: args[0], Audience: args[1]}
	if job.Kind != "session" {
		job.Host, job.Audience = args[1], ""
	}
	s, err := config.Load(getenv, config.Flags{})
	if err != nil {
		return report(err, "")
	}
	var warnings bytes.Buffer
	d, err := cli.DefaultNewDeps(&warnings, getenv)(ctx, s)
	if err != nil {
		return report(token.StoreFailure(err), "")
	}
	d.Runner = token.InProcess{}
	ctx, cancel := context.WithTimeout(ctx, token.JobTimeout)
	defer cancel()
	return report(token.RunJob(ctx, d, job), warnings.String())
}

// tellDockerUser shows a failed get's line on the user's terminal when the docker CLI asked.
// Docker, unlike crane, skopeo and helm, drops a helper's error and pulls anonymously, so the
// user would see only a bare "unauthorized". Only the docker CLI's child writes there (the
// others print the line themselves), only when the session has a terminal, and never the
// not-found line, which is no error for an anonymous pull.
func tellDockerUser(line string) {
	line = strings.TrimSpace(line)
	if line == "" || line == credentials.NewErrCredentialsNotFound().Error() || !calledByDockerCLI() {
		return
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		return // no controlling terminal: CI, a daemon, cron
	}
	defer tty.Close()
	if !strings.HasPrefix(line, config.AppName+":") {
		line = config.AppName + ": " + line
	}
	fmt.Fprintln(tty, line)
}

// calledByDockerCLI reports whether the process that ran this helper is the docker CLI,
// looking past our own sudo re-exec (Linux only: it reads /proc).
func calledByDockerCLI() bool {
	pid := os.Getppid()
	for range 3 {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			return false
		}
		switch name := strings.TrimSpace(string(comm)); {
		case name == "docker":
			return true
		case strings.HasPrefix(config.AppName, name): // comm is cut to 15 bytes
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return false
			}
			// "pid (comm) state ppid ...": comm may hold spaces, so read after the last ')'.
			rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
			fields := strings.Fields(rest)
			if len(fields) < 2 {
				return false
			}
			if pid, err = strconv.Atoi(fields[1]); err != nil {
				return false
			}
		default:
			return false
		}
	}
	return false
}

// settingsError answers a protocol action when the settings cannot be loaded (a broken
// config.yaml, a bad CGR_STORE, ...). Where the helper is the global credsStore, one broken
// setting must not break pulls from every other registry: get and erase of a host it would not
// serve answer as always (not found; nothing to erase), and only a host it would serve gets the
// error, as one line.
func settingsError(ctx context.Context, action string, loadErr error, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	line := fmt.Errorf("%s: %s", config.AppName, strings.Join(strings.Fields(loadErr.Error()), " "))
	switch action {
	case "list": // list never fails because of what is (not) stored or set
		fmt.Fprintln(stderr, line)
		fmt.Fprintln(stdout, "{}")
		return 0
	case "get", "erase":
		// The served hosts, as far as they can still be known: the default and the raw
		// CGR_REGISTRY (ServedHost matches only real hosts, so a bad entry matches nothing).
		fallback := config.Settings{Registries: []string{config.DefaultRegistry}}
		for _, r := range strings.Split(getenv("CGR_REGISTRY"), ",") {
			fallback.Registries = append(fallback.Registries, strings.ToLower(strings.TrimSpace(r)))
		}
		// The usual protocol path (bounded stdin, the reference's framing): a served host
		// reaches the store, which is where the settings error is answered.
		h := &credhelper.Helper{
			Ctx:      ctx,
			Settings: fallback,
			Deps:     func(context.Context) (token.Deps, error) { return token.Deps{}, line },
			Stderr:   stderr,
		}
		return credhelper.Handle(h, action, stdin, stdout)
	}
	fmt.Fprintln(stdout, line) // one line, as every client prints it
	return 1
}

// valueFlags are the root command's persistent flags that take a value (internal/cli/root.go);
// main_test.go holds this list to the command tree. A slice: a map literal is built by
// package initialisation on every start.
var valueFlags = []string{"registry", "issuer", "api", "store"}

// commandName is the user command that args name, found as cobra finds it: the first
// argument that is neither a flag nor a flag's value, before any "--". It runs before every
// protocol action, so it only reads args and builds no command tree.
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case strings.HasPrefix(a, "--"):
			if name := a[2:]; !strings.Contains(name, "=") && slices.Contains(valueFlags, name) {
				i++ // --flag value
			}
		case a == "" || strings.HasPrefix(a, "-"):
			// -h, --help, "-": no persistent shorthand takes a separate value.
		default:
			return a
		}
	}
	return ""
}

// Version is the -ldflags version, else the module version from the build info.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// sudoStop answers a run that cannot work as the sudo user: one line where its caller looks
// (stdout for a protocol action, as clients print it; stderr for a person), exit 1. list
// answers {} as it does whenever nothing can be listed.
func sudoStop(args []string, err error, stdout, stderr io.Writer) int {
	line := fmt.Sprintf("%s: %s", config.AppName, strings.Join(strings.Fields(err.Error()), " "))
	if len(args) == 1 {
		switch args[0] {
		case "list":
			fmt.Fprintln(stderr, line)
			fmt.Fprintln(stdout, "{}")
			return 0
		case "get", "store", "erase":
			fmt.Fprintln(stdout, line)
			return 1
		}
	}
	fmt.Fprintln(stderr, line)
	return 1
}
