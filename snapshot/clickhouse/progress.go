package clickhouse

import (
	"context"
	"fmt"

	"github.com/tracevault/tracevault/snapshot/progress"
)

// plan tells rep what a backup will move, from system.parts: per partition the rows and the bytes
// of its stream (uncompressed in logical mode, where the Native format is about the columns'
// size; on disk in freeze mode, where the parts are copied as they are). A replicated table is
// read from one replica, a local one from every replica that has it. It runs inside Backup, on
// its connections and its discovery: as a separate Planner it connected to every replica and
// discovered the tables a second time, a fixed cost every incremental backup paid.
func (s *Source) plan(ctx context.Context, servers []*Server, tables []Table, rep progress.Reporter) error {
	size := "data_uncompressed_bytes"
	if s.Mode == ModeFreeze {
		size = "bytes_on_disk"
	}
	// Units are partitions, as the backup stores them: once for a replicated table, once per
	// replica that has it for a local one.
	type key struct{ table, partition string }
	type amount struct{ rows, bytes uint64 }
	replicated := map[key]amount{}
	var units []progress.Unit
	want := map[string]Table{}
	for _, t := range tables {
		if t.HasData() {
			want[t.FullName()] = t
		}
	}
	for _, srv := range servers {
		rows, err := srv.Conn.Query(ctx, "SELECT concat(database, '.', table), partition_id, sum(rows), sum("+size+") FROM system.parts WHERE active GROUP BY database, table, partition_id ORDER BY database, table, partition_id")
		if err != nil {
			return fmt.Errorf("size the partitions on %s: %w", srv.Addr, err)
		}
		for rows.Next() {
			var k key
			var a amount
			if err := rows.Scan(&k.table, &k.partition, &a.rows, &a.bytes); err != nil {
				rows.Close()
				return fmt.Errorf("size the partitions on %s: %w", srv.Addr, err)
			}
			t, ok := want[k.table]
			if _, patch := PatchPartitionOf(k.partition); patch && srv.Caps.PatchParts {
				// Patch parts are exported with the partition whose rows they update, and
				// their rows are changes to that partition's rows, not rows of their own.
				continue
			}
			switch {
			case !ok:
			case t.Replicated():
				// Replicas converge; the largest is the one least behind.
				r := replicated[k]
				replicated[k] = amount{max(r.rows, a.rows), max(r.bytes, a.bytes)}
			default:
				units = append(units, progress.Unit{Source: s.Name(), Table: k.table, Partition: k.partition, Rows: int64(a.rows), Bytes: int64(a.bytes)})
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("size the partitions on %s: %w", srv.Addr, err)
		}
	}
	for k, a := range replicated {
		units = append(units, progress.Unit{Source: s.Name(), Table: k.table, Partition: k.partition, Rows: int64(a.rows), Bytes: int64(a.bytes)})
	}
	for _, u := range units {
		rep.Plan(u)
	}
	return nil
}
