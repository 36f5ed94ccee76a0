package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The ledger is what `demo load` wrote, kept so that a test can say exactly which rows a
// snapshot must contain: a snapshot whose cut is T holds every row acknowledged before T. It
// is an append-only file of JSON lines, one LedgerRecord per group of rows of one batch that
// share table, partition, operation and version, written after the server acknowledged the
// batch; readers stream it, so neither side's memory grows with the length of a run.

// Ledger operations. The generator keeps two invariants the counting relies on: an id is
// inserted once (OpInsert), and an id tombstoned (OpDelete) is never written again.
const (
	OpInsert = "insert" // a new id, its first version
	OpUpsert = "upsert" // a newer version of an id (ReplacingMergeTree keeps the highest)
	OpDelete = "delete" // a newer version with is_deleted = 1
	OpUpdate = "update" // PostgreSQL: an UPDATE of existing rows
)

// LedgerRecord is one group of rows acknowledged together.
type LedgerRecord struct {
	// Acked is when the server acknowledged the batch (the INSERT returned, the transaction
	// committed): a snapshot cut after it must hold these rows.
	Acked time.Time `json:"t"`
	// Table is "clickhouse:<table>" or "postgres:<table>".
	Table string `json:"table"`
	// Partition is the ClickHouse partition id (toYYYYMM), empty for PostgreSQL.
	Partition string `json:"p,omitempty"`
	Op        string `json:"op"`
	// Version is the rows' event_ts in Unix seconds, the ReplacingMergeTree version.
	Version int64    `json:"v,omitempty"`
	IDs     []string `json:"ids"`
}

// ledgerWriter appends records; Flush makes them visible to readers of the file.
type ledgerWriter struct {
	f   *os.File
	buf *bufio.Writer
	enc *json.Encoder
}

func createLedger(path string) (*ledgerWriter, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create load ledger %s: %w", path, err)
	}
	buf := bufio.NewWriterSize(f, 256<<10)
	return &ledgerWriter{f: f, buf: buf, enc: json.NewEncoder(buf)}, nil
}

func (w *ledgerWriter) append(r LedgerRecord) error {
	if w == nil || len(r.IDs) == 0 {
		return nil
	}
	if err := w.enc.Encode(r); err != nil {
		return fmt.Errorf("write load ledger %s: %w", w.f.Name(), err)
	}
	return nil
}

func (w *ledgerWriter) flush() error {
	if w == nil {
		return nil
	}
	if err := w.buf.Flush(); err != nil {
		return fmt.Errorf("write load ledger %s: %w", w.f.Name(), err)
	}
	return nil
}

func (w *ledgerWriter) close() error {
	if w == nil {
		return nil
	}
	err := w.flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close load ledger %s: %w", w.f.Name(), cerr)
	}
	return err
}

// Ledger reads a ledger file written by Load.
type Ledger struct{ Path string }

// Each calls fn for every record acknowledged before t, in the order they were written;
// a zero t means every record. A torn last line (the writer was killed mid-record) ends the
// ledger without error: its batch was acknowledged but never recorded, which only makes the
// expectation smaller.
func (l Ledger) Each(before time.Time, fn func(LedgerRecord) error) error {
	f, err := os.Open(l.Path)
	if err != nil {
		return fmt.Errorf("read load ledger: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(f, 256<<10))
	for n := 1; ; n++ {
		var r LedgerRecord
		err := dec.Decode(&r)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read load ledger %s record %d: %w", l.Path, n, err)
		}
		if !before.IsZero() && !r.Acked.Before(before) {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// LedgerKey names one table's partition ("" for PostgreSQL tables).
type LedgerKey struct{ Table, Partition string }

// LedgerCount is what one table's partition must hold.
type LedgerCount struct {
	Rows       int64 `json:"rows"`        // rows written, every version: count() before merges
	IDs        int64 `json:"ids"`         // distinct ids: count() FINAL, uniqExact(id)
	Deleted    int64 `json:"deleted"`     // ids whose newest version is a tombstone
	MaxVersion int64 `json:"max_version"` // newest event_ts written, Unix seconds
	Updates    int64 `json:"updates"`     // PostgreSQL rows updated (not new)
}

// Live is the ids whose newest version is not a tombstone: what Langfuse's queries show.
func (c LedgerCount) Live() int64 { return c.IDs - c.Deleted }

// RowsBefore counts, per table and partition, the rows acknowledged before t (zero: all),
// streaming the file: its memory grows with the number of partitions, not of rows.
func (l Ledger) RowsBefore(t time.Time) (map[LedgerKey]LedgerCount, error) {
	out := map[LedgerKey]LedgerCount{}
	err := l.Each(t, func(r LedgerRecord) error {
		k := LedgerKey{r.Table, r.Partition}
		c := out[k]
		n := int64(len(r.IDs))
		switch r.Op {
		case OpInsert:
			c.Rows += n
			c.IDs += n
		case OpUpsert:
			c.Rows += n
		case OpDelete:
			c.Rows += n
			c.Deleted += n
		case OpUpdate:
			c.Updates += n
		default:
			return fmt.Errorf("read load ledger %s: record of %s has unknown op %q", l.Path, r.Table, r.Op)
		}
		c.MaxVersion = max(c.MaxVersion, r.Version)
		out[k] = c
		return nil
	})
	return out, err
}

// Versions reads, per id of db.table LIKE pattern, the newest version (event_ts, in Unix
// seconds) the table holds: what a restore is held against the ledger's versions by.
func Versions(ctx context.Context, conn driver.Conn, db, table, pattern string) (map[string]int64, error) {
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT id, max(toUnixTimestamp(event_ts)) FROM `%s`.`%s` WHERE id LIKE ? GROUP BY id", db, table), pattern)
	if err != nil {
		return nil, fmt.Errorf("read the versions of %s.%s: %w", db, table, err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var id string
		var v uint32
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("read the versions of %s.%s: %w", db, table, err)
		}
		got[id] = int64(v)
	}
	return got, rows.Err()
}
