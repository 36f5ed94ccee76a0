package blobs

import (
	"context"
	"errors"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestCheckHoldsTheListingToRowsCommittedBeforeIt backs up a directory whose file log, as it is
// read, gains a row for a file just written, as Langfuse writes a file and then its row: the
// file is in the listing (the file log is read before the listing begins) and is not reported
// missing; a row whose file was never written is. Long paths and a file log failing half-way
// are covered too.
func TestCheckHoldsTheListingToRowsCommittedBeforeIt(t *testing.T) {
	long := "events/" + strings.Repeat("x", 70_000)
	for _, tc := range []struct {
		name       string
		rows       []string
		failAfter  int // the file log fails after this many rows; 0 never
		check      Check
		wantErrMsg string
	}{
		{name: "row committed as the check starts", rows: []string{"events/a", "events/b", "events/c"},
			check: Check{Files: 3}},
		{name: "row without its file", rows: []string{"events/a", "events/b", "events/b", "events/bb", "events/c"},
			check: Check{Files: 4, Missing: 1, MissingExamples: []string{"events/bb"}}},
		{name: "file no row references", rows: []string{"events/b", "events/c"},
			check: Check{Files: 2, Unreferenced: 1, UnreferencedExamples: []string{"events/a"}}},
		{name: "a path longer than any name", rows: []string{"events/a", "events/b", "events/c", long},
			check: Check{Files: 4, Missing: 1, MissingExamples: []string{long[:maxSpooled]}}},
		{name: "file log fails half-way", rows: []string{"events/a", "events/b", "events/c"}, failAfter: 2,
			wantErrMsg: "replica gone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tmp := t.TempDir()
			srcURL := "file://" + filepath.Join(tmp, "src")
			src, err := OpenContainer(ctx, srcURL, Credentials{}, true)
			if err != nil {
				t.Fatal(err)
			}
			put(t, src, "events/b", []byte("b"))
			put(t, src, "events/c", []byte("c"))
			repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(tmp, "repo"), Log: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			fileLog := func(ctx context.Context) (string, iter.Seq2[string, error], error) {
				// Langfuse's ingestion: the file first, then its row, which this read sees.
				put(t, src, "events/a", []byte("a"))
				return "default.blob_storage_file_log", func(yield func(string, error) bool) {
					for i, r := range tc.rows {
						if tc.failAfter > 0 && i == tc.failAfter {
							yield("", errors.New("replica gone"))
							return
						}
						if !yield(r, nil) {
							return
						}
					}
				}, nil
			}
			s := &Source{URL: srcURL, FileLog: fileLog, Log: quietLog()}
			m, err := snapshot.Run(ctx, repo, []snapshot.Source{s}, snapshot.Options{Log: quietLog()})
			if err != nil {
				t.Fatalf("backup: %v", err)
			}
			_, sec, _ := listingOf(m)
			if sec.Blobs != 3 {
				t.Fatalf("the listing holds %d blobs; want 3 (the file written before its row included)", sec.Blobs)
			}
			got := *sec.Check
			if tc.wantErrMsg != "" {
				if !strings.Contains(got.Error, tc.wantErrMsg) {
					t.Fatalf("check %+v; want the error %q recorded", got, tc.wantErrMsg)
				}
				return
			}
			tc.check.Table = "default.blob_storage_file_log"
			if got.Table != tc.check.Table || got.Files != tc.check.Files || got.Missing != tc.check.Missing || got.Unreferenced != tc.check.Unreferenced ||
				!slices.Equal(got.MissingExamples, tc.check.MissingExamples) || !slices.Equal(got.UnreferencedExamples, tc.check.UnreferencedExamples) {
				t.Fatalf("check %+v\nwant  %+v", got, tc.check)
			}
		})
	}
}
