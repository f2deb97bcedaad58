package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/lazy"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// Env is what the standard checks look at.
type Env struct {
	Settings config.Settings
	Getenv   func(string) string
	// Executable is this program's path (os.Executable), named in install fixes.
	Executable string
	// Sudoers is the sudoers file read for secure_path; "" means /etc/sudoers.
	Sudoers string
	// Accounts whose client configs are checked; nil: clientconfig.Accounts(Getenv).
	Accounts []clientconfig.Account
	// Sudo: running for a sudo user (as root, or re-executed as that user with SUDO_UID
	// still set); nil: SUDO_UID is set and not 0.
	Sudo *bool
	// OpenStore opens the configured store; nil: keystore.Open with the settings.
	OpenStore func(ctx context.Context) (keystore.Store, error)
	// ListStore lists what a credsStore helper holds (`docker-credential-<name> list`);
	// nil: run it with a deadline.
	ListStore func(ctx context.Context, name string) (map[string]string, error)
	// ConfigFile is the config.yaml this program reads, whether or not it exists: a setting
	// written there holds for every run, also one Docker starts from a desktop session or
	// sudo starts, where an exported variable does not reach. "": no persistent fix is offered.
	ConfigFile string
}

func (e Env) sudo() bool {
	if e.Sudo != nil {
		return *e.Sudo
	}
	uid := e.Getenv("SUDO_UID")
	return uid != "" && uid != "0"
}

// Standard returns the checks that need only the settings and the files: the helper on
// PATH, the client configs, the store.
func Standard(e Env) []Check {
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	return []Check{HelperCheck(e), ClientConfigCheck(e), StoreCheck(e)}
}

// HelperCheck: clients run docker-credential-cgr by name, from their PATH; `sudo docker
// pull` from root's secure_path. The first one there must be this program, not chainctl's
// link to itself (clientconfig.ReachHelper).
func HelperCheck(e Env) Check {
	return NewCheck("helper on PATH", func(ctx context.Context) []Result {
		sudoers := e.Sudoers
		if sudoers == "" {
			sudoers = "/etc/sudoers"
		}
		home := ""
		if e.sudo() {
			if accts := e.accounts(); len(accts) > 0 {
				home = accts[0].Home
			}
		}
		var out []Result
		for _, r := range clientconfig.ReachHelper(e.Getenv, e.sudo(), sudoers, e.Executable, home) {
			res := Result{Check: "helper on " + r.Who, Status: OK, Saw: r.Saw}
			switch r.Level { // missing, or shadowed by chainctl's link: clients cannot run this program
			case "fail":
				res.Status, res.Fix = Fail, r.Fix
			case "warn":
				res.Status, res.Fix = Warn, r.Fix
			}
			out = append(out, res)
		}
		return out
	})
}

func (e Env) accounts() []clientconfig.Account {
	if e.Accounts != nil {
		return e.Accounts
	}
	accts, err := clientconfig.Accounts(e.Getenv)
	if err != nil {
		return nil
	}
	if !clientconfig.Sudo(e.Getenv) && e.sudo() {
		// Re-executed as the sudo user: root's files are root's, and sudo docker pull reads
		// them. Try them; a permission error becomes a skip.
		root := clientconfig.Account{Name: "root", UID: -1, GID: -1, Home: "/root", Getenv: func(string) string { return "" }}
		accts = append(accts, root)
	}
	return accts
}

// ClientConfigCheck: every client config is wired for every served host, parses, and
// nothing shadows the helper.
func ClientConfigCheck(e Env) Check {
	return NewCheck("client config", func(ctx context.Context) []Result {
		accts := e.accounts()
		if len(accts) == 0 {
			return []Result{{Status: Fail, Saw: "cannot tell whose config files to read (user lookup failed)"}}
		}
		hosts := e.Settings.Registries
		var out []Result
		for _, a := range accts {
			for _, w := range clientconfig.Inspect(a, hosts, nil) {
				name := fmt.Sprintf("%s config", w.Client)
				if len(accts) > 1 {
					name = fmt.Sprintf("%s config (%s)", w.Client, a.Name)
				}
				if a.Name == "root" && permissionDenied(w) {
					out = append(out, Result{Check: name, Status: Skip,
						Saw: "root's files cannot be read from here",
						Fix: "sudo CGR_SUDO_SHARE=false " + clientconfig.HelperBinary + " doctor"})
					continue
				}
				if len(w.Findings) == 0 {
					out = append(out, Result{Check: name, Status: OK,
						Saw: fmt.Sprintf("%s sends %s to the helper", w.Path, strings.Join(w.Wired, ", "))})
					continue
				}
				for _, f := range w.Findings {
					res := Result{Check: name, Status: Status(f.Level), Saw: fmt.Sprintf("%s: %s", f.Path, f.Saw), Fix: f.Fix}
					if f.CredsStore != "" && !f.StoreMissing {
						res = e.refineCredsStore(ctx, name, f, hosts)
					}
					if a.Name == "root" && e.sudo() && res.Fix != "" {
						res.Fix = SudoFix(res.Fix) // root's file: the person at the keyboard is not root
					}
					out = append(out, res)
				}
			}
		}
		return out
	})
}

func permissionDenied(w clientconfig.Wiring) bool {
	for _, f := range w.Findings {
		if strings.Contains(f.Saw, "permission denied") {
			return true
		}
	}
	return false
}

// refineCredsStore asks the credsStore what it holds: a login for a served host there is
// what crane, ko and cosign may use instead of the helper; nothing there is fine.
func (e Env) refineCredsStore(ctx context.Context, name string, f clientconfig.Finding, hosts []string) Result {
	store := f.CredsStore
	list := e.ListStore
	if list == nil {
		list = listStore
	}
	held, err := list(ctx, store)
	if err != nil {
		return Result{Check: name, Status: Warn, Saw: fmt.Sprintf("%s: %s (could not list it: %v)", f.Path, f.Saw, err), Fix: f.Fix}
	}
	var stale []string
	for key := range held {
		h := key
		if i := strings.Index(h, "://"); i >= 0 {
			h = h[i+3:]
		}
		h, _, _ = strings.Cut(h, "/")
		for _, s := range hosts {
			if strings.EqualFold(h, s) {
				stale = append(stale, key)
			}
		}
	}
	if len(stale) == 0 {
		return Result{Check: name, Status: OK, Saw: fmt.Sprintf("%s: credsStore %q holds nothing for %s", f.Path, store, strings.Join(hosts, ", "))}
	}
	var fixes []string
	for _, k := range stale {
		fixes = append(fixes, fmt.Sprintf("printf %%s %s | docker-credential-%s erase", k, store))
	}
	return Result{Check: name, Status: Warn,
		Saw: fmt.Sprintf("%s: credsStore %q still holds a login for %s; crane, ko and cosign ask it before credHelpers", f.Path, store, strings.Join(stale, ", ")),
		Fix: strings.Join(fixes, " && ")}
}

func listStore(ctx context.Context, name string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker-credential-"+name, "list")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.Output()
	if err != nil {
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(out, &m); err != nil {
		return nil, fmt.Errorf("docker-credential-%s list: %w", name, err)
	}
	return m, nil
}

// StoreCheck: the store opens and answers a read within its deadline.
func StoreCheck(e Env) Check {
	return NewCheck("secret store", func(ctx context.Context) []Result {
		open := e.OpenStore
		if open == nil {
			open = func(ctx context.Context) (keystore.Store, error) {
				return keystore.Open(ctx, keystore.Options{Backend: e.Settings.Store, Dir: e.Settings.StoreDir, Getenv: e.Getenv})
			}
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := open(ctx)
		if err == nil {
			_, err = st.Get(ctx, "probe")
			if errors.Is(err, keystore.ErrNotFound) {
				err = nil
			}
		}
		switch {
		case err == nil && keystore.Unusable(st) != nil:
			return []Result{{Status: Fail,
				Saw: fmt.Sprintf("%s: nothing can be stored there, so no login is kept (get answers not-found: public images still pull)", st.Describe()),
				Fix: fmt.Sprintf("make %s creatable by you, or set CGR_STORE_DIR to a writable directory (a volume, in a container)", e.Settings.StoreDir)}}
		case err == nil:
			return []Result{{Status: OK, Saw: fmt.Sprintf("%s (%s, CGR_STORE=%s)", st.Describe(), st.Kind(), e.Settings.Store)}}
		case errors.Is(err, keystore.ErrLocked):
			return []Result{{Status: Fail, Saw: fmt.Sprintf("the keychain is locked (CGR_STORE=%s): %s", e.Settings.Store, trimErr(err, keystore.ErrLocked)),
				Fix: e.StoreFileFix() + ". Or unlock the login keyring instead (log in to the desktop session)"}}
		case errors.Is(err, keystore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			if e.Settings.Store == "file" {
				return []Result{{Status: Fail, Saw: fmt.Sprintf("the file store cannot be used: %v", err),
					Fix: fmt.Sprintf("make %s writable by you (mode 0700), or set CGR_STORE_DIR to a directory that is", e.Settings.StoreDir)}}
			}
			saw, fix := e.KeychainUnreachable(trimErr(err, keystore.ErrUnavailable))
			return []Result{{Status: Fail, Saw: saw, Fix: fix}}
		case errors.Is(err, fs.ErrPermission):
			return []Result{{Status: Fail, Saw: err.Error(),
				Fix: fmt.Sprintf("sudo chown -R $(id -u):$(id -g) %s", e.Settings.StoreDir)}}
		case e.Settings.Store == "file":
			return []Result{{Status: Fail, Saw: err.Error(),
				Fix: fmt.Sprintf("make %s writable by you (mode 0700), or set CGR_STORE_DIR to a directory that is", e.Settings.StoreDir)}}
		default:
			return []Result{{Status: Fail, Saw: err.Error(), Fix: e.StoreFileFix()}}
		}
	})
}

// trimErr drops the sentinel's own words from the front of err's message ("the secret store
// is unavailable: dial ...": the result already says so).
func trimErr(err, sentinel error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, sentinel.Error()+": "); ok && rest != "" {
		return rest
	}
	return msg
}

// storeKeyRE matches a config.yaml line that sets the store (not store_dir), as config.Load
// reads keys: one spelling.
// Compiled on first use: package init runs on every `get`.
var storeKeyRE = lazy.Regexp{Expr: `^(store)[ \t]*:`}

// KeychainUnreachable words a keychain that cannot be reached, for doctor and for every
// user command: what was seen (why: the cause without keystore's prefix) and the fix.
func (e Env) KeychainUnreachable(why string) (saw, fix string) {
	return fmt.Sprintf("the keychain cannot be reached (CGR_STORE=%s): %s", e.Settings.Store, why), e.StoreFileFix()
}

// StoreFileFix is the persistent switch to the file store: `store: file` in the config.yaml
// this program reads (an exported CGR_STORE does not reach a helper that Docker starts from
// the desktop session, or one started by sudo), with CGR_STORE unset when it says otherwise
// (the environment wins over the file). The file store starts empty: a new login follows.
func (e Env) StoreFileFix() string {
	login := "   # then log in again, into the file store (it starts empty): " + clientconfig.HelperBinary + " login"
	getenv := e.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var steps []string
	if v := strings.TrimSpace(getenv("CGR_STORE")); v != "" && !strings.EqualFold(v, "file") {
		steps = append(steps, "unset CGR_STORE")
		login = "   # and drop CGR_STORE from your shell profile;" + strings.TrimPrefix(login, "   #")
	}
	if e.ConfigFile == "" {
		return strings.Join(append(steps, "export CGR_STORE=file"), " && ") + login
	}
	path := shellQuote(e.ConfigFile)
	b, err := os.ReadFile(e.ConfigFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		steps = append(steps, fmt.Sprintf("mkdir -p %s && printf 'store: file\\n' >> %s", shellQuote(filepath.Dir(e.ConfigFile)), path))
	case err != nil:
		steps = append(steps, fmt.Sprintf("printf 'store: file\\n' >> %s", path))
	default:
		key := ""
		for _, line := range strings.Split(string(b), "\n") {
			if m := storeKeyRE.Get().FindStringSubmatch(line); m != nil {
				key = m[1]
			}
		}
		switch {
		case key != "":
			// Replace the line (a second store key would make the file unreadable).
			steps = append(steps, fmt.Sprintf("sed -i.bak 's/^%s[[:space:]]*:.*/store: file/' %s", key, path))
		case len(b) > 0 && !bytes.HasSuffix(b, []byte("\n")):
			steps = append(steps, fmt.Sprintf("printf '\\nstore: file\\n' >> %s", path))
		default:
			steps = append(steps, fmt.Sprintf("printf 'store: file\\n' >> %s", path))
		}
	}
	return strings.Join(steps, " && ") + login
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string { return clientconfig.ShellQuote(s) }

// sudoCmdRE finds where a command of a credential helper starts in a fix.
var sudoCmdRE = lazy.Regexp{Expr: "(^|&& |; |\\| |`)(docker-credential-)"}

// SudoFix is a fix for one of root's files, as the person who ran sudo types it: every
// credential-helper command in it run with sudo; a fix in words is marked as root's.
func SudoFix(fix string) string {
	if out := sudoCmdRE.Get().ReplaceAllString(fix, "${1}sudo ${2}"); out != fix {
		return out
	}
	return "as root (sudo): " + fix
}
