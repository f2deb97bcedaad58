package credhelper

import (
	"errors"
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/docker/docker-credential-helpers/registryurl"

	"github.com/cgrtools/docker-credential-cgr/internal/config"
)

// hostRE is what a registry host may look like after parsing: a DNS name or IPv4 address, or a
// bracketed IPv6 address, with an optional port. Anything else (percent-escapes, backslashes,
// unicode look-alikes) is not a host we serve.
var hostRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$`)
})

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
	if !hostRE().MatchString(host) || !s.Serves(host) {
		return "", errForeign
	}
	// A token travels over plain http only to loopback (the contract's rule for endpoints).
	if u.Scheme == "http" && !config.IsLoopback(u.Hostname()) {
		return "", errForeign
	}
	return host, nil
}
