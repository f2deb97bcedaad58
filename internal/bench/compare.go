package main

// The "Compared with other helpers" section of `make bench`: docker-credential-cgr next to
// amazon-ecr-credential-helper (docker-credential-ecr-login) and docker-credential-gcr, on
// what can be compared fairly offline. chainctl's helper is not installable offline and is
// not measured (docs/BENCH.md says what its docs say).
//
// Everything that runs the other helpers runs in a network namespace of its own with no
// interface but loopback, left down (`unshare -n`): the bench re-executes itself there as
// `compare-inner`, so every helper (ours too, same conditions) is a child of that process
// and any attempt to reach the cloud (instance metadata at 169.254.169.254, DNS, the ECR or
// Google APIs) fails at once with ENETUNREACH. Nothing leaves the machine. Without a
// namespace (not root and no user namespaces) the section is skipped, never run outside one.

import (
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const (
	callTimeout  = 5 * time.Second // per helper call in the comparison
	notFoundLine = "credentials not found in native keychain"
	ecrHost      = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	gcrHost      = "gcr.io"
	cgrHost      = "cgr.dev"
	foreignHost  = "example.com"
	// Fake credentials seeded for the server-URL matrix. None is real; none is printed: a
	// cell says "token" when the helper handed the seeded secret out.
	fakeAWSKeyID  = "AKIAIOSFODNN7BENCH00"
	fakeECRSecret = "FAKE-ECR-BENCH-PASSWORD"
	fakeGCRSecret = "ya29.FAKE-GCR-BENCH-TOKEN"
	fakeIdentity  = "0123456789abcdef0123456789abcdef01234567/0123456789abcdef"
)

// serverURLForms are server URLs as a client (or an attacker choosing an image reference)
// hands them to a helper, from credhelper/serverurl_test.go, with H the helper's own host.
var serverURLForms = []struct{ tmpl, kind string }{
	{"H", "genuine"},
	{"https://H/v2/", "genuine"},
	{"H/acme/app", "genuine (go-containerregistry)"},
	{"H.evil.com", "foreign: suffix"},
	{"evilH", "foreign: prefix"},
	{"evil.com/H", "foreign: H in the path"},
	{"https://H@evil.com", "foreign: H as userinfo"},
	{"https://evil.com#@H", "foreign: H in the fragment"},
	{"https://evil.com?@H", "foreign: H in the query"},
	{"evil.com", "foreign"},
	{"http://H", "H over plain http"},
	{"H:8443", "H, another port"},
}

func isGenuine(kind string) bool { return strings.HasPrefix(kind, "genuine") }

type competitor struct {
	name, path, host string
	version          string
	stripped         string // its stripped static build, for the like-for-like latency rows
}

// compareOut is what compare-inner hands back to the parent (JSON on stdout).
type compareOut struct {
	Rows   []row      `json:"rows"`
	Matrix [][]string `json:"matrix"`
	Notes  []string   `json:"notes"`
}

func (r row) MarshalJSON() ([]byte, error) {
	return json.Marshal([]string{r.measure, r.cgr, r.baseline, r.ratio, r.target, r.met})
}

func (r *row) UnmarshalJSON(b []byte) error {
	var s []string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if len(s) != 6 {
		return errors.New("row: want 6 cells")
	}
	*r = row{s[0], s[1], s[2], s[3], s[4], s[5]}
	return nil
}

// compare adds the section: sizes here, everything that executes the other helpers in a
// fresh network namespace.
func (b *bench) compare(ecr, gcr string) error {
	header := row{"**Compared with other helpers** (offline; the helpers run in a network namespace with loopback only)", "", "", "", "", ""}
	var cs []competitor
	var missing []string
	for _, c := range []competitor{{name: "ecr-login", path: ecr, host: ecrHost}, {name: "gcr", path: gcr, host: gcrHost}} {
		if c.path == "" {
			continue
		}
		p, err := filepath.Abs(c.path)
		if err == nil {
			_, err = os.Stat(p)
		}
		if err != nil {
			missing = append(missing, c.name)
			continue
		}
		c.path = p
		if bi, err := buildinfo.ReadFile(p); err == nil {
			c.version = bi.Main.Version
		}
		cs = append(cs, c)
	}
	b.add(header)
	if len(cs) == 0 {
		b.add(row{"other helpers", "skipped", "not installed: " + strings.Join(missing, ", ") + " (scripts/competitors.sh)", "–", "–", "not run"})
		return nil
	}
	if err := b.sizes(cs); err != nil { // e.g. not run from the module root
		b.add(row{"binary sizes", "skipped", oneLine(err.Error()), "–", "–", "not run"})
	}
	ns, err := netnsPrefix()
	if err != nil {
		b.add(row{"exec, RSS and server-URL rows", "skipped", err.Error(), "–", "–", "not run"})
		return nil
	}
	args := append(ns, b.self, "compare-inner", "-n", fmt.Sprint(b.n), "-cgr", b.helper, "-cgr-goinstall", filepath.Join(b.tmp, "goinstall", "docker-credential-cgr"))
	for _, c := range cs {
		args = append(args, "-"+c.name, c.path)
		if st := strippedOf(c.path); fileSize(st) > 0 {
			args = append(args, "-"+c.name+"-stripped", st)
		}
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	cmd.Env = os.Environ()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	var co compareOut
	if err := json.Unmarshal(out, &co); err != nil {
		return fmt.Errorf("compare-inner: %w", err)
	}
	b.rows = append(b.rows, co.Rows...)
	var sb strings.Builder
	sb.WriteString("Server-URL forms: what each helper answered (seeded with a fake credential for its own host H / with an empty HOME), in a network namespace with loopback only; net = connect() calls to an IP address seen by strace, all failed (no network):\n\n")
	for i, r := range co.Matrix {
		sb.WriteString("| " + strings.Join(r, " | ") + " |\n")
		if i == 0 {
			sb.WriteString(strings.Repeat("|---", len(r)) + "|\n")
		}
	}
	b.notes = append(b.notes, strings.TrimRight(sb.String(), "\n"))
	b.notes = append(b.notes, co.Notes...)
	return nil
}

// netnsPrefix is the command that runs a program in a new network namespace: `unshare -n`
// as root, else `unshare -r -n` where user namespaces are allowed.
func netnsPrefix() ([]string, error) {
	if _, err := exec.LookPath("unshare"); err != nil {
		return nil, errors.New("no `unshare` (util-linux): the other helpers are only run in a network namespace")
	}
	for _, p := range [][]string{{"unshare", "-n"}, {"unshare", "-r", "-n"}} {
		if exec.Command(p[0], append(p[1:], "true")...).Run() == nil {
			return p, nil
		}
	}
	return nil, errors.New("cannot create a network namespace (needs root or user namespaces): the other helpers are only run in one")
}

// sizes: as each project ships by `go install` (unstripped, cgo as the toolchain defaults),
// ours built the same way, and all stripped static the way our release is built.
func (b *bench) sizes(cs []competitor) error {
	dir := filepath.Join(b.tmp, "goinstall")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ours := filepath.Join(dir, "docker-credential-cgr")
	cmd := exec.Command("go", "build", "-o", ours, ".") // what `go install <module>@version` does
	cmd.Env = os.Environ()
	if o, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (default flags): %v: %s", err, o)
	}
	shipped, plain := fileSize(b.helper), fileSize(ours)
	for _, c := range cs {
		theirs := fileSize(c.path)
		b.add(row{fmt.Sprintf("binary size as shipped: ours `make build` (static, stripped) vs `go install` %s %s (%s)", c.name, c.version, linkage(c.path)), mib(shipped), mib(theirs) + " " + c.name, ratio(time.Duration(shipped), time.Duration(theirs)), "–", "info"})
		b.add(row{fmt.Sprintf("binary size, both by `go build`/`go install` defaults (ours then: %s) vs %s", linkage(ours), c.name), mib(plain), mib(theirs) + " " + c.name, ratio(time.Duration(plain), time.Duration(theirs)), "–", "info"})
		if s := fileSize(strippedOf(c.path)); s > 0 {
			b.add(row{fmt.Sprintf("binary size, both stripped static (`CGO_ENABLED=0 -trimpath -ldflags '-s -w'`) vs %s", c.name), mib(shipped), mib(s) + " " + c.name, ratio(time.Duration(shipped), time.Duration(s)), "–", "info"})
		}
	}
	return nil
}

// strippedOf is where scripts/competitors.sh puts the stripped static build of a helper.
func strippedOf(p string) string { return filepath.Join(filepath.Dir(p), "stripped", filepath.Base(p)) }

// linkage says how a Go binary was built: stripped or not, cgo or static.
func linkage(p string) string {
	var parts []string
	if bi, err := buildinfo.ReadFile(p); err == nil {
		for _, s := range bi.Settings {
			if s.Key == "CGO_ENABLED" {
				if s.Value == "1" {
					parts = append(parts, "cgo, dynamic")
				} else {
					parts = append(parts, "static")
				}
			}
		}
	}
	if out, err := exec.Command("file", "-b", p).Output(); err == nil {
		if strings.Contains(string(out), "not stripped") {
			parts = append(parts, "unstripped")
		} else if strings.Contains(string(out), "stripped") {
			parts = append(parts, "stripped")
		}
	}
	return strings.Join(parts, ", ")
}

// compareInner runs in the network namespace; it prints a compareOut on stdout.
func compareInner(args []string) error {
	fs := flag.NewFlagSet("compare-inner", flag.ExitOnError)
	n := fs.Int("n", 300, "runs per side")
	cgr := fs.String("cgr", "", "docker-credential-cgr")
	cgrPlain := fs.String("cgr-goinstall", "", "docker-credential-cgr built with `go build` defaults")
	ecr := fs.String("ecr-login", "", "docker-credential-ecr-login")
	ecrStripped := fs.String("ecr-login-stripped", "", "its stripped static build")
	gcr := fs.String("gcr", "", "docker-credential-gcr")
	gcrStripped := fs.String("gcr-stripped", "", "its stripped static build")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "cgr-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b := &bench{n: *n, helper: *cgr, tmp: tmp}
	var cs []competitor
	if *ecr != "" {
		cs = append(cs, competitor{name: "ecr-login", path: *ecr, host: ecrHost, stripped: *ecrStripped})
	}
	if *gcr != "" {
		cs = append(cs, competitor{name: "gcr", path: *gcr, host: gcrHost, stripped: *gcrStripped})
	}
	var co compareOut
	note, err := isolated()
	if err != nil {
		return err
	}
	co.Notes = append(co.Notes, note)
	step("compare: no-credential get and list, interleaved with the other helpers")
	b.compareLatency(cs, *cgrPlain)
	step("compare: server-URL forms, seeded and empty")
	matrix, summary, err := b.serverURLMatrix(cs)
	if err != nil {
		return err
	}
	b.rows = append(b.rows, summary...)
	co.Rows, co.Matrix = b.rows, matrix
	return json.NewEncoder(os.Stdout).Encode(co)
}

// isolated checks that this process sees no network but loopback and that a dial to the
// cloud metadata address fails at once.
func isolated() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", err
	}
	var names []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return "", fmt.Errorf("network namespace has interface %s: refusing to run the other helpers", i.Name)
		}
		state := "down"
		if i.Flags&net.FlagUp != 0 {
			state = "up"
		}
		names = append(names, i.Name+" ("+state+")")
	}
	start := time.Now()
	c, err := net.DialTimeout("tcp", "169.254.169.254:80", time.Second)
	if err == nil {
		c.Close()
		return "", errors.New("169.254.169.254 answered inside the namespace: refusing to run the other helpers")
	}
	return fmt.Sprintf("Isolation: the comparison ran in a network namespace with interfaces %s; a dial to 169.254.169.254:80 failed in %s (%v).", strings.Join(names, ", "), ms(time.Since(start)), errors.Unwrap(errors.Unwrap(err))), nil
}

// compareEnv is one isolated user: an empty HOME and nothing that points at a credential.
func compareEnv(home string, extra ...string) []string {
	return append([]string{
		"HOME=" + home,
		"PATH=/usr/bin:/bin",
		"LANG=C",
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"CGR_STORE=file",
		"CGR_AUTO_LOGIN=false",
		"AWS_EC2_METADATA_DISABLED=true",
		"CLOUDSDK_CONFIG=" + filepath.Join(home, "gcloud-empty"),
	}, extra...)
}

func runT(env []string, stdin, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{d: time.Since(start), stdout: out.String(), stderr: errb.String(), err: err}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %s", callTimeout)
	}
	return r
}

func exitCode(r result) string {
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return "exit 0"
	case errors.As(r.err, &ee):
		return fmt.Sprintf("exit %d", ee.ExitCode())
	default:
		return r.err.Error()
	}
}

// answerOf is what a helper printed, on one line, secrets replaced, `|` escaped.
func answerOf(r result) string {
	s := oneLine(r.stdout)
	for _, sec := range []string{fakeECRSecret, fakeGCRSecret} {
		s = strings.ReplaceAll(s, sec, "<seeded>")
	}
	if len(s) > 110 {
		s = s[:110] + "…"
	}
	if s == "" {
		s = "(nothing)"
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`, " + exitCode(r)
}

type side struct {
	label string
	env   []string
	stdin string
	bin   string
	args  []string
	runs  []result
}

func interleave(n int, sides []*side) {
	for _, s := range sides { // warm the page cache
		for range 10 {
			runT(s.env, s.stdin, s.bin, s.args...)
		}
	}
	for i := range n {
		for j := range sides {
			s := sides[(i+j)%len(sides)]
			s.runs = append(s.runs, runT(s.env, s.stdin, s.bin, s.args...))
		}
	}
}

func (b *bench) compareLatency(cs []competitor, cgrPlain string) {
	home := func(name string) string {
		h := filepath.Join(b.tmp, "empty-"+name)
		os.MkdirAll(filepath.Join(h, "gcloud-empty"), 0o700)
		return h
	}
	ourEnv := compareEnv(home("cgr"))
	served := &side{label: "cgr.dev", env: ourEnv, stdin: cgrHost, bin: b.helper, args: []string{"get"}}
	foreign := &side{label: foreignHost, env: ourEnv, stdin: foreignHost, bin: b.helper, args: []string{"get"}}
	sides := []*side{served, foreign}
	var servedPlain *side // ours built as `go install` builds theirs
	if fileSize(cgrPlain) > 0 {
		servedPlain = &side{env: compareEnv(home("cgr-goinstall")), stdin: cgrHost, bin: cgrPlain, args: []string{"get"}}
		sides = append(sides, servedPlain)
	}
	own := map[string]*side{}
	alien := map[string]*side{}
	ownStripped := map[string]*side{}
	for _, c := range cs {
		env := compareEnv(home(c.name))
		own[c.name] = &side{label: c.host, env: env, stdin: c.host, bin: c.path, args: []string{"get"}}
		alien[c.name] = &side{label: foreignHost, env: env, stdin: foreignHost, bin: c.path, args: []string{"get"}}
		sides = append(sides, own[c.name], alien[c.name])
		if fileSize(c.stripped) > 0 {
			ownStripped[c.name] = &side{env: compareEnv(home(c.name + "-stripped")), stdin: c.host, bin: c.stripped, args: []string{"get"}}
			sides = append(sides, ownStripped[c.name])
		}
	}
	interleave(b.n, sides)
	nn := fmt.Sprintf("N=%d, interleaved", b.n)
	for _, c := range cs {
		o, a := own[c.name], alien[c.name]
		b.add(row{fmt.Sprintf("no-credential `get` answer, own host (ours: cgr.dev, nothing configured; %s: %s)", c.name, c.host), answerOf(served.runs[0]), answerOf(o.runs[0]), "–", "–", "info"})
		sd, od := durations(served.runs), durations(o.runs)
		b.add(row{fmt.Sprintf("no-credential `get` of its own host, median (%s)", nn), ms(pct(sd, 50)), ms(pct(od, 50)) + " " + c.name, ratio(pct(sd, 50), pct(od, 50)), "–", "info"})
		b.add(row{"no-credential `get` of its own host, p90", ms(pct(sd, 90)), ms(pct(od, 90)) + " " + c.name, ratio(pct(sd, 90), pct(od, 90)), "–", "info"})
		if servedPlain != nil {
			pd := durations(servedPlain.runs)
			b.add(row{"same, like-for-like build: both `go install` defaults (cgo, dynamic, unstripped), median", ms(pct(pd, 50)), ms(pct(od, 50)) + " " + c.name, ratio(pct(pd, 50), pct(od, 50)), "–", "info"})
		}
		if st := ownStripped[c.name]; st != nil {
			td := durations(st.runs)
			b.add(row{"same, like-for-like build: both stripped static (`CGO_ENABLED=0 -trimpath -s -w`), median", ms(pct(sd, 50)), ms(pct(td, 50)) + " " + c.name, ratio(pct(sd, 50), pct(td, 50)), "–", "info"})
		}
		fd, ad := durations(foreign.runs), durations(a.runs)
		b.add(row{fmt.Sprintf("`get` of a foreign host (%s), median (%s); %s answered %s", foreignHost, nn, c.name, answerOf(a.runs[0])), ms(pct(fd, 50)), ms(pct(ad, 50)) + " " + c.name, ratio(pct(fd, 50), pct(ad, 50)), "–", "info"})
		b.add(row{fmt.Sprintf("`get` of a foreign host (%s), p90", foreignHost), ms(pct(fd, 90)), ms(pct(ad, 90)) + " " + c.name, ratio(pct(fd, 90), pct(ad, 90)), "–", "info"})
	}
	// list, nothing stored.
	ours := &side{env: ourEnv, bin: b.helper, args: []string{"list"}}
	lsides := []*side{ours}
	theirs := map[string]*side{}
	for _, c := range cs {
		theirs[c.name] = &side{env: own[c.name].env, bin: c.path, args: []string{"list"}}
		lsides = append(lsides, theirs[c.name])
	}
	interleave(b.n, lsides)
	for _, c := range cs {
		t := theirs[c.name]
		ld, td := durations(ours.runs), durations(t.runs)
		b.add(row{fmt.Sprintf("`list`, nothing stored, median (%s); answers: ours %s, %s %s", nn, answerOf(ours.runs[0]), c.name, answerOf(t.runs[0])), ms(pct(ld, 50)), ms(pct(td, 50)) + " " + c.name, ratio(pct(ld, 50), pct(td, 50)), "–", "info"})
		b.add(row{"`list`, nothing stored, p90", ms(pct(ld, 90)), ms(pct(td, 90)) + " " + c.name, ratio(pct(ld, 90), pct(td, 90)), "–", "info"})
	}
	// Peak RSS of the no-credential get of each one's own host.
	peak, how := b.peakRSS(served.env, served.stdin, b.helper, "get")
	for _, c := range cs {
		o := own[c.name]
		tp, _ := b.peakRSS(o.env, o.stdin, c.path, "get")
		b.add(row{fmt.Sprintf("peak RSS of the no-credential `get` of its own host (max of 20 runs, %s)", how), mib(peak), mib(tp) + " " + c.name, ratio(time.Duration(peak), time.Duration(tp)), "–", "info"})
	}
}

// seed gives a helper a fake credential for its own host, the way it keeps one, so the
// matrix shows which server URLs it hands that credential to. Nothing touches the network.
func (b *bench) seed(name, home string) ([]string, error) {
	if err := os.MkdirAll(filepath.Join(home, "gcloud-empty"), 0o700); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	switch name {
	case "cgr": // a pull token, stored the way `docker login -u <identity>` stores it
		env := compareEnv(home)
		enc := base64.RawURLEncoding.EncodeToString
		claims, _ := json.Marshal(map[string]any{"iss": "https://issuer.enforce.dev", "sub": fakeIdentity, "aud": cgrHost, "iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()})
		jwt := enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(claims) + "." + enc([]byte("not-a-signature"))
		cred, _ := json.Marshal(map[string]string{"ServerURL": cgrHost, "Username": fakeIdentity, "Secret": jwt})
		if r := runT(env, string(cred), b.helper, "store"); r.err != nil {
			return nil, fmt.Errorf("seeding ours: %v: %s", r.err, oneLine(r.stdout))
		}
		return env, nil
	case "ecr-login": // an unexpired entry in its token cache (~/.ecr/cache.json) for the static key below
		sum := sha256.Sum256([]byte(fakeAWSKeyID))
		key := "us-east-1-" + base64.StdEncoding.EncodeToString(sum[:]) + "-123456789012"
		cache := map[string]any{"Version": "1.0", "Registries": map[string]any{key: map[string]any{
			"AuthorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + fakeECRSecret)),
			"RequestedAt":        now, "ExpiresAt": now.Add(12 * time.Hour),
			"ProxyEndpoint": "https://" + ecrHost, "Service": "ecr",
		}}}
		bs, _ := json.Marshal(cache)
		if err := writeFile(filepath.Join(home, ".ecr", "cache.json"), bs); err != nil {
			return nil, err
		}
		return compareEnv(home, "AWS_ACCESS_KEY_ID="+fakeAWSKeyID, "AWS_SECRET_ACCESS_KEY=fake-not-a-secret"), nil
	case "gcr": // an unexpired access token in its private store (what `gcr-login` keeps)
		bs, _ := json.Marshal(map[string]any{"gcrCreds": map[string]any{"access_token": fakeGCRSecret, "refresh_token": "1//fake", "token_expiry": now.Add(time.Hour)}})
		if err := writeFile(filepath.Join(home, ".config", "gcloud", "docker_credentials.json"), bs); err != nil {
			return nil, err
		}
		return compareEnv(home), nil
	}
	return nil, fmt.Errorf("seed: unknown helper %s", name)
}

func writeFile(p string, bs []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	return os.WriteFile(p, bs, 0o600)
}

var connectRE = regexp.MustCompile(`connect\(\d+, \{sa_family=AF_INET6?, (?:sin6?_port=htons\((\d+)\)), (?:sin_addr=inet_addr\("([^"]+)"\)|[^}]*inet_pton\(AF_INET6, "([^"]+)")`)

// traced runs one call under strace when it is there and lists the IP addresses it tried
// to connect to.
func (b *bench) traced(env []string, stdin, bin string, args ...string) (result, []string) {
	st, err := exec.LookPath("strace")
	if err != nil {
		return runT(env, stdin, bin, args...), nil
	}
	f, err := os.CreateTemp(b.tmp, "strace-")
	if err != nil {
		return runT(env, stdin, bin, args...), nil
	}
	f.Close()
	defer os.Remove(f.Name())
	r := runT(env, stdin, st, append([]string{"-f", "-qq", "-e", "trace=connect", "-o", f.Name(), bin}, args...)...)
	bs, _ := os.ReadFile(f.Name())
	var dials []string
	seen := map[string]bool{}
	for _, m := range connectRE.FindAllStringSubmatch(string(bs), -1) {
		addr := m[2] + m[3] + ":" + m[1]
		if !seen[addr] {
			seen[addr] = true
			dials = append(dials, addr)
		}
	}
	return r, dials
}

// cell classifies one answer: handed out the seeded secret, not found, or another error.
func cell(r result, secret string) string {
	out := strings.TrimSpace(r.stdout)
	switch {
	case r.err != nil && strings.HasPrefix(r.err.Error(), "timed out"):
		return "timeout (5 s)"
	case r.err == nil && secret != "" && strings.Contains(out, secret):
		return "**token**"
	case out == notFoundLine:
		return "not found"
	case r.err == nil:
		return "exit 0: " + answerOf(r)
	default:
		s := oneLine(out)
		if len(s) > 45 {
			s = s[:45] + "…"
		}
		return "error `" + strings.ReplaceAll(s, "|", "\\|") + "`"
	}
}

// ecrLog is what ecr-login logged (~/.ecr/log/ecr-login.log) about one call.
func ecrLog(home string, from int) (string, int) {
	bs, _ := os.ReadFile(filepath.Join(home, ".ecr", "log", "ecr-login.log"))
	if from > len(bs) {
		from = 0
	}
	s := string(bs[from:])
	var what []string
	switch {
	case strings.Contains(s, "Error parsing the serverURL"):
		what = append(what, "log: not an ECR host")
	case strings.Contains(s, "Retrieving credentials"):
		what = append(what, "log: ECR host, fetching credentials")
	}
	if strings.Contains(s, "Calling ECR.GetAuthorizationToken") {
		what = append(what, "tries ECR.GetAuthorizationToken")
	}
	if strings.Contains(s, "Checking file cache") && !strings.Contains(s, "Calling ECR") {
		what = append(what, "served from its cache")
	}
	return strings.Join(what, ", "), len(bs)
}

// serverURLMatrix feeds every form to every helper twice: seeded with a fake credential for
// its own host, and with an empty HOME.
func (b *bench) serverURLMatrix(cs []competitor) ([][]string, []row, error) {
	type subj struct {
		name, host, bin, secret string
		seeded, empty           []string
		seededHome, emptyHome   string
		handed, genuineOK       int
	}
	subjects := []*subj{{name: "cgr", host: cgrHost, bin: b.helper}}
	for _, c := range cs {
		subjects = append(subjects, &subj{name: c.name, host: c.host, bin: c.path})
	}
	header := []string{"form (H = own host)", "kind"}
	for _, s := range subjects {
		var err error
		s.seededHome = filepath.Join(b.tmp, "seeded-"+s.name)
		s.emptyHome = filepath.Join(b.tmp, "matrix-empty-"+s.name)
		if s.seeded, err = b.seed(s.name, s.seededHome); err != nil {
			return nil, nil, err
		}
		os.MkdirAll(filepath.Join(s.emptyHome, "gcloud-empty"), 0o700)
		s.empty = compareEnv(s.emptyHome)
		switch s.name {
		case "cgr":
			// Our secret is the JWT: read it back from our own genuine answer.
			r := runT(s.seeded, s.host, s.bin, "get")
			var c struct{ Username, Secret string }
			if json.Unmarshal([]byte(r.stdout), &c) != nil || c.Username != fakeIdentity || c.Secret == "" {
				return nil, nil, fmt.Errorf("seeded docker-credential-cgr does not serve its pull token: %s", exitCode(r))
			}
			s.secret = c.Secret
			header = append(header, "docker-credential-cgr (H = cgr.dev)")
		case "ecr-login":
			s.secret = fakeECRSecret
			header = append(header, "ecr-login (H = "+s.host+")")
		case "gcr":
			s.secret = fakeGCRSecret
			header = append(header, "gcr (H = "+s.host+")")
		}
	}
	matrix := [][]string{header}
	nGenuine, nHostile := 0, 0
	for _, f := range serverURLForms {
		line := []string{"`" + f.tmpl + "`", f.kind}
		if isGenuine(f.kind) {
			nGenuine++
		} else {
			nHostile++
		}
		for _, s := range subjects {
			in := strings.ReplaceAll(f.tmpl, "H", s.host)
			logFrom := 0
			if s.name == "ecr-login" {
				_, logFrom = ecrLog(s.seededHome, 0)
			}
			rs, dials := b.traced(s.seeded, in, s.bin, "get")
			c := cell(rs, s.secret)
			if c == "**token**" {
				if isGenuine(f.kind) {
					s.genuineOK++
				} else {
					s.handed++
				}
			}
			var extra []string
			if s.name == "ecr-login" {
				if l, _ := ecrLog(s.seededHome, logFrom); l != "" {
					extra = append(extra, l)
				}
			}
			if len(dials) > 0 {
				extra = append(extra, "net: "+strings.Join(dials, ", "))
			}
			if s.name == "ecr-login" {
				_, logFrom = ecrLog(s.emptyHome, 0)
			}
			re, edials := b.traced(s.empty, in, s.bin, "get")
			c += " / " + cell(re, "")
			if s.name == "ecr-login" {
				if l, _ := ecrLog(s.emptyHome, logFrom); l != "" {
					extra = append(extra, "empty: "+l)
				}
			}
			if len(edials) > 0 {
				extra = append(extra, "empty net: "+strings.Join(edials, ", "))
			}
			if len(extra) > 0 {
				c += " (" + strings.Join(extra, "; ") + ")"
			}
			line = append(line, c)
		}
		matrix = append(matrix, line)
	}
	var rows []row
	ours := subjects[0]
	for _, s := range subjects[1:] {
		rows = append(rows,
			row{fmt.Sprintf("server-URL forms: hostile ones answered with the seeded credential (of %d; matrix below; target and met: ours)", nHostile), fmt.Sprintf("%d of %d", ours.handed, nHostile), fmt.Sprintf("%d of %d %s", s.handed, nHostile, s.name), "–", "0", met(ours.handed == 0)},
			row{fmt.Sprintf("server-URL forms: genuine ones answered with the seeded credential (of %d)", nGenuine), fmt.Sprintf("%d of %d", ours.genuineOK, nGenuine), fmt.Sprintf("%d of %d %s", s.genuineOK, nGenuine, s.name), "–", fmt.Sprint(nGenuine), met(ours.genuineOK == nGenuine)})
	}
	return matrix, rows, nil
}
