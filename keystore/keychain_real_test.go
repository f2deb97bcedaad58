//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

func openKeychainT(t testing.TB, timeout time.Duration) Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Backend: "keychain", Dir: t.TempDir(), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRealKeychainRoundTrip(t *testing.T) {
	realKeyring(t)
	s := openKeychainT(t, 0)
	if s.Kind() != "keychain" || !strings.Contains(s.Describe(), "Secret Service") {
		t.Fatalf("Kind %q Describe %q", s.Kind(), s.Describe())
	}
	testStoreRoundTrip(t, s)
}

func TestRealKeychainPartsCleanedUp(t *testing.T) {
	realKeyring(t)
	s := openKeychainT(t, 0)
	ctx := context.Background()
	key := "test/parts"
	if err := s.Set(ctx, key, bigValue(3*itemMax, 9)); err != nil {
		t.Fatal(err)
	}
	raw, err := keyring.Get(Service, key)
	if err != nil {
		t.Fatal(err)
	}
	h, ok := parseHeader(raw)
	if !ok || h.parts != 3 {
		t.Fatalf("stored header not a 3-part header (%d bytes)", len(raw))
	}
	if err := s.Set(ctx, key, []byte("small now")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= h.parts; i++ {
		if _, err := keyring.Get(Service, partKey(key, h.gen, i)); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("old part %d still there: %v", i, err)
		}
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}

func TestRealKeychainAutoChoosesKeychain(t *testing.T) {
	realKeyring(t)
	var notice bytes.Buffer
	s, err := Open(context.Background(), Options{Backend: "auto", Dir: t.TempDir(), Notice: &notice})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kind() != "keychain" || notice.Len() != 0 {
		t.Fatalf("auto with a keyring chose %s, notice %q", s.Describe(), notice.String())
	}
}

// TestRealKeychainLocked locks the collection go-keyring uses: calls must fail with
// ErrLocked within the deadline instead of waiting for an unlock prompt nobody answers.
func TestRealKeychainLocked(t *testing.T) {
	realKeyring(t)
	ctx := context.Background()
	s := openKeychainT(t, 500*time.Millisecond)
	if err := s.Set(ctx, "test/locked", []byte("before")); err != nil {
		t.Fatal(err)
	}
	conn, err := dbus.SessionBus()
	if err != nil {
		t.Fatal(err)
	}
	svc := conn.Object(secretsName, secretsPath)
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := svc.Call("org.freedesktop.Secret.Service.Lock", 0, []dbus.ObjectPath{defaultCollection}).Store(&locked, &prompt); err != nil {
		t.Fatalf("locking the keyring: %v", err)
	}
	t.Cleanup(func() { unlockTestKeyring(t, conn) })
	if !(secretService{}).locked(ctx) {
		t.Fatal("the collection does not report itself locked")
	}

	if _, err := s.Get(ctx, "test/locked"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Get on a locked keyring: %v, want ErrLocked", err)
	}
	if err := s.Set(ctx, "test/locked", []byte("after")); !errors.Is(err, ErrLocked) {
		t.Fatalf("Set on a locked keyring: %v, want ErrLocked", err)
	}
	// auto keeps the (locked) keychain: the user's secrets are in it, and the error says
	// how to unlock it or opt out.
	a, err := Open(ctx, Options{Backend: "auto", Dir: t.TempDir(), Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind() != "keychain" {
		t.Fatalf("auto on a locked keyring chose %s", a.Describe())
	}

	unlockTestKeyring(t, conn)
	got, err := s.Get(ctx, "test/locked")
	if err != nil || string(got) != "before" {
		t.Fatalf("after unlocking: %q, %v", got, err)
	}
	_ = s.Delete(ctx, "test/locked")
}

// unlockTestKeyring unlocks the throwaway keyring with its password, through
// gnome-keyring's own interface (the standard Unlock would need a prompt).
func unlockTestKeyring(t *testing.T, conn *dbus.Conn) {
	t.Helper()
	pw := os.Getenv("CGR_TEST_KEYRING_PASSWORD")
	svc := conn.Object(secretsName, secretsPath)
	var out dbus.Variant
	var session dbus.ObjectPath
	if err := svc.Call("org.freedesktop.Secret.Service.OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&out, &session); err != nil {
		t.Fatalf("open session: %v", err)
	}
	defer conn.Object(secretsName, session).Call("org.freedesktop.Secret.Session.Close", 0)
	secret := struct {
		Session     dbus.ObjectPath
		Parameters  []byte
		Value       []byte
		ContentType string
	}{session, []byte{}, []byte(pw), "text/plain"}
	call := svc.Call("org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface.UnlockWithMasterPassword", 0,
		dbus.ObjectPath(loginCollection), secret)
	if call.Err != nil {
		t.Fatalf("unlocking the test keyring: %v", call.Err)
	}
}

// TestRealKeychainAutoChoiceSticks: once auto has stored a secret, later runs open the same
// backend. A keychain that stops answering is an error naming it, not a silent switch to an
// empty file store; a login kept in files stays in use when a keychain turns up later.
func TestRealKeychainAutoChoiceSticks(t *testing.T) {
	realKeyring(t)
	ctx := context.Background()
	noBus := func(k string) string {
		if k == "DBUS_SESSION_BUS_ADDRESS" || k == "XDG_RUNTIME_DIR" {
			return ""
		}
		return os.Getenv(k)
	}

	t.Run("keychain", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(ctx, Options{Backend: "auto", Dir: dir})
		if err != nil || s.Kind() != "keychain" {
			t.Fatalf("auto with a keyring: %v, %v", s, err)
		}
		key := "test/sticky-keychain"
		if err := s.Set(ctx, key, []byte("in the keychain")); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Delete(ctx, key) })

		var notice bytes.Buffer
		_, err = Open(ctx, Options{Backend: "auto", Dir: dir, Getenv: noBus, Notice: &notice})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("auto without the bus after storing in the keychain: %v, want ErrUnavailable", err)
		}
		for _, want := range []string{"keychain", "did not answer", "CGR_STORE=file"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("the error %q does not say %q", err, want)
			}
		}
		if notice.Len() != 0 {
			t.Errorf("a fallback notice was printed: %q", notice.String())
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "*.secret")); len(files) > 0 {
			t.Errorf("the file store was used: %v", files)
		}

		again, err := Open(ctx, Options{Backend: "auto", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := again.Get(ctx, key); err != nil || string(got) != "in the keychain" {
			t.Fatalf("with the bus back: %q, %v", got, err)
		}
	})

	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		var notice bytes.Buffer
		s, err := Open(ctx, Options{Backend: "auto", Dir: dir, Getenv: noBus, Notice: &notice})
		if err != nil || s.Kind() != "file" || notice.Len() == 0 {
			t.Fatalf("auto without a bus: %v, %v, notice %q", s, err, notice.String())
		}
		if err := s.Set(ctx, "test/sticky-file", []byte("in a file")); err != nil {
			t.Fatal(err)
		}
		withBus, err := Open(ctx, Options{Backend: "auto", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if withBus.Kind() != "file" {
			t.Fatalf("a keychain that turned up later took over from the file store: %s", withBus.Describe())
		}
		if got, err := withBus.Get(ctx, "test/sticky-file"); err != nil || string(got) != "in a file" {
			t.Fatalf("the login kept in files: %q, %v", got, err)
		}
		// logout --all forgets everything, the choice too: the next login probes again.
		if err := withBus.DeleteAll(ctx); err != nil {
			t.Fatal(err)
		}
		fresh, err := Open(ctx, Options{Backend: "auto", Dir: dir})
		if err != nil || fresh.Kind() != "keychain" {
			t.Fatalf("after DeleteAll, auto with a keyring: %v, %v", fresh, err)
		}
	})
}

// TestRealKeychainDirectReads: what go-keyring writes, the direct reads find, in the round
// trips they promise (SearchItems and GetSecret; an absent item SearchItems alone; the
// session opened once), and what they cannot read plainly goes to go-keyring.
func TestRealKeychainDirectReads(t *testing.T) {
	realKeyring(t)
	const user = "test/direct"
	if err := keyring.Set(Service, user, "written by go-keyring"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keyring.Delete(Service, user) })
	if _, ok := openKeychainT(t, 0).(*keychain).api.(*directReads); !ok {
		t.Fatal("the keychain store does not read through directReads")
	}
	d := &directReads{}
	got, err := d.read(Service, user)
	if err != nil || got != "written by go-keyring" {
		t.Fatalf("direct read of go-keyring's item: %q, %v", got, err)
	}
	if _, err := d.read(Service, "test/direct-absent"); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("direct read of an absent item: %v, want keyring.ErrNotFound", err)
	}

	conn, err := dbus.SessionBus()
	if err != nil {
		t.Fatal(err)
	}
	calls := countCalls(t, conn, func() {
		for range 3 {
			if v, err := d.Get(Service, user); err != nil || v != "written by go-keyring" {
				t.Fatalf("Get: %q, %v", v, err)
			}
		}
		if _, err := d.Get(Service, "test/direct-absent"); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("Get of an absent item: %v", err)
		}
	})
	if calls != 3*2+1 {
		t.Errorf("three reads and one absent item took %d D-Bus calls, want 7 (go-keyring: 3*7+3)", calls)
	}
	calls = countCalls(t, conn, func() { _, _ = goKeyring{}.Get(Service, user) })
	if calls != 7 {
		t.Errorf("go-keyring's Get took %d calls; the comment on directReads says 7", calls)
	}

	// A locked item is go-keyring's: its Unlock prompts (here: nobody answers, the deadline
	// of the keychain store ends it and the store says locked, TestRealKeychainLocked).
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := conn.Object(secretsName, secretsPath).Call("org.freedesktop.Secret.Service.Lock", 0,
		[]dbus.ObjectPath{defaultCollection}).Store(&locked, &prompt); err != nil {
		t.Fatalf("locking the keyring: %v", err)
	}
	t.Cleanup(func() { unlockTestKeyring(t, conn) })
	if _, err := d.read(Service, user); err == nil || errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("direct read of a locked item: %v, want a failure go-keyring then handles", err)
	}
}

// countCalls counts the method calls this process sends on conn while f runs, with a
// monitor connection of its own (org.freedesktop.DBus.Monitoring, as dbus-monitor does).
func countCalls(t *testing.T, conn *dbus.Conn, f func()) int {
	t.Helper()
	msgs, stop := eavesdrop(t, "type='method_call',sender='"+conn.Names()[0]+"'")
	defer stop()
	f()
	// A marker call ends the count: everything before it has reached the monitor.
	_ = conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err
	n := 0
	for m := range msgs {
		if member, _ := m.Headers[dbus.FieldMember].Value().(string); member == "GetId" {
			return n
		}
		if m.Type == dbus.TypeMethodCall { // the monitor also gets its own NameLost
			n++
		}
	}
	return n
}

// The first read of a process sends OpenSession before the answer to its SearchItems comes
// back: one round trip to the daemon for both, not two (a warm get makes one read).
func TestRealKeychainFirstReadAsksForTheSessionAtOnce(t *testing.T) {
	realKeyring(t)
	const user = "test/pipelined"
	if err := keyring.Set(Service, user, "v"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keyring.Delete(Service, user) })
	conn, err := dbus.SessionBus()
	if err != nil {
		t.Fatal(err)
	}
	me := conn.Names()[0]
	msgs, stop := eavesdrop(t, "type='method_call',sender='"+me+"'", "type='method_return',destination='"+me+"'")
	defer stop()
	d := &directReads{}
	if v, err := d.read(Service, user); err != nil || v != "v" {
		t.Fatalf("read: %q, %v", v, err)
	}
	_ = conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err // marks the end
	var seq []string
	searchSerial := uint32(0)
	for m := range msgs {
		member, _ := m.Headers[dbus.FieldMember].Value().(string)
		if member == "GetId" {
			break
		}
		switch m.Type {
		case dbus.TypeMethodCall:
			if member == "SearchItems" {
				searchSerial = m.Serial()
			}
			seq = append(seq, member)
		case dbus.TypeMethodReply:
			if rs, _ := m.Headers[dbus.FieldReplySerial].Value().(uint32); rs == searchSerial && rs != 0 {
				seq = append(seq, "SearchItems answered")
			}
		}
	}
	want := []string{"OpenSession", "SearchItems", "SearchItems answered", "GetSecret"}
	if !slices.Equal(seq, want) {
		t.Fatalf("the first read's messages: %v, want %v", seq, want)
	}
}

// eavesdrop is what the bus sees that matches rules, from a monitor connection of its own
// (org.freedesktop.DBus.Monitoring, as dbus-monitor does), until stop closes it.
func eavesdrop(t *testing.T, rules ...string) (msgs <-chan *dbus.Message, stop func()) {
	t.Helper()
	mon, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, rules, uint32(0)).Err; err != nil {
		_ = mon.Close()
		t.Fatalf("BecomeMonitor: %v", err)
	}
	ch := make(chan *dbus.Message, 256)
	mon.Eavesdrop(ch)
	// Eavesdropping ends first: godbus's Close closes the channel without clearing it, and
	// a message read after that would be sent on the closed channel (a panic).
	return ch, func() { mon.Eavesdrop(nil); _ = mon.Close() }
}
