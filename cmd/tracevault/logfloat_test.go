package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogRoundsFloats: floats are logged with at most three decimals, other values as they are.
func TestLogRoundsFloats(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		a := &app{logLevel: "info", logFormat: format}
		if err := a.setupLogging(&buf); err != nil {
			t.Fatal(err)
		}
		a.log.Info("progress done", "seconds", 2.6676641549999998, "rows", int64(12345678901), "rate", 0.0004)
		got := buf.String()
		for _, w := range []string{"2.668", "12345678901"} {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %s", format, got, w)
			}
		}
		if strings.Contains(got, "2.66766") || strings.Contains(got, "0.0004") {
			t.Errorf("%s: %q logs a float unrounded", format, got)
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
}
