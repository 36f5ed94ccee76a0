package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as a Go duration string ("90s", "2h") in TOML.
type Duration time.Duration

// UnmarshalText parses a Go duration; go-toml reports the error with its line.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration; write e.g. \"90s\", \"15m\" or \"2h\"", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText keeps `config show`-style output in the same form the file uses.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as "8MiB", "512KiB", "1GiB" or a plain number of bytes.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1},
}

// UnmarshalText parses a size with a binary or decimal unit.
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	mult := int64(1)
	num := str
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size; write e.g. \"8MiB\", \"512KiB\" or \"1GiB\"", str)
	}
	*s = Size(n * mult)
	return nil
}

// MarshalText writes the size in the largest exact binary unit.
func (s Size) MarshalText() ([]byte, error) {
	for _, u := range sizeUnits[:3] {
		if s != 0 && int64(s)%u.mult == 0 {
			return []byte(strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(s), 10) + "B"), nil
}

// Secret holds a credential. It prints, logs and marshals as "[redacted]" so that no code path
// can leak it by accident; Reveal is the one explicit way to read it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret for handing to a client library.
func (s Secret) Reveal() string { return string(s) }

// String never shows the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps --json output and the status API free of secrets.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// GoString covers %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }
