package restore

import (
	"context"
	"fmt"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// stage loads a partition's object into the staging table, from the start: the partition is
// emptied of what an earlier, interrupted run or an attempt whose connection broke left of it
// (other partitions of the staging table may be loading beside it), and the object is read
// again from the repository. Native objects load through the HTTP interface, whose Load returns
// from a broken connection only once the server no longer runs the INSERT, so that nothing of
// it lands after the partition was emptied.
func (r *Restorer) stage(ctx context.Context, repo *store.Repository, srv *clickhouse.Server, s Step, db, staging string) error {
	stagingFull := clickhouse.QuoteIdent(db) + "." + clickhouse.QuoteIdent(staging)
	native := s.table.PartitionFormat(s.Partition) != clickhouse.FormatPartsTar
	if native && r.httpOf[srv.Addr] == "" {
		return fmt.Errorf("native objects load through the HTTP interface: set [clickhouse] http_addresses")
	}
	if err := srv.Conn.Exec(ctx, "ALTER TABLE "+stagingFull+" DROP PARTITION ID "+clickhouse.QuoteString(s.Partition)); err != nil {
		return fmt.Errorf("empty staging table %s partition %s on %s: %w", stagingFull, s.Partition, srv.Addr, err)
	}
	obj, err := repo.OpenObject(ctx, s.ref)
	if err != nil {
		return err
	}
	defer obj.Close()
	// The format comes from the snapshot's record, so restore-replica's steps load right too.
	if !native {
		return r.attachParts(ctx, srv, db, staging, s.Partition, obj)
	}
	h := &clickhouse.HTTP{Addr: r.httpOf[srv.Addr], User: r.opts.Conn.User, Password: r.opts.Conn.Password, Settings: insertSettings(srv),
		StallTimeout: r.opts.Conn.StallTimeout}
	return h.Load(ctx, "INSERT INTO "+stagingFull+" FORMAT Native", obj)
}
