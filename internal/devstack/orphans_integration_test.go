package devstack_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestSweepOrphansDropsOnlyDeadProcessesDatabases: a database named as a scratch database of a
// process that has exited is dropped on every replica, with its table's ZooKeeper path, and in
// PostgreSQL, and its repository and container on Azurite are deleted; those of this (live)
// process are left alone.
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

	// On Azurite: a repository under each name in the stack's container, and a container each.
	az, err := azblob.NewClientFromConnectionString(env.AzureConnectionString, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The stack's container is made by the first repository created in it; this test may be
	// the first to use a new stack.
	if _, err := az.CreateContainer(ctx, env.AzureContainer, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		t.Fatal(err)
	}
	containerOf := func(db string) string { return strings.ReplaceAll(db, "_", "-") }
	for _, db := range []string{orphan, live} {
		if _, err := az.UploadBuffer(ctx, env.AzureContainer, db+"/config", []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := az.CreateContainer(ctx, containerOf(db), nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_, _ = az.DeleteBlob(context.Background(), env.AzureContainer, live+"/config", nil)
		_, _ = az.DeleteContainer(context.Background(), containerOf(live), nil)
	})

	dropped := env.SweepOrphans(t)
	// A sweep of a killed chaos run's debris takes minutes; the checks get their own time.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, want := range map[string]bool{
		orphan: true, env.AzureContainer + "/" + orphan: true, containerOf(orphan): true,
		live: false, env.AzureContainer + "/" + live: false, containerOf(live): false,
	} {
		if slices.Contains(dropped, name) != want {
			t.Errorf("sweep removed %v; want %s removed = %v", dropped, name, want)
		}
	}
	for db, want := range map[string]bool{orphan: false, live: true} {
		_, err := az.ServiceClient().NewContainerClient(env.AzureContainer).NewBlobClient(db+"/config").GetProperties(ctx, nil)
		if (err == nil) != want {
			t.Errorf("blob %s/%s/config: exists = %v; want %v", env.AzureContainer, db, err == nil, want)
		}
		_, err = az.ServiceClient().NewContainerClient(containerOf(db)).GetProperties(ctx, nil)
		if (err == nil) != want {
			t.Errorf("container %s: exists = %v; want %v", containerOf(db), err == nil, want)
		}
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
		_ = conn.Delete(queue+"/query-2/active/ch2", -1) // else the prune keeps query-2, and the queue stays
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
