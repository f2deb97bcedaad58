package doctor

import (
	"strings"
	"testing"
)

// FuzzRegistryAnswers: what `doctor --image` reads from a registry (the WWW-Authenticate
// challenge, an error body) and from the user (the image reference, the credential's
// claims) is parsed without a panic, and what it extracts is well formed.
func FuzzRegistryAnswers(f *testing.F) {
	f.Add(`Bearer realm="https://cgr.dev/token",service="cgr.dev",scope="repository:a/b:pull"`,
		[]byte(`{"errors":[{"code":"DENIED","message":"no access"}]}`), "cgr.dev/acme/app:latest",
		"_token", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDUvMDEyMzQ1Njc4OWFiY2RlZiJ9.c2ln")
	f.Add(`basic realm="x"`, []byte("<html>\n</html>"), "nginx", "0123456789012345678901234567890123456789/0123456789abcdef", "")
	f.Fuzz(func(t *testing.T, header string, body []byte, ref, username, secret string) {
		if realm, _, ok := challenge(header); ok && realm == "" {
			t.Fatalf("challenge(%q): ok without a realm", header)
		}
		regError(body)
		if host, repo, err := SplitImage(ref); err == nil {
			if host == "" || strings.Contains(host, "/") || host != strings.ToLower(host) || repo == "" {
				t.Fatalf("SplitImage(%q) = %q, %q", ref, host, repo)
			}
			name, tag := splitRef(repo)
			if name+":"+tag != repo && name+"@"+tag != repo && tag != "latest" {
				t.Fatalf("splitRef(%q) = %q, %q", repo, name, tag)
			}
		}
		if org := tokenOrg(username, secret); strings.ContainsAny(org, "/\n") {
			t.Fatalf("tokenOrg = %q", org)
		}
	})
}
