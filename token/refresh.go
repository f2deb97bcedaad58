package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// Kill safety (CONTRACT 3, docs/DESIGN.md): a refresh spends the session's refresh token, which
// the issuer rotates; the new one exists only in the answer. A `get` killed between the answer
// and the write would lose the login, and no code in a SIGKILLed process runs. So whatever
// spends a refresh token (or creates a pull token's identity) runs as a Job, which a Runner
// runs so that it outlives its caller: in production a child process in a session of its own
// (Ctrl-C at the terminal and a kill of the caller's process group do not reach it), holding
// the locks the caller took. The caller waits for it within its own budget and then reads the
// store; a caller that gives up or is killed leaves the job to finish and save.

// Job is one refresh or renewal. Its fields are not secret (they travel in argv).
type Job struct {
	Kind     string `json:"kind"`               // jobSession or jobPull
	Audience string `json:"audience,omitempty"` // jobSession: the audience to mint a token for
	Host     string `json:"host,omitempty"`     // jobPull: the registry host whose pull token to renew
}

const (
	jobSession   = "session"
	jobPull      = "pull"
	jobPullCheck = "pull-check"

	// JobTimeout bounds a job on its own, whatever its caller does. Long: a refresh that the
	// issuer is still working on must not be abandoned (its answer holds the only valid
	// refresh token); the job is in the background, and gets meanwhile serve what they hold
	// or fail within their own 10 s.
	JobTimeout = 2 * time.Minute
	// staleWait is how long a get that holds a still-valid credential waits for an early
	// refresh or renewal before serving what it holds (CONTRACT 1.2: answer within 2 s).
	staleWait = 1500 * time.Millisecond
	// retryAfter: a refresh or renewal that failed against a failing issuer or API is not
	// tried again by a get that still holds a valid credential for this long.
	retryAfter = 3 * time.Minute
)

// Runner runs a job while the locks it is given stay held (it releases them when the job
// ends) and returns the job's outcome, or errPending when ctx ends first: the job goes on.
type Runner interface {
	Run(ctx context.Context, d Deps, job Job, held []*keystore.Held) error
}

// errPending: the caller stopped waiting; the job is still at work and will save its result.
// A type of its own rather than fmt.Errorf's, so that no package initialisation formats it.
var errPending error = pendingError{}

type pendingError struct{}

func (pendingError) Error() string {
	return "still refreshing in the background: " + context.DeadlineExceeded.Error()
}
func (pendingError) Unwrap() error { return context.DeadlineExceeded }

// InProcess runs jobs in a goroutine of this process (tests; systems where a child cannot
// take over a lock; and inside a job's own process).
type InProcess struct{}

// Run implements Runner.
func (InProcess) Run(ctx context.Context, d Deps, job Job, held []*keystore.Held) error {
	done := make(chan error, 1)
	go func() {
		defer releaseAll(held)
		jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), JobTimeout)
		defer cancel()
		d.Runner = InProcess{}
		done <- RunJob(jctx, d, job)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errPending
	}
}

func releaseAll(held []*keystore.Held) {
	for _, h := range held {
		h.Release()
	}
}

func depRunner(d Deps) Runner {
	if d.Runner != nil {
		return d.Runner
	}
	return InProcess{}
}

// RunJob does the job with the locks already held (by the caller, or handed to this process).
func RunJob(ctx context.Context, d Deps, job Job) error {
	switch job.Kind {
	case jobSession:
		return NewSession(d).refreshJob(ctx, job.Audience)
	case jobPull:
		return NewPullTokens(d, NewSession(d)).renewJob(ctx, job.Host)
	case jobPullCheck:
		return NewPullTokens(d, NewSession(d)).checkJob(ctx, job.Host)
	}
	return fmt.Errorf("unknown job %q", job.Kind)
}

// ---- a job's outcome across a process boundary ----

// JobResult is what a job's process reports to its caller: the outcome as an error kind and
// its one line, and the warnings it would have printed. Never a secret.
type JobResult struct {
	Kind     string   `json:"kind"` // "", "nocred", "login", "transient", "expired", "fixable", "other"
	Cause    string   `json:"cause,omitempty"`
	Fix      string   `json:"fix,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// EncodeJobResult describes err (nil: success) for the caller.
func EncodeJobResult(err error, warnings string) JobResult {
	r := JobResult{}
	for _, w := range bytes.Split([]byte(warnings), []byte("\n")) {
		if len(bytes.TrimSpace(w)) > 0 {
			r.Warnings = append(r.Warnings, string(w))
		}
	}
	if err == nil {
		return r
	}
	var fe *FixableError
	switch {
	case errors.Is(err, ErrNoCredential) && !errors.As(err, &fe):
		r.Kind = "nocred"
		return r
	case errors.As(err, &fe):
		r.Kind, r.Cause, r.Fix = "fixable", fe.Cause, fe.Fix
		switch {
		case errors.Is(err, ErrLoginRequired):
			r.Kind = "login"
		case errors.Is(err, ErrPullTokenExpired):
			r.Kind = "expired"
		case isTransient(err):
			r.Kind = "transient"
		}
		return r
	case isTransient(err):
		r.Kind, r.Cause = "transient", err.Error()
		return r
	}
	r.Kind, r.Cause = "other", err.Error()
	return r
}

// errTransient marks a failure a later try may not have (isTransient knows it): the issuer or
// API failing, a store that could not be written once.
var errTransient = errors.New("the issuer or API is failing")

// transient marks err as transient without changing its words.
func transient(err error) error { return transientError{err} }

type transientError struct{ err error }

func (e transientError) Error() string   { return e.err.Error() }
func (e transientError) Unwrap() []error { return []error{e.err, errTransient} }

// Err is the error the result stands for, with the sentinels callers test for.
func (r JobResult) Err() error {
	switch r.Kind {
	case "":
		return nil
	case "nocred":
		return ErrNoCredential
	case "login":
		return &FixableError{Cause: r.Cause, Fix: r.Fix, Err: ErrLoginRequired}
	case "expired":
		return &FixableError{Cause: r.Cause, Fix: r.Fix, Err: ErrPullTokenExpired}
	case "transient":
		if r.Fix == "" {
			return transient(errors.New(r.Cause))
		}
		return &FixableError{Cause: r.Cause, Fix: r.Fix, Err: errTransient}
	case "fixable":
		return &FixableError{Cause: r.Cause, Fix: r.Fix}
	}
	return errors.New(r.Cause)
}

// readJobResult reads the result a job's process wrote; a process that died without one
// reads as "other".
func readJobResult(r io.Reader) JobResult {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	var res JobResult
	if err != nil || json.Unmarshal(b, &res) != nil {
		return JobResult{Kind: "other", Cause: "the background refresh ended without a word (killed?); retry"}
	}
	return res
}

// ---- remembering a failed attempt ----

type retryState struct {
	Until time.Time `json:"until"`
	Why   string    `json:"why"`
}

// retryName is the state file that remembers a failed refresh of a lock's subject.
func retryName(lock string) string { return lock + ".retry" }

// noteFailure remembers a transient failure for retryAfter; a success forgets it.
func noteFailure(d Deps, lock string, err error) {
	if d.Settings.StoreDir == "" {
		return
	}
	if err == nil {
		_ = keystore.RemoveState(d.Settings.StoreDir, retryName(lock))
		return
	}
	if !isTransient(err) {
		return
	}
	b, _ := json.Marshal(retryState{Until: depClock(d).Now().Add(retryAfter), Why: stsOneLine(err.Error(), 300)})
	_ = keystore.WriteState(d.Settings.StoreDir, retryName(lock), b)
}

// recentFailure is the failure remembered for lock, when one is still fresh.
func recentFailure(d Deps, lock string) (string, bool) {
	if d.Settings.StoreDir == "" {
		return "", false
	}
	b, err := keystore.ReadState(d.Settings.StoreDir, retryName(lock))
	if err != nil {
		return "", false
	}
	var st retryState
	if json.Unmarshal(b, &st) != nil || !depClock(d).Now().Before(st.Until) {
		return "", false
	}
	return st.Why, true
}

// A job in progress leaves a note with its start, so that a get holding a still-valid
// credential does not wait for a refresh that has already run longer than it may wait.
type runningState struct {
	Since time.Time `json:"since"`
}

func runningName(lock string) string { return lock + ".running" }

// noteRunning records that a job under lock started now; the returned func clears it.
func noteRunning(d Deps, lock string) func() {
	if d.Settings.StoreDir == "" {
		return func() {}
	}
	b, _ := json.Marshal(runningState{Since: time.Now()})
	if keystore.WriteState(d.Settings.StoreDir, runningName(lock), b) != nil {
		return func() {}
	}
	return func() { _ = keystore.RemoveState(d.Settings.StoreDir, runningName(lock)) }
}

// runningFor is how long the job holding lock has been at work (by the wall clock of this
// machine: both ends are here); ok is false when no job left a note.
func runningFor(d Deps, lock string) (time.Duration, bool) {
	b, err := keystore.ReadState(d.Settings.StoreDir, runningName(lock))
	if err != nil {
		return 0, false
	}
	var st runningState
	if json.Unmarshal(b, &st) != nil {
		return 0, false
	}
	return time.Since(st.Since), true
}

// runningLong reports whether the job holding lock has been at work for longer than staleWait.
func runningLong(d Deps, lock string) bool {
	took, ok := runningFor(d, lock)
	return ok && took > staleWait
}

// acquireStale takes lock for a get that holds a still-valid credential: at once when it is
// free; when a job holds it, waiting until ctx (staleWait) ends unless that job has already
// run longer than that. errBusy when the credential at hand should be served instead.
func acquireStale(ctx context.Context, d Deps, lock string) (*keystore.Held, error) {
	h, ok, err := keystore.TryAcquire(d.Settings.StoreDir, lock)
	if err != nil || ok {
		return h, err
	}
	if runningLong(d, lock) {
		return nil, errBusy
	}
	h, err = keystore.Acquire(ctx, d.Settings.StoreDir, lock)
	if err != nil && ctx.Err() != nil {
		return nil, errBusy
	}
	return h, err
}
