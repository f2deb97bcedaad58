package clientconfig

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// newFile is what an absent or blank config file starts from.
var newFile = []byte("{}\n")

// fileInfo is what a config file says about the served hosts.
type fileInfo struct {
	helpers    map[string]string // credHelpers entries of served hosts
	static     []authEntry       // auths entries of served hosts that hold a secret
	credsStore string
	configured bool // credsStore, credHelpers or auths set at all (oras-go's IsAuthConfigured)
}

type authEntry struct {
	key  string // as written in the file ("cgr.dev", "https://cgr.dev", "cgr.dev/org/repo")
	host string
	path bool // the key names a namespace or repository, not just the registry
}

// authKeyHost reduces an auths key to its host, as Docker and containers/image match them
// ("https://cgr.dev/v2/" and "cgr.dev/org/app" both belong to cgr.dev).
func authKeyHost(key string) (host string, path bool) {
	k := key
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
		if j := strings.IndexByte(k, '/'); j >= 0 {
			rest := strings.Trim(k[j:], "/")
			return strings.ToLower(k[:j]), rest != "" && rest != "v1" && rest != "v2"
		}
		return strings.ToLower(k), false
	}
	host, rest, _ := strings.Cut(k, "/")
	return strings.ToLower(host), strings.Trim(rest, "/") != ""
}

// hasSecret: a static credential in an auths entry. `{}` (what Docker leaves beside a
// credsStore) is not one. Decoded into a struct as docker/cli's AuthConfig is, so a field
// matches in any case ("Auth") and its last copy counts, as for the clients.
func hasSecret(raw json.RawMessage) bool {
	var e struct {
		Auth          string `json:"auth"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
		RegistryToken string `json:"registrytoken"`
	}
	// A field of another type is an error, but the string fields are still filled in.
	json.Unmarshal(raw, &e)
	return e.Auth != "" || e.Password != "" || e.IdentityToken != "" || e.RegistryToken != ""
}

func served(hosts []string, h string) bool {
	for _, x := range hosts {
		if x == h {
			return true
		}
	}
	return false
}

// inspect reads what doc says about the hosts; legacy: ~/.dockercfg, a bare auths map.
func inspect(doc []byte, hosts []string, legacy bool) (fileInfo, error) {
	info := fileInfo{helpers: map[string]string{}}
	if isBlank(doc) {
		return info, nil
	}
	top, err := parseConfig(doc, hosts, legacy)
	if err != nil {
		return info, err
	}
	auths := top
	if !legacy {
		if i, ok := top.find("credHelpers"); ok {
			var ch map[string]any
			if err := json.Unmarshal(top.members[i].raw, &ch); err != nil && string(top.members[i].raw) != "null" {
				return info, syntaxError(doc, int64(top.members[i].valStart), `"credHelpers" is not an object of strings`)
			}
			for h, v := range ch {
				if s, ok := v.(string); ok && served(hosts, h) {
					info.helpers[h] = s
				}
			}
		}
		if i, ok := top.find("credsStore"); ok {
			json.Unmarshal(top.members[i].raw, &info.credsStore)
		}
		for _, k := range []string{"credHelpers", "auths"} {
			if i, ok := top.find(k); ok {
				var m map[string]json.RawMessage
				json.Unmarshal(top.members[i].raw, &m)
				info.configured = info.configured || len(m) > 0
			}
		}
		info.configured = info.configured || info.credsStore != ""
		auths = nil
		if i, ok := top.find("auths"); ok && isObject(top.members[i].raw) {
			m := top.members[i]
			if auths, err = parseObject(doc, m.valStart, m.valEnd); err != nil {
				return info, err
			}
		}
	}
	if auths != nil {
		for _, m := range auths.members {
			h, p := authKeyHost(m.key)
			if served(hosts, h) && hasSecret(m.raw) {
				info.static = append(info.static, authEntry{key: m.key, host: h, path: p})
			}
		}
	}
	return info, nil
}

func isObject(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return strings.HasPrefix(s, "{")
}

// edit is one change to a document, recorded for the report.
type edit struct {
	added, removed, fixed []string
	replaced              map[string]string // host → helper that handled it before
	droppedStore          string            // a credsStore deleted: its helper is not installed
}

// ensureHelpers makes credHelpers[host] = helper for every host, appending what is missing.
func ensureHelpers(doc []byte, hosts []string, helper string, e *edit) ([]byte, error) {
	if isBlank(doc) {
		doc = newFile
	}
	for _, h := range hosts {
		top, err := parseDoc(doc)
		if err != nil {
			return nil, err
		}
		unit := indentUnit(doc, top)
		topLayout := top.layoutOf(doc, nil, unit)
		i, ok := top.find("credHelpers")
		if ok && strings.TrimSpace(string(top.members[i].raw)) == "null" {
			ok = false // setMember replaces the null in place
		}
		if !ok {
			doc = setMember(doc, top, topLayout, "credHelpers", []byte("{}"))
			if top, err = parseDoc(doc); err != nil {
				return nil, err
			}
			i, _ = top.find("credHelpers")
		}
		m := top.members[i]
		if !isObject(m.raw) {
			return nil, syntaxError(doc, int64(m.valStart), `"credHelpers" is not an object`)
		}
		ch, err := parseObject(doc, m.valStart, m.valEnd)
		if err != nil {
			return nil, err
		}
		if j, ok := ch.find(h); ok {
			var cur string
			json.Unmarshal(ch.members[j].raw, &cur)
			if cur == helper {
				continue
			}
			if e.replaced == nil {
				e.replaced = map[string]string{}
			}
			e.replaced[h] = cur
		} else {
			e.added = append(e.added, h)
		}
		doc = setMember(doc, ch, ch.layoutOf(doc, &topLayout, unit), h, quote(helper))
	}
	return doc, nil
}

// removeHelpers deletes credHelpers[host] where it names helper (ours only), and credHelpers
// itself when that leaves it empty.
func removeHelpers(doc []byte, hosts []string, helper string, e *edit) ([]byte, error) {
	if isBlank(doc) {
		return doc, nil
	}
	for _, h := range hosts {
		top, err := parseDoc(doc)
		if err != nil {
			return nil, err
		}
		i, ok := top.find("credHelpers")
		if !ok || !isObject(top.members[i].raw) {
			return doc, nil
		}
		m := top.members[i]
		ch, err := parseObject(doc, m.valStart, m.valEnd)
		if err != nil {
			return nil, err
		}
		j, ok := ch.find(h)
		if !ok {
			continue
		}
		var cur string
		json.Unmarshal(ch.members[j].raw, &cur)
		if cur != helper {
			continue
		}
		e.removed = append(e.removed, h)
		if len(ch.members) == 1 {
			doc = deleteMember(doc, top, i)
		} else {
			doc = deleteMember(doc, ch, j)
		}
	}
	return doc, nil
}

// removeStatic deletes auths entries for the hosts that hold a static secret.
func removeStatic(doc []byte, hosts []string, e *edit) ([]byte, error) {
	if isBlank(doc) {
		return doc, nil
	}
	for {
		top, err := parseDoc(doc)
		if err != nil {
			return nil, err
		}
		i, ok := top.find("auths")
		if !ok || !isObject(top.members[i].raw) {
			return doc, nil
		}
		m := top.members[i]
		auths, err := parseObject(doc, m.valStart, m.valEnd)
		if err != nil {
			return nil, err
		}
		cut := -1
		for j, a := range auths.members {
			if h, _ := authKeyHost(a.key); served(hosts, h) && hasSecret(a.raw) {
				cut = j
				break
			}
		}
		if cut < 0 {
			return doc, nil
		}
		e.fixed = append(e.fixed, auths.members[cut].key)
		doc = deleteMember(doc, auths, cut)
	}
}

// removeMissingStore deletes "credsStore" when installed(name) says no helper answers it.
func removeMissingStore(doc []byte, installed func(string) bool, e *edit) ([]byte, error) {
	if isBlank(doc) {
		return doc, nil
	}
	top, err := parseDoc(doc)
	if err != nil {
		return nil, err
	}
	i, ok := top.find("credsStore")
	if !ok {
		return doc, nil
	}
	var name string
	if err := json.Unmarshal(top.members[i].raw, &name); err != nil || name == "" || name == Helper || installed(name) {
		return doc, nil
	}
	e.droppedStore = name
	return deleteMember(doc, top, i), nil
}

// describe is the one-line summary of an edit ("added cgr.dev, 127.0.0.1:5000").
func (e edit) describe() string {
	var parts []string
	if len(e.added) > 0 {
		parts = append(parts, "added "+strings.Join(e.added, ", "))
	}
	if len(e.replaced) > 0 {
		var rs []string
		for h, was := range e.replaced {
			rs = append(rs, fmt.Sprintf("%s (was docker-credential-%s)", h, was))
		}
		sort.Strings(rs)
		parts = append(parts, "took over "+strings.Join(rs, ", "))
	}
	if len(e.removed) > 0 {
		parts = append(parts, "removed "+strings.Join(e.removed, ", "))
	}
	if len(e.fixed) > 0 {
		parts = append(parts, "deleted static auths for "+strings.Join(e.fixed, ", "))
	}
	if e.droppedStore != "" {
		parts = append(parts, fmt.Sprintf("deleted credsStore %q (docker-credential-%s is not installed)", e.droppedStore, e.droppedStore))
	}
	return strings.Join(parts, "; ")
}
