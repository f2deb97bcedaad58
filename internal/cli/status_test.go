package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Expiries are the issuer's times: "in …" is judged with the issuer's clock, as get judges
// them, so a machine whose clock is 90 minutes behind is not told a token has 2 h left
// when the issuer will refuse it in 30 minutes.
func TestPrintStatusJudgesExpiryByTheIssuersClock(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) // our clock
	skew := 90 * time.Minute                             // the issuer is ahead
	refresh := now.Add(skew + 48*time.Hour)
	r := statusReport{
		Registries: []string{"cgr.dev"}, Issuer: "https://issuer.enforce.dev", Store: "file store /x",
		LoggedIn: true, Email: "me@example.com", RefreshExpiry: &refresh, skew: skew,
		Tokens:     []statusToken{{Audience: "cgr.dev", Expiry: now.Add(skew + 10*time.Minute), skew: skew}},
		PullTokens: []statusPull{{Host: "cgr.dev", Identity: "id", Expiry: now.Add(skew - 5*time.Minute), skew: skew}},
	}
	var out bytes.Buffer
	printStatus(&out, r, now)
	for _, want := range []string{"Registries served:  cgr.dev", "(in 2d)", "cgr.dev, expires 2026-12-01 13:40 UTC (in 10m)", "(EXPIRED 5m ago)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status does not say %q:\n%s", want, out.String())
		}
	}
}
