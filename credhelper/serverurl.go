package credhelper

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/docker/docker-credential-helpers/registryurl"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// validHost reports whether host is what a registry host may look like after parsing: a DNS
// name or IPv4 address ([a-z0-9], with '.' and '-' inside), or a bracketed IPv6 address
// ([0-9a-f:.]), with an optional port of 1 to 5 digits. Anything else (percent-escapes,
// backslashes, unicode look-alikes) is not a host we serve. Written out rather than as a
// regexp: compiling one cost a third of a warm get's instructions (docs/BENCH.md), and every
// get is a process.
func validHost(host string) bool {
	name, port := host, ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i+1:]
		if port == "" || len(port) > 5 || strings.Trim(port, "0123456789") != "" {
			return false
		}
	}
	if strings.HasPrefix(name, "[") {
		inner, ok := strings.CutSuffix(name[1:], "]")
		return ok && inner != "" && strings.Trim(inner, "0123456789abcdef:.") == ""
	}
	if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != "" {
		return false
	}
	first, last := name[0], name[len(name)-1]
	return first != '.' && first != '-' && last != '.' && last != '-'
}

var errForeign = errors.New("not a served registry")

// ServedHost parses a server URL as clients send it (cgr.dev, https://cgr.dev,
// https://cgr.dev/v2/, cgr.dev/org/repo, ...) and returns its host when, after parsing, it is
// EXACTLY one of the served hosts. Everything else (cgr.dev.evil.com, evil.com/cgr.dev,
// https://cgr.dev@evil.com, http:// to a non-loopback host, garbage) is errForeign, so a token
// is never handed to a host we do not serve.
func ServedHost(s config.Settings, raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || len(raw) > 2048 || !utf8.ValidString(raw) {
		return "", errForeign
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '\\' || r > unicode.MaxASCII {
			return "", errForeign
		}
	}
	// registryurl drops the query; a query or fragment has no place in a server URL.
	if strings.ContainsAny(raw, "?#") {
		return "", errForeign
	}
	u, err := registryurl.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", errForeign
	}
	host := strings.ToLower(u.Host)
	if !validHost(host) || !s.Serves(host) {
		return "", errForeign
	}
	// A token travels over plain http only to loopback (the contract's rule for endpoints).
	if u.Scheme == "http" && !config.IsLoopback(u.Hostname()) {
		return "", errForeign
	}
	return host, nil
}
