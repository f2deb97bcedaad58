package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// 24 helpers asked at once for a token that needs refreshing cause ONE refresh, and all
// of them answer with a valid token.
func TestSingleFlightRefreshAcrossProcesses(t *testing.T) {
	const ttl = 8 * time.Second // the freshness margin is a quarter: 2 s
	w := newWorld(t, emulator.Options{TokenTTL: ttl})
	w.login()
	host := w.emu.RegistryHost()
	_, first, r := w.get(host)
	if r.code != 0 {
		t.Fatalf("get: exit %d: %s", r.code, r.stdout)
	}
	tok, err := token.Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the cached token is past its freshness margin but not expired.
	time.Sleep(time.Until(tok.Expiry.Add(-ttl/4 + 500*time.Millisecond)))
	w.emu.ResetCounts()

	var wg sync.WaitGroup
	secrets := make([]string, 24)
	codes := make([]int, 24)
	for i := range secrets {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := w.helper(host, "get")
			codes[i] = r.code
			var c struct{ Secret string }
			if json.Unmarshal([]byte(r.stdout), &c) == nil {
				secrets[i] = c.Secret
			}
		}(i)
	}
	wg.Wait()
	for i := range secrets {
		if codes[i] != 0 || secrets[i] == "" || secrets[i] == first {
			t.Fatalf("get #%d: exit %d, fresh token: %v", i, codes[i], secrets[i] != first)
		}
	}
	if n := w.emu.Count("sts/exchange_refresh_token"); n != 1 {
		t.Fatalf("%d refreshes for one expiry; want exactly 1", n)
	}
}

// The soak: access tokens living 4 s, workers pulling through go-containerregistry (in
// process and crane) and the docker CLI for 20 s. Nobody sees an auth failure, and the
// issuer sees about one refresh per token lifetime.
func TestSoakShortLivedTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: 20 s; run without -short")
	}
	const ttl, soak = 4 * time.Second, 20 * time.Second
	w := newWorld(t, emulator.Options{TokenTTL: ttl})
	w.login()
	w.setenv()
	w.emu.ResetCounts()
	img := w.emu.PrivateImage()
	ref, err := name.ParseReference(img, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), soak)
	defer cancel()
	crane := need(t, "crane")
	var pulls, failures atomic.Int64
	var mu sync.Mutex
	var firstErr string
	fail := func(who string, err string) {
		failures.Add(1)
		mu.Lock()
		if firstErr == "" {
			firstErr = who + ": " + err
		}
		mu.Unlock()
	}
	workers := []func() (string, error){
		func() (string, error) { // go-containerregistry in process, DefaultKeychain → helper
			_, err := remote.Image(ref, remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithContext(ctx))
			return "ggcr", err
		},
		func() (string, error) { // crane, a separate process
			r := w.run("", crane, "manifest", "--insecure", img)
			if r.code != 0 {
				return "crane", fmt.Errorf("exit %d: %s", r.code, r.stderr)
			}
			return "crane", nil
		},
		func() (string, error) { // the docker CLI's own credential lookup
			r := w.run(host(img), helperBin, "get")
			if r.code != 0 {
				return "docker-credential-cgr get", fmt.Errorf("exit %d: %s", r.code, r.stdout)
			}
			return "get", nil
		},
	}
	if exec.Command("docker", "info").Run() == nil {
		workers = append(workers, func() (string, error) { // Docker Engine pull
			r := w.run("", "docker", "pull", "-q", img)
			if r.code != 0 {
				return "docker pull", fmt.Errorf("exit %d: %s", r.code, r.stderr)
			}
			return "docker pull", nil
		})
		t.Cleanup(func() { w.run("", "docker", "rmi", "-f", img) })
	}
	var wg sync.WaitGroup
	for _, work := range workers {
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					who, err := work()
					if ctx.Err() != nil {
						return // the soak ended mid-pull; not a failure of ours
					}
					if err != nil {
						fail(who, err.Error())
						continue
					}
					pulls.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	refreshes := w.emu.Count("sts/exchange_refresh_token")
	t.Logf("%d pulls, %d failures, %d refreshes in %s with %s tokens", pulls.Load(), failures.Load(), refreshes, soak, ttl)
	if failures.Load() != 0 {
		t.Fatalf("%d auth failures; first: %s", failures.Load(), firstErr)
	}
	if pulls.Load() < 20 {
		t.Fatalf("only %d pulls in %s", pulls.Load(), soak)
	}
	// A token is refreshed once it has a quarter of its life left: about every 3 s.
	if refreshes < 4 || refreshes > 12 {
		t.Fatalf("%d refreshes in %s with %s tokens; want about one per 3 s", refreshes, soak, ttl)
	}
}

func host(img string) string { h, _, _ := strings.Cut(img, "/"); return h }
