package restore_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// TestParallelRestoreEqualsManifest: three replicated tables of six partitions each on the
// 18.16 cluster, one a Replacing table holding unmerged versions, restored into a new database
// with more loads than the pool has workers: every replica ends with each partition's rows as
// the manifest records them and the data backed up, and progress counts every step once.
func TestParallelRestoreEqualsManifest(t *testing.T) {
	env := devstack.Require(t)
	db, into := env.CHDatabase(t, "it_par"), env.CHDatabase(t, "it_parc")
	tables := map[string]string{
		"a": "ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/a', '{replica}')",
		"b": "ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/b', '{replica}')",
		"c": "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/c', '{replica}', v)",
	}
	for name, engine := range tables {
		create := fmt.Sprintf("CREATE TABLE %s.%s ON CLUSTER %s (d Date, id UInt64, v UInt32, payload String) ENGINE = %s PARTITION BY toYYYYMM(d) ORDER BY id",
			db, name, env.CHCluster, fmt.Sprintf(engine, db))
		if err := env.CHExec(0, create); err != nil {
			t.Fatal(err)
		}
		for i := range env.CHHTTP { // so that what was backed up stays as it was
			if err := env.CHExec(i, fmt.Sprintf("SYSTEM STOP MERGES %s.%s", db, name)); err != nil {
				t.Fatal(err)
			}
		}
		// Two inserts into c give every id two versions in two parts, which a merge would
		// fold: the rows must come back unmerged, as backed up.
		for v := range map[string]int{"a": 1, "b": 1, "c": 2}[name] {
			if err := env.CHExec(0, fmt.Sprintf("INSERT INTO %s.%s SELECT toDate('2026-01-01') + (number %% 6) * 31, number, %d, concat('p-', toString(cityHash64(number))) FROM system.numbers LIMIT 6000", db, name, v)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 1; i < len(env.CHHTTP); i++ {
			if err := env.CHExec(i, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", db, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	repo := chtest.Repo(t)
	conn := clickhouse.ConnOptions{User: "default"}
	src := &clickhouse.Source{Native: env.CHNative, HTTP: env.CHHTTP, Conn: conn, Cluster: env.CHCluster,
		Filter: clickhouse.Filter{Databases: []string{db}}, Log: chtest.Quiet}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	var mu sync.Mutex
	seen := map[int]bool{}
	total := 0
	plan, err := planAndRestore(ctx, restore.Options{Native: env.CHNative, HTTP: env.CHHTTP, Conn: conn, Cluster: env.CHCluster,
		DatabaseMap: map[string]string{db: into}, Parallel: 4, Log: chtest.Quiet}, repo, m, func(done, n int, s restore.Step) {
		mu.Lock()
		defer mu.Unlock()
		if seen[done] {
			t.Errorf("progress told of step %d twice", done)
		}
		seen[done], total = true, n
	})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(seen) != len(plan.Steps) || total != len(plan.Steps) {
		t.Errorf("progress told of %d steps of %d; the plan has %d", len(seen), total, len(plan.Steps))
	}

	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	loads := 0
	for _, tbl := range sec.Tables {
		var want []string
		for _, p := range tbl.Partitions {
			want = append(want, fmt.Sprintf("%s\t%d", p.ID, p.Rows))
		}
		loads += len(want)
		if len(want) != 6 {
			t.Fatalf("the snapshot holds %d partitions of %s, want 6", len(want), tbl.Name)
		}
		backedUp := partitionSums(t, env, 0, db, tbl.Name)
		for i := range env.CHHTTP {
			got := partitionSums(t, env, i, into, tbl.Name)
			var counts []string
			for _, line := range strings.Split(got, "\n") {
				f := strings.Split(line, "\t")
				counts = append(counts, f[0]+"\t"+f[1])
			}
			if strings.Join(counts, "\n") != strings.Join(want, "\n") {
				t.Errorf("replica %d %s (partition, rows):\n%s\nthe manifest:\n%s", i+1, tbl.Name, strings.Join(counts, "\n"), strings.Join(want, "\n"))
			}
			if got != backedUp {
				t.Errorf("replica %d %s (partition, rows, hash):\n%s\nbacked up:\n%s", i+1, tbl.Name, got, backedUp)
			}
		}
	}
	if loads <= 4 {
		t.Errorf("%d loads: not more than the pool's 4 workers", loads)
	}
}

// partitionSums is each partition's rows and content hash of db.table on replica i, as
// "id rows hash" lines.
func partitionSums(t *testing.T, env *devstack.Env, i int, db, table string) string {
	t.Helper()
	return queryTSV(t, env.CHHTTP[i], fmt.Sprintf("SELECT _partition_id AS p, count(), sum(cityHash64(id, v, payload)) FROM %s.%s GROUP BY p ORDER BY p FORMAT TSV", db, table))
}

// queryTSV is the answer of the server at an HTTP address to a query, without its last newline.
func queryTSV(t *testing.T, addr, q string) string {
	t.Helper()
	rc, err := (&clickhouse.HTTP{Addr: addr, User: "default"}).Query(context.Background(), q, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
