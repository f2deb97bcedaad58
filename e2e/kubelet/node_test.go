package kubelet

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/e2etest"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// readme is the page whose CredentialProviderConfigs the tests feed the kubelet.
const readme = "../../internal/kube/README.md"

// node is one Kubernetes node: the emulator as cgr.dev and its issuer (and as the cluster's
// OIDC issuer), the kubelet's environment, and root's store, which the documented config names.
type node struct {
	t        *testing.T
	emu      *emulator.Emulator
	root     string
	env      map[string]string // what the kubelet runs with (and the plugin inherits)
	storeDir string            // the config's CGR_STORE_DIR, moved into the test's temp dir
}

func newNode(t *testing.T, opts emulator.Options) *node {
	t.Helper()
	emu, err := emulator.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	root := e2etest.TempHome(t)
	n := &node{t: t, emu: emu, root: root, storeDir: filepath.Join(root, "var", "lib", "docker-credential-cgr"), env: map[string]string{
		// A service manager's environment: no user's HOME, store or keychain session.
		"HOME":            filepath.Join(root, "root"),
		"PATH":            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"XDG_RUNTIME_DIR": filepath.Join(root, "run"),
		"XDG_CONFIG_HOME": filepath.Join(root, "root", ".config"),
		"XDG_DATA_HOME":   filepath.Join(root, "root", ".local", "share"),
		"CGR_AUTO_LOGIN":  "false",
	}}
	for _, kv := range emu.Env() { // the emulator in place of cgr.dev and its issuer
		k, v, _ := strings.Cut(kv, "=")
		n.env[k] = v
	}
	return n
}

func (n *node) environ() []string {
	var env []string
	for k, v := range n.env {
		env = append(env, k+"="+v)
	}
	return env
}

// admin runs the helper as an administrator of the node sets it up: the kubelet's
// environment plus the config's store (README step 2), and the fake browser for a login.
func (n *node) admin(stdin string, args ...string) (stdout, stderr string, code int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helperBin, args...)
	cmd.Env = append(n.environ(), "CGR_STORE=file", "CGR_STORE_DIR="+n.storeDir, "BROWSER="+emulatorBin+" browse")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("%v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// login stores a login session in the node's store.
func (n *node) login() {
	n.t.Helper()
	if _, stderr, code := n.admin("", "login"); code != 0 {
		n.t.Fatalf("login: exit %d: %s", code, stderr)
	}
}

// savePullToken creates a pull token with the node's session, saves it, and logs out: the
// node keeps the pull token only. It returns the token's identity.
func (n *node) savePullToken(ttl string) string {
	n.t.Helper()
	n.login()
	if _, stderr, code := n.admin("", "pull-token", "create", "--save", "--ttl", ttl); code != 0 {
		n.t.Fatalf("pull-token create --save: exit %d: %s", code, stderr)
	}
	out, stderr, code := n.admin("", "list")
	if code != 0 {
		n.t.Fatalf("list: exit %d: %s", code, stderr)
	}
	id := regexp.MustCompile(`[0-9a-f]{40}/[0-9a-f]{16}`).FindString(out)
	if id == "" {
		n.t.Fatalf("list shows no pull token: %s", out)
	}
	if _, stderr, code := n.admin("", "logout"); code != 0 {
		n.t.Fatalf("logout: exit %d: %s", code, stderr)
	}
	return id
}

// workloadIdentity gives the node a workload identity the README's way: CGR_IDENTITY and a
// token file in the provider's env. It returns the identity.
func (n *node) workloadIdentity(cfg *kubeletconfigv1.CredentialProviderConfig) string {
	n.t.Helper()
	const subject, aud = "system:serviceaccount:kube-system:node", "cgr-kubelet"
	id := n.emu.AddAssumableIdentity(n.emu.Org(), n.emu.OIDCIssuerURL(), subject, aud)
	file := filepath.Join(n.root, "var", "run", "secrets", "cgr", "token")
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(n.emu.MintOIDCToken(subject, aud, time.Hour)), 0o600); err != nil {
		n.t.Fatal(err)
	}
	p := &cfg.Providers[0]
	p.Env = append(p.Env, kubeletconfigv1.ExecEnvVar{Name: "CGR_IDENTITY", Value: id}, kubeletconfigv1.ExecEnvVar{Name: "CGR_IDENTITY_TOKEN", Value: file})
	return id
}

// Which documented config.
const (
	nodeConfig           = "node"            // the node's own credential
	serviceAccountConfig = "service-account" // tokenAttributes
)

// documentedConfigs are the README's CredentialProviderConfigs, read strictly as the kubelet's
// v1 type: the one for the node's own credential and the one with tokenAttributes.
func documentedConfigs(t *testing.T) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]byte{}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1) {
		block := dedent(string(m[1]))
		if !strings.Contains(block, "kind: CredentialProviderConfig") {
			continue
		}
		var cfg kubeletconfigv1.CredentialProviderConfig
		if err := yaml.UnmarshalStrict([]byte(block), &cfg); err != nil {
			t.Fatalf("a CredentialProviderConfig of %s is not the kubelet's v1 type: %v\n%s", readme, err, block)
		}
		which := nodeConfig
		if len(cfg.Providers) == 1 && cfg.Providers[0].TokenAttributes != nil {
			which = serviceAccountConfig
		}
		if _, dup := found[which]; dup {
			t.Fatalf("%s has two %s CredentialProviderConfigs", readme, which)
		}
		found[which] = []byte(block)
	}
	if len(found) != 2 {
		t.Fatalf("%s has %d kinds of CredentialProviderConfig; want %s and %s", readme, len(found), nodeConfig, serviceAccountConfig)
	}
	return found
}

// dedent removes the indentation a Markdown list gives a code block.
func dedent(block string) string {
	lines := strings.Split(block, "\n")
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent {
			lines[i] = l[indent:]
		}
	}
	return strings.Join(lines, "\n")
}

// config is a documented config as this node runs it: the same, with the emulator's registry
// in place of cgr.dev and the store moved into the test's temp dir.
func (n *node) config(which string) *kubeletconfigv1.CredentialProviderConfig {
	n.t.Helper()
	var cfg kubeletconfigv1.CredentialProviderConfig
	if err := yaml.UnmarshalStrict(documentedConfigs(n.t)[which], &cfg); err != nil {
		n.t.Fatal(err)
	}
	if len(cfg.Providers) != 1 {
		n.t.Fatalf("the %s config has %d providers; want 1", which, len(cfg.Providers))
	}
	p := &cfg.Providers[0]
	if len(p.MatchImages) != 1 || p.MatchImages[0] != "cgr.dev" {
		n.t.Fatalf("the %s config matches %q; want cgr.dev", which, p.MatchImages)
	}
	p.MatchImages = []string{n.emu.RegistryHost()}
	env := map[string]string{}
	for i, e := range p.Env {
		env[e.Name] = e.Value
		if e.Name == "CGR_STORE_DIR" {
			p.Env[i].Value = n.storeDir
		}
	}
	if env["CGR_STORE"] != "file" || env["CGR_STORE_DIR"] == "" {
		n.t.Fatalf("the %s config's env %v does not name the file store that README step 2 fills", which, env)
	}
	return &cfg
}

// kubelet starts a kubelet on this node with cfg; service-account tokens come from the
// emulator as the cluster's OIDC issuer.
func (n *node) kubelet(cfg *kubeletconfigv1.CredentialProviderConfig) *kubelet {
	n.t.Helper()
	return startKubelet(n.t, cfg, n.environ(), func(namespace, name, audience string) string {
		return n.emu.MintOIDCToken("system:serviceaccount:"+namespace+":"+name, audience, time.Hour)
	})
}

// privateImage is a second private repository of the org, in the same registry.
func (n *node) privateImage2() string {
	return n.emu.RegistryHost() + "/" + n.emu.Org().Name + "/other:latest"
}

// pull pulls the private image with these credentials, as the container runtime would.
func (n *node) pull(user, pass string) error {
	return n.pullImage(n.emu.PrivateImage(), &authn.Basic{Username: user, Password: pass})
}

func (n *node) pullImage(image string, auth authn.Authenticator) error {
	ref, err := name.ParseReference(image, name.Insecure)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = remote.Image(ref, remote.WithContext(ctx), remote.WithAuth(auth))
	return err
}

// claims reads a JWT's claims (unverified: the registry verifies).
func claims(t *testing.T, jwt string) *token.Token {
	t.Helper()
	tok, err := token.Parse(jwt)
	if err != nil {
		t.Fatalf("not a JWT: %v", err)
	}
	return tok
}

// noJWTIn fails when text holds something that looks like a token.
func noJWTIn(t *testing.T, what, text string) {
	t.Helper()
	if strings.Contains(text, "eyJ") {
		t.Fatalf("%s holds something that looks like a token", what)
	}
}

// oneLine fails unless text is exactly one non-empty line.
func oneLine(t *testing.T, what, text string) string {
	t.Helper()
	line := strings.TrimSuffix(text, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Fatalf("%s is %q; want one line", what, text)
	}
	return line
}

func podOf(namespace, name, serviceAccount string) pod {
	return pod{Namespace: namespace, Name: name, UID: fmt.Sprintf("uid-%s-%s", namespace, name), ServiceAccount: serviceAccount}
}
