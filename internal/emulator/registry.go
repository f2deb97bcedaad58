package emulator

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var identityIDRE = regexp.MustCompile(`^[0-9a-f]{40}(?:/[0-9a-f]{16})+$`)

type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

type registryClaims struct {
	Iss    string   `json:"iss"`
	Sub    string   `json:"sub"`
	Aud    string   `json:"aud"`
	Iat    int64    `json:"iat"`
	Nbf    int64    `json:"nbf"`
	Exp    int64    `json:"exp"`
	Jti    string   `json:"jti"`
	Access []access `json:"access"`
}

// regError is a registry error envelope: {"errors":[{"code","message"}]}.
type regError struct {
	status        int
	code, message string
}

func writeRegError(w http.ResponseWriter, e regError) {
	writeJSON(w, e.status, map[string]any{"errors": []map[string]string{{"code": e.code, "message": e.message}}})
}

var (
	errAuthRequired = regError{http.StatusUnauthorized, "UNAUTHORIZED", "Authentication required"}
	errForbidden    = regError{http.StatusForbidden, "FORBIDDEN", "Forbidden"}
)

func (e *Emulator) registryHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/token", e.handleRegistryToken)
	mux.HandleFunc("/v2/", e.handleV2)
	mux.HandleFunc("/v2", e.handleV2)
	return mux
}

// principal is who asks for a registry token.
type principal struct {
	anon bool
	sub  string
	orgs map[string]bool // org ids it may pull from
	push bool
}

func (e *Emulator) handleRegistryToken(w http.ResponseWriter, r *http.Request) {
	e.hit("registry/token")
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeRegError(w, regError{http.StatusMethodNotAllowed, "UNSUPPORTED", "method not allowed"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeRegError(w, regError{http.StatusBadRequest, "BAD_REQUEST", "malformed request"})
		return
	}
	if s := r.Form.Get("service"); s != "" && s != Audience {
		writeRegError(w, regError{http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("invalid service %q", s)})
		return
	}
	var scopes []string
	for _, s := range r.Form["scope"] {
		scopes = append(scopes, strings.Fields(s)...)
	}

	user, pass, hasBasic := r.BasicAuth()
	if r.Method == http.MethodPost && r.PostForm.Get("grant_type") != "" {
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			writeRegError(w, regError{http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("unsupported grant_type %q", gt)})
			return
		}
		if u := r.PostForm.Get("username"); u != "" || r.PostForm.Get("password") != "" {
			user, pass, hasBasic = u, r.PostForm.Get("password"), true
		}
	}

	p := &principal{anon: !hasBasic, sub: "anonymous", orgs: map[string]bool{}}
	if hasBasic {
		var rerr *regError
		p, rerr = e.authenticate(user, pass, len(scopes) > 0)
		if rerr != nil {
			writeRegError(w, *rerr)
			return
		}
	}

	var grants []access
	for _, s := range scopes {
		a, rerr := e.grant(p, s)
		if rerr != nil {
			writeRegError(w, *rerr)
			return
		}
		if a != nil {
			grants = append(grants, *a)
		}
	}

	now := e.now()
	e.mu.Lock()
	ttl := e.registryTTL
	e.mu.Unlock()
	tok := e.registryKey.sign(registryClaims{
		Iss: e.registryURL, Sub: p.sub, Aud: Audience, Iat: now.Unix(), Nbf: now.Unix(), Exp: now.Add(ttl).Unix(),
		Jti: randHex(8), Access: grants,
	})
	writeJSON(w, http.StatusOK, map[string]any{
		"token": tok, "access_token": tok, "expires_in": int64(ttl.Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
	})
}

// authenticate turns a Basic pair into a principal. withScope tells a pull
// (expired pull token → 400) from a login (→ 403).
func (e *Emulator) authenticate(user, pass string, withScope bool) (*principal, *regError) {
	p := &principal{orgs: map[string]bool{}}
	switch {
	case user == "_token":
		c, rerr := e.verifyChainguard(pass, Audience)
		if rerr != nil {
			return nil, &errForbidden
		}
		p.sub = c.Sub
	case identityIDRE.MatchString(user):
		sub, _, rerr := e.exchange(pass, user)
		if rerr != nil {
			if rerr.Code == codeInvalidArgument && withScope {
				return nil, &regError{http.StatusBadRequest, "BAD_REQUEST", rerr.GRPCStatus().Err().Error()}
			}
			return nil, &errForbidden
		}
		p.sub = sub
	default:
		return nil, &errForbidden
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if u, ok := e.users[p.sub]; ok {
		for _, o := range u.orgs {
			p.orgs[o] = true
		}
		p.push = true
		return p, nil
	}
	if id, ok := e.identities[p.sub]; ok {
		for _, r := range e.roles {
			if !id.Roles[r.ID] {
				continue
			}
			for _, c := range r.Capabilities {
				switch c {
				case "registry.pull":
					p.orgs[id.Parent] = true
				case "registry.push":
					p.push = true
				}
			}
		}
		return p, nil
	}
	return nil, &errForbidden
}

// grant decides one scope for p: the access granted, or the error to answer.
func (e *Emulator) grant(p *principal, scope string) (*access, *regError) {
	parts := strings.Split(scope, ":")
	if len(parts) < 3 || parts[0] != "repository" {
		return nil, nil // other resource types: nothing granted
	}
	repo := strings.Join(parts[1:len(parts)-1], ":")
	want := strings.Split(parts[len(parts)-1], ",")
	org, _, _ := strings.Cut(repo, "/")

	e.mu.Lock()
	known := e.repos[repo]
	orgID, orgKnown := e.orgByName[org]
	entitled := orgKnown && e.orgs[orgID].entitled
	e.mu.Unlock()

	allowed := map[string]bool{}
	switch {
	case org == "chainguard":
		if p.anon && !known {
			return nil, &errForbidden
		}
		allowed["pull"] = true
	case !orgKnown:
		if p.anon {
			return nil, &errForbidden
		}
		return nil, &regError{http.StatusBadRequest, "BAD_REQUEST", fmt.Sprintf("rpc error: code = InvalidArgument desc = unable to resolve %q", org)}
	case !entitled:
		return nil, &errForbidden
	case p.anon:
		return nil, &errAuthRequired
	case !p.orgs[orgID]:
		return nil, &errForbidden
	default:
		allowed["pull"] = true
		allowed["push"] = p.push
	}
	a := &access{Type: "repository", Name: repo}
	for _, w := range want {
		if w == "*" {
			for _, x := range []string{"pull", "push"} {
				if allowed[x] {
					a.Actions = append(a.Actions, x)
				}
			}
			continue
		}
		if allowed[w] {
			a.Actions = append(a.Actions, w)
		}
	}
	if len(a.Actions) == 0 {
		return nil, &errForbidden
	}
	return a, nil
}

// v2Repo splits a /v2/ path into its repository name ("" for /v2/ itself
// and paths that name none).
func v2Repo(path string) string {
	p := strings.TrimPrefix(strings.TrimPrefix(path, "/v2"), "/")
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(p, sep); i > 0 {
			return p[:i]
		}
	}
	return ""
}

func (e *Emulator) challenge(w http.ResponseWriter, repo string, push bool) {
	c := fmt.Sprintf(`Bearer realm="%s/token",service="%s"`, e.registryURL, Audience)
	if repo != "" {
		actions := "pull"
		if push {
			actions = "pull,push"
		}
		c += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, actions)
	}
	w.Header().Set("WWW-Authenticate", c)
	writeRegError(w, errAuthRequired)
}

func (e *Emulator) handleV2(w http.ResponseWriter, r *http.Request) {
	e.hit("registry/v2")
	repo := v2Repo(r.URL.Path)
	push := r.Method != http.MethodGet && r.Method != http.MethodHead
	c, ok := e.verifyRegistryToken(bearer(r))
	if !ok {
		e.challenge(w, repo, push)
		return
	}
	if repo != "" {
		need := "pull"
		if push {
			need = "push"
		}
		if !c.allows(repo, need) {
			writeRegError(w, regError{http.StatusForbidden, "FORBIDDEN", fmt.Sprintf("caller does not have the required capabilities at %q", repo)})
			return
		}
		e.mu.Lock()
		known := e.repos[repo]
		e.mu.Unlock()
		if !push && !known {
			writeRegError(w, regError{http.StatusNotFound, "NAME_UNKNOWN", fmt.Sprintf("repository does not exist %q", repo)})
			return
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	e.ggcr.ServeHTTP(sw, r)
	// A repository exists once something was pushed into it: a manifest, or a blob (the
	// Docker Engine's pusher checks each blob it uploaded with a HEAD before it pushes the
	// manifest, as a registry allows).
	if repo != "" && push && sw.status == http.StatusCreated {
		e.mu.Lock()
		e.repos[repo] = true
		e.mu.Unlock()
	}
}

func (c *inClaims) allows(repo, action string) bool {
	for _, a := range c.Access {
		if a.Type != "repository" || a.Name != repo {
			continue
		}
		for _, x := range a.Actions {
			if x == action || x == "*" {
				return true
			}
		}
	}
	return false
}

func (e *Emulator) verifyRegistryToken(raw string) (*inClaims, bool) {
	if raw == "" {
		return nil, false
	}
	tok, c, err := parseUnverified(raw)
	if err != nil || c.Iss != e.registryURL {
		return nil, false
	}
	vc, err := verifyWith(tok, []any{&e.registryKey.priv.PublicKey}, e.now())
	if err != nil || !vc.hasAud(Audience) {
		return nil, false
	}
	return vc, true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// handlerTransport serves requests straight from a handler, in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	sr := r.Clone(r.Context())
	if sr.Body == nil {
		sr.Body = http.NoBody // as a server request always has one
	}
	t.h.ServeHTTP(rec, sr)
	res := rec.Result()
	res.Request = r
	return res, nil
}

// seed pushes a small runnable-format image (one layer holding a text file)
// as repo:tag, straight into the registry behind the token auth.
func (e *Emulator) seed(repoTag, content string) error {
	ref, err := name.ParseReference(e.RegistryHost()+"/"+repoTag, name.Insecure)
	if err != nil {
		return fmt.Errorf("seed %s: %w", repoTag, err)
	}
	img, err := seedImage(content)
	if err != nil {
		return fmt.Errorf("seed %s: %w", repoTag, err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(handlerTransport{e.ggcr})); err != nil {
		return fmt.Errorf("seed %s: %w", repoTag, err)
	}
	e.mu.Lock()
	e.repos[ref.Context().RepositoryStr()] = true
	e.mu.Unlock()
	return nil
}

func seedImage(content string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte(content + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "etc/cgr-emulator", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(0, 0)}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(body); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		return nil, err
	}
	cf, err := empty.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.RootFS.Type = "layers"
	cf.Config.Cmd = []string{"/etc/cgr-emulator"}
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layer)
}
