package doctor

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/lazy"
	"github.com/cgrtools/docker-credential-cgr/internal/safetext"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// Probe is what ProbeImage learned: how far a pull got and, when it stopped, why.
type Probe struct {
	Status     Status `json:"status"`
	Step       string `json:"step"`        // "ping", "token", "manifest": where it stopped (or "manifest" when all went well)
	HTTPStatus int    `json:"http_status"` // of the last answer
	Code       string `json:"code,omitempty"`
	Message    string `json:"message,omitempty"` // the registry's own words
	Cause      string `json:"cause"`
	Fix        string `json:"fix,omitempty"`
	TokenOrg   string `json:"token_org,omitempty"` // org id of the credential, when it names one
	ImageOrg   string `json:"image_org"`           // first path segment of the repository
	Anonymous  bool   `json:"anonymous"`
}

var (
	identityRE = lazy.Regexp{Expr: `^([0-9a-f]{40})(?:/[0-9a-f]{16})+$`}
	// registry error bodies: {"errors":[{"code","message"}]}
)

type regErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// ProbeImage does what a client does for a pull of host/repo (repo may end in :tag or
// @digest; default tag latest) and says where it stops: GET /v2/ for the challenge, GET the
// realm with scope=repository:<repo>:pull and Basic username:secret (none when username is
// ""), then GET the manifest with the registry token. Answers map to causes as PROTOCOL.md
// section 7 lists them. Plain http only for loopback hosts.
//
// The credential goes only to the registry's own realm (ownRealm: on host itself, over https,
// or plain http to a loopback host), and no request that carries one follows a redirect: a
// registry, or whoever answers in its name, must not be able to name another place to send
// the helper's token to (CONTRACT 3a).
func ProbeImage(ctx context.Context, host, repo, username, secret string, hc *http.Client) Probe {
	if hc == nil {
		hc = http.DefaultClient
	}
	hc = noRedirects(hc)
	name, ref := splitRef(repo)
	org, _, _ := strings.Cut(name, "/")
	p := Probe{ImageOrg: org, Anonymous: username == "", TokenOrg: tokenOrg(username, secret)}
	scheme := "https"
	if h, _, err := net.SplitHostPort(host); (err == nil && config.IsLoopback(h)) || config.IsLoopback(host) {
		scheme = "http"
	}

	// 1. the challenge
	p.Step = "ping"
	res, body, err := get(ctx, hc, scheme+"://"+host+"/v2/", "")
	if err != nil {
		p.Status, p.Cause = Fail, fmt.Sprintf("cannot reach %s: %v", host, err)
		p.Fix = "check the network and proxy settings (HTTPS_PROXY, NO_PROXY) for " + host
		return p
	}
	p.HTTPStatus = res.StatusCode
	var bearer string
	switch res.StatusCode {
	case http.StatusOK:
		// no auth needed: go straight to the manifest
	case http.StatusUnauthorized:
		realm, service, ok := challenge(res.Header.Get("WWW-Authenticate"))
		if !ok {
			p.Status, p.Cause = Fail, fmt.Sprintf("%s answered 401 without a Bearer challenge (%s)", host, safetext.Line(res.Header.Get("WWW-Authenticate")))
			return p
		}
		// 2. the registry token
		p.Step = "token"
		if err := ownRealm(host, realm); err != nil {
			p.Status = Fail
			p.Cause = fmt.Sprintf("%s names %s as its token endpoint, which is not its own (%v): the helper's credential was not sent there", host, safetext.Line(realm), err)
			p.Fix = fmt.Sprintf("check that %s is a Chainguard registry (CGR_REGISTRY) and that nothing on the way answers in its name", host)
			return p
		}
		q := url.Values{"scope": {"repository:" + name + ":pull"}, "service": {service}}
		u := realm + "?" + q.Encode()
		if strings.Contains(realm, "?") {
			u = realm + "&" + q.Encode()
		}
		auth := ""
		if username != "" {
			auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+secret))
		}
		res, body, err = get(ctx, hc, u, auth)
		if err != nil {
			p.Status, p.Cause = Fail, fmt.Sprintf("cannot reach the token endpoint %s: %v", realm, err)
			return p
		}
		p.HTTPStatus = res.StatusCode
		if res.StatusCode >= 300 && res.StatusCode < 400 {
			p.Status, p.Cause = Fail, redirected("the token endpoint "+safetext.Line(realm), res)
			return p
		}
		if res.StatusCode != http.StatusOK {
			p.Code, p.Message = regError(body)
			p.Status = Fail
			p.Cause, p.Fix = tokenCause(p, res.StatusCode, name)
			return p
		}
		var tr struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(body, &tr)
		bearer = tr.Token
		if bearer == "" {
			bearer = tr.AccessToken
		}
		if bearer == "" {
			p.Status, p.Cause = Fail, "the token endpoint answered 200 without a token"
			return p
		}
		bearer = "Bearer " + bearer
	default:
		p.Status, p.Cause = Fail, fmt.Sprintf("%s/v2/ answered %s", host, res.Status)
		return p
	}

	// 3. the manifest
	p.Step = "manifest"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/"+name+"/manifests/"+ref, nil)
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
	}, ", "))
	if bearer != "" {
		req.Header.Set("Authorization", bearer)
	}
	res, body, err = do(hc, req)
	if err != nil {
		p.Status, p.Cause = Fail, fmt.Sprintf("cannot fetch the manifest: %v", err)
		return p
	}
	p.HTTPStatus = res.StatusCode
	p.Code, p.Message = regError(body)
	switch res.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		p.Status, p.Cause = Fail, redirected("the manifest request", res)
	case http.StatusOK:
		p.Status, p.Cause = OK, fmt.Sprintf("%s/%s:%s can be pulled", host, name, ref)
		if p.Anonymous {
			p.Cause += " (anonymously)"
		}
	case http.StatusNotFound:
		p.Status = Fail
		if p.Code == "MANIFEST_UNKNOWN" {
			what := fmt.Sprintf("tag %q", ref)
			if strings.Contains(ref, ":") {
				what = "manifest " + ref
			}
			p.Cause = fmt.Sprintf("the credential works, but %s has no %s", name, what)
			p.Fix = "check the tag or digest"
		} else {
			p.Cause = fmt.Sprintf("the credential works, but %s/%s does not exist (%s)", host, name, p.Message)
			p.Fix = "check the image name: " + host + "/<org>/<image>"
		}
	case http.StatusForbidden:
		p.Status = Fail
		p.Cause = fmt.Sprintf("authenticated, but not allowed to pull %s: %s", name, p.Message)
		p.Fix = orgFix(p)
	default:
		p.Status, p.Cause = Fail, fmt.Sprintf("the manifest request answered %s %s", res.Status, p.Message)
	}
	return p
}

// OrgUnresolved reports whether the registry refused the token because the org in the image
// path does not resolve (no org of that name): 400 "unable to resolve" (PROTOCOL.md section 7).
func (p Probe) OrgUnresolved() bool {
	return p.Step == "token" && p.HTTPStatus == http.StatusBadRequest && strings.Contains(p.Message, "unable to resolve")
}

// OrgFix is the fix for an image whose org does not resolve.
const OrgFix = "check the image name: <registry>/<org>/<image>, with the org's name spelt as the console shows it"

// tokenCause maps a refused /token to its cause and fix (PROTOCOL.md section 7).
func tokenCause(p Probe, status int, name string) (cause, fix string) {
	msg := p.Message
	switch {
	case status == http.StatusBadRequest && strings.Contains(msg, "keys have expired"):
		return "the pull token has expired (the registry says: this identity's keys have expired)",
			"docker-credential-cgr pull-token create --save   # or: docker-credential-cgr logout && docker-credential-cgr login"
	case p.OrgUnresolved():
		return fmt.Sprintf("the org %q in the image path does not exist (the registry says: %s)", p.ImageOrg, msg), OrgFix
	case status == http.StatusUnauthorized && p.Anonymous:
		return fmt.Sprintf("%s is private, and there is no login or pull token to pull it with", name),
			"docker-credential-cgr login"
	case status == http.StatusUnauthorized:
		return "the registry did not accept the credential the helper gave", "docker-credential-cgr logout && docker-credential-cgr login"
	case status == http.StatusForbidden && p.Anonymous:
		return fmt.Sprintf("%s is unknown, or not available to anonymous pulls", name), "docker-credential-cgr login"
	case status == http.StatusForbidden:
		return forbiddenCause(p, name), orgFix(p)
	}
	return fmt.Sprintf("the token endpoint answered %d %s %s", status, p.Code, msg), ""
}

func forbiddenCause(p Probe, name string) string {
	switch {
	case p.TokenOrg != "":
		return fmt.Sprintf("the credential belongs to org %s and the image to org %q: if they differ, that is why; otherwise the identity lacks registry.pull on %s, or the credential is expired or malformed", p.TokenOrg, p.ImageOrg, name)
	default:
		return fmt.Sprintf("the credential is refused for %s: your account is not a member of org %q, the org is not entitled to it, or the token is expired", name, p.ImageOrg)
	}
}

func orgFix(p Probe) string {
	return fmt.Sprintf("%s logout && %s   # as a member of %s; or ask its admin for access; a pull token for it: %s --parent %s", config.AppName, token.LoginCommand, p.ImageOrg, token.SaveCommand, p.ImageOrg)
}

// tokenOrg names the org a credential belongs to when the credential says: a pull token's
// username is <org>/<16 hex>; a Chainguard token's sub is that too for an identity (a
// user's sub is a bare id that names no org).
func tokenOrg(username, secret string) string {
	if m := identityRE.Get().FindStringSubmatch(username); m != nil {
		return m[1]
	}
	if username != "_token" {
		return ""
	}
	parts := strings.Split(secret, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	if m := identityRE.Get().FindStringSubmatch(c.Sub); m != nil {
		return m[1]
	}
	return ""
}

func splitRef(repo string) (name, ref string) {
	if i := strings.Index(repo, "@"); i >= 0 {
		return repo[:i], repo[i+1:]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		return repo[:i], repo[i+1:]
	}
	return repo, "latest"
}

// SplitImage splits an image reference into a registry host and a repository (with its tag
// or digest). A reference without a registry host (no '.' or ':' in the first part, and not
// localhost) is Docker Hub's, which the helper does not serve.
func SplitImage(ref string) (host, repo string, err error) {
	first, rest, ok := strings.Cut(ref, "/")
	if !ok || rest == "" || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return "", "", fmt.Errorf("%q names no registry host; use <host>/<org>/<image>[:tag]", ref)
	}
	return strings.ToLower(first), rest, nil
}

// challenge parses `Bearer realm="...",service="..."`.
func challenge(h string) (realm, service string, ok bool) {
	scheme, params, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", "", false
	}
	for _, kv := range splitParams(params) {
		k, v, _ := strings.Cut(kv, "=")
		v = strings.Trim(strings.TrimSpace(v), `"`)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "realm":
			realm = v
		case "service":
			service = v
		}
	}
	return realm, service, realm != ""
}

// splitParams splits on commas outside quotes.
func splitParams(s string) []string {
	var out []string
	var cur strings.Builder
	inQ := false
	for _, r := range s {
		switch {
		case r == '"':
			inQ = !inQ
			cur.WriteRune(r)
		case r == ',' && !inQ:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

// regError is a registry's error code and message, made one printable line (a registry's
// words reach the terminal): a body that is no registry error is cut to its start.
func regError(body []byte) (code, msg string) {
	var e regErrors
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		return safetext.Line(e.Errors[0].Code), safetext.Line(e.Errors[0].Message)
	}
	msg = safetext.Line(string(body))
	if len(msg) > maxMessage {
		msg = strings.ToValidUTF8(msg[:maxMessage], "") + "..."
	}
	return "", msg
}

// maxMessage bounds how much of a body that is not a registry error is quoted.
const maxMessage = 300

// ownRealm accepts a token realm only on the registry's own host (host or host:port, the
// scheme's default port implied), over https, or over plain http to a loopback host.
func ownRealm(host, realm string) error {
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not a URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !config.IsLoopback(u.Hostname()) {
			return fmt.Errorf("plain http")
		}
	default:
		return fmt.Errorf("scheme %q", u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("credentials in the URL")
	}
	if !strings.EqualFold(hostPort(u.Host, u.Scheme), hostPort(host, u.Scheme)) {
		return fmt.Errorf("another host")
	}
	return nil
}

// hostPort is h with the scheme's default port made explicit.
func hostPort(h, scheme string) string {
	if _, _, err := net.SplitHostPort(h); err == nil {
		return h
	}
	if scheme == "http" {
		return net.JoinHostPort(strings.Trim(h, "[]"), "80")
	}
	return net.JoinHostPort(strings.Trim(h, "[]"), "443")
}

// noRedirects is hc answering a redirect with the redirect itself: the credential of a
// request is never replayed to where a server points.
func noRedirects(hc *http.Client) *http.Client {
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// redirected is the cause for a redirect answer, which ProbeImage never follows.
func redirected(what string, res *http.Response) string {
	return fmt.Sprintf("%s redirected (%s) to %s: not followed, the helper's credential is sent nowhere else", what, res.Status, safetext.Line(res.Header.Get("Location")))
}

func get(ctx context.Context, hc *http.Client, u, auth string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return do(hc, req)
}

func do(hc *http.Client, req *http.Request) (*http.Response, []byte, error) {
	res, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry nothing secret, but the message is shorter
		}
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res, body, err
}

// Credentials returns what the helper would give a client for host: username and secret,
// or "" and "" when it has nothing (anonymous). An error is the helper's own one-line answer.
type Credentials func(ctx context.Context, host string) (username, secret string, err error)

// ImageOptions configure ImageCheck.
type ImageOptions struct {
	Ref         string   // the image, <host>/<org>/<image>[:tag|@digest]
	Hosts       []string // served hosts
	Credentials Credentials
	HTTP        *http.Client
	// OrgName names an org id (from the platform API); optional.
	OrgName func(ctx context.Context, id string) string
}

// ImageProbe is the probe of one image with the credential the helper gives, run once
// however many checks read it: the image check, and the caller's checks that explain the
// registry's answer (the org check).
type ImageProbe struct {
	o    ImageOptions
	once sync.Once
	res  ImageProbeResult
}

// ImageProbeResult is what an ImageProbe learned.
type ImageProbeResult struct {
	Host, Repo string
	Served     bool   // the host is one the helper serves; nothing was probed otherwise
	Err        error  // a malformed reference, or the helper's own one-line refusal
	Username   string // what the helper gave; "" means anonymous
	Probe      Probe
}

// NewImageProbe prepares the probe of o.Ref; nothing runs until Result.
func NewImageProbe(o ImageOptions) *ImageProbe { return &ImageProbe{o: o} }

// Result runs the probe the first time and returns what it learned.
func (ip *ImageProbe) Result(ctx context.Context) ImageProbeResult {
	ip.once.Do(func() { ip.res = ip.run(ctx) })
	return ip.res
}

func (ip *ImageProbe) run(ctx context.Context) ImageProbeResult {
	o := ip.o
	var r ImageProbeResult
	if r.Host, r.Repo, r.Err = SplitImage(o.Ref); r.Err != nil {
		return r
	}
	for _, h := range o.Hosts {
		r.Served = r.Served || h == r.Host
	}
	if !r.Served {
		return r
	}
	var secret string
	if o.Credentials != nil {
		if r.Username, secret, r.Err = o.Credentials(ctx, r.Host); r.Err != nil {
			return r
		}
	}
	r.Probe = ProbeImage(ctx, r.Host, r.Repo, r.Username, secret, o.HTTP)
	if r.Probe.TokenOrg != "" && o.OrgName != nil {
		if n := o.OrgName(ctx, r.Probe.TokenOrg); n != "" {
			r.Probe.Cause = strings.ReplaceAll(r.Probe.Cause, "org "+r.Probe.TokenOrg, fmt.Sprintf("org %q (%s)", n, r.Probe.TokenOrg))
		}
	}
	return r
}

// stepWhere names where a pull stopped, for a person (a switch: a map literal is built by
// package initialisation on every start).
func stepWhere(step string) string {
	switch step {
	case "ping":
		return "the registry's /v2/ endpoint"
	case "token":
		return "the registry's token endpoint"
	case "manifest":
		return "the manifest fetch"
	}
	return step
}

// Check is `doctor --image REF`: a real token request for REF with the credential the helper
// gives, and the cause when the registry says no.
func (ip *ImageProbe) Check() Check {
	return NewCheck("image "+ip.o.Ref, func(ctx context.Context) []Result {
		r := ip.Result(ctx)
		switch {
		case r.Err != nil && r.Host == "":
			return []Result{{Status: Fail, Saw: r.Err.Error()}}
		case !r.Served:
			// Not a Chainguard registry: this helper is not involved, and it must never be
			// told to serve one (it would hand Chainguard tokens to that host).
			return []Result{{Status: Skip, Saw: fmt.Sprintf("%s is not a registry this helper serves (%s): docker-credential-cgr is not involved in pulling %s", r.Host, strings.Join(ip.o.Hosts, ", "), ip.o.Ref)}}
		case r.Err != nil:
			return []Result{{Status: Fail, Saw: fmt.Sprintf("the helper gives no credential for %s: %v", r.Host, r.Err)}}
		}
		p := r.Probe
		if p.Status == OK {
			saw := p.Cause
			switch {
			case r.Username == "_token":
				saw += " with the Chainguard token the helper gives"
			case r.Username != "":
				saw += " with pull token " + r.Username
			}
			return []Result{{Status: OK, Saw: saw}}
		}
		who := "an anonymous request (the helper has no credential for " + r.Host + ")"
		switch {
		case r.Username == "_token":
			who = "a request with the Chainguard token the helper gives"
		case r.Username != "":
			who = "a request with pull token " + r.Username
		}
		where := stepWhere(p.Step)
		saw := fmt.Sprintf("%s stopped at %s: %s", who, where, p.Cause)
		if p.Code != "" {
			saw += fmt.Sprintf(" [%d %s]", p.HTTPStatus, p.Code)
		}
		return []Result{{Status: p.Status, Saw: saw, Fix: p.Fix}}
	})
}

// ImageCheck is `doctor --image REF` with a probe of its own.
func ImageCheck(o ImageOptions) Check { return NewImageProbe(o).Check() }
