package kubelet

// The kubelet, as far as image credentials go: a child process (this test binary, started with
// childArg) that registers the providers of a CredentialProviderConfig with the kubelet's own
// plugin code and looks images up as the kubelet's image manager does, for the pods the test
// names. A process of its own because the plugin code registers providers process-wide (a
// name twice panics) and because the kubelet's environment is what a plugin inherits: the test
// gives it a node's, not the developer's.
//
// The test drives it over its stdin and stdout, one JSON message a line. When the plugin code
// wants a service account's token (tokenAttributes), the child asks the test, which mints one
// with the emulator as the cluster's OIDC issuer, as the API server's TokenRequest would.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	credentialproviderv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	"k8s.io/kubernetes/pkg/credentialprovider"
	"k8s.io/kubernetes/pkg/credentialprovider/plugin"
	credentialprovidersecrets "k8s.io/kubernetes/pkg/credentialprovider/secrets"
	"k8s.io/kubernetes/pkg/util/parsers"
	"sigs.k8s.io/yaml"
)

// childArg, as the first argument of the test binary, makes it the kubelet (see TestMain).
const childArg = "kubelet-child"

// pod is what the kubelet knows of the pod whose image it pulls.
type pod struct {
	Namespace, Name, UID, ServiceAccount string
}

// serviceAccount is a ServiceAccount object as the kubelet's informer would return it.
type serviceAccount struct {
	Namespace, Name, UID string
	Annotations          map[string]string
}

// msg is one line between the test and the child.
type msg struct {
	Op string `json:"op"` // ready, error, serviceAccount, lookup, result, tokenRequest, token

	Error string `json:"error,omitempty"`
	// serviceAccount
	ServiceAccount *serviceAccount `json:"serviceAccount,omitempty"`
	// lookup
	Image string `json:"image,omitempty"`
	Pod   *pod   `json:"pod,omitempty"`
	// result
	Auth []found `json:"auth,omitempty"`
	// tokenRequest
	Namespace string   `json:"namespace,omitempty"`
	Name      string   `json:"name,omitempty"`
	Audiences []string `json:"audiences,omitempty"`
	BoundPod  string   `json:"boundPod,omitempty"`
	// token
	Token   string    `json:"token,omitempty"`
	Expires time.Time `json:"expires,omitempty"`
}

// found is a credential the kubelet would hand the container runtime for an image.
type found struct {
	Username, Password string
	// ServiceAccount is the account the credential was obtained for ("NS/NAME"), "" for the node's.
	ServiceAccount string
}

// runKubelet is the child: register, say ready, answer lookups until stdin closes.
func runKubelet() int {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: kubelet-child CONFIG BIN-DIR")
		return 2
	}
	configPath, binDir := os.Args[2], os.Args[3]
	in := bufio.NewReader(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	read := func() (msg, error) {
		line, err := in.ReadBytes('\n')
		if err != nil {
			return msg{}, err
		}
		var m msg
		return m, json.Unmarshal(line, &m)
	}
	var mu sync.Mutex // the plugin code may ask for tokens from its singleflight goroutine
	accounts := map[string]serviceAccount{}
	getServiceAccount := func(namespace, name string) (*corev1.ServiceAccount, error) {
		mu.Lock()
		defer mu.Unlock()
		sa, ok := accounts[namespace+"/"+name]
		if !ok {
			return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccounts"}, name)
		}
		return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Namespace: sa.Namespace, Name: sa.Name, UID: types.UID(sa.UID), Annotations: sa.Annotations,
		}}, nil
	}
	// The kubelet's token manager asks the API server (TokenRequest); here the test answers.
	getToken := func(namespace, name string, tr *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
		req := msg{Op: "tokenRequest", Namespace: namespace, Name: name, Audiences: tr.Spec.Audiences}
		if tr.Spec.BoundObjectRef != nil {
			req.BoundPod = tr.Spec.BoundObjectRef.Name
		}
		if err := out.Encode(req); err != nil {
			return nil, err
		}
		m, err := read()
		if err != nil {
			return nil, err
		}
		if m.Op != "token" || m.Error != "" {
			return nil, fmt.Errorf("token request refused: %s", m.Error)
		}
		return &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{Token: m.Token, ExpirationTimestamp: metav1.NewTime(m.Expires)}}, nil
	}
	if err := plugin.RegisterCredentialProviderPlugins(configPath, binDir, getToken, getServiceAccount); err != nil {
		_ = out.Encode(msg{Op: "error", Error: err.Error()})
		return 0
	}
	if err := out.Encode(msg{Op: "ready"}); err != nil {
		return 1
	}
	for {
		m, err := read()
		if errors.Is(err, io.EOF) {
			return 0
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "kubelet-child:", err)
			return 1
		}
		switch m.Op {
		case "serviceAccount":
			mu.Lock()
			accounts[m.ServiceAccount.Namespace+"/"+m.ServiceAccount.Name] = *m.ServiceAccount
			mu.Unlock()
			err = out.Encode(msg{Op: "ok"})
		case "lookup":
			err = out.Encode(lookup(m.Image, *m.Pod))
		default:
			err = out.Encode(msg{Op: "error", Error: "unknown op " + m.Op})
		}
		if err != nil {
			return 1
		}
	}
}

// lookup is the kubelet's image manager (pkg/kubelet/images, makeLookupPullCredentialsFunc):
// the image's repository, the external providers' keyring for the pod, no pull secrets.
func lookup(image string, p pod) msg {
	repo, _, _, err := parsers.ParseImageName(image)
	if err != nil {
		return msg{Op: "result", Error: err.Error()}
	}
	external := plugin.NewExternalCredentialProviderDockerKeyring(p.Namespace, p.Name, p.UID, p.ServiceAccount)
	keyring, err := credentialprovidersecrets.MakeDockerKeyring(nil, credentialprovider.UnionDockerKeyring{external})
	if err != nil {
		return msg{Op: "result", Error: err.Error()}
	}
	creds, _ := keyring.Lookup(repo)
	res := msg{Op: "result"}
	for _, c := range creds {
		f := found{Username: c.Username, Password: c.Password}
		if c.Source != nil && c.Source.ServiceAccount != nil {
			f.ServiceAccount = c.Source.ServiceAccount.Namespace + "/" + c.Source.ServiceAccount.Name
		}
		res.Auth = append(res.Auth, f)
	}
	return res
}

// kubelet is the test's handle on a running child.
type kubelet struct {
	t       *testing.T
	in      io.WriteCloser
	out     *bufio.Reader
	log     *syncBuffer // the kubelet's log (klog on stderr), where plugin failures end up
	execDir string      // where the plugin wrapper records each exec
	// mint answers the kubelet's token requests: a service account token for audience.
	mint func(namespace, name, audience string) string
	// tokenRequests are the token requests the plugin code made, in order.
	tokenRequests []msg
}

// startKubelet writes cfg where the kubelet reads it, puts a recording wrapper of the helper
// in the plugin directory under each provider's name, and starts the kubelet with env as its
// whole environment (the plugin inherits it, then the config's env on top).
func startKubelet(t *testing.T, cfg *kubeletconfigv1.CredentialProviderConfig, env []string, mint func(namespace, name, audience string) string) *kubelet {
	t.Helper()
	dir := t.TempDir()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	configPath := filepath.Join(dir, "credential-providers.yaml")
	binDir := filepath.Join(dir, "kubelet-credential-providers")
	execs := filepath.Join(dir, "execs")
	for _, d := range []string{binDir, execs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(configPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range cfg.Providers {
		if err := os.WriteFile(filepath.Join(binDir, p.Name), []byte(wrapper(execs, helperBin)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], childArg, configPath, binDir)
	// The kubelet is this test binary, which links etcd's authpb and the SDK: both register
	// "auth.proto" (see scripts/test.sh), a warning only with protobuf-go's documented switch.
	cmd.Env = append(env, "GOLANG_PROTOBUF_REGISTRATION_CONFLICT=warn")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	k := &kubelet{t: t, in: in, out: bufio.NewReader(outPipe), log: &syncBuffer{}, execDir: execs, mint: mint}
	cmd.Stderr = k.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if m := k.read(); m.Op != "ready" {
		t.Fatalf("the kubelet did not register the providers: %s\nconfig:\n%s", m.Error, b)
	}
	return k
}

// wrapper is the plugin as the kubelet finds it: a script that records each exec (arguments,
// the request, the answer, stderr, exit status) and runs the helper. The records hold tokens;
// they stay in the test's temp dir and are never printed.
func wrapper(execs, helper string) string {
	return `#!/bin/sh
rec="` + execs + `/$(date +%s%N)-$$"
printf '%s\n' "$@" >"$rec.args"
cat >"$rec.in"
"` + helper + `" "$@" <"$rec.in" >"$rec.out" 2>"$rec.err"
rc=$?
cat "$rec.err" >&2
cat "$rec.out"
echo "$rc" >"$rec.rc"
exit $rc
`
}

func (k *kubelet) send(m msg) {
	k.t.Helper()
	b, _ := json.Marshal(m)
	if _, err := k.in.Write(append(b, '\n')); err != nil {
		k.t.Fatalf("writing to the kubelet: %v\nits log:\n%s", err, k.log)
	}
}

// read reads the child's next message, bounded: a child that hangs fails the test.
func (k *kubelet) read() msg {
	k.t.Helper()
	type line struct {
		b   []byte
		err error
	}
	ch := make(chan line, 1)
	go func() {
		b, err := k.out.ReadBytes('\n')
		ch <- line{b, err}
	}()
	select {
	case l := <-ch:
		if l.err != nil {
			k.t.Fatalf("reading from the kubelet: %v\nits log:\n%s", l.err, k.log)
		}
		var m msg
		if err := json.Unmarshal(l.b, &m); err != nil {
			k.t.Fatalf("the kubelet wrote %q: %v", l.b, err)
		}
		return m
	case <-time.After(3 * time.Minute):
		k.t.Fatalf("the kubelet did not answer within 3 minutes\nits log:\n%s", k.log)
	}
	return msg{}
}

// setServiceAccount creates or updates a service account the kubelet can read.
func (k *kubelet) setServiceAccount(sa serviceAccount) {
	k.t.Helper()
	k.send(msg{Op: "serviceAccount", ServiceAccount: &sa})
	if m := k.read(); m.Op != "ok" {
		k.t.Fatalf("setting service account: %+v", m)
	}
}

// lookup asks the kubelet for the credentials of image for a pod, answering its token
// requests on the way, and returns what it would hand the container runtime.
func (k *kubelet) lookup(image string, p pod) []found {
	k.t.Helper()
	k.send(msg{Op: "lookup", Image: image, Pod: &p})
	for {
		m := k.read()
		switch m.Op {
		case "tokenRequest":
			k.tokenRequests = append(k.tokenRequests, m)
			if len(m.Audiences) != 1 || k.mint == nil {
				k.send(msg{Op: "token", Error: fmt.Sprintf("unexpected token request for audiences %q", m.Audiences)})
				continue
			}
			k.send(msg{Op: "token", Token: k.mint(m.Namespace, m.Name, m.Audiences[0]), Expires: time.Now().Add(time.Hour)})
		case "result":
			if m.Error != "" {
				k.t.Fatalf("lookup %s: %s", image, m.Error)
			}
			return m.Auth
		default:
			k.t.Fatalf("the kubelet wrote %+v", m)
		}
	}
}

// logged reports whether the kubelet's log holds text. Its stderr reaches the test on a pipe
// of its own, maybe after the answer on stdout: wait for it a little.
func (k *kubelet) logged(text string) bool {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(k.log.String(), text) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// execRecord is one exec of the plugin by the kubelet.
type execRecord struct {
	Args     []string
	Request  credentialproviderv1.CredentialProviderRequest
	rawReq   []byte
	Response []byte // stdout as written
	Stderr   string
	Code     int
	At       time.Time // when the answer was written (our clock)
}

// execs lists the plugin's execs so far, oldest first.
func (k *kubelet) execs() []execRecord {
	k.t.Helper()
	rcs, err := filepath.Glob(filepath.Join(k.execDir, "*.rc"))
	if err != nil {
		k.t.Fatal(err)
	}
	sort.Strings(rcs)
	var recs []execRecord
	for _, rc := range rcs {
		base := strings.TrimSuffix(rc, ".rc")
		var r execRecord
		code, _ := os.ReadFile(rc)
		r.Code, _ = strconv.Atoi(strings.TrimSpace(string(code)))
		args, _ := os.ReadFile(base + ".args")
		r.Args = strings.Fields(string(args))
		r.rawReq, _ = os.ReadFile(base + ".in")
		if err := json.Unmarshal(r.rawReq, &r.Request); err != nil {
			k.t.Fatalf("the kubelet sent a request that is not JSON: %v", err)
		}
		r.Response, _ = os.ReadFile(base + ".out")
		if fi, err := os.Stat(base + ".out"); err == nil {
			r.At = fi.ModTime()
		}
		stderr, _ := os.ReadFile(base + ".err")
		r.Stderr = string(stderr)
		recs = append(recs, r)
	}
	return recs
}

// lastExec is the most recent exec; the test fails when there was none.
func (k *kubelet) lastExec() execRecord {
	k.t.Helper()
	recs := k.execs()
	if len(recs) == 0 {
		k.t.Fatal("the kubelet never ran the plugin")
	}
	return recs[len(recs)-1]
}

// response decodes an exec's answer strictly into the v1 types (the kubelet has decoded it
// already, with its own strict codec, or it would have handed out nothing).
func (r execRecord) response(t *testing.T) credentialproviderv1.CredentialProviderResponse {
	t.Helper()
	var resp credentialproviderv1.CredentialProviderResponse
	dec := json.NewDecoder(bytes.NewReader(r.Response))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("the plugin's answer is not a CredentialProviderResponse: %v", err)
	}
	return resp
}

// syncBuffer is a bytes.Buffer the child's stderr copier and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
