package clientconfig

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
)

// Client is a family of registry clients that share one config file.
type Client string

const (
	Docker     Client = "docker"     // docker, buildx, crane, ko, cosign (go-containerregistry), nerdctl
	Containers Client = "containers" // podman, skopeo, buildah (containers/image)
	Helm       Client = "helm"       // helm's registry config (oras-go), a Docker-format file
)

// AllClients is what `configure` wires by default.
var AllClients = []Client{Docker, Containers, Helm}

// Account is whose config files are read and written: the user running the program, or
// under sudo the invoking user and root.
type Account struct {
	Name     string              // user name, for messages
	UID, GID int                 // the account's ids (its /run/containers/<uid>); -1: the process's own
	Home     string              // home directory
	Getenv   func(string) string // the account's environment (DOCKER_CONFIG, XDG_*, REGISTRY_AUTH_FILE, HELM_*)
	GOOS     string              // runtime.GOOS; tests may set it
}

func (a Account) env(k string) string {
	if k == "HOME" && a.Home != "" {
		return a.Home
	}
	if a.Getenv == nil {
		return ""
	}
	return a.Getenv(k)
}

func (a Account) goos() string {
	if a.GOOS != "" {
		return a.GOOS
	}
	return runtime.GOOS
}

// Sudo reports whether the process runs under sudo for another user: effective uid 0 and
// SUDO_UID set and not 0.
func Sudo(getenv func(string) string) bool {
	uid := getenv("SUDO_UID")
	return os.Geteuid() == 0 && uid != "" && uid != "0"
}

// Accounts lists whose files to wire: the current user; under sudo the invoking user first,
// then root, because `docker pull` and `sudo docker pull` read different files.
func Accounts(getenv func(string) string) ([]Account, error) {
	return accounts(getenv, Sudo(getenv), user.LookupId)
}

func accounts(getenv func(string) string, sudo bool, lookup func(string) (*user.User, error)) ([]Account, error) {
	if !sudo {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		name := getenv("USER")
		if u, err := user.Current(); err == nil {
			name = u.Username
		}
		return []Account{{Name: name, UID: -1, GID: -1, Home: home, Getenv: getenv}}, nil
	}
	u, err := lookup(getenv("SUDO_UID"))
	if err != nil {
		return nil, fmt.Errorf("sudo: the invoking user (SUDO_UID=%s): %w", getenv("SUDO_UID"), err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("sudo: the invoking user %s: %w", u.Username, err)
	}
	// sudo resets the environment, so the user's own DOCKER_CONFIG or XDG_CONFIG_HOME are
	// unknown here: the user's files are where they are by default.
	runtimeDir := filepath.Join("/run/user", u.Uid)
	userEnv := func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			if fi, err := os.Stat(runtimeDir); err == nil && fi.IsDir() {
				return runtimeDir
			}
		}
		return ""
	}
	rootHome := "/root"
	if r, err := lookup("0"); err == nil && r.HomeDir != "" {
		rootHome = r.HomeDir
	}
	return []Account{
		{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir, Getenv: userEnv},
		{Name: "root", UID: -1, GID: -1, Home: rootHome, Getenv: getenv},
	}, nil
}

// Target is one config file of one client.
type Target struct {
	Client Client `json:"client"`
	Path   string `json:"path"`
}

// DockerConfig is $DOCKER_CONFIG/config.json, else ~/.docker/config.json.
func DockerConfig(a Account) string {
	if d := a.env("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	return filepath.Join(a.env("HOME"), ".docker", "config.json")
}

func xdgConfigHome(a Account) string {
	if d := a.env("XDG_CONFIG_HOME"); d != "" {
		return d
	}
	return filepath.Join(a.env("HOME"), ".config")
}

// containersPrimary is the file containers/image reads first and writes on `podman login`
// (pkg/docker/config getPathToAuth): $XDG_RUNTIME_DIR/containers/auth.json on Linux, else
// /run/containers/<uid>/auth.json; ~/.config/containers/auth.json elsewhere.
func containersPrimary(a Account) string {
	if a.goos() != "linux" {
		return filepath.Join(a.env("HOME"), ".config", "containers", "auth.json")
	}
	if d := a.env("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "containers", "auth.json")
	}
	uid := a.UID
	if uid < 0 {
		uid = os.Getuid()
	}
	return fmt.Sprintf("/run/containers/%d/auth.json", uid)
}

// containersFile is one entry of containers/image's search order.
type containersFile struct {
	path   string
	legacy bool // ~/.dockercfg: a bare auths map
}

// ContainersSearchOrder is the order in which podman, skopeo and buildah look for a
// registry's credentials (containers/image pkg/docker/config getAuthFilePaths): with
// REGISTRY_AUTH_FILE only that file; else the primary (runtime) file,
// $XDG_CONFIG_HOME/containers/auth.json, Docker's config.json, ~/.dockercfg. In each file
// a credHelpers entry for the registry wins over its auths; across files the first file
// that has either wins.
func ContainersSearchOrder(a Account) []string {
	var out []string
	for _, f := range containersOrder(a) {
		out = append(out, f.path)
	}
	return out
}

func containersOrder(a Account) []containersFile {
	if f := a.env("REGISTRY_AUTH_FILE"); f != "" {
		return []containersFile{{path: f}}
	}
	return []containersFile{
		{path: containersPrimary(a)},
		{path: filepath.Join(xdgConfigHome(a), "containers", "auth.json")},
		{path: DockerConfig(a)},
		{path: filepath.Join(a.env("HOME"), ".dockercfg"), legacy: true},
	}
}

// HelmConfig is $HELM_REGISTRY_CONFIG, else helm's config home + registry/config.json.
func HelmConfig(a Account) string {
	if f := a.env("HELM_REGISTRY_CONFIG"); f != "" {
		return f
	}
	home := a.env("HELM_CONFIG_HOME")
	if home == "" {
		switch a.goos() {
		case "darwin":
			home = filepath.Join(a.env("HOME"), "Library", "Preferences", "helm")
		case "windows":
			home = filepath.Join(a.env("APPDATA"), "helm")
		default:
			home = filepath.Join(xdgConfigHome(a), "helm")
		}
	}
	return filepath.Join(home, "registry", "config.json")
}

// Targets are the files `configure` writes for the given clients:
//   - docker: Docker's config.json (also read by go-containerregistry, nerdctl, and last by
//     containers/image);
//   - containers: REGISTRY_AUTH_FILE when set (then the only file those tools read); else
//     $XDG_CONFIG_HOME/containers/auth.json, which survives reboots, unlike the runtime file
//     podman login writes (a tmpfs), plus that runtime file when it exists, because it is read
//     first and its entries would otherwise win;
//   - helm: helm's registry config.
func Targets(a Account, clients []Client) []Target {
	var out []Target
	seen := map[string]bool{}
	add := func(c Client, p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, Target{Client: c, Path: p})
		}
	}
	for _, c := range clients {
		switch c {
		case Docker:
			add(Docker, DockerConfig(a))
		case Containers:
			if f := a.env("REGISTRY_AUTH_FILE"); f != "" {
				add(Containers, f)
				continue
			}
			if p := containersPrimary(a); exists(p) {
				add(Containers, p)
			}
			add(Containers, filepath.Join(xdgConfigHome(a), "containers", "auth.json"))
		case Helm:
			add(Helm, HelmConfig(a))
		}
	}
	return out
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
