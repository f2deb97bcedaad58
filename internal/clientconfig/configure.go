// Package clientconfig wires registry clients to the helper: it writes `credHelpers`
// entries into Docker's config.json, containers' auth.json and helm's registry config, and
// finds what would keep a client from asking the helper (a static secret in `auths`, a file
// read earlier, a `credsStore`, a file that does not parse).
package clientconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cgrtools/docker-credential-cgr/internal/safetext"
)

// Helper is the credHelpers value naming this program: clients run docker-credential-cgr.
const Helper = "cgr"

// HelperBinary is the program clients look for on their PATH.
const HelperBinary = "docker-credential-" + Helper

// Options say what Configure does.
type Options struct {
	Hosts        []string // served registry hosts (Settings.Registries)
	Clients      []Client // empty: AllClients
	Remove       bool     // undo: delete credHelpers entries that name Helper
	FixShadowing bool     // also delete auths entries of served hosts that hold a static secret, and a credsStore no installed helper answers
	DryRun       bool     // compute and report, write nothing
}

// Action is what happened to one file.
type Action string

const (
	Created   Action = "created"
	Updated   Action = "updated"
	Unchanged Action = "unchanged"
	Failed    Action = "failed"
)

// Change reports one file.
type Change struct {
	Account string   `json:"account"`
	Client  Client   `json:"client"`
	Path    string   `json:"path"`
	Action  Action   `json:"action"`
	DryRun  bool     `json:"dry_run,omitempty"`
	Added   []string `json:"added,omitempty"`   // hosts now wired
	Removed []string `json:"removed,omitempty"` // hosts unwired (--remove)
	// Replaced: hosts that another helper handled before (host → that helper's name).
	Replaced   map[string]string `json:"replaced,omitempty"`
	FixedAuths []string          `json:"fixed_auths,omitempty"` // auths keys deleted (--fix-shadowing)
	// DroppedStore: the credsStore deleted (--fix-shadowing) because no helper of that name is
	// installed.
	DroppedStore string `json:"dropped_creds_store,omitempty"`
	Error        string `json:"error,omitempty"`
}

// Line is the change as one line for stderr.
// It is built from the exported fields alone, so a change read back from JSON (configure's
// child under sudo reports that way) prints the same; file-borne names in it (a helper that
// handled a host before) are made one printable line.
func (c Change) Line() string {
	if c.Action == Failed {
		return safetext.Line(fmt.Sprintf("%s: %s", c.Path, c.Error))
	}
	verb := string(c.Action)
	if c.DryRun && c.Action != Unchanged {
		verb = "would be " + verb
	}
	summary := edit{added: c.Added, removed: c.Removed, fixed: c.FixedAuths, replaced: c.Replaced, droppedStore: c.DroppedStore}.describe()
	if summary == "" {
		return safetext.Line(fmt.Sprintf("%s (%s): %s", c.Path, c.Client, verb))
	}
	return safetext.Line(fmt.Sprintf("%s (%s): %s: %s", c.Path, c.Client, verb, summary))
}

// Configure wires (or with Remove unwires) every target file of the account. A file that
// does not parse is left untouched and reported; the others are still done. A file whose
// bytes would not change is not rewritten.
func Configure(a Account, o Options) []Change {
	clients := o.Clients
	if len(clients) == 0 {
		clients = AllClients
	}
	var out []Change
	for _, t := range Targets(a, clients) {
		out = append(out, configureFile(a, t, o))
	}
	return out
}

func configureFile(a Account, t Target, o Options) Change {
	c := Change{Account: a.Name, Client: t.Client, Path: t.Path, DryRun: o.DryRun}
	fail := func(err error) Change {
		c.Action = Failed
		var se *SyntaxError
		var de *DuplicateKeyError
		switch {
		case errors.As(err, &se):
			c.Error = fmt.Sprintf("%v; left untouched: fix or move the file, then run `%s configure` again", err, HelperBinary)
		case errors.As(err, &de):
			c.Error = fmt.Sprintf("%v, then run `%s configure` again; left untouched", err, HelperBinary)
		default:
			c.Error = err.Error()
		}
		// A file's bytes (a key, a value) may be quoted in the error: one printable line.
		c.Error = safetext.Line(c.Error)
		return c
	}
	if err := rootMayWrite(t.Path); err != nil {
		return fail(err)
	}
	path, err := resolve(t.Path)
	if err != nil {
		return fail(err)
	}
	doc, err := os.ReadFile(path)
	isNew := errors.Is(err, fs.ErrNotExist)
	if err != nil && !isNew {
		return fail(err)
	}
	if !isBlank(doc) {
		if _, err := parseConfig(doc, o.Hosts, false); err != nil {
			return fail(err)
		}
	}
	if isNew && o.Remove {
		c.Action = Unchanged
		return c
	}
	var e edit
	next := doc
	if o.Remove {
		next, err = removeHelpers(next, o.Hosts, Helper, &e)
	} else {
		next, err = ensureHelpers(next, o.Hosts, Helper, &e)
	}
	if err == nil && o.FixShadowing {
		next, err = removeStatic(next, o.Hosts, &e)
		if err == nil {
			next, err = removeMissingStore(next, func(name string) bool {
				_, ok := LookPath("docker-credential-"+name, a.env("PATH"))
				return ok
			}, &e)
		}
	}
	if err != nil {
		return fail(err)
	}
	c.Added, c.Removed, c.Replaced, c.FixedAuths, c.DroppedStore = e.added, e.removed, e.replaced, e.fixed, e.droppedStore
	if !isNew && bytes.Equal(next, doc) {
		c.Action = Unchanged
		return c
	}
	c.Action = Updated
	if isNew {
		c.Action = Created
	}
	if o.DryRun {
		return c
	}
	if err := writeAtomic(path, next); err != nil {
		return fail(fmt.Errorf("writing: %w", err))
	}
	return c
}

// Level grades a finding.
type Level string

const (
	Warn Level = "warn" // works, but something is off (a stale secret, a store that may answer first)
	Fail Level = "fail" // a client will not ask the helper for this host
)

// Finding is something in a client's config that keeps it from the helper, or may.
type Finding struct {
	Level   Level  `json:"level"`
	Account string `json:"account"`
	Client  Client `json:"client"`
	Path    string `json:"path"`
	Host    string `json:"host,omitempty"`
	Saw     string `json:"saw"`
	Fix     string `json:"fix"`
	// CredsStore names the global credsStore when that is the finding.
	CredsStore string `json:"creds_store,omitempty"`
	// StoreMissing: no docker-credential-<CredsStore> is on PATH (--fix-shadowing deletes it).
	StoreMissing bool `json:"store_missing,omitempty"`
	// StaticKey is the auths key that holds a static secret, when that is the finding, and
	// Repository says the key names a repository rather than the host.
	StaticKey  string `json:"static_key,omitempty"`
	Repository bool   `json:"repository,omitempty"`
	// Env names the environment variable that is the finding (DOCKER_AUTH_CONFIG): no file
	// edit fixes it.
	Env string `json:"env,omitempty"`
}

// Wiring is the state of one client for one account: the file that matters and what is wrong.
type Wiring struct {
	Account  string    `json:"account"`
	Client   Client    `json:"client"`
	Path     string    `json:"path"`
	Wired    []string  `json:"wired"` // served hosts this client sends to the helper
	Findings []Finding `json:"findings,omitempty"`
}

type cachedFile struct {
	info fileInfo
	err  error
	ok   bool // exists
}

// Inspect says, per client, which served hosts reach the helper and what gets in the way.
// It reads the files; it writes nothing.
func Inspect(a Account, hosts []string, clients []Client) []Wiring {
	if len(clients) == 0 {
		clients = AllClients
	}
	cache := map[string]cachedFile{}
	read := func(p string, legacy bool) cachedFile {
		if r, ok := cache[p]; ok {
			return r
		}
		var r cachedFile
		rp, err := resolve(p)
		if err == nil {
			var doc []byte
			doc, err = os.ReadFile(rp)
			if err == nil {
				r.ok = true
				r.info, err = inspect(doc, hosts, legacy)
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			r.err = err
		}
		cache[p] = r
		return r
	}
	var out []Wiring
	for _, c := range clients {
		switch c {
		case Docker:
			out = append(out, inspectDockerFormat(a, Docker, DockerConfig(a), hosts, read))
		case Helm:
			out = append(out, inspectDockerFormat(a, Helm, HelmConfig(a), hosts, read))
		case Containers:
			out = append(out, inspectContainers(a, hosts, read))
		}
	}
	return out
}

func unreadable(a Account, c Client, path string, err error) Finding {
	var de *DuplicateKeyError
	if errors.As(err, &de) {
		return Finding{Level: Fail, Account: a.Name, Client: c, Path: path, Saw: de.Problem,
			Fix: fmt.Sprintf("%s in %s, then run `%s configure`", de.Remedy, path, HelperBinary)}
	}
	return Finding{Level: Fail, Account: a.Name, Client: c, Path: path,
		Saw: safetext.Line(fmt.Sprintf("cannot be read: %v", err)),
		Fix: fmt.Sprintf("fix or move %s, then run `%s configure`", path, HelperBinary)}
}

// clientName is how a person knows the client (a switch: a map literal is built by package
// initialisation on every start).
func clientName(c Client) string {
	switch c {
	case Docker:
		return "Docker"
	case Helm:
		return "helm"
	case Containers:
		return "podman, skopeo and buildah"
	}
	return string(c)
}

// inspectDockerFormat: Docker (docker/cli configfile), go-containerregistry and helm
// (oras-go) consult credHelpers[host] before credsStore and before auths, so an entry for
// the host is all it takes. Two things still get in the way of some clients:
// go-containerregistry (crane, ko, cosign) first looks up the full repository
// ("cgr.dev/org/app") and only then the host, so an auths entry keyed by a repository, or a
// credsStore (asked for any key credHelpers lacks), answers first.
func inspectDockerFormat(a Account, c Client, path string, hosts []string, read func(string, bool) cachedFile) Wiring {
	w := Wiring{Account: a.Name, Client: c, Path: path, Wired: []string{}}
	r := read(path, false)
	if r.err != nil {
		w.Findings = append(w.Findings, unreadable(a, c, path, r.err))
		return w
	}
	flag := "--" + string(c)
	for _, h := range hosts {
		switch helper := r.info.helpers[h]; helper {
		case Helper:
			w.Wired = append(w.Wired, h)
		case "":
			if r.info.credsStore == Helper { // the global credsStore is this helper: wired
				w.Wired = append(w.Wired, h)
				continue
			}
			if c == Helm && routesToHelper(read(DockerConfig(a), false), h) {
				w.Findings = append(w.Findings, helmFallbackFinding(a, path, h, r.info.configured))
				continue
			}
			w.Findings = append(w.Findings, Finding{Level: Fail, Account: a.Name, Client: c, Path: path, Host: h,
				Saw: fmt.Sprintf("no credHelpers entry for %s: %s does not ask %s", h, clientName(c), HelperBinary),
				Fix: fmt.Sprintf("%s configure %s", HelperBinary, flag)})
		default:
			w.Findings = append(w.Findings, Finding{Level: Fail, Account: a.Name, Client: c, Path: path, Host: h,
				Saw: fmt.Sprintf("credHelpers sends %s to docker-credential-%s", h, safetext.Line(helper)),
				Fix: fmt.Sprintf("%s configure %s", HelperBinary, flag)})
		}
	}
	for _, s := range r.info.static {
		f := Finding{Account: a.Name, Client: c, Path: path, Host: s.host, StaticKey: s.key, Repository: s.path,
			Fix: fmt.Sprintf("%s configure %s --fix-shadowing", HelperBinary, flag)}
		switch {
		case s.path:
			f.Level = Fail
			f.Saw = fmt.Sprintf("auths[%q] holds a static secret; crane, ko and cosign look up the repository before the host and use it instead of the helper", s.key)
		case r.info.helpers[s.host] == Helper || (r.info.helpers[s.host] == "" && r.info.credsStore == Helper):
			f.Level = Warn
			f.Saw = fmt.Sprintf("auths[%q] holds a static secret; unused while %s routes %s to the helper, but it rests on disk and expires unnoticed", s.key, routedBy(r.info.helpers[s.host]), s.host)
		default:
			f.Level = Fail
			f.Saw = fmt.Sprintf("auths[%q] holds a static secret that %s uses instead of the helper", s.key, clientName(c))
		}
		w.Findings = append(w.Findings, f)
	}
	if cs := r.info.credsStore; cs != "" && cs != Helper {
		w.Findings = append(w.Findings, CredsStoreFinding(a, c, path, cs, hosts))
	}
	if c == Docker {
		var viaStore []string
		for _, h := range hosts {
			if r.info.helpers[h] == "" && r.info.credsStore == Helper {
				viaStore = append(viaStore, h)
			}
		}
		if len(viaStore) > 0 && dockerDesktop(a, r.info) {
			w.Findings = append(w.Findings, desktopFinding(a, path, viaStore))
		}
		w.Findings = append(w.Findings, dockerEnvFindings(a, path, hosts)...)
	}
	return w
}

// routesToHelper: the file sends host to the helper (its credHelpers entry, or the helper
// as the global credsStore with no other entry for the host).
func routesToHelper(f cachedFile, host string) bool {
	if f.err != nil || !f.ok {
		return false
	}
	h := f.info.helpers[host]
	return h == Helper || (h == "" && f.info.credsStore == Helper)
}

// CredsStoreFinding is the note about a global credsStore: fine for other hosts, and
// credHelpers wins for a host in Docker and helm; but go-containerregistry asks the
// credsStore first for "<host>/<repo>", so a login to a served host that it still holds may
// answer instead of the helper. Doctor refines it by listing the store.
func CredsStoreFinding(a Account, c Client, path, store string, hosts []string) Finding {
	if _, ok := LookPath("docker-credential-"+store, a.env("PATH")); !ok {
		// Nothing answers it: go-containerregistry stops at the exec error for every
		// <host>/<repo> (and Docker for every registry without a credHelpers entry). Docker
		// Desktop is not here to write it back, so deleting it lasts.
		return Finding{Level: Fail, Account: a.Name, Client: c, Path: path, CredsStore: store, StoreMissing: true,
			Saw: safetext.Line(fmt.Sprintf("credsStore %q names docker-credential-%s, which is not on PATH: crane, ko and cosign stop at it for every %s/<repo> (error getting credentials … executable file not found)", store, store, hosts[0])),
			Fix: fmt.Sprintf("%s configure --%s --fix-shadowing", HelperBinary, c)}
	}
	saw := fmt.Sprintf("credsStore %q is the default store; crane, ko and cosign ask it for %s/<repo> before credHelpers; if it still holds an old login for %s, that login answers", store, hosts[0], strings.Join(hosts, ", "))
	if c == Docker && slices.Contains(desktopStores, store) {
		saw += "; Docker Desktop writes this credsStore back when it starts, so deleting it does not last: erase the login instead"
	}
	return Finding{Level: Warn, Account: a.Name, Client: c, Path: path, CredsStore: store,
		Saw: saw,
		Fix: fmt.Sprintf("printf %%s %s | docker-credential-%s erase", hosts[0], safetext.Line(store))}
}

// inspectContainers walks containers/image's search order for each host: the first file with
// a credHelpers entry or an auths entry holding a secret for the host decides.
func inspectContainers(a Account, hosts []string, read func(string, bool) cachedFile) Wiring {
	order := containersOrder(a)
	wiredPath := Targets(a, []Client{Containers})
	w := Wiring{Account: a.Name, Client: Containers, Path: wiredPath[len(wiredPath)-1].Path, Wired: []string{}}
	fixFor := func(p string, legacy bool) string {
		if legacy {
			return fmt.Sprintf("delete the entry from %s (or the file)", p)
		}
		return fmt.Sprintf("%s configure --fix-shadowing", HelperBinary)
	}
	broken := map[string]bool{}
	for i, f := range order {
		if r := read(f.path, f.legacy); r.err != nil && !broken[f.path] {
			broken[f.path] = true
			if i == 0 && errors.Is(r.err, fs.ErrPermission) && a.env("XDG_RUNTIME_DIR") == "" && a.env("REGISTRY_AUTH_FILE") == "" {
				w.Findings = append(w.Findings, runContainersBlocked(a, f.path, order))
				continue
			}
			fd := unreadable(a, Containers, f.path, r.err)
			var de *DuplicateKeyError
			if !errors.As(r.err, &de) { // a duplicate does not stop them: they read the last copy
				fd.Saw += " (podman, skopeo and buildah stop at this error)"
			}
			w.Findings = append(w.Findings, fd)
		}
	}
	for _, h := range hosts {
		decided := false
		for _, f := range order {
			r := read(f.path, f.legacy)
			if r.err != nil || !r.ok {
				continue
			}
			if helper, ok := r.info.helpers[h]; ok {
				decided = true
				if helper == Helper {
					w.Wired = append(w.Wired, h)
				} else {
					w.Findings = append(w.Findings, Finding{Level: Fail, Account: a.Name, Client: Containers, Path: f.path, Host: h,
						Saw: fmt.Sprintf("credHelpers sends %s to docker-credential-%s", h, safetext.Line(helper)),
						Fix: fmt.Sprintf("%s configure --containers", HelperBinary)})
				}
				break
			}
			for _, s := range r.info.static {
				if s.host != h {
					continue
				}
				if s.path {
					w.Findings = append(w.Findings, Finding{Level: Warn, Account: a.Name, Client: Containers, Path: f.path, Host: h, StaticKey: s.key, Repository: true,
						Saw: fmt.Sprintf("auths[%q] holds a static secret that podman, skopeo and buildah use for that repository instead of the helper", s.key),
						Fix: fixFor(f.path, f.legacy)})
					continue
				}
				decided = true
				w.Findings = append(w.Findings, Finding{Level: Fail, Account: a.Name, Client: Containers, Path: f.path, Host: h, StaticKey: s.key,
					Saw: fmt.Sprintf("auths[%q] holds a static secret; podman, skopeo and buildah read this file first and use it instead of the helper", s.key),
					Fix: fixFor(f.path, f.legacy)})
			}
			if !decided && r.info.credsStore == Helper { // the file's default store is this helper
				decided = true
				w.Wired = append(w.Wired, h)
			}
			if decided {
				break
			}
		}
		if !decided {
			w.Findings = append(w.Findings, Finding{Level: Fail, Account: a.Name, Client: Containers, Path: w.Path, Host: h,
				Saw: fmt.Sprintf("no credHelpers entry for %s in %s: podman, skopeo and buildah do not ask %s", h, strings.Join(ContainersSearchOrder(a), ", "), HelperBinary),
				Fix: fmt.Sprintf("%s configure --containers", HelperBinary)})
		}
	}
	return w
}

// routedBy names what sends a host to the helper: its credHelpers entry or the credsStore.
func routedBy(helperEntry string) string {
	if helperEntry == Helper {
		return "credHelpers"
	}
	return "credsStore"
}

// runContainersBlocked is the finding for a user without a session runtime dir
// (/run/user/<uid>, which systemd-logind creates at login) whose /run/containers/<uid> lies
// in a directory the user cannot enter (root's podman made /run/containers 0700): podman,
// skopeo and buildah read that file first and stop at the error, for every image, public
// ones too. Nobody but root could create it there, and root must not make the user own
// files outside the user's tree; what the user can do is point them at the file configure
// writes, which then is the only one they read.
func runContainersBlocked(a Account, primary string, order []containersFile) Finding {
	blocker := filepath.Dir(primary)
	for d := blocker; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			blocker = d
			break
		}
	}
	who := ""
	if fi, err := os.Stat(blocker); err == nil {
		if o, ok := fileOwner(fi); ok {
			who = fmt.Sprintf(", uid %d's, mode %04o", o.uid, fi.Mode().Perm())
		}
	}
	persistent := order[1].path
	return Finding{Level: Fail, Account: a.Name, Client: Containers, Path: primary,
		Saw: fmt.Sprintf("podman, skopeo and buildah read %s first and stop there, for every image: permission denied (%s is not yours%s, and there is no session runtime dir XDG_RUNTIME_DIR)", primary, blocker, who),
		Fix: fmt.Sprintf("export REGISTRY_AUTH_FILE=%s   # in your shell profile: then they read only the file configure wires; or log in through a session that creates /run/user/<uid>", persistent)}
}
