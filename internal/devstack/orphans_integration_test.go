package devstack_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestSweepOrphansDropsOnlyDeadProcessesDatabases: a database named as a scratch database of a
// process that has exited is dropped on every replica, with its table's ZooKeeper path, and in
// PostgreSQL; one of this (live) process is left alone.
func TestSweepOrphansDropsOnlyDeadProcessesDatabases(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	orphan := fmt.Sprintf("it_sweep_%d_1", gone.Process.Pid)
	live := fmt.Sprintf("it_sweep_%d_2", os.Getpid())
	for _, db := range []string{orphan, live} {
		for _, sql := range []string{
			"CREATE DATABASE " + db + " ON CLUSTER " + env.CHCluster,
			"CREATE TABLE " + db + ".t ON CLUSTER " + env.CHCluster + " (d Date, x UInt8) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/" + db + "/t', '{replica}', d, x, 8192)",
		} {
			if err := env.CHExec(0, sql); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		for i := range env.CHHTTP {
			_ = env.CHExec(i, "DROP DATABASE IF EXISTS "+live)
		}
	})
	pg, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close(context.Background())
	if _, err := pg.Exec(ctx, "CREATE DATABASE "+orphan); err != nil {
		t.Fatal(err)
	}

	dropped := env.SweepOrphans(t)
	if !slices.Contains(dropped, orphan) || slices.Contains(dropped, live) {
		t.Fatalf("sweep dropped %v; want %s and not %s", dropped, orphan, live)
	}
	for i, addr := range env.CHHTTP {
		for db, want := range map[string]string{orphan: "0", live: "1"} {
			out, err := exec.CommandContext(ctx, "curl", "-sS", "--data-binary", "SELECT count() FROM system.databases WHERE name = '"+db+"'", "http://"+addr+"/").Output()
			if err != nil {
				t.Fatalf("replica %d: %v", i+1, err)
			}
			if got := string(out); got != want+"\n" {
				t.Errorf("replica %d holds %s %q times; want %s", i+1, db, got, want)
			}
		}
	}
	conn, _, err := zk.Connect([]string{env.ZK}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if ok, _, _ := conn.Exists("/clickhouse/tables/01/" + orphan); ok {
		t.Errorf("ZooKeeper still holds /clickhouse/tables/01/%s", orphan)
	}
	var n int
	if err := pg.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", orphan).Scan(&n); err != nil || n != 0 {
		t.Errorf("postgresql still holds %s (%d, %v)", orphan, n, err)
	}
}

// TestPruneDDLQueueKeepsNewAndRunningTasks: in a queue of its own (the servers' queue is not
// touched), a task created before the cutoff is deleted with its children; one a server is
// running and one created after the cutoff stay.
func TestPruneDDLQueueKeepsNewAndRunningTasks(t *testing.T) {
	env := devstack.Require(t)
	conn, _, err := zk.Connect([]string{env.ZK}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	root := fmt.Sprintf("/tracevault_it_prune_%d", os.Getpid())
	queue := root + "/ddl"
	t.Cleanup(func() {
		devstack.PruneDDLQueue(conn, queue, time.Now().Add(time.Hour))
		_ = conn.Delete(queue, -1)
		_ = conn.Delete(root, -1)
	})
	create := func(p string) {
		t.Helper()
		if _, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	for _, p := range []string{root, queue,
		queue + "/query-1", queue + "/query-1/finished", queue + "/query-1/finished/ch1", queue + "/query-1/active",
		queue + "/query-2", queue + "/query-2/active", queue + "/query-2/active/ch2",
	} {
		create(p)
	}
	time.Sleep(50 * time.Millisecond) // ZooKeeper's ctime is in milliseconds
	cutoff := time.Now()
	time.Sleep(50 * time.Millisecond)
	create(queue + "/query-3")

	if n := devstack.PruneDDLQueue(conn, queue, cutoff); n != 1 {
		t.Errorf("pruned %d tasks; want 1", n)
	}
	for task, want := range map[string]bool{"query-1": false, "query-2": true, "query-3": true} {
		if ok, _, err := conn.Exists(queue + "/" + task); err != nil || ok != want {
			t.Errorf("%s exists = %v (%v); want %v", task, ok, err, want)
		}
	}
}
