package clientconfig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// chainctlLayout is what `chainctl auth configure-docker` leaves: chainctl in a directory and
// docker-credential-cgr there as a link to it; this program elsewhere.
func chainctlLayout(t *testing.T) (chainctlDir, oursDir, ours string) {
	t.Helper()
	dir := t.TempDir()
	chainctlDir, oursDir = filepath.Join(dir, "chainctl-bin"), filepath.Join(dir, "bin")
	writeFile(t, filepath.Join(chainctlDir, "chainctl"), "#!/bin/sh\necho 'chainctl version v0.2.0'\n", 0o755)
	if err := os.Symlink(filepath.Join(chainctlDir, "chainctl"), filepath.Join(chainctlDir, HelperBinary)); err != nil {
		t.Fatal(err)
	}
	ours = filepath.Join(oursDir, HelperBinary)
	writeFile(t, ours, "#!/bin/sh\necho 'docker-credential-cgr (github.com/cgrtools/docker-credential-cgr) v1.0.0'\n", 0o755)
	return chainctlDir, oursDir, ours
}

func testReacher(exe string, writable bool) reacher {
	return reacher{exe: exe, version: runVersion, writable: func(string) bool { return writable }}
}

func pathEnv(dirs ...string) func(string) string {
	return func(k string) string {
		if k == "PATH" {
			return strings.Join(dirs, string(filepath.ListSeparator))
		}
		return ""
	}
}

func TestReachChainctlLinkShadows(t *testing.T) {
	chainctlDir, oursDir, ours := chainctlLayout(t)
	link := filepath.Join(chainctlDir, HelperBinary)
	rs := testReacher(ours, true).reach(pathEnv(chainctlDir, oursDir), false, "", "")
	if len(rs) != 1 {
		t.Fatalf("got %d results", len(rs))
	}
	r := rs[0]
	if r.Program != ProgramChainctl || r.Level != "fail" || r.Found != link || r.Runs != filepath.Join(chainctlDir, "chainctl") {
		t.Fatalf("chainctl's link first: %+v", r)
	}
	if want := "ln -sf " + ours + " " + link; r.Fix != want {
		t.Fatalf("fix %q, want %q", r.Fix, want)
	}
	if !strings.Contains(r.Saw, "chainctl") || !strings.Contains(r.Saw, ours) {
		t.Fatalf("saw %q names neither chainctl nor this program", r.Saw)
	}
	if r := testReacher(ours, false).reach(pathEnv(chainctlDir, oursDir), false, "", "")[0]; !strings.HasPrefix(r.Fix, "sudo ln -sf ") {
		t.Fatalf("a directory that is not ours: fix %q, want sudo", r.Fix)
	}

	// The fix as printed: the name now runs this program, chainctl itself is still there.
	if out, err := exec.Command("sh", "-c", r.Fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", r.Fix, err, out)
	}
	r = testReacher(ours, true).reach(pathEnv(chainctlDir, oursDir), false, "", "")[0]
	if r.Program != ProgramThis || r.Level != "" || r.Fix != "" {
		t.Fatalf("after the fix: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(chainctlDir, "chainctl")); err != nil {
		t.Fatalf("the fix touched chainctl: %v", err)
	}
}

func TestReachChainctlLinkLater(t *testing.T) {
	chainctlDir, oursDir, ours := chainctlLayout(t)
	r := testReacher(ours, true).reach(pathEnv(oursDir, chainctlDir), false, "", "")[0]
	if r.Program != ProgramThis || r.Level != "" || r.Fix != "" {
		t.Fatalf("this program first: %+v", r)
	}
	if !strings.Contains(r.Saw, "chainctl's link at "+filepath.Join(chainctlDir, HelperBinary)+" comes later") {
		t.Fatalf("saw %q does not say chainctl's link comes later", r.Saw)
	}
	if len(r.Later) != 1 {
		t.Fatalf("later: %v", r.Later)
	}
}

func TestReachChainctlLinkNoOtherInstall(t *testing.T) {
	chainctlDir, _, _ := chainctlLayout(t)
	exe := filepath.Join(t.TempDir(), "build", HelperBinary)
	writeFile(t, exe, "#!/bin/sh\n", 0o755)
	r := testReacher(exe, true).reach(pathEnv(chainctlDir), false, "", "")[0]
	if r.Level != "fail" || r.Fix != "ln -sf "+exe+" "+filepath.Join(chainctlDir, HelperBinary) {
		t.Fatalf("only chainctl's link on PATH: %+v", r)
	}
}

func TestReachIdentifiesByVersion(t *testing.T) {
	dir := t.TempDir()
	copyDir, hardDir, exe := filepath.Join(dir, "copy"), filepath.Join(dir, "hard"), filepath.Join(dir, "self", HelperBinary)
	writeFile(t, exe, "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(copyDir, HelperBinary), "#!/bin/sh\necho 'docker-credential-cgr (github.com/cgrtools/docker-credential-cgr) v0.9.0'\n", 0o755)
	// chainctl copied (not linked) under our name: only its answer tells.
	writeFile(t, filepath.Join(hardDir, HelperBinary), "#!/bin/sh\necho 'chainctl version v0.2.0'\n", 0o755)

	r := testReacher(exe, true).reach(pathEnv(copyDir), false, "", "")[0]
	if r.Program != ProgramCopy || r.Fix != "" || !strings.Contains(r.Saw, "version v0.9.0") {
		t.Fatalf("another copy: %+v", r)
	}
	r = testReacher(exe, true).reach(pathEnv(hardDir, copyDir), false, "", "")[0]
	want := "ln -sf " + filepath.Join(copyDir, HelperBinary) + " " + filepath.Join(hardDir, HelperBinary)
	if r.Program != ProgramChainctl || r.Fix != want {
		t.Fatalf("chainctl copied under our name: %+v, want fix %q", r, want)
	}
}

func TestLookPathAllOnceEach(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	writeFile(t, filepath.Join(bin, HelperBinary), "#!/bin/sh\n", 0o755)
	if err := os.Symlink(bin, filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	got := lookPathAll(HelperBinary, strings.Join([]string{bin, filepath.Join(dir, "alias"), bin, "", filepath.Join(dir, "none")}, ":"))
	if len(got) != 1 || got[0] != filepath.Join(bin, HelperBinary) {
		t.Fatalf("lookPathAll = %v, want the one file once", got)
	}
}
