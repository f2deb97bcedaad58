package clientconfig

import (
	"bytes"
	"fmt"
	"strings"
)

// A config file can name one setting twice and stay valid JSON. The Go clients (docker/cli,
// so crane, ko and cosign too; containers/image, so podman, skopeo and buildah) decode it
// into a struct with encoding/json, which matches a field's name without regard to case and
// keeps the last match; a map keeps the last copy of a key. The editor would change the first
// copy, and doctor would read it, while the clients go on reading the last one: configure
// would report success and Docker keep using the other helper. Such a file is refused, with
// where the copies are and how to make one of them.

// clientKeys are the top-level settings this program reads or writes, spelled as the
// clients declare them.
var clientKeys = []string{"auths", "credHelpers", "credsStore"}

// DuplicateKeyError is a config file that gives a setting the helper depends on more than
// once (or in another case than the clients' own spelling), so what the clients read is not
// what an edit would change.
type DuplicateKeyError struct {
	Key     string // the setting: "credHelpers", or a host inside credHelpers or auths
	Problem string // what is wrong, with line numbers
	Remedy  string // what to change in the file
}

func (e *DuplicateKeyError) Error() string { return e.Problem + ": " + e.Remedy }

// checkKeys refuses a document whose client settings are ambiguous: a top-level key in
// clientKeys given twice, or spelled in another case; or, inside credHelpers or auths, a key
// of a served host given twice. A legacy file (~/.dockercfg) is itself an auths map.
func checkKeys(doc []byte, top *object, hosts []string, legacy bool) error {
	if legacy {
		return checkInner(doc, top, hosts, "")
	}
	for _, k := range clientKeys {
		var copies []member
		for _, m := range top.members {
			if strings.EqualFold(m.key, k) {
				copies = append(copies, m)
			}
		}
		switch {
		case len(copies) > 1:
			return &DuplicateKeyError{Key: k,
				Problem: fmt.Sprintf("%q is given %d times (%s); Docker and podman read only the last, so an edit of another copy would not take effect",
					k, len(copies), where(doc, copies, k)),
				Remedy: fmt.Sprintf("merge them into one %q", k)}
		case len(copies) == 1 && copies[0].key != k:
			return &DuplicateKeyError{Key: k,
				Problem: fmt.Sprintf("%q (line %d) differs from %q only in case; Docker and podman read it as %q, tools that match names exactly do not",
					copies[0].key, lineOf(doc, copies[0].keyStart), k, k),
				Remedy: fmt.Sprintf("rename it %q", k)}
		case len(copies) == 1 && k != "credsStore" && isObject(copies[0].raw):
			inner, err := parseObject(doc, copies[0].valStart, copies[0].valEnd)
			if err != nil {
				return err
			}
			if err := checkInner(doc, inner, hosts, k); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkInner refuses a served host's key given twice in the credHelpers or auths object o
// (parent "credHelpers" or "auths"; "" for a legacy file, which is the auths map).
func checkInner(doc []byte, o *object, hosts []string, parent string) error {
	copies := map[string][]member{}
	var order []string
	for _, m := range o.members {
		h := m.key
		if parent != "credHelpers" {
			h, _ = authKeyHost(m.key)
		}
		if !served(hosts, h) {
			continue
		}
		if len(copies[m.key]) == 0 {
			order = append(order, m.key)
		}
		copies[m.key] = append(copies[m.key], m)
	}
	for _, k := range order {
		if c := copies[k]; len(c) > 1 {
			in := ""
			if parent != "" {
				in = fmt.Sprintf(" in %q", parent)
			}
			return &DuplicateKeyError{Key: k,
				Problem: fmt.Sprintf("%q is given %d times%s (%s); clients read only the last, so an edit of another copy would not take effect",
					k, len(c), in, where(doc, c, k)),
				Remedy: "keep one of them"}
		}
	}
	return nil
}

// where says where the copies are: "line 2 and line 9", with columns when copies share a
// line (a minified file), and each copy's spelling when it is not want's.
func where(doc []byte, copies []member, want string) string {
	lines := map[int]bool{}
	shared := false
	for _, m := range copies {
		l := lineOf(doc, m.keyStart)
		shared = shared || lines[l]
		lines[l] = true
	}
	var parts []string
	for _, m := range copies {
		l := lineOf(doc, m.keyStart)
		p := fmt.Sprintf("line %d", l)
		if shared {
			p += fmt.Sprintf(" column %d", m.keyStart-bytes.LastIndexByte(doc[:m.keyStart], '\n'))
		}
		if m.key != want {
			p += fmt.Sprintf(" as %q", m.key)
		}
		parts = append(parts, p)
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func lineOf(doc []byte, off int) int {
	return bytes.Count(doc[:off], []byte("\n")) + 1
}

// parseConfig parses a client config file and refuses one whose client settings are
// ambiguous (checkKeys).
func parseConfig(doc []byte, hosts []string, legacy bool) (*object, error) {
	top, err := parseDoc(doc)
	if err != nil {
		return nil, err
	}
	if err := checkKeys(doc, top, hosts, legacy); err != nil {
		return nil, err
	}
	return top, nil
}
