package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFSRefusesNamesOutsideRoot: every operation refuses a name that could leave the repository
// directory, naming it, and nothing outside is read, written or deleted, not even through a
// symlink planted inside the repository.
func TestFSRefusesNamesOutsideRoot(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	sentinel := filepath.Join(outside, "victim")
	if err := os.WriteFile(sentinel, []byte("keep me"), 0o640); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(outside, "repo")
	b, err := NewFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "data/ab/good", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	// A symlink in the repository pointing out of it, as a hostile writer could plant.
	if err := os.Symlink(outside, filepath.Join(dir, "data", "escape")); err != nil {
		t.Fatal(err)
	}
	hostile := []string{
		"../victim", "data/../../victim", "/" + sentinel, "..", ".", "", "data//ab/good", "./data/ab/good",
		"data/ab/", `..\victim`, `data\..\..\victim`, "data/\x00", "snapshots/../../victim",
	}
	ops := map[string]func(name string) error{
		"put":    func(n string) error { _, err := b.Put(ctx, n, strings.NewReader("overwritten")); return err },
		"get":    func(n string) error { _, err := b.Get(ctx, n, 0, -1); return err },
		"stat":   func(n string) error { _, err := b.Stat(ctx, n); return err },
		"delete": func(n string) error { return b.Delete(ctx, n) },
		"lock":   func(n string) error { _, err := b.Lock(ctx, n, time.Minute); return err },
		"list": func(n string) error {
			return b.List(ctx, n, func(o ObjectInfo) error { return errors.New("listed " + o.Name) })
		},
	}
	for op, do := range ops {
		for _, name := range hostile {
			if op == "list" && (name == "" || name == "data/ab/") {
				continue // the whole repository, a directory: legitimate prefixes
			}
			if op == "lock" {
				name = strings.TrimPrefix(name, "data/") // Lock adds locks/ itself
			}
			err := do(name)
			if !errors.Is(err, ErrNameOutsideRoot) {
				t.Errorf("%s %q: %v, want ErrNameOutsideRoot", op, name, err)
			}
		}
		// Through the planted symlink the name is well-formed, and os.Root still refuses it.
		if op == "lock" {
			continue // its name lands under locks/, inside the repository
		}
		if err := do("data/escape/victim"); err == nil && op != "delete" && op != "list" {
			t.Errorf("%s through a symlink out of the repository succeeded", op)
		}
	}
	if got, err := os.ReadFile(sentinel); err != nil || !bytes.Equal(got, []byte("keep me")) {
		t.Fatalf("the file outside the repository was touched: %q, %v", got, err)
	}
	entries, _ := os.ReadDir(outside)
	if len(entries) != 2 {
		t.Errorf("something was created outside the repository: %v", entries)
	}
	var listed []string
	if err := b.List(ctx, "", func(o ObjectInfo) error { listed = append(listed, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(listed, ",") != "data/ab/good" {
		t.Errorf("listing the repository: %v", listed)
	}
}
