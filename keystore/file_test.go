package keystore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func openFile(t *testing.T, dir string) Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Backend: "file", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileRoundTripAndModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "store")
	defer setUmask(0o022)()
	s := openFile(t, dir)
	ctx := context.Background()
	if s.Kind() != "file" || !strings.Contains(s.Describe(), dir) {
		t.Fatalf("Kind %q Describe %q", s.Kind(), s.Describe())
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("store dir mode %v, want 0700", fi.Mode().Perm())
	}

	keys := []string{"session/issuer.enforce.dev", "token/127.0.0.1:41234/cgr.dev", "pull/cgr.dev", ".", "..", "a@b-c_d",
		strings.Repeat("/", 200), strings.Repeat("k", 200)}
	for i, k := range keys {
		v := []byte(fmt.Sprintf("value %d \x00\xff\n", i))
		if err := s.Set(ctx, k, v); err != nil {
			t.Fatalf("Set %q: %v", k, err)
		}
		got, err := s.Get(ctx, k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get %q = %q, %v", k, got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(keys) {
		t.Fatalf("%d files for %d keys", len(entries), len(keys))
	}
	for _, e := range entries {
		fi, _ := e.Info()
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want a regular 0600 file", e.Name(), fi.Mode())
		}
	}

	// Replace keeps the mode and the file count.
	if err := s.Set(ctx, keys[0], []byte("new")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, keys[0]); string(got) != "new" {
		t.Fatalf("after replace: %q", got)
	}
	if entries2, _ := os.ReadDir(dir); len(entries2) != len(keys) {
		t.Fatalf("replace left %d files, want %d", len(entries2), len(keys))
	}

	if _, err := s.Get(ctx, "missing/key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	if err := s.Delete(ctx, keys[1]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, keys[1]); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Get(ctx, keys[1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get deleted: %v", err)
	}
}

// An existing store directory we own that others can read or enter is made 0700; one that
// others can write is refused and left as it is (CONTRACT 3a): files may already have been
// planted in it, and Get would serve them.
func TestFileExistingOpenDirTightenedOrRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permission bits")
	}
	for _, mode := range []os.FileMode{0o755, 0o750, 0o701, 0o744} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		openFile(t, dir)
		fi, _ := os.Stat(dir)
		if fi.Mode().Perm() != 0o700 {
			t.Fatalf("existing %v dir left at %v, want 0700", mode, fi.Mode().Perm())
		}
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o702, 0o720} {
		dir := t.TempDir()
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(context.Background(), Options{Backend: "file", Dir: dir})
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "writable by others") || !strings.Contains(err.Error(), "chmod 700 "+dir) {
			t.Fatalf("Open on our own %v dir: %v, want a refusal that says how to fix it", mode, err)
		}
		if _, err := Lock(context.Background(), dir, "x"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Lock in our own %v dir: %v", mode, err)
		}
		if fi, _ := os.Stat(dir); fi.Mode().Perm() != mode {
			t.Fatalf("a refused %v dir was chmodded to %v", mode, fi.Mode().Perm())
		}
	}
	// A private directory keeps the mode its owner chose.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := ensureDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o500 {
		t.Fatalf("private dir mode changed to %v", fi.Mode().Perm())
	}
}

// A private (0700) directory that belongs to another user is refused too: whoever owns it
// decides what is in it.
func TestFileForeignPrivateDirRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permission bits")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another uid")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, fileName("session")), []byte("planted"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	_, err := Open(context.Background(), Options{Backend: "file", Dir: dir})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "CGR_STORE_DIR") {
		t.Fatalf("Open on another user's 0700 dir: %v", err)
	}
	// Nor through a link to it that someone else owns... nor a link of theirs to ours.
	mine := t.TempDir()
	link := filepath.Join(t.TempDir(), "store")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Options{Backend: "file", Dir: link}); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "link owned by uid 65534") {
		t.Fatalf("Open through another user's link: %v", err)
	}
}

// A directory someone else owns and others can write to is refused, not used nor chmodded.
func TestFileForeignOpenDirRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permission bits")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to another uid")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	_, err := Open(context.Background(), Options{Backend: "file", Dir: dir})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "CGR_STORE_DIR") {
		t.Fatalf("Open on a foreign 0777 dir: %v", err)
	}
	if _, err := Lock(context.Background(), dir, "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Lock on a foreign 0777 dir: %v", err)
	}
	fi, _ := os.Stat(dir)
	if fi.Mode().Perm() != 0o777 {
		t.Fatalf("foreign dir chmodded to %v", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("files written into a refused dir: %v", entries)
	}
}

// A world-writable sticky directory (/tmp) is shared by design: refused even when ours.
func TestFileStickyDirRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no unix permission bits")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := ensureDir(dir); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("ensureDir on a sticky 1777 dir: %v", err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o777 {
		t.Fatalf("sticky dir chmodded to %v", fi.Mode().Perm())
	}
}

func TestFileRelativeDirRefused(t *testing.T) {
	for _, d := range []string{"store", "./store", "../x/store", "."} {
		if _, err := Open(context.Background(), Options{Backend: "file", Dir: d}); !errors.Is(err, ErrUnavailable) ||
			!strings.Contains(err.Error(), "absolute") {
			t.Errorf("Dir %q: %v", d, err)
		}
		if _, err := Lock(context.Background(), d, "x"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Lock in %q: %v", d, err)
		}
	}
	if _, err := os.Stat("store"); err == nil {
		t.Error("a relative store directory was created")
	}
}

func TestFileRejectsBadKeysAndValues(t *testing.T) {
	s := openFile(t, t.TempDir())
	ctx := context.Background()
	for _, k := range []string{"", "a b", "../x", `a\b`, "a#1", strings.Repeat("k", 201), "é"} {
		if k == "../x" {
			continue // '.' and '/' are allowed; the escaped file name stays inside the dir
		}
		if err := s.Set(ctx, k, []byte("v")); err == nil {
			t.Errorf("Set accepted key %q", k)
		}
	}
	if err := s.Set(ctx, "../x", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(s.(*fileStore).dir), "x.secret")); err == nil {
		t.Fatal("key escaped the store directory")
	}
	if err := s.Set(ctx, "big", make([]byte, maxValue+1)); err == nil {
		t.Fatal("Set accepted a value over the limit")
	}
	if err := s.Set(ctx, "big", make([]byte, maxValue)); err != nil {
		t.Fatalf("Set of maxValue bytes: %v", err)
	}
}

func TestFileDeleteAllKeepsLocksAndState(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	ctx := context.Background()
	for _, k := range []string{"a", "b/c", "d"} {
		if err := s.Set(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := Lock(ctx, dir, "refresh-x")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := os.WriteFile(filepath.Join(dir, noticeFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if strings.Join(left, ",") != noticeFile+",refresh-x.lock" {
		t.Fatalf("after DeleteAll: %v", left)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after DeleteAll: %v", err)
	}
}

func TestFileStrayTempFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	ctx := context.Background()
	// A writer killed between CreateTemp and rename leaves this; it is no key.
	stray := filepath.Join(dir, tempPrefix+"k-999")
	if err := os.WriteFile(stray, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "k"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if keys := secretFiles(t, dir); len(keys) != 1 {
		t.Fatalf("secret files %v, want k's alone", keys)
	}
}

// A temp file holds a secret: none outlives the next run that opens the store, however
// young, unless its writer is still at work on it (CONTRACT section 3).
func TestFileAbandonedTempsRemovedByNextRun(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("temp files are judged by flock on unix only")
	}
	dir := t.TempDir()
	openFile(t, dir)
	stray := filepath.Join(dir, tempPrefix+"session-123")
	if err := os.WriteFile(stray, []byte("a rotated refresh token"), 0o600); err != nil {
		t.Fatal(err)
	}
	openFile(t, dir)
	if _, err := os.Stat(stray); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a fresh temp file of a dead writer outlived the next run: %v", err)
	}

	// A writer that is alive, between creating its temp file and the rename.
	c := helperCmd(t, "tempholder", "CGR_HELPER_DIR="+dir)
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		_ = c.Process.Kill()
		t.Fatalf("the writer did not start: %v", c.Wait())
	}
	held := sc.Text()
	openFile(t, dir)
	if _, err := os.Stat(held); err != nil {
		t.Fatalf("a running writer's temp file was removed from under it: %v", err)
	}
	_ = c.Process.Kill() // SIGKILL: it cannot clean up
	_ = c.Wait()
	if _, err := os.Stat(held); err != nil {
		t.Fatalf("the killed writer's temp file: %v", err)
	}
	openFile(t, dir)
	if _, err := os.Stat(held); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a killed writer's temp file outlived the next run: %v", err)
	}
}

func secretFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), secretSuffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestFileConcurrentProcesses runs several processes that Set/Get/Delete their own keys
// and increment one shared counter under Lock: no write may be lost, no read torn.
func TestFileConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	const procs, n = 6, 60
	var errs []error
	type proc struct {
		cmd *exec.Cmd
		out *bytes.Buffer
	}
	var cmds []proc
	for i := 0; i < procs; i++ {
		c := helperCmd(t, "stress", "CGR_HELPER_DIR="+dir, fmt.Sprintf("CGR_HELPER_ID=p%d", i), fmt.Sprintf("CGR_HELPER_N=%d", n))
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, proc{c, &out})
	}
	for i, c := range cmds {
		if err := c.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("process %d: %v: %s", i, err, c.out))
		}
	}
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	s := openFile(t, dir)
	v, err := s.Get(context.Background(), "shared/counter")
	if err != nil {
		t.Fatal(err)
	}
	if c, err := parseCounter(v); err != nil || c != procs*n {
		t.Fatalf("counter = %d, %v; want %d (lost writes)", c, err, procs*n)
	}
}

// TestFileWriterKilledMidWrite SIGKILLs a process that replaces a 64 KiB value in a loop,
// at varying points; the key must always hold one whole value.
func TestFileWriterKilledMidWrite(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL test is for unix")
	}
	dir := t.TempDir()
	for round := 0; round < 8; round++ {
		c := helperCmd(t, "writer", "CGR_HELPER_DIR="+dir)
		stdout, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for i := 0; i <= round*3 && sc.Scan(); i++ {
		}
		_ = c.Process.Kill()
		_ = c.Wait()
		got, err := openFile(t, dir).Get(context.Background(), "victim")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if !bytes.Equal(got, writerValue(0)) && !bytes.Equal(got, writerValue(1)) {
			t.Fatalf("round %d: torn value of %d bytes", round, len(got))
		}
	}
	if err := openFile(t, dir).DeleteAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("DeleteAll left %d files (temp files of killed writers?)", len(entries))
	}
}

// TestFileSetsSurviveTempSweeps: every run sweeps abandoned temp files (removeAbandonedTemps
// takes each one's lock for an instant to see whether its writer is gone). A writer whose
// fresh temp file is being looked at just then makes another; under many parallel helpers
// (CI: TestConcurrentProcesses) three tries were not always enough and a store failed.
func TestFileSetsSurviveTempSweeps(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir).(*fileStore)
	ctx := context.Background()
	stop := make(chan struct{})
	var sweepers sync.WaitGroup
	for range 3 {
		sweepers.Add(1)
		go func() {
			defer sweepers.Done()
			for {
				select {
				case <-stop:
					return
				default:
					s.removeAbandonedTemps()
				}
			}
		}()
	}
	var writers sync.WaitGroup
	errs := make(chan error, 4*300)
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 300 {
				if err := s.Set(ctx, fmt.Sprintf("k/%d", w), []byte(fmt.Sprint(i))); err != nil {
					errs <- err
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	sweepers.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 3 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of 1200 Sets failed while temp files were swept", n)
	}
}

// TestFileNamesStayAsWritten: the escaping of keys into file names is what earlier versions
// wrote (a changed name would lose every stored login), byte by byte.
func TestFileNamesStayAsWritten(t *testing.T) {
	if got, want := fileName("token/127.0.0.1:42997/cgr.dev"), "token%2F127.0.0.1%3A42997%2Fcgr.dev"+secretSuffix; got != want {
		t.Fatalf("fileName = %q, want %q", got, want)
	}
	for c := 0; c < 256; c++ {
		key := "a" + string([]byte{byte(c)}) + "b"
		want := "a" + fmt.Sprintf("%%%02X", c) + "b"
		if b := byte(c); b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("._@-", b) >= 0 {
			want = key
		}
		if got := escapeName(key); got != want {
			t.Errorf("escapeName(%q) = %q, want %q", key, got, want)
		}
	}
}
