//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"
)

const (
	secretsName       = "org.freedesktop.secrets"
	secretsPath       = "/org/freedesktop/secrets"
	loginCollection   = "/org/freedesktop/secrets/collection/login"
	defaultCollection = "/org/freedesktop/secrets/aliases/default"
)

type secretService struct{}

func (secretService) describe() string { return "Secret Service keychain" }

// sessionBusAddress finds the session bus without ever starting one. godbus's
// SessionBus(), which go-keyring calls, runs dbus-launch when DBUS_SESSION_BUS_ADDRESS is
// unset (or "autolaunch:"); on a headless host that leaves a stray dbus-daemon behind on
// every docker pull. So go-keyring is only called once this found a bus address.
func sessionBusAddress(getenv func(string) string) (string, error) {
	if a := getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && !strings.Contains(a, "autolaunch:") {
		return a, nil
	}
	if rd := getenv("XDG_RUNTIME_DIR"); rd != "" {
		p := filepath.Join(rd, "bus")
		if fi, err := os.Stat(p); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			return "unix:path=" + dbus.EscapeBusAddressValue(p), nil
		}
	}
	return "", fmt.Errorf("%w: no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS unset and no $XDG_RUNTIME_DIR/bus)", ErrUnavailable)
}

// newKeychainSystem checks that a session bus exists and, when check is set, that a Secret
// Service answers on it, within ctx. (The keychain auto recorded is not checked: its first
// read says whether it answers, and that round trip is not paid twice on every get.)
func newKeychainSystem(ctx context.Context, getenv func(string) string, check bool) (keychainSystem, error) {
	addr, err := sessionBusAddress(getenv)
	if err != nil {
		return nil, err
	}
	// go-keyring reads the address from the process environment.
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") != addr {
		if err := os.Setenv("DBUS_SESSION_BUS_ADDRESS", addr); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	if !check {
		return secretService{}, nil
	}
	if err := (secretService{}).present(ctx); err != nil {
		return nil, err
	}
	return secretService{}, nil
}

// present says whether a Secret Service answers on the session bus (or can be started by
// D-Bus activation), within ctx: nil, or an ErrUnavailable that says why.
func (secretService) present(ctx context.Context) error {
	_, err := within(ctx, func() (struct{}, error) {
		conn, err := dbus.SessionBus()
		if err != nil {
			return struct{}{}, fmt.Errorf("connecting to the session bus: %v", err)
		}
		var owned bool
		if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, secretsName).Store(&owned); err != nil {
			return struct{}{}, err
		}
		if owned {
			return struct{}{}, nil
		}
		var names []string
		if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names); err != nil {
			return struct{}{}, err
		}
		if !slices.Contains(names, secretsName) {
			return struct{}{}, fmt.Errorf("no Secret Service (%s) on the session bus", secretsName)
		}
		return struct{}{}, nil
	})
	if ctx.Err() != nil {
		return fmt.Errorf("%w: the session bus did not answer in time", ErrUnavailable)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// locked tells whether the collection go-keyring uses ("login" when it exists, else the
// default alias) is locked. It reads a property only: it never prompts.
func (secretService) locked(ctx context.Context) bool {
	l, err := within(ctx, func() (bool, error) {
		conn, err := dbus.SessionBus()
		if err != nil {
			return false, err
		}
		svc := conn.Object(secretsName, secretsPath)
		path := dbus.ObjectPath(defaultCollection)
		var v dbus.Variant
		if err := svc.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
			"org.freedesktop.Secret.Service", "Collections").Store(&v); err == nil {
			if cs, ok := v.Value().([]dbus.ObjectPath); ok && slices.Contains(cs, loginCollection) {
				path = loginCollection
			}
		}
		if err := conn.Object(secretsName, path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
			"org.freedesktop.Secret.Collection", "Locked").Store(&v); err != nil {
			return false, err
		}
		b, _ := v.Value().(bool)
		return b, nil
	})
	return err == nil && l
}
