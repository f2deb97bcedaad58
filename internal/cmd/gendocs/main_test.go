package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func readPage(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: not gzip: %v", path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every command the binary offers has its page; the main page carries what cobra does not
// know (protocol actions, environment, files); the same tree gives the same bytes.
func TestGenerate(t *testing.T) {
	date := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	a, b := t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if err := generate(dir, "1.2.3", date); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c.HasParent() {
			return
		}
		want = append(want, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1.gz")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(tree())
	for _, page := range want {
		pa, pb := filepath.Join(a, files.Man, page), filepath.Join(b, files.Man, page)
		ba, err := os.ReadFile(pa)
		if err != nil {
			t.Fatalf("no page for a command: %v", err)
		}
		if bb, _ := os.ReadFile(pb); !bytes.Equal(ba, bb) {
			t.Errorf("%s differs between two runs: not reproducible", page)
		}
		if text := readPage(t, pa); !strings.Contains(text, `"1.2.3"`) && !strings.Contains(text, "docker-credential-cgr 1.2.3") {
			t.Errorf("%s does not name the version", page)
		}
	}
	for _, page := range []string{"docker-credential-cgr-login.1.gz", "docker-credential-cgr-pull-token-create.1.gz", "docker-credential-cgr-completion-bash.1.gz"} {
		if !slices.Contains(want, page) {
			t.Errorf("no page %s among %v", page, want)
		}
	}
	root := readPage(t, filepath.Join(a, files.Man, "docker-credential-cgr.1.gz"))
	for _, s := range []string{`.TH "DOCKER-CREDENTIAL-CGR" "1" "Mar 2026"`, ".SH PROTOCOL ACTIONS", ".SH ENVIRONMENT", ".SH FILES", ".SH EXIT STATUS", "credentials not found in native keychain"} {
		if !strings.Contains(root, s) {
			t.Errorf("main page lacks %q", s)
		}
	}
	if strings.Contains(root, "Auto generated") {
		t.Error("main page carries cobra's generation stamp (a build date)")
	}
	configure := readPage(t, filepath.Join(a, files.Man, "docker-credential-cgr-configure.1.gz"))
	if !strings.Contains(configure, `<host>`) {
		t.Error(`configure's page lost "<host>" (taken for HTML)`)
	}
	for path, s := range map[string]string{
		files.Bash: "__start_docker-credential-cgr",
		files.Zsh:  "#compdef docker-credential-cgr",
		files.Fish: "complete -c docker-credential-cgr",
	} {
		b, err := os.ReadFile(filepath.Join(a, path))
		if err != nil || !strings.Contains(string(b), s) {
			t.Errorf("%s: %v, or no %q", path, err, s)
		}
	}
}

// The main page's ENVIRONMENT names every setting internal/config reads.
func TestRootPageNamesEverySetting(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	vars := regexp.MustCompile(`"(CGR_[A-Z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(vars) < 5 {
		t.Fatalf("found only %d CGR_ variables in config.go: the pattern is stale", len(vars))
	}
	env := rootSections[strings.Index(rootSections, "# ENVIRONMENT"):strings.Index(rootSections, "# FILES")]
	for _, m := range vars {
		if !strings.Contains(env, "**"+m[1]+"**") {
			t.Errorf("the man page's ENVIRONMENT does not describe %s", m[1])
		}
	}
}

func TestManText(t *testing.T) {
	got := manText("Run:\n  a   one\n  b   two\nThen <host>.")
	want := "Run:\n\n```\n  a   one\n  b   two\n```\n\nThen \\<host>."
	if got != want {
		t.Errorf("manText:\n%q\nwant\n%q", got, want)
	}
}
