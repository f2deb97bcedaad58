package clientconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// What can undo a correct config file from outside it: an environment variable that Docker
// reads first, Docker Desktop rewriting the file, and helm asking the platform's keychain
// before it ever reads Docker's file.

// DockerAuthConfigVar holds logins that Docker CLI 28.3 and later (docker/cli#6008), and every
// client built on its config code (buildx, compose, go-containerregistry's keychain in crane,
// ko and cosign), use before credHelpers and credsStore:
// a served host listed there never reaches the helper (docker/cli#6156). GitLab runners
// export it into every job when a project defines it to pull private job images.
const DockerAuthConfigVar = "DOCKER_AUTH_CONFIG"

// DockerAuthOrderVar is the switch docker/cli#6171 proposed (`config,env` would put
// config.json first). The pull request was never merged: no released Docker CLI reads it.
const DockerAuthOrderVar = "DOCKER_AUTH_ORDER"

// dockerEnvAuths parses DOCKER_AUTH_CONFIG as docker/cli does (parseEnvConfig): one JSON
// object with only "auths", every entry holding a base64 "user:secret" in "auth". Docker
// ignores a value it cannot parse (it says so on stderr at every command), so the error here
// means the variable shadows nothing.
func dockerEnvAuths(v string) ([]string, error) {
	var env struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("more than one JSON object")
	}
	var keys []string
	for k, e := range env.Auths {
		if e.Auth == "" {
			return nil, fmt.Errorf("no auth for %s", k)
		}
		b, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return nil, fmt.Errorf("auth for %s: %w", k, err)
		}
		if user, _, ok := bytes.Cut(b, []byte(":")); !ok || len(user) == 0 {
			return nil, fmt.Errorf("auth for %s is not user:secret", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// dockerEnvFindings: a login for a served host in DOCKER_AUTH_CONFIG wins over the
// credHelpers entry (exact key, as docker/cli's memory store looks it up; other keys of the
// host are listed too, since go-containerregistry and others normalize them).
func dockerEnvFindings(a Account, path string, hosts []string) []Finding {
	v := a.env(DockerAuthConfigVar)
	if v == "" {
		return nil
	}
	keys, err := dockerEnvAuths(v)
	if err != nil {
		return nil // Docker ignores it; it shadows nothing
	}
	var shadowing, others []string
	for _, k := range keys {
		if h, _ := authKeyHost(k); served(hosts, h) {
			shadowing = append(shadowing, k)
		} else {
			others = append(others, k)
		}
	}
	if len(shadowing) == 0 {
		return nil
	}
	saw := fmt.Sprintf("%s holds a login for %s; Docker CLI 28.3 and later and the tools built on its config code (buildx, compose, crane, ko, cosign) use it before credHelpers, so they never ask %s (docker/cli#6156)",
		DockerAuthConfigVar, strings.Join(shadowing, ", "), HelperBinary)
	if o := a.env(DockerAuthOrderVar); o != "" {
		saw += fmt.Sprintf("; %s=%s does not change that: no released Docker CLI reads it (docker/cli#6171 was not merged)", DockerAuthOrderVar, o)
	}
	if a.env("GITLAB_CI") != "" {
		saw += "; GitLab sets it from the project's CI/CD variable of that name, which the runner has already used to pull the job's image"
	}
	fix := "unset " + DockerAuthConfigVar
	if len(others) > 0 {
		// Keep the other registries' logins: drop only the served hosts, without printing
		// (or echoing into argv) any secret the variable holds.
		var dels []string
		for _, k := range shadowing {
			q, _ := json.Marshal(k)
			dels = append(dels, fmt.Sprintf(".auths[%s]", q))
		}
		fix = fmt.Sprintf(`export %s="$(printf %%s "$%s" | jq -c 'del(%s)')"`, DockerAuthConfigVar, DockerAuthConfigVar, strings.Join(dels, ", "))
	}
	if a.env(DockerAuthOrderVar) != "" {
		fix += " && unset " + DockerAuthOrderVar
	}
	return []Finding{{Level: Fail, Account: a.Name, Client: Docker, Path: "$" + DockerAuthConfigVar, Host: shadowing[0], Env: DockerAuthConfigVar, Saw: saw, Fix: fix}}
}

// desktopStores are the credsStore values Docker Desktop writes (a slice: a map literal is
// built by package initialisation on every start, a get's included).
var desktopStores = []string{"desktop", "desktop.exe"}

// dockerDesktop reports whether Docker Desktop manages this Docker config: its credential
// store is named in the file, or its helper is installed.
func dockerDesktop(a Account, info fileInfo) bool {
	if slices.Contains(desktopStores, info.credsStore) {
		return true
	}
	for _, h := range info.helpers {
		if slices.Contains(desktopStores, h) {
			return true
		}
	}
	for _, name := range desktopStores {
		if _, ok := LookPath("docker-credential-"+name, a.env("PATH")); ok {
			return true
		}
	}
	return false
}

// desktopFinding: Docker Desktop writes "credsStore": "desktop" back into config.json when it
// starts (docker/for-win#9843, docker/for-mac#6295), so a host that reaches the helper only
// through "credsStore": "cgr" is unwired at the next restart; a credHelpers entry survives.
func desktopFinding(a Account, path string, hosts []string) Finding {
	return Finding{Level: Warn, Account: a.Name, Client: Docker, Path: path, Host: hosts[0],
		Saw: fmt.Sprintf(`%s reaches %s only through "credsStore": %q; Docker Desktop writes its own credsStore back into this file when it starts, and then no helper answers for it; a credHelpers entry survives that`,
			strings.Join(hosts, ", "), HelperBinary, Helper),
		Fix: fmt.Sprintf("%s configure --docker", HelperBinary)}
}

// nativeStore is the credential store oras-go picks when a Docker-format file configures no
// login at all (DynamicStore with DetectDefaultNativeStore, getDefaultHelperSuffix): the
// platform's default helper when it is on PATH, else none.
func nativeStore(a Account) string {
	var names []string
	switch a.goos() {
	case "darwin":
		names = []string{"osxkeychain"}
	case "windows":
		names = []string{"wincred"}
	default:
		// pass when the pass program is installed, else secretservice.
		if _, ok := LookPath("pass", a.env("PATH")); ok {
			names = []string{"pass"}
		} else {
			names = []string{"secretservice"}
		}
	}
	for _, n := range names {
		if _, ok := LookPath("docker-credential-"+n, a.env("PATH")); ok {
			return n
		}
	}
	return ""
}

// helmFallbackFinding is the finding for a served host that helm's own registry config does
// not route, when Docker's config does. Since 3.18 (oras-go v2) helm reads its own file
// first and Docker's config.json only as a fallback; when its own file configures no login,
// it asks the platform's credential store for every host, and the fallback happens only when
// that store answers "not found": its error (no D-Bus session in CI or over ssh, a locked
// keychain) ends the lookup, and its old login for the host answers instead of the helper.
// Helm up to 3.17 read Docker's credHelpers through docker/cli and never did this. No later
// helm release (3.19, 4.x) changed it: wiring helm's own file is the fix.
func helmFallbackFinding(a Account, path, host string, ownConfigured bool) Finding {
	f := Finding{Level: Warn, Account: a.Name, Client: Helm, Path: path, Host: host,
		Fix: fmt.Sprintf("%s configure --helm", HelperBinary)}
	store := ""
	if !ownConfigured {
		store = nativeStore(a)
	}
	if store == "" {
		f.Saw = fmt.Sprintf("no credHelpers entry for %s: helm reaches %s only through its fallback to Docker's config.json", host, HelperBinary)
		return f
	}
	f.Level = Fail
	f.Saw = fmt.Sprintf("no credHelpers entry for %s: helm 3.18 and later ask docker-credential-%s (found on PATH) before Docker's credHelpers and stop at its error, so helm does not reach %s", host, store, HelperBinary)
	return f
}
