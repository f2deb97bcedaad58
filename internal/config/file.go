package config

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// config.yaml is read by a parser of its own, not a YAML library, for two reasons: every
// `get` is a process, and go.yaml.in/yaml/v3's package init alone cost 0.18 ms and 25 KB of
// every pull (a fifth of all init, docs/BENCH.md); and the file is a flat list of settings,
// so a strict reader of exactly that subset of YAML says more precisely what is wrong than a
// general decoder ("cannot unmarshal !!str into map[string]yaml.Node"). What it reads:
//
//	# a comment
//	key: value            plain, 'single' or "double" quoted (\" \\ \n \t \uXXXX)
//	registry: [a, b]      a list (registry only), in flow style
//	registry:             or block style
//	  - a
//	  - b
//
// Anything else (nesting, anchors, block scalars, tabs for indentation, a key twice) is an
// error that names the line.

// fileKeys are the keys of config.yaml, one spelling each.
var fileKeys = []string{"registry", "issuer", "api", "audience", "store", "store_dir", "identity", "identity_token", "browser", "auto_login"}

// fileValue is one setting of the file, with the line it came from.
type fileValue struct {
	value string
	line  int
}

// File is what config.yaml set: key → value (a list is joined with commas).
type File map[string]fileValue

func (f File) get(key string) (string, int) { v := f[key]; return v.value, v.line }

// parseFile reads config.yaml. An unknown or misspelt key is an error that names the right
// spelling, not silence: a misspelt setting would otherwise be ignored without a word.
func parseFile(b []byte) (File, error) {
	if !utf8.Valid(b) {
		return nil, fmt.Errorf("not UTF-8 text")
	}
	f := File{}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		raw := lines[i]
		line := strings.TrimRight(stripComment(raw), " \t")
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || (trimmed == "---" && len(f) == 0) || (trimmed == "..." && i == len(lines)-1):
			continue
		case strings.HasPrefix(raw, " ") || strings.HasPrefix(raw, "\t"):
			return nil, fmt.Errorf("line %d: unexpected indentation; write one `key: value` setting per line", n)
		case strings.HasPrefix(trimmed, "- "), trimmed == "-":
			return nil, fmt.Errorf("line %d: a list item outside a setting; config.yaml is `key: value` lines, a list only under registry:", n)
		}
		key, rest, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(key, "{}[]&*!|>'\"%@`") {
			return nil, fmt.Errorf("line %d: not a `key: value` setting", n)
		}
		key = strings.TrimSpace(key)
		if err := knownKey(key); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if prev, dup := f[key]; dup {
			return nil, fmt.Errorf("line %d: %s is set twice (also on line %d); keep one", n, key, prev.line)
		}
		rest = strings.TrimSpace(rest)
		var val string
		var err error
		switch {
		case rest == "" && key == "registry":
			// A block list: the indented "- item" lines that follow.
			var items []string
			for i+1 < len(lines) {
				next := strings.TrimSpace(stripComment(lines[i+1]))
				if next == "" {
					i++
					continue
				}
				if !strings.HasPrefix(next, "- ") || !(strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "-")) {
					break
				}
				i++
				item, err := scalar(strings.TrimSpace(next[2:]))
				if err != nil {
					return nil, fmt.Errorf("line %d: registry: %w", i+1, err)
				}
				items = append(items, item)
			}
			if len(items) == 0 {
				return nil, fmt.Errorf("line %d: registry: no hosts given", n)
			}
			val = strings.Join(items, ",")
		case rest == "":
			return nil, fmt.Errorf("line %d: %s: no value given", n, key)
		case strings.HasPrefix(rest, "["):
			if key != "registry" {
				return nil, fmt.Errorf("line %d: %s: a single value, please (only registry takes a list)", n, key)
			}
			if val, err = flowList(rest); err != nil {
				return nil, fmt.Errorf("line %d: registry: %w", n, err)
			}
		default:
			if val, err = scalar(rest); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, key, err)
			}
		}
		f[key] = fileValue{value: val, line: n}
	}
	return f, nil
}

// knownKey says which spelling to use when key is not one of fileKeys.
func knownKey(key string) error {
	for _, k := range fileKeys {
		if key == k {
			return nil
		}
	}
	norm := strings.TrimPrefix(strings.ReplaceAll(strings.ToLower(key), "-", "_"), "cgr_")
	if norm == "registries" {
		norm = "registry"
	}
	for _, k := range fileKeys {
		if norm == k {
			return fmt.Errorf("unknown key %q: write it as %s", key, k)
		}
	}
	known := append([]string(nil), fileKeys...)
	sort.Strings(known)
	return fmt.Errorf("unknown key %q (known: %s)", key, strings.Join(known, ", "))
}

// stripComment drops a comment: '#' at the start or after a blank, outside quotes.
func stripComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s[:i]
		}
	}
	return s
}

// scalar reads a plain, 'single' or "double" quoted value.
func scalar(s string) (string, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("an empty value")
	case strings.HasPrefix(s, `"`):
		if len(s) < 2 || !strings.HasSuffix(s, `"`) {
			return "", fmt.Errorf("an unterminated quoted value")
		}
		v, err := strconv.Unquote(s)
		if err != nil {
			return "", fmt.Errorf("a quoted value with a bad escape")
		}
		return v, nil
	case strings.HasPrefix(s, "'"):
		if len(s) < 2 || !strings.HasSuffix(s, "'") {
			return "", fmt.Errorf("an unterminated quoted value")
		}
		inner := s[1 : len(s)-1]
		if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
			return "", fmt.Errorf("a quote inside a 'single-quoted' value must be doubled ('')")
		}
		return strings.ReplaceAll(inner, "''", "'"), nil
	case strings.ContainsAny(s[:1], "{[&*!|>%@`"):
		return "", fmt.Errorf("%q is not a plain value; quote it", s)
	}
	return s, nil
}

// flowList reads [a, b, "c"] into "a,b,c".
func flowList(s string) (string, error) {
	if !strings.HasSuffix(s, "]") {
		return "", fmt.Errorf("a list that does not end with ]")
	}
	inner := strings.TrimSpace(s[1 : len(s)-1])
	if inner == "" {
		return "", fmt.Errorf("no hosts given")
	}
	var items []string
	for _, part := range strings.Split(inner, ",") {
		v, err := scalar(strings.TrimSpace(part))
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(v, "[]") {
			return "", fmt.Errorf("a list inside a list")
		}
		items = append(items, v)
	}
	return strings.Join(items, ","), nil
}
