package token

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// chainctlTimeout bounds `chainctl auth token` (it may refresh its own session): well within a
// get's 10 s.
const chainctlTimeout = 7 * time.Second

// Chainctl is an existing chainctl login, the last source of the chain (CONTRACT 1.2). It is
// asked, never spent: `chainctl auth token --audience <aud>` prints a token, refreshing
// chainctl's own session (PROTOCOL.md section 8). chainctl's files are never read, written
// or spent here: its refresh token rotates on every use, and a second program spending it
// would log chainctl out.
type Chainctl struct{ d Deps }

// NewChainctl returns the chainctl source of d's settings.
func NewChainctl(d Deps) *Chainctl { return &Chainctl{d: d} }

// Name implements Source.
func (*Chainctl) Name() string { return "chainctl" }

// find is chainctl on the PATH and whether it keeps a login for aud: the directory of its
// token cache for that audience exists (only its existence is looked at). Without both,
// chainctl is not asked, so a get with nothing configured never runs it.
func (c *Chainctl) find(aud string) (string, bool) {
	path, ok := config.LookPath("chainctl", c.d.Settings.Path)
	if !ok || c.d.Settings.CacheDir == "" {
		return "", false
	}
	dir := filepath.Join(c.d.Settings.CacheDir, "chainguard", strings.ReplaceAll(aud, "/", "-"))
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", false
	}
	return path, true
}

// Describe implements Source: chainctl found with a login for the registry audience.
func (c *Chainctl) Describe(_ context.Context, _ string) (Status, error) {
	st := Status{Source: c.Name()}
	if path, ok := c.find(c.d.Settings.Audience); ok {
		st.Configured, st.Username, st.Who, st.Renews = true, TokenUsername, "chainctl's login ("+path+")", true
	}
	return st, nil
}

// Credential implements Source: chainctl's token for aud, checked (audience, expiry) before it
// is served, with one line on stderr that says whose it is.
func (c *Chainctl) Credential(ctx context.Context, _, aud string) (Credential, error) {
	path, ok := c.find(aud)
	if !ok {
		return Credential{}, ErrNoCredential
	}
	tok, err := c.token(ctx, path, aud)
	if err != nil {
		return Credential{}, err
	}
	fmt.Fprintf(depStderr(c.d), "%s: using chainctl's login (%s); to log in here, run `%s`\n", config.AppName, orWho(tok.Email, tok.Subject), LoginCommand)
	return Credential{Username: TokenUsername, Secret: tok.Raw, Expiry: tok.Expiry, Skew: tok.Skew, Source: c.Name()}, nil
}

func (c *Chainctl) token(ctx context.Context, path, aud string) (*Token, error) {
	ctx, cancel := context.WithTimeout(ctx, chainctlTimeout)
	defer cancel()
	// Not interactive: with stderr not a terminal chainctl starts no browser.
	cmd := exec.CommandContext(ctx, path, "auth", "token", "--audience", aud)
	cmd.Env = c.d.Environ
	cmd.Stdin = nil
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{b: &out, n: 64 << 10}, &limited{b: &errb, n: 4 << 10}
	// In a session of its own: chainctl may be refreshing its session when Ctrl-C reaches us.
	cmd.SysProcAttr = detachedAttr()
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, &FixableError{Cause: fmt.Sprintf("chainctl did not give a token within %s", chainctlTimeout), Fix: LoginCommand, Err: transient(ctx.Err())}
	}
	if err != nil {
		why := stsOneLine(firstLine(errb.String()), 200)
		if why == "" {
			why = err.Error()
		}
		return nil, &FixableError{Cause: "chainctl's login cannot give a " + aud + " token (" + why + ")", Fix: LoginCommand, Err: err}
	}
	tok, err := Parse(strings.TrimSpace(out.String()))
	if err != nil {
		return nil, &FixableError{Cause: "chainctl auth token printed no token", Fix: LoginCommand, Err: err}
	}
	if !tok.HasAudience(aud) {
		return nil, &FixableError{Cause: fmt.Sprintf("chainctl gave a token for %s, not %s", strings.Join(tok.Audience, ","), aud), Fix: LoginCommand, Err: errors.New("wrong audience")}
	}
	// chainctl talked to the issuer, not us: its clock shows in the token's iat.
	if !tok.IssuedAt.IsZero() {
		if s := tok.IssuedAt.Sub(depClock(c.d).Now()); s > skewNoise || s < -skewNoise {
			tok.Skew = s
		}
	}
	if !tok.Usable(tok.IssuerNow(depClock(c.d).Now())) {
		return nil, loginRequired("chainctl's token for "+aud+" expired at "+sessTime(tok.Expiry), "", errors.New("expired"))
	}
	return tok, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// limited keeps at most n bytes of what is written to it and drops the rest.
type limited struct {
	b *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
