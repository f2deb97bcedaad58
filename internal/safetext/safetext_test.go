package safetext

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"plain words", "plain words"},
		{"  padded\t\n words \r\n", "padded words"},
		{"red \x1b[31mALERT\x1b[0m done", "red ALERT done"},
		{"title \x1b]0;pwned\x07 after", "title after"},
		{"link \x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ here", "link click here"},
		{"clear\x1b[2J\x1b[Hscreen", "clearscreen"},
		{"cursor \x1b7saved\x1b8", "cursor saved"},
		{"charset \x1b(Bx", "charset x"},
		{"8-bit csi \u009b31mred", "8-bit csi red"},
		{"8-bit osc \u009d0;title\u009c end", "8-bit osc end"},
		{"dcs \x1bPq#0;2;0;0;0\x1b\\ end", "dcs end"},
		{"bell\x07 and backspace\b\b and nul\x00", "bell and backspace and nul"},
		{"del\x7f c1\u0085next", "del c1 next"},
		{"bidi \u202eevil\u202c and \u2066iso\u2069 \u200fmark", "bidi evil and iso mark"},
		{"line\u2028separator", "line separator"},
		{"invalid \xff\xfe utf-8", "invalid utf-8"},
		{"replacement \ufffd kept", "replacement \ufffd kept"},
		{"unterminated \x1b]0;title", "unterminated"},
		{"trailing esc \x1b", "trailing esc"},
		{"ünïcödé 東京 ok", "ünïcödé 東京 ok"},
	} {
		if got := Line(c.in); got != c.want {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Whatever the input, the output holds no control, no bidi control, no line break, and is
// valid UTF-8.
func FuzzLine(f *testing.F) {
	for _, s := range []string{"a\x1b[1mb", "\u009b\u009d\x1b]x", "x\u202ey", "\xff", " a  b "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Line(s)
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || (unicode.IsSpace(r) && r != ' ') {
				t.Fatalf("Line(%q) = %q keeps %U", s, out, r)
			}
		}
		if strings.Contains(out, "  ") || strings.TrimSpace(out) != out || !utf8.ValidString(out) {
			t.Fatalf("Line(%q) = %q: not one trimmed line", s, out)
		}
		if Line(out) != out {
			t.Fatalf("Line is not idempotent on %q", s)
		}
	})
}

func BenchmarkLineClean(b *testing.B) {
	s := "the registry said: unauthorized: authentication required"
	for b.Loop() {
		_ = Line(s)
	}
}
