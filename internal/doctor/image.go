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
	"regexp"
	"strings"
	"sync"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
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
	identityRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9a-f]{40})(?:/[0-9a-f]{16})+$`) })
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
func ProbeImage(ctx context.Context, host, repo, username, secret string, hc *http.Client) Probe {
	if hc == nil {
		hc = http.DefaultClient
	}
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
			p.Status, p.Cause = Fail, fmt.Sprintf("%s answered 401 without a Bearer challenge (%q)", host, res.Header.Get("WWW-Authenticate"))
			return p
		}
		// 2. the registry token
		p.Step = "token"
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
	case http.StatusOK:
		p.Status, p.Cause = OK, fmt.Sprintf("%s/%s:%s can be pulled", host, name, ref)
		if p.Anonymous {
			p.Cause += " (anonymously)"
		}
	case http.StatusNotFound:
		p.Status = Fail
		if p.Code == "MANIFEST_UNKNOWN" {
			p.Cause = fmt.Sprintf("the credential works, but %s has no %s", name, ref)
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

// tokenCause maps a refused /token to its cause and fix (PROTOCOL.md section 7).
func tokenCause(p Probe, status int, name string) (cause, fix string) {
	msg := p.Message
	switch {
	case status == http.StatusBadRequest && strings.Contains(msg, "keys have expired"):
		return "the pull token has expired (the registry says: this identity's keys have expired)",
			"docker-credential-cgr pull-token create --save   # or: docker-credential-cgr logout && docker-credential-cgr login"
	case status == http.StatusBadRequest && strings.Contains(msg, "unable to resolve"):
		return fmt.Sprintf("the org %q in the image path does not exist (the registry says: %s)", p.ImageOrg, msg),
			"check the image name: <registry>/<org>/<image>, with the org's name as the console shows it"
	case status == http.StatusUnauthorized && p.Anonymous:
		return fmt.Sprintf("%s is private and the helper gave no credential (not logged in, no pull token)", name),
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
	return fmt.Sprintf("docker-credential-cgr login --org %s   # log in to the image's org; or ask its admin for access; a pull token for it: docker-credential-cgr pull-token create --parent %s --save", p.ImageOrg, p.ImageOrg)
}

// tokenOrg names the org a credential belongs to when the credential says: a pull token's
// username is <org>/<16 hex>; a Chainguard token's sub is that too for an identity (a
// user's sub is a bare id that names no org).
func tokenOrg(username, secret string) string {
	if m := identityRE().FindStringSubmatch(username); m != nil {
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
	if m := identityRE().FindStringSubmatch(c.Sub); m != nil {
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

func regError(body []byte) (code, msg string) {
	var e regErrors
	if json.Unmarshal(body, &e) == nil && len(e.Errors) > 0 {
		return e.Errors[0].Code, e.Errors[0].Message
	}
	return "", strings.TrimSpace(string(body))
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

// ImageCheck is `doctor --image REF`: a real token request for REF with the credential the
// helper gives, and the cause when the registry says no.
func ImageCheck(o ImageOptions) Check {
	return NewCheck("image "+o.Ref, func(ctx context.Context) []Result {
		host, repo, err := SplitImage(o.Ref)
		if err != nil {
			return []Result{{Status: Fail, Saw: err.Error()}}
		}
		served := false
		for _, h := range o.Hosts {
			served = served || h == host
		}
		if !served {
			// Not a Chainguard registry: this helper is not involved, and it must never be
			// told to serve one (it would hand Chainguard tokens to that host).
			return []Result{{Status: Skip, Saw: fmt.Sprintf("%s is not a registry this helper serves (%s): docker-credential-cgr is not involved in pulling %s", host, strings.Join(o.Hosts, ", "), o.Ref)}}
		}
		var user, secret string
		if o.Credentials != nil {
			if user, secret, err = o.Credentials(ctx, host); err != nil {
				return []Result{{Status: Fail, Saw: fmt.Sprintf("the helper gives no credential for %s: %v", host, err)}}
			}
		}
		p := ProbeImage(ctx, host, repo, user, secret, o.HTTP)
		if p.TokenOrg != "" && o.OrgName != nil {
			if n := o.OrgName(ctx, p.TokenOrg); n != "" {
				p.Cause = strings.ReplaceAll(p.Cause, "org "+p.TokenOrg, fmt.Sprintf("org %q (%s)", n, p.TokenOrg))
			}
		}
		who := "anonymous"
		switch {
		case user == "_token":
			who = "a Chainguard token"
		case user != "":
			who = "pull token " + user
		}
		saw := fmt.Sprintf("%s with %s: %s", p.Step, who, p.Cause)
		if p.Code != "" && p.Status != OK {
			saw += fmt.Sprintf(" [%d %s]", p.HTTPStatus, p.Code)
		}
		return []Result{{Status: p.Status, Saw: saw, Fix: p.Fix}}
	})
}
