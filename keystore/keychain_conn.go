//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// wireReader is a connection of its own to the session bus on which directReads looks
// items up, speaking the few messages it needs itself (keychain_wire.go) and waiting on the
// bus as little as the protocol allows:
//
//   - The authentication is sd-bus's (libsystemd): EXTERNAL with no initial response, so
//     the bus takes the credentials of the socket itself (a uid written out would be
//     refused in a user namespace, where the bus sees another one), the empty DATA it then
//     asks for, and BEGIN. sd-bus then waits for the OK before its Hello; here Hello,
//     GetNameOwner of the Secret Service, OpenSession and the first SearchItems follow in
//     the same write. dbus-daemon (the
//     keychain tests run on it) and dbus-broker both take that, reading each command in
//     order; the specification has BEGIN follow the OK, so a bus that read it strictly
//     would refuse, and the caller then goes on through godbus's SessionBus.
//   - So the first lookup of a process waits for one round trip before it knows the item,
//     and one more for its secret (GetSecret needs the session's path). godbus's Connect
//     alone waits for five (AUTH to list the mechanisms, AUTH EXTERNAL, an empty DATA,
//     NEGOTIATE_UNIX_FD, BEGIN with Hello) and offers no option to shorten them.
//
// Only a unix socket address on Linux is dialled this way (on the BSDs libdbus expects
// credentials sent with the NUL byte); for anything else dialWire says errFastBus. Its
// calls are made one at a time (directReads holds its lock across one), each bounded by
// wireTimeout, and any message that is not the reply it waits for (NameAcquired, the
// Hello reply) is passed over.
type wireReader struct {
	c       *net.UnixConn
	r       *bufio.Reader
	serial  uint32
	started bool   // the conversation, Hello and OpenSession have been sent
	ok      bool   // the bus answered the authentication with OK
	name    string // the unique name, once Hello's reply went by
	owner   string // the unique name of the Secret Service, once GetNameOwner answered
	session string // the plain session's path, once opened
	broken  error  // once a call failed on the connection, every later one does
}

// wireTimeout bounds one lookup on the connection. The store's own deadline (within) is
// the one a caller sees; this one ends a read that nobody waits for any more.
const wireTimeout = 30 * time.Second

// errFastBus: the bus cannot be used by wireReader; godbus's own Connect may still reach it.
var errFastBus = errors.New("the session bus does not take a pipelined EXTERNAL authentication")

func dialWire(address string) (*wireReader, error) {
	path, ok := unixBusPath(address)
	if !ok || runtime.GOOS != "linux" || binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errFastBus // the replies it reads are the machine's order: little-endian only
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return &wireReader{c: c, r: bufio.NewReaderSize(c, 4096)}, nil
}

func (w *wireReader) Close() error { return w.c.Close() }

// accepted says whether the bus answered the authentication with OK.
func (w *wireReader) accepted() bool { return w.ok }

func (w *wireReader) next() uint32 { w.serial++; return w.serial }

// lookup is the secret of the first item of the "login" collection with these attributes,
// or found false. A Secret Service error (a locked item, no such collection) is a
// *wireError; the caller hands those to go-keyring.
//
// A reply counts only from the peer it is expected from: the bus itself for Hello and
// GetNameOwner, and for the Secret Service's calls the unique name that owns
// org.freedesktop.secrets, which GetNameOwner asks in the first write. The bus sets every
// message's sender, and a stock session bus lets any peer send a connection a reply it
// did not ask for, so a serial alone proves nothing.
func (w *wireReader) lookup(attrs [][2]string) (secret []byte, found bool, err error) {
	if w.broken != nil {
		return nil, false, w.broken
	}
	fatal := false // an error reply to Hello, GetNameOwner or OpenSession leaves the connection unusable too
	defer func() {
		var we *wireError
		if err != nil && (fatal || !errors.As(err, &we)) {
			w.broken = err
			_ = w.c.Close()
		}
	}()
	if err := w.c.SetDeadline(time.Now().Add(wireTimeout)); err != nil {
		return nil, false, err
	}
	var out []byte
	var hello, owner, open uint32
	if !w.started {
		out = append(out, "\x00AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n"...)
		hello, owner, open = w.next(), w.next(), w.next()
		out = appendCall(out, hello, busName, busPath, busName, "Hello", callBody{})
		out = appendCall(out, owner, busName, busPath, busName, "GetNameOwner", stringBody(secretsName))
		out = appendCall(out, open, secretsName, secretsPath, "org.freedesktop.Secret.Service", "OpenSession", openSessionBody())
		w.started = true
	}
	search := w.next()
	out = appendCall(out, search, secretsName, loginCollection, "org.freedesktop.Secret.Collection", "SearchItems", searchBody(attrs))
	if _, err := w.c.Write(out); err != nil {
		return nil, false, err
	}
	if !w.ok {
		if err := w.readOK(); err != nil {
			return nil, false, err
		}
		w.ok = true
	}
	var items []string
	var searchErr error
	for searched, opened := false, open == 0; !searched || !opened; {
		r, err := w.readReply()
		if err != nil {
			return nil, false, err
		}
		switch {
		case r.sender == busName && hello != 0 && r.replySerial == hello:
			if w.name, err = decodeString(r); err != nil {
				fatal = true
				return nil, false, fmt.Errorf("Hello: %w", err)
			}
		case r.sender == busName && owner != 0 && r.replySerial == owner:
			if w.owner, err = decodeString(r); err != nil || w.owner == "" {
				fatal = true // not running yet (D-Bus activation): go-keyring's read starts it
				return nil, false, fmt.Errorf("GetNameOwner(%s): %w", secretsName, err)
			}
		case w.owner == "" || r.sender != w.owner:
			// Not from the Secret Service: passed over.
		case open != 0 && r.replySerial == open:
			if w.session, err = decodeOpenSession(r); err != nil {
				fatal = true
				return nil, false, fmt.Errorf("OpenSession: %w", err)
			}
			opened = true
		case r.replySerial == search:
			// An error is held until OpenSession's reply is in too, so that a later lookup
			// has the session.
			if items, err = decodePaths(r); err != nil {
				searchErr = fmt.Errorf("SearchItems: %w", err)
			}
			searched = true
		}
	}
	if searchErr != nil {
		return nil, false, searchErr
	}
	if len(items) == 0 {
		return nil, false, nil
	}
	if w.session == "" {
		fatal = true
		return nil, false, fmt.Errorf("%w: no session", errWire)
	}
	get := w.next()
	out = appendCall(out[:0], get, secretsName, items[0], "org.freedesktop.Secret.Item", "GetSecret", pathBody(w.session))
	if _, err := w.c.Write(out); err != nil {
		return nil, false, err
	}
	for {
		r, err := w.readReply()
		if err != nil {
			return nil, false, err
		}
		if r.sender == w.owner && r.replySerial == get {
			v, err := decodeSecret(r)
			if err != nil {
				return nil, false, fmt.Errorf("GetSecret: %w", err)
			}
			return v, true, nil
		}
	}
}

const (
	busName = "org.freedesktop.DBus"
	busPath = "/org/freedesktop/DBus"
)

// readReply is the next method return or error; signals and calls to us are passed over
// unread, in either byte order and up to the specification's bound.
func (w *wireReader) readReply() (reply, error) {
	for {
		h, err := w.r.Peek(16)
		if err != nil {
			return reply{}, err
		}
		n, typ, err := headerLen(h)
		if err != nil {
			return reply{}, err
		}
		if typ != msgReturn && typ != msgError {
			if _, err := w.r.Discard(n); err != nil {
				return reply{}, err
			}
			continue
		}
		if _, err := wireLen(h); err != nil {
			return reply{}, err
		}
		m := make([]byte, n)
		if _, err := io.ReadFull(w.r, m); err != nil {
			return reply{}, err
		}
		return parseReply(m)
	}
}

// readOK reads the bus's answer to the conversation: a "DATA" line (the bus asking for
// EXTERNAL's response, which the empty DATA sent already gives), then "OK" and the bus's
// GUID, 32 hex digits. Anything else is errFastBus: a bus that said OK at once would take
// the DATA sent after it for an error, and godbus's conversation suits it better.
func (w *wireReader) readOK() error {
	for i := 0; ; i++ {
		line, err := w.r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return errFastBus
			}
			return err
		}
		text, ok := bytes.CutSuffix(line, []byte("\r\n"))
		if !ok {
			return errFastBus
		}
		if i == 0 {
			if !bytes.Equal(text, []byte("DATA")) && !bytes.HasPrefix(text, []byte("DATA ")) {
				return errFastBus
			}
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

// unixBusPath is the socket of the first address in a D-Bus address list when it is a
// unix path or an abstract one, written as Go's net package names it.
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
