//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestBusAddressNeverAutolaunches(t *testing.T) {
	rd := t.TempDir()
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()

	env["DBUS_SESSION_BUS_ADDRESS"] = "autolaunch:"
	if _, err := newKeychainSystem(ctx, getenv, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("autolaunch: address: %v", err)
	}
	env["DBUS_SESSION_BUS_ADDRESS"] = ""
	env["XDG_RUNTIME_DIR"] = rd
	if _, err := newKeychainSystem(ctx, getenv, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("runtime dir without a bus: %v", err)
	}
	// A regular file named bus is no socket.
	if err := os.WriteFile(filepath.Join(rd, "bus"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newKeychainSystem(ctx, getenv, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("bus that is a file: %v", err)
	}
	// A socket is taken as the bus address.
	sock := filepath.Join(t.TempDir(), "bus")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	env["XDG_RUNTIME_DIR"] = filepath.Dir(sock)
	addr, err := sessionBusAddress(getenv)
	if err != nil || addr != "unix:path="+sock {
		t.Fatalf("address from XDG_RUNTIME_DIR: %q, %v", addr, err)
	}
}
