package e2e

// chainctl side by side: chainctl installs docker-credential-cgr as a link to itself, so the
// two programs share a name on PATH. Whichever comes first answers every pull. chainctl cannot
// be installed here; fakeChainctl stands in for it, behaving as its documentation says.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
)

// fakeChainctlScript behaves as chainctl does for the two things this project meets: run as
// docker-credential-cgr (its link) it answers the credential-helper protocol with its own
// login's token; `chainctl auth token --audience AUD` prints that token. Every run is
// logged, one line each, so a test counts them.
const fakeChainctlScript = `#!/bin/sh
# A stand-in for chainctl (tests only): what its docs say, nothing more.
echo "$(basename "$0") $*" >>"$FAKE_CHAINCTL_LOG"
if [ "$(basename "$0")" = docker-credential-cgr ]; then
	case "$1" in
	get)
		read -r url || [ -n "$url" ]
		printf '{"ServerURL":"%s","Username":"_token","Secret":"%s"}\n' "$url" "$(cat "$FAKE_CHAINCTL_TOKEN")"
		exit 0 ;;
	list) echo '{}'; exit 0 ;;
	store|erase) cat >/dev/null; exit 0 ;;
	esac
	echo "unknown credential helper action: $1"
	exit 1
fi
if [ "$1 $2 $3" = "auth token --audience" ] && [ -n "$4" ]; then
	cat "$FAKE_CHAINCTL_TOKEN"
	echo
	exit 0
fi
echo "chainctl (test stand-in): $* is not emulated" >&2
exit 1
`

// fakeChainctl lays out what `chainctl auth configure-docker` leaves in a directory of its
// own (chainctl, and docker-credential-cgr linked to it), logged in as the emulator's user.
// It returns that directory and the log of its runs.
func (w *world) fakeChainctl() (dir, log string) {
	w.t.Helper()
	dir = filepath.Join(w.home, "chainctl-bin")
	w.write(filepath.Join(dir, "chainctl"), fakeChainctlScript)
	if err := os.Chmod(filepath.Join(dir, "chainctl"), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "chainctl"), filepath.Join(dir, "docker-credential-cgr")); err != nil {
		w.t.Fatal(err)
	}
	log = filepath.Join(w.home, "chainctl-runs.log")
	tok := filepath.Join(w.home, "chainctl-token")
	w.write(tok, w.emu.MintToken(w.emu.User().ID, emulator.Audience))
	w.env["FAKE_CHAINCTL_LOG"], w.env["FAKE_CHAINCTL_TOKEN"] = log, tok
	return dir, log
}

// runsOf counts the logged runs of chainctl's link with a protocol action.
func runsOf(t *testing.T, log, action string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return 0
	} else if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "docker-credential-cgr "+action+"\n")
}

// helperExecs pulls img with the docker CLI under strace and counts its execs of the
// credential helper by path: link, the path Docker ran.
func (w *world) helperExecs(img, link string) (int, result) {
	w.t.Helper()
	trace := filepath.Join(w.t.TempDir(), "trace")
	r := w.run("", "strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", trace, "docker", "pull", "-q", img)
	b, err := os.ReadFile(trace)
	if err != nil {
		w.t.Fatalf("strace wrote no trace: %v (%s)", err, r.stderr)
	}
	re := regexp.MustCompile(`execve\("` + regexp.QuoteMeta(link) + `", \["docker-credential-cgr", "get"\].* = 0`)
	return len(re.FindAll(b, -1)), r
}

// chainctl's link first on PATH: configure warns and doctor fails, both with the command that
// fixes it; pulls go to chainctl until that command runs, and to this program after.
func TestChainctlLinkFirstOnPath(t *testing.T) {
	need(t, "docker")
	need(t, "strace")
	dockerEngine(t)
	w := wiredWorld(t, emulator.Options{})
	w.login()
	chainctlDir, log := w.fakeChainctl()
	link := filepath.Join(chainctlDir, "docker-credential-cgr")
	w.env["PATH"] = chainctlDir + ":" + filepath.Dir(helperBin) + ":" + os.Getenv("PATH")
	img := w.emu.PrivateImage()
	t.Cleanup(func() { w.run("", "docker", "rmi", "-f", img) })

	r := w.helper("", "configure")
	if r.code != 0 || !strings.Contains(r.stdout, "chainctl") || !strings.Contains(r.stdout, "ln -sf "+helperBin+" "+link) {
		t.Fatalf("configure with chainctl's link first: exit %d; want a warning with the fix:\n%s", r.code, r.stdout)
	}
	res := w.mustFail("helper on your PATH", []string{"chainctl", link})
	if want := "ln -sf " + helperBin + " " + link; res.Fix != want {
		t.Fatalf("doctor's fix %q, want %q", res.Fix, want)
	}

	// As it stands, Docker runs chainctl: the pull works, but not through this program.
	n, r := w.helperExecs(img, link)
	if r.code != 0 {
		t.Fatalf("docker pull through chainctl's link: exit %d: %s", r.code, r.stderr)
	}
	chainctlGets := runsOf(t, log, "get")
	if n == 0 || chainctlGets != n {
		t.Fatalf("before the fix: docker ran %s %d times, chainctl answered %d; want every exec answered by chainctl", link, n, chainctlGets)
	}
	t.Logf("before the fix: docker pull ran %s %d time(s), chainctl answered %d", link, n, chainctlGets)
	w.run("", "docker", "rmi", "-f", img)

	w.runFix(res.Fix)
	rep, _ := w.doctor()
	if ok := rep.named(t, "helper on your PATH", "ok"); !strings.Contains(ok.Saw, link) {
		t.Fatalf("after the fix doctor says %q", ok.Saw)
	}
	if got, err := filepath.EvalSymlinks(link); err != nil || got != helperBin {
		t.Fatalf("after the fix %s resolves to %q (%v), want %s", link, got, err, helperBin)
	}
	if _, err := os.Stat(filepath.Join(chainctlDir, "chainctl")); err != nil {
		t.Fatalf("the fix removed chainctl itself: %v", err)
	}
	n, r = w.helperExecs(img, link)
	if r.code != 0 {
		t.Fatalf("docker pull after the fix: exit %d: %s", r.code, r.stderr)
	}
	if after := runsOf(t, log, "get"); n == 0 || after != chainctlGets {
		t.Fatalf("after the fix: docker ran the helper %d times, chainctl answered %d more; want this program only", n, after-chainctlGets)
	}
	t.Logf("after the fix: docker pull ran %s (→ %s) %d time(s), chainctl 0", link, helperBin, n)
}

// This program first and chainctl's link later: fine, and doctor says so.
func TestChainctlLinkLaterOnPath(t *testing.T) {
	w := wiredWorld(t, emulator.Options{})
	chainctlDir, _ := w.fakeChainctl()
	w.env["PATH"] = filepath.Dir(helperBin) + ":" + chainctlDir + ":" + os.Getenv("PATH")
	rep, _ := w.doctor()
	ok := rep.named(t, "helper on your PATH", "ok")
	if !strings.Contains(ok.Saw, "chainctl's link at "+filepath.Join(chainctlDir, "docker-credential-cgr")+" comes later") {
		t.Fatalf("doctor does not mention chainctl's later link: %q", ok.Saw)
	}
	if r := w.helper("", "configure"); strings.Contains(r.stdout, "chainctl") {
		t.Fatalf("configure warns about a chainctl link that is not used:\n%s", r.stdout)
	}
}
