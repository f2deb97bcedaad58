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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

func TestUnixBusPath(t *testing.T) {
	for _, c := range []struct {
		addr, want string
		ok         bool
	}{
		{"unix:path=/run/user/1000/bus", "/run/user/1000/bus", true},
		{"unix:path=/tmp/a%20b,guid=0123456789abcdef0123456789abcdef", "/tmp/a b", true},
		{"unix:path=/run/a;tcp:host=127.0.0.1,port=1", "/run/a", true},
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
	// An abstract socket is Linux's alone.
	got, ok := unixBusPath("unix:abstract=/tmp/dbus-x,guid=00")
	if linux := runtime.GOOS == "linux"; ok != linux || (linux && got != "@/tmp/dbus-x") {
		t.Errorf("unixBusPath of an abstract address = %q, %v", got, ok)
	}
}

// fakeBus is one connection's server side: it records what the client sent before it
// answered anything.
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

// serve accepts one connection, reads the authentication and want method calls with no
// answer at all, then answers: the OK line (or refusal, when it is not empty) and a reply
// to each call. It sends what it read, or the error it met, on the channel.
type served struct {
	auth  string
	calls []*dbus.Message
	err   error
}

func (b *fakeBus) serve(want int, refusal string) <-chan served {
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
		for !bytes.HasSuffix([]byte(s.auth), []byte("BEGIN\r\n")) {
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
		for range want {
			m, err := dbus.DecodeMessage(r)
			if err != nil {
				s.err = err
				return
			}
			s.calls = append(s.calls, m)
		}
		var out bytes.Buffer
		out.WriteString("DATA\r\nOK 0123456789abcdef0123456789abcdef\r\n") // as dbus-daemon answers
		for i, m := range s.calls {
			reply := &dbus.Message{Type: dbus.TypeMethodReply, Headers: map[dbus.HeaderField]dbus.Variant{
				dbus.FieldReplySerial: dbus.MakeVariant(m.Serial()),
				dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf("")),
			}, Body: []any{":1." + strconv.Itoa(i)}}
			var enc bytes.Buffer
			if err := reply.EncodeTo(&enc, binary.LittleEndian); err != nil {
				s.err = err
				return
			}
			wire := enc.Bytes()
			binary.LittleEndian.PutUint32(wire[8:], uint32(100+i)) // the serial godbus cannot set
			out.Write(wire)
		}
		_, s.err = c.Write(out.Bytes())
		_, _ = r.ReadByte() // until the client hangs up
	}()
	return ch
}

// The authentication, Hello and the first call all leave before the bus has said anything:
// the first answer comes after one round trip.
func TestPipelinedConnSendsAllBeforeAnyAnswer(t *testing.T) {
	b := newFakeBus(t)
	got := b.serve(2, "")
	conn, err := dialPipelined(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	hello := conn.hello
	var answer string
	t.Cleanup(func() { _ = conn.Close() })
	call := conn.Object(secretsName, loginCollection).Call("org.freedesktop.Secret.Collection.SearchItems", 0,
		map[string]string{"service": "s"})
	if err := call.Store(&answer); err != nil || answer != ":1.1" {
		t.Fatalf("the call's answer: %q, %v", answer, err)
	}
	var name string
	if err := hello.Store(&name); err != nil || name != ":1.0" {
		t.Fatalf("Hello's answer: %q, %v", name, err)
	}
	_ = conn.Close()
	s := <-got
	if s.err != nil {
		t.Fatalf("the bus: %v", s.err)
	}
	// No uid: the bus takes the socket's credentials (in a user namespace it sees another uid).
	if want := "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"; s.auth != want {
		t.Errorf("authentication %q, want %q", s.auth, want)
	}
	var members []string
	for _, m := range s.calls {
		v, _ := m.Headers[dbus.FieldMember].Value().(string)
		members = append(members, v)
	}
	if len(members) != 2 || members[0] != "Hello" || members[1] != "SearchItems" {
		t.Errorf("calls before any answer: %v, want [Hello SearchItems]", members)
	}
}

// A bus that refuses EXTERNAL fails the read on that connection (with errFastBus, or with a
// broken pipe when it hung up before the answer was read) and does not hang it; directReads
// closes the connection and reads on godbus's SessionBus from then on.
func TestPipelinedConnRefused(t *testing.T) {
	b := newFakeBus(t)
	got := b.serve(0, "REJECTED DBUS_COOKIE_SHA1\r\n")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", b.addr)
	d := &directReads{}
	conn, err := d.bus()
	if err != nil || d.piped == nil {
		t.Fatalf("bus: %v (pipelined: %v)", err, d.piped != nil)
	}
	_, err = d.readOn(conn, Service, "u")
	if err == nil || errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("read on a refusing bus: %v, want a failure", err)
	}
	if s := <-got; s.err != nil {
		t.Fatalf("the bus: %v", s.err)
	}
	if !d.refused(conn) {
		t.Fatal("refused: false for a connection the bus refused")
	}
	if d.piped != nil || !d.slow || conn.Connected() {
		t.Errorf("after a refusal: pipelined %v, slow %v, connected %v; want none, true, false", d.piped != nil, d.slow, conn.Connected())
	}
}

// An accepted connection is not taken for a refused one when a read on it fails.
func TestPipelinedConnAcceptedIsNotRefused(t *testing.T) {
	b := newFakeBus(t)
	got := b.serve(1, "")
	p, err := dialPipelined(b.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	if err := (<-p.hello.Done).Err; err != nil {
		t.Fatalf("Hello: %v", err)
	}
	_ = p.Close() // a read on it now fails
	if s := <-got; s.err != nil {
		t.Fatalf("the bus: %v", s.err)
	}
	d := &directReads{conn: p.Conn, piped: p}
	if d.refused(p.Conn) || d.slow {
		t.Error("an accepted connection was taken for a refused one")
	}
}

// What the bus may answer to the conversation: a DATA line asking for EXTERNAL's response,
// at most once, then OK and a GUID of 32 hex digits.
func TestAuthPipeReadsTheBusAnswer(t *testing.T) {
	const guid = "0123456789abcdef0123456789abcdef"
	for _, c := range []struct {
		in string
		ok bool
	}{
		{"DATA\r\nOK " + guid + "\r\n", true},
		{"OK " + guid + "\r\n", true},
		{"DATA 00\r\nOK " + guid + "\r\n", true},
		{"DATA\r\nDATA\r\nOK " + guid + "\r\n", false},
		{"OK \r\n", false},
		{"OK " + guid[:31] + "\r\n", false},
		{"OK " + strings.Repeat("z", 32) + "\r\n", false},
		{"OK " + guid + "\n", false},
		{"REJECTED EXTERNAL\r\n", false},
		{"ERROR\r\n", false},
		{"", false},
	} {
		p := &authPipe{r: bufio.NewReader(strings.NewReader(c.in))}
		if err := p.readOK(); (err == nil) != c.ok {
			t.Errorf("answer %q: %v, want accepted %v", c.in, err, c.ok)
		}
	}
}
