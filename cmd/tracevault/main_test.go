package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestExitCodes checks the exit-code contract scripts rely on: 0 success, 1 failure or
// problems, 2 usage or configuration error.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	_ = os.WriteFile(bad, []byte("[storage]\nurl = \"s3://bucket\"\ncolour = \"blue\"\n[[jobs]]\nname = \"n\"\nschedule = \"61 * * * *\"\naction = \"prune\"\n"), 0o600)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string
	}{
		{"example config is valid", []string{"config", "check", "../../config.example.toml"}, 0, nil},
		{"three problems, each with key and line", []string{"config", "check", bad}, 2,
			[]string{"bad.toml:2: storage.url", "bad.toml:3: storage.colour: unknown key", "bad.toml:6: jobs[0].schedule: bad cron expression", "3 configuration problems"}},
		{"missing config file", []string{"--config", filepath.Join(dir, "none.toml"), "list"}, 2, []string{"file not found"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{"unknown command"}},
		{"bad flag", []string{"list", "--no-such-flag"}, 2, []string{"unknown flag"}},
		{"bad log level", []string{"--log-level", "loud", "version"}, 2, []string{"--log-level"}},
		{"version", []string{"version"}, 0, nil},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(tt.args...)
		if code != tt.code {
			t.Errorf("%s: exit %d, want %d (stderr %q)", tt.name, code, tt.code, stderr)
		}
		for _, s := range tt.stderr {
			if !strings.Contains(stderr, s) {
				t.Errorf("%s: stderr lacks %q:\n%s", tt.name, s, stderr)
			}
		}
	}
}

// TestHelpEverywhere: every command answers --help with a usage and at least one example.
func TestHelpEverywhere(t *testing.T) {
	root := newApp().rootCommand()
	var paths [][]string
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		paths = append(paths, []string{c.Name()})
		for _, sub := range c.Commands() {
			paths = append(paths, []string{c.Name(), sub.Name()})
		}
	}
	if len(paths) < 14 {
		t.Fatalf("only %d commands found", len(paths))
	}
	for _, p := range paths {
		code, out, _ := runCLI(append(p, "--help")...)
		if code != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("%v --help: exit %d\n%s", p, code, out)
		}
		isGroup := len(p) == 1 && (p[0] == "config" || p[0] == "demo" || p[0] == "zk")
		if !isGroup && !strings.Contains(out, "Examples:") {
			t.Errorf("%v --help has no examples", p)
		}
	}
}

func TestConfigCheckJSON(t *testing.T) {
	code, out, _ := runCLI("--json", "config", "check", "../../config.example.toml")
	var got struct {
		Valid bool `json:"valid"`
		Jobs  int  `json:"jobs"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || !got.Valid || got.Jobs != 2 {
		t.Errorf("config check --json: exit %d, %q", code, out)
	}
}
