package clickhouse

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Partition is one unit of a ClickHouse backup: the active parts of one partition of a table.
type Partition struct {
	ID        string   `json:"id"`        // partition_id, as _partition_id and ATTACH PARTITION ID use it
	Partition string   `json:"partition"` // the partition key's value, e.g. 202605
	Parts     []string `json:"parts"`     // active part names, sorted
	Rows      uint64   `json:"rows"`
	Bytes     uint64   `json:"bytes"` // on disk, compressed
}

// Partitions lists the active partitions of a table from system.parts.
func Partitions(ctx context.Context, s *Server, db, table string) ([]Partition, error) {
	rows, err := s.Conn.Query(ctx, `SELECT partition_id, partition, groupArray(name), sum(rows), sum(bytes_on_disk)
		FROM system.parts WHERE database = ? AND table = ? AND active
		GROUP BY partition_id, partition ORDER BY partition_id`, db, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s.%s on %s: %w", db, table, s.Addr, err)
	}
	defer rows.Close()
	var out []Partition
	for rows.Next() {
		var p Partition
		if err := rows.Scan(&p.ID, &p.Partition, &p.Parts, &p.Rows, &p.Bytes); err != nil {
			return nil, fmt.Errorf("list partitions of %s.%s on %s: %w", db, table, s.Addr, err)
		}
		sort.Strings(p.Parts)
		out = append(out, p)
	}
	return out, rows.Err()
}

// Columns returns a table's "name type" list in table order (the order system.columns lists
// them in; 18.16 has no position column to sort by).
func Columns(ctx context.Context, s *Server, db, table string) ([]string, error) {
	rows, err := s.Conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = ?", db, table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s.%s on %s: %w", db, table, s.Addr, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read columns of %s.%s on %s: %w", db, table, s.Addr, err)
		}
		out = append(out, name+" "+typ)
	}
	return out, rows.Err()
}

// Fingerprint names a partition's content for incremental backups: if an earlier snapshot holds
// an object with the same fingerprint, that object is reused. Replicated part names are the same
// on every replica, so the source replica is left out and a backup may switch replicas and stay
// incremental; a local table's parts are that server's own, so its address is part of it. The
// columns are included because ALTER ADD COLUMN changes what SELECT * returns without renaming
// any part.
func Fingerprint(t Table, columns []string, p Partition, replicaAddr string) string {
	h := sha256.New()
	fmt.Fprintf(h, "clickhouse-partition/v1\n%s\n%s\n", t.FullName(), p.ID)
	if !t.Replicated() {
		fmt.Fprintf(h, "replica %s\n", replicaAddr)
	}
	fmt.Fprintf(h, "columns %s\nparts %s\nrows %d\n", strings.Join(columns, ", "), strings.Join(p.Parts, " "), p.Rows)
	return hex.EncodeToString(h.Sum(nil))
}
