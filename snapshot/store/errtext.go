package store

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Error text limits: what a run record, a manifest's error or the status page keeps of a failure.
const (
	maxErrorBytes = 1024
	maxErrorLines = 3
)

// ErrorText makes a failure's text safe to store and show: an error may quote the data it
// choked on (the binary tail of a Native stream, a trace's text), which must never reach the run
// history, a manifest or the public status page. It keeps the first lines, which carry the
// cause, cuts the text at the first byte that is not printable text (what follows is data, not
// a message), and caps the result at 1 KiB on a character boundary.
func ErrorText(s string) string {
	var b strings.Builder
	lines, cut := 0, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n':
			lines++
			if lines >= maxErrorLines {
				cut = i < len(strings.TrimRight(s, "\r\n \t"))
				i = len(s)
				continue
			}
			b.WriteByte('\n')
		case r == '\t' || r == '\r':
			b.WriteByte(' ')
		case r == utf8.RuneError && size <= 1, !unicode.IsPrint(r):
			cut = true
			i = len(s)
			continue
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	out := strings.TrimRight(b.String(), " \n")
	if len(out) > maxErrorBytes {
		n := maxErrorBytes
		for n > 0 && !utf8.RuneStart(out[n]) {
			n--
		}
		out, cut = out[:n], true
	}
	if cut {
		out += " […]"
	}
	return out
}
