package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// Each CI's own OIDC token, detected from its environment and asked for afresh at every
// exchange (CI tokens live minutes), exchanged for the assumable identity CGR_IDENTITY names;
// the answer pulls the private image. Stand-ins play each CI's part as it is documented:
// buildkite-agent a script that prints a token, CircleCI and GitLab environment variables.
func TestCIIdentitySources(t *testing.T) {
	const ttl = 4 * time.Second // the registry tokens the exchange gives: a second exchange soon
	for _, ci := range []string{"buildkite", "circleci", "gitlab"} {
		t.Run(ci, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, emulator.Options{TokenTTL: ttl})
			subject := "ci-job-" + ci
			aud := strings.TrimPrefix(w.emu.IssuerURL(), "http://")
			id := w.emu.AddAssumableIdentity(w.emu.Org(), w.emu.OIDCIssuerURL(), subject, aud)
			w.env["CGR_IDENTITY"] = id
			mint := func() string { return w.emu.MintOIDCToken(subject, aud, time.Minute) }
			asked := filepath.Join(w.home, "asked")
			switch ci {
			case "buildkite":
				w.env["BUILDKITE"] = "true"
				tokFile := filepath.Join(w.home, "bk-token")
				w.write(tokFile, mint())
				bin := filepath.Join(w.home, "bkbin")
				// As the real agent: `oidc request-token --audience A` prints a JWT for A.
				w.write(filepath.Join(bin, "buildkite-agent"), fmt.Sprintf("#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"oidc request-token --audience %s\" ] || { echo \"bad args: $*\" >&2; exit 2; }\necho x >> %s\ncat %s\n", aud, asked, tokFile))
				if err := os.Chmod(filepath.Join(bin, "buildkite-agent"), 0o755); err != nil {
					t.Fatal(err)
				}
				w.env["PATH"] = bin + ":" + w.env["PATH"]
			case "circleci":
				w.env["CIRCLECI"] = "true"
				w.env["CIRCLE_OIDC_TOKEN_V2"] = mint()
			case "gitlab":
				w.env["GITLAB_CI"] = "true"
				// Without the job's id_tokens entry: one line that says what to add.
				r := w.helper(w.emu.RegistryHost(), "get")
				if r.code != 1 || !strings.Contains(r.stdout, "id_tokens") || !strings.Contains(r.stdout, aud) {
					t.Fatalf("GitLab without an id token: exit %d %q; want the id_tokens entry to add", r.code, r.stdout)
				}
				w.env["CGR_IDENTITY_TOKEN"] = mint() // id_tokens: CGR_IDENTITY_TOKEN: aud: <issuer host>
			}
			for i := range 2 {
				user, secret, r := w.get(w.emu.RegistryHost())
				if r.code != 0 || user != "_token" {
					t.Fatalf("get %d as %s: exit %d %q", i+1, ci, r.code, r.stdout)
				}
				if err := w.pullWith(user, secret); err != nil {
					t.Fatalf("pull with %s's identity: %v", ci, err)
				}
				time.Sleep(ttl) // the registry token expires: the next get exchanges again
			}
			if ci == "buildkite" {
				b, _ := os.ReadFile(asked)
				if n := strings.Count(string(b), "x"); n != 2 {
					t.Errorf("buildkite-agent asked %d times for 2 exchanges; want a fresh token at each", n)
				}
			}
			if n := w.emu.Count("sts/exchange"); n != 2 {
				t.Errorf("%d exchanges; want 2", n)
			}
		})
	}
}
