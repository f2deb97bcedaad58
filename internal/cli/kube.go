package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/kube"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// kubeletDeadline bounds one kubelet-provider answer, well under the kubelet's one minute.
const kubeletDeadline = 45 * time.Second

func kubeSecretCmd(a *App) *cobra.Command {
	var name, namespace, ttl, parent, output string
	var asJSON, dryRun bool
	cmd := &cobra.Command{
		Use:   "kube-secret",
		Short: "Print a Kubernetes Secret (kubernetes.io/dockerconfigjson) holding a fresh pull token",
		Long: `Lets a Kubernetes cluster pull private images from the served registries (cgr.dev) with an
image pull Secret. It creates a pull token through your login session (run
` + "`docker-credential-cgr login`" + ` first) and prints a Secret of type
kubernetes.io/dockerconfigjson holding it for every served registry host: the only Secret type
the kubelet reads registry credentials from (an Opaque Secret is why pulls get 401).

Apply it, then name it in the pod spec or its service account:

  docker-credential-cgr kube-secret --namespace apps | kubectl apply -f -

  spec:
    imagePullSecrets:
      - name: cgr-pull

The token expires after --ttl (default 720h, at most 8760h); the Secret says when in its
annotation cgr.dev/expires and names the token's identity in cgr.dev/identity. Create a new
Secret before then (and delete the old identity with ` + "`pull-token delete ID`" + `), or use
` + "`kubelet-provider`" + `, which needs no Secret and nothing replaced by hand.`,
		Example: `  docker-credential-cgr kube-secret --namespace apps --ttl 2160h | kubectl apply -f -
  docker-credential-cgr kube-secret --name regcred -o json > regcred.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := ptTTLFlag(ttl)
			if err != nil {
				return err
			}
			if asJSON {
				output = "json"
			}
			if output != "yaml" && output != "json" {
				return &UsageError{fmt.Errorf("-o %q: want yaml or json", output)}
			}
			if err := kube.ValidateNames(name, namespace); err != nil {
				return &UsageError{err}
			}
			deps, err := a.Deps(cmd.Context())
			if err != nil {
				return err
			}
			secretName := name
			if secretName == "" {
				secretName = kube.DefaultSecretName
			}
			where := secretName
			if namespace != "" {
				where = namespace + "/" + secretName
			}
			// One identity per Secret (namespace and name): a new run replaces the one the last
			// run left, instead of leaving an identity behind at every run.
			idName := "kube-secret-" + secretName
			if namespace != "" {
				idName = "kube-secret-" + namespace + "-" + secretName
			}
			pts := token.NewPullTokens(deps, token.NewSession(deps))
			existing, err := pts.List(cmd.Context(), parent)
			if err != nil {
				return err
			}
			var old []token.PullToken
			for _, pt := range existing {
				if pt.Name == idName {
					old = append(old, pt)
				}
			}
			if dryRun {
				fmt.Fprintf(a.Stderr, "Would create a pull token %q (%s) for Secret %s, holding it for %s", idName, d, where, strings.Join(a.Settings.Registries, ", "))
				for _, o := range old {
					fmt.Fprintf(a.Stderr, "; would replace and delete identity %s (expires %s)", o.Identity, o.Expiry.UTC().Format("2006-01-02 15:04 UTC"))
				}
				fmt.Fprintln(a.Stderr, ". Nothing was created (--dry-run).")
				return nil
			}
			pt, err := pts.Create(cmd.Context(), token.CreateOptions{
				TTL: d, Parent: parent, Name: idName, Description: "pull token of Kubernetes Secret " + where,
			})
			if err != nil {
				return err
			}
			for _, o := range old {
				if err := pts.Delete(cmd.Context(), o.Identity); err != nil {
					fmt.Fprintf(a.Stderr, "note: could not delete identity %s, which the last kube-secret for %s made: %v; delete it with `%s pull-token delete %s`\n", o.Identity, where, err, config.AppName, o.Identity)
					continue
				}
				fmt.Fprintf(a.Stderr, "Replaced identity %s (the last kube-secret for %s; deleted: apply the new Secret now)\n", o.Identity, where)
			}
			if len(old) == 0 {
				fmt.Fprintf(a.Stderr, "Created identity %s (%q) for Secret %s\n", pt.Identity, idName, where)
			}
			s, err := kube.NewSecret(kube.SecretOptions{
				Name: name, Namespace: namespace, Hosts: a.Settings.Registries,
				Username: pt.Identity, Password: pt.Token, Expiry: pt.Expiry, Identity: pt.Identity,
			})
			if err != nil {
				return err
			}
			b, err := s.Encode(output)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "name", kube.DefaultSecretName, "name of the Secret")
	f.StringVar(&namespace, "namespace", "", "namespace of the Secret (default: kubectl's current namespace)")
	f.StringVar(&ttl, "ttl", "720h", "lifetime of the pull token, at most 8760h (days allowed: 30d)")
	f.StringVar(&parent, "parent", "", "organization (id or name) to create the pull token in")
	f.StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	f.BoolVar(&asJSON, "json", false, "print the Secret as JSON (same as -o json)")
	f.BoolVar(&dryRun, "dry-run", false, "say what would be created and replaced; create nothing")
	return cmd
}

func kubeletProviderCmd(a *App) *cobra.Command {
	var unannotated string
	cmd := &cobra.Command{
		Use:   "kubelet-provider",
		Short: "Kubelet image credential provider plugin (CredentialProviderRequest on stdin)",
		Long: `The kubelet's image credential provider plugin: with it, a node pulls private images from the
served registries (cgr.dev) with no image pull Secret. The kubelet runs it for every image that
matches its CredentialProviderConfig, writes a CredentialProviderRequest
(credentialprovider.kubelet.k8s.io/v1) on stdin and reads a CredentialProviderResponse on stdout.

Set-up on each node (as root, or with sudo):

1. Put this binary in the kubelet's --image-credential-provider-bin-dir, under the provider's
   name:

     sudo install -D -m 0755 docker-credential-cgr \
       /usr/local/lib/kubelet-credential-providers/docker-credential-cgr

2. Write the kubelet's --image-credential-provider-config, e.g.
   /etc/kubernetes/credential-providers.yaml:

     apiVersion: kubelet.config.k8s.io/v1
     kind: CredentialProviderConfig
     providers:
       - name: docker-credential-cgr
         apiVersion: credentialprovider.kubelet.k8s.io/v1
         args: ["kubelet-provider"]
         matchImages: ["cgr.dev"]
         defaultCacheDuration: "10m"
         env:
           - name: CGR_STORE
             value: file
           - name: CGR_STORE_DIR
             value: /var/lib/docker-credential-cgr

3. Give the plugin a credential. Best, nothing to renew: a workload identity, with env entries
   CGR_IDENTITY (an assumable identity) and CGR_IDENTITY_TOKEN (a path to an OIDC token the
   node keeps fresh). Or a login session in the node's store (the plugin serves it, and renews
   a pull token saved there before it expires):

     sudo env CGR_SUDO_SHARE=false CGR_STORE=file CGR_STORE_DIR=/var/lib/docker-credential-cgr \
       /usr/local/lib/kubelet-credential-providers/docker-credential-cgr login --headless
     sudo env CGR_SUDO_SHARE=false CGR_STORE=file CGR_STORE_DIR=/var/lib/docker-credential-cgr \
       /usr/local/lib/kubelet-credential-providers/docker-credential-cgr pull-token create --save --ttl 8760h

   (CGR_SUDO_SHARE=false: under sudo the helper otherwise runs as you, on your own store.)

4. Restart the kubelet with
     --image-credential-provider-config=/etc/kubernetes/credential-providers.yaml
     --image-credential-provider-bin-dir=/usr/local/lib/kubelet-credential-providers

Credentials come from a workload identity, else a stored pull token, else the login session,
for served hosts only. The answer may be cached (cacheKeyType Registry) for half the
credential's remaining life, at most 1h, and never past the point where get would serve
another (15 minutes, or half its lifetime, before a Chainguard token expires; a third of a pull
token's lifetime, when it is renewed). With nothing configured the answer holds no credentials
(public images still pull); a credential that cannot be made valid exits 1 with one line on
stderr, which the kubelet logs.

Per-workload pulls (Kubernetes 1.34+, service-account-token mode): the kubelet hands the plugin
a token of the pod's service account, and the plugin exchanges it at the STS for the assumable
identity the service account's ` + kube.AnnotationServiceAccountIdentity + ` annotation names. Nothing is stored on
the node.

a. Create the identity (registry.pull) with the claim match the STS checks in the token:
   issuer   = the cluster's OIDC issuer URL (kubectl get --raw /.well-known/openid-configuration)
   subject  = system:serviceaccount:<namespace>:<name>
   audience = the config's serviceAccountTokenAudience

     chainctl iam identities create web-pulls --identity-issuer="https://<the cluster's issuer>" \
       --subject=system:serviceaccount:apps:web --audience=issuer.enforce.dev --role=registry.pull

b. Annotate the service account with the identity's id:

     kubectl annotate serviceaccount --namespace apps web ` + kube.AnnotationServiceAccountIdentity + `=<identity id>

c. Allow the nodes to request tokens for the audience: a ClusterRole with verb
   request-serviceaccounts-token-audience on resource issuer.enforce.dev (apiGroups [""]),
   bound to the group system:nodes.

d. Give the provider tokenAttributes:

     apiVersion: kubelet.config.k8s.io/v1
     kind: CredentialProviderConfig
     providers:
       - name: docker-credential-cgr
         apiVersion: credentialprovider.kubelet.k8s.io/v1
         args: ["kubelet-provider", "--unannotated=node"]
         matchImages: ["cgr.dev"]
         defaultCacheDuration: "10m"
         tokenAttributes:
           serviceAccountTokenAudience: issuer.enforce.dev
           cacheType: ServiceAccount
           requireServiceAccount: false
           optionalServiceAccountAnnotationKeys: ["` + kube.AnnotationServiceAccountIdentity + `"]
         env:
           - name: CGR_STORE
             value: file
           - name: CGR_STORE_DIR
             value: /var/lib/docker-credential-cgr

The kubelet caches each answer per service account. A service account without the annotation
gets the node's own credential (--unannotated=node, the default; none if the node has none) or
nothing (--unannotated=none); a pod without a service account gets the node's. A deleted
identity, or one whose claim match does not admit the token, exits 1 with one line on stderr.
The full guide: internal/kube/README.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unannotated != kube.UnannotatedNode && unannotated != kube.UnannotatedNone {
				return &UsageError{fmt.Errorf("--unannotated %q: want %s or %s", unannotated, kube.UnannotatedNode, kube.UnannotatedNone)}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), kubeletDeadline)
			defer cancel()
			deps, err := a.Deps(ctx)
			if err != nil {
				return err
			}
			p := &kube.Provider{Hosts: a.Settings.Registries, Get: KubeGetter(deps), Now: kubeClock(deps).Now,
				Exchange: kube.ServiceAccountExchanger(deps), Unannotated: unannotated}
			return p.Serve(ctx, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&unannotated, "unannotated", kube.UnannotatedNode,
		"service-account-token mode: what a service account without the "+kube.AnnotationServiceAccountIdentity+" annotation gets: node (the node's own credential, if any) or none")
	return cmd
}

func kubeClock(d token.Deps) token.Clock {
	if d.Clock != nil {
		return d.Clock
	}
	return token.SystemClock{}
}

// KubeGetter serves a host's credential from the chain get reads (workload identity, stored
// pull token, login session, chainctl), with the issuer's time its source judged it by.
func KubeGetter(d token.Deps) kube.Getter {
	clock := kubeClock(d)
	chain := token.DefaultChain(d)
	return func(ctx context.Context, host string) (kube.Credential, error) {
		c, err := chain.Credential(ctx, host, d.Settings.Audience)
		if err != nil {
			return kube.Credential{}, err
		}
		return kube.CredentialOf(c, clock.Now()), nil
	}
}
