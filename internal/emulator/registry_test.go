package emulator

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func basic(user, pass string) authn.Authenticator {
	return &authn.Basic{Username: user, Password: pass}
}

func TestChallengeAndErrors(t *testing.T) {
	e := start(t, Options{})
	base := "http://" + e.RegistryHost()
	r := do(t, "GET", base+"/v2/", "", "", nil)
	want := fmt.Sprintf(`Bearer realm="%s/token",service="cgr.dev"`, base)
	if r.status != 401 || r.header.Get("WWW-Authenticate") != want {
		t.Errorf("/v2/: %d %q, want 401 %q", r.status, r.header.Get("WWW-Authenticate"), want)
	}
	r = do(t, "GET", base+"/v2/acme.example/app/manifests/latest", "garbage", "", nil)
	if got := r.header.Get("WWW-Authenticate"); got != want+`,scope="repository:acme.example/app:pull"` {
		t.Errorf("repo challenge = %q", got)
	}
	assertRegErr(t, r, 401, "UNAUTHORIZED", "Authentication required")

	tokenURL := base + "/token?service=cgr.dev&scope="
	assertRegErr(t, do(t, "GET", tokenURL+"repository:acme.example/app:pull", "", "", nil), 401, "UNAUTHORIZED", "Authentication required")
	assertRegErr(t, do(t, "GET", tokenURL+"repository:nosuchorg/app:pull", "", "", nil), 403, "FORBIDDEN", "Forbidden")
	assertRegErr(t, do(t, "GET", tokenURL+"repository:chainguard/nosuch:pull", "", "", nil), 403, "FORBIDDEN", "Forbidden")

	// A valid token, a missing repository.
	tok := e.MintToken(e.User().ID, "cgr.dev")
	req, _ := http.NewRequest("GET", tokenURL+"repository:acme.example/nosuch:pull", nil)
	req.SetBasicAuth("_token", tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("/token for a missing repo: %v %v", err, res)
	}
	var tr map[string]any
	json.NewDecoder(res.Body).Decode(&tr)
	res.Body.Close()
	if tr["token"] == "" || tr["token"] != tr["access_token"] || tr["expires_in"] != float64(300) || tr["issued_at"] == "" {
		t.Errorf("token answer keys %v", keys2(tr))
	}
	assertRegErr(t, do(t, "GET", base+"/v2/acme.example/nosuch/manifests/latest", tr["token"].(string), "", nil),
		404, "NAME_UNKNOWN", `repository does not exist "acme.example/nosuch"`)
	// Good for that scope only.
	assertRegErr(t, do(t, "GET", base+"/v2/acme.example/app/manifests/latest", tr["token"].(string), "", nil),
		403, "FORBIDDEN", `caller does not have the required capabilities at "acme.example/app"`)

	// An expired _token and an email as username.
	e.Clock().Advance(2 * time.Hour)
	if err := pull(t, e.PrivateImage(), basic("_token", tok)); statusOf(err) != 403 {
		t.Errorf("expired _token: %v, want 403", err)
	}
	if err := pull(t, e.PrivateImage(), basic(e.User().Email, e.MintToken(e.User().ID, "cgr.dev"))); statusOf(err) != 403 {
		t.Errorf("email as username: %v, want 403", err)
	}
}

func assertRegErr(t *testing.T, r resp, status int, code, msg string) {
	t.Helper()
	var body struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != status || len(body.Errors) != 1 ||
		body.Errors[0].Code != code || body.Errors[0].Message != msg {
		t.Errorf("got %d %s, want %d %s %q", r.status, r.body, status, code, msg)
	}
}

func TestEntitlementAndMembership(t *testing.T) {
	e := start(t, Options{})
	tok := e.MintToken(e.User().ID, "cgr.dev")
	other := e.AddOrg("other.example")
	if err := pull(t, e.RegistryHost()+"/other.example/app:latest", basic("_token", tok)); statusOf(err) != 403 {
		t.Errorf("pull from a foreign org: %v, want 403", err)
	}
	stranger := e.AddUser("x@other.example", other)
	if err := pull(t, e.RegistryHost()+"/other.example/app:latest", basic("_token", e.MintToken(stranger.ID, "cgr.dev"))); err != nil {
		t.Errorf("member pull from AddOrg's image: %v", err)
	}
	e.SetEntitled(e.Org(), false)
	if err := pull(t, e.PrivateImage(), basic("_token", tok)); statusOf(err) != 403 {
		t.Errorf("pull without entitlement: %v, want 403", err)
	}
	e.SetEntitled(e.Org(), true)
	if err := pull(t, e.PrivateImage(), basic("_token", tok)); err != nil {
		t.Errorf("pull with entitlement back: %v", err)
	}
	if err := pull(t, e.RegistryHost()+"/nosuchorg/app:latest", basic("_token", tok)); statusOf(err) != 400 {
		t.Errorf("pull from an unresolvable org: %v, want 400", err)
	}
}

func TestUserCanPush(t *testing.T) {
	e := start(t, Options{})
	tok := e.MintToken(e.User().ID, "cgr.dev")
	img, _ := random.Image(64, 1)
	ref, _ := name.ParseReference(e.RegistryHost() + "/acme.example/charts/demo:0.1.0")
	if err := remote.Write(ref, img, remote.WithAuth(basic("_token", tok))); err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := pull(t, ref.String(), basic("_token", tok)); err != nil {
		t.Errorf("pull of the pushed image: %v", err)
	}
	pub, _ := name.ParseReference(e.RegistryHost() + "/chainguard/mine:latest")
	if err := remote.Write(pub, img, remote.WithAuth(basic("_token", tok))); statusOf(err) != 403 {
		t.Errorf("push into chainguard/: %v, want 403", err)
	}
}

func TestHelmStylePostToken(t *testing.T) {
	e := start(t, Options{})
	tok := e.MintToken(e.User().ID, "cgr.dev")
	r := do(t, "POST", "http://"+e.RegistryHost()+"/token", "", formType, form("grant_type", "password", "service", "cgr.dev",
		"scope", "repository:acme.example/app:pull", "username", "_token", "password", tok, "client_id", "helm"))
	if r.status != 200 || r.json(t)["access_token"] == "" {
		t.Errorf("POST /token: %d %s", r.status, r.body)
	}
}

// pullTokenJWT is what a client signs with the key it registered.
func pullTokenJWT(t *testing.T, key *rsa.PrivateKey, issuer, sub string, iat time.Time, ttl time.Duration) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(map[string]any{
		"iss": PullTokenIssuer, "sub": sub, "aud": issuer, "iat": iat.Unix(), "exp": iat.Add(ttl).Unix(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPullTokenThroughAPI(t *testing.T) {
	e := start(t, Options{})
	rt := browserLogin(t, e).Get("refresh_token")
	r := do(t, "POST", e.IssuerURL()+"/sts/exchange_refresh_token", rt, formType, form("aud", e.APIURL()))
	if r.status != 200 {
		t.Fatalf("API token: %d %s", r.status, r.body)
	}
	api := r.json(t)["token"].(map[string]any)["token"].(string)

	groups := do(t, "GET", e.APIURL()+"/iam/v1/groups", api, "", nil).json(t)["items"].([]any)
	if len(groups) != 1 || groups[0].(map[string]any)["id"] != e.Org().ID || groups[0].(map[string]any)["name"] != e.Org().Name {
		t.Errorf("groups = %v", groups)
	}
	roles := do(t, "GET", e.APIURL()+"/iam/v1/roles?name=registry.pull", api, "", nil).json(t)["items"].([]any)
	if len(roles) != 1 {
		t.Fatalf("roles = %v", roles)
	}
	roleID := roles[0].(map[string]any)["id"].(string)

	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, Algorithm: "RS256", Use: "sig"}}})
	sub := "pull-token-" + strings.Repeat("ab", 20)
	now := e.Clock().Now()
	ttl := 48 * time.Hour
	create := func(body any) resp {
		b, _ := json.Marshal(body)
		return do(t, "POST", e.APIURL()+"/iam/v1/identities/"+e.Org().ID, api, "application/json", bytes.NewReader(b))
	}
	static := map[string]any{"issuer": PullTokenIssuer, "subject": sub, "issuerKeys": string(jwks), "expiration": now.Add(ttl).UTC().Format(time.RFC3339)}
	r = create(map[string]any{"name": "pull-token", "description": "test", "static": static})
	if r.status != 200 {
		t.Fatalf("create identity: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	if !identityIDRE.MatchString(id) || !strings.HasPrefix(id, e.Org().ID+"/") {
		t.Fatalf("identity id %q", id)
	}
	// The generated gateway discards unknown JSON fields (grpc-gateway's default
	// UnmarshalOptions), as the real API does: such a create succeeds.
	r = create(map[string]any{"name": "x", "static": static, "bogus": 1})
	if r.status != 200 {
		t.Fatalf("create with an unknown field: %d %s, want 200 (the gateway discards it)", r.status, r.body)
	}
	e.DeleteIdentity(r.json(t)["id"].(string))
	// Strictness of create.
	for name, body := range map[string]any{
		"no static":   map[string]any{"name": "x"},
		"no name":     map[string]any{"static": static},
		"private key": map[string]any{"name": "x", "static": with(static, "issuerKeys", privJWKS(key))},
		"past expiry": map[string]any{"name": "x", "static": with(static, "expiration", now.Add(-time.Hour).UTC().Format(time.RFC3339))},
		"too long":    map[string]any{"name": "x", "static": with(static, "expiration", now.Add(9000*time.Hour).UTC().Format(time.RFC3339))},
	} {
		if r := create(body); r.status != 400 || r.json(t)["code"] != float64(3) {
			t.Errorf("create with %s: %d %s", name, r.status, r.body)
		}
	}

	jwtTok := pullTokenJWT(t, key, e.IssuerURL(), sub, now, ttl)
	if err := pull(t, e.PrivateImage(), basic(id, jwtTok)); statusOf(err) != 403 {
		t.Errorf("pull before the role binding: %v, want 403", err)
	}
	b, _ := json.Marshal(map[string]string{"identity": id, "role": roleID})
	r = do(t, "POST", e.APIURL()+"/iam/v1/rolebindings/"+e.Org().ID, api, "application/json", bytes.NewReader(b))
	if m := r.json(t); r.status != 200 || m["identity"] != id || m["group"] != e.Org().ID || m["role"] != roleID || m["id"] == "" {
		t.Fatalf("role binding: %d %s", r.status, r.body)
	}
	if err := pull(t, e.PrivateImage(), basic(id, jwtTok)); err != nil {
		t.Fatalf("pull with the pull token: %v", err)
	}
	items := do(t, "GET", e.APIURL()+"/iam/v1/identities?uidp.childrenOf="+e.Org().ID, api, "", nil).json(t)["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Errorf("list = %v", items)
	}
	if one := do(t, "GET", e.APIURL()+"/iam/v1/identities?id="+id, api, "", nil).json(t)["items"].([]any); len(one) != 1 {
		t.Errorf("list by id = %v", one)
	}

	// Past the identity's expiration: 400 during a pull, 403 on a login.
	e.Clock().Advance(ttl + time.Minute)
	err := pull(t, e.PrivateImage(), basic(id, jwtTok))
	if statusOf(err) != 400 || !strings.Contains(err.Error(), "rpc error: code = InvalidArgument desc = this identity's keys have expired") {
		t.Errorf("expired pull token: %v", err)
	}
	req, _ := http.NewRequest("GET", "http://"+e.RegistryHost()+"/token?service=cgr.dev&scope=repository:acme.example/app:pull", nil)
	req.SetBasicAuth(id, jwtTok)
	res, _ := http.DefaultClient.Do(req)
	var body bytes.Buffer
	body.ReadFrom(res.Body)
	res.Body.Close()
	assertRegErr(t, resp{status: res.StatusCode, body: body.Bytes()}, 400, "BAD_REQUEST", "rpc error: code = InvalidArgument desc = this identity's keys have expired")
	r = do(t, "POST", e.IssuerURL()+"/sts/exchange", jwtTok, formType, form("aud", "cgr.dev", "identity", id))
	if m := r.json(t); r.status != 400 || m["code"] != float64(3) || m["message"] != "this identity's keys have expired" {
		t.Errorf("STS with the expired identity: %d %s", r.status, r.body)
	}

	api2 := e.MintToken(e.User().ID, e.APIURL())
	if r := do(t, "DELETE", e.APIURL()+"/iam/v1/identities/"+id, api2, "", nil); r.status != 200 || string(bytes.TrimSpace(r.body)) != "{}" {
		t.Errorf("delete: %d %s", r.status, r.body)
	}
	if r := do(t, "DELETE", e.APIURL()+"/iam/v1/identities/"+id, api2, "", nil); r.status != 404 {
		t.Errorf("delete again: %d %s", r.status, r.body)
	}
	for _, c := range []string{"api/roles", "api/groups", "api/identities.create", "api/rolebindings.create", "api/identities.list", "api/identities.delete"} {
		if e.Count(c) == 0 {
			t.Errorf("counter %s is 0", c)
		}
	}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}

func privJWKS(k *rsa.PrivateKey) string {
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, Algorithm: "RS256"}}})
	return string(b)
}

func TestAPIAuth(t *testing.T) {
	e := start(t, Options{})
	// A registry-audience token is not good for the API.
	if r := do(t, "GET", e.APIURL()+"/iam/v1/groups", e.MintToken(e.User().ID, "cgr.dev"), "", nil); r.status != 401 {
		t.Errorf("cgr.dev token at the API: %d", r.status)
	}
	other := e.AddOrg("other.example")
	api := e.MintToken(e.User().ID, e.APIURL())
	if r := do(t, "GET", e.APIURL()+"/iam/v1/identities?uidp.childrenOf="+other.ID, api, "", nil); r.status != 403 {
		t.Errorf("list in a foreign org: %d", r.status)
	}
	if r := do(t, "POST", e.APIURL()+"/iam/v1/identities/"+other.ID, api, "application/json", strings.NewReader(`{}`)); r.status != 403 {
		t.Errorf("create in a foreign org: %d", r.status)
	}
}

func TestDockerEnginePull(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skip("no Docker Engine: docker info failed")
	}
	e := start(t, Options{})
	dockerCfg := t.TempDir() // never touch the user's docker config
	docker := func(stdin string, args ...string) (string, error) {
		cmd := exec.Command("docker", append([]string{"--config", dockerCfg}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		docker("", "rmi", "-f", e.PublicImage(), e.PrivateImage())
	})
	if out, err := docker("", "pull", e.PublicImage()); err != nil {
		t.Fatalf("docker pull %s: %v\n%s", e.PublicImage(), err, out)
	}
	if out, err := docker("", "pull", e.PrivateImage()); err == nil || !strings.Contains(out, "unauthorized") {
		t.Errorf("anonymous docker pull of the private image: %v\n%s", err, out)
	}
	// docker login would go to the machine's default credential store; an
	// auths entry in the private config is what the CLI hands the daemon too.
	tok := e.MintToken(e.User().ID, "cgr.dev")
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, e.RegistryHost(), base64.StdEncoding.EncodeToString([]byte("_token:"+tok)))
	if err := os.WriteFile(filepath.Join(dockerCfg, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := docker("", "pull", e.PrivateImage()); err != nil {
		t.Fatalf("docker pull %s: %v\n%s", e.PrivateImage(), err, out)
	}
}
