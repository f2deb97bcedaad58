//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"errors"
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
type directReads struct {
	goKeyring
	mu      sync.Mutex
	session dbus.ObjectPath // "" until opened
	opening *dbus.Call      // an OpenSession sent and not yet answered, or nil
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
	conn, err := dbus.SessionBus()
	if err != nil {
		return "", err
	}
	// OpenSession does not depend on the search, so both go out at once: the first read of
	// a process (a warm get makes one) waits for one round trip to the daemon, not two.
	d.startSession(conn)
	var items []dbus.ObjectPath
	err = conn.Object(secretsName, loginCollection).Call("org.freedesktop.Secret.Collection.SearchItems", 0,
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
	if d.session == "" && d.opening == nil {
		d.opening = conn.Object(secretsName, secretsPath).Go("org.freedesktop.Secret.Service.OpenSession", 0, nil,
			"plain", dbus.MakeVariant(""))
	}
}

// openSession is the plain session of this process, from the OpenSession that startSession
// sent or from one sent now. The lock is not held while the daemon answers, so that one
// slow answer does not hold up another read.
func (d *directReads) openSession(conn *dbus.Conn) (dbus.ObjectPath, error) {
	d.mu.Lock()
	if d.session != "" {
		defer d.mu.Unlock()
		return d.session, nil
	}
	call := d.opening
	d.opening = nil
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
	if d.session == "" {
		d.session = session
	}
	return d.session, nil
}
