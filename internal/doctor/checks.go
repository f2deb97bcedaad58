package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/clientconfig"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
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
// pull` from root's secure_path.
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
			if r.Found == "" {
				res.Status, res.Fix = Fail, r.Fix
				if strings.Contains(r.Who, "not visible") {
					res.Status = Warn
				}
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
					if f.CredsStore != "" {
						res = e.refineCredsStore(ctx, name, f, hosts)
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
		case err == nil:
			return []Result{{Status: OK, Saw: fmt.Sprintf("%s (%s, CGR_STORE=%s)", st.Describe(), st.Kind(), e.Settings.Store)}}
		case errors.Is(err, keystore.ErrLocked):
			return []Result{{Status: Fail, Saw: fmt.Sprintf("the keychain is locked: %v", err),
				Fix: "unlock the login keyring (log in to the desktop session), or keep secrets in files: export CGR_STORE=file"}}
		case errors.Is(err, keystore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
			fix := "export CGR_STORE=file   # keep credentials in files only you can read"
			if e.Settings.Store == "file" {
				fix = fmt.Sprintf("make %s writable by you (mode 0700), or set CGR_STORE_DIR to a directory that is", e.Settings.StoreDir)
			}
			return []Result{{Status: Fail, Saw: fmt.Sprintf("the %s store cannot be reached: %v", e.Settings.Store, err), Fix: fix}}
		case errors.Is(err, fs.ErrPermission):
			return []Result{{Status: Fail, Saw: err.Error(),
				Fix: fmt.Sprintf("sudo chown -R $(id -u):$(id -g) %s", e.Settings.StoreDir)}}
		default:
			return []Result{{Status: Fail, Saw: err.Error(), Fix: "export CGR_STORE=file"}}
		}
	})
}
