package e2e

// Issue 13's stumbles, each run as a new user meets it (a fresh HOME, the emulator, the file
// store, the fake browser), through the built binary. Each subtest asserts the lines the user
// reads and the exit status, and records what it ran as a transcript; docs/STUMBLES.md is
// those transcripts (CGR_WRITE_DOCS=1 writes it; otherwise the test fails when it is stale).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker-credential-helpers/client"
	"golang.org/x/sys/unix"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// transcript records what a user typed and saw, with the emulator's addresses, temp paths,
// ids and times replaced by placeholders, so the doc is the same from run to run.
type transcript struct {
	t   *testing.T
	w   *world
	b   strings.Builder
	ids []string // identity ids in order of appearance: <identity 1>, <identity 2>, ...
	// more are further (literal, placeholder) pairs, applied first.
	more [][2]string
}

func newTranscript(t *testing.T, w *world) *transcript { return &transcript{t: t, w: w} }

// comment records a line that says what happened outside the binary (an admin deleting an
// identity, a file being damaged). It is never the binary's output.
func (s *transcript) comment(format string, args ...any) {
	fmt.Fprintf(&s.b, "# %s\n", s.norm(fmt.Sprintf(format, args...)))
}

// shown records a command line and its result as the user saw it: stdout, then stderr (each
// line marked), then the exit status.
func (s *transcript) shown(cmdline string, r result) {
	s.b.WriteString("$ " + s.norm(cmdline) + "\n")
	s.output(r)
}

func (s *transcript) output(r result) {
	for _, l := range lines(r.stdout) {
		s.b.WriteString(s.norm(l) + "\n")
	}
	for _, l := range lines(r.stderr) {
		s.b.WriteString("stderr: " + s.norm(l) + "\n")
	}
	fmt.Fprintf(&s.b, "[exit %d]\n", r.code)
	noJWTIn(s.t, "a transcript", r.stdout+r.stderr)
}

// helper runs docker-credential-cgr with args (and extra environment, shown before the
// command as a user would type it) and records it.
func (s *transcript) helper(env []string, args ...string) result {
	s.t.Helper()
	r := runCommand(s.t, append(s.w.environ(), env...), "", "", helperBin, args...)
	s.shown(cmdline(env, "", args), r)
	return r
}

// helperQuiet is helper with stdout sent to /dev/null (it holds a token): only stderr and the
// exit status are shown. The result has both.
func (s *transcript) helperQuiet(env []string, args ...string) result {
	s.t.Helper()
	r := runCommand(s.t, append(s.w.environ(), env...), "", "", helperBin, args...)
	s.b.WriteString("$ " + s.norm(cmdline(env, "", args)) + " > /dev/null\n")
	s.output(result{stderr: r.stderr, code: r.code})
	return r
}

// protocol runs a protocol action with stdin, shown as `printf '%s' ... | docker-credential-cgr get`.
func (s *transcript) protocol(env []string, shownInput, stdin string, action string) result {
	s.t.Helper()
	r := runCommand(s.t, append(s.w.environ(), env...), "", stdin, helperBin, action)
	s.shown(cmdline(env, shownInput, []string{action}), r)
	return r
}

func cmdline(env []string, input string, args []string) string {
	var b strings.Builder
	if input != "" {
		b.WriteString(input + " | ")
	}
	for _, kv := range env {
		b.WriteString(kv + " ")
	}
	b.WriteString("docker-credential-cgr")
	for _, a := range args {
		if strings.ContainsAny(a, " '\"$") {
			a = "'" + a + "'"
		}
		b.WriteString(" " + a)
	}
	return b.String()
}

func lines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

var (
	identityRE     = regexp.MustCompile(`\b[0-9a-f]{40}/[0-9a-f]{16}\b`)
	hex40RE        = regexp.MustCompile(`\b[0-9a-f]{40}\b`)
	timeRE         = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?( UTC|Z)?`)
	inRE           = regexp.MustCompile(`\(in \d+[dhms](\d+[hms])*\)`)
	agoRE          = regexp.MustCompile(`\b\d+[dhms](\d+[hms])* ago\b`)
	loopbackPortRE = regexp.MustCompile(`localhost%3A\d+`)
	codeRE         = regexp.MustCompile(`headless_code=[A-Za-z0-9_-]+`)
	portRE         = regexp.MustCompile(`127\.0\.0\.1:\d+`)
)

// norm replaces what differs from run to run with placeholders.
func (s *transcript) norm(line string) string {
	w := s.w
	for _, p := range s.more {
		line = strings.ReplaceAll(line, p[0], p[1])
	}
	line = identityRE.ReplaceAllStringFunc(line, func(id string) string {
		i := slices.Index(s.ids, id)
		if i < 0 {
			s.ids = append(s.ids, id)
			i = len(s.ids) - 1
		}
		return fmt.Sprintf("<identity %d>", i+1)
	})
	issuerHost := strings.TrimPrefix(w.emu.IssuerURL(), "http://")
	for _, p := range [][2]string{
		{filepath.Dir(helperBin), "$BIN"},
		{w.home, "~"},
		{w.emu.IssuerURL(), "$CGR_ISSUER"},
		{w.emu.APIURL(), "$CGR_API"},
		{w.emu.RegistryHost(), "$CGR_REGISTRY"},
		{strings.ReplaceAll(w.emu.RegistryHost(), ":", "%3A"), "$CGR_REGISTRY"},
		{issuerHost, "<issuer host>"},
		{strings.ReplaceAll(issuerHost, ":", "%3A"), "<issuer host>"},
		{strings.ReplaceAll(issuerHost, ":", "_"), "<issuer host>"},
		{strings.ReplaceAll(w.emu.RegistryHost(), ":", "_"), "$CGR_REGISTRY"},
		{w.emu.Org().ID, "<org id>"},
		{w.emu.User().ID, "<user id>"},
	} {
		line = strings.ReplaceAll(line, p[0], p[1])
	}
	line = hex40RE.ReplaceAllString(line, "<id>")
	line = timeRE.ReplaceAllString(line, "<time>")
	line = inRE.ReplaceAllString(line, "(in <duration>)")
	line = agoRE.ReplaceAllString(line, "<duration> ago")
	line = loopbackPortRE.ReplaceAllString(line, "localhost%3A<port>")
	line = codeRE.ReplaceAllString(line, "headless_code=<code>")
	line = portRE.ReplaceAllString(line, "127.0.0.1:<port>")
	return strings.TrimRight(line, " ")
}

// stumble is one item of issue 13.
type stumble struct {
	n      int
	title  string
	opts   emulator.Options
	before string // as the issue quotes it
	run    func(t *testing.T, s *transcript)
}

// stumbleWorld is a new user's world, wired for every client (as `configure` leaves it), with
// only the binaries on PATH: no browser opener, keychain helper or chainctl of this machine's
// changes what a run shows.
func stumbleWorld(t *testing.T, opts emulator.Options) *world {
	t.Helper()
	w := newWorld(t, opts)
	w.env["PATH"] = filepath.Dir(helperBin)
	w.env["HELM_REGISTRY_CONFIG"] = filepath.Join(w.home, ".config", "helm", "registry", "config.json")
	w.configure()
	// Runs before HOME is removed: a job the helper left running in the background (a pull
	// token's check, a refresh) holds a lock in the store until it is done.
	t.Cleanup(func() { waitForJobs(t, w.storeDir()) })
	return w
}

// waitForJobs waits (up to 10 s) until no lock in the store dir is held.
func waitForJobs(t *testing.T, dir string) {
	locks, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range locks {
		f, err := os.Open(l)
		if err != nil {
			continue
		}
		for unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		f.Close()
	}
}

var stumbleDocs struct {
	sync.Mutex
	after map[int]string
}

func TestStumbles(t *testing.T) {
	stumbleDocs.after = map[int]string{}
	for _, st := range stumbles {
		t.Run(fmt.Sprintf("%02d", st.n), func(t *testing.T) {
			w := stumbleWorld(t, st.opts)
			s := newTranscript(t, w)
			st.run(t, s)
			if t.Failed() {
				t.Logf("what this run showed:\n%s", s.b.String())
			}
			stumbleDocs.Lock()
			stumbleDocs.after[st.n] = s.b.String()
			stumbleDocs.Unlock()
		})
	}
	if t.Failed() {
		return
	}
	checkStumblesDoc(t, stumblesDoc())
}

func stumblesDoc() string {
	var b strings.Builder
	b.WriteString(`# What a new user trips over: before and after

Generated by ` + "`TestStumbles`" + ` (e2e/stumbles_test.go) from issue 13: each stumble a new user hit,
as the issue quotes it ("Before"), and what the built binary prints for the same steps now
("After"), run against the project's emulator as a new user: a fresh HOME and XDG dirs,
` + "`CGR_STORE=file`" + `, ` + "`BROWSER=\"cgr-emulator browse\"`" + ` as the browser, and the emulator's env file
sourced. The test asserts the lines and exit statuses shown here.

In the transcripts, ` + "`$ `" + ` lines are commands as typed; after each come its stdout, then its
stderr (lines marked ` + "`stderr:`" + `), then ` + "`[exit N]`" + `. ` + "`# `" + ` lines say what happened outside the binary.
What differs from run to run is a placeholder: ` + "`$CGR_REGISTRY`, `$CGR_ISSUER`, `$CGR_API`" + ` (the
emulator's addresses, as in its env file), ` + "`<issuer host>`" + `, ` + "`~`" + ` (the user's HOME), ` + "`$BIN`" + ` (where
the binaries are), ` + "`<org id>`, `<user id>`, `<identity N>`, `<time>`, `<duration>`, `<port>`" + `.
No token appears here.

Regenerate: ` + "`CGR_WRITE_DOCS=1 go test -run TestStumbles ./e2e`" + `.
`)
	for _, st := range stumbles {
		fmt.Fprintf(&b, "\n## %d. %s\n\nBefore (issue 13):\n\n", st.n, st.title)
		for _, l := range strings.Split(strings.TrimSpace(st.before), "\n") {
			b.WriteString("> " + l + "\n")
		}
		b.WriteString("\nAfter:\n\n```console\n" + stumbleDocs.after[st.n] + "```\n")
	}
	return b.String()
}

// checkStumblesDoc writes docs/STUMBLES.md with CGR_WRITE_DOCS=1, else fails when it is stale.
func checkStumblesDoc(t *testing.T, doc string) {
	t.Helper()
	path := repoPath("docs", "STUMBLES.md")
	if writeDocs() {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("docs/STUMBLES.md is missing (%v); write it with CGR_WRITE_DOCS=1 go test -run TestStumbles ./e2e", err)
	}
	if string(have) != doc {
		old, now := lines(string(have)), lines(doc)
		i := 0
		for i < len(old) && i < len(now) && old[i] == now[i] {
			i++
		}
		at := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "(end of file)"
		}
		t.Errorf("docs/STUMBLES.md is stale; regenerate it with CGR_WRITE_DOCS=1 go test -run TestStumbles ./e2e\nline %d says\n  %s\nthis run:\n  %s", i+1, at(old), at(now))
	}
}

// expect fails unless r has the exit status and every wanted line (exactly, on stdout or
// stderr as named).
func expect(t *testing.T, what string, r result, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	for _, want := range stdout {
		if !slices.Contains(lines(r.stdout), want) {
			t.Errorf("%s: stdout has no line %q:\n%s", what, want, r.stdout)
		}
	}
	for _, want := range stderr {
		if !slices.Contains(lines(r.stderr), want) {
			t.Errorf("%s: stderr has no line %q:\n%s", what, want, r.stderr)
		}
	}
}

// storeFile is the one file in the store matching glob.
func (w *world) storeFile(t *testing.T, glob string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(w.storeDir(), glob))
	if len(files) != 1 {
		t.Fatalf("%s: %d files in the store, want 1", glob, len(files))
	}
	return files[0]
}

// interrupted starts the helper, waits until its stderr shows marker, then sends SIGINT
// (Ctrl-C) and returns what it printed.
func (w *world) interrupted(t *testing.T, env []string, marker string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, args...)
	cmd.Env = append(w.environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var errb bytes.Buffer
	seen := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			errb.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), marker) {
				once.Do(func() { close(seen) })
			}
		}
	}()
	select {
	case <-seen:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%v: stderr never showed %q", args, marker)
	}
	time.Sleep(200 * time.Millisecond) // as a person reads, then presses Ctrl-C
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	<-done
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// protocolQuiet is protocol with stdout sent to /dev/null (a served credential).
func (s *transcript) protocolQuiet(env []string, shownInput, stdin, action string) result {
	s.t.Helper()
	r := runCommand(s.t, append(s.w.environ(), env...), "", stdin, helperBin, action)
	s.b.WriteString("$ " + s.norm(cmdline(env, shownInput, []string{action})) + " > /dev/null\n")
	s.output(result{stderr: r.stderr, code: r.code})
	return r
}

// reported records what a client library said, as comment lines: real text, not typed.
func (s *transcript) reported(who, text string) {
	s.comment("%s:", who)
	for _, l := range lines(text) {
		s.comment("  %s", l)
	}
	noJWTIn(s.t, "a transcript", text)
}

// getLine is `printf '%s' "$CGR_REGISTRY" | docker-credential-cgr get`, recorded.
func (s *transcript) get(env ...string) result {
	s.t.Helper()
	return s.protocol(env, `printf '%s' "$CGR_REGISTRY"`, s.w.emu.RegistryHost(), "get")
}

// expectPrefix fails unless some line of text starts with prefix.
func expectPrefix(t *testing.T, what, text, prefix string) {
	t.Helper()
	for _, l := range lines(text) {
		if strings.HasPrefix(l, prefix) {
			return
		}
	}
	t.Errorf("%s: no line starts with %q:\n%s", what, prefix, text)
}

// noLine fails when text has the line.
func noLine(t *testing.T, what, text, line string) {
	t.Helper()
	if slices.Contains(lines(text), line) {
		t.Errorf("%s: the line %q is still there:\n%s", what, line, text)
	}
}

func identityIn(t *testing.T, text string) string {
	t.Helper()
	id := identityRE.FindString(text)
	if id == "" {
		t.Fatalf("no identity id in %q", text)
	}
	return id
}

const (
	beforeDamaged = `A **damaged session** (garbage in its file): ` + "`get`" + ` says it is damaged and to log in, but
` + "`status`" + ` says "not logged in" and ` + "`doctor`" + ` only warns and exits 0. A damaged saved pull token
is likewise hidden: ` + "`status`" + ` says "none stored", and ` + "`get`" + `'s suggested fix
(` + "`pull-token create --save`" + `) fails when logged out.`
)

var stumbles = []stumble{
	{n: 1, title: "A damaged session or saved pull token", before: beforeDamaged, run: stumbleDamaged},
	{n: 2, title: `"Identity not found" for a saved pull token`, run: stumbleDeletedIdentity, before: `
**"Identity not found"** for a saved pull token whose identity was deleted: ` + "`get`" + ` keeps serving
it and docker and crane show a bare ` + "`Forbidden`" + `; only ` + "`doctor`" + ` names the cause.`},
	{n: 3, title: "doctor with the issuer down names itself as the fix", run: stumbleIssuerDown,
		opts: emulator.Options{TokenTTL: 2 * time.Second}, before: `
` + "`doctor`" + ` with the issuer down says "fix: docker-credential-cgr doctor" (itself).`},
	{n: 4, title: "logout leaves a saved pull token serving", run: stumbleLogoutPullToken, before: `
` + "`logout`" + ` leaves a saved pull token serving pulls, no longer renewed, and says nothing of it.`},
	{n: 5, title: "Browser login without an opener, Ctrl-C, a second login", run: stumbleLogin, before: `
Browser login without an opener waits 5 minutes silently, then "context deadline exceeded";
Ctrl-C during ` + "`--headless`" + ` says "the code expired"; a second ` + "`login`" + ` reopens the browser
without saying who is logged in.`},
	{n: 6, title: "Settings errors name the wrong source", run: stumbleSettings, before: `
Settings errors name the wrong source: ` + "`store: keychian`" + ` in config.yaml is reported as
` + "`CGR_STORE: \"keychian\" …`" + `; a plain-text config.yaml gives ` + "`cannot unmarshal !!str … into\nmap[string]yaml.Node`" + `; a config dir that is a file (` + "`not a directory`" + `) stops every command,
` + "`get`" + ` included, though the file is optional.`},
	{n: 7, title: "CGR_STORE=keychain without D-Bus", run: stumbleNoDBus, before: `
` + "`CGR_STORE=keychain`" + ` without D-Bus: "no D-Bus session bus", with no fix.`},
	{n: 8, title: "Usage errors", run: stumbleUsage, before: `
Every usage error prints the whole usage block (20 lines); ` + "`pull-token creat`" + ` gets no
suggestion; ` + "`pull-token delete ci2`" + ` is refused though ` + "`list`" + ` shows that NAME; ` + "`get --help`" + ` says
` + "`unknown command \"get\"`" + `.`},
	{n: 9, title: "chainctl's words", run: stumbleChainctlWords, before: `
chainctl's words (` + "`auth login`, `auth status`, `auth logout`, `auth configure-docker`,\n`auth token`" + `) are "unknown command" with no hint; ` + "`pull-token create --repository`" + ` unknown.`},
	{n: 10, title: "The emulator by hand", run: stumbleEmulator, before: `
The emulator is hard to use by hand: the README never says how to run it, ` + "`--help`" + ` does not
list ` + "`browse`" + `, it prints no ` + "`BROWSER=`" + ` line, the clients' plain-http flags are not mentioned.`},
	{n: 11, title: "kube-secret leaves identities behind", run: stumbleKubeSecret, before: `
` + "`kube-secret`" + ` leaves a new identity behind at every run (three runs, three identities),
silently; there is no dry run.`},
	{n: 12, title: "Smaller ones", run: stumbleSmaller, opts: emulator.Options{TokenTTL: 3 * time.Second}, before: `
Smaller: ` + "`status`" + ` exits 0 when not logged in (chainctl's ` + "`auth status`" + ` exits 1); "Cached
tokens: cgr.dev" while the served registry is another host; self-refreshing tokens shown as
"EXPIRED 8s ago"; ` + "`configure`" + ` reports on stderr; the credsStore fix runs a
` + "`docker-credential-desktop`" + ` that is not installed; an auto-login notice that says "run login"
and then "Starting a new login"; errors nested in double backticks by clients.`},
	{n: 13, title: "A server URL over 64 KiB", run: stumbleOverlong, before: `
A server URL over 64 KiB gets ` + "`bufio.Scanner: token too long`" + ` instead of the not-found line
(docker-credential-helpers' reader); read stdin with a limit of your own.`},
	{n: 14, title: "make demo shows only the happy path", run: stumbleDemo, before: `
` + "`make demo`" + ` shows only the happy path: no failure line, no ` + "`doctor`" + `, and its "pull ok"
lines do not say which client pulled.`},
}

func stumbleDamaged(t *testing.T, s *transcript) {
	w := s.w
	host := w.emu.RegistryHost()
	s.helper(nil, "login")
	for _, g := range []string{"session%2F*.secret", "token%2F*%2Fcgr.dev.secret"} {
		w.write(w.storeFile(t, g), "garbage")
	}
	s.comment("the session's file and its cached token in the store are overwritten with garbage")
	r := s.get()
	expect(t, "get, damaged session", r, 1, []string{"your cgr.dev session in the store is damaged (unreadable); run: docker-credential-cgr login"}, nil)
	r = s.helper(nil, "status")
	expect(t, "status, damaged session", r, 1, []string{
		"get answers with:   " + host + ": session, which cannot serve (see Problems)",
		"Session:            stored, but cannot serve (see Problems)",
		"Problems:           your cgr.dev session in the store is damaged (unreadable); run `docker-credential-cgr login`"}, nil)
	r = s.helper(nil, "doctor")
	expect(t, "doctor, damaged session", r, 1, []string{"       fix: docker-credential-cgr login"}, nil)
	s.helper(nil, "login")

	s.helperQuiet(nil, "pull-token", "create", "--save", "--name", "ci")
	w.write(w.storeFile(t, "pull%2F*.secret"), "garbage")
	s.comment("the saved pull token's file is overwritten with garbage")
	r = s.get()
	expect(t, "get, damaged pull token", r, 1, []string{"the pull token stored for " + host + " is damaged (unreadable); run: docker-credential-cgr pull-token create --save"}, nil)
	r = s.helper(nil, "status")
	expect(t, "status, damaged pull token", r, 1, []string{
		"get answers with:   " + host + ": pull token, which cannot serve (see Problems)",
		"Pull tokens:        " + host + ": stored, but cannot serve (see Problems)",
		"Problems:           the pull token stored for " + host + " is damaged (unreadable); run `docker-credential-cgr pull-token create --save`"}, nil)
	r = s.helper(nil, "doctor")
	expect(t, "doctor, damaged pull token", r, 1, []string{"       fix: docker-credential-cgr pull-token create --save"}, nil)
	s.helper(nil, "logout")
	r = s.get()
	expect(t, "get, damaged pull token, logged out", r, 1, []string{"the pull token stored for " + host + " is damaged (unreadable); run: docker-credential-cgr login && docker-credential-cgr pull-token create --save"}, nil)
	s.helper(nil, "login")
	s.helperQuiet(nil, "pull-token", "create", "--save")
	r = s.protocolQuiet(nil, `printf '%s' "$CGR_REGISTRY"`, host, "get")
	expect(t, "get after the fix", r, 0, nil, nil)
}

func stumbleDeletedIdentity(t *testing.T, s *transcript) {
	w := s.w
	host := w.emu.RegistryHost()
	s.helper(nil, "login")
	r := s.helperQuiet(nil, "pull-token", "create", "--save", "--name", "gone")
	id := identityIn(t, r.stdout)
	s.helper(nil, "logout")
	w.emu.DeleteIdentity(id)
	s.comment("an admin deletes the pull token's identity %s at the platform", id)
	// The helper learns of it in the background (at once for a token never checked).
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r := w.helper(host, "get"); r.code != 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r = s.get()
	expect(t, "get, deleted identity", r, 1, []string{"the pull token stored for " + host + " (identity " + id + ") no longer exists at " + w.emu.IssuerURL() +
		" (identity not found: deleted); run: docker-credential-cgr login && docker-credential-cgr pull-token create --save"}, nil)
	if err := w.pull(w.emu.PrivateImage()); err == nil {
		t.Error("go-containerregistry pulled with a deleted identity's token")
	} else {
		s.reported("what crane and ko print (go-containerregistry's DefaultKeychain pulling "+w.emu.PrivateImage()+")", err.Error())
		if !strings.Contains(err.Error(), "no longer exists") {
			t.Errorf("go-containerregistry's error does not carry the helper's line: %v", err)
		}
	}
	r = s.helper(nil, "status")
	expect(t, "status, deleted identity", r, 1, []string{"get answers with:   " + host + ": pull token " + id + ", which cannot serve (see Problems)"}, nil)
	expectPrefix(t, "status, deleted identity", r.stdout, "Problems:           the pull token stored for "+host+" (identity "+id+") no longer exists")
	r = s.helper(nil, "doctor")
	expect(t, "doctor, deleted identity", r, 1, []string{"       fix: docker-credential-cgr login && docker-credential-cgr pull-token create --save --ttl 720h --name gone --parent " + w.emu.Org().ID}, nil)
}

func stumbleIssuerDown(t *testing.T, s *transcript) {
	w := s.w
	s.helper(nil, "login")
	w.emu.SetFault(emulator.Fault{IssuerStatus: 503})
	time.Sleep(2500 * time.Millisecond)
	s.comment("the issuer answers 503 to everything, and the cached token (2 s here) has expired")
	r := s.get()
	expect(t, "get, issuer down", r, 1, nil, nil)
	r = s.helper(nil, "doctor")
	expect(t, "doctor, issuer down", r, 1, nil, nil)
	noLine(t, "doctor, issuer down", r.stdout, "       fix: docker-credential-cgr doctor")
	expectPrefix(t, "doctor, issuer down", r.stdout, "       fix: check that "+w.emu.IssuerURL()+" answers from here")
	w.emu.SetFault(emulator.Fault{})
}

func stumbleLogoutPullToken(t *testing.T, s *transcript) {
	w := s.w
	host := w.emu.RegistryHost()
	s.helper(nil, "login")
	r := s.helperQuiet(nil, "pull-token", "create", "--save", "--name", "ci")
	id := identityIn(t, r.stdout)
	r = s.helper(nil, "logout")
	expect(t, "logout", r, 0, nil, nil)
	expectPrefix(t, "logout", r.stderr, "Note: the pull token stored for "+host+" (identity "+id+") still serves pulls until it expires at ")
	if !strings.Contains(r.stderr, "no longer renewed; `docker-credential-cgr logout --all` forgets it here, `docker-credential-cgr pull-token delete "+id+"` deletes it") {
		t.Errorf("logout does not say how to stop the pull token: %q", r.stderr)
	}
	r = s.helper(nil, "status")
	expect(t, "status after logout", r, 0, nil, nil)
	r = s.helper(nil, "logout", "--all")
	expect(t, "logout --all", r, 0, nil, nil)
	r = s.get()
	expect(t, "get after logout --all", r, 1, []string{notFoundLine}, nil)
}

func stumbleLogin(t *testing.T, s *transcript) {
	w := s.w
	s.comment("no browser opener here (BROWSER empty, no xdg-open on PATH); Ctrl-C once the lines below appear")
	r := w.interrupted(t, []string{"BROWSER="}, "Could not open a browser", "login")
	s.shown("BROWSER= docker-credential-cgr login", r)
	expect(t, "login without an opener", r, 1, nil, []string{
		"Could not open a browser (starting xdg-open: exec: \"xdg-open\": executable file not found in $PATH): open the URL above yourself, or use `docker-credential-cgr login --headless`.",
		"docker-credential-cgr: login cancelled"})
	s.comment("Ctrl-C while a headless login waits")
	r = w.interrupted(t, nil, "Waiting for you to sign in", "login", "--headless")
	s.shown("docker-credential-cgr login --headless", r)
	expect(t, "login --headless, Ctrl-C", r, 1, nil, []string{"docker-credential-cgr: login cancelled"})
	s.helper(nil, "login")
	r = s.helper(nil, "login")
	expect(t, "a second login", r, 0, nil, []string{"Logged in as user@acme.example already; this login replaces that session.", "Logged in as user@acme.example"})
}

func stumbleSettings(t *testing.T, s *transcript) {
	w := s.w
	delete(w.env, "CGR_STORE")
	dir := filepath.Join(w.env["XDG_CONFIG_HOME"], "docker-credential-cgr")
	file := filepath.Join(dir, "config.yaml")
	s.helper([]string{"CGR_STORE=file"}, "login")
	w.write(file, "store: keychian\n")
	s.comment("~/.config/docker-credential-cgr/config.yaml holds the line: store: keychian")
	r := s.helper(nil, "status")
	expect(t, "status, store: keychian", r, 1, nil, []string{"docker-credential-cgr: store in " + file + " line 1: \"keychian\" is not one of auto, keychain, file"})
	r = s.get()
	expect(t, "get, store: keychian", r, 1, []string{"docker-credential-cgr: store in " + file + " line 1: \"keychian\" is not one of auto, keychain, file"}, nil)
	w.write(file, "just some text\n")
	s.comment("config.yaml holds the line: just some text")
	r = s.helper(nil, "status")
	expect(t, "status, plain text", r, 1, nil, []string{"docker-credential-cgr: config file " + file + ": line 1: not a `key: value` setting"})
	os.RemoveAll(dir)
	w.write(dir, "")
	s.comment("~/.config/docker-credential-cgr is an empty file, not a directory")
	r = s.protocolQuiet([]string{"CGR_STORE=file"}, `printf '%s' "$CGR_REGISTRY"`, w.emu.RegistryHost(), "get")
	expect(t, "get, config dir a file", r, 0, nil, nil)
	r = s.helper([]string{"CGR_STORE=file"}, "status")
	expect(t, "status, config dir a file", r, 0, nil, nil)
}

func stumbleNoDBus(t *testing.T, s *transcript) {
	s.comment("no D-Bus session bus: DBUS_SESSION_BUS_ADDRESS unset, no $XDG_RUNTIME_DIR/bus")
	env := []string{"CGR_STORE=keychain"}
	file := filepath.Join(s.w.env["XDG_CONFIG_HOME"], "docker-credential-cgr", "config.yaml")
	noBus := "no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset and no $XDG_RUNTIME_DIR/bus)"
	fix := "unset CGR_STORE && mkdir -p " + filepath.Dir(file) + " && printf 'store: file\\n' >> " + file +
		"   # and drop CGR_STORE from your shell profile; then log in again, into the file store (it starts empty): docker-credential-cgr login"
	line := "docker-credential-cgr: the keychain cannot be reached (CGR_STORE=keychain): " + noBus + "; run: " + fix
	fix = strings.Join(strings.Fields(fix), " ") // doctor prints each line with single spaces
	r := s.helper(env, "status")
	expect(t, "status, no D-Bus", r, 1, nil, []string{line})
	r = s.helper(env, "login")
	expect(t, "login, no D-Bus", r, 1, nil, []string{line})
	r = s.get(env...)
	expect(t, "get, no D-Bus", r, 1, []string{"the secret store is unavailable: " + noBus + "; run: docker-credential-cgr doctor"}, nil)
	r = s.helper(env, "doctor")
	expect(t, "doctor, no D-Bus", r, 1, []string{"[fail] secret store: the keychain cannot be reached (CGR_STORE=keychain): " + noBus, "       fix: " + fix}, nil)
}

func stumbleUsage(t *testing.T, s *transcript) {
	r := s.helper(nil, "pull-token", "creat")
	expect(t, "pull-token creat", r, 2, nil, []string{
		`docker-credential-cgr: unknown command "creat" for "docker-credential-cgr pull-token"; did you mean "create"?`,
		"Run `docker-credential-cgr pull-token --help` for usage."})
	if len(lines(r.stderr)) != 2 {
		t.Errorf("a usage error: %d lines, want 2", len(lines(r.stderr)))
	}
	r = s.helper(nil, "logni")
	expect(t, "logni", r, 2, nil, []string{`docker-credential-cgr: unknown command "logni" for "docker-credential-cgr"; did you mean "login"?`})
	r = s.helper(nil, "status", "--bogus")
	expect(t, "status --bogus", r, 2, nil, []string{"docker-credential-cgr: unknown flag: --bogus", "Run `docker-credential-cgr status --help` for usage."})
	s.helper(nil, "login")
	s.helperQuiet(nil, "pull-token", "create", "--name", "ci2")
	s.helper(nil, "pull-token", "list")
	r = s.helper(nil, "pull-token", "delete", "ci2")
	expect(t, "pull-token delete ci2", r, 0, nil, nil)
	r = s.helper(nil, "get", "--help")
	expect(t, "get --help", r, 0, []string{"get is an action of the Docker credential-helper protocol, which Docker, crane, helm and the"}, nil)
}

func stumbleChainctlWords(t *testing.T, s *transcript) {
	r := s.helper(nil, "auth", "login")
	expect(t, "auth login", r, 0, nil, []string{"docker-credential-cgr: chainctl's `auth login` is `docker-credential-cgr login` here"})
	r = s.helper(nil, "auth", "status")
	expect(t, "auth status", r, 0, nil, []string{"docker-credential-cgr: chainctl's `auth status` is `docker-credential-cgr status` here"})
	r = s.helper(nil, "auth", "configure-docker")
	expect(t, "auth configure-docker", r, 0, nil, []string{"docker-credential-cgr: chainctl's `auth configure-docker` is `docker-credential-cgr configure --docker` here"})
	r = s.helperQuiet(nil, "auth", "token")
	expect(t, "auth token", r, 0, nil, nil)
	if !strings.HasPrefix(r.stdout, "eyJ") {
		t.Errorf("auth token printed no token")
	}
	r = s.helper(nil, "auth", "logout")
	expect(t, "auth logout", r, 0, nil, []string{"docker-credential-cgr: chainctl's `auth logout` is `docker-credential-cgr logout` here"})
	r = s.helper(nil, "pull-token", "create", "--repository", "acme.example/app")
	expect(t, "pull-token create --repository", r, 2, nil, nil)
	expectPrefix(t, "pull-token create --repository", r.stderr, `docker-credential-cgr: --repository "acme.example/app": a pull token grants registry.pull on its whole organization`)
}

func stumbleEmulator(t *testing.T, s *transcript) {
	w := s.w
	r := runCommand(t, w.environ(), "", "", emulatorBin, "--help")
	s.shown("cgr-emulator --help", r)
	expect(t, "cgr-emulator --help", r, 0, nil, []string{"  cgr-emulator browse URL    a fake browser (for BROWSER=): GET URL and follow redirects, also to"})

	envFile := filepath.Join(w.home, "cgr.env")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, emulatorBin, "--env-file", envFile)
	cmd.Env = w.environ()
	var out bytes.Buffer
	cmd.Stdout = &out
	pr, pw, _ := os.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var errb strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		errb.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "Ctrl-C to stop") {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGINT)
	go func() {
		for sc.Scan() {
		}
	}()
	err := cmd.Wait()
	er := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		er.code = ee.ExitCode()
	}
	// Its own addresses are placeholders too.
	for _, l := range lines(er.stdout) {
		k, v, ok := strings.Cut(strings.TrimPrefix(l, "export "), "=")
		if !ok || !strings.HasPrefix(k, "CGR_") {
			continue
		}
		if k == "CGR_ISSUER" {
			s.more = append(s.more, [2]string{strings.TrimPrefix(v, "http://"), "<issuer host>"})
		}
		s.more = append([][2]string{{v, "$" + k}}, s.more...)
	}
	sort := func(p [][2]string) { slices.SortFunc(p, func(a, b [2]string) int { return len(b[0]) - len(a[0]) }) }
	sort(s.more)
	s.comment("Ctrl-C once it serves")
	s.shown("cgr-emulator --env-file ~/cgr.env", er)
	file, err := os.ReadFile(envFile)
	if err != nil || string(file) != er.stdout {
		t.Errorf("the env file (%v) is not what the emulator printed:\n%s", err, file)
	}
	if !slices.Contains(lines(er.stdout), "export BROWSER='"+emulatorBin+" browse'") {
		t.Errorf("the emulator prints no BROWSER line:\n%s", er.stdout)
	}

	readme, err := os.ReadFile(repoPath("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Try it offline\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if !ok {
		t.Fatal(`README.md has no "## Try it offline" section`)
	}
	for _, want := range []string{"go run ./internal/emulator/cmd/cgr-emulator --env-file /tmp/cgr.env", "BROWSER", ". /tmp/cgr.env",
		"insecure-registries", "crane", "--insecure", "--tls-verify=false", "--src-tls-verify=false", "podman", "helm", "--plain-http", "oras", "regctl registry set --tls disabled"} {
		if !strings.Contains(section, want) {
			t.Errorf(`README's "Try it offline" does not say %q`, want)
		}
	}
	s.comment(`README.md has a section "Try it offline": the emulator, BROWSER, the env file, and each client's flag for its plain-http loopback registry`)
}

func stumbleKubeSecret(t *testing.T, s *transcript) {
	w := s.w
	s.helper(nil, "login")
	r := s.helper(nil, "kube-secret", "--dry-run")
	expect(t, "kube-secret --dry-run", r, 0, nil, nil)
	if r.stdout != "" || len(w.emu.Identities(w.emu.Org())) != 0 {
		t.Errorf("--dry-run printed a Secret or created an identity")
	}
	for i := 0; i < 3; i++ {
		r = s.helperQuiet(nil, "kube-secret")
		expect(t, "kube-secret", r, 0, nil, nil)
		if !strings.Contains(r.stdout, "kubernetes.io/dockerconfigjson") {
			t.Errorf("kube-secret printed no Secret")
		}
	}
	r = s.helper(nil, "kube-secret", "--dry-run")
	expect(t, "kube-secret --dry-run, again", r, 0, nil, nil)
	s.helper(nil, "pull-token", "list")
	if n := len(w.emu.Identities(w.emu.Org())); n != 1 {
		t.Errorf("three kube-secret runs left %d identities, want 1", n)
	}
}

func stumbleSmaller(t *testing.T, s *transcript) {
	w := s.w
	host := w.emu.RegistryHost()
	s.comment("status before any login")
	r := s.helper(nil, "status")
	expect(t, "status, not logged in", r, 1, nil, []string{"docker-credential-cgr: no usable credential"})
	s.helper(nil, "login")
	time.Sleep(3500 * time.Millisecond)
	s.comment("the access tokens (3 s here) expire; the session refreshes them at the next use")
	r = s.helper(nil, "status")
	expect(t, "status, expired self-refreshing tokens", r, 0, nil, nil)
	expectPrefix(t, "status", r.stdout, "Cached tokens:      audience cgr.dev, expired ")
	if strings.Contains(r.stdout, "EXPIRED") || !strings.Contains(r.stdout, "(renewed at the next use)") {
		t.Errorf("status shows a self-refreshing token as EXPIRED:\n%s", r.stdout)
	}
	r = s.helper(nil, "configure")
	expect(t, "configure", r, 0, nil, nil)
	if r.stdout == "" || r.stderr != "" {
		t.Errorf("configure reports on stderr: stdout %q, stderr %q", r.stdout, r.stderr)
	}

	cfg := filepath.Join(w.env["DOCKER_CONFIG"], "config.json")
	wired, _ := os.ReadFile(cfg)
	w.write(cfg, fmt.Sprintf(`{"credsStore":"desktop","credHelpers":{%q:"cgr"}}`, host))
	s.comment(`~/.docker/config.json says "credsStore": "desktop" (left by a Docker Desktop no longer installed) beside the credHelpers entry`)
	if err := w.pull(w.emu.PrivateImage()); err != nil {
		s.reported("what crane and ko print (go-containerregistry's DefaultKeychain pulling "+w.emu.PrivateImage()+")", err.Error())
	}
	r = s.helper(nil, "doctor")
	expect(t, "doctor, credsStore desktop not installed", r, 1, []string{
		"[fail] docker config: " + cfg + `: credsStore "desktop" names docker-credential-desktop, which is not on PATH: crane, ko and cosign stop at it for every ` + host + "/<repo> (error getting credentials … executable file not found)",
		"       fix: docker-credential-cgr configure --docker --fix-shadowing"}, nil)
	noLine(t, "doctor", r.stdout, "       fix: printf %s "+host+" | docker-credential-desktop erase")
	r = s.helper(nil, "configure", "--docker", "--fix-shadowing")
	expect(t, "configure --docker --fix-shadowing", r, 0, []string{cfg + ` (docker): updated: deleted credsStore "desktop" (docker-credential-desktop is not installed)`}, nil)
	if err := w.pull(w.emu.PrivateImage()); err != nil {
		t.Errorf("go-containerregistry after the fix: %v", err)
	} else {
		s.comment("go-containerregistry (crane, ko) pulls %s again", w.emu.PrivateImage())
	}
	w.write(cfg, string(wired))

	w.emu.RevokeRefreshTokens()
	time.Sleep(3500 * time.Millisecond)
	s.comment("the issuer revokes the session, and the cached token expires")
	_, err := client.Get(w.program(), host)
	if err == nil {
		t.Fatal("docker-credential-helpers' client got a credential from a revoked session")
	}
	s.reported("what the docker CLI prints (docker-credential-helpers' client, as docker runs it)", err.Error())
	if strings.Contains(err.Error(), "``") || strings.Count(err.Error(), "`") != 2 {
		t.Errorf("the client's error nests backticks: %q", err)
	}
	r, screen := w.getAtTerminal(host, "CGR_AUTO_LOGIN=true")
	s.comment("the same get with stderr on a terminal, CGR_AUTO_LOGIN=true (the default); what the terminal showed:")
	s.shown(`printf '%s' "$CGR_REGISTRY" | docker-credential-cgr get > /dev/null`, result{stderr: screen, code: r.code})
	expect(t, "auto-login at a terminal", r, 0, nil, nil)
	if strings.Contains(screen, "run: docker-credential-cgr login") || strings.Contains(screen, "run `docker-credential-cgr login`") {
		t.Errorf("the auto-login notice says to run login while it logs in:\n%s", screen)
	}
}

func stumbleOverlong(t *testing.T, s *transcript) {
	w := s.w
	s.helper(nil, "login")
	r := s.protocol(nil, `printf '%s/%070000d' "$CGR_REGISTRY" 0`, w.emu.RegistryHost()+"/"+strings.Repeat("0", 70000), "get")
	expect(t, "get, 70 KB", r, 1, []string{"credentials not found in native keychain"}, nil)
	r = s.protocol(nil, `head -c 1100000 /dev/zero`, strings.Repeat("\x00", 1100000), "store")
	expect(t, "store, 1.1 MB", r, 1, []string{`stdin is over 1048576 bytes: docker-credential-cgr store reads one small JSON object {"ServerURL","Username","Secret"}`}, nil)
}

func stumbleDemo(t *testing.T, s *transcript) {
	w := s.w
	dir := t.TempDir()
	demo := filepath.Join(dir, "demo")
	if r := runCommand(t, os.Environ(), repoRoot, "", "go", "build", "-o", demo, "./internal/demo"); r.code != 0 {
		t.Fatalf("building the demo: %s", r.stderr)
	}
	// Only the helper on PATH: the demo pulls with go-containerregistry alone (it adds docker
	// pull where an Engine answers), so the run reads the same everywhere.
	env := append(w.environ(), "PATH="+filepath.Dir(helperBin))
	r := runCommand(t, env, dir, "", demo, "-helper", helperBin, "-for", "2s", "-token-ttl", "2s")
	if r.code != 0 {
		t.Fatalf("demo: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	out := r.stdout
	for _, want := range []string{"  go-containerregistry   pull ok", "$ docker-credential-cgr doctor", "  (exit 1)", "running the fix doctor names:"} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo does not show %q:\n%s", want, out)
		}
	}
	_, excerpt, ok := strings.Cut(out, "now the issuer revokes the session")
	excerpt, _, ok2 := strings.Cut(excerpt, "\n\n")
	if !ok || !ok2 {
		t.Fatalf("the demo shows no failure and fix:\n%s", out)
	}
	// The demo runs an emulator of its own: its addresses and temp HOME are placeholders.
	demoHome := regexp.MustCompile(`/[^ ]*/cgr-demo-[0-9]+`)
	s.comment("go run ./internal/demo (what make demo runs), its lines from the failure on:")
	for _, l := range lines("now the issuer revokes the session" + excerpt) {
		l = demoHome.ReplaceAllString(l, "<demo HOME>")
		l = strings.ReplaceAll(l, filepath.Dir(helperBin), "$BIN")
		l = portRE.ReplaceAllString(l, "127.0.0.1:<port>")
		s.b.WriteString(s.norm(l) + "\n")
	}
	noJWTIn(t, "the demo's excerpt", excerpt) // (the demo shows a pull token's first characters later)
}
