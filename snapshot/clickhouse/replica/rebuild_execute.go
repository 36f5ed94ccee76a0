// Executing a replica rebuild's steps: recovering rows only the target held, waiting for the
// new replica to catch up, loading local tables from the snapshot, and verifying against the peer.

package replica

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

func recoveryName(table string, at time.Time) string {
	return fmt.Sprintf("__tracevault_recovered_%s_%s", table, at.UTC().Format("20060102T150405"))
}

// Execute runs a plan on the replica it was made for. Every step is idempotent or checks before
// acting, so rerunning restore-replica after an interruption plans what is left and does it.
func (b *Rebuilder) Execute(ctx context.Context, repo *store.Repository, plan *Plan, progress Progress) (*Result, error) {
	target := b.servers[plan.Replica]
	res := &Result{Verified: []string{}}
	for i, s := range plan.Steps {
		report := func(detail string) {
			if progress != nil {
				progress(i+1, len(plan.Steps), s, detail)
			}
		}
		var err error
		switch s.Action {
		case restore.ActionCreateDatabase, restore.ActionCreateTable, restore.ActionCreateView, restore.ActionDropTable, restore.ActionRestoreMetadata:
			err = target.Conn.Exec(ctx, s.SQL)
		case restore.ActionRecoverRows:
			var rec *Recovered
			if rec, err = b.recoverRows(ctx, target, plan.Peer, s); rec != nil {
				res.Recovered = append(res.Recovered, *rec)
			}
		case restore.ActionDropRegistration:
			err = clickhouse.DropRegistration(ctx, b.zk, s.ZooKeeperPath)
		case restore.ActionLoadPartition:
			err = b.loadLocal(ctx, repo, target, s)
		case restore.ActionSync:
			err = b.sync(ctx, target, s, report)
		case restore.ActionVerify:
			if err = b.verify(ctx, target, plan.Peer, s); err == nil {
				res.Verified = append(res.Verified, s.Target)
			}
		}
		if err != nil {
			return res, fmt.Errorf("restore-replica %s step %d/%d (%s %s): %w", plan.Name, i+1, len(plan.Steps), s.Action, s.Target, err)
		}
		report("")
	}
	return res, nil
}

// recoverRows keeps aside the rows of an isolated table that no peer has, comparing a hash of
// each whole row partition by partition (so memory holds one partition's hashes, not a table's).
// Without a peer every row is kept. An empty recovery table is dropped again.
func (b *Rebuilder) recoverRows(ctx context.Context, target *clickhouse.Server, peerAddr string, s Step) (*Recovered, error) {
	own := s.own
	name := recoveryName(own.Name, b.view.Taken)
	full := clickhouse.QuoteIdent(own.Database) + "." + clickhouse.QuoteIdent(name)
	src := clickhouse.QuoteIdent(own.Database) + "." + clickhouse.QuoteIdent(own.Name)
	create, err := clickhouse.RewriteCreate(own.Create, clickhouse.Rewrite{Database: own.Database, Table: name, Staging: true})
	if err != nil {
		return nil, err
	}
	if err := target.Conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("create recovery table %s on %s: %w", full, target.Addr, err)
	}
	cols, err := clickhouse.Columns(ctx, target, own.Database, own.Name)
	if err != nil {
		return nil, err
	}
	insert := "INSERT INTO " + full + " SELECT * FROM " + src
	peer := b.servers[peerAddr]
	peerHTTP, targetHTTP := b.opts.HTTP[peerAddr], b.opts.HTTP[target.Addr]
	switch {
	case peer != nil && (peerHTTP == "" || targetHTTP == ""):
		b.opts.Log.Warn("without the HTTP addresses of the replicas, every row of the isolated table is kept aside, not only those its peers lack; set [clickhouse] http_addresses", "table", s.Target)
		fallthrough
	case peer == nil || !sameColumns(ctx, peer, own, cols):
		if err := target.Conn.Exec(ctx, insert); err != nil {
			return nil, fmt.Errorf("copy rows of %s into %s: %w", src, full, err)
		}
	default:
		hash := rowHash(cols)
		parts, err := clickhouse.Partitions(ctx, target, own.Database, own.Name)
		if err != nil {
			return nil, err
		}
		hashes := clickhouse.QuoteIdent(own.Database) + "." + clickhouse.QuoteIdent("__tracevault_peer_hashes_"+own.Name)
		defer func() {
			if err := target.Conn.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+hashes); err != nil {
				b.opts.Log.Warn("could not drop scratch table", "table", hashes, "replica", target.Addr, "err", err)
			}
		}()
		from := &clickhouse.HTTP{Addr: peerHTTP, User: b.opts.Conn.User, Password: b.opts.Conn.Password, StallTimeout: b.opts.Conn.StallTimeout}
		to := &clickhouse.HTTP{Addr: targetHTTP, User: b.opts.Conn.User, Password: b.opts.Conn.Password, StallTimeout: b.opts.Conn.StallTimeout}
		for _, p := range parts {
			// Each attempt makes the hash table anew, so one whose connection broke is repeated.
			err := clickhouse.Retry(ctx, b.opts.Log, "copying a peer's row hashes broke off; copying them again",
				[]any{"table", s.Target, "partition", p.ID, "replica", target.Addr}, func() error {
					return copyPeerHashes(ctx, from, to, target, hashes, hash, src, p)
				})
			if err != nil {
				return nil, err
			}
			q := fmt.Sprintf("%s WHERE %s AND %s NOT IN %s", insert, clickhouse.InPartition(p), hash, hashes)
			if err := target.Conn.Exec(ctx, q); err != nil {
				return nil, fmt.Errorf("copy rows of %s partition %s found on no peer into %s: %w", src, p.ID, full, err)
			}
		}
	}
	var rows uint64
	if err := target.Conn.QueryRow(ctx, "SELECT count() FROM "+full).Scan(&rows); err != nil {
		return nil, fmt.Errorf("count %s on %s: %w", full, target.Addr, err)
	}
	if rows == 0 {
		return &Recovered{Table: s.Target}, target.Conn.Exec(ctx, "DROP TABLE IF EXISTS "+full)
	}
	b.opts.Log.Warn("rows found only on the isolated replica kept aside", "table", s.Target, "recovery_table", own.Database+"."+name, "rows", rows, "replica", target.Addr)
	return &Recovered{Table: s.Target, RecoveryTable: own.Database + "." + name, Rows: rows}, nil
}

// copyPeerHashes fills a Set table on the target with the row hashes of one partition on the
// peer (p as the target lists it, whose part names tell InPartition how the table names them).
// They are streamed through tracevault, from the peer's HTTP interface into the
// target's, rather than read by the target with remote(): that would put the credentials in
// the SQL text, which both servers keep in system.query_log.
func copyPeerHashes(ctx context.Context, from, to *clickhouse.HTTP, target *clickhouse.Server, hashes, hash, src string, p clickhouse.Partition) error {
	for _, sql := range []string{"DROP TABLE IF EXISTS " + hashes, "CREATE TABLE " + hashes + " (h UInt64) ENGINE = Set"} {
		if err := target.Conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("prepare %s on %s: %w", hashes, target.Addr, err)
		}
	}
	ns, err := from.QueryNative(ctx, fmt.Sprintf("SELECT %s AS h FROM %s WHERE %s FORMAT Native", hash, src, clickhouse.InPartition(p)))
	if err != nil {
		return fmt.Errorf("read the row hashes of %s partition %s on the peer: %w", src, p.ID, err)
	}
	defer ns.Close()
	if err := to.Load(ctx, "INSERT INTO "+hashes+" FORMAT Native", ns); err != nil {
		return fmt.Errorf("copy the peer's row hashes of %s partition %s to %s: %w", src, p.ID, target.Addr, err)
	}
	return nil
}

// sameColumns: rows can be matched by hash only when the peer has the same columns.
func sameColumns(ctx context.Context, peer *clickhouse.Server, t *clickhouse.Table, cols []string) bool {
	theirs, err := clickhouse.Columns(ctx, peer, t.Database, t.Name)
	if err != nil {
		return false
	}
	return strings.Join(theirs, ", ") == strings.Join(cols, ", ")
}

// rowHash hashes a whole row; toString of the tuple handles Nullable, Array and aggregate states
// alike, which the hash functions themselves do not on 18.16.
func rowHash(cols []string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		name, _, _ := strings.Cut(c, " ")
		names[i] = clickhouse.QuoteIdent(name)
	}
	return "sipHash64(toString(tuple(" + strings.Join(names, ", ") + ")))"
}

// sync waits until the new replica has fetched every part its replication log names,
// reporting its progress. It does not wait for merges: see clickhouse.WaitFetched.
func (b *Rebuilder) sync(ctx context.Context, target *clickhouse.Server, s Step, report func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, b.opts.SyncTimeout)
	defer cancel()
	db, table, _ := strings.Cut(s.Target, ".")
	err := clickhouse.WaitFetched(ctx, target, db, table, b.opts.SyncTimeout, func(left int) {
		report(fmt.Sprintf("%d parts left to fetch", left))
	})
	if err != nil {
		return fmt.Errorf("%s has not fetched its data within %s; rerun restore-replica to keep waiting: %w", s.Target, b.opts.SyncTimeout, err)
	}
	return nil
}

// verify compares rows per partition with the peer (or the snapshot), after letting the peer
// catch up too. A merge on the peer between the two reads can shift rows between parts but
// not between partitions; a Replacing merge can drop duplicates, so a mismatch is retried.
func (b *Rebuilder) verify(ctx context.Context, target *clickhouse.Server, peerAddr string, s Step) error {
	db, table, _ := strings.Cut(s.Target, ".")
	var diff string
	for attempt := 0; attempt < 5; attempt++ {
		mine, err := clickhouse.PartitionRows(ctx, target, db, table)
		if err != nil {
			return err
		}
		var want map[string]uint64
		if peer := b.servers[peerAddr]; peer != nil {
			if err := clickhouse.WaitFetched(ctx, peer, db, table, b.opts.SyncTimeout, nil); err != nil {
				return err
			}
			if want, err = clickhouse.PartitionRows(ctx, peer, db, table); err != nil {
				return err
			}
		} else {
			want = b.snapshotRows(s.Target)
		}
		if diff = partitionDiff(want, mine); diff == "" {
			return nil
		}
		if err := clickhouse.WaitFetched(ctx, target, db, table, b.opts.SyncTimeout, nil); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("verify %s: %w", s.Target, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("%s does not hold the peers' rows after syncing: %s; see 'tracevault check'", s.Target, diff)
}

func (b *Rebuilder) snapshotRows(name string) map[string]uint64 {
	out := map[string]uint64{}
	for _, t := range b.opts.Snapshot.Tables {
		if t.FullName() == name {
			for _, p := range t.Partitions {
				out[p.ID] = p.Rows
			}
		}
	}
	return out
}

// loadLocal loads a local table's partition from the snapshot, through the restore's staging
// table and REPLACE PARTITION, so a rerun never duplicates rows.
func (b *Rebuilder) loadLocal(ctx context.Context, repo *store.Repository, target *clickhouse.Server, s Step) error {
	if repo == nil {
		return fmt.Errorf("loading %s partition %s needs the snapshot's repository", s.Target, s.Partition)
	}
	return restore.LoadPartition(ctx, repo, target, restore.Options{Conn: b.opts.Conn, Log: b.opts.Log}, b.opts.HTTP,
		s.Target, s.rec, s.Partition, s.Object, s.Rows, s.ref)
}
