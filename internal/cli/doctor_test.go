package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// The --image check names the org of a pull token through the same token state as the
// other doctor checks: the platform API's name for the org when logged in, nothing (and no
// login started) otherwise.
func TestDoctorOrgName(t *testing.T) {
	e := newPTEnv(t)
	org := e.emu.Org()
	browsed := 0
	newState := func() *tokenState {
		getenv := func(k string) string { return e.env[k] }
		s, err := config.Load(getenv, config.Flags{})
		if err != nil {
			t.Fatal(err)
		}
		a := &App{Getenv: getenv, Stderr: io.Discard, Settings: s}
		a.NewDeps = func(ctx context.Context, s config.Settings) (token.Deps, error) {
			d, err := e.newDeps(&bytes.Buffer{})(ctx, s)
			// As `get` on a terminal would be: free to start a browser login.
			d.Interactive = true
			d.OpenBrowser = func(context.Context, string) error {
				browsed++
				return errors.New("doctor opened a browser")
			}
			return d, err
		}
		return &tokenState{a: a}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if n := newState().orgName(ctx, org.ID); n != "" {
		t.Errorf("not logged in: org named %q", n)
	}

	e.login()
	s := newState()
	if n := s.orgName(ctx, org.ID); n != org.Name {
		t.Errorf("logged in: org %s named %q, want %q", org.ID, n, org.Name)
	}
	if n := s.orgName(ctx, "0123456789012345678901234567890123456789"); n != "" {
		t.Errorf("an org the login is not in: named %q", n)
	}

	// A session that needs a new login: no name, and no login started.
	e.emu.RevokeRefreshTokens()
	e.emu.Clock().Advance(48 * time.Hour)
	if n := newState().orgName(ctx, org.ID); n != "" {
		t.Errorf("expired session: org named %q", n)
	}
	if browsed != 0 {
		t.Errorf("doctor started a login (%d browser opens)", browsed)
	}
}
