// Package safetext makes text that came from a server (an issuer's error, a registry's
// message, a header) or from a file someone else may have written safe to print on a
// terminal and to hand a client as one line: no control characters, no terminal escape
// sequences, no bidirectional overrides, one line.
//
// Hand-written because no small library does exactly this: x/text can classify runes, but
// the escape sequences (CSI, OSC, ...) must be dropped whole, parameters and all, or their
// tails would still reach the terminal as visible junk, and a terminal that reads 8-bit C1
// codes (U+009B is CSI) would still obey them.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s as one printable line: escape sequences (ESC [ ... final byte, ESC ] ...
// BEL or ESC \, and the other ESC forms) and their 8-bit C1 forms are removed whole; other
// C0 and C1 controls, DEL, bidirectional overrides and isolates (U+202A..U+202E,
// U+2066..U+2069, U+200E, U+200F, U+061C) and invalid UTF-8 are dropped; every run of
// whitespace (newlines, tabs, U+2028, ...) becomes one space; the ends are trimmed.
func Line(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false // a space is pending: written before the next printable rune
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			i += n // invalid UTF-8: dropped
			continue
		case r == 0x1b: // ESC: skip the whole sequence
			i = skipEscape(s, i+n)
			continue
		case r == 0x9b: // 8-bit CSI
			i = skipCSI(s, i+n)
			continue
		case r == 0x9d || r == 0x90 || r == 0x98 || r == 0x9e || r == 0x9f: // 8-bit OSC, DCS, SOS, PM, APC
			i = skipString(s, i+n)
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			i += n
			continue
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			i += n
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// clean reports whether s is already one printable line (the common case: no allocation).
func clean(s string) bool {
	prevSpace := true // a leading space is not clean
	for _, r := range s {
		switch {
		case r == ' ':
			if prevSpace {
				return false
			}
			prevSpace = true
			continue
		case r < 0x20, r == 0x7f, r >= 0x80 && (r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)):
			return false
		}
		prevSpace = false
	}
	return !prevSpace || s == ""
}

// skipEscape returns the index after the escape sequence whose ESC ended just before i.
func skipEscape(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch s[i] {
	case '[': // CSI
		return skipCSI(s, i+1)
	case ']', 'P', 'X', '^', '_': // OSC, DCS, SOS, PM, APC: a string up to BEL or ST
		return skipString(s, i+1)
	}
	// ESC, then intermediate bytes (0x20-0x2f), then one final byte (0x30-0x7e).
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipCSI skips a control sequence's parameter and intermediate bytes and its final byte.
func skipCSI(s string, i int) int {
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return i
}

// skipString skips a control string up to and including its terminator: BEL, ESC \ or the
// 8-bit ST (U+009C). An unterminated one runs to the end of s, as a terminal would read it.
func skipString(s string, i int) int {
	for i < len(s) {
		switch {
		case s[i] == 0x07:
			return i + 1
		case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
			return i + 2
		case strings.HasPrefix(s[i:], "\u009c"):
			return i + len("\u009c")
		}
		i++
	}
	return i
}
