package clientconfig

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// DefaultSecurePath is sudo's usual secure_path when /etc/sudoers cannot be read or sets none.
const DefaultSecurePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath finds name in the directories of pathList (a PATH value) the way a shell would;
// unlike exec.LookPath it takes the PATH to search, so root's secure_path can be checked.
func LookPath(name, pathList string) (string, bool) { return config.LookPath(name, pathList) }

// lookPathAll is every executable name in pathList, in PATH order, each file once (a PATH
// often names one directory twice, or /bin and /usr/bin that are one).
func lookPathAll(name, pathList string) []string {
	var out []string
	var seen []os.FileInfo
next:
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			continue
		}
		p, ok := config.LookPath(name, dir)
		if !ok {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		for _, s := range seen {
			if os.SameFile(s, fi) {
				continue next
			}
		}
		seen = append(seen, fi)
		out = append(out, p)
	}
	return out
}

// SecurePath reads `Defaults secure_path=...` from the sudoers file and the files of its
// @includedir/#includedir directories (the last setting wins, as in sudo). Parsing `sudo -l`
// would need a password prompt. known is false when nothing could be read or nothing set it;
// then the path returned is DefaultSecurePath.
func SecurePath(sudoers string) (path string, known bool) {
	path = DefaultSecurePath
	var walk func(file string, depth int)
	walk = func(file string, depth int) {
		b, err := os.ReadFile(file)
		if err != nil || depth > 4 {
			return
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			for strings.HasSuffix(line, "\\") && sc.Scan() {
				line = strings.TrimSuffix(line, "\\") + strings.TrimSpace(sc.Text())
			}
			if dir, ok := includeDir(line); ok {
				if !filepath.IsAbs(dir) {
					dir = filepath.Join(filepath.Dir(file), dir)
				}
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					// sudo skips names with a '.' or ending in '~'
					if n := e.Name(); !e.IsDir() && !strings.Contains(n, ".") && !strings.HasSuffix(n, "~") {
						walk(filepath.Join(dir, n), depth+1)
					}
				}
				continue
			}
			if strings.HasPrefix(line, "#") {
				continue
			}
			if v, ok := securePathSetting(line); ok {
				path, known = v, true
			}
		}
	}
	walk(sudoers, 0)
	return path, known
}

func includeDir(line string) (string, bool) {
	for _, p := range []string{"@includedir", "#includedir"} {
		if strings.HasPrefix(line, p+" ") || strings.HasPrefix(line, p+"\t") {
			return strings.TrimSpace(line[len(p):]), true
		}
	}
	return "", false
}

// securePathSetting parses a plain `Defaults secure_path=...` line (not Defaults:user ones,
// which do not apply to every sudo run).
func securePathSetting(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "Defaults")
	if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
		return "", false
	}
	i := strings.Index(rest, "secure_path")
	if i < 0 {
		return "", false
	}
	v := strings.TrimSpace(rest[i+len("secure_path"):])
	v, ok = strings.CutPrefix(v, "=")
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, `"`) {
		if j := strings.Index(v[1:], `"`); j >= 0 {
			return v[1 : j+1], true
		}
		return strings.Trim(v, `"`), true
	}
	if j := strings.IndexAny(v, ", \t"); j >= 0 {
		v = v[:j]
	}
	return v, v != ""
}

// Reach is where clients of one account would find the helper.
type Reach struct {
	Who   string `json:"who"`   // "your PATH" or "root's secure_path (sudo)"
	PATH  string `json:"path"`  // the search path checked
	Found string `json:"found"` // the helper found there (what clients run); "" when not
	// Runs is Found with links followed, when that is another path.
	Runs string `json:"runs,omitempty"`
	// Program is what Found is: "this" (this program), "copy" (another copy of it),
	// "chainctl" (chainctl's link to itself, which answers for cgr.dev in its stead) or
	// "other"; "" when nothing was found.
	Program string `json:"program,omitempty"`
	// Later are the other docker-credential-cgr on the same path, after Found: never run.
	Later []string `json:"later,omitempty"`
	Fix   string   `json:"fix,omitempty"`
	// Level is how bad what Fix fixes is: "fail" (clients cannot run this program) or
	// "warn"; "" when nothing needs fixing.
	Level string `json:"level,omitempty"`
	Saw   string `json:"saw"`
}

// Program kinds of Reach.Program.
const (
	ProgramThis     = "this"
	ProgramCopy     = "copy"
	ProgramChainctl = "chainctl"
	ProgramOther    = "other"
)

// versionPrefix starts the `version` answer of every build of this program (CONTRACT 1.1).
const versionPrefix = HelperBinary + " (github.com/cgrtools/docker-credential-cgr) "

// ReachHelper checks that clients can run the helper: on the PATH clients get (the current
// PATH); under sudo also on root's secure_path, which `sudo docker pull` uses. exe is this
// program's own path (os.Executable), named in the fix.
//
// Clients run the first docker-credential-cgr on the path, links followed. chainctl installs
// docker-credential-cgr as a link to itself: when that link comes first, every pull goes to
// chainctl and this program is never asked, so that is a failure whose fix points the link
// here; when it comes later it is only said.
func ReachHelper(getenv func(string) string, sudo bool, sudoers, exe, userHome string) []Reach {
	return reacher{exe: exe, version: runVersion, writable: dirWritable}.reach(getenv, sudo, sudoers, userHome)
}

// reacher holds what ReachHelper needs beyond its arguments; tests replace version.
type reacher struct {
	exe string
	// version runs `<path> version` and returns its first line ("" when it fails).
	version func(path string) string
	// writable: whether this process may replace files in a directory (else a fix says sudo).
	writable func(dir string) bool
}

func (rc reacher) reach(getenv func(string) string, sudo bool, sudoers, userHome string) []Reach {
	var out []Reach
	install := func(dir string) string {
		src := rc.exe
		if src == "" {
			src = "$(command -v " + HelperBinary + ")"
		}
		return fmt.Sprintf("sudo install -m 0755 %s %s/%s", src, dir, HelperBinary)
	}
	if sudo {
		sp, known := SecurePath(sudoers)
		r := Reach{Who: "root's secure_path (sudo docker pull)", PATH: sp}
		if !known {
			r.Who += ", assumed default"
		}
		if !rc.look(&r, "root's secure_path") {
			r.Saw = fmt.Sprintf("%s is not in any directory of root's secure_path %s", HelperBinary, sp)
			r.Fix, r.Level = install("/usr/local/bin"), "fail"
		}
		out = append(out, r)
		// sudo hides the invoking user's PATH; look where user installs usually land.
		guess := strings.Join([]string{filepath.Join(userHome, ".local", "bin"), filepath.Join(userHome, "go", "bin"),
			filepath.Join(userHome, "bin"), "/usr/local/bin", "/usr/bin", "/bin"}, string(filepath.ListSeparator))
		u := Reach{Who: "your PATH (not visible under sudo; usual directories checked)", PATH: guess}
		if !rc.look(&u, "the usual directories of your PATH") {
			u.Saw = fmt.Sprintf("%s not found in the usual directories of your PATH", HelperBinary)
			u.Fix, u.Level = HelperBinary+" doctor   # without sudo, to check your real PATH", "warn"
		}
		return append(out, u)
	}
	pathList := getenv("PATH")
	r := Reach{Who: "your PATH", PATH: pathList}
	if !rc.look(&r, "your PATH") {
		r.Saw = fmt.Sprintf("%s is not on PATH; Docker, podman and helm run it by that name", HelperBinary)
		if rc.exe != "" && filepath.Base(rc.exe) != HelperBinary {
			r.Saw += fmt.Sprintf(" (this program is %s)", rc.exe)
		}
		r.Fix, r.Level = install("/usr/local/bin"), "fail"
	}
	return append(out, r)
}

// look fills r with what clients run from r.PATH: false when nothing is there.
func (rc reacher) look(r *Reach, where string) bool {
	all := lookPathAll(HelperBinary, r.PATH)
	if len(all) == 0 {
		return false
	}
	first := rc.identify(all[0])
	r.Found, r.Program, r.Later = first.path, first.kind, all[1:]
	if first.resolved != first.path {
		r.Runs = first.resolved
	}
	r.Saw = fmt.Sprintf("%s found at %s", HelperBinary, first.path)
	switch first.kind {
	case ProgramCopy:
		if v := strings.TrimPrefix(first.version, versionPrefix); v != "" {
			r.Saw += fmt.Sprintf(" (another copy of this program, version %s)", v)
		}
	case ProgramOther:
		// Said, not failed: a wrapper script of one's own is a fair thing to put there.
		r.Saw += fmt.Sprintf(" (its `version` does not answer as this program does: %q)", first.version)
	case ProgramChainctl:
		// Point the name clients run at this program; sudo when that directory is not ours.
		target := rc.ours(all[1:])
		r.Saw = fmt.Sprintf("the %s that clients run from %s is chainctl's link to itself (%s → %s): every pull is answered by chainctl, not by this program",
			HelperBinary, where, first.path, first.resolved)
		if target != "" {
			r.Saw += " at " + target
		}
		r.Fix, r.Level = rc.linkFix(target, first.path), "fail"
		return true
	}
	for _, p := range all[1:] {
		if rc.identify(p).kind == ProgramChainctl {
			r.Saw += fmt.Sprintf("; chainctl's link at %s comes later on the path and is not used", p)
			break
		}
	}
	return true
}

// ours is the path to point a shadowing name at: this program as found later on the path
// (so the fix keeps the install the user chose), else this program's own path.
func (rc reacher) ours(later []string) string {
	for _, p := range later {
		if k := rc.identify(p); k.kind == ProgramThis || k.kind == ProgramCopy {
			return k.resolved
		}
	}
	if rc.exe == "" {
		return ""
	}
	if r, err := filepath.EvalSymlinks(rc.exe); err == nil {
		return r
	}
	return rc.exe
}

// linkFix replaces link (chainctl's) with a link to target. chainctl itself is untouched;
// only the name that clients run changes hands.
func (rc reacher) linkFix(target, link string) string {
	if target == "" {
		target = "/path/to/" + HelperBinary
	}
	fix := fmt.Sprintf("ln -sf %s %s", ShellQuote(target), ShellQuote(link))
	if !rc.writable(filepath.Dir(link)) {
		fix = "sudo " + fix
	}
	return fix
}

type program struct {
	path, resolved, kind, version string
}

// identify says what the executable at path is. A link whose target is named chainctl is
// chainctl's own (`chainctl auth configure-docker` makes it); the same file as this program
// is this program; anything else is asked for its `version`.
func (rc reacher) identify(path string) program {
	p := program{path: path, resolved: path}
	if r, err := filepath.EvalSymlinks(path); err == nil {
		p.resolved = r
	}
	base := strings.TrimSuffix(strings.ToLower(filepath.Base(p.resolved)), ".exe")
	if strings.HasPrefix(base, "chainctl") { // chainctl, or a download kept as chainctl_linux_x86_64
		p.kind = ProgramChainctl
		return p
	}
	if rc.exe != "" {
		a, errA := os.Stat(rc.exe)
		b, errB := os.Stat(p.resolved)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			p.kind = ProgramThis
			return p
		}
	}
	p.version = rc.version(p.resolved)
	switch {
	case strings.HasPrefix(p.version, versionPrefix):
		p.kind = ProgramCopy
	case strings.Contains(strings.ToLower(p.version), "chainctl"):
		p.kind = ProgramChainctl // a copy of chainctl under our name
	default:
		p.kind = ProgramOther
	}
	return p
}

// runVersion asks a program found on PATH for its version, bounded: doctor and configure
// must not hang on whatever sits there.
func runVersion(path string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.Map(func(r rune) rune { // a program's answer, printed back: no control characters
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, line)
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
