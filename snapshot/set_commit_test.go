package snapshot

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot/store"
)

// refusingManifests is a backend whose manifest writes fail, as a storage outage that began
// during a source fails the commit after it.
type refusingManifests struct{ store.Backend }

var errOutage = errors.New("503 ServerBusy")

func (b refusingManifests) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if strings.HasPrefix(name, "snapshots/") {
		return 0, errOutage
	}
	return b.Backend.Put(ctx, name, r)
}

// TestRunFailedCommitNamesTheSourceFailure: when a source failed and the commit of the partial
// record fails too, the run's error names both, the source's first.
func TestRunFailedCommitNamesTheSourceFailure(t *testing.T) {
	ctx := context.Background()
	fs, err := store.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	repo, err := store.OpenBackend(ctx, refusingManifests{fs}, store.Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		src     Source
		partial bool
	}{
		{"a source failed", testSource{"blobs", func(context.Context, *Writer) error { return errors.New("store blob-pack: reset") }}, true},
		{"every source succeeded", testSource{"blobs", stores("x")}, false},
	} {
		_, err := Run(ctx, repo, []Source{tc.src}, Options{Log: quiet})
		if !errors.Is(err, errOutage) || errors.Is(err, ErrPartial) != tc.partial ||
			(tc.partial && !strings.Contains(err.Error(), "blobs: store blob-pack: reset")) {
			t.Errorf("%s: %v; want the commit's failure, and the source's first if it failed", tc.name, err)
		}
	}
}
