package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// countingManifests counts the reads of each manifest.
type countingManifests struct {
	Backend
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingManifests) Get(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(name, "snapshots/") {
		c.mu.Lock()
		c.reads[name]++
		c.mu.Unlock()
	}
	return c.Backend.Get(ctx, name, off, length)
}

func (c *countingManifests) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reads
	c.reads = map[string]int{}
	return r
}

// A backup looks up the latest snapshot and every fingerprint; neither may read the history
// more than needed: latest reads back from the newest manifest to the first complete one, a
// unique id prefix reads its one manifest, and parallel first lookups read the index once.
func TestSnapshotLookupReadsOnlyWhatItNeeds(t *testing.T) {
	ctx := context.Background()
	fs, err := NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &countingManifests{Backend: fs, reads: map[string]int{}}
	r := openRepo(t, c, Options{})
	statuses := []string{StatusComplete, StatusComplete, StatusComplete, StatusComplete, StatusPartial}
	var ids []string
	for i, st := range statuses {
		ref, _, err := r.PutObject(ctx, fmt.Sprintf("fp-%d", i), strings.NewReader("partition"))
		if err != nil {
			t.Fatal(err)
		}
		m := NewManifest(nil)
		m.ID = fmt.Sprintf("20260101T00000%dZ-abcdef", i)
		m.Status = st
		m.Objects = []ManifestObject{{ObjectRef: ref, Source: "clickhouse", Database: "default", Table: "traces", Partition: "202605"}}
		if err := r.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	tests := []struct {
		id    string
		want  string // the snapshot found, or
		err   error  // the error
		reads []int  // indexes of the manifests read, when found
	}{
		{id: "latest", want: ids[3], reads: []int{4, 3}},
		{id: ids[1][:16], want: ids[1], reads: []int{1}},
		{id: ids[2], want: ids[2], reads: []int{2}},
		{id: "20260101T", err: ErrAmbiguous},
		{id: "2030", err: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			c.take()
			m, err := r.Snapshot(ctx, tc.id)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Snapshot(%q) = %v, %v; want %v", tc.id, m, err, tc.err)
				}
				if errors.Is(err, ErrAmbiguous) {
					// The operator picks from the matches, so each is named.
					for _, id := range ids {
						if !strings.Contains(err.Error(), id) {
							t.Errorf("ambiguous %q: %v does not name the match %s", tc.id, err, id)
						}
					}
				}
				return
			}
			if err != nil || m.ID != tc.want {
				t.Fatalf("Snapshot(%q) = %v, %v; want %s", tc.id, m, err, tc.want)
			}
			want := map[string]int{}
			for _, i := range tc.reads {
				want[manifestName(ids[i])] = 1
			}
			if got := c.take(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Snapshot(%q) read %v; want %v", tc.id, got, want)
			}
		})
	}
	t.Run("parallel first lookups", func(t *testing.T) {
		r := openRepo(t, c, Options{})
		c.take()
		var wg sync.WaitGroup
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, reused, err := r.PutObject(ctx, fmt.Sprintf("fp-%d", i), strings.NewReader("never read")); err != nil || !reused {
					t.Errorf("lookup fp-%d: reused %v, %v", i, reused, err)
				}
			}()
		}
		wg.Wait()
		for name, n := range c.take() {
			if n != 1 {
				t.Errorf("%s read %d times; want once", name, n)
			}
		}
	})
}

// TestSnapshotIDsSortInTheOrderTaken: ids of snapshots taken in the same second sort by the
// millisecond, so "latest" and a backup's base are the snapshot taken last.
func TestSnapshotIDsSortInTheOrderTaken(t *testing.T) {
	second := time.Date(2026, 11, 28, 6, 21, 41, 0, time.UTC)
	for _, tc := range []struct{ earlier, later time.Duration }{
		{0, time.Millisecond},
		{998 * time.Millisecond, 999*time.Millisecond + 999*time.Microsecond},
		{17 * time.Millisecond, 256 * time.Millisecond},
		{999 * time.Millisecond, time.Second}, // the next second
	} {
		for range 50 { // the random digits must never outweigh the time
			a, b := snapshotID(second.Add(tc.earlier)), snapshotID(second.Add(tc.later))
			if a >= b {
				t.Fatalf("%v then %v: ids %s and %s sort the other way", tc.earlier, tc.later, a, b)
			}
			for _, id := range []string{a, b} {
				if err := ValidSnapshotID(id); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
