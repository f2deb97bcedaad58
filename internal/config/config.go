// Package config builds the helper's settings once, from flags, the environment and the
// config file (in that order of precedence), so no other package reads os.Getenv.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/cgrtools/docker-credential-cgr/internal/fsread"
)

// Defaults, as the contract gives them.
const (
	DefaultRegistry = "cgr.dev"
	DefaultIssuer   = "https://issuer.enforce.dev"
	DefaultAPI      = "https://console-api.enforce.dev"
	DefaultAudience = "cgr.dev"
	AppName         = "docker-credential-cgr"
)

// Settings is everything the helper needs to know about its surroundings.
type Settings struct {
	Registries []string // served registry hosts, lower-case, "host" or "host:port"
	Issuer     string   // token issuer URL, no trailing slash
	API        string   // platform API URL, no trailing slash
	Audience   string   // audience of the registry tokens `get` serves
	Store      string   // "auto", "keychain" or "file"
	StoreDir   string   // file store, locks and state

	Identity      string // CGR_IDENTITY: assumable identity id for workloads
	IdentityToken string // CGR_IDENTITY_TOKEN: an OIDC token, or a path to one

	// GitHub Actions' ambient OIDC token endpoint, when present.
	ActionsTokenURL   string
	ActionsTokenToken string
	// CIProvider is the CI this runs in, detected from its environment: "github-actions",
	// "gitlab", "buildkite", "circleci", or "". CIOIDCToken is an OIDC token the CI put in
	// the environment (CircleCI's CIRCLE_OIDC_TOKEN_V2).
	CIProvider  string
	CIOIDCToken string

	AutoLogin bool   // CGR_AUTO_LOGIN
	Browser   string // BROWSER: command that opens a URL (the URL is its last argument)
	CI        bool   // running under CI (CI=true or GITHUB_ACTIONS=true)

	ConfigFile string // the config file that was read ("" when none)

	// Path is the PATH programs are looked up on (chainctl), and CacheDir the user's cache
	// directory ($XDG_CACHE_HOME, else ~/.cache), where chainctl keeps its login.
	Path     string
	CacheDir string
}

// ParseBool reads a yes/no setting: true, 1, yes, on, or false, 0, no, off (any case).
func ParseBool(v string) (bool, error) {
	if b, ok := parseBool(v); ok {
		return b, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

// parseBool is ParseBool without the error: truthy asks it of six variables on every get,
// most of them unset, and formatting an error for each was most of Load's work.
func parseBool(v string) (value, ok bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "y", "yes", "on":
		return true, true
	case "0", "f", "false", "n", "no", "off":
		return false, true
	}
	return false, false
}

// Flags are the values given on the command line; empty means "not given".
type Flags struct {
	Registry string
	Issuer   string
	API      string
	Store    string
	// ConfigDir, when set, is where config.yaml is looked for instead of the user's config
	// dir (under sudo, the invoking user's, so `sudo ... configure` sees that user's settings).
	ConfigDir string
}

// Getenv looks up an environment variable; os.Getenv in production, a map in tests.
type Getenv func(string) string

// Load builds Settings. getenv is usually os.Getenv; flags.ConfigDir, when set, is where
// config.yaml is looked for. Every error names where the bad value came from: the flag, the
// variable, or the line of config.yaml.
func Load(getenv Getenv, flags Flags) (Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	var file File
	dir := flags.ConfigDir
	if dir == "" {
		dir = UserConfigDir(getenv)
	}
	path := filepath.Join(dir, AppName, "config.yaml")
	var s Settings
	switch b, err := readTrusted(path); {
	case err == nil:
		if file, err = parseFile(b); err != nil {
			return Settings{}, fmt.Errorf("config file %s: %s", path, strings.Join(strings.Fields(err.Error()), " "))
		}
		s.ConfigFile = path
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		// No config file (a config dir that is a file holds none either: the file is optional).
	default:
		var ue *untrustedError
		if errors.As(err, &ue) {
			return Settings{}, err
		}
		return Settings{}, fmt.Errorf("config file: %w", err)
	}

	// pick is the value of a setting and where it came from, in precedence order.
	type setting struct{ value, from string }
	pick := func(flag, flagName, env, key, def string) setting {
		if v := strings.TrimSpace(flag); v != "" {
			return setting{v, "--" + flagName}
		}
		if env != "" {
			if v := strings.TrimSpace(getenv(env)); v != "" {
				return setting{v, env}
			}
		}
		if key != "" {
			if v, line := file.get(key); strings.TrimSpace(v) != "" {
				return setting{strings.TrimSpace(v), fmt.Sprintf("%s in %s line %d", key, path, line)}
			}
		}
		return setting{def, "the default"}
	}
	regs := pick(flags.Registry, "registry", "CGR_REGISTRY", "registry", DefaultRegistry)
	for _, r := range strings.Split(regs.value, ",") {
		r = strings.ToLower(strings.TrimSpace(r))
		if r == "" {
			continue
		}
		if !validHost(r) {
			return Settings{}, fmt.Errorf("%s: %q is not a host or host:port", regs.from, r)
		}
		s.Registries = append(s.Registries, r)
	}
	if len(s.Registries) == 0 {
		return Settings{}, fmt.Errorf("%s: no registry host given", regs.from)
	}
	var err error
	iss := pick(flags.Issuer, "issuer", "CGR_ISSUER", "issuer", DefaultIssuer)
	if s.Issuer, err = endpoint(iss.from, iss.value); err != nil {
		return Settings{}, err
	}
	api := pick(flags.API, "api", "CGR_API", "api", DefaultAPI)
	if s.API, err = endpoint(api.from, api.value); err != nil {
		return Settings{}, err
	}
	s.Audience = pick("", "", "CGR_AUDIENCE", "audience", DefaultAudience).value
	st := pick(flags.Store, "store", "CGR_STORE", "store", "auto")
	s.Store = strings.ToLower(st.value)
	switch s.Store {
	case "auto", "keychain", "file":
	default:
		return Settings{}, fmt.Errorf("%s: %q is not one of auto, keychain, file", st.from, st.value)
	}
	s.StoreDir = pick("", "", "CGR_STORE_DIR", "store_dir", filepath.Join(UserDataDir(getenv), AppName)).value
	s.Identity = pick("", "", "CGR_IDENTITY", "identity", "").value
	s.IdentityToken = pick("", "", "CGR_IDENTITY_TOKEN", "identity_token", "").value
	s.ActionsTokenURL = getenv("ACTIONS_ID_TOKEN_REQUEST_URL")
	s.ActionsTokenToken = getenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
	al := pick("", "", "CGR_AUTO_LOGIN", "auto_login", "true")
	if s.AutoLogin, err = ParseBool(al.value); err != nil {
		return Settings{}, fmt.Errorf("%s: %w", al.from, err)
	}
	s.Browser = pick("", "", "BROWSER", "browser", "").value
	s.CI = truthy(getenv("CI")) || truthy(getenv("GITHUB_ACTIONS"))
	switch {
	case truthy(getenv("GITHUB_ACTIONS")) || s.ActionsTokenURL != "":
		s.CIProvider = "github-actions"
	case truthy(getenv("GITLAB_CI")):
		s.CIProvider = "gitlab"
	case truthy(getenv("BUILDKITE")):
		s.CIProvider = "buildkite"
	case truthy(getenv("CIRCLECI")):
		s.CIProvider = "circleci"
		s.CIOIDCToken = strings.TrimSpace(getenv("CIRCLE_OIDC_TOKEN_V2"))
		if s.CIOIDCToken == "" {
			s.CIOIDCToken = strings.TrimSpace(getenv("CIRCLE_OIDC_TOKEN"))
		}
	}
	s.CI = s.CI || s.CIProvider != ""
	s.Path = getenv("PATH")
	s.CacheDir = UserCacheDir(getenv)
	return s, nil
}

// Serves reports whether host (already lower-cased, "host" or "host:port") is served.
func (s Settings) Serves(host string) bool {
	for _, r := range s.Registries {
		if r == host {
			return true
		}
	}
	return false
}

// IssuerHost is the issuer's host, the default audience of workload tokens.
func (s Settings) IssuerHost() string {
	u, err := url.Parse(s.Issuer)
	if err != nil {
		return s.Issuer
	}
	return u.Host
}

func truthy(v string) bool {
	b, ok := parseBool(v)
	return ok && b
}

// endpoint validates an issuer or API URL: https, or http only on a loopback host.
func endpoint(name, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err == nil && u.User != nil {
		// Never echo credentials from a URL; and a token travels only in headers.
		u.User = nil
		return "", fmt.Errorf("%s: %q: credentials in the URL are not allowed; remove them", name, u.String())
	}
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s: %q is not an http(s) URL", name, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return "", fmt.Errorf("%s: %q: plain http is allowed only for loopback hosts; use https", name, raw)
		}
	default:
		return "", fmt.Errorf("%s: %q is not an http(s) URL", name, raw)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// IsLoopback reports whether host (no port) is 127.0.0.0/8, ::1 or localhost.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validHost(h string) bool {
	u, err := url.Parse("https://" + h)
	return err == nil && u.Host == h && u.Path == "" && u.User == nil && u.Hostname() != ""
}

// UserConfigDir is $XDG_CONFIG_HOME, else $HOME/.config.
func UserConfigDir(getenv Getenv) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return d
	}
	return filepath.Join(home(getenv), ".config")
}

// UserCacheDir is $XDG_CACHE_HOME, else $HOME/.cache (on macOS ~/Library/Caches), where
// chainctl keeps its tokens (PROTOCOL.md section 8).
func UserCacheDir(getenv Getenv) string {
	if runtime.GOOS == "darwin" {
		return filepath.Join(home(getenv), "Library", "Caches")
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return d
	}
	return filepath.Join(home(getenv), ".cache")
}

// UserDataDir is $XDG_DATA_HOME, else $HOME/.local/share.
func UserDataDir(getenv Getenv) string {
	if d := getenv("XDG_DATA_HOME"); d != "" {
		return d
	}
	return filepath.Join(home(getenv), ".local", "share")
}

// home is $HOME, else the account's home from the user database: the kubelet and some
// service managers start plugins without HOME, and a relative store dir would follow the
// working directory.
func home(getenv Getenv) string {
	if h := getenv("HOME"); h != "" {
		return h
	}
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return u.HomeDir
	}
	return "/"
}

// LookPath finds an executable named name in the directories of pathList (a PATH value), as
// exec.LookPath does with the process's own PATH: the helper looks things up on the PATH of
// the settings it was given (under sudo, the invoking user's).
func LookPath(name, pathList string) (string, bool) {
	exts := []string{""}
	if runtime.GOOS == "windows" {
		exts = []string{".exe", ".bat", ".cmd", ""}
	}
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" {
			continue
		}
		for _, ext := range exts {
			p := filepath.Join(dir, name+ext)
			fi, err := os.Stat(p)
			if err != nil || fi.IsDir() {
				continue
			}
			if runtime.GOOS == "windows" || fi.Mode().Perm()&0o111 != 0 {
				return p, true
			}
		}
	}
	return "", false
}

// maxConfigFile bounds what is read of config.yaml: a few settings, never megabytes.
const maxConfigFile = 1 << 20

// readTrusted reads config.yaml when it may be trusted (CONTRACT 3a): the file, the
// directory that holds it and, when it is a link (dotfiles), the link and the directory of
// its target must each be owned by the effective user or root and not writable by group or
// others. Whoever else could write any of them could add a registry host (and get handed the
// cgr.dev token), or name a browser command this program runs. Otherwise the error, an
// *untrustedError, says why in one line; nothing of the file is used.
func readTrusted(path string) ([]byte, error) {
	f, err := fsread.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := trusted(path, path, fi); err != nil {
		return nil, err
	}
	checked := map[string]bool{}
	check := func(what string) error {
		if checked[what] {
			return nil
		}
		checked[what] = true
		fi, err := os.Lstat(what)
		if err != nil {
			return err
		}
		return trusted(path, what, fi)
	}
	if err := check(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if li, err := os.Lstat(path); err == nil && li.Mode()&os.ModeSymlink != 0 {
		if err := trusted(path, path, li); err != nil {
			return nil, err
		}
	}
	real, err := filepath.EvalSymlinks(path) // where the file really is (a linked dir, a linked file)
	if err != nil {
		return nil, err
	}
	if err := check(filepath.Dir(real)); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, maxConfigFile))
}

// untrustedError: config.yaml, or a directory or link on its way, is not the user's (or
// root's) alone.
type untrustedError struct{ msg string }

func (e *untrustedError) Error() string { return e.msg }

// trusted checks one of config.yaml's file, link or directories (what; fi from Lstat, or
// Stat of the open file).
func trusted(path, what string, fi os.FileInfo) error {
	uid, ok := fileOwner(fi)
	if !ok {
		return nil // no owners here (Windows): nothing to compare
	}
	kind := "the directory holding it"
	switch {
	case what == path && fi.Mode()&os.ModeSymlink != 0:
		kind = "the link to it"
	case what == path:
		kind = "the file"
	}
	if uid != os.Geteuid() && uid != 0 {
		return &untrustedError{fmt.Sprintf("config file %s is not used: %s (%s) belongs to uid %d, not to you or root; remove it, or make it yours: chown $(id -u) %s", path, kind, what, uid, what)}
	}
	if fi.Mode()&os.ModeSymlink == 0 && fi.Mode().Perm()&0o022 != 0 {
		return &untrustedError{fmt.Sprintf("config file %s is not used: %s (%s) is writable by others (mode %04o), who could change your settings; check it, then: chmod go-w %s", path, kind, what, fi.Mode().Perm(), what)}
	}
	return nil
}
