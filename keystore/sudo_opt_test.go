package keystore

import "testing"

func TestSudoShareDisabled(t *testing.T) {
	for v, want := range map[string]bool{
		"false": true, "FALSE": true, " False\n": true, "0": true, "no": true, "No": true,
		"off": true, "OFF ": true,
		"": false, "true": false, "1": false, "yes": false, "on": false, "nope": false,
		"f": true, "n": true, "00": false,
	} {
		if got := SudoShareDisabled(func(k string) string {
			if k == "CGR_SUDO_SHARE" {
				return v
			}
			return ""
		}); got != want {
			t.Errorf("CGR_SUDO_SHARE=%q: disabled=%v, want %v", v, got, want)
		}
	}
}
