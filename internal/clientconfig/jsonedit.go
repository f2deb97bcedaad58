package clientconfig

// An order-preserving editor for JSON objects.
//
// Hand-written because no well-kept library edits a Docker-format config file without
// rewriting it: docker/cli's configfile.Save marshals its ConfigFile struct, which drops
// every key the struct does not know (plugin settings, "currentContext" of newer or older
// CLIs, anything a tool added) and re-sorts the rest into struct order; containers/image's
// writer re-marshals "auths" and sorts the top level. Users keep these files under version
// control and diff them, so an edit here splices bytes: a member is inserted, replaced or
// cut where it stands, and everything else keeps its bytes, order and indentation. That is
// also what makes `configure --remove` after `configure` give back the original file.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// member is one "key": value pair of an object; offsets index the document's bytes.
type member struct {
	key              string
	keyStart, keyEnd int // the quoted key
	valStart, valEnd int // the raw value
	raw              json.RawMessage
}

// object is a parsed JSON object inside a document.
type object struct {
	open, close int // offsets of '{' and '}'
	members     []member
}

// SyntaxError is a config file that is not valid JSON (or not a JSON object).
type SyntaxError struct {
	Line, Column int // 1-based; 0 when unknown
	Msg          string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("invalid JSON at line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

func syntaxError(doc []byte, off int64, msg string) *SyntaxError {
	if off < 0 || off > int64(len(doc)) {
		return &SyntaxError{Msg: msg}
	}
	before := doc[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	if col < 1 {
		col = 1
	}
	return &SyntaxError{Line: line, Column: col, Msg: msg}
}

// parseObject parses the object whose '{' is the first non-space byte of doc[start:end].
func parseObject(doc []byte, start, end int) (*object, error) {
	sub := doc[start:end]
	dec := json.NewDecoder(bytes.NewReader(sub))
	tok, err := dec.Token()
	if err != nil {
		return nil, decodeErr(doc, start, dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, syntaxError(doc, int64(start)+dec.InputOffset(), "expected a JSON object")
	}
	o := &object{open: start + int(dec.InputOffset()) - 1}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, decodeErr(doc, start, dec, err)
		}
		key, _ := tok.(string)
		m := member{key: key, keyEnd: start + int(dec.InputOffset())}
		m.keyStart = lastQuoteStart(doc, m.keyEnd)
		if err := dec.Decode(&m.raw); err != nil {
			return nil, decodeErr(doc, start, dec, err)
		}
		m.valEnd = start + int(dec.InputOffset())
		m.valStart = m.valEnd - len(m.raw)
		o.members = append(o.members, m)
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, decodeErr(doc, start, dec, err)
	}
	o.close = start + int(dec.InputOffset()) - 1
	return o, nil
}

// lastQuoteStart finds the opening quote of the JSON string that ends just before end.
func lastQuoteStart(doc []byte, end int) int {
	for i := end - 2; i >= 0; i-- {
		if doc[i] != '"' {
			continue
		}
		bs := 0
		for j := i - 1; j >= 0 && doc[j] == '\\'; j-- {
			bs++
		}
		if bs%2 == 0 {
			return i
		}
	}
	return 0
}

func decodeErr(doc []byte, start int, dec *json.Decoder, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return syntaxError(doc, int64(start)+se.Offset, se.Error())
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return syntaxError(doc, int64(len(doc)), "unexpected end of file")
	}
	return syntaxError(doc, int64(start)+dec.InputOffset(), err.Error())
}

// parseDoc parses a whole file: one object and nothing but whitespace after it.
func parseDoc(doc []byte) (*object, error) {
	o, err := parseObject(doc, 0, len(doc))
	if err != nil {
		// The streaming decoder's offsets can point before the culprit; the whole-document
		// decoder reports the exact byte.
		var v any
		var se *json.SyntaxError
		if uerr := json.Unmarshal(doc, &v); errors.As(uerr, &se) {
			return nil, syntaxError(doc, se.Offset, se.Error())
		}
		return nil, err
	}
	if rest := bytes.TrimSpace(doc[o.close+1:]); len(rest) > 0 {
		return nil, syntaxError(doc, int64(o.close+1+bytes.Index(doc[o.close+1:], rest[:1])), "unexpected data after the top-level object")
	}
	return o, nil
}

func (o *object) find(key string) (int, bool) {
	for i, m := range o.members {
		if m.key == key {
			return i, true
		}
	}
	return -1, false
}

// layout is how members of an object are written: the indentation of a member's line
// (nil: everything on one line) and the bytes between a key and its value.
type layout struct {
	indent []byte
	sep    []byte
}

// layoutOf learns the layout from the object's first member; an empty object takes the
// layout of its parent one level deeper (parentIndent plus unit).
func (o *object) layoutOf(doc []byte, parent *layout, unit []byte) layout {
	if len(o.members) > 0 {
		m := o.members[0]
		gap := doc[o.open+1 : m.keyStart]
		l := layout{sep: doc[m.keyEnd:m.valStart]}
		if nl := bytes.LastIndexByte(gap, '\n'); nl >= 0 {
			l.indent = gap[nl+1:]
		}
		return l
	}
	if parent == nil {
		return layout{indent: unit, sep: []byte(": ")}
	}
	if parent.indent == nil {
		return layout{sep: parent.sep}
	}
	return layout{indent: append(append([]byte{}, parent.indent...), unit...), sep: parent.sep}
}

// indentUnit guesses one level of indentation from the top-level object ("\t" by default,
// as Docker writes it).
func indentUnit(doc []byte, top *object) []byte {
	if len(top.members) > 0 {
		gap := doc[top.open+1 : top.members[0].keyStart]
		if nl := bytes.LastIndexByte(gap, '\n'); nl >= 0 && nl+1 < len(gap) {
			return gap[nl+1:]
		}
	}
	return []byte("\t")
}

// closingIndent is the leading whitespace of the line holding the object's '}', which is
// where a '}' moved to its own line belongs.
func closingIndent(doc []byte, o *object) []byte {
	start := bytes.LastIndexByte(doc[:o.close], '\n') + 1
	end := start
	for end < o.close && (doc[end] == ' ' || doc[end] == '\t') {
		end++
	}
	return doc[start:end]
}

func splice(doc []byte, from, to int, with []byte) []byte {
	out := make([]byte, 0, len(doc)-(to-from)+len(with))
	out = append(out, doc[:from]...)
	out = append(out, with...)
	return append(out, doc[to:]...)
}

func quote(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// setMember sets key to raw in object o of doc: replaces the value in place when the key
// exists, else appends the member after the last one in the object's own layout.
func setMember(doc []byte, o *object, l layout, key string, raw []byte) []byte {
	if i, ok := o.find(key); ok {
		m := o.members[i]
		return splice(doc, m.valStart, m.valEnd, raw)
	}
	entry := append(append(quote(key), l.sep...), raw...)
	if len(o.members) == 0 {
		var in []byte
		if l.indent != nil {
			in = append(append([]byte("\n"), l.indent...), entry...)
			in = append(append(in, '\n'), closingIndent(doc, o)...)
		} else {
			in = entry
		}
		return splice(doc, o.open+1, o.close, in)
	}
	n := len(o.members)
	last := o.members[n-1]
	var in []byte
	switch {
	case n >= 2: // repeat the separator the file already uses between members
		in = append(in, doc[o.members[n-2].valEnd:last.keyStart]...)
	case l.indent != nil:
		in = append([]byte(",\n"), l.indent...)
	default:
		in = append([]byte(","), doc[o.open+1:last.keyStart]...)
	}
	in = append(in, entry...)
	return splice(doc, last.valEnd, last.valEnd, in)
}

// deleteMember cuts member i out of o together with one neighbouring comma, so deleting
// what setMember appended gives back the original bytes.
func deleteMember(doc []byte, o *object, i int) []byte {
	switch {
	case len(o.members) == 1:
		return splice(doc, o.open+1, o.close, nil)
	case i > 0:
		return splice(doc, o.members[i-1].valEnd, o.members[i].valEnd, nil)
	default:
		return splice(doc, o.members[0].keyStart, o.members[1].keyStart, nil)
	}
}

// isBlank reports a file with nothing but whitespace, which Docker reads as an empty config.
func isBlank(doc []byte) bool { return strings.TrimSpace(string(doc)) == "" }
