//go:build linux || freebsd || openbsd || netbsd || dragonfly

package keystore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The D-Bus wire format of the few messages a direct read sends and receives (little-endian
// only), written by hand: godbus encodes and decodes through reflection, and on the VM of
// docs/BENCH.md its first use in a process (encoders, decoders, a reader goroutine, a
// goroutine per call) touched about 120 heap pages more than the rest of a `get`, each a
// trap costing microseconds there. A direct read needs five calls with fixed signatures:
// Hello, GetNameOwner ("s"), OpenSession ("sv", the variant a string), SearchItems
// ("a{ss}") and GetSecret ("o"), and the replies "s", "s", "vo", "ao" and "(oayays)".
// Tests hold both directions to godbus's own encoder and decoder.

const (
	msgCall   = 1
	msgReturn = 2
	msgError  = 3
	msgSignal = 4

	fieldPath        = 1
	fieldInterface   = 2
	fieldMember      = 3
	fieldErrorName   = 4
	fieldReplySerial = 5
	fieldDestination = 6
	fieldSender      = 7
	fieldSignature   = 8

	// maxWireMessage bounds what a reply may claim to be; the Secret Service's answers to
	// these calls are a few hundred bytes.
	maxWireMessage = 1 << 20
	// maxSkipped is the specification's bound on any message, for those passed over unread.
	maxSkipped = 128 << 20
)

var errWire = errors.New("malformed D-Bus message")

// wire builds a message in place, aligning as the format asks, relative to the message start.
type wire struct{ b []byte }

func (w *wire) pad(n int) {
	for len(w.b)%n != 0 {
		w.b = append(w.b, 0)
	}
}

func (w *wire) u32(v uint32) { w.pad(4); w.b = binary.LittleEndian.AppendUint32(w.b, v) }

func (w *wire) str(s string) { // s, o
	w.u32(uint32(len(s)))
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
}

func (w *wire) sig(s string) { // g
	w.b = append(w.b, byte(len(s)))
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
}

// field is one header field, a (yv) struct.
func (w *wire) field(code byte, sig, v string) {
	w.pad(8)
	w.b = append(w.b, code)
	w.sig(sig)
	if sig == "g" {
		w.sig(v)
	} else {
		w.str(v)
	}
}

// callBody is the body of one of the four calls, already encoded from an 8-aligned start.
type callBody struct {
	sig  string
	data []byte
}

// appendCall appends a method call to out. The body is encoded after the header, and the
// header is always a multiple of 8 bytes long, so the body's own alignment holds.
func appendCall(out []byte, serial uint32, dest, path, iface, member string, body callBody) []byte {
	w := wire{b: make([]byte, 0, 192+len(body.data))}
	w.b = append(w.b, 'l', msgCall, 0, 1)
	w.u32(uint32(len(body.data)))
	w.u32(serial)
	w.u32(0) // the header fields' length, set below
	start := len(w.b)
	w.field(fieldPath, "o", path)
	w.field(fieldInterface, "s", iface)
	w.field(fieldMember, "s", member)
	w.field(fieldDestination, "s", dest)
	if body.sig != "" {
		w.field(fieldSignature, "g", body.sig)
	}
	binary.LittleEndian.PutUint32(w.b[12:], uint32(len(w.b)-start))
	w.pad(8)
	w.b = append(w.b, body.data...)
	return append(out, w.b...)
}

func openSessionBody() callBody { // ("plain", <"">)
	w := wire{}
	w.str("plain")
	w.sig("s")
	w.str("")
	return callBody{"sv", w.b}
}

func searchBody(attrs [][2]string) callBody { // a{ss}
	w := wire{}
	w.u32(0)
	w.pad(8)
	start := len(w.b)
	for _, kv := range attrs {
		w.pad(8)
		w.str(kv[0])
		w.str(kv[1])
	}
	binary.LittleEndian.PutUint32(w.b[0:], uint32(len(w.b)-start))
	return callBody{"a{ss}", w.b}
}

func pathBody(p string) callBody { w := wire{}; w.str(p); return callBody{"o", w.b} }

func stringBody(s string) callBody { w := wire{}; w.str(s); return callBody{"s", w.b} }

// reply is a method return or error as read off the bus.
type reply struct {
	typ         byte
	replySerial uint32
	sig         string
	errName     string
	sender      string // set by the bus, which overwrites whatever a peer put there
	body        []byte // from an 8-aligned start
}

// headerLen is the whole length and the type of the message whose fixed 16-byte header is
// h, in either byte order, up to the specification's bound.
func headerLen(h []byte) (n int, typ byte, err error) {
	var order binary.ByteOrder
	switch {
	case len(h) < 16 || h[3] != 1:
		return 0, 0, fmt.Errorf("%w: not a D-Bus 1 message", errWire)
	case h[0] == 'l':
		order = binary.LittleEndian
	case h[0] == 'B':
		order = binary.BigEndian
	default:
		return 0, 0, fmt.Errorf("%w: byte order %q", errWire, h[0])
	}
	n = (16+int(order.Uint32(h[12:]))+7)&^7 + int(order.Uint32(h[4:]))
	if n > maxSkipped || n < 16 {
		return 0, 0, fmt.Errorf("%w: %d bytes", errWire, n)
	}
	return n, h[1], nil
}

// wireLen is the whole length of a reply whose fixed header is h: little-endian, as the
// bus and the Secret Service on this machine write (dialWire runs on little-endian
// machines only), and at most maxWireMessage.
func wireLen(h []byte) (int, error) {
	n, _, err := headerLen(h)
	if err != nil {
		return 0, err
	}
	if h[0] != 'l' || n > maxWireMessage {
		return 0, fmt.Errorf("%w: a reply of %d bytes in byte order %q", errWire, n, h[0])
	}
	return n, nil
}

// parseReply reads the fixed header and the header fields of a whole message m.
func parseReply(m []byte) (reply, error) {
	n, err := wireLen(m)
	if err != nil {
		return reply{}, err
	}
	if len(m) != n {
		return reply{}, errWire
	}
	r := reply{typ: m[1]}
	fieldsEnd := 16 + int(binary.LittleEndian.Uint32(m[12:]))
	d := dec{b: m[:fieldsEnd], off: 16}
	for d.off < fieldsEnd && d.err == nil {
		d.align(8)
		code := d.byte()
		sig := d.sig()
		var s string
		var u uint32
		switch sig {
		case "s", "o":
			s = d.str()
		case "g":
			s = d.sig()
		case "u":
			u = d.u32()
		default:
			return reply{}, fmt.Errorf("%w: header field %d of type %q", errWire, code, sig)
		}
		switch code {
		case fieldReplySerial:
			r.replySerial = u
		case fieldSignature:
			r.sig = s
		case fieldErrorName:
			r.errName = s
		case fieldSender:
			r.sender = s
		}
	}
	if d.err != nil || d.off != fieldsEnd {
		return reply{}, errWire
	}
	r.body = m[(fieldsEnd+7)&^7:]
	return r, nil
}

// dec reads values with the format's alignment, relative to the start of b; the first
// error sticks.
type dec struct {
	b   []byte
	off int
	err error
}

func (d *dec) need(n int) bool {
	if d.err == nil && (n < 0 || d.off+n > len(d.b)) {
		d.err = errWire
	}
	return d.err == nil
}

func (d *dec) align(n int) {
	p := (d.off + n - 1) &^ (n - 1)
	if d.need(p - d.off) {
		d.off = p
	}
}

func (d *dec) byte() byte {
	if !d.need(1) {
		return 0
	}
	d.off++
	return d.b[d.off-1]
}

func (d *dec) u32() uint32 {
	d.align(4)
	if !d.need(4) {
		return 0
	}
	d.off += 4
	return binary.LittleEndian.Uint32(d.b[d.off-4:])
}

func (d *dec) bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	d.off += n
	return d.b[d.off-n : d.off]
}

func (d *dec) str() string { // s, o
	n := d.u32()
	if n > maxWireMessage {
		d.err = errWire
		return ""
	}
	s := d.bytes(int(n))
	if d.byte() != 0 {
		d.err = errWire
	}
	return string(s)
}

// path is an object path, which must be well formed: it goes back to the bus as the path
// of a call, or as a session argument.
func (d *dec) path() string {
	p := d.str()
	if d.err == nil && !validObjectPath(p) {
		d.err = fmt.Errorf("%w: object path %q", errWire, p)
	}
	return p
}

// validObjectPath is the specification's rule: "/", or "/" and elements of [A-Za-z0-9_]
// separated by single slashes, with none at the end.
func validObjectPath(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '/':
			if p[i-1] == '/' {
				return false
			}
		case c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		default:
			return false
		}
	}
	return true
}

func (d *dec) sig() string { // g
	n := d.byte()
	s := d.bytes(int(n))
	if d.byte() != 0 {
		d.err = errWire
	}
	return string(s)
}

// done is d's error, or one if the body is not all read.
func (d *dec) done() error {
	if d.err == nil && d.off != len(d.b) {
		d.err = errWire
	}
	return d.err
}

// bodyOf checks that r is a return with signature sig, and decodes its body; an error
// reply becomes a *wireError.
func bodyOf(r reply, sig string) (*dec, error) {
	if r.typ == msgError {
		e := &wireError{name: r.errName}
		if r.sig == "s" {
			d := &dec{b: r.body}
			e.msg = d.str()
		}
		return nil, e
	}
	if r.typ != msgReturn || r.sig != sig {
		return nil, fmt.Errorf("%w: a reply of type %d and signature %q, want %q", errWire, r.typ, r.sig, sig)
	}
	return &dec{b: r.body}, nil
}

func decodeString(r reply) (string, error) { // s: Hello's unique name
	d, err := bodyOf(r, "s")
	if err != nil {
		return "", err
	}
	s := d.str()
	return s, d.done()
}

func decodeOpenSession(r reply) (string, error) { // vo: the output (a string for plain), the session
	d, err := bodyOf(r, "vo")
	if err != nil {
		return "", err
	}
	if d.sig() != "s" {
		return "", fmt.Errorf("%w: OpenSession's output is not a string", errWire)
	}
	d.str()
	p := d.path()
	return p, d.done()
}

func decodePaths(r reply) ([]string, error) { // ao
	d, err := bodyOf(r, "ao")
	if err != nil {
		return nil, err
	}
	n := int(d.u32())
	end := d.off + n
	if !d.need(n) {
		return nil, d.err
	}
	var out []string
	for d.off < end && d.err == nil {
		out = append(out, d.path())
	}
	if d.off != end {
		d.err = errWire
	}
	return out, d.done()
}

func decodeSecret(r reply) ([]byte, error) { // (oayays): the value is the second field
	d, err := bodyOf(r, "(oayays)")
	if err != nil {
		return nil, err
	}
	d.str()
	d.bytes(int(d.u32())) // parameters: none for plain
	v := d.bytes(int(d.u32()))
	d.str() // content type
	if err := d.done(); err != nil {
		return nil, err
	}
	return append([]byte(nil), v...), nil
}

// wireError is an error reply.
type wireError struct{ name, msg string }

func (e *wireError) Error() string { return e.name + ": " + e.msg }
