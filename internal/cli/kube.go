package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cgrtools/docker-credential-cgr/internal/kube"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// kubeletDeadline bounds one kubelet-provider answer, well under the kubelet's one minute.
const kubeletDeadline = 45 * time.Second

func init() {
	register("kube-secret", kubeSecretCmd)
	register("kubelet-provider", kubeletProviderCmd)
}

func kubeSecretCmd(a *App) *cobra.Command {
	var name, namespace, ttl, parent, output string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "kube-secret",
		Short: "Print a Kubernetes Secret (kubernetes.io/dockerconfigjson) holding a fresh pull token",
		Long: `Creates a pull token and prints a Secret of type kubernetes.io/dockerconfigjson holding it
for every served registry host. Apply it and name it in imagePullSecrets:

  docker-credential-cgr kube-secret --namespace apps | kubectl apply -f -

The token expires after --ttl (annotation cgr.dev/expires); create a new Secret before then,
or use ` + "`kubelet-provider`" + `, which needs no Secret.`,
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
			pt, err := token.NewPullTokens(deps, token.NewSession(deps)).Create(cmd.Context(), token.CreateOptions{
				TTL: d, Parent: parent, Name: "kube-secret-" + secretName, Description: "pull token of Kubernetes Secret " + where,
			})
			if err != nil {
				return err
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
	return cmd
}

func kubeletProviderCmd(a *App) *cobra.Command {
	return &cobra.Command{
		Use:   "kubelet-provider",
		Short: "Kubelet image credential provider plugin (CredentialProviderRequest on stdin)",
		Long: `Run by the kubelet for every image pull that matches its CredentialProviderConfig: reads a
CredentialProviderRequest (credentialprovider.kubelet.k8s.io/v1) on stdin and answers a
CredentialProviderResponse on stdout with credentials for the served registry hosts: a
workload identity (CGR_IDENTITY), else a stored pull token (renewed while a session exists),
else the login session.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), kubeletDeadline)
			defer cancel()
			deps, err := a.Deps(ctx)
			if err != nil {
				return err
			}
			var clock token.Clock = token.SystemClock{}
			if deps.Clock != nil {
				clock = deps.Clock
			}
			p := &kube.Provider{Hosts: a.Settings.Registries, Get: KubeGetter(deps), Now: clock.Now}
			return p.Serve(ctx, cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// KubeGetter serves a host's credential in the helper's order: workload identity, stored
// pull token, login session.
//
// IssuerNow stays zero (our clock): the token package judges each credential by the issuer's
// clock, but does not hand out the skew it used.
func KubeGetter(d token.Deps) kube.Getter {
	return func(ctx context.Context, host string) (kube.Credential, error) {
		if w := token.NewWorkload(d); w != nil {
			t, err := w.Token(ctx, d.Settings.Audience)
			if err != nil {
				return kube.Credential{}, err
			}
			return kube.Credential{Username: "_token", Password: t.Raw, Expiry: t.Expiry}, nil
		}
		s := token.NewSession(d)
		pt, err := token.NewPullTokens(d, s).Get(ctx, host)
		if err == nil {
			return kube.Credential{Username: pt.Identity, Password: pt.Token, Expiry: pt.Expiry}, nil
		}
		if !errors.Is(err, token.ErrNoCredential) {
			return kube.Credential{}, err
		}
		t, err := s.Token(ctx, d.Settings.Audience)
		if err != nil {
			return kube.Credential{}, err
		}
		return kube.Credential{Username: "_token", Password: t.Raw, Expiry: t.Expiry}, nil
	}
}
