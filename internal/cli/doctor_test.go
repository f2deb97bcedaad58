package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/internal/doctor"
	"github.com/cgrtools/docker-credential-cgr/internal/emulator"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// The --image check names the org of a pull token through the same token state as the
// other doctor checks: the platform API's name for the org when logged in, nothing (and no
// login started) otherwise.
func TestDoctorOrgName(t *testing.T) {
	e := newPTEnv(t)
	org := e.emu.Org()
	browsed := 0
	newState := func() *doctor.CredentialChecks {
		getenv := func(k string) string { return e.env[k] }
		s, err := config.Load(getenv, config.Flags{})
		if err != nil {
			t.Fatal(err)
		}
		a := &App{Getenv: getenv, Stderr: io.Discard, Settings: s}
		a.NewDeps = func(ctx context.Context, s config.Settings) (token.Deps, error) {
			d, err := e.newDeps(&bytes.Buffer{})(ctx, s)
			d.OpenBrowser = func(context.Context, string) error {
				browsed++
				return errors.New("doctor opened a browser")
			}
			return d, err
		}
		return &doctor.CredentialChecks{Settings: s, Deps: a.Deps}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if n := newState().OrgName(ctx, org.ID); n != "" {
		t.Errorf("not logged in: org named %q", n)
	}

	e.login()
	s := newState()
	if n := s.OrgName(ctx, org.ID); n != org.Name {
		t.Errorf("logged in: org %s named %q, want %q", org.ID, n, org.Name)
	}
	if n := s.OrgName(ctx, "0123456789012345678901234567890123456789"); n != "" {
		t.Errorf("an org the login is not in: named %q", n)
	}

	// A session that needs a new login: no name, and no login started.
	e.emu.RevokeRefreshTokens()
	e.emu.Clock().Advance(48 * time.Hour)
	if n := newState().OrgName(ctx, org.ID); n != "" {
		t.Errorf("expired session: org named %q", n)
	}
	if browsed != 0 {
		t.Errorf("doctor started a login (%d browser opens)", browsed)
	}
}

// behindClock is this machine's clock when the issuer's (the emulator's) runs ahead of it.
type behindClock struct {
	emu *emulator.Clock
	by  time.Duration
}

func (c behindClock) Now() time.Time { return c.emu.Now().Add(-c.by) }

// doctorRow runs doctor --json and returns the first row of the check.
func (e *ptEnv) doctorRow(check string) doctor.Result {
	e.t.Helper()
	out, errs, _ := e.run("", "doctor", "--json")
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		e.t.Fatalf("doctor --json: %v\n%s", err, errs)
	}
	for _, res := range r.Results {
		if res.Check == check {
			return res
		}
	}
	e.t.Fatalf("doctor has no %q row:\n%s", check, out)
	return doctor.Result{}
}

// With the issuer's clock an hour ahead of this machine's, doctor judges the stored pull
// token and the session's refresh token as get does: by the issuer's clock (the skew stored
// with them), not by this machine's.
func TestDoctorJudgesExpiryWithIssuerClock(t *testing.T) {
	emu, err := emulator.Start(emulator.Options{Clock: emulator.NewClock(time.Now().Add(time.Hour)), RefreshTTL: 4 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	env := map[string]string{"HOME": t.TempDir(), "CGR_STORE": "file"}
	for _, kv := range emu.Env() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	e := &ptEnv{t: t, emu: emu, env: env, clock: behindClock{emu: emu.Clock(), by: time.Hour}}
	e.login()
	host := emu.RegistryHost()
	if _, errs, code := e.run("", "pull-token", "create", "--save", "--ttl", "3h", "--name", "ci"); code != 0 {
		t.Fatalf("pull-token create: exit %d: %s", code, errs)
	}
	if _, errs, code := e.run("", "logout"); code != 0 { // nothing can renew the pull token now
		t.Fatalf("logout: %s", errs)
	}
	row := "pull token " + host
	if r := e.doctorRow(row); r.Status != doctor.OK {
		t.Fatalf("fresh pull token: %+v", r)
	}

	// 50 minutes left by the issuer's clock (less than a third: get warns), 1h50m by ours.
	emu.Clock().Advance(2*time.Hour + 10*time.Minute)
	if r := e.doctorRow(row); r.Status != doctor.Warn || !strings.Contains(r.Saw, "will expire") || !strings.Contains(r.Saw, "(in 4") {
		t.Errorf("a third of the life left by the issuer's clock: %+v; want the expiry warning, in 4x minutes", r)
	}
	// Expired by the issuer's clock (get refuses it), 50 minutes left by ours.
	emu.Clock().Advance(time.Hour)
	if r := e.doctorRow(row); r.Status != doctor.Fail || !strings.Contains(r.Saw, "expired at") || strings.Contains(r.Saw, "check the clock") {
		t.Errorf("expired by the issuer's clock: %+v; want expired", r)
	}
	// The session's refresh token: expired by the issuer's clock, 50 minutes left by ours.
	e.login()
	if r := e.doctorRow("session refresh"); r.Status != doctor.Warn {
		t.Fatalf("a 4-hour session: %+v; want a warning that it ends soon", r)
	}
	emu.Clock().Advance(4*time.Hour + 10*time.Minute)
	if r := e.doctorRow("session refresh"); r.Status != doctor.Fail || !strings.Contains(r.Saw, "expired") {
		t.Errorf("refresh token expired by the issuer's clock: %+v; want it failed as expired", r)
	}
}
