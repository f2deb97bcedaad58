//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
)

// dialPipelined connects to the session bus at address without waiting on it: the whole
// authentication ("\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n") goes out with the Hello call
// in one write, and the Hello reply is not waited for, so the first call made on the
// connection is answered after one round trip to the bus. godbus's own Connect spends five
// before its first call can leave (AUTH to list the mechanisms, AUTH EXTERNAL, an empty
// DATA, NEGOTIATE_UNIX_FD, BEGIN with a waited-for Hello) and offers no option to shorten
// them.
//
// The authentication is sd-bus's (libsystemd): EXTERNAL with no initial response, so the
// bus takes the credentials of the socket itself (a uid written out would be refused in a
// user namespace, where the bus sees another one), the empty DATA it then asks for, and
// BEGIN, all in one write. sd-bus then waits for the OK before its Hello; here Hello and
// the first calls follow at once. dbus-daemon (the keychain tests run on it) and
// dbus-broker both take that, reading each command in order; the specification has BEGIN
// follow the OK, so a bus that read it strictly would refuse, and the fallback below would
// apply.
//
// Written by hand because godbus cannot be told to pipeline, and no other Go D-Bus client
// is kept up: godbus runs its usual conversation against authPipe, which answers it
// locally and sends the real one once godbus says BEGIN. Only a unix socket address on
// Linux is dialled this way (on the BSDs libdbus expects credentials sent with the NUL
// byte); for anything else it says errFastBus. A bus that refuses fails the first calls
// (with errFastBus, or with the write or read error of a bus that hung up first), and
// accepted then says false: the caller goes on through godbus's SessionBus.
func dialPipelined(address string) (*pipedConn, error) {
	path, ok := unixBusPath(address)
	if !ok || runtime.GOOS != "linux" {
		return nil, errFastBus
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	p := &authPipe{c: c, r: bufio.NewReader(c)}
	conn, err := dbus.NewConn(p)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	// godbus's conversation goes to authPipe alone, which ignores what EXTERNAL would send.
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal("")}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	// The bus answers Hello before anything sent after it; a bus that refuses it closes
	// the connection, and the caller's first call fails.
	return &pipedConn{Conn: conn, hello: conn.BusObject().Go("org.freedesktop.DBus.Hello", 0, nil), pipe: p}, nil
}

// pipedConn is a connection dialPipelined made.
type pipedConn struct {
	*dbus.Conn
	hello *dbus.Call // the Hello call, whose answer (the unique name) nobody waits for
	pipe  *authPipe
}

// accepted says whether the bus answered the authentication with OK.
func (c *pipedConn) accepted() bool { return c.pipe.ok.Load() }

// errFastBus: the bus could not be reached by dialPipelined; godbus's own Connect may still
// reach it.
var errFastBus = errors.New("the session bus does not take a pipelined EXTERNAL authentication")

// unixBusPath is the socket of the first address in a D-Bus address list when it is a
// unix path or (on Linux) an abstract one, written as Go's net package names it.
func unixBusPath(address string) (string, bool) {
	first, _, _ := strings.Cut(address, ";")
	rest, ok := strings.CutPrefix(first, "unix:")
	if !ok {
		return "", false
	}
	var path, abstract string
	seen := map[string]bool{}
	for kv := range strings.SplitSeq(rest, ",") {
		k, v, _ := strings.Cut(kv, "=")
		u, err := dbus.UnescapeBusAddressValue(v)
		if err != nil || seen[k] {
			return "", false // a key twice: godbus and libdbus take the first; leave it to them
		}
		seen[k] = true
		switch k {
		case "path":
			path = u
		case "abstract":
			abstract = u
		case "guid":
		default: // dir=, tmpdir=, runtime=: addresses a server listens on, not one to dial
			return "", false
		}
	}
	switch {
	case path != "" && abstract == "":
		return path, true
	case abstract != "" && path == "":
		return "@" + abstract, true
	}
	return "", false
}

// authPipe stands between godbus and the socket. Until godbus writes BEGIN it answers
// godbus's authentication itself (REJECTED EXTERNAL to the mechanism list, OK to AUTH
// EXTERNAL); at BEGIN it queues the real conversation, which leaves with godbus's next
// write (Hello). On the way in, the bus's answer to that conversation (a DATA line asking
// for the empty response, then "OK <guid>") is read and checked before the first message
// is passed on: any other answer closes the connection with errFastBus, so every call
// waiting on it fails rather than hangs.
type authPipe struct {
	c *net.UnixConn
	r *bufio.Reader

	mu      sync.Mutex
	state   int          // authNul … authDone
	local   bytes.Buffer // answers to godbus not yet read by it
	pending []byte       // the real conversation, until the first write after BEGIN
	ok      atomic.Bool  // the bus's OK has been read
}

const (
	authNul   = iota // the NUL byte comes first
	authList         // "AUTH": which mechanisms?
	authMech         // "AUTH EXTERNAL"
	authBegin        // "BEGIN"
	authDone         // messages
)

// localGUID stands for the bus's GUID in the OK godbus reads. godbus keeps it only to
// answer Peer.GetMachineId calls made to objects it exports, and directReads exports none.
const localGUID = "00000000000000000000000000000000"

func (p *authPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	if p.state == authDone {
		out := b
		if p.pending == nil {
			p.mu.Unlock() // a write that blocks must not hold up the reader
		} else {
			// The first write keeps p.mu, so that nothing goes ahead of the conversation;
			// the bus has nothing to send before it reads it.
			defer p.mu.Unlock()
			out = append(p.pending, b...)
			p.pending = nil
		}
		if _, err := p.c.Write(out); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	defer p.mu.Unlock()
	line := string(b)
	switch {
	case p.state == authNul && line == "\x00":
		p.state = authList
	case p.state == authList && line == "AUTH\r\n":
		p.local.WriteString("REJECTED EXTERNAL\r\n")
		p.state = authMech
	case p.state == authMech && line == "AUTH EXTERNAL\r\n":
		p.local.WriteString("OK " + localGUID + "\r\n")
		p.state = authBegin
	case p.state == authBegin && line == "BEGIN\r\n":
		p.pending = []byte("\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n")
		p.state = authDone
	default:
		return 0, errFastBus
	}
	return len(b), nil
}

func (p *authPipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	if p.state != authDone {
		defer p.mu.Unlock()
		if p.local.Len() == 0 {
			return 0, errFastBus // godbus waits for an answer it was not given
		}
		return p.local.Read(b)
	}
	p.mu.Unlock()
	if !p.ok.Load() { // only godbus's reading goroutine reads, so no other sets it meanwhile
		if err := p.readOK(); err != nil {
			return 0, err
		}
		p.ok.Store(true)
	}
	return p.r.Read(b)
}

// readOK reads the bus's answer to the conversation: an optional "DATA" line (the bus
// asking for EXTERNAL's response, which the empty DATA sent already gives), then "OK"
// and the bus's GUID, 32 hex digits.
func (p *authPipe) readOK() error {
	for i := 0; ; i++ {
		line, err := p.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		text, ok := bytes.CutSuffix(line, []byte("\r\n"))
		if !ok {
			return errFastBus
		}
		if i == 0 && (bytes.Equal(text, []byte("DATA")) || bytes.HasPrefix(text, []byte("DATA "))) {
			continue
		}
		guid, ok := bytes.CutPrefix(text, []byte("OK "))
		if !ok || len(guid) != 32 {
			return errFastBus
		}
		if _, err := hex.Decode(make([]byte, 16), guid); err != nil {
			return errFastBus
		}
		return nil
	}
}

func (p *authPipe) Close() error { return p.c.Close() }
