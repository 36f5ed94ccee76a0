package restore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// TestRestoreDoesNotWaitForAPostponedMerge: a restore over a table one of whose replicas has a
// merge queued that it will not run (its merges stopped, as a loaded 18.16 server postpones a
// large merge while its pool is busy) finishes and equals its manifest. It waited on SYSTEM
// SYNC REPLICA, which waits for that merge too: the full chaos suite failed a drill after ten
// minutes of it.
func TestRestoreDoesNotWaitForAPostponedMerge(t *testing.T) {
	env := devstack.Require(t)
	db, into := env.CHDatabase(t, "it_pm"), env.CHDatabase(t, "it_pmc")
	create := "CREATE TABLE %s.t ON CLUSTER %s (d Date, id UInt64, v UInt32, payload String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/t', '{replica}') PARTITION BY toYYYYMM(d) ORDER BY id"
	for _, name := range []string{db, into} {
		if err := env.CHExec(0, fmt.Sprintf(create, name, env.CHCluster, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.CHExec(0, "INSERT INTO "+db+".t SELECT toDate('2026-01-01') + (number % 2) * 31, number, 1, toString(number) FROM system.numbers LIMIT 1000"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	repo := chtest.Repo(t)
	conn := clickhouse.ConnOptions{User: "default"}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{&clickhouse.Source{Native: env.CHNative, HTTP: env.CHHTTP, Conn: conn, Cluster: env.CHCluster,
		Filter: clickhouse.Filter{Databases: []string{db}}, Log: chtest.Quiet}}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}

	// The target holds a partition the snapshot does not (202603), in three parts; replica 2
	// stops its merges, and a merge of them is queued on every replica.
	target := into + ".t"
	if err := env.CHExec(1, "SYSTEM STOP MERGES "+target); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.CHExec(1, "SYSTEM START MERGES "+target) })
	for i := range 3 {
		if err := env.CHExec(0, fmt.Sprintf("INSERT INTO %s VALUES ('2026-03-01', %d, 1, 'x')", target, 5000+i)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := clickhouse.Dial(ctx, env.CHNative[0], conn)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	async := ch.Context(ctx, ch.WithSettings(ch.Settings{"replication_alter_partitions_sync": 0}))
	if err := first.Conn.Exec(async, "OPTIMIZE TABLE "+target+" PARTITION 202603 FINAL"); err != nil {
		t.Fatal(err)
	}
	second, err := clickhouse.Dial(ctx, env.CHNative[1], conn)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		var merges uint64
		if err := second.Conn.QueryRow(ctx, "SELECT count() FROM system.replication_queue WHERE database = ? AND table = 't' AND type = 'MERGE_PARTS'", into).Scan(&merges); err != nil {
			t.Fatal(err)
		}
		if merges > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no merge queued on replica 2 within a minute: this test no longer shows a postponed merge")
		}
		time.Sleep(200 * time.Millisecond)
	}

	restoreCtx, restoreCancel := context.WithTimeout(ctx, 90*time.Second)
	defer restoreCancel()
	if _, err := planAndRestore(restoreCtx, restore.Options{Native: env.CHNative, HTTP: env.CHHTTP, Conn: conn, Cluster: env.CHCluster,
		DatabaseMap: map[string]string{db: into}, Log: chtest.Quiet}, repo, m, nil); err != nil {
		t.Fatalf("restore with a merge postponed on replica 2: %v", err)
	}
	// The snapshot's partitions come back as backed up; 202603 is left as it was.
	want := partitionSums(t, env, 0, db, "t")
	for i := range env.CHHTTP {
		var got []string
		for _, line := range strings.Split(partitionSums(t, env, i, into, "t"), "\n") {
			if !strings.HasPrefix(line, "202603\t") {
				got = append(got, line)
			}
		}
		if strings.Join(got, "\n") != want {
			t.Errorf("replica %d (partition, rows, hash):\n%s\nbacked up:\n%s", i+1, strings.Join(got, "\n"), want)
		}
	}
}
