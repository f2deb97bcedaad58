package clientconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// DefaultSecurePath is sudo's usual secure_path when /etc/sudoers cannot be read or sets none.
const DefaultSecurePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// LookPath finds name in the directories of pathList (a PATH value) the way a shell would;
// unlike exec.LookPath it takes the PATH to search, so root's secure_path can be checked.
func LookPath(name, pathList string) (string, bool) { return config.LookPath(name, pathList) }

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
	Found string `json:"found"` // the helper found there; "" when not
	Fix   string `json:"fix,omitempty"`
	Saw   string `json:"saw"`
}

// ReachHelper checks that clients can run the helper: on the PATH clients get (the current
// PATH); under sudo also on root's secure_path, which `sudo docker pull` uses. exe is this
// program's own path (os.Executable), named in the fix.
func ReachHelper(getenv func(string) string, sudo bool, sudoers, exe, userHome string) []Reach {
	var out []Reach
	install := func(dir string) string {
		src := exe
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
		if p, ok := LookPath(HelperBinary, sp); ok {
			r.Found, r.Saw = p, fmt.Sprintf("%s found at %s", HelperBinary, p)
		} else {
			r.Saw = fmt.Sprintf("%s is not in any directory of root's secure_path %s", HelperBinary, sp)
			r.Fix = install("/usr/local/bin")
		}
		out = append(out, r)
		// sudo hides the invoking user's PATH; look where user installs usually land.
		guess := strings.Join([]string{filepath.Join(userHome, ".local", "bin"), filepath.Join(userHome, "go", "bin"),
			filepath.Join(userHome, "bin"), "/usr/local/bin", "/usr/bin", "/bin"}, string(filepath.ListSeparator))
		u := Reach{Who: "your PATH (not visible under sudo; usual directories checked)", PATH: guess}
		if p, ok := LookPath(HelperBinary, guess); ok {
			u.Found, u.Saw = p, fmt.Sprintf("%s found at %s", HelperBinary, p)
		} else {
			u.Saw = fmt.Sprintf("%s not found in the usual directories of your PATH", HelperBinary)
			u.Fix = HelperBinary + " doctor   # without sudo, to check your real PATH"
		}
		return append(out, u)
	}
	pathList := getenv("PATH")
	r := Reach{Who: "your PATH", PATH: pathList}
	if p, ok := LookPath(HelperBinary, pathList); ok {
		r.Found, r.Saw = p, fmt.Sprintf("%s found at %s", HelperBinary, p)
	} else {
		r.Saw = fmt.Sprintf("%s is not on PATH; Docker, podman and helm run it by that name", HelperBinary)
		if exe != "" && filepath.Base(exe) != HelperBinary {
			r.Saw += fmt.Sprintf(" (this program is %s)", exe)
		}
		r.Fix = install("/usr/local/bin")
	}
	return append(out, r)
}
