package keystore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cgrtools/docker-credential-cgr/internal/fsread"
)

// State files sit beside the secrets in the store directory and hold what is not secret
// (the auto store's choice, a refresh failure to remember for a few minutes). Names are
// escaped as store keys are and end in ".state".

func statePath(dir, name string) string { return filepath.Join(dir, escapeName(name)+".state") }

// ReadState returns the state file's content; an error wrapping fs.ErrNotExist when absent.
func ReadState(dir, name string) ([]byte, error) {
	return fsread.ReadFile(statePath(dir, name))
}

// WriteState replaces the state file atomically (a temp file renamed over it).
func WriteState(dir, name string, b []byte) error {
	if err := ensureDir(dir); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := os.Rename(tmp.Name(), statePath(dir, name)); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// RemoveState removes the state file; an absent one is not an error.
func RemoveState(dir, name string) error {
	if err := os.Remove(statePath(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
