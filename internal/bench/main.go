// Command bench measures docker-credential-cgr as clients see it, a process per call, against
// the project's emulator, and prints ONE table of ratios to baselines run interleaved with it
// on the same machine (A,B,A,B...), so machine noise cancels out of the ratios.
//
// Run by scripts/bench.sh (make bench) inside scripts/with-keyring.sh, which provides the
// private gnome-keyring the keychain rows need; without it those rows say "skipped".
//
//	go run ./internal/bench -helper bin/docker-credential-cgr [-n 300] [-hist]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// Targets (issue "Evidence and release").
const (
	targetWarmRatio     = 1.8
	targetKeychainRatio = 0.45
	targetInitMS        = 0.8
	targetSizeBytes     = 15 << 20
	targetRSSBytes      = 20 << 20
	refreshRounds       = 3
	concurrentGets      = 24
	refreshTTL          = 8 * time.Second // freshness margin: a quarter, 2 s
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "browse" { // we are the fake browser of `login`
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := emulator.Browse(ctx, os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "browser:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) >= 2 && os.Args[1] == "compare-inner" { // we are in the network namespace
		if err := compareInner(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench: compare:", err)
			os.Exit(1)
		}
		return
	}
	helper := flag.String("helper", "bin/docker-credential-cgr", "the helper binary (built by make build)")
	n := flag.Int("n", 300, "runs of each side of every latency comparison")
	hist := flag.Bool("hist", true, "print ASCII histograms of the warm get and exec-floor latencies")
	micro := flag.String("micro", "./keystore/ ./token/ ./credhelper/", "packages whose Go benchmarks are appended (empty: none)")
	benchtime := flag.String("benchtime", "200x", "-benchtime of the Go micro-benchmarks")
	ecr := flag.String("ecr", ".cache/bin/docker-credential-ecr-login", "docker-credential-ecr-login for the comparison (scripts/competitors.sh; empty: none)")
	gcr := flag.String("gcr", ".cache/bin/docker-credential-gcr", "docker-credential-gcr for the comparison (scripts/competitors.sh; empty: none)")
	compare := flag.Bool("compare", true, "add the \"Compared with other helpers\" section")
	only := flag.Bool("compare-only", false, "run only the comparison section")
	keychainOnly := flag.Bool("keychain-only", false, "run only the keychain rows (to compare two builds, one run each)")
	flag.Parse()
	b := &bench{n: *n, ecr: *ecr, gcr: *gcr, doCompare: *compare, compareOnly: *only, keychainOnly: *keychainOnly}
	if err := b.run(*helper, *micro, *benchtime, *hist); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	n      int
	helper string
	self   string
	tmp    string
	rows   []row
	notes  []string

	ecr, gcr               string // the other helpers (compare.go)
	doCompare, compareOnly bool
	keychainOnly           bool
}

type row struct{ measure, cgr, baseline, ratio, target, met string }

func (b *bench) add(r row) { b.rows = append(b.rows, r) }

func (b *bench) run(helper, micro, benchtime string, hist bool) error {
	var err error
	if b.helper, err = filepath.Abs(helper); err != nil {
		return err
	}
	if _, err := os.Stat(b.helper); err != nil {
		return fmt.Errorf("%w (run `make build` first)", err)
	}
	if b.self, err = os.Executable(); err != nil {
		return err
	}
	if b.tmp, err = os.MkdirTemp("", "cgr-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	if b.compareOnly {
		step("compared with other helpers")
		if err := b.compare(b.ecr, b.gcr); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		b.print()
		for _, n := range b.notes {
			fmt.Println()
			fmt.Println(n)
		}
		return nil
	}
	if b.keychainOnly {
		step("keychain get vs docker-credential-secretservice")
		if err := b.keychain(); err != nil {
			return fmt.Errorf("keychain get: %w", err)
		}
		b.print()
		return nil
	}
	floor, err := b.buildFloor(false)
	if err != nil {
		return fmt.Errorf("building the exec floor: %w", err)
	}
	floorHTTP, err := b.buildFloor(true)
	if err != nil {
		return fmt.Errorf("building the net/http floor: %w", err)
	}

	step("warm get, file store, vs exec floor")
	warm, floorRuns, err := b.warmFile(floor, floorHTTP)
	if err != nil {
		return fmt.Errorf("warm get: %w", err)
	}
	step("keychain get vs docker-credential-secretservice")
	if err := b.keychain(); err != nil {
		return fmt.Errorf("keychain get: %w", err)
	}
	step("refreshes per expiry under concurrent gets")
	if err := b.refreshes(); err != nil {
		return fmt.Errorf("refreshes: %w", err)
	}
	step("package init costs (GODEBUG=inittrace=1)")
	b.initTrace()
	if micro != "" {
		step("Go micro-benchmarks")
		if err := b.micro(strings.Fields(micro), benchtime); err != nil {
			return fmt.Errorf("micro-benchmarks: %w", err)
		}
	}
	if b.doCompare {
		step("compared with other helpers")
		if err := b.compare(b.ecr, b.gcr); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
	}

	b.print()
	if hist {
		fmt.Println()
		histogram("warm `get` (file store)", durations(warm), "exec floor", durations(floorRuns))
	}
	for _, n := range b.notes {
		fmt.Println()
		fmt.Println(n)
	}
	return nil
}

func step(s string) { fmt.Fprintf(os.Stderr, "bench: %s...\n", s) }

// buildFloor builds the cheapest Go process that does what a helper must: start, read stdin,
// answer on stdout. Built as the helper is: static, stripped.
// With netHTTP it also links net/http (and crypto/tls), which any helper that can refresh a
// token over https carries: the part of the gap no restructuring of ours removes.
func (b *bench) buildFloor(netHTTP bool) (string, error) {
	name, imp, use := "floor", "", ""
	if netHTTP {
		name, imp, use = "floor-nethttp", "\t\"net/http\"\n", "\nvar _ = http.DefaultClient\n"
	}
	dir := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	src := "package main\n\nimport (\n" + imp + "\t\"os\"\n)\n" + use + "\nfunc main() {\n\tbuf := make([]byte, 512)\n\tn, _ := os.Stdin.Read(buf)\n\tos.Stdout.Write(buf[:n])\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module floor\n\ngo 1.26\n"), 0o600); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if o, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%v: %s", err, o)
	}
	return out, nil
}

// world is one emulator and one isolated user: HOME, configs and a store of its own.
type world struct {
	emu  *emulator.Emulator
	env  []string
	host string
}

func (b *bench) newWorld(name string, opts emulator.Options, store string) (*world, error) {
	emu, err := emulator.Start(opts)
	if err != nil {
		return nil, err
	}
	home := filepath.Join(b.tmp, name)
	if err := os.MkdirAll(home, 0o700); err != nil {
		emu.Close()
		return nil, err
	}
	env := []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"CGR_STORE=" + store,
		"CGR_AUTO_LOGIN=false",
		"BROWSER=" + b.self + " browse",
	}
	if store == "keychain" {
		env = append(env, "DBUS_SESSION_BUS_ADDRESS="+os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
	}
	env = append(env, emu.Env()...)
	w := &world{emu: emu, env: env, host: emu.RegistryHost()}
	if r := w.runHelper(b.helper, "", "login"); r.err != nil {
		emu.Close()
		return nil, fmt.Errorf("login: %v: %s", r.err, oneLine(r.stderr))
	}
	return w, nil
}

type result struct {
	d      time.Duration
	rss    int64 // peak RSS in bytes (wait4 rusage)
	stdout string
	stderr string
	err    error
}

func run(env []string, stdin, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{d: time.Since(start), stdout: out.String(), stderr: errb.String(), err: err}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.rss = ru.Maxrss * 1024 // KiB on Linux
		}
	}
	return r
}

func (w *world) runHelper(helper, stdin string, args ...string) result {
	return run(w.env, stdin, helper, args...)
}

// get runs `get` and checks its answer is a credential (the secret is never printed).
func (w *world) get(helper string) (result, string, error) {
	r := w.runHelper(helper, w.host, "get")
	if r.err != nil {
		return r, "", fmt.Errorf("get: %v: %s", r.err, oneLine(r.stdout))
	}
	var c struct{ Username, Secret string }
	if err := json.Unmarshal([]byte(r.stdout), &c); err != nil || c.Username != "_token" || c.Secret == "" {
		return r, "", errors.New("get: the answer is not a _token credential")
	}
	return r, c.Secret, nil
}

// warmFile: `get` with a fresh cached token in the file store, interleaved with the exec
// floor and with `version` (process start plus package inits, no settings, no store).
func (b *bench) warmFile(floor, floorHTTP string) (get, fl []result, err error) {
	w, err := b.newWorld("file", emulator.Options{}, "file")
	if err != nil {
		return nil, nil, err
	}
	defer w.emu.Close()
	if _, _, err := w.get(b.helper); err != nil { // caches the token
		return nil, nil, err
	}
	for range 10 { // warm the page cache for all three
		w.get(b.helper)
		run(w.env, w.host, floor)
		run(w.env, w.host, floorHTTP)
		w.runHelper(b.helper, "", "version")
	}
	w.emu.ResetCounts()
	var ver, flh []result
	for i := range b.n {
		// Rotate who goes first so no side always follows the same one.
		sides := []func() error{
			func() error { r, _, err := w.get(b.helper); get = append(get, r); return err },
			func() error {
				r := run(w.env, w.host, floor)
				fl = append(fl, r)
				return r.err
			},
			func() error {
				r := w.runHelper(b.helper, "", "version")
				ver = append(ver, r)
				return r.err
			},
			func() error {
				r := run(w.env, w.host, floorHTTP)
				flh = append(flh, r)
				return r.err
			},
		}
		for j := range sides {
			if err := sides[(i+j)%len(sides)](); err != nil {
				return nil, nil, err
			}
		}
	}
	if c := w.emu.Count("sts/exchange_refresh_token"); c != 0 {
		return nil, nil, fmt.Errorf("%d refreshes during warm gets of a fresh token", c)
	}
	gs, fs, vs, hs := durations(get), durations(fl), durations(ver), durations(flh)
	n := fmt.Sprintf(" (N=%d, interleaved)", b.n)
	b.add(row{"warm `get`, file store, median" + n, ms(pct(gs, 50)), ms(pct(fs, 50)) + " exec floor", ratio(pct(gs, 50), pct(fs, 50)), fmt.Sprintf("≤ %.1fx", targetWarmRatio), met(ratioOf(pct(gs, 50), pct(fs, 50)) <= targetWarmRatio)})
	b.add(row{"warm `get`, file store, p90", ms(pct(gs, 90)), ms(pct(fs, 90)) + " exec floor", ratio(pct(gs, 90), pct(fs, 90)), fmt.Sprintf("≤ %.1fx", targetWarmRatio), met(ratioOf(pct(gs, 90), pct(fs, 90)) <= targetWarmRatio)})
	b.add(row{"where it goes: exec floor + net/http linked, median", ms(pct(hs, 50)), ms(pct(fs, 50)) + " exec floor", ratio(pct(hs, 50), pct(fs, 50)), "–", "info"})
	b.add(row{"where it goes: `version` (all package inits, no settings, no store), median", ms(pct(vs, 50)), ms(pct(fs, 50)) + " exec floor", ratio(pct(vs, 50), pct(fs, 50)), "–", "info"})
	b.add(row{"warm `get` vs the net/http floor, median", ms(pct(gs, 50)), ms(pct(hs, 50)) + " net/http floor", ratio(pct(gs, 50), pct(hs, 50)), "–", "info"})
	b.sizeAndRSS(floor, w.env, w.host)
	b.initAndInstructions(floor, w)
	return get, fl, nil
}

// initAndInstructions: the package inits of a warm get, all packages included (the median of
// GODEBUG=inittrace=1's clock times over 50 runs), and the instructions of a warm get and of the
// exec floor as valgrind's callgrind counts them, with asynchronous preemption off: counts,
// unlike times, repeat exactly, whatever else the machine is doing.
func (b *bench) initAndInstructions(floor string, w *world) {
	var inits []time.Duration
	for range 50 {
		cmd := exec.Command(b.helper, "get")
		cmd.Env = append(append([]string{}, w.env...), "GODEBUG=inittrace=1")
		cmd.Stdin = strings.NewReader(w.host)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if cmd.Run() != nil {
			break
		}
		var total float64
		for _, l := range strings.Split(errb.String(), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && f[0] == "init" {
				if v, err := strconv.ParseFloat(f[4], 64); err == nil {
					total += v
				}
			}
		}
		inits = append(inits, time.Duration(total*float64(time.Millisecond)))
	}
	if len(inits) > 0 {
		m := pct(inits, 50)
		b.add(row{"package inits of a warm `get`, all packages, median of 50", ms(m), "–", "–", fmt.Sprintf("≤ %.1f ms", targetInitMS), met(float64(m)/float64(time.Millisecond) <= targetInitMS)})
	}
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		b.add(row{"instructions of a warm `get` (callgrind)", "skipped", "valgrind not installed", "–", "–", "not run"})
		return
	}
	count := func(bin string, args ...string) (int64, error) {
		cmd := exec.Command(vg, append([]string{"--tool=callgrind", "--callgrind-out-file=/dev/null", bin}, args...)...)
		cmd.Env = append(append([]string{}, w.env...), "GODEBUG=asyncpreemptoff=1")
		cmd.Stdin = strings.NewReader(w.host)
		var errb bytes.Buffer
		cmd.Stderr, cmd.Stdout = &errb, io.Discard
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s under callgrind: %v: %s", bin, err, lastLines(errb.String(), 3))
		}
		for _, l := range strings.Split(errb.String(), "\n") {
			if _, after, ok := strings.Cut(l, "Collected : "); ok {
				return strconv.ParseInt(strings.TrimSpace(after), 10, 64)
			}
		}
		return 0, fmt.Errorf("callgrind printed no count for %s", bin)
	}
	gi, err1 := count(b.helper, "get")
	fi, err2 := count(floor)
	if err := errors.Join(err1, err2); err != nil {
		b.add(row{"instructions of a warm `get` (callgrind)", "failed", err.Error(), "–", "–", "not run"})
		return
	}
	b.add(row{"instructions of a warm `get` (callgrind, GODEBUG=asyncpreemptoff=1)", fmt.Sprintf("%.2fM", float64(gi)/1e6), fmt.Sprintf("%.2fM exec floor", float64(fi)/1e6), fmt.Sprintf("%.2fx", float64(gi)/float64(fi)), "–", "info"})
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// keychain: `get` from gnome-keyring against docker-credential-secretservice on the same
// keyring, each holding one credential of about the same size.
func (b *bench) keychain() error {
	skip := func(why string) error {
		b.add(row{"keychain `get` vs docker-credential-secretservice", "skipped", why, "–", fmt.Sprintf("≤ %.2fx", targetKeychainRatio), "not run"})
		return nil
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" || os.Getenv("CGR_TEST_KEYRING") != "1" {
		return skip("no private keyring (run under scripts/with-keyring.sh)")
	}
	ss, err := exec.LookPath("docker-credential-secretservice")
	if err != nil {
		return skip("docker-credential-secretservice not installed (scripts/deps.sh)")
	}
	w, err := b.newWorld("keychain", emulator.Options{}, "keychain")
	if err != nil {
		return err
	}
	defer w.emu.Close()
	_, secret, err := w.get(b.helper)
	if err != nil {
		return err
	}
	// The reference helper gets a credential of the same shape and size: a Chainguard token.
	const ssURL = "https://bench.cgr.invalid"
	ssTok := w.emu.MintToken(w.emu.User().ID, "cgr.dev")
	cred, _ := json.Marshal(map[string]string{"ServerURL": ssURL, "Username": "_token", "Secret": ssTok})
	if r := run(w.env, string(cred), ss, "store"); r.err != nil {
		return fmt.Errorf("docker-credential-secretservice store: %v: %s", r.err, oneLine(r.stdout+r.stderr))
	}
	defer run(w.env, ssURL, ss, "erase")
	ssGet := func() result {
		r := run(w.env, ssURL, ss, "get")
		if r.err == nil && !strings.Contains(r.stdout, `"Secret"`) {
			r.err = errors.New("docker-credential-secretservice get: no credential in the answer")
		}
		return r
	}
	for range 10 {
		w.get(b.helper)
		ssGet()
	}
	var cg, sg []result
	for i := range b.n {
		for j := range 2 {
			if (i+j)%2 == 0 {
				r, _, err := w.get(b.helper)
				if err != nil {
					return err
				}
				cg = append(cg, r)
			} else {
				r := ssGet()
				if r.err != nil {
					return fmt.Errorf("%v: %s", r.err, oneLine(r.stdout))
				}
				sg = append(sg, r)
			}
		}
	}
	cs, s := durations(cg), durations(sg)
	n := fmt.Sprintf(" (N=%d, interleaved; secret %d B vs %d B)", b.n, len(secret), len(ssTok))
	b.add(row{"keychain `get` (gnome-keyring), median" + n, ms(pct(cs, 50)), ms(pct(s, 50)) + " secretservice", ratio(pct(cs, 50), pct(s, 50)), fmt.Sprintf("≤ %.2fx", targetKeychainRatio), met(ratioOf(pct(cs, 50), pct(s, 50)) <= targetKeychainRatio)})
	b.add(row{"keychain `get` (gnome-keyring), p90", ms(pct(cs, 90)), ms(pct(s, 90)) + " secretservice", ratio(pct(cs, 90), pct(s, 90)), fmt.Sprintf("≤ %.2fx", targetKeychainRatio), met(ratioOf(pct(cs, 90), pct(s, 90)) <= targetKeychainRatio)})
	return nil
}

// refreshes: a short-lived token, past its freshness margin; 24 `get`s at once, refreshRounds
// times. Each round must cost the issuer exactly one refresh.
func (b *bench) refreshes() error {
	w, err := b.newWorld("refresh", emulator.Options{TokenTTL: refreshTTL}, "file")
	if err != nil {
		return err
	}
	defer w.emu.Close()
	_, cur, err := w.get(b.helper)
	if err != nil {
		return err
	}
	var counts []string
	all := true
	var mu sync.Mutex
	for range refreshRounds {
		tok, err := token.Parse(cur)
		if err != nil {
			return err
		}
		// Past the freshness margin (a quarter of the lifetime), not expired.
		time.Sleep(time.Until(tok.Expiry.Add(-refreshTTL/4 + 500*time.Millisecond)))
		w.emu.ResetCounts()
		var wg sync.WaitGroup
		var firstErr error
		next := ""
		for range concurrentGets {
			wg.Go(func() {
				_, s, err := w.get(b.helper)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if s == cur && firstErr == nil {
					firstErr = errors.New("a get served the stale token")
				}
				next = s
			})
		}
		wg.Wait()
		if firstErr != nil {
			return firstErr
		}
		c := w.emu.Count("sts/exchange_refresh_token")
		counts = append(counts, strconv.Itoa(c))
		all = all && c == 1
		cur = next
	}
	b.add(row{fmt.Sprintf("refreshes per expiry, %d concurrent `get`s (%d expiries, TokenTTL %s)", concurrentGets, refreshRounds, refreshTTL), strings.Join(counts, ", "), "–", "–", "exactly 1", met(all)})
	return nil
}

func (b *bench) sizeAndRSS(floor string, env []string, host string) {
	hs, fs := fileSize(b.helper), fileSize(floor)
	b.add(row{"binary size (stripped, static)", mib(hs), mib(fs) + " exec floor", ratio(time.Duration(hs), time.Duration(fs)), "< 15 MiB", met(hs < targetSizeBytes)})
	peak, how := b.peakRSS(env, host, b.helper, "get")
	fpeak, _ := b.peakRSS(env, host, floor)
	b.add(row{"peak RSS of warm `get` (max of 20 runs, " + how + ")", mib(peak), mib(fpeak) + " exec floor", ratio(time.Duration(peak), time.Duration(fpeak)), "< 20 MiB", met(peak > 0 && peak < targetRSSBytes)})
}

// peakRSS is the largest max-RSS of 20 runs. /usr/bin/time forks (it does not share our
// memory), so its %M is the child's own; Go's os/exec starts children with CLONE_VM, and
// the kernel then carries our RSS into the child's wait4 Maxrss, so that is only a fallback.
func (b *bench) peakRSS(env []string, stdin, name string, args ...string) (int64, string) {
	var peak int64
	gnuTime, err := exec.LookPath("/usr/bin/time")
	for i := range 20 {
		if err != nil {
			r := run(env, stdin, name, args...)
			peak = max(peak, r.rss)
			continue
		}
		out := filepath.Join(b.tmp, fmt.Sprintf("rss-%d", i))
		run(env, stdin, gnuTime, append([]string{"-f", "%M", "-o", out, name}, args...)...)
		bs, rerr := os.ReadFile(out)
		if rerr != nil {
			continue
		}
		f := strings.Fields(string(bs))
		if len(f) == 0 {
			continue
		}
		if kib, perr := strconv.ParseInt(f[len(f)-1], 10, 64); perr == nil {
			peak = max(peak, kib*1024)
		}
	}
	if err != nil {
		return peak, "wait4 rusage, includes the driver's RSS: install `time` for /usr/bin/time"
	}
	return peak, "/usr/bin/time %M"
}

// initTrace runs `get` with GODEBUG=inittrace=1 a few times and reports the median init
// clock time of the costliest packages: what every `get` pays before main.
func (b *bench) initTrace() {
	w, err := b.newWorld("inittrace", emulator.Options{}, "file")
	if err != nil {
		b.notes = append(b.notes, "init trace: "+err.Error())
		return
	}
	defer w.emu.Close()
	env := append(slices.Clone(w.env), "GODEBUG=inittrace=1")
	re := regexp.MustCompile(`^init (\S+) @[0-9.]+ ms, ([0-9.]+) ms clock, ([0-9]+) bytes, ([0-9]+) allocs`)
	per := map[string][]float64{}
	bytesOf := map[string]int{}
	var totals []float64
	const runs = 21
	for range runs {
		r := run(env, w.host, b.helper, "get")
		total := 0.0
		for _, line := range strings.Split(r.stderr, "\n") {
			m := re.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			v, _ := strconv.ParseFloat(m[2], 64)
			per[m[1]] = append(per[m[1]], v)
			bytesOf[m[1]], _ = strconv.Atoi(m[3])
			total += v
		}
		totals = append(totals, total)
	}
	type pkg struct {
		name string
		med  float64
	}
	var ps []pkg
	for name, vs := range per {
		sort.Float64s(vs)
		ps = append(ps, pkg{name, vs[len(vs)/2]})
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].med > ps[j].med })
	sort.Float64s(totals)
	var sb strings.Builder
	fmt.Fprintf(&sb, "Package init of one `get` (GODEBUG=inittrace=1, median of %d runs): %.3f ms in %d packages; costliest:\n", runs, totals[len(totals)/2], len(per))
	for i, p := range ps {
		if i == 10 {
			break
		}
		fmt.Fprintf(&sb, "  %-55s %.3f ms  %7d B\n", p.name, p.med, bytesOf[p.name])
	}
	b.notes = append(b.notes, strings.TrimRight(sb.String(), "\n"))
}

// micro runs the Go benchmarks of the hot-path packages briefly and adds a row for each.
func (b *bench) micro(pkgs []string, benchtime string) error {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-benchtime", benchtime, "-count", "1"}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	re := regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+([0-9.]+) ns/op(?:\s+([0-9]+) B/op\s+([0-9]+) allocs/op)?`)
	pkg := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "github.com/cgrtools/docker-credential-cgr/")
			continue
		}
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		v := ms(time.Duration(ns)) + "/op"
		if m[4] != "" {
			v += fmt.Sprintf(", %s B, %s allocs", m[4], m[5])
		}
		b.add(row{fmt.Sprintf("micro: %s %s (%s)", pkg, m[1], benchtime), v, "–", "–", "–", "info"})
	}
	return nil
}

func (b *bench) print() {
	fmt.Println("| measure | docker-credential-cgr | baseline | ratio | target | met |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range b.rows {
		fmt.Printf("| %s | %s | %s | %s | %s | %s |\n", r.measure, r.cgr, r.baseline, r.ratio, r.target, r.met)
	}
}

func durations(rs []result) []time.Duration {
	ds := make([]time.Duration, len(rs))
	for i, r := range rs {
		ds[i] = r.d
	}
	slices.Sort(ds)
	return ds
}

// pct is the p-th percentile (nearest rank) of sorted ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := (len(ds)*p + 99) / 100
	return ds[max(0, min(len(ds)-1, i-1))]
}

func ratioOf(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func ratio(a, b time.Duration) string { return fmt.Sprintf("%.2fx", ratioOf(a, b)) }

func ms(d time.Duration) string {
	switch {
	case d < 10*time.Microsecond:
		return fmt.Sprintf("%.0f ns", float64(d))
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	default:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**NO**"
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// histogram prints two latency distributions on one scale, 0.25 ms buckets up to both p99s.
func histogram(aName string, a []time.Duration, bName string, b []time.Duration) {
	if len(a) == 0 || len(b) == 0 {
		return
	}
	lo := min(a[0], b[0])
	hi := max(pct(a, 99), pct(b, 99))
	const buckets = 24
	width := (hi - lo + buckets - 1) / buckets
	if width <= 0 {
		width = 1
	}
	count := func(ds []time.Duration) []int {
		c := make([]int, buckets+1)
		for _, d := range ds {
			i := int((d - lo) / width)
			c[min(i, buckets)]++
		}
		return c
	}
	ca, cb := count(a), count(b)
	top := max(slices.Max(ca), slices.Max(cb))
	bar := func(n int, ch string) string { return strings.Repeat(ch, (n*40+top-1)/top) }
	fmt.Printf("Latency histogram (#: %s, o: %s; last bucket: beyond p99)\n", aName, bName)
	for i := 0; i <= buckets; i++ {
		label := fmt.Sprintf("%6.2f ms", float64(lo+time.Duration(i)*width)/1e6)
		if i == buckets {
			label = fmt.Sprintf(">%5.2f ms", float64(lo+time.Duration(i)*width)/1e6)
		}
		if ca[i] == 0 && cb[i] == 0 {
			continue
		}
		fmt.Printf("%s |%-40s %3d\n", label, bar(ca[i], "#"), ca[i])
		fmt.Printf("%s |%-40s %3d\n", strings.Repeat(" ", len(label)), bar(cb[i], "o"), cb[i])
	}
}
