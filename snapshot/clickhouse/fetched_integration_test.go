package clickhouse_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestWaitFetchedDoesNotWaitForAPostponedMerge holds the restore's wait for replication to what
// a replica holds: a replica whose merges are stopped keeps a MERGE_PARTS entry in its queue,
// which SYSTEM SYNC REPLICA waits for and WaitFetched does not; a replica whose fetches are
// stopped keeps a GET_PART entry, which WaitFetched waits for and names when it gives up.
func TestWaitFetchedDoesNotWaitForAPostponedMerge(t *testing.T) {
	env := devstack.Require(t)
	db := env.CHDatabase(t, "it_fetch")
	exec := func(i int, sql string) {
		t.Helper()
		if err := env.CHExec(i, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(0, fmt.Sprintf("CREATE TABLE %s.t ON CLUSTER %s (id UInt64, p UInt8) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/t', '{replica}') PARTITION BY p ORDER BY id",
		db, env.CHCluster, db))
	servers := dialAll(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wait := func(i int, stall time.Duration) error {
		return clickhouse.WaitFetched(ctx, servers[i], db, "t", stall, nil)
	}

	// The merge is asked of the leader, which runs it itself; the replica whose merges are
	// stopped is another.
	leader, stopped, fetchless := -1, -1, -1
	for i := range servers {
		var isLeader uint8
		if err := servers[i].Conn.QueryRow(ctx, "SELECT is_leader FROM system.replicas WHERE database = ? AND table = 't'", db).Scan(&isLeader); err != nil {
			t.Fatal(err)
		}
		switch {
		case isLeader == 1 && leader < 0:
			leader = i
		case stopped < 0:
			stopped = i
		default:
			fetchless = i
		}
	}
	if leader < 0 || stopped < 0 || fetchless < 0 {
		t.Fatalf("want a leader and two other replicas, got leader %d, others %d and %d", leader, stopped, fetchless)
	}
	table := db + ".t"
	exec(stopped, "SYSTEM STOP MERGES "+table)
	t.Cleanup(func() { _ = env.CHExec(stopped, "SYSTEM START MERGES "+table) })
	for id := 1; id <= 3; id++ {
		exec(leader, fmt.Sprintf("INSERT INTO %s VALUES (%d, 1)", table, id))
	}
	if err := wait(stopped, time.Minute); err != nil {
		t.Fatal(err)
	}
	// OPTIMIZE would wait for every replica to merge (18.16): it only needs to queue the merge.
	async := ch.Context(ctx, ch.WithSettings(ch.Settings{"replication_alter_partitions_sync": 0}))
	if err := servers[leader].Conn.Exec(async, "OPTIMIZE TABLE "+table+" PARTITION 1 FINAL"); err != nil {
		t.Fatal(err)
	}

	// What the restore waited on before: SYNC REPLICA does not return while the merge waits.
	syncer, err := clickhouse.Dial(ctx, env.CHNative[stopped], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer syncer.Close()
	syncCtx, syncCancel := context.WithTimeout(ctx, 5*time.Second)
	err = syncer.Conn.Exec(syncCtx, "SYSTEM SYNC REPLICA "+table)
	syncCancel()
	if err == nil {
		t.Fatal("SYSTEM SYNC REPLICA returned with the replica's merges stopped: this test no longer shows a postponed merge")
	}

	start := time.Now()
	if err := wait(stopped, time.Minute); err != nil {
		t.Fatalf("WaitFetched on a replica with a postponed merge: %v", err)
	}
	var merges uint64
	if err := servers[stopped].Conn.QueryRow(ctx, "SELECT count() FROM system.replication_queue WHERE database = ? AND table = 't' AND type = 'MERGE_PARTS'", db).Scan(&merges); err != nil {
		t.Fatal(err)
	}
	if merges == 0 {
		t.Fatal("the stopped replica has no MERGE_PARTS entry left: this test no longer shows a postponed merge")
	}
	t.Logf("WaitFetched returned after %s with %d merge(s) postponed", time.Since(start).Round(time.Millisecond), merges)

	// A fetch that cannot happen is waited for, and named when the wait gives up.
	exec(fetchless, "SYSTEM STOP FETCHES "+table)
	t.Cleanup(func() { _ = env.CHExec(fetchless, "SYSTEM START FETCHES "+table) })
	exec(leader, fmt.Sprintf("INSERT INTO %s VALUES (4, 2)", table))
	err = wait(fetchless, 3*time.Second)
	if err == nil || !strings.Contains(err.Error(), "GET_PART 2_") || !strings.Contains(err.Error(), "nothing moved for 3s") {
		t.Fatalf("WaitFetched with the replica's fetches stopped: want an error naming the GET_PART entry, got %v", err)
	}
	t.Logf("gave up as wanted: %v", err)
	exec(fetchless, "SYSTEM START FETCHES "+table)
	for i := range servers {
		if err := wait(i, time.Minute); err != nil {
			t.Fatal(err)
		}
		var rows uint64
		if err := servers[i].Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 4 {
			t.Errorf("replica %d holds %d rows after WaitFetched, want 4", i+1, rows)
		}
	}
}
