package snapshot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// testSource is a source whose behaviour the test chooses; the repository under it is real.
type testSource struct {
	name string
	run  func(ctx context.Context, w *Writer) error
}

func (s testSource) Name() string { return s.name }

func (s testSource) Backup(ctx context.Context, w *Writer) (any, error) {
	return map[string]string{"source": s.name}, s.run(ctx, w)
}

func stores(data string) func(ctx context.Context, w *Writer) error {
	return func(ctx context.Context, w *Writer) error {
		_, err := w.Put(ctx, store.ManifestObject{Kind: "test", Table: data}, "", strings.NewReader(data))
		return err
	}
}

// TestRunNeverShowsPartialAsComplete: a set is complete only when every source succeeded; a
// failure, a panic or a cancellation (SIGTERM in the daemon) still commits the record of what was
// stored, marked partial with the cause.
func TestRunNeverShowsPartialAsComplete(t *testing.T) {
	blocks := func(ctx context.Context, w *Writer) error {
		if err := stores("before-cancel")(ctx, w); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	}
	tests := []struct {
		name       string
		sources    []Source
		cancelIn   time.Duration
		status     string
		errHas     string
		objects    int
		components int
	}{
		{"all succeed", []Source{testSource{"a", stores("a")}, testSource{"b", stores("b")}}, 0, store.StatusComplete, "", 2, 2},
		{"one fails", []Source{testSource{"a", stores("a")}, testSource{"b", func(context.Context, *Writer) error { return errors.New("disk on fire") }}},
			0, store.StatusPartial, "b: disk on fire", 1, 2},
		{"one panics", []Source{testSource{"a", func(context.Context, *Writer) error { panic("bug") }}, testSource{"b", stores("b")}},
			0, store.StatusPartial, "panic in a backup: bug", 1, 2},
		{"cancelled mid-source", []Source{testSource{"a", stores("a")}, testSource{"slow", blocks}}, 300 * time.Millisecond, store.StatusPartial, "slow: context canceled", 2, 2},
		{"no sources", nil, 0, store.StatusPartial, "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			runCtx := ctx
			if tc.cancelIn > 0 {
				var cancel context.CancelFunc
				runCtx, cancel = context.WithCancel(ctx)
				time.AfterFunc(tc.cancelIn, cancel)
			}
			m, err := Run(runCtx, repo, tc.sources, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if (tc.status == store.StatusComplete) != (err == nil) {
				t.Fatalf("err = %v for a %s set", err, tc.status)
			}
			if err != nil && !errors.Is(err, ErrPartial) {
				t.Errorf("err = %v, want ErrPartial", err)
			}
			stored, err := repo.Snapshot(ctx, m.ID)
			if err != nil {
				t.Fatalf("the set's manifest was not committed: %v", err)
			}
			if stored.Status != tc.status || !strings.Contains(stored.Error, tc.errHas) || len(stored.Objects) != tc.objects || len(stored.Components) != tc.components {
				t.Errorf("committed %s (%q) with %d objects, %d components; want %s containing %q, %d objects, %d components",
					stored.Status, stored.Error, len(stored.Objects), len(stored.Components), tc.status, tc.errHas, tc.objects, tc.components)
			}
			if rep, err := repo.Verify(ctx, []string{m.ID}, true); err != nil || len(rep.Problems) > 0 {
				t.Errorf("verify --read-data of the committed set: %v %+v", err, rep.Problems)
			}
		})
	}
}
