package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/token"
)

// Group is the API group of the kubelet's credential provider exec protocol.
const Group = "credentialprovider.kubelet.k8s.io"

// apiVersions the plugin answers; the kubelet wants the answer in the request's version, and
// the three versions share one schema. A slice: a map literal is built by package
// initialisation on every start.
var apiVersions = []string{Group + "/v1", Group + "/v1beta1", Group + "/v1alpha1"}

// Request is CredentialProviderRequest (credentialprovider.kubelet.k8s.io/v1).
type Request struct {
	APIVersion                string            `json:"apiVersion"`
	Kind                      string            `json:"kind"`
	Image                     string            `json:"image"`
	ServiceAccountToken       string            `json:"serviceAccountToken,omitempty"`
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`
}

// Response is CredentialProviderResponse (credentialprovider.kubelet.k8s.io/v1).
type Response struct {
	APIVersion   string `json:"apiVersion"`
	Kind         string `json:"kind"`
	CacheKeyType string `json:"cacheKeyType"`
	// CacheDuration is a metav1.Duration: a Go duration string ("1h0m0s"). "0s": do not cache.
	CacheDuration *string `json:"cacheDuration,omitempty"`
	// Auth is omitted ("null") when there are no credentials for the image.
	Auth map[string]AuthConfig `json:"auth,omitempty"`
}

// AuthConfig is a registry credential in a Response.
type AuthConfig struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Credential is a registry credential for a served host and how long it stays valid.
type Credential struct {
	Username, Password string
	// Expiry is when the credential stops being valid, by the issuer's clock (its exp claim).
	Expiry time.Time
	// IssuerNow is the issuer's time as the credential's source knew it (our clock plus the
	// skew it learned from the issuer). The kubelet may reuse the answer for a share of
	// Expiry - IssuerNow: judged by our clock instead, a clock behind the issuer's would let
	// the kubelet keep an expired credential. Zero: the Provider's clock, no skew known.
	IssuerNow time.Time
	// Margin is how long before Expiry the credential's source stops serving it (`get`
	// refreshes a Chainguard token, renews a pull token): the kubelet must not keep it past
	// that point, where a `get` would already hand out another (token.Token.FreshFor,
	// PullTokenMargin).
	Margin time.Duration
}

// Getter returns the credential for a served registry host. An error wrapping
// token.ErrNoCredential means nothing is configured (anonymous pulls).
type Getter func(ctx context.Context, host string) (Credential, error)

// Exchanger trades a service account's token (from the kubelet, service-account-token mode)
// for a credential of the assumable identity the service account's annotation names.
type Exchanger func(ctx context.Context, host, serviceAccountToken, identity string) (Credential, error)

// AnnotationServiceAccountIdentity is the service-account annotation naming the assumable
// identity its pods pull as. The same key as a Secret's AnnotationIdentity: on either object it
// names the identity whose credentials pull for it.
const AnnotationServiceAccountIdentity = AnnotationIdentity

// What a service account without the identity annotation gets (the plugin's --unannotated).
const (
	// UnannotatedNode: the node's own credential (workload identity from the environment,
	// stored pull token, login session), as for pods without a service account; none when
	// the node has none.
	UnannotatedNode = "node"
	// UnannotatedNone: no credentials: only annotated service accounts pull private images.
	UnannotatedNone = "none"
)

// Provider answers the kubelet.
type Provider struct {
	Hosts []string // served registry hosts
	Get   Getter   // the node's own credential
	// Exchange serves service accounts annotated with AnnotationServiceAccountIdentity, when the
	// kubelet sends their token (tokenAttributes in its CredentialProviderConfig); nil: an
	// annotated service account is an error, never served with the node's credential.
	Exchange Exchanger
	// Unannotated is what a service account without the annotation gets: UnannotatedNode
	// ("" means that) or UnannotatedNone.
	Unannotated string
	Now         func() time.Time // nil: time.Now; used when a Credential has no IssuerNow
}

const (
	// maxCache caps how long the kubelet may reuse an answer, so a renewed or revoked
	// credential is picked up within the hour.
	maxCache = time.Hour
	// foreignCache: an image of another registry never gets credentials from us.
	foreignCache = time.Hour
)

// Serve reads one CredentialProviderRequest from in and writes the CredentialProviderResponse
// to out. An error (a credential that exists but cannot be made valid, a bad request) is for
// stderr and exit status 1, which the kubelet logs with the plugin's stderr.
func (p *Provider) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	var req Request
	if err := json.NewDecoder(io.LimitReader(in, 1<<20)).Decode(&req); err != nil {
		return fmt.Errorf("reading the CredentialProviderRequest: %w", err)
	}
	if !slices.Contains(apiVersions, req.APIVersion) || req.Kind != "CredentialProviderRequest" {
		return fmt.Errorf("unsupported request %s %q (want %s/v1 CredentialProviderRequest)", req.APIVersion, req.Kind, Group)
	}
	if strings.TrimSpace(req.Image) == "" {
		return errors.New("the CredentialProviderRequest names no image")
	}
	resp := Response{APIVersion: req.APIVersion, Kind: "CredentialProviderResponse", CacheKeyType: "Registry"}
	host := ImageHost(req.Image)
	if !p.serves(host) {
		resp.CacheDuration = duration(foreignCache)
		return write(out, resp)
	}
	c, err := p.credential(ctx, host, req)
	switch {
	case errors.Is(err, errUnannotated):
		// The kubelet keys its cache by service account and its annotations (tokenAttributes,
		// cacheType ServiceAccount): annotating the account is seen at the next pull.
		resp.CacheDuration = duration(foreignCache)
		return write(out, resp)
	case errors.Is(err, token.ErrNoCredential):
		// Nothing configured: no credentials, and ask again next time.
		resp.CacheDuration = duration(0)
		return write(out, resp)
	case err != nil:
		return err
	}
	now := c.IssuerNow
	if now.IsZero() {
		now = time.Now()
		if p.Now != nil {
			now = p.Now()
		}
	}
	resp.CacheDuration = duration(CacheFor(c.Expiry.Sub(now), c.Margin))
	resp.Auth = map[string]AuthConfig{host: {Username: c.Username, Password: c.Password}}
	return write(out, resp)
}

// errUnannotated: a service account without the identity annotation, and --unannotated=none.
var errUnannotated = errors.New("service account names no identity")

// credential is the credential for a served host: the identity a service account's
// annotation names (exchanged with its token), else the node's own.
func (p *Provider) credential(ctx context.Context, host string, req Request) (Credential, error) {
	identity := strings.TrimSpace(req.ServiceAccountAnnotations[AnnotationServiceAccountIdentity])
	switch {
	case identity != "" && req.ServiceAccountToken == "":
		return Credential{}, fmt.Errorf("the service account names identity %q (annotation %s) but the kubelet sent no service account token: "+
			"set tokenAttributes in the kubelet's CredentialProviderConfig (docker-credential-cgr kubelet-provider --help)", identity, AnnotationServiceAccountIdentity)
	case identity != "":
		if p.Exchange == nil {
			return Credential{}, errors.New("service-account-token mode is not available in this plugin")
		}
		return p.Exchange(ctx, host, req.ServiceAccountToken, identity)
	case req.ServiceAccountToken != "" && p.Unannotated == UnannotatedNone:
		return Credential{}, errUnannotated
	}
	return p.Get(ctx, host)
}

func (p *Provider) serves(host string) bool {
	for _, h := range p.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

// CacheFor is how long the kubelet may reuse a credential with remaining life left, whose
// source stops serving it margin before it expires: half of the remaining life (so a pull
// started at the end of the cache still has time), never past the point where the source
// would serve another (less a second for the time the kubelet takes to read the answer), at
// most an hour, whole seconds, and nothing when under two minutes remain or the source would
// already not serve it (a stale token handed out while the issuer is down).
func CacheFor(remaining, margin time.Duration) time.Duration {
	if remaining < 2*time.Minute {
		return 0
	}
	return max(0, min(remaining/2, remaining-margin-time.Second, maxCache)).Truncate(time.Second)
}

// PullTokenMargin is how long before it expires a pull token of this lifetime stops being
// served as it is: with a third of its lifetime left `get` renews it and deletes the old
// identity, so the kubelet must not hold it past that. Once due (renewal was not possible: no
// session) it is served until it expires.
func PullTokenMargin(lifetime time.Duration, due bool) time.Duration {
	if due {
		return 0
	}
	return lifetime / 3
}

func duration(d time.Duration) *string {
	s := d.String()
	return &s
}

func write(out io.Writer, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

// ImageHost is the registry host of an image reference, lower-cased, as the kubelet parses it:
// the first path element when it looks like a host (has a '.' or ':' or is localhost), else
// Docker Hub.
func ImageHost(image string) string {
	image = strings.TrimSpace(image)
	first, _, found := strings.Cut(image, "/")
	if !found || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		return "docker.io"
	}
	return strings.ToLower(first)
}
