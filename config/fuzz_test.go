package config

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	arrayIndex = regexp.MustCompile(`\[\d+\]$`)
	bareKey    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// FuzzParse: whatever a configuration file holds, Parse returns within a bound and never
// panics; it returns a configuration or an error, never both; every problem names the file and
// a line that exists (or 0 for a key the file left out); and the line mapper only points at
// lines of the file.
func FuzzParse(f *testing.F) {
	// Small seeds: the fuzzer minimises every new input it finds interesting, and minimising a
	// copy of the 10 KB example file stalls a short run.
	f.Add([]byte(minimal))
	f.Add([]byte("[storage]\nurl = \"azblob://c/p\"\nsas_token = \"${SAS}\"\nblock_size = \"8MiB\"\n[storage.encryption]\nrecipients = [\"age1x\"]\n[retention]\nkeep_daily = 7\n[web]\nlisten = \":8080\"\n"))
	f.Add([]byte("[storage]\nurl = 1\n"))
	f.Add([]byte("[[jobs]]\nname = \"a\"\nschedule = \"*/5 * * * *\"\n[[jobs]]\nname = \"b\"\nschedule = \"@every\"\n"))
	f.Add([]byte("a.\"b.c\".d = 1\n[x . y]\n'z' = \"\"\"\nmulti\n\"\"\"\n"))
	f.Add([]byte("[postgres]\ndsn = \"env:NO_SUCH_TRACEVAULT_VAR\"\n"))
	f.Add([]byte(minimal + "[[jobs]]\nname = \"j\"\naction = \"backup\"\nschedule = \"TZ=\"\n")) // panicked the cron parser
	f.Add([]byte("= 1\n[[\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.toml"
		lines := bytes.Count(data, []byte("\n")) + 1
		type result struct {
			keys   map[string]int
			keyErr error
			cfg    *Config
			err    error
		}
		done := make(chan result, 1)
		go func() {
			var r result
			r.keys, r.keyErr = keyLines(data)
			r.cfg, r.err = Parse(name, data)
			done <- r
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(3 * time.Second):
			t.Fatalf("Parse of %d bytes took over 3 s", len(data))
		}
		if r.keyErr == nil {
			text := strings.Split(string(data), "\n")
			for key, l := range r.keys {
				if l < 1 || l > lines {
					t.Fatalf("keyLines put %q on line %d of a %d-line file", key, l, lines)
				}
				// A key cannot span lines, so a bare key's last part is on the line given.
				last := arrayIndex.ReplaceAllString(key[strings.LastIndex(key, ".")+1:], "")
				if bareKey.MatchString(last) && !strings.Contains(text[l-1], last) {
					t.Fatalf("keyLines put %q on line %d, which is %q", key, l, text[l-1])
				}
			}
		}
		if (r.cfg == nil) == (r.err == nil) {
			t.Fatalf("Parse returned config %v and error %v: exactly one must be set", r.cfg != nil, r.err)
		}
		var ps Problems
		if errors.As(r.err, &ps) {
			if len(ps) == 0 {
				t.Fatal("an empty problem list was returned as an error")
			}
			for _, p := range ps {
				if p.File != name || p.Line < 0 || p.Line > lines || p.Message == "" {
					t.Fatalf("problem %+v: wrong file, a line outside the %d-line file, or no message", p, lines)
				}
			}
		}
		if r.cfg != nil && r.cfg.File != name {
			t.Fatalf("config names file %q, want %q", r.cfg.File, name)
		}
	})
}

// TestParseSchedule: what the cron library panics on or never fires on is a plain error.
func TestParseSchedule(t *testing.T) {
	for spec, ok := range map[string]bool{"0 3 * * *": true, "@daily": true, "CRON_TZ=UTC 0 3 * * *": true,
		"TZ=": false, "CRON_TZ=Europe/Paris": false, "0 0 30 2 *": false, "0 0 31 4 *": false, "": false} {
		_, err := ParseSchedule(spec)
		if (err == nil) != ok {
			t.Errorf("ParseSchedule(%q) = %v, want ok=%v", spec, err, ok)
		}
	}
}

// TestScheduleProblems: a schedule the cron library panics on, or one that never fires, is a
// problem on its line, not a crash of config check or a daemon that hangs.
func TestScheduleProblems(t *testing.T) {
	for _, spec := range []string{"TZ=", "0 0 30 2 *"} {
		_, err := Parse("t.toml", []byte(minimal+"[[jobs]]\nname = \"j\"\naction = \"backup\"\nschedule = \""+spec+"\"\n"))
		var ps Problems
		if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Key != "jobs[0].schedule" || ps[0].Line != 14 {
			t.Errorf("schedule %q: %v, want one problem at jobs[0].schedule, line 14", spec, err)
		}
	}
}
