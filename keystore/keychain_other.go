//go:build !(linux || freebsd || openbsd || netbsd || dragonfly)

package keystore

import (
	"context"
	"runtime"
)

type osKeychain struct{}

func (osKeychain) describe() string {
	switch runtime.GOOS {
	case "darwin":
		return "macOS Keychain"
	case "windows":
		return "Windows Credential Manager"
	}
	return runtime.GOOS + " keychain"
}

// locked: the macOS Keychain and Credential Manager unlock with the login session; a
// locked login keychain shows its own dialog, bounded by the call deadline.
func (osKeychain) locked(context.Context) bool { return false }

func (osKeychain) present(context.Context) error { return nil }

func newKeychainSystem(context.Context, func(string) string, bool) (keychainSystem, error) {
	return osKeychain{}, nil
}

func newKeyringAPI() keyringAPI { return goKeyring{} }
