//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"errors"
	"os"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/zalando/go-keyring"
)

// directReads reads items straight from the Secret Service and leaves every write (and any
// read it cannot answer plainly) to go-keyring.
//
// Written by hand because go-keyring's Get costs seven D-Bus round trips per item (the
// Collections property, Service.Unlock of the collection, SearchItems, OpenSession,
// Service.Unlock of the item, GetSecret, Session.Close) and three for an absent one, and a
// `get` reads two items on every docker pull. Here a read is Collection.SearchItems and
// Item.GetSecret on a plain session opened once per process (the daemon closes it when the
// process's connection goes), and an absent item is one SearchItems (on a process's first
// read its OpenSession goes out alongside, and the wait is still one round trip). It looks
// where go-keyring writes (the "login" collection, with the attributes service and username), and
// whatever it cannot read plainly goes to go-keyring's Get: a locked item (whose Unlock
// prompts, bounded by the caller's deadline as before), a Secret Service without a "login"
// collection (go-keyring then uses the default alias), any failure.
//
// Its connection is its own, a wireReader (one round trip before it knows the item instead
// of six, and no godbus on the way); a bus that will not take that is reached through
// godbus's shared SessionBus, as go-keyring reaches it.
type directReads struct {
	goKeyring
	mu      sync.Mutex
	wire    *wireReader     // nil until dialled, or after it failed
	slow    bool            // a wireReader was refused: read on dbus.SessionBus
	conn    *dbus.Conn      // SessionBus, once slow
	session dbus.ObjectPath // "" until opened on conn
	opening *dbus.Call      // an OpenSession sent on conn and not yet answered, or nil
}

func newKeyringAPI() keyringAPI { return &directReads{} }

// ssSecret is the Secret Service's Secret struct, (oayays).
type ssSecret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

func (d *directReads) Get(service, user string) (string, error) {
	v, err := d.read(service, user)
	if err == nil || errors.Is(err, keyring.ErrNotFound) {
		return v, err
	}
	return d.goKeyring.Get(service, user)
}

func (d *directReads) read(service, user string) (string, error) {
	if v, done, err := d.readWire(service, user); done {
		return v, err
	}
	conn, err := d.bus()
	if err != nil {
		return "", err
	}
	return d.readOn(conn, service, user)
}

// readWire reads on this process's wireReader, dialled on first use and again after one
// failed; done is false when the bus refused it (from then on every read goes to
// SessionBus) or none can be dialled.
func (d *directReads) readWire(service, user string) (v string, done bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.slow {
		return "", false, nil
	}
	if d.wire == nil || d.wire.broken != nil {
		w, err := dialWire(os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
		if err != nil {
			d.slow = true
			return "", false, nil
		}
		d.wire = w
	}
	secret, found, err := d.wire.lookup([][2]string{{"service", service}, {"username", user}})
	switch {
	case err != nil && !d.wire.accepted():
		d.slow, d.wire = true, nil // the bus did not take the pipelined authentication
		return "", false, nil
	case err != nil:
		return "", true, err
	case !found:
		return "", true, keyring.ErrNotFound
	}
	return string(secret), true, nil
}

// bus is godbus's shared SessionBus, on which reads go once a wireReader was refused. A
// session lives as long as its connection, so a new connection starts without one.
func (d *directReads) bus() (*dbus.Conn, error) {
	conn, err := dbus.SessionBus() // a whole handshake: not under d.mu
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != conn {
		d.conn, d.session, d.opening = conn, "", nil
	}
	return conn, nil
}

func (d *directReads) readOn(conn *dbus.Conn, service, user string) (string, error) {
	// OpenSession does not depend on the search, so both go out at once: the first read of
	// a process (a warm get makes one) waits for one round trip to the daemon, not two.
	d.startSession(conn)
	var items []dbus.ObjectPath
	err := conn.Object(secretsName, loginCollection).Call("org.freedesktop.Secret.Collection.SearchItems", 0,
		map[string]string{"service": service, "username": user}).Store(&items)
	if err != nil {
		return "", err
	}
	if len(items) == 0 {
		return "", keyring.ErrNotFound
	}
	session, err := d.openSession(conn)
	if err != nil {
		return "", err
	}
	var s ssSecret
	if err := conn.Object(secretsName, items[0]).Call("org.freedesktop.Secret.Item.GetSecret", 0, session).Store(&s); err != nil {
		return "", err
	}
	return string(s.Value), nil
}

// startSession sends OpenSession unless a session is open or being opened.
func (d *directReads) startSession(conn *dbus.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == conn && d.session == "" && d.opening == nil {
		d.opening = conn.Object(secretsName, secretsPath).Go("org.freedesktop.Secret.Service.OpenSession", 0, nil,
			"plain", dbus.MakeVariant(""))
	}
}

// openSession is the plain session of this process, from the OpenSession that startSession
// sent or from one sent now. The lock is not held while the daemon answers, so that one
// slow answer does not hold up another read.
func (d *directReads) openSession(conn *dbus.Conn) (dbus.ObjectPath, error) {
	d.mu.Lock()
	var call *dbus.Call
	if d.conn == conn {
		if d.session != "" {
			defer d.mu.Unlock()
			return d.session, nil
		}
		call, d.opening = d.opening, nil
	}
	d.mu.Unlock()
	if call == nil {
		call = conn.Object(secretsName, secretsPath).Call("org.freedesktop.Secret.Service.OpenSession", 0,
			"plain", dbus.MakeVariant(""))
	} else {
		<-call.Done
	}
	var out dbus.Variant
	var session dbus.ObjectPath
	if err := call.Store(&out, &session); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != conn {
		return session, nil // conn closed meanwhile; the read on it fails or has its answer
	}
	if d.session == "" {
		d.session = session
	}
	return d.session, nil
}
