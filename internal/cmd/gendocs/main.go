// Command gendocs writes the man pages (section 1, gzipped) and the bash, zsh and fish
// completions of docker-credential-cgr from its command tree. goreleaser runs it before a
// release build (.goreleaser.yaml, before hooks); the .deb and .rpm install what it writes.
//
//	go run ./internal/cmd/gendocs -out .cache/gendocs -version 1.2.3
//
// It is a build-time tool: cobra's doc package and go-md2man are linked here, never into the
// shipped binary (scripts/release-check.sh checks `go version -m`).
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/cgrtools/docker-credential-cgr/internal/cli"
	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

func main() {
	out := flag.String("out", ".cache/gendocs", "directory to write man/ and completions/ into")
	version := flag.String("version", "", "version named in the man pages' footer")
	epoch := flag.String("epoch", os.Getenv("SOURCE_DATE_EPOCH"), "the pages' date, in Unix seconds (default: $SOURCE_DATE_EPOCH, else now)")
	flag.Parse()
	date := time.Now().UTC()
	if *epoch != "" {
		sec, err := strconv.ParseInt(*epoch, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "gendocs: -epoch %q: not Unix seconds\n", *epoch)
			os.Exit(2)
		}
		// goreleaser gives year 1 when it has no commit to read (a snapshot of a clone
		// without a remote): today is the better date then.
		if sec > 0 {
			date = time.Unix(sec, 0).UTC()
		}
	}
	if err := generate(*out, strings.TrimPrefix(*version, "v"), date); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

// Files are the paths generate writes, relative to its output directory; .goreleaser.yaml
// installs them from there.
var files = struct{ Bash, Zsh, Fish, Man string }{
	Bash: "completions/" + config.AppName + ".bash",
	Zsh:  "completions/_" + config.AppName,
	Fish: "completions/" + config.AppName + ".fish",
	Man:  "man",
}

// generate writes every page and completion under out, replacing what an earlier run left.
func generate(out, version string, date time.Time) error {
	root := tree()
	for _, d := range []string{filepath.Join(out, "completions"), filepath.Join(out, files.Man)} {
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for path, gen := range map[string]func(io.Writer) error{
		files.Bash: func(w io.Writer) error { return root.GenBashCompletionV2(w, true) },
		files.Zsh:  root.GenZshCompletion,
		files.Fish: func(w io.Writer) error { return root.GenFishCompletion(w, true) },
	} {
		var b bytes.Buffer
		if err := gen(&b); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := os.WriteFile(filepath.Join(out, path), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return manPages(root, filepath.Join(out, files.Man), version, date)
}

// tree is the command tree exactly as the binary builds it, with the text of its help made
// readable as a man page.
func tree() *cobra.Command {
	root := cli.Root(&cli.App{
		Getenv: func(string) string { return "" }, // the pages must not depend on who builds them
		Stdin:  strings.NewReader(""),
		Stdout: io.Discard,
		Stderr: io.Discard,
	})
	// The binary offers `completion` (cobra adds it when it runs); document it too.
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.DisableAutoGenTag = true // no build date in the text: reproducible pages
		c.Long = manText(c.Long)
		c.Example = strings.TrimRight(c.Example, "\n")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	root.Long += "\n\n" + rootSections
	return root
}

// manText turns help text into the markdown md2man reads: lines indented by two spaces or more
// (command lists, examples) become a literal block instead of being run into one paragraph,
// and a "<" elsewhere stays a "<".
func manText(s string) string {
	var out []string
	in := false
	for _, line := range strings.Split(s, "\n") {
		indented := strings.HasPrefix(line, "  ") && strings.TrimSpace(line) != ""
		switch {
		case indented && !in:
			out = append(out, "", "```")
			in = true
		case !indented && in && strings.TrimSpace(line) != "":
			out = append(out, "```", "")
			in = false
		}
		if !in {
			// Outside a literal block, <host> would be taken for HTML and dropped.
			line = strings.ReplaceAll(line, "<", `\<`)
		}
		out = append(out, line)
	}
	if in {
		out = append(out, "```")
	}
	return strings.Join(out, "\n")
}

// rootSections complete the main page with what is not a cobra command: the protocol actions
// clients call, the settings and the files. Keep in step with the README's Settings table
// (TestRootPageNamesEverySetting reads internal/config for the variables).
const rootSections = `# PROTOCOL ACTIONS
Docker, crane, ko, skopeo, podman, buildah and helm call the helper with one action as its
only argument, the input on stdin and the answer on stdout (the docker-credential-helpers
protocol). Wire them with **docker-credential-cgr configure**, which writes
**{"credHelpers": {"cgr.dev": "cgr"}}**.

**get**
: Read a server URL; print **{"ServerURL","Username","Secret"}** with a working credential for a served host, in this order: a workload identity (**CGR_IDENTITY**), a stored pull token, the login session, an existing chainctl login. A host it does not serve, or nothing configured: **credentials not found in native keychain**, exit 1. A credential that cannot be made valid: one line naming the cause and the command that fixes it, exit 1.

**store**, **erase**, **list**
: Keep a pull token given by **docker login**; forget everything held for a host; list the hosts held (never touches the network).

**version**, **-v**, **--version**
: Print the name, module path and version.

# ENVIRONMENT
Flags win over the environment, the environment over the config file.

**CGR_REGISTRY**
: Comma-separated registry hosts served (default **cgr.dev**).

**CGR_ISSUER**, **CGR_API**
: The token issuer (default **https://issuer.enforce.dev**) and the platform API (default **https://console-api.enforce.dev**).

**CGR_AUDIENCE**
: Audience of the tokens **get** serves (default **cgr.dev**).

**CGR_STORE**, **CGR_STORE_DIR**
: Where secrets rest: **auto** (the OS keychain when one answers, else files), **keychain** or **file**; the file store's directory.

**CGR_IDENTITY**, **CGR_IDENTITY_TOKEN**
: An assumable identity for CI and workloads, and its OIDC token or a path to one (read again at every use). On GitHub Actions the token is fetched from the runner.

**CGR_AUTO_LOGIN**
: **false**: never start a browser login from **get** (default **true**, only at a terminal and not under CI).

**CGR_SUDO_SHARE**
: **false**: under sudo, do not use the invoking user's store.

**BROWSER**
: Command that opens the login URL.

# FILES
**~/.config/docker-credential-cgr/config.yaml**
: The same settings by name (**registry**, **store**, **identity**, ...).

**~/.local/share/docker-credential-cgr/**
: The file store, locks and state (directory 0700, files 0600).

**~/.docker/config.json**, **$REGISTRY_AUTH_FILE** or **${XDG_RUNTIME_DIR}/containers/auth.json**, helm's **registry/config.json**
: The client configs **configure** wires.

# EXIT STATUS
Commands: 0 on success, 1 on failure, 2 on a usage mistake. **doctor** exits 1 when it finds
a problem.`

// manPages writes one gzipped page per command (docker-credential-cgr.1.gz,
// docker-credential-cgr-login.1.gz, ...), as man-db and rpm expect them.
func manPages(root *cobra.Command, dir, version string, date time.Time) error {
	tmp, err := os.MkdirTemp("", "gendocs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	header := &doc.GenManHeader{Section: "1", Date: &date, Source: strings.TrimSpace(config.AppName + " " + version), Manual: "User Commands"}
	if err := doc.GenManTree(root, header, tmp); err != nil {
		return err
	}
	pages, err := filepath.Glob(filepath.Join(tmp, "*.1"))
	if err != nil {
		return err
	}
	if len(pages) == 0 {
		return fmt.Errorf("no man page generated")
	}
	for _, p := range pages {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var z bytes.Buffer
		// -n: no name and no time in the gzip header, so the same tree gives the same bytes.
		zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(b); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)+".gz"), z.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}
