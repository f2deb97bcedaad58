package token

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// apiStaticSource hands out one fixed bearer token.
type apiStaticSource struct{ err error }

func (s apiStaticSource) Token(context.Context, string) (*Token, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &Token{Raw: "secret-bearer"}, nil
}

type apiFixedClock struct{ t time.Time }

func (c apiFixedClock) Now() time.Time { return c.t }

func newTestAPI(t *testing.T, h http.HandlerFunc, src tokenSource) *API {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &API{d: Deps{Settings: config.Settings{API: srv.URL, Issuer: "https://issuer.example"}, Clock: SystemClock{}}, src: src}
}

func TestAPIErrorsAreOneLine(t *testing.T) {
	for _, c := range []struct {
		status  int
		body    string
		want    string
		fixable bool
	}{
		{403, `{"code":7,"message":"caller does not have the required capabilities at \"abc\"\n(more)","details":[]}`,
			`platform API: create identity: caller does not have the required capabilities at "abc" (more) (HTTP 403)`, false},
		{404, `{"code":5,"message":"identity not found"}`, "platform API: create identity: identity not found (HTTP 404)", false},
		{502, `<html>bad gateway</html>`, "platform API: create identity: Bad Gateway (HTTP 502)", false},
		{401, `{"code":16,"message":"token expired"}`, "token expired", true},
	} {
		a := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer secret-bearer" {
				t.Errorf("Authorization header %q", r.Header.Get("Authorization"))
			}
			w.WriteHeader(c.status)
			fmt.Fprint(w, c.body)
		}, apiStaticSource{})
		_, err := a.CreateIdentity(context.Background(), strings.Repeat("a", 40), Identity{Name: "x"})
		if err == nil {
			t.Fatalf("%d: no error", c.status)
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "secret-bearer") {
			t.Errorf("%d: %q; want one line containing %q", c.status, msg, c.want)
		}
		var fe *FixableError
		if errors.As(err, &fe) != c.fixable || (c.fixable && fe.Fix != LoginCommand) {
			t.Errorf("%d: fixable=%v (%v)", c.status, errors.As(err, &fe), err)
		}
		if IsNotFound(err) != (c.status == 404) {
			t.Errorf("%d: IsNotFound = %v", c.status, IsNotFound(err))
		}
	}
}

func TestAPIRetriesReadsOnUnavailable(t *testing.T) {
	var n atomic.Int32
	a := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"code":14,"message":"unavailable"}`)
			return
		}
		fmt.Fprint(w, `{"items":[{"id":"`+strings.Repeat("b", 40)+`","name":"acme"}]}`)
	}, apiStaticSource{})
	gs, err := a.Groups(context.Background())
	if err != nil || len(gs) != 1 || gs[0].Name != "acme" || n.Load() != 3 {
		t.Fatalf("groups after two 503s: %v %v (%d calls)", gs, err, n.Load())
	}
	// A create is not retried: it may have happened.
	n.Store(-10)
	if _, err := a.CreateIdentity(context.Background(), strings.Repeat("a", 40), Identity{Name: "x"}); err == nil || n.Load() != -9 {
		t.Errorf("create on 503: %v after %d calls; want one call", err, n.Load()+10)
	}
}

func TestAPINotLoggedIn(t *testing.T) {
	a := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) { t.Error("request sent without a session") }, apiStaticSource{err: ErrNoCredential})
	_, err := a.Groups(context.Background())
	var fe *FixableError
	if !errors.As(err, &fe) || fe.Fix != LoginCommand {
		t.Fatalf("%v; want a fixable error naming login", err)
	}
	if _, err := NewAPI(Deps{Clock: SystemClock{}}, nil).Groups(context.Background()); !errors.As(err, &fe) {
		t.Errorf("nil session: %v", err)
	}
}

// The platform's Date header corrects a local clock that is off.
func TestAPILearnsClock(t *testing.T) {
	local := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	server := local.Add(10 * time.Minute)
	a := newTestAPI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", server.Format(http.TimeFormat))
		fmt.Fprint(w, `{"items":[{"id":"r1","name":"registry.pull"}]}`)
	}, apiStaticSource{})
	a.d.Clock = apiFixedClock{local}
	if id, err := a.RoleID(context.Background(), "registry.pull"); err != nil || id != "r1" {
		t.Fatalf("role: %q %v", id, err)
	}
	// The Date header has one-second resolution: the server's time is in [Date, Date+1s),
	// taken as its middle, as the STS client learns the issuer's clock (one formula).
	if got, want := a.Now(), server.Add(500*time.Millisecond); !got.Equal(want) {
		t.Errorf("Now() = %v; want the server's %v", got, want)
	}
	server = local.Add(time.Second) // within the header's resolution: our clock stands
	_, _ = a.RoleID(context.Background(), "registry.pull")
	if got := a.Now(); !got.Equal(local) {
		t.Errorf("Now() = %v; want the local %v", got, local)
	}
}
