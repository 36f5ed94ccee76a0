package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
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
	OpUpdate = "update" // an UPDATE of existing rows: PostgreSQL's, or ClickHouse's lightweight one (Set)
	// ClickHouse's writes in place (the modern load, Langfuse v4's way):
	OpErase    = "erase"    // a lightweight DELETE: the ids' rows are gone, every version
	OpTruncate = "truncate" // TRUNCATE TABLE: every row of the table is gone; no ids
	OpOptimize = "optimize" // OPTIMIZE TABLE ... FINAL of a partition: merged, read the same; no ids
)

// LedgerRecord is one group of rows acknowledged together.
type LedgerRecord struct {
	// Acked is when the server acknowledged the batch (the INSERT returned, the transaction
	// committed): a snapshot cut after it must hold these rows.
	Acked time.Time `json:"t"`
	// Sent is when the statement was sent (the modern load records it): a snapshot that ended
	// after Sent and before Acked may or may not hold it, since the server applied it at some
	// moment in between.
	Sent time.Time `json:"s,omitzero"`
	// Table is "clickhouse:<table>" or "postgres:<table>".
	Table string `json:"table"`
	// Partition is the ClickHouse partition id (toYYYYMM), empty for PostgreSQL.
	Partition string `json:"p,omitempty"`
	Op        string `json:"op"`
	// Version is the rows' event_ts in Unix seconds, the ReplacingMergeTree version.
	Version int64    `json:"v,omitempty"`
	IDs     []string `json:"ids"`
	// Set is, for the modern load's inserts and updates, the tracked columns' values (see
	// ModernTracked) the rows were written with or set to, as toString renders them.
	Set map[string]string `json:"set,omitempty"`
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
	if w == nil || (len(r.IDs) == 0 && r.Op != OpTruncate && r.Op != OpOptimize) {
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
	Updates    int64 `json:"updates"`     // rows updated (not new): PostgreSQL's, ClickHouse's lightweight
	Erased     int64 `json:"erased"`      // ids a lightweight DELETE removed: in neither Rows nor IDs
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
		case OpErase: // of rows with one version each, as the modern load writes them
			c.Rows -= n
			c.IDs -= n
			c.Erased += n
		case OpTruncate:
			for k := range out {
				if k.Table == r.Table {
					delete(out, k)
				}
			}
			return nil
		case OpOptimize:
			return nil
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

// LedgerRow is what one row a load wrote must read as: its partition and its tracked columns'
// values (LedgerRecord.Set), as toString renders them.
type LedgerRow struct {
	Partition string
	Values    map[string]string
}

// Expected replays the records acknowledged before t (zero: all) into the rows each table must
// hold of what the load wrote, by "clickhouse:<table>" and id: a snapshot cut at t holds
// exactly these, read with FINAL (newest version, tombstones and erased rows gone). An update
// applies to the ids it names that are there; an update or delete of ids the load did not
// insert (seeded rows) changes nothing here. A table truncated before t holds nothing written
// before the truncate, and its key is present even when empty. Memory grows with the rows
// expected, which suits the checks of runs of minutes it is for.
func (l Ledger) Expected(t time.Time) (map[string]map[string]LedgerRow, error) {
	p := NewLedgerReplay(nil)
	err := l.Each(t, func(r LedgerRecord) error {
		_, err := p.Apply(r)
		return err
	})
	return p.Rows, err
}

// LedgerReplay applies ledger records one at a time, as Expected does at once, and keeps each
// partition's count and Digest current. A snapshot's partitions are each read at their own
// moment after its cut, so a check replays the records acknowledged from the cut on, one by
// one, and asks after each which partitions then read as restored.
type LedgerReplay struct {
	// Rows is what the tables hold after the records applied so far, as Expected returns it.
	Rows map[string]map[string]LedgerRow
	cols []string
	sums map[LedgerKey]PartitionDigest
}

// PartitionDigest is the count and Digest of one partition's rows.
type PartitionDigest struct {
	Rows int64
	Sum  uint64
}

// NewLedgerReplay starts from empty tables; cols are the columns each partition's Digest covers.
func NewLedgerReplay(cols []string) *LedgerReplay {
	return &LedgerReplay{Rows: map[string]map[string]LedgerRow{}, cols: cols, sums: map[LedgerKey]PartitionDigest{}}
}

// Digest is partition k's count and Digest now.
func (p *LedgerReplay) Digest(k LedgerKey) PartitionDigest { return p.sums[k] }

// Apply applies one record and returns the partitions whose rows it changed.
func (p *LedgerReplay) Apply(r LedgerRecord) ([]LedgerKey, error) {
	rows := p.Rows[r.Table]
	if rows == nil {
		rows = map[string]LedgerRow{}
		p.Rows[r.Table] = rows
	}
	var touched []LedgerKey
	// put replaces id's row (ok: by row; !ok: by none), keeping the digests of the partitions
	// it leaves and enters.
	put := func(id string, row LedgerRow, ok bool) {
		if old, had := rows[id]; had {
			p.add(r.Table, id, old, -1, &touched)
			delete(rows, id)
		}
		if ok {
			rows[id] = row
			p.add(r.Table, id, row, 1, &touched)
		}
	}
	switch r.Op {
	case OpInsert, OpUpsert:
		for _, id := range r.IDs {
			put(id, LedgerRow{Partition: r.Partition, Values: withValues(rows[id].Values, r.Set)}, true)
		}
	case OpUpdate:
		for _, id := range r.IDs {
			if row, ok := rows[id]; ok {
				put(id, LedgerRow{Partition: row.Partition, Values: withValues(row.Values, r.Set)}, true)
			}
		}
	case OpDelete, OpErase:
		for _, id := range r.IDs {
			put(id, LedgerRow{}, false)
		}
	case OpTruncate:
		for id := range rows {
			put(id, LedgerRow{}, false)
		}
	case OpOptimize:
	default:
		return nil, fmt.Errorf("read load ledger: record of %s has unknown op %q", r.Table, r.Op)
	}
	return touched, nil
}

// add adds (sign 1) or takes away (-1) one row from its partition's digest.
func (p *LedgerReplay) add(table, id string, row LedgerRow, sign int64, touched *[]LedgerKey) {
	k := LedgerKey{table, row.Partition}
	d := p.sums[k]
	d.Rows += sign
	d.Sum += uint64(sign) * rowHash(id, row, p.cols)
	if d.Rows == 0 {
		delete(p.sums, k)
	} else {
		p.sums[k] = d
	}
	if !slices.Contains(*touched, k) {
		*touched = append(*touched, k)
	}
}

// withValues is a copy of old with set applied: rows never share a map, so an update of one
// leaves the others as they were.
func withValues(old, set map[string]string) map[string]string {
	v := make(map[string]string, len(old)+len(set))
	maps.Copy(v, old)
	maps.Copy(v, set)
	return v
}

// Digest sums, in any order, a hash of each row's id, partition and values of cols: two sets
// of rows with the same count and digest are, but for a 64-bit collision, the same.
func Digest(rows map[string]LedgerRow, cols []string) (n int64, sum uint64) {
	for id, row := range rows {
		sum += rowHash(id, row, cols)
		n++
	}
	return n, sum
}

func rowHash(id string, row LedgerRow, cols []string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	h.Write([]byte{0})
	h.Write([]byte(row.Partition))
	for _, c := range cols {
		h.Write([]byte{0})
		h.Write([]byte(row.Values[c]))
	}
	return h.Sum64()
}

// ReadRows reads what Expected describes from db.table as Langfuse's queries see it (FINAL):
// the rows whose idColumn starts with prefix, with their partition and the values of cols.
func ReadRows(ctx context.Context, conn driver.Conn, db, table, idColumn, prefix string, cols []string) (map[string]LedgerRow, error) {
	sel := make([]string, 0, len(cols))
	for _, c := range cols {
		sel = append(sel, "toString("+chsnap.QuoteIdent(c)+")")
	}
	q := fmt.Sprintf("SELECT %s, _partition_id, CAST([%s], 'Array(String)') FROM %s.%s FINAL WHERE startsWith(%s, ?)", chsnap.QuoteIdent(idColumn), strings.Join(sel, ", "),
		chsnap.QuoteIdent(db), chsnap.QuoteIdent(table), chsnap.QuoteIdent(idColumn))
	rs, err := conn.Query(ctx, q, prefix)
	if err != nil {
		return nil, fmt.Errorf("read the rows of %s.%s: %w", db, table, err)
	}
	defer rs.Close()
	out := map[string]LedgerRow{}
	for rs.Next() {
		var id, part string
		var vals []string
		if err := rs.Scan(&id, &part, &vals); err != nil {
			return nil, fmt.Errorf("read the rows of %s.%s: %w", db, table, err)
		}
		row := LedgerRow{Partition: part, Values: make(map[string]string, len(cols))}
		for i, c := range cols {
			row.Values[c] = vals[i]
		}
		out[id] = row
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read the rows of %s.%s: %w", db, table, err)
	}
	return out, nil
}
