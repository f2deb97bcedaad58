// Package kube gives Kubernetes its cgr.dev credentials: a Secret of type
// kubernetes.io/dockerconfigjson holding a pull token (kube-secret), and a kubelet image
// credential provider plugin (kubelet-provider) that needs no Secret at all.
//
// It deliberately imports nothing from k8s.io: the plugin is exec'd on every image pull, so the
// few wire types are written out here, field for field as in the v1 APIs.
package kube

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/lazy"
)

// DefaultSecretName is the Secret's name when none is given.
const DefaultSecretName = "cgr-pull"

// SecretType is the only Secret type the kubelet reads registry credentials from.
const SecretType = "kubernetes.io/dockerconfigjson"

// Annotations set on the Secret, so `kubectl describe` tells when it must be replaced.
const (
	AnnotationExpires  = "cgr.dev/expires"
	AnnotationIdentity = "cgr.dev/identity"
)

// Secret is a core/v1 Secret, as far as a registry Secret needs it.
type Secret struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   ObjectMeta        `json:"metadata"`
	Type       string            `json:"type"`
	Data       map[string][]byte `json:"data"` // base64 on the wire, as Kubernetes expects
}

// ObjectMeta is the part of meta/v1 ObjectMeta a Secret manifest uses.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DockerConfig is the content of .dockerconfigjson.
type DockerConfig struct {
	Auths map[string]DockerAuth `json:"auths"`
}

// DockerAuth is one registry's entry in a docker config.
type DockerAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Auth     string `json:"auth"` // base64(username:password), what older readers use
}

// SecretOptions say what goes into the Secret.
type SecretOptions struct {
	Name      string   // "": DefaultSecretName
	Namespace string   // "": none (kubectl applies the current namespace)
	Hosts     []string // registry hosts the credential is for
	Username  string
	Password  string
	Expiry    time.Time // shown as an annotation; zero: none
	Identity  string    // pull token identity, shown as an annotation; "": none
}

var (
	// RFC 1123 subdomain (Secret names) and label (namespaces).
	// Compiled on first use: every package init is paid by every `get`.
	dnsSubdomain = lazy.Regexp{Expr: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`}
	dnsLabel     = lazy.Regexp{Expr: `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`}
)

// ValidateNames checks a Secret name and namespace as the API server would.
func ValidateNames(name, namespace string) error {
	if name != "" && (len(name) > 253 || !dnsSubdomain.Get().MatchString(name)) {
		return fmt.Errorf("secret name %q is not a valid Kubernetes name (lower-case letters, digits, '-' and '.')", name)
	}
	if namespace != "" && (len(namespace) > 63 || !dnsLabel.Get().MatchString(namespace)) {
		return fmt.Errorf("namespace %q is not a valid Kubernetes namespace (lower-case letters, digits and '-')", namespace)
	}
	return nil
}

// NewSecret builds the registry Secret.
func NewSecret(o SecretOptions) (*Secret, error) {
	if err := ValidateNames(o.Name, o.Namespace); err != nil {
		return nil, err
	}
	if len(o.Hosts) == 0 {
		return nil, errors.New("no registry host to hold credentials for")
	}
	name := o.Name
	if name == "" {
		name = DefaultSecretName
	}
	basic := base64.StdEncoding.EncodeToString([]byte(o.Username + ":" + o.Password))
	cfg := DockerConfig{Auths: map[string]DockerAuth{}}
	hosts := append([]string(nil), o.Hosts...)
	sort.Strings(hosts)
	for _, h := range hosts {
		cfg.Auths[h] = DockerAuth{Username: o.Username, Password: o.Password, Auth: basic}
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	s := &Secret{
		APIVersion: "v1",
		Kind:       "Secret",
		Metadata:   ObjectMeta{Name: name, Namespace: o.Namespace},
		Type:       SecretType,
		Data:       map[string][]byte{".dockerconfigjson": raw},
	}
	if !o.Expiry.IsZero() || o.Identity != "" {
		s.Metadata.Annotations = map[string]string{}
		if !o.Expiry.IsZero() {
			s.Metadata.Annotations[AnnotationExpires] = o.Expiry.UTC().Format(time.RFC3339)
		}
		if o.Identity != "" {
			s.Metadata.Annotations[AnnotationIdentity] = o.Identity
		}
	}
	return s, nil
}

// Encode renders the Secret as "yaml" (the default) or "json".
func (s *Secret) Encode(format string) ([]byte, error) {
	switch format {
	case "", "yaml":
		return toYAML(s)
	case "json":
		b, err := json.MarshalIndent(s, "", "    ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	default:
		return nil, fmt.Errorf("output format %q is not yaml or json", format)
	}
}

// toYAML renders the Secret as block-style YAML, keys in the order kubectl prints them. It is
// written out by hand, not with a YAML library: the binary links none (a library's package
// init would cost every `get`, which is a process per pull), and a Secret is a fixed shape.
// A string is written plain when YAML cannot read it as anything but that string (a word of
// letters, digits and ._/-, starting with a letter or '.', not a YAML 1.1 boolean or null),
// else as a JSON string, which is a YAML double-quoted scalar.
func toYAML(s *Secret) ([]byte, error) {
	var b bytes.Buffer
	q := func(v string) string {
		if plainYAML(v) {
			return v
		}
		j, _ := json.Marshal(v)
		return string(j)
	}
	sortedKeys := func(m map[string]string) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	fmt.Fprintf(&b, "apiVersion: %s\n", q(s.APIVersion))
	fmt.Fprintf(&b, "kind: %s\n", q(s.Kind))
	b.WriteString("metadata:\n")
	fmt.Fprintf(&b, "  name: %s\n", q(s.Metadata.Name))
	if s.Metadata.Namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", q(s.Metadata.Namespace))
	}
	if len(s.Metadata.Annotations) > 0 {
		b.WriteString("  annotations:\n")
		for _, k := range sortedKeys(s.Metadata.Annotations) {
			fmt.Fprintf(&b, "    %s: %s\n", q(k), q(s.Metadata.Annotations[k]))
		}
	}
	fmt.Fprintf(&b, "type: %s\n", q(s.Type))
	b.WriteString("data:\n")
	data := map[string]string{}
	for k, v := range s.Data {
		data[k] = base64.StdEncoding.EncodeToString(v)
	}
	for _, k := range sortedKeys(data) {
		fmt.Fprintf(&b, "  %s: %s\n", q(k), q(data[k]))
	}
	return b.Bytes(), nil
}

// plainYAML reports whether v can be written as a plain YAML scalar and read back as the
// same string by every YAML 1.1 and 1.2 reader (kubectl's included).
func plainYAML(v string) bool {
	if v == "" || !(v[0] == '.' || v[0] >= 'a' && v[0] <= 'z' || v[0] >= 'A' && v[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return false
		}
	}
	switch strings.ToLower(v) {
	case "y", "yes", "n", "no", "true", "false", "on", "off", "null", "nan", ".nan", ".inf":
		return false
	}
	return true
}
