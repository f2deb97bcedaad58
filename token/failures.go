package token

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
	"github.com/cgrtools/docker-credential-cgr/keystore"
)

// Every failure the user sees is worded here, once: a cause and, in Fix, only ever a command
// (CONTRACT 1.2: one line on stdout naming the cause and the exact command that fixes it).

// Command is a command line of this program: Command("login", "--headless").
func Command(args ...string) string {
	return strings.Join(append([]string{config.AppName}, args...), " ")
}

// The commands named most often, as constants (Command's result for them) so that no
// package initialisation builds them on every start.
const (
	// LoginCommand is the command that fixes a missing, expired or revoked session.
	LoginCommand = config.AppName + " login"
	// DoctorCommand says what is wrong in detail and what to run.
	DoctorCommand = config.AppName + " doctor"
	// SaveCommand stores a new pull token that get serves and renews.
	SaveCommand = config.AppName + " pull-token create --save"
)

// ErrLoginRequired is wrapped by a *FixableError when only a new login can help (the session
// expired, its refresh token was revoked or rejected, its identity is gone, it is damaged).
var ErrLoginRequired = errors.New("a new login is required")

// loginRequired is a failure only a new login fixes.
func loginRequired(cause, fix string, err error) *FixableError {
	if fix == "" {
		fix = LoginCommand
	}
	return &FixableError{Cause: cause, Fix: fix, Err: fmt.Errorf("%w: %w", ErrLoginRequired, err)}
}

// StoreFailure turns a store failure (keystore.ErrLocked, ErrUnavailable) into the one line the
// user sees; other errors pass unchanged.
func StoreFailure(err error) error { return storeFixable(err) }

// storeFixable turns a store failure into the one line the user sees.
func storeFixable(err error) error {
	var fe *FixableError
	switch {
	case err == nil || errors.As(err, &fe):
		return err
	case errors.Is(err, keystore.ErrLocked):
		return &FixableError{
			Cause: "the keychain holding your " + config.DefaultRegistry + " credentials is locked (log in to the desktop session to unlock it), or keep them in files instead",
			Fix:   "CGR_STORE=file " + LoginCommand, Err: err}
	case errors.Is(err, keystore.ErrUnavailable):
		return &FixableError{Cause: err.Error(), Fix: DoctorCommand, Err: err} // err says "the secret store is unavailable: why"
	}
	return err
}

// unreachable is the line for an issuer or API that did not answer in time.
func unreachable(err error, cached *Token) *FixableError {
	cause := err.Error()
	var ue *UnreachableError
	if !errors.As(err, &ue) && !strings.HasPrefix(cause, "cannot reach") && !strings.HasPrefix(cause, "no answer") {
		cause = "cannot reach the issuer: " + cause
	}
	if cached != nil {
		cause += "; the cached token expired at " + sessTime(cached.Expiry)
	}
	return &FixableError{Cause: cause, Fix: DoctorCommand, Err: err}
}
