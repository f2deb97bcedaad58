// Package credhelper is the docker-credential-helpers protocol and its policy: which hosts
// are served, which credential answers, and how every failure becomes the right answer (the
// not-found line, one actionable line, or the JSON).
package credhelper

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker-credential-helpers/credentials"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/token"
)

// TokenUsername is the registry username that goes with a Chainguard token.
const TokenUsername = token.TokenUsername

// Helper implements credentials.Helper for the served registries. It is built per process;
// Deps is opened lazily so a foreign host never touches the keychain. The policy of a person
// at the terminal lives here, above the sources: the hint, and the auto-login.
type Helper struct {
	Ctx      context.Context
	Settings config.Settings
	Deps     func(ctx context.Context) (token.Deps, error)
	Stderr   io.Writer
	// Hint: print a one-line hint on stderr when a served host has no credential (only
	// when a person is watching; Docker does not show a helper's stderr anyway).
	Hint bool
	// AutoLogin: a person is at the terminal, outside CI, with CGR_AUTO_LOGIN on: a get whose
	// login session expired starts the browser login, as chainctl does.
	AutoLogin bool
	// Chain is the precedence of sources; nil: token.DefaultChain.
	Chain func(d token.Deps) token.Chain
}

var _ credentials.Helper = (*Helper)(nil)

// Handle runs one protocol action with the reference implementation's framing and writes
// an error as one line on out, returning the exit status.
func Handle(h *Helper, action string, in io.Reader, out io.Writer) int {
	err := checkInput(action, &in)
	switch {
	case err == nil && action == "get":
		err = get(h, in, out)
	case err == nil:
		err = credentials.HandleCommand(h, action, in, out)
	}
	if err == nil {
		return 0
	}
	fmt.Fprintln(out, oneLine(err.Error()))
	return 1
}

// get is the library's get action (credentials.Get, which HandleCommand runs) but for how the
// answer is written: when its three values are printable ASCII that JSON leaves as they are,
// the answer is put together here, not by encoding/json, whose encoder cost a warm get about
// 38,000 instructions (callgrind) for these three strings. The server URL is read as the
// library reads it (every line of stdin joined, then trimmed, within bufio's line limit) and
// the errors are its; TestGetAnswersAsTheLibrary and FuzzAnswer hold the bytes to the library's.
func get(h credentials.Helper, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	var joined strings.Builder
	for sc.Scan() {
		joined.Write(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return err
	}
	serverURL := strings.TrimSpace(joined.String())
	if serverURL == "" {
		return credentials.NewErrCredentialsMissingServerURL()
	}
	username, secret, err := h.Get(serverURL)
	if err != nil {
		return err
	}
	return writeAnswer(out, credentials.Credentials{ServerURL: serverURL, Username: username, Secret: secret})
}

// writeAnswer writes c as json.NewEncoder(out).Encode(c) does.
func writeAnswer(out io.Writer, c credentials.Credentials) error {
	if !jsonVerbatim(c.ServerURL) || !jsonVerbatim(c.Username) || !jsonVerbatim(c.Secret) {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(c); err != nil {
			return err
		}
		_, _ = out.Write(b.Bytes())
		return nil
	}
	_, _ = io.WriteString(out, `{"ServerURL":"`+c.ServerURL+`","Username":"`+c.Username+`","Secret":"`+c.Secret+"\"}\n")
	return nil
}

// jsonVerbatim reports whether encoding/json writes s between its quotes as it is: printable
// ASCII but for the quote, the backslash and the three bytes its HTML escaping rewrites.
func jsonVerbatim(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c > 0x7e, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// Bounded stdin: a server URL or a credential is small. The reference implementation reads a
// server URL with a bufio.Scanner, whose 64 KiB line limit would answer "bufio.Scanner: token
// too long"; a longer input gets a line that says what was expected instead.
const (
	maxInput     = 1 << 20
	maxServerURL = 64<<10 - 1
)

func checkInput(action string, in *io.Reader) error {
	switch action {
	case "get", "erase", "store":
	default:
		return nil // list and version read nothing; others are the library's to refuse
	}
	b, err := io.ReadAll(io.LimitReader(*in, maxInput+1))
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	*in = bytes.NewReader(b)
	if action == "store" {
		if len(b) > maxInput {
			return fmt.Errorf("stdin is over %d bytes: %s store reads one small JSON object {\"ServerURL\",\"Username\",\"Secret\"}", maxInput, config.AppName)
		}
		return nil
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	if len(line) > maxServerURL {
		// No registry host is that long, so none is served: the protocol's not-found answer,
		// which clients take as "pull anonymously" (docker-credential-helpers' own reader
		// fails with bufio's "token too long" instead).
		return credentials.NewErrCredentialsNotFound()
	}
	return nil
}

func (h *Helper) stderr() io.Writer {
	if h.Stderr == nil {
		return io.Discard
	}
	return h.Stderr
}

func (h *Helper) deps() (token.Deps, error) {
	d, err := h.Deps(h.Ctx)
	if err != nil {
		return d, token.StoreFailure(err)
	}
	return d, nil
}

func (h *Helper) chain(d token.Deps) token.Chain {
	if h.Chain != nil {
		return h.Chain(d)
	}
	return token.DefaultChain(d)
}

// Get answers for a served host from the first source of the chain that has something
// configured; nothing configured → not found, so anonymous pulls keep working.
func (h *Helper) Get(serverURL string) (string, string, error) {
	host, err := ServedHost(h.Settings, serverURL)
	if err != nil {
		return "", "", credentials.NewErrCredentialsNotFound()
	}
	d, err := h.deps()
	if err != nil {
		return "", "", err
	}
	aud := h.Settings.Audience
	chain := h.chain(d)
	c, err := chain.Credential(h.Ctx, host, aud)
	if err != nil && h.AutoLogin && errors.Is(err, token.ErrLoginRequired) && h.autoLogin(d, err) {
		c, err = chain.Credential(h.Ctx, host, aud)
	}
	if err != nil {
		if errors.Is(err, token.ErrNoCredential) && h.Hint {
			fmt.Fprintf(h.stderr(), "%s: not logged in to %s; pulling anonymously (run `%s` for private images)\n", config.AppName, host, token.LoginCommand)
		}
		return "", "", answer(err)
	}
	return c.Username, c.Secret, nil
}

// autoLogin starts the browser login when the user's own session is what failed (not an
// identity session, which a browser login would replace): as chainctl does at a terminal.
func (h *Helper) autoLogin(d token.Deps, cause error) bool {
	s := token.NewSession(d)
	info, err := s.Info(h.Ctx)
	var fe *token.FixableError
	switch {
	case err == nil && info.Kind != "user":
		return false
	case err != nil && !errors.Is(err, token.ErrLoginRequired): // damaged is fixed by a login too
		return false
	}
	why := cause.Error()
	if errors.As(cause, &fe) {
		why = fe.Cause
	}
	fmt.Fprintf(h.stderr(), "%s: %s; starting a new login\n", config.AppName, why)
	org := ""
	if info != nil {
		org = info.IDP
	}
	if _, err := token.Login(h.Ctx, d, token.LoginOptions{Org: org}); err != nil {
		fmt.Fprintf(h.stderr(), "%s: the login did not finish: %s\n", config.AppName, oneLine(err.Error()))
		return false
	}
	return true
}

// Add stores what `docker login` hands over: a pull token (username = its identity id) is
// kept and served; a `_token` Chainguard token (often our own `get` answer coming back) is
// remembered only until it expires, never as a static credential.
func (h *Helper) Add(c *credentials.Credentials) error {
	host, err := ServedHost(h.Settings, c.ServerURL)
	if err != nil {
		return fmt.Errorf("%s only stores credentials for %s", config.AppName, strings.Join(h.Settings.Registries, ", "))
	}
	user := strings.TrimSpace(c.Username)
	switch {
	case user == TokenUsername:
		if _, err := token.Parse(c.Secret); err != nil {
			return fmt.Errorf("the password for %s must be a Chainguard token (a JWT); to log in, run: %s", TokenUsername, token.LoginCommand)
		}
	case token.ValidIdentityID(user):
		if _, err := token.Parse(c.Secret); err != nil {
			return fmt.Errorf("the password for identity %s must be a pull token (a JWT)", user)
		}
	default:
		return fmt.Errorf("%s takes a pull token (username = its identity id) or %s with a Chainguard token; to log in, run: %s", host, TokenUsername, token.LoginCommand)
	}
	d, err := h.deps()
	if err != nil {
		return err
	}
	if user == TokenUsername {
		err := token.NewSession(d).Remember(h.Ctx, c.Secret)
		if errors.Is(err, token.ErrNotCacheable) {
			// Expired, or from another issuer: there is nothing worth keeping, and a
			// `_token` is never kept as a static credential. docker login still succeeds.
			fmt.Fprintf(h.stderr(), "%s: not keeping that token (%v); `%s` keeps a session that renews itself\n", config.AppName, err, token.LoginCommand)
			return nil
		}
		return answer(err)
	}
	return answer(token.NewPullTokens(d, token.NewSession(d)).Save(h.Ctx, host, user, c.Secret))
}

// Delete removes everything held for a served host: its stored pull token, the cached
// tokens and the login session. Erasing what is not there is not an error (docker logout
// calls erase twice).
func (h *Helper) Delete(serverURL string) error {
	host, err := ServedHost(h.Settings, serverURL)
	if err != nil {
		return nil
	}
	d, err := h.deps()
	if err != nil {
		return err
	}
	session := token.NewSession(d)
	if err := token.NewPullTokens(d, session).Forget(h.Ctx, host); err != nil {
		return answer(err)
	}
	return answer(session.Logout(h.Ctx))
}

// List names each served host that has a credential, with its username: what the chain
// holds, from the store alone. It never touches the network and never fails because nothing
// is stored.
func (h *Helper) List() (map[string]string, error) {
	out := map[string]string{}
	d, err := h.deps()
	if err != nil {
		return out, nil //nolint:nilerr // an unreachable store holds nothing we can list
	}
	chain := h.chain(d)
	for _, host := range h.Settings.Registries {
		if st, err := chain.Describe(h.Ctx, host); err == nil && st.Configured {
			out[host] = st.Username
		}
	}
	return out, nil
}

// answer maps an error from the token layer to what the client shows: not-found for "nothing
// configured", the one fixable line as is, anything else as one line.
func answer(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, token.ErrNoCredential):
		return credentials.NewErrCredentialsNotFound()
	}
	var fe *token.FixableError
	if errors.As(err, &fe) {
		return fe
	}
	if se := token.StoreFailure(err); se != err {
		return se
	}
	return fmt.Errorf("%s: %v", config.AppName, err)
}

// oneLine keeps an error to the single line every client prints.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ")
}
