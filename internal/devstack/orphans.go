package devstack

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// scratchShape matches the names ScratchName makes (prefix, process id, nanoseconds) and
// those a test derives from them with a suffix (a drill's "_drill").
var scratchShape = regexp.MustCompile(`^[a-z][a-z0-9_]*?_([0-9]+)_[0-9]{1,9}(_[a-z0-9_]+)?$`)

// orphaned reports whether name is a scratch database whose test process is gone: a run
// stopped by a timeout or by hand never reaches its cleanup.
func orphaned(name string, alive func(pid int) bool) bool {
	m := scratchShape.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil || pid < 2 {
		return false
	}
	return !alive(pid)
}

// SweepOrphans removes the scratch databases that earlier test processes left behind when they
// were killed before their cleanup: on every ClickHouse replica (with their tables' ZooKeeper
// paths), on ch-modern and in PostgreSQL, and their repositories and containers on Azurite. The
// suites that restart servers call it first, because such debris outlives its ZooKeeper state
// and can stop a replica from starting again ("The local set of parts of table … doesn't look
// like the set of parts in ZooKeeper"). It returns the names removed; a server it cannot reach
// is left for the next sweep.
func (e *Env) SweepOrphans(tb testing.TB) []string {
	tb.Helper()
	dropped := map[string]bool{}
	for i, addr := range e.CHHTTP {
		names, err := httpQuery(addr, "SELECT name FROM system.databases")
		if err != nil {
			continue
		}
		for _, name := range strings.Fields(names) {
			if orphaned(name, processAlive) {
				if err := e.CHExec(i, "DROP DATABASE IF EXISTS "+name); err != nil {
					tb.Logf("sweep: drop orphaned database %s on %s: %v", name, addr, err)
					continue
				}
				dropped[name] = true
			}
		}
	}
	if conn, _, err := zk.Connect([]string{e.ZK}, 10*time.Second, zk.WithLogInfo(false)); err == nil {
		shards, _, _ := conn.Children("/clickhouse/tables")
		for name := range dropped {
			for _, shard := range shards {
				deleteTree(conn, "/clickhouse/tables/"+shard+"/"+name)
			}
		}
		if n := PruneDDLQueue(conn, ddlQueue, time.Now().Add(-time.Hour)); n > 0 {
			tb.Logf("sweep: removed %d distributed DDL tasks older than an hour from %s", n, ddlQueue)
		}
		conn.Close()
	}
	if e.CHModernHTTP != "" {
		if names, err := e.ModernQuery("SELECT name FROM system.databases"); err == nil {
			for _, name := range strings.Fields(names) {
				if orphaned(name, processAlive) {
					if _, err := e.ModernQuery("DROP DATABASE IF EXISTS " + name + " SYNC"); err == nil {
						dropped[name] = true
					}
				}
			}
		}
	}
	for _, name := range e.sweepPostgres(tb) {
		dropped[name] = true
	}
	for _, name := range e.sweepAzurite(tb) {
		dropped[name] = true
	}
	var out []string
	for name := range dropped {
		out = append(out, name)
	}
	if len(out) > 0 {
		tb.Logf("sweep: removed %d databases, repositories and containers left by test processes that are gone: %s", len(out), strings.Join(out, ", "))
	}
	return out
}

func (e *Env) sweepPostgres(tb testing.TB) []string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, e.PGDSN)
	if err != nil {
		return nil
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate")
	if err != nil {
		return nil
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range names {
		if !orphaned(name, processAlive) {
			continue
		}
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Logf("sweep: %v", fmt.Errorf("drop orphaned postgresql database %s: %w", name, err))
			continue
		}
		out = append(out, name)
	}
	return out
}

// ddlQueue is where the stack's 18.16 replicas queue their ON CLUSTER statements (the servers'
// default distributed_ddl path).
const ddlQueue = "/clickhouse/task_queue/ddl"

// PruneDDLQueue deletes the tasks of a distributed DDL queue created before before that no
// server is running, and returns how many it deleted. A lab that lives for weeks keeps its queue
// at the servers' limit of 1,000 tasks, where CI starts empty: an 18.16 server's DDL worker
// reads every task of the queue on each cleanup pass, one ZooKeeper request after another, and
// on the replica taking a chaos run's writes that pass took about three minutes, which each
// CREATE … ON CLUSTER of a restore waited for. A task an hour old that some replica never ran
// is a long-gone test's, queued while that replica was down.
func PruneDDLQueue(conn *zk.Conn, queue string, before time.Time) int {
	tasks, _, err := conn.Children(queue)
	if err != nil {
		return 0
	}
	n := 0
	for _, task := range tasks {
		p := queue + "/" + task
		ok, st, err := conn.Exists(p)
		if err != nil || !ok || !time.UnixMilli(st.Ctime).Before(before) {
			continue
		}
		if running, _, err := conn.Children(p + "/active"); err == nil && len(running) > 0 {
			continue
		}
		deleteTree(conn, p)
		if ok, _, _ := conn.Exists(p); !ok {
			n++
		}
	}
	return n
}

// sweepAzurite deletes what killed test processes left on Azurite: a scratch container, whose
// name uses "-" where ScratchName uses "_", and a repository under a scratch prefix of the
// stack's container (a chaos run's holds gigabytes: such leftovers filled this machine's disk
// once). Azurite deletes one blob a request, so eight go at once; what five minutes do not
// reach is left for the next sweep.
func (e *Env) sweepAzurite(tb testing.TB) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	client, err := azblob.NewClientFromConnectionString(e.AzureConnectionString, nil)
	if err != nil {
		return nil
	}
	var (
		mu    sync.Mutex
		swept = map[string]bool{}
	)
	containers := client.NewListContainersPager(nil)
	for containers.More() {
		page, err := containers.NextPage(ctx)
		if err != nil {
			break
		}
		for _, c := range page.ContainerItems {
			if !orphaned(strings.ReplaceAll(*c.Name, "-", "_"), processAlive) {
				continue
			}
			if _, err := client.DeleteContainer(ctx, *c.Name, nil); err != nil {
				tb.Logf("sweep: delete container %s on azurite: %v", *c.Name, err)
				continue
			}
			swept[*c.Name] = true
		}
	}
	var g errgroup.Group
	g.SetLimit(8)
	blobs := client.NewListBlobsFlatPager(e.AzureContainer, nil)
	for blobs.More() {
		page, err := blobs.NextPage(ctx)
		if err != nil {
			break
		}
		for _, b := range page.Segment.BlobItems {
			name := *b.Name
			prefix, _, nested := strings.Cut(name, "/")
			if !nested || !orphaned(prefix, processAlive) {
				continue
			}
			g.Go(func() error {
				if _, err := client.DeleteBlob(ctx, e.AzureContainer, name, nil); err != nil {
					return nil // listed again by the next sweep
				}
				mu.Lock()
				swept[e.AzureContainer+"/"+prefix] = true
				mu.Unlock()
				return nil
			})
		}
	}
	_ = g.Wait()
	var out []string
	for name := range swept {
		out = append(out, name)
	}
	return out
}
