package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/token"
)

// Group is the API group of the kubelet's credential provider exec protocol.
const Group = "credentialprovider.kubelet.k8s.io"

// apiVersions the plugin answers; the kubelet wants the answer in the request's version, and
// the three versions share one schema.
var apiVersions = map[string]bool{Group + "/v1": true, Group + "/v1beta1": true, Group + "/v1alpha1": true}

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
}

// Getter returns the credential for a served registry host. An error wrapping
// token.ErrNoCredential means nothing is configured (anonymous pulls).
type Getter func(ctx context.Context, host string) (Credential, error)

// Provider answers the kubelet.
type Provider struct {
	Hosts []string // served registry hosts
	Get   Getter
	Now   func() time.Time // nil: time.Now; used when a Credential has no IssuerNow
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
	if !apiVersions[req.APIVersion] || req.Kind != "CredentialProviderRequest" {
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
	c, err := p.Get(ctx, host)
	switch {
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
	resp.CacheDuration = duration(CacheFor(c.Expiry.Sub(now)))
	resp.Auth = map[string]AuthConfig{host: {Username: c.Username, Password: c.Password}}
	return write(out, resp)
}

func (p *Provider) serves(host string) bool {
	for _, h := range p.Hosts {
		if h == host {
			return true
		}
	}
	return false
}

// CacheFor is how long the kubelet may reuse a credential with remaining life left: half of
// it (so a pull started at the end of the cache still has time), at most an hour, whole
// seconds, and nothing when under two minutes remain.
func CacheFor(remaining time.Duration) time.Duration {
	if remaining < 2*time.Minute {
		return 0
	}
	return min(remaining/2, maxCache).Truncate(time.Second)
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
