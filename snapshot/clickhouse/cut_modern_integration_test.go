package clickhouse_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestModernCutUnderInserts is the cut on ClickHouse 26.7, which needs no replication: while
// batches of new traces arrive (2,500 rows/s, event_ts = now64(3), each batch's acknowledgement
// time kept), a logical backup records its cut and each partition's newest event_ts; it
// verifies with read-data, restores into a scratch database with its row checks passing, and
// holds every batch acknowledged before the cut.
func TestModernCutUnderInserts(t *testing.T) {
	f := newModernFixture(t, 2000)
	type batch struct {
		id          int
		sent, acked time.Time
	}
	const rows, every = 1000, 400 * time.Millisecond
	var (
		mu    sync.Mutex
		acked []batch
	)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for n := 0; ; n++ {
			sent := time.Now()
			_, err := f.env.ModernQuery(fmt.Sprintf(`INSERT INTO %s.traces (id, timestamp, name, project_id, event_ts, is_deleted)
				SELECT concat('cut-%d-', toString(number)), now64(3), 'load', 'p-cut', now64(3), 0 FROM numbers(%d)`, f.db, n, rows))
			if err != nil {
				done <- err
				return
			}
			mu.Lock()
			acked = append(acked, batch{n, sent, time.Now()})
			mu.Unlock()
			select {
			case <-ctx.Done():
				done <- nil
				return
			case <-tick.C:
			}
		}
	}()
	for len(snapshotOf(&mu, &acked)) < 3 {
		time.Sleep(100 * time.Millisecond)
	}
	m := f.backup()
	time.Sleep(2 * every) // batches after the cut
	stop()
	if err := <-done; err != nil {
		t.Fatalf("insert: %v", err)
	}
	if m.Status != store.StatusComplete || m.Cut == nil || len(m.Cut.Sources) != 1 || m.Cut.Sources[0].Source != "clickhouse" {
		t.Fatalf("snapshot %s: %s, cut %v", m.ID, m.Status, m.Cut)
	}
	t.Logf("cut %s", m.Cut)
	rep, err := f.repo.Verify(context.Background(), []string{m.ID}, true)
	if err != nil || len(rep.Problems) > 0 || rep.ObjectsRead != rep.Objects {
		t.Fatalf("verify --read-data: %v, %+v", err, rep)
	}

	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	var newest time.Time
	for _, rec := range sec.Tables {
		if rec.Name != "traces" {
			continue
		}
		if rec.VersionColumn != "event_ts" {
			t.Errorf("traces: version column %q, want event_ts (ReplacingMergeTree(event_ts, is_deleted))", rec.VersionColumn)
		}
		for _, p := range rec.Partitions {
			at, err := time.Parse(time.RFC3339Nano, p.Newest)
			if err != nil {
				t.Errorf("traces partition %s: newest %q: %v", p.ID, p.Newest, err)
			}
			newest = maxTime(newest, at)
		}
	}
	var before []batch
	var after int
	for _, b := range snapshotOf(&mu, &acked) {
		if b.acked.Before(m.Cut.Time) {
			before = append(before, b)
		} else {
			after++
		}
	}
	if len(before) == 0 || after == 0 {
		t.Fatalf("the backup did not run while batches arrived: %d batches before its cut, %d after", len(before), after)
	}
	// The export held the batches acknowledged before the cut: its newest event_ts (the
	// server's now64(3) as it took a batch, after the batch was sent) reaches the last of them.
	last := before[len(before)-1]
	if newest.Before(last.sent.Truncate(time.Millisecond)) || newest.After(m.End) {
		t.Errorf("the newest event_ts exported is %s; the last batch acknowledged before the cut was sent at %s, the snapshot ended %s", newest, last.sent, m.End)
	}

	f.restore(m, restore.Options{DatabaseMap: map[string]string{f.db: f.db + "_copy"}})
	got := map[int]int{}
	out := f.sql(fmt.Sprintf("SELECT toUInt32(splitByChar('-', id)[2]), count() FROM %s_copy.traces WHERE project_id = 'p-cut' GROUP BY 1 FORMAT TSV", f.db))
	for _, line := range strings.Fields(strings.ReplaceAll(out, "\t", ":")) {
		var id, n int
		if _, err := fmt.Sscanf(line, "%d:%d", &id, &n); err != nil {
			t.Fatalf("restored batch count %q: %v", line, err)
		}
		got[id] = n
	}
	for _, b := range before {
		if got[b.id] != rows {
			t.Errorf("batch %d, acknowledged before the cut: the restore holds %d of its %d rows", b.id, got[b.id], rows)
		}
	}
	t.Logf("%d batches before the cut restored whole; %d after it (%d of them in the snapshot)", len(before), after, len(got)-len(before))
}

func snapshotOf[T any](mu *sync.Mutex, s *[]T) []T {
	mu.Lock()
	defer mu.Unlock()
	return append([]T(nil), *s...)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
