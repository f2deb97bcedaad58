package credhelper

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/keystore"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// TestSimulatedMonth runs a month of the emulator's clock through the protocol, in process
// (the clock is injected, so a month takes a minute): hourly Chainguard tokens, refresh-token
// rotation, a 7-day pull token saved for one host and renewed by the session, the session
// serving another host, the machine asleep for 8 h and for 64 h (the clock jumps), two
// 5-minute issuer outages (one answering 503, one a black hole), 4 pullers at every step.
// Every pull must succeed, no login is needed after the first, and each renewal happens once.
func TestSimulatedMonth(t *testing.T) {
	if testing.Short() {
		t.Skip("a simulated month: about a minute; run without -short")
	}
	clock := emulator.NewClock(time.Now())
	emu, err := emulator.Start(emulator.Options{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	host := emu.RegistryHost()
	dir := t.TempDir()
	getenv := func(k string) string {
		return map[string]string{"HOME": dir, "CGR_STORE": "file", "CGR_REGISTRY": host,
			"CGR_ISSUER": emu.IssuerURL(), "CGR_API": emu.APIURL()}[k]
	}
	s, err := config.Load(getenv, config.Flags{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := keystore.Open(context.Background(), keystore.Options{Backend: "file", Dir: s.StoreDir})
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	d := token.Deps{Settings: s, Store: st, HTTP: &http.Client{Timeout: 2 * time.Second}, Clock: clock,
		Stderr: &stderr, Rand: rand.Reader, OpenBrowser: emu.Browse}
	ctx := context.Background()
	if _, err := token.Login(ctx, d, token.LoginOptions{}); err != nil {
		t.Fatal(err)
	}
	pt, err := token.NewPullTokens(d, token.NewSession(d)).Create(ctx, token.CreateOptions{TTL: 7 * 24 * time.Hour, Name: "month"})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]string{"ServerURL": host, "Username": pt.Identity, "Secret": pt.Token})
	// h is the helper of one get, bounded as main bounds it. The pull-token pullers see the
	// whole chain (the saved pull token answers); the session pullers a chain without the pull
	// token, as a host without one would, so the session itself serves them all month.
	h := func(sessionOnly bool) (*Helper, context.CancelFunc) {
		c, cancel := context.WithTimeout(ctx, 9*time.Second)
		hh := &Helper{Ctx: c, Settings: s, Deps: func(context.Context) (token.Deps, error) { return d, nil }, Stderr: &stderr}
		if sessionOnly {
			hh.Chain = func(d token.Deps) token.Chain {
				var c token.Chain
				for _, src := range token.DefaultChain(d) {
					if src.Name() != "pull token" {
						c = append(c, src)
					}
				}
				return c
			}
		}
		return hh, cancel
	}
	var out bytes.Buffer
	hs, cancel := h(false)
	defer cancel()
	if Handle(hs, "store", bytes.NewReader(in), &out) != 0 {
		t.Fatalf("store of the pull token: %s", out.String())
	}
	logins, creates := emu.Count("oauth"), emu.Count("api/identities.create")

	pull := func(sessionOnly bool) error {
		var out bytes.Buffer
		hg, cancel := h(sessionOnly)
		defer cancel()
		if code := Handle(hg, "get", strings.NewReader(host), &out); code != 0 {
			return fmt.Errorf("get (session only: %v): %s", sessionOnly, strings.TrimSpace(out.String()))
		}
		var c struct{ Username, Secret string }
		if err := json.Unmarshal(out.Bytes(), &c); err != nil {
			return err
		}
		if sessionOnly != (c.Username == token.TokenUsername) {
			return fmt.Errorf("answered with %q (session only: %v)", c.Username, sessionOnly)
		}
		ref, err := name.ParseReference(emu.PrivateImage(), name.Insecure)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err = remote.Image(ref, remote.WithAuth(&authn.Basic{Username: c.Username, Password: c.Secret}), remote.WithContext(pctx))
		return err
	}

	// Pulls every 10 minutes: a token is refreshed while more than 15 minutes remain, so a pull
	// comes within that window before each outage, as any machine that pulls at all gives it.
	const step = 10 * time.Minute
	start := clock.Now()
	end := start.Add(30 * 24 * time.Hour)
	events := map[int]string{
		144:  "asleep 8 h",
		600:  "issuer 503 for 5 min",
		1400: "asleep 64 h",
		1800: "issuer black-holed for 5 min",
	}
	pulls, failed := 0, 0
	for i := 0; clock.Now().Before(end); i++ {
		switch events[i] {
		case "asleep 8 h":
			clock.Advance(8 * time.Hour)
		case "asleep 64 h":
			clock.Advance(64 * time.Hour)
		case "issuer 503 for 5 min", "issuer black-holed for 5 min":
			f := emulator.Fault{IssuerStatus: http.StatusServiceUnavailable}
			if strings.Contains(events[i], "black") {
				f = emulator.Fault{IssuerDown: true}
			}
			emu.SetFault(f)
			for m := 0; m < 5; m++ { // a pull every minute of the outage
				for _, sessionOnly := range []bool{false, true} {
					pulls++
					if err := pull(sessionOnly); err != nil {
						failed++
						t.Errorf("%s, minute %d: %v", events[i], m, err)
					}
				}
				clock.Advance(time.Minute)
			}
			emu.SetFault(emulator.Fault{})
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		for p := 0; p < 4; p++ {
			sessionOnly := p%2 == 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := pull(sessionOnly)
				mu.Lock()
				defer mu.Unlock()
				pulls++
				if err != nil {
					failed++
					t.Errorf("day %.1f: %v", clock.Now().Sub(start).Hours()/24, err)
				}
			}()
		}
		wg.Wait()
		if failed > 10 {
			t.Fatal("too many failed pulls to go on")
		}
		clock.Advance(step)
	}
	renewals := emu.Count("api/identities.create") - creates
	t.Logf("a simulated month: %d pulls, %d failed; %d logins after the first; %d pull-token renewals (7-day token), %d refreshes, %d identity deletions",
		pulls, failed, emu.Count("oauth")-logins, renewals, emu.Count("sts/exchange_refresh_token"), emu.Count("api/identities.delete"))
	if n := emu.Count("oauth") - logins; n != 0 {
		t.Errorf("%d new logins were needed", n)
	}
	// Renewed when less than a third of 7 days remains (every 4 2/3 days of the clock), the
	// sleeps included: 30 days + 72 h asleep hold 6 renewals; each one exactly once.
	if renewals < 5 || renewals > 7 {
		t.Errorf("%d renewals of the 7-day pull token in a month; want each due renewal once (about 6)", renewals)
	}
	if n := emu.Count("api/identities.delete"); n != renewals {
		t.Errorf("%d replaced identities deleted for %d renewals", n, renewals)
	}
}

// lockedBuffer is a goroutine-safe stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

var _ io.Writer = (*lockedBuffer)(nil)
