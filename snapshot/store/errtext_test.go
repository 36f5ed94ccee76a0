package store

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestErrorText(t *testing.T) {
	nativeTail := "load partition 202611 of default.traces: read block: unexpected EOF\x00\x01\x9f\x02secret trace text\xff\xfe"
	tests := []struct {
		name, in, want string
	}{
		{"plain", "connection refused", "connection refused"},
		{"binary tail cut at the first data byte", nativeTail, "load partition 202611 of default.traces: read block: unexpected EOF […]"},
		{"first lines kept", "a\nb\nc\nd\ne", "a\nb\nc […]"},
		{"tabs become spaces", "a\tb\r\n", "a b"},
		{"capped", strings.Repeat("é", 1200), strings.Repeat("é", 512) + " […]"},
		{"escape sequences are data", "oops \x1b[31mred", "oops […]"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		if got := ErrorText(tt.in); got != tt.want {
			t.Errorf("%s: ErrorText(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func FuzzErrorText(f *testing.F) {
	f.Add("load: unexpected EOF\x00\x01trace")
	f.Add(strings.Repeat("x\n", 400))
	f.Fuzz(func(t *testing.T, s string) {
		got := ErrorText(s)
		if len(got) > maxErrorBytes+len(" […]") || !utf8.ValidString(got) || strings.Count(got, "\n") >= maxErrorLines {
			t.Fatalf("ErrorText(%q) = %q: too long, invalid or too many lines", s, got)
		}
		for _, r := range got {
			if r != '\n' && !unicode.IsPrint(r) {
				t.Fatalf("ErrorText(%q) = %q keeps %U", s, got, r)
			}
		}
		if ErrorText(got) != got && !strings.HasSuffix(got, " […]") {
			t.Fatalf("ErrorText is not idempotent on %q", got)
		}
	})
}
