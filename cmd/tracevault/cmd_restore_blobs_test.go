package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBlobsCLI: backup --only blobs of a directory, show with its cut and check, a restore into
// another directory, and a restore into the source that keeps a newer file until --replace.
func TestBlobsCLI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "events")
	for name, body := range map[string]string{"p/a.json": "a", "p/b.json": "bb", "empty": ""} {
		p := filepath.Join(src, filepath.FromSlash(name))
		_ = os.MkdirAll(filepath.Dir(p), 0o750)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "tv.toml")
	_ = os.WriteFile(cfg, []byte(fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n[blobs]\nurl = \"file://%s\"\n", dir, src)), 0o600)
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"backup", "--only", "blobs"}, 0, ""},
		{[]string{"show", "latest"}, 0, "3 blobs"},
		{[]string{"show", "latest"}, 0, "check    not run"},
		{[]string{"restore", "latest", "--only", "blobs", "--blob-url", "file://" + dir + "/copy"}, 0, "3 blobs written"},
		{[]string{"restore", "latest", "--only", "postgres", "--blob-url", "file:///x"}, 2, "--blob-url goes with --only blobs"},
	}
	for _, s := range steps {
		code, out, errOut := runCLI(append([]string{"--config", cfg}, s.args...)...)
		if code != s.code || !strings.Contains(out+errOut, s.out) {
			t.Fatalf("%v: exit %d, want %d and %q:\n%s%s", s.args, code, s.code, s.out, out, errOut)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "copy", "p", "b.json")); err != nil || string(b) != "bb" {
		t.Fatalf("restored p/b.json: %q, %v", b, err)
	}
	// Rewritten since the snapshot: kept, the restore fails, until --replace.
	newer := filepath.Join(src, "p", "a.json")
	_ = os.WriteFile(newer, []byte("rewritten"), 0o600)
	_ = os.Chtimes(newer, time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	code, out, errOut := runCLI("--config", cfg, "restore", "latest", "--only", "blobs")
	if code != 1 || !strings.Contains(errOut, "--replace") {
		t.Fatalf("restore over a newer blob: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI("--config", cfg, "restore", "latest", "--only", "blobs", "--replace"); code != 0 {
		t.Fatalf("restore --replace: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(newer); string(b) != "a" {
		t.Fatalf("after --replace p/a.json holds %q", b)
	}
}
