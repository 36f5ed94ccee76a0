package restore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// codeTimeoutExceeded is the server's answer to an ON CLUSTER statement that some replica has
// not run within distributed_ddl_task_timeout (180 s by default). The statement is not undone:
// it stays in the distributed DDL queue and runs when that replica's DDL worker reaches it.
const codeTimeoutExceeded = 159

// ddlPatience is how much longer a restore waits, past the server's own timeout, for replicas
// to run a CREATE … ON CLUSTER. On a loaded 18.16 cluster a replica's DDL worker fell over three
// minutes behind (the chaos suite, at a load average of 40), and failing the restore then threw
// away a restore that the next minutes would have let finish.
const ddlPatience = 10 * time.Minute

// isDDLTimeout says whether err is a server's distributed DDL timeout.
func isDDLTimeout(err error) bool {
	if ex, ok := errors.AsType[*chgo.Exception](err); ok {
		return ex.Code == codeTimeoutExceeded && strings.Contains(ex.Message, "distributed_ddl_task_timeout")
	}
	return false
}

// execCreate runs a create-database, create-table or create-view step on the first replica. When the
// statement went ON CLUSTER and some replica had not run it within the server's timeout, it
// waits (up to ddlPatience) until every reachable replica has the database or table, naming the
// ones it waits for, and fails naming them if they never do.
func (r *Restorer) execCreate(ctx context.Context, s Step) error {
	err := r.first.Conn.Exec(ctx, s.SQL)
	if err == nil || !isDDLTimeout(err) {
		return err
	}
	r.opts.Log.Warn("a replica has not run the CREATE within the server's distributed_ddl_task_timeout: its DDL queue is behind; waiting for it",
		"target", s.Target, "patience", ddlPatience)
	if werr := waitCreated(ctx, r.servers, s.Target, ddlPatience, 2*time.Second); werr != nil {
		return fmt.Errorf("%w; %w", err, werr)
	}
	r.opts.Log.Info("every reachable replica ran the CREATE", "target", s.Target)
	return nil
}

// waitCreated polls every server until each has target (a database, or database.table, a view
// being a table there),
// checking every interval, for at most patience.
func waitCreated(ctx context.Context, servers map[string]*clickhouse.Server, target string, patience, interval time.Duration) error {
	db, table, isTable := strings.Cut(target, ".")
	query := "SELECT count() FROM system.databases WHERE name = ?"
	args := []any{db}
	if isTable {
		query = "SELECT count() FROM system.tables WHERE database = ? AND name = ?"
		args = append(args, table)
	}
	deadline := time.Now().Add(patience)
	for {
		var missing []string
		for addr, srv := range servers {
			var n uint64
			if err := srv.Conn.QueryRow(ctx, query, args...).Scan(&n); err != nil || n == 0 {
				missing = append(missing, addr)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		slices.Sort(missing)
		if !time.Now().Before(deadline) {
			return fmt.Errorf("after waiting %s more, %s still lack %s: their distributed DDL workers are behind (ZooKeeper's /clickhouse/task_queue/ddl, or system.distributed_ddl_queue on 20.x+, shows the queue); the CREATE stays queued and runs when they catch up, and the restore can then be run again (its CREATEs are IF NOT EXISTS)",
				patience, strings.Join(missing, ", "), target)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to have %s: %w", strings.Join(missing, ", "), target, ctx.Err())
		case <-time.After(interval):
		}
	}
}
