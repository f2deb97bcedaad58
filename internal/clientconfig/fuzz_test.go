package clientconfig

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzConfigure edits an arbitrary config.json as `configure` (or `configure --remove`, with
// or without --fix-shadowing) does, and holds it to its promises:
//   - a file that is not one JSON object is left byte for byte as it was and reported failed;
//   - a valid file stays valid JSON, keeps every other key, gets exactly the served hosts'
//     credHelpers entries changed, loses auths entries only with FixShadowing;
//   - a second run changes nothing;
//   - a file whose settings the clients read differently from the first copy (a key given
//     twice, or in another case) is refused, left as it was, and Inspect fails it.
//
// Inspect (doctor's reading of the same file) must not panic on it either.
func FuzzConfigure(f *testing.F) {
	f.Add([]byte(`{"auths":{"cgr.dev":{"auth":"dTpw"},"ghcr.io":{}},"credHelpers":{"gcr.io":"gcloud"},"credsStore":"desktop"}`), false, true)
	f.Add([]byte("{\n\t\"credHelpers\": {\n\t\t\"cgr.dev\": \"cgr\"\n\t}\n}\n"), true, false)
	f.Add([]byte(`{"a":1,"a":2}`), false, false)
	f.Add([]byte(""), false, false)
	f.Add([]byte(`[]`), false, false)
	hosts := []string{"cgr.dev", "127.0.0.1:5000"}
	// One directory per fuzzing process: inputs run one after another in a process.
	dir := f.TempDir()
	a := Account{Name: "fuzz", UID: -1, GID: -1, Home: dir, GOOS: "linux",
		Getenv: func(k string) string {
			if k == "DOCKER_CONFIG" {
				return filepath.Join(dir, ".docker")
			}
			return ""
		}}
	path := DockerConfig(a)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, doc []byte, remove, fix bool) {
		if err := os.WriteFile(path, doc, 0o600); err != nil {
			t.Fatal(err)
		}
		wiring := Inspect(a, hosts, []Client{Docker})
		o := Options{Hosts: hosts, Clients: []Client{Docker}, Remove: remove, FixShadowing: fix}
		changes := Configure(a, o)
		if len(changes) != 1 {
			t.Fatalf("%d changes for one file", len(changes))
		}
		c := changes[0]
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		blank := len(bytes.TrimSpace(doc)) == 0
		var before map[string]json.RawMessage
		validObject := json.Unmarshal(doc, &before) == nil && before != nil
		switch {
		case !blank && !validObject:
			if !bytes.Equal(after, doc) {
				t.Fatalf("a file that is not a JSON object was rewritten (%s):\n%q\n->\n%q", c.Action, doc, after)
			}
			if c.Action != Failed {
				// Valid JSON that is not an object (null) may be refused or not, but never written.
				if string(bytes.TrimSpace(doc)) != "null" {
					t.Fatalf("action %s on a file that is not a JSON object: %q", c.Action, doc)
				}
			}
			return
		case clientsDisagree(doc, hosts):
			if c.Action != Failed || !bytes.Equal(after, doc) {
				t.Fatalf("configure %s a file whose settings the clients read from another copy:\n%q\n->\n%q", c.Action, doc, after)
			}
			if line := c.Line(); strings.Contains(line, "\n") || !strings.Contains(line, "left untouched") {
				t.Fatalf("refusal is not one line saying the file is untouched: %q", line)
			}
			if fs := wiring[0].Findings; len(fs) == 0 || fs[0].Level != Fail || !strings.Contains(fs[0].Saw, "read") {
				t.Fatalf("Inspect does not fail a file the clients read from another copy: %+v\n%q", fs, doc)
			}
			return
		case c.Action == Failed:
			if !bytes.Equal(after, doc) {
				t.Fatalf("a failed edit wrote the file: %s", c.Error)
			}
			if !blank && !strings.Contains(c.Error, "is not an object") {
				// A valid object can only be refused for a credHelpers/auths of the wrong type.
				t.Fatalf("valid JSON object refused: %s\n%q", c.Error, doc)
			}
			return
		case blank && remove:
			if c.Action != Unchanged || !bytes.Equal(after, doc) {
				t.Fatalf("--remove on a blank file: %s", c.Action)
			}
			return
		}
		var got map[string]json.RawMessage
		if err := json.Unmarshal(after, &got); err != nil || got == nil {
			t.Fatalf("configure produced invalid JSON (%v) from\n%q\n->\n%q", err, doc, after)
		}
		if before == nil {
			before = map[string]json.RawMessage{}
		}
		for k, v := range before {
			if k == "credHelpers" || (k == "auths" && fix) {
				continue
			}
			if k == "credsStore" && fix && c.DroppedStore != "" {
				// --fix-shadowing deletes a credsStore no installed helper answers (this
				// account's PATH is empty), and says so.
				if _, still := got[k]; still {
					t.Fatalf("credsStore reported deleted, still there:\n%q", after)
				}
				continue
			}
			if !jsonEqual(v, got[k]) {
				t.Fatalf("key %q changed: %s -> %s\n%q\n->\n%q", k, v, got[k], doc, after)
			}
		}
		for k := range got {
			if _, ok := before[k]; !ok && k != "credHelpers" {
				t.Fatalf("key %q appeared", k)
			}
		}
		var hb, ha map[string]json.RawMessage
		json.Unmarshal(before["credHelpers"], &hb)
		json.Unmarshal(got["credHelpers"], &ha)
		for k, v := range hb {
			if served(hosts, k) {
				continue
			}
			if !jsonEqual(v, ha[k]) {
				t.Fatalf("credHelpers[%q] of a host we do not serve changed: %s -> %s", k, v, ha[k])
			}
		}
		for _, h := range hosts {
			var v string
			json.Unmarshal(ha[h], &v)
			if !remove && v != Helper {
				t.Fatalf("credHelpers[%q] = %s after configure\n%q\n->\n%q", h, ha[h], doc, after)
			}
			if remove && v == Helper {
				t.Fatalf("credHelpers[%q] still names us after --remove\n%q\n->\n%q", h, doc, after)
			}
		}
		if again := Configure(a, o); again[0].Action != Unchanged {
			t.Fatalf("second run: %s (%s)\n%q", again[0].Action, again[0].Error, after)
		}
	})
}

// clientsDisagree reports whether doc (a JSON object) gives a setting configure edits in a
// way the Go clients read differently from the first copy: encoding/json matches a struct
// field ("auths", "credHelpers", "credsStore") in any case and keeps the last match, and a
// map keeps the last copy of a key. Only served hosts' keys inside credHelpers and auths
// matter. Written apart from the package's check, as the fuzz target's oracle.
func clientsDisagree(doc []byte, hosts []string) bool {
	top, ok := members(doc)
	if !ok {
		return false
	}
	for _, name := range []string{"auths", "credHelpers", "credsStore"} {
		var found []kv
		for _, m := range top {
			if strings.EqualFold(m.key, name) {
				found = append(found, m)
			}
		}
		if len(found) > 1 || len(found) == 1 && found[0].key != name {
			return true
		}
		if len(found) == 0 || name == "credsStore" {
			continue
		}
		inner, ok := members(found[0].val)
		if !ok {
			continue
		}
		seen := map[string]bool{}
		for _, m := range inner {
			h := m.key
			if name == "auths" {
				h, _ = authKeyHost(h)
			}
			if served(hosts, h) && seen[m.key] {
				return true
			}
			seen[m.key] = true
		}
	}
	return false
}

type kv struct {
	key string
	val json.RawMessage
}

// members lists an object's members in order, duplicates included; false when raw is not
// an object.
func members(raw []byte) ([]kv, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []kv
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		var m kv
		m.key, _ = tok.(string)
		if err := dec.Decode(&m.val); err != nil {
			return nil, false
		}
		out = append(out, m)
	}
	return out, true
}

func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// FuzzSecurePath reads a sudoers file (one without include directives, which would make
// the fuzzer read the machine's files) without a panic; a secure_path it finds is one value.
func FuzzSecurePath(f *testing.F) {
	f.Add("Defaults\tsecure_path=\"/usr/local/sbin:/usr/bin\"\n")
	f.Add("Defaults env_reset, secure_path=/a:/b \\\n  , mail_badpass\n# comment\n")
	path := filepath.Join(f.TempDir(), "sudoers")
	f.Fuzz(func(t *testing.T, sudoers string) {
		if strings.Contains(sudoers, "includedir") {
			t.Skip("include directives read other files")
		}
		if err := os.WriteFile(path, []byte(sudoers), 0o600); err != nil {
			t.Fatal(err)
		}
		p, known := SecurePath(path)
		if known && strings.ContainsAny(p, "\n") {
			t.Fatalf("secure_path %q spans lines", p)
		}
		if !known && p != DefaultSecurePath {
			t.Fatalf("unknown secure_path but %q", p)
		}
	})
}
