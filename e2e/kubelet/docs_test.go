package kubelet

import (
	"bytes"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kubeletconfigv1 "k8s.io/kubelet/config/v1"
	"sigs.k8s.io/yaml"

	"github.com/cgrtools/docker-credential-cgr/internal/kube"
)

// `kubelet-provider --help` shows the same two configs as the README (which the other tests
// feed the kubelet), so a user who only has the binary sets up a node that works.
func TestDocsHelpConfigsAreTheReadmes(t *testing.T) {
	out, err := exec.Command(helperBin, "kubelet-provider", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	help := string(out)
	var inHelp []kubeletconfigv1.CredentialProviderConfig
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != "apiVersion: kubelet.config.k8s.io/v1" {
			continue
		}
		var block []string
		for _, l := range lines[i:] {
			if strings.TrimSpace(l) == "" {
				break
			}
			block = append(block, l)
		}
		var cfg kubeletconfigv1.CredentialProviderConfig
		if err := yaml.UnmarshalStrict([]byte(dedent(strings.Join(block, "\n"))), &cfg); err != nil {
			t.Fatalf("a config in kubelet-provider --help is not the kubelet's v1 type: %v\n%s", err, strings.Join(block, "\n"))
		}
		inHelp = append(inHelp, cfg)
	}
	docs := documentedConfigs(t)
	if len(inHelp) != len(docs) {
		t.Fatalf("kubelet-provider --help shows %d configs; the README %d", len(inHelp), len(docs))
	}
	for _, which := range []string{nodeConfig, serviceAccountConfig} {
		var want kubeletconfigv1.CredentialProviderConfig
		if err := yaml.UnmarshalStrict(docs[which], &want); err != nil {
			t.Fatal(err)
		}
		ok := false
		for _, got := range inHelp {
			ok = ok || reflect.DeepEqual(got, want)
		}
		if !ok {
			t.Errorf("kubelet-provider --help does not show the README's %s config:\n%s", which, docs[which])
		}
	}
	// The set-up commands fill the store the configs name.
	if !strings.Contains(help, "CGR_STORE_DIR=/var/lib/docker-credential-cgr") {
		t.Error("the help's set-up commands do not use the config's store")
	}
}

// The README's service account and RBAC manifests are the Kubernetes types (strictly), the
// annotation is the one the config lists and the plugin reads, and the audience the nodes may
// request is the config's; the identity's claim match in the README is the one the tests give
// the emulator (issuer, system:serviceaccount:NS:NAME, the config's audience).
func TestDocsServiceAccountManifests(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	var cfg kubeletconfigv1.CredentialProviderConfig
	if err := yaml.UnmarshalStrict(documentedConfigs(t)[serviceAccountConfig], &cfg); err != nil {
		t.Fatal(err)
	}
	ta := cfg.Providers[0].TokenAttributes
	if ta.CacheType != kubeletconfigv1.ServiceAccountServiceAccountTokenCacheType {
		t.Errorf("cacheType %q: the plugin's answer is the identity's, the same for every token of the account", ta.CacheType)
	}
	if len(ta.OptionalServiceAccountAnnotationKeys) != 1 || ta.OptionalServiceAccountAnnotationKeys[0] != kube.AnnotationServiceAccountIdentity {
		t.Errorf("the config sends the annotations %q; the plugin reads %s", ta.OptionalServiceAccountAnnotationKeys, kube.AnnotationServiceAccountIdentity)
	}
	var sa, role, binding int
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1) {
		for _, doc := range strings.Split(dedent(string(m[1])), "\n---\n") {
			switch {
			case strings.Contains(doc, "kind: ServiceAccount"):
				sa++
				var s corev1.ServiceAccount
				if err := yaml.UnmarshalStrict([]byte(doc), &s); err != nil {
					t.Fatalf("the README's ServiceAccount: %v", err)
				}
				if _, ok := s.Annotations[kube.AnnotationServiceAccountIdentity]; !ok {
					t.Errorf("the README's ServiceAccount is not annotated %s", kube.AnnotationServiceAccountIdentity)
				}
			case strings.Contains(doc, "kind: ClusterRoleBinding"):
				binding++
				var rb rbacv1.ClusterRoleBinding
				if err := yaml.UnmarshalStrict([]byte(doc), &rb); err != nil {
					t.Fatalf("the README's ClusterRoleBinding: %v", err)
				}
				if len(rb.Subjects) != 1 || rb.Subjects[0].Kind != rbacv1.GroupKind || rb.Subjects[0].Name != "system:nodes" {
					t.Errorf("the README's ClusterRoleBinding binds %+v; want the group system:nodes", rb.Subjects)
				}
			case strings.Contains(doc, "kind: ClusterRole"):
				role++
				var r rbacv1.ClusterRole
				if err := yaml.UnmarshalStrict([]byte(doc), &r); err != nil {
					t.Fatalf("the README's ClusterRole: %v", err)
				}
				if len(r.Rules) != 1 || !reflect.DeepEqual(r.Rules[0].Resources, []string{ta.ServiceAccountTokenAudience}) ||
					!reflect.DeepEqual(r.Rules[0].Verbs, []string{"request-serviceaccounts-token-audience"}) || !reflect.DeepEqual(r.Rules[0].APIGroups, []string{""}) {
					t.Errorf("the README's ClusterRole %+v does not let nodes request tokens for %q", r.Rules, ta.ServiceAccountTokenAudience)
				}
			}
		}
	}
	if sa != 1 || role != 1 || binding != 1 {
		t.Errorf("the README has %d ServiceAccount, %d ClusterRole, %d ClusterRoleBinding manifests; want one each", sa, role, binding)
	}
	for _, want := range []string{"--audience=" + ta.ServiceAccountTokenAudience, "--subject=system:serviceaccount:", "--identity-issuer=",
		"kubectl annotate serviceaccount", kube.AnnotationServiceAccountIdentity + "=<identity id>"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the README does not show %q", want)
		}
	}
}
