package emulator

import (
	"errors"
	"fmt"
	"time"

	"chainguard.dev/sdk/auth/headless"
	authv1 "chainguard.dev/sdk/proto/platform/auth/v1"
)

// headlessLifetime is how long a headless code is good for from the moment the issuer first
// sees it (inferred: chainctl gives up after 900 s).
const headlessLifetime = 15 * time.Minute

// headlessState is the issuer's side of one headless code (PROTOCOL.md 4.1).
type headlessState struct {
	first   time.Time               // first seen (a poll or the browser's visit)
	session *authv1.HeadlessSession // made by the SDK's (*headless.Code).NewSession; nil until approved
	denied  bool
	done    bool // handed out (or the denial told): the code is spent
}

// seenHeadlessLocked is the state of code, created on first sight.
func (e *Emulator) seenHeadlessLocked(code string) *headlessState {
	st, ok := e.headless[code]
	if !ok {
		st = &headlessState{first: e.now()}
		e.headless[code] = st
	}
	return st
}

var errHeadlessLapsed = errors.New("this login code has expired: start the login again")

// approveHeadless signs u in for code: the session holds an upstream id token for u,
// encrypted for the code's holder by the SDK's own server-side code.
func (e *Emulator) approveHeadless(code string, u *userState) error {
	if err := headless.VerifyCode(code); err != nil {
		return fmt.Errorf("invalid headless code: %w", err)
	}
	e.mu.Lock()
	st := e.seenHeadlessLocked(code)
	lapsed := !e.now().Before(st.first.Add(headlessLifetime))
	used := st.session != nil || st.done || st.denied
	ttl := e.tokenTTL
	e.mu.Unlock()
	switch {
	case lapsed:
		return errHeadlessLapsed
	case used:
		return errors.New("this login code was already used")
	}
	c := headless.Code(code)
	sess, err := c.NewSession([]byte(e.mintUpstreamIDToken(u, browserClientID, ttl)))
	if err != nil {
		return fmt.Errorf("headless session: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if st.session != nil || st.done || st.denied {
		return errors.New("this login code was already used")
	}
	st.session = sess
	return nil
}

// ApproveHeadless approves a headless code as the browser user, as opening
// <issuer>/oauth?headless_code=<code> in the browser does.
func (e *Emulator) ApproveHeadless(code string) error {
	u, problem, _ := e.browserUserFor(nil)
	if u == nil {
		return errors.New(problem)
	}
	return e.approveHeadless(code, u)
}

// DenyHeadless refuses a headless code: its next poll answers PermissionDenied (inferred:
// the real issuer's answer to a refused sign-in is not documented), then the code is spent.
func (e *Emulator) DenyHeadless(code string) error {
	if err := headless.VerifyCode(code); err != nil {
		return fmt.Errorf("invalid headless code: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.seenHeadlessLocked(code)
	if st.session != nil || st.done {
		return errors.New("this login code was already used")
	}
	st.denied = true
	return nil
}

// headlessSession answers a poll: NotFound until the person signed in, then the session
// once; NotFound again once spent or lapsed.
func (e *Emulator) headlessSession(code string) (*authv1.HeadlessSession, *rpcError) {
	if err := headless.VerifyCode(code); err != nil {
		return nil, rpcErr(codeInvalidArgument, "invalid headless code: "+err.Error())
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.seenHeadlessLocked(code)
	switch {
	case st.done:
		return nil, rpcErr(codeNotFound, "headless session not found")
	case !e.now().Before(st.first.Add(headlessLifetime)):
		st.done = true
		st.session = nil
		return nil, rpcErr(codeNotFound, "headless session not found: the code has expired")
	case st.denied:
		st.done = true
		return nil, rpcErr(codePermissionDenied, "the login was denied")
	case st.session == nil:
		return nil, rpcErr(codeNotFound, "headless session not found")
	}
	s := st.session
	st.session, st.done = nil, true
	return s, nil
}
