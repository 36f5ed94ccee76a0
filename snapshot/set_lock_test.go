package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

// TestRunNeverCommitsAfterLosingTheLock: a backup whose repository lock was taken over while it
// ran (here: another process created the lock's next generation, as a contender does once it
// judged this holder dead) stores its objects but commits no manifest, and says why.
func TestRunNeverCommitsAfterLosingTheLock(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	takeover := func(ctx context.Context, w *Writer) error {
		if err := stores("before-takeover")(ctx, w); err != nil {
			return err
		}
		gens, err := filepath.Glob(filepath.Join(dir, "locks", "repository", "g*"))
		if err != nil || len(gens) != 1 {
			return fmt.Errorf("lock generations %v: %v", gens, err)
		}
		next := filepath.Join(filepath.Dir(gens[0]), fmt.Sprintf("g%020d", 2))
		return os.WriteFile(next, []byte(`{"host":"elsewhere","pid":1,"what":"prune"}`), 0o640)
	}
	m, err := Run(ctx, repo, []Source{testSource{"a", takeover}}, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, store.ErrLockLost) || !errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "not committed") {
		t.Fatalf("err = %v; want a partial run that says the lock was lost and nothing committed", err)
	}
	if m == nil || m.Status != store.StatusPartial {
		t.Fatalf("manifest %+v, want partial", m)
	}
	var manifests []string
	if err := repo.Backend().List(ctx, "snapshots/", func(o store.ObjectInfo) error { manifests = append(manifests, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(manifests) != 0 {
		t.Fatalf("a manifest was committed after the lock was lost: %v", manifests)
	}
}
