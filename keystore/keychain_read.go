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
// Its connection is its own, dialled by dialPipelined (one round trip before the first
// answer instead of six); a bus that will not take that is reached through godbus's shared
// SessionBus, as go-keyring reaches it.
type directReads struct {
	goKeyring
	mu      sync.Mutex
	conn    *dbus.Conn      // nil until dialled, or after it closed
	piped   *pipedConn      // conn, when dialPipelined dialled it
	slow    bool            // a pipelined connection failed: use dbus.SessionBus
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
	conn, err := d.bus()
	if err != nil {
		return "", err
	}
	v, err := d.readOn(conn, service, user)
	if err != nil && d.refused(conn) {
		// The bus did not take the pipelined authentication: this read, and every later
		// one, on godbus's SessionBus.
		if conn, err = d.bus(); err != nil {
			return "", err
		}
		return d.readOn(conn, service, user)
	}
	return v, err
}

// refused says whether conn is a pipelined connection the bus did not authenticate, and
// if so closes it and turns d to godbus's SessionBus.
func (d *directReads) refused(conn *dbus.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.piped
	if p == nil || p.Conn != conn || p.accepted() {
		return false
	}
	_ = p.Close()
	d.slow, d.conn, d.piped, d.session, d.opening = true, nil, nil, "", nil
	return true
}

// bus is the connection reads go on: this process's pipelined one, dialled on first use
// and again if it closed (a session lives as long as its connection, so it goes too), or
// godbus's shared SessionBus once a pipelined one failed.
func (d *directReads) bus() (*dbus.Conn, error) {
	d.mu.Lock()
	if !d.slow {
		if d.conn != nil && d.conn.Connected() {
			defer d.mu.Unlock()
			return d.conn, nil
		}
		// Under d.mu: dialPipelined waits for no answer from the bus.
		d.conn, d.piped, d.session, d.opening = nil, nil, "", nil
		p, err := dialPipelined(os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
		if err == nil {
			defer d.mu.Unlock()
			d.conn, d.piped = p.Conn, p
			return p.Conn, nil
		}
		d.slow = true
	}
	d.mu.Unlock()
	conn, err := dbus.SessionBus() // a whole handshake: not under d.mu
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != conn {
		d.conn, d.piped, d.session, d.opening = conn, nil, "", nil
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
