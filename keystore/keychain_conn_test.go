//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

func TestUnixBusPath(t *testing.T) {
	for _, c := range []struct {
		addr, want string
		ok         bool
	}{
		{"unix:path=/run/user/1000/bus", "/run/user/1000/bus", true},
		{"unix:path=/tmp/a%20b,guid=0123456789abcdef0123456789abcdef", "/tmp/a b", true},
		{"unix:path=/run/a;tcp:host=127.0.0.1,port=1", "/run/a", true},
		{"unix:abstract=/tmp/dbus-x,guid=00", "@/tmp/dbus-x", true},
		{"tcp:host=127.0.0.1,port=1;unix:path=/run/a", "", false}, // only the first is tried
		{"unix:tmpdir=/tmp", "", false},
		{"unix:path=/a,abstract=/b", "", false},
		{"unix:path=/a,path=/b", "", false}, // godbus and libdbus take the first: left to them
		{"unix:path=%zz", "", false},
		{"unix:", "", false},
		{"", "", false},
	} {
		got, ok := unixBusPath(c.addr)
		if got != c.want || ok != c.ok {
			t.Errorf("unixBusPath(%q) = %q, %v; want %q, %v", c.addr, got, ok, c.want, c.ok)
		}
	}
}

const (
	fakeOwner   = ":1.5" // the Secret Service's unique name
	fakeSession = "/org/freedesktop/secrets/session/s7"
	fakeItem    = "/org/freedesktop/secrets/collection/login/3"
)

// fakeBus is a session bus with a Secret Service on it, for one connection: it decodes
// what the client sends with godbus's decoder and answers with godbus's encoder, so that
// both directions of keychain_wire.go are held to godbus. It answers nothing until it has
// read first calls (the conversation first), so a client that waited for an answer before
// sending the rest never gets one. The item fakeItem holds "s3cret" for username "u";
// username "locked" gets IsLocked from SearchItems; any other, no item.
type fakeBus struct {
	t    *testing.T
	addr string
	ln   *net.UnixListener
}

func newFakeBus(t *testing.T) *fakeBus {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bus")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return &fakeBus{t: t, addr: "unix:path=" + dbus.EscapeBusAddressValue(p), ln: ln}
}

// served is what the bus read: the authentication and every call, or the error it met.
type served struct {
	auth  string
	calls []*dbus.Message
	err   error
}

// serve runs the bus for one connection until the client hangs up. A refusal, when not
// empty, is the bus's whole answer to the authentication.
func (b *fakeBus) serve(first int, refusal string) <-chan served {
	ch := make(chan served, 1)
	go func() {
		var s served
		defer func() { ch <- s }()
		c, err := b.ln.AcceptUnix()
		if err != nil {
			s.err = err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		for !strings.HasSuffix(s.auth, "BEGIN\r\n") {
			line, err := r.ReadString('\n')
			if err != nil {
				s.err = err
				return
			}
			s.auth += line
		}
		if refusal != "" {
			_, s.err = c.Write([]byte(refusal))
			return
		}
		var out bytes.Buffer
		out.WriteString("DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n") // as dbus-daemon answers
		for {
			m, err := dbus.DecodeMessage(r)
			if err != nil {
				return // the client hung up
			}
			s.calls = append(s.calls, m)
			if member, _ := m.Headers[dbus.FieldMember].Value().(string); member != "Hello" && member != "GetNameOwner" {
				// Ahead of the Secret Service's answer, what another peer may send: a reply
				// with the right serial (a stock session bus lets it through), and a signal
				// that carries one.
				out.Write(fakeMessage(b.t, dbus.TypeMethodReply, m.Serial(), "", map[dbus.HeaderField]dbus.Variant{
					dbus.FieldSender: dbus.MakeVariant(":1.666"),
				}, []dbus.ObjectPath{"/spoofed"}))
				out.Write(fakeMessage(b.t, dbus.TypeSignal, m.Serial(), "", map[dbus.HeaderField]dbus.Variant{
					dbus.FieldSender:    dbus.MakeVariant(fakeOwner),
					dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/x")),
					dbus.FieldInterface: dbus.MakeVariant("x.y"),
					dbus.FieldMember:    dbus.MakeVariant("Z"),
				}, ssSecret{Session: "/s", Value: []byte("from a signal")}))
			}
			out.Write(fakeAnswer(b.t, m))
			if len(s.calls) == 1 { // what a bus sends a new connection after its Hello
				out.Write(fakeMessage(b.t, dbus.TypeSignal, 0, "", map[dbus.HeaderField]dbus.Variant{
					dbus.FieldSender:    dbus.MakeVariant(busName),
					dbus.FieldPath:      dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/DBus")),
					dbus.FieldInterface: dbus.MakeVariant("org.freedesktop.DBus"),
					dbus.FieldMember:    dbus.MakeVariant("NameAcquired"),
				}, ":1.42"))
			}
			if len(s.calls) >= first {
				if _, s.err = c.Write(out.Bytes()); s.err != nil {
					return
				}
				out.Reset()
			}
		}
	}()
	return ch
}

// fakeAnswer is the bus's or the Secret Service's reply to a call, encoded by godbus.
func fakeAnswer(t testing.TB, m *dbus.Message) []byte {
	member, _ := m.Headers[dbus.FieldMember].Value().(string)
	bus := map[dbus.HeaderField]dbus.Variant{dbus.FieldSender: dbus.MakeVariant(busName)}
	svc := func() map[dbus.HeaderField]dbus.Variant {
		return map[dbus.HeaderField]dbus.Variant{dbus.FieldSender: dbus.MakeVariant(fakeOwner)}
	}
	switch member {
	case "Hello":
		return fakeMessage(t, dbus.TypeMethodReply, m.Serial(), "", bus, ":1.42")
	case "GetNameOwner":
		return fakeMessage(t, dbus.TypeMethodReply, m.Serial(), "", bus, fakeOwner)
	case "OpenSession":
		return fakeMessage(t, dbus.TypeMethodReply, m.Serial(), "", svc(), dbus.MakeVariant(""), dbus.ObjectPath(fakeSession))
	case "SearchItems":
		attrs, _ := m.Body[0].(map[string]string)
		switch attrs["username"] {
		case "u":
			return fakeMessage(t, dbus.TypeMethodReply, m.Serial(), "", svc(), []dbus.ObjectPath{fakeItem})
		case "locked":
			return fakeMessage(t, dbus.TypeError, m.Serial(), "org.freedesktop.Secret.Error.IsLocked", svc(), "Cannot get secret of a locked object")
		}
		return fakeMessage(t, dbus.TypeMethodReply, m.Serial(), "", svc(), []dbus.ObjectPath{})
	case "GetSecret":
		return fakeMessage(t, dbus.TypeMethodReply, m.Serial(), "", svc(), ssSecret{Session: fakeSession, Value: []byte("s3cret"), ContentType: "text/plain"})
	}
	return fakeMessage(t, dbus.TypeError, m.Serial(), "org.freedesktop.DBus.Error.UnknownMethod", svc(), "no "+member)
}

// fakeMessage encodes a message with godbus. godbus cannot be given a serial for a message
// it does not send, so it is written into the encoded header.
func fakeMessage(t testing.TB, typ dbus.Type, replyTo uint32, errName string, headers map[dbus.HeaderField]dbus.Variant, body ...any) []byte {
	t.Helper()
	if headers == nil {
		headers = map[dbus.HeaderField]dbus.Variant{}
	}
	if replyTo != 0 {
		headers[dbus.FieldReplySerial] = dbus.MakeVariant(replyTo)
	}
	if errName != "" {
		headers[dbus.FieldErrorName] = dbus.MakeVariant(errName)
	}
	if len(body) > 0 {
		headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(body...))
	}
	m := &dbus.Message{Type: typ, Headers: headers, Body: body}
	var enc bytes.Buffer
	if err := m.EncodeTo(&enc, binary.LittleEndian); err != nil {
		t.Errorf("encoding the fake's answer: %v", err)
		return nil
	}
	wire := enc.Bytes()
	binary.LittleEndian.PutUint32(wire[8:], 1000+replyTo)
	return wire
}

func members(calls []*dbus.Message) []string {
	var out []string
	for _, m := range calls {
		v, _ := m.Headers[dbus.FieldMember].Value().(string)
		out = append(out, v)
	}
	return out
}

// A first lookup sends the authentication, Hello, OpenSession and SearchItems before the
// bus has said anything (one round trip to know the item), then GetSecret on the session
// OpenSession gave; a second one on the same connection sends SearchItems and GetSecret
// alone. What it sends is what godbus decodes as the calls the Secret Service API names.
func TestWireReaderLookup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the wire reader is Linux's alone")
	}
	b := newFakeBus(t)
	got := b.serve(4, "")
	w, err := dialWire(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	attrs := [][2]string{{"service", "svc"}, {"username", "u"}}
	for i := range 2 {
		v, found, err := w.lookup(attrs)
		if err != nil || !found || string(v) != "s3cret" {
			t.Fatalf("lookup %d: %q, %v, %v; want s3cret", i, v, found, err)
		}
	}
	if _, found, err := w.lookup([][2]string{{"service", "svc"}, {"username", "nobody"}}); err != nil || found {
		t.Fatalf("lookup of an absent item: found %v, %v", found, err)
	}
	if w.name != ":1.42" || w.owner != fakeOwner || w.session != fakeSession {
		t.Errorf("unique name %q, Secret Service %q, session %q", w.name, w.owner, w.session)
	}
	_ = w.Close()
	s := <-got
	if s.err != nil {
		t.Fatalf("the bus: %v", s.err)
	}
	// No uid: the bus takes the socket's credentials (in a user namespace it sees another uid).
	if want := "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"; s.auth != want {
		t.Errorf("authentication %q, want %q", s.auth, want)
	}
	want := []string{"Hello", "GetNameOwner", "OpenSession", "SearchItems", "GetSecret", "SearchItems", "GetSecret", "SearchItems"}
	if got := members(s.calls); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	for i, m := range s.calls {
		dest, _ := m.Headers[dbus.FieldDestination].Value().(string)
		path, _ := m.Headers[dbus.FieldPath].Value().(dbus.ObjectPath)
		iface, _ := m.Headers[dbus.FieldInterface].Value().(string)
		if m.Type != dbus.TypeMethodCall || m.Serial() != uint32(i+1) {
			t.Errorf("call %d: type %v, serial %d", i, m.Type, m.Serial())
		}
		switch want[i] {
		case "Hello":
			if dest != "org.freedesktop.DBus" || path != "/org/freedesktop/DBus" || iface != "org.freedesktop.DBus" || len(m.Body) != 0 {
				t.Errorf("Hello: %v %v %v %v", dest, path, iface, m.Body)
			}
		case "GetNameOwner":
			if dest != "org.freedesktop.DBus" || path != "/org/freedesktop/DBus" || iface != "org.freedesktop.DBus" || len(m.Body) != 1 || m.Body[0] != secretsName {
				t.Errorf("GetNameOwner: %v %v %v %v", dest, path, iface, m.Body)
			}
		case "OpenSession":
			if v, _ := m.Body[1].(dbus.Variant); dest != secretsName || path != secretsPath || iface != "org.freedesktop.Secret.Service" ||
				len(m.Body) != 2 || m.Body[0] != "plain" || v.Value() != "" {
				t.Errorf("OpenSession: %v %v %v %#v", dest, path, iface, m.Body)
			}
		case "SearchItems":
			a, _ := m.Body[0].(map[string]string)
			if dest != secretsName || path != loginCollection || iface != "org.freedesktop.Secret.Collection" ||
				len(a) != 2 || a["service"] != "svc" || (a["username"] != "u" && a["username"] != "nobody") {
				t.Errorf("SearchItems: %v %v %v %#v", dest, path, iface, m.Body)
			}
		case "GetSecret":
			if dest != secretsName || path != fakeItem || iface != "org.freedesktop.Secret.Item" ||
				len(m.Body) != 1 || m.Body[0] != dbus.ObjectPath(fakeSession) {
				t.Errorf("GetSecret: %v %v %v %#v", dest, path, iface, m.Body)
			}
		}
	}
}

// An error reply from the Secret Service (a locked item) is a *wireError for the caller to
// hand to go-keyring, and the connection goes on serving lookups.
func TestWireReaderErrorReply(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the wire reader is Linux's alone")
	}
	b := newFakeBus(t)
	got := b.serve(4, "")
	w, err := dialWire(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = w.lookup([][2]string{{"service", "svc"}, {"username", "locked"}})
	var we *wireError
	if !errors.As(err, &we) || we.name != "org.freedesktop.Secret.Error.IsLocked" {
		t.Fatalf("lookup of a locked item: %v, want the IsLocked error", err)
	}
	if v, found, err := w.lookup([][2]string{{"service", "svc"}, {"username", "u"}}); err != nil || !found || string(v) != "s3cret" {
		t.Fatalf("lookup after an error reply: %q, %v, %v", v, found, err)
	}
	_ = w.Close()
	if s := <-got; s.err != nil {
		t.Fatalf("the bus: %v", s.err)
	}
}

// A bus that refuses the authentication fails the lookup without hanging it, and
// directReads reads on godbus's SessionBus from then on.
func TestWireReaderRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the wire reader is Linux's alone")
	}
	b := newFakeBus(t)
	got := b.serve(0, "REJECTED DBUS_COOKIE_SHA1\r\n")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", b.addr)
	d := &directReads{}
	done := make(chan error, 1)
	go func() {
		_, isDone, err := d.readWire(Service, "u")
		if isDone {
			err = errors.New("readWire answered on a refusing bus")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read on a refusing bus hung")
	}
	if s := <-got; s.err != nil {
		t.Fatalf("the bus: %v", s.err)
	}
	if !d.slow || d.wire != nil {
		t.Errorf("after a refusal: slow %v, wire reader kept %v", d.slow, d.wire != nil)
	}
}

// What the bus may answer to the conversation: a DATA line asking for EXTERNAL's response,
// once, then OK and a GUID of 32 hex digits.
func TestWireReaderReadsTheBusAnswer(t *testing.T) {
	const guid = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"DATA\r\nOK " + guid + "\r\n", true},
		{"OK " + guid + "\r\n", false}, // OK at once: the DATA sent after it would be an error
		{"DATA 00\r\nOK " + guid + "\r\n", true},
		{"DATA\r\nDATA\r\nOK " + guid + "\r\n", false},
		{"DATA\r\nOK \r\n", false},
		{"DATA\r\nOK " + guid[:31] + "\r\n", false},
		{"DATA\r\nOK " + strings.Repeat("z", 32) + "\r\n", false},
		{"DATA\r\nOK " + guid + "\n", false},
		{"REJECTED EXTERNAL\r\n", false},
		{"ERROR\r\n", false},
		{strings.Repeat("x", 5000) + "\r\n", false},
		{"", false},
	} {
		w := &wireReader{r: bufio.NewReaderSize(strings.NewReader(c.in), 4096)}
		if err := w.readOK(); (err == nil) != c.ok {
			t.Errorf("answer %.40q: %v, want accepted %v", c.in, err, c.ok)
		}
	}
}

// The decoders take what godbus encodes, and refuse what they were not asked for.
func TestWireDecodersAgreeWithGodbus(t *testing.T) {
	parse := func(m []byte) reply {
		t.Helper()
		r, err := parseReply(m)
		if err != nil {
			t.Fatalf("parseReply: %v", err)
		}
		return r
	}
	if s, err := decodeString(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, ":1.9"))); err != nil || s != ":1.9" {
		t.Errorf("s: %q, %v", s, err)
	}
	if p, err := decodeOpenSession(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, dbus.MakeVariant(""), dbus.ObjectPath("/s/1")))); err != nil || p != "/s/1" {
		t.Errorf("vo: %q, %v", p, err)
	}
	paths := []dbus.ObjectPath{"/a", "/b/c", "/d"}
	if ps, err := decodePaths(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, paths))); err != nil || !slices.Equal(ps, []string{"/a", "/b/c", "/d"}) {
		t.Errorf("ao: %q, %v", ps, err)
	}
	if ps, err := decodePaths(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, []dbus.ObjectPath{}))); err != nil || len(ps) != 0 {
		t.Errorf("empty ao: %q, %v", ps, err)
	}
	secret := ssSecret{Session: "/s/1", Parameters: []byte{1, 2, 3}, Value: []byte("a value\x00with a NUL"), ContentType: "text/plain; charset=utf8"}
	if v, err := decodeSecret(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, secret))); err != nil || string(v) != string(secret.Value) {
		t.Errorf("(oayays): %q, %v", v, err)
	}
	var we *wireError
	if _, err := decodePaths(parse(fakeMessage(t, dbus.TypeError, 1, "org.example.Error.Nope", nil, "it says no"))); !errors.As(err, &we) || we.name != "org.example.Error.Nope" || we.msg != "it says no" {
		t.Errorf("error reply: %v", err)
	}
	if _, err := decodePaths(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, "not paths"))); !errors.Is(err, errWire) {
		t.Errorf("a reply of the wrong signature: %v", err)
	}
	if _, err := decodeOpenSession(parse(fakeMessage(t, dbus.TypeMethodReply, 1, "", nil, dbus.MakeVariant(uint32(1)), dbus.ObjectPath("/s")))); !errors.Is(err, errWire) {
		t.Errorf("an OpenSession output that is not a string: %v", err)
	}
}

// Whatever the bus sends, the decoders return an error or a value; they never panic or
// read past the message.
func FuzzWireReply(f *testing.F) {
	f.Add(fakeMessage(f, dbus.TypeMethodReply, 1, "", nil, []dbus.ObjectPath{"/a"}))
	f.Add(fakeMessage(f, dbus.TypeMethodReply, 1, "", nil, ssSecret{Session: "/s", Value: []byte("v")}))
	f.Add(fakeMessage(f, dbus.TypeMethodReply, 1, "", nil, dbus.MakeVariant(""), dbus.ObjectPath("/s")))
	f.Add(fakeMessage(f, dbus.TypeError, 1, "a.b", nil, "m"))
	f.Fuzz(func(t *testing.T, m []byte) {
		if n, err := wireLen(m); err != nil || n != len(m) {
			return
		}
		r, err := parseReply(m)
		if err != nil {
			return
		}
		_, _ = decodeString(r)
		_, _ = decodeOpenSession(r)
		_, _ = decodePaths(r)
		_, _ = decodeSecret(r)
	})
}

// Object paths the bus hands back are checked before they go out again as a call's path or
// a session argument, by the rule godbus's ObjectPath.IsValid applies.
func TestValidObjectPath(t *testing.T) {
	for _, p := range []string{"/", "/a", "/org/freedesktop/secrets/collection/login/3", "/a_b/C9", "", "a", "//", "/a/", "/a//b", "/a-b", "/a.b", "/\x00"} {
		if got, want := validObjectPath(p), dbus.ObjectPath(p).IsValid(); got != want {
			t.Errorf("validObjectPath(%q) = %v, godbus says %v", p, got, want)
		}
	}
}

// Messages that are not replies are passed over unread in either byte order, whatever they
// claim up to the specification's bound; a reply must be little-endian and small.
func TestWireHeaderLengths(t *testing.T) {
	le := fakeMessage(t, dbus.TypeSignal, 0, "", map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath: dbus.MakeVariant(dbus.ObjectPath("/x")), dbus.FieldInterface: dbus.MakeVariant("x.y"), dbus.FieldMember: dbus.MakeVariant("Z"),
	}, "v")
	if n, typ, err := headerLen(le); err != nil || n != len(le) || typ != msgSignal {
		t.Errorf("little-endian signal: %d, %d, %v; want %d", n, typ, err, len(le))
	}
	m := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldReplySerial: dbus.MakeVariant(uint32(1)), dbus.FieldSignature: dbus.MakeVariant(dbus.SignatureOf("")),
	}, Body: []any{"big"}}
	var be bytes.Buffer
	if err := m.EncodeTo(&be, binary.BigEndian); err != nil {
		t.Fatal(err)
	}
	if n, _, err := headerLen(be.Bytes()); err != nil || n != be.Len() {
		t.Errorf("big-endian: %d, %v; want %d", n, err, be.Len())
	}
	if _, err := wireLen(be.Bytes()); !errors.Is(err, errWire) {
		t.Errorf("a big-endian reply: %v, want errWire", err)
	}
	huge := append([]byte(nil), le[:16]...)
	binary.LittleEndian.PutUint32(huge[4:], 2<<20)
	if _, _, err := headerLen(huge); err != nil {
		t.Errorf("a 2 MB signal: %v, want it passed over", err)
	}
	if _, err := wireLen(huge); !errors.Is(err, errWire) {
		t.Errorf("a 2 MB reply: %v, want errWire", err)
	}
	binary.LittleEndian.PutUint32(huge[4:], 200<<20)
	if _, _, err := headerLen(huge); !errors.Is(err, errWire) {
		t.Errorf("a 200 MB message: %v, want errWire", err)
	}
}
