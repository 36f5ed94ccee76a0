package clickhouse_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// A backup taken while a writer inserts into the current partition (≥ 2,000 rows/s, batched)
// and merges it restores with its row check passing, and the restored partitions hold exactly
// the rows the manifest records: the rows counted in the export, not the listing before it.
func TestBackupUnderLiveInsertsRestores(t *testing.T) {
	f := newFixture(t, 1000)
	ctx := context.Background()
	month := time.Now().UTC().Format("200601")
	insert := func(n int) string {
		return fmt.Sprintf(`INSERT INTO %s.traces (id, timestamp, project_id, environment, created_at, updated_at, event_ts)
			SELECT concat('live-', toString(rand64()), '-', toString(number)), now(), 'proj-live', 'production', now(), now(), now()
			FROM system.numbers LIMIT %d`, f.db, n)
	}
	// A partition big enough that its export overlaps the writer.
	f.sql(t, 0, insert(400_000))

	stop := make(chan struct{})
	var inserted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	started := time.Now()
	// The writer inserts batches back to back; a second goroutine merges the partition now
	// and then, as background merges and Langfuse's own OPTIMIZE calls do.
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := f.http(0).Exec(ctx, insert(2000), nil); err != nil {
				errs <- fmt.Errorf("insert: %w", err)
				return
			}
			inserted.Add(2000)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			if err := f.http(1).Exec(ctx, fmt.Sprintf("OPTIMIZE TABLE %s.traces PARTITION %s", f.db, month), nil); err != nil {
				errs <- fmt.Errorf("optimize: %w", err)
				return
			}
		}
	}()
	time.Sleep(time.Second) // the writer is going when the backup lists the partitions
	m := f.backup(t)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	wg.Wait()
	elapsed := time.Since(started)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if rate := float64(inserted.Load()) / elapsed.Seconds(); rate < 2000 {
		t.Fatalf("the writer managed %.0f rows/s; the test needs ≥ 2,000", rate)
	}

	copyDB := f.db + "_copy"
	f.restore(t, m, restore.Options{DatabaseMap: map[string]string{f.db: copyDB}, Tables: []string{f.db + ".traces"}})
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, tbl := range sec.Tables {
		if tbl.Name != "traces" {
			continue
		}
		for _, p := range tbl.Partitions {
			got := f.sql(t, 1, fmt.Sprintf("SELECT count() FROM %s.traces WHERE _partition_id = '%s'", copyDB, p.ID))
			if got != strconv.FormatUint(p.Rows, 10) {
				t.Errorf("restored traces partition %s holds %s rows, the manifest records %d", p.ID, got, p.Rows)
			}
			checked++
			if p.ID == month && p.Rows < 400_000 {
				t.Errorf("partition %s records %d rows, fewer than were there before the backup", p.ID, p.Rows)
			}
		}
	}
	if checked == 0 {
		t.Fatal("the snapshot has no traces partitions")
	}
	t.Logf("writer: %d rows in %s (%.0f rows/s)", inserted.Load(), elapsed.Round(time.Millisecond), float64(inserted.Load())/elapsed.Seconds())
}

// A trace whose output is the text of a ClickHouse exception, at the very end of its
// partition's data (the last row's last column), is data: it backs up and restores equal.
func TestTraceQuotingAnExceptionBacksUp(t *testing.T) {
	f := newFixture(t, 10)
	const quote = "Code: 241. DB::Exception: Memory limit exceeded"
	f.sql(t, 0, fmt.Sprintf(`CREATE TABLE %s.llm_output ON CLUSTER %s (id String, ts DateTime, output Nullable(String))
		ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/llm_output', '{replica}') PARTITION BY toYYYYMM(ts) ORDER BY id`, f.db, f.env.CHCluster, f.db))
	// One insert, one part, sorted by id: 'z' is the last row.
	f.sql(t, 0, fmt.Sprintf(`INSERT INTO %s.llm_output VALUES ('a', '2026-06-01 10:00:00', 'fine'), ('b', '2026-06-01 10:00:01', NULL), ('z', '2026-06-01 10:00:02', '%s')`, f.db, quote))
	f.sql(t, 0, fmt.Sprintf("SYSTEM SYNC REPLICA %s.llm_output", f.db))

	m := f.backup(t)
	var obj *store.ManifestObject
	for i := range m.Objects {
		if m.Objects[i].Table == "llm_output" {
			obj = &m.Objects[i]
		}
	}
	if obj == nil {
		t.Fatal("llm_output is not in the snapshot")
	}
	rc, err := f.repo.OpenObject(context.Background(), obj.ObjectRef)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte(quote)) || obj.Rows != 3 {
		t.Fatalf("the object (%d rows) does not end with the quoted exception: %q", obj.Rows, data[max(0, len(data)-60):])
	}

	want := f.sql(t, 0, fmt.Sprintf("SELECT * FROM %s.llm_output ORDER BY id FORMAT TSV", f.db))
	f.sql(t, 0, fmt.Sprintf("DROP TABLE %s.llm_output ON CLUSTER %s", f.db, f.env.CHCluster))
	f.restore(t, m, restore.Options{Tables: []string{f.db + ".llm_output"}})
	for i := range f.env.CHHTTP {
		f.sql(t, i, fmt.Sprintf("SYSTEM SYNC REPLICA %s.llm_output", f.db))
		if got := f.sql(t, i, fmt.Sprintf("SELECT * FROM %s.llm_output ORDER BY id FORMAT TSV", f.db)); got != want {
			t.Errorf("replica %d after restore:\n%s\nwant\n%s", i+1, got, want)
		}
	}
}
