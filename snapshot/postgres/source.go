package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Source backs up one PostgreSQL database as one consistent snapshot.
type Source struct {
	DSN      string
	Parallel int      // COPY workers sharing the snapshot; default 2
	Schemas  []string // default ["public"]
	PGDump   string   // pg_dump binary; default "pg_dump"
	// DataOnly skips pg_dump: the snapshot holds rows, sequences and the catalog record but no
	// DDL, so it restores only into an existing schema (--tables).
	DataOnly bool
	// LockWait bounds how long a worker or pg_dump waits for a table lock (default 10s). The
	// coordinator holds every table from the start, so a wait means a schema change queued
	// behind it; without a bound the change, the workers and the coordinator would wait on
	// each other forever.
	LockWait time.Duration
	Log      *slog.Logger
	// Slot, when set, binds the snapshot to a logical replication slot: SlotSnapshot is the
	// snapshot CREATE_REPLICATION_SLOT exported and SlotLSN its consistent point, so the changes
	// the slot streams from that LSN continue this snapshot with no gap and no overlap.
	Slot, SlotSnapshot, SlotLSN string
	// SlotTime is the server's clock read before the slot was created: the base's cut.
	SlotTime time.Time

	// exported, when set (tests), runs while the snapshot is exported and before any row is
	// copied, with the snapshot's id.
	exported func(ctx context.Context, snapshotID string) error
}

// FormatVersion is the layout of the postgres section and its objects.
const FormatVersion = 1

// Object kinds in the manifest.
const (
	KindTable        = "pg-table"
	KindSchema       = "pg-schema"
	KindLargeObjects = "pg-large-objects"
)

// Section is the postgres part of a manifest: enough to rebuild the database with psql alone.
type Section struct {
	Format           int           `json:"format"`
	ServerVersion    string        `json:"server_version"`
	ServerVersionNum int           `json:"server_version_num"`
	Database         DatabaseInfo  `json:"database"`
	Snapshot         string        `json:"snapshot"` // the exported snapshot's id
	LSN              string        `json:"lsn"`
	Slot             string        `json:"slot,omitempty"` // the replication slot whose changes continue it at LSN
	Time             time.Time     `json:"time"`
	PGDump           string        `json:"pg_dump,omitempty"`
	Schemas          []string      `json:"schemas"`
	DataOnly         bool          `json:"data_only,omitempty"`
	CopyFormat       string        `json:"copy_format"` // COPY's text format
	PreData          *ObjectRecord `json:"pre_data,omitempty"`
	PostData         *ObjectRecord `json:"post_data,omitempty"`
	Tables           []TableRecord `json:"tables"`
	Sequences        []Sequence    `json:"sequences"`
	Roles            []string      `json:"roles"`
	Extensions       []Extension   `json:"extensions"`
	LargeObjects     *LargeObjects `json:"large_objects,omitempty"`
}

// ObjectRecord is one stored stream: its object and the checksum of what was streamed.
type ObjectRecord struct {
	Object string `json:"object"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// TableRecord is a table and, unless it is a partitioned parent, its COPY stream.
type TableRecord struct {
	Table
	Rows int64 `json:"rows"`
	*ObjectRecord
}

// LargeObjects is every large object as one COPY stream of (oid, data) rows.
type LargeObjects struct {
	Count int64 `json:"count"`
	ObjectRecord
}

func (s *Source) Name() string { return "postgres" }

// TakesCut: the exported snapshot is the source's cut, taken with the set's others.
func (s *Source) TakesCut() {}

func (s *Source) defaults() {
	if s.Parallel < 1 {
		s.Parallel = 2
	}
	if len(s.Schemas) == 0 {
		s.Schemas = []string{"public"}
	}
	if s.PGDump == "" {
		s.PGDump = "pg_dump"
	}
	if s.LockWait <= 0 {
		s.LockWait = 10 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
}

// Backup exports one snapshot and copies everything in it: pg_dump's schema sections and the
// tables, in parallel, while the coordinator transaction keeps the snapshot alive.
func (s *Source) Backup(ctx context.Context, w *snapshot.Writer) (any, error) {
	s.defaults()
	coord, err := connect(ctx, s.DSN)
	if err != nil {
		return nil, err
	}
	defer coord.Close(context.WithoutCancel(ctx))
	sec := &Section{Format: FormatVersion, Schemas: s.Schemas, DataOnly: s.DataOnly, CopyFormat: "text"}
	if err := coord.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')::int").Scan(&sec.ServerVersion, &sec.ServerVersionNum); err != nil {
		return nil, explain("read server version", err)
	}
	if !s.DataOnly {
		major, line, err := dumpVersion(ctx, s.PGDump)
		if err != nil {
			return nil, err
		}
		if err := checkDumpVersion(major, line, sec.ServerVersionNum/10000); err != nil {
			return nil, err
		}
		sec.PGDump = line
	}
	// The other sources of the set take their cuts with this snapshot's export.
	if err := w.AwaitCut(ctx); err != nil {
		return nil, err
	}
	// DEFERRABLE has no effect under REPEATABLE READ; it is set so that if the level is ever
	// raised to SERIALIZABLE, the backup waits for a safe snapshot instead of making writers
	// fail with serialization errors.
	tx, err := coord.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly, DeferrableMode: pgx.Deferrable})
	if err != nil {
		return nil, explain("begin the snapshot transaction", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if s.Slot != "" {
		// The slot's snapshot is older than this transaction: its cut is the clock read
		// before the slot was created.
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+literal(s.SlotSnapshot)); err != nil {
			return nil, explain("import the snapshot of replication slot "+s.Slot, err)
		}
		sec.Snapshot, sec.LSN, sec.Slot, sec.Time = s.SlotSnapshot, s.SlotLSN, s.Slot, s.SlotTime
		// Otherwise the snapshot is taken when this statement starts, after
		// statement_timestamp(): every transaction committed before Time is in it, which makes
		// Time the source's cut.
	} else if err := tx.QueryRow(ctx, `SELECT pg_export_snapshot(),
		(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text, statement_timestamp()`).
		Scan(&sec.Snapshot, &sec.LSN, &sec.Time); err != nil {
		return nil, explain("export the snapshot", err)
	}
	sec.Time = sec.Time.UTC()
	w.RecordCut(sec.Time, "lsn "+sec.LSN)
	tables, exclude, nLO, err := s.readCatalog(ctx, tx, sec)
	if err != nil {
		return sec, err
	}
	s.Log.Info("postgres snapshot exported", "database", sec.Database.Name, "snapshot", sec.Snapshot, "lsn", sec.LSN, "tables", len(tables), "large_objects", nLO)
	if s.exported != nil {
		if err := s.exported(ctx, sec.Snapshot); err != nil {
			return sec, err
		}
	}
	if err := s.copyAll(ctx, w, sec, tables, exclude, nLO); err != nil {
		return sec, err
	}
	// A coordinator connection lost during the copy released the table locks, so a schema
	// change may have raced the copy: only a clean end of its transaction counts.
	if err := tx.Commit(ctx); err != nil {
		return sec, explain("end the snapshot transaction", err)
	}
	return sec, nil
}

// readCatalog records the database, schema objects and tables the snapshot holds, and locks
// the tables against DROP and ALTER until the copy is done, as pg_dump does.
func (s *Source) readCatalog(ctx context.Context, tx pgx.Tx, sec *Section) ([]Table, []string, int64, error) {
	cat := catalogReader{q: tx, schemas: s.Schemas}
	var err error
	if sec.Database, err = cat.database(ctx); err != nil {
		return nil, nil, 0, explain("read the catalog", err)
	}
	missing, err := cat.missingSchemas(ctx)
	if err != nil {
		return nil, nil, 0, explain("read the catalog", err)
	}
	if len(missing) > 0 {
		return nil, nil, 0, fmt.Errorf("database %s has no schema %s: fix [postgres] schemas", sec.Database.Name, strings.Join(missing, ", "))
	}
	tables, err := cat.tables(ctx)
	if err != nil {
		return nil, nil, 0, explain("read the catalog", err)
	}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = Ident(t.Schema, t.Name)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS SHARE MODE"); err != nil {
			return nil, nil, 0, explain("lock the tables for the copy", err)
		}
	}
	exclude, err := cat.excludedSchemas(ctx)
	if err == nil {
		sec.Sequences, err = cat.sequences(ctx)
	}
	if err == nil {
		sec.Roles, err = cat.roles(ctx)
	}
	if err == nil {
		sec.Extensions, err = cat.extensions(ctx)
	}
	var nLO int64
	if err == nil {
		nLO, err = cat.largeObjects(ctx)
	}
	if err != nil {
		return nil, nil, 0, explain("read the catalog", err)
	}
	return tables, exclude, nLO, nil
}

// copyJob is one COPY stream for a worker.
type copyJob struct {
	index int // into sec.Tables; -1 for the large objects
	sql   string
	meta  store.ManifestObject
}

// copyAll runs pg_dump and the table copies concurrently; the first failure stops the rest.
func (s *Source) copyAll(ctx context.Context, w *snapshot.Writer, sec *Section, tables []Table, exclude []string, nLO int64) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	fail := func(err error) {
		if err != nil {
			cancel(err)
		}
	}
	sec.Tables = make([]TableRecord, len(tables))
	jobs := make(chan copyJob, len(tables)+1)
	for i, t := range tables {
		sec.Tables[i] = TableRecord{Table: t}
		if t.Kind == kindPartitioned {
			continue
		}
		jobs <- copyJob{index: i, sql: copyOutSQL(t),
			meta: store.ManifestObject{Kind: KindTable, Database: sec.Database.Name, Table: t.FullName()}}
	}
	if nLO > 0 {
		sec.LargeObjects = &LargeObjects{Count: nLO}
		jobs <- copyJob{index: -1, sql: "COPY (SELECT oid, lo_get(oid) FROM pg_largeobject_metadata ORDER BY oid) TO STDOUT",
			meta: store.ManifestObject{Kind: KindLargeObjects, Database: sec.Database.Name, Rows: nLO}}
	}
	close(jobs)
	for range min(s.Parallel, len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(s.worker(ctx, w, sec, jobs))
		}()
	}
	if !s.DataOnly {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(s.dumpSchema(ctx, w, sec, exclude))
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func copyOutSQL(t Table) string {
	return "COPY " + Ident(t.Schema, t.Name) + columnList(t.Columns) + " TO STDOUT"
}

func columnList(cols []Column) string {
	if len(cols) == 0 {
		return ""
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = Ident(c.Name)
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// worker imports the snapshot into its own transaction and copies jobs until none are left.
func (s *Source) worker(ctx context.Context, w *snapshot.Writer, sec *Section, jobs <-chan copyJob) error {
	conn, err := connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return explain("begin a copy transaction", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+literal(sec.Snapshot)); err != nil {
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == "22023" {
			return fmt.Errorf("import snapshot %s: %w; %s", sec.Snapshot, err, snapshotGone)
		}
		return explain("import snapshot "+sec.Snapshot, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", s.LockWait.Milliseconds())); err != nil {
		return explain("set lock_timeout", err)
	}
	for job := range jobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		start := time.Now()
		rec, rows, err := copyOut(ctx, conn, w, job)
		if err != nil {
			what := job.meta.Table
			if job.index < 0 {
				what = "large objects"
			}
			return explain("copy "+what, err)
		}
		if job.index < 0 {
			sec.LargeObjects.ObjectRecord = rec
			continue
		}
		t := &sec.Tables[job.index]
		t.Rows, t.ObjectRecord = rows, &rec
		s.Log.Info("copied table", "table", t.FullName(), "rows", rows, "bytes", rec.Bytes, "seconds", time.Since(start).Seconds())
	}
	return tx.Commit(ctx)
}

// copyOut streams one COPY into the repository.
func copyOut(ctx context.Context, conn *pgx.Conn, w *snapshot.Writer, job copyJob) (ObjectRecord, int64, error) {
	return putStream(ctx, w, job.meta, func(out io.Writer) (int64, error) {
		tag, err := conn.PgConn().CopyTo(ctx, out, job.sql)
		return tag.RowsAffected(), err
	})
}

// dumpSchema stores pg_dump's pre-data and post-data sections, taken in the same snapshot.
func (s *Source) dumpSchema(ctx context.Context, w *snapshot.Writer, sec *Section, exclude []string) error {
	for _, section := range []string{"pre-data", "post-data"} {
		meta := store.ManifestObject{Kind: KindSchema, Database: sec.Database.Name, Table: section}
		rec, _, err := putStream(ctx, w, meta, func(out io.Writer) (int64, error) {
			return 0, dumpSection(ctx, s.PGDump, s.DSN, section, sec.Snapshot, exclude, s.LockWait, out)
		})
		if err != nil {
			return err
		}
		if section == "pre-data" {
			sec.PreData = &rec
		} else {
			sec.PostData = &rec
		}
	}
	return nil
}

// putStream stores what produce writes as one object. The object's size and SHA-256 are those
// of the plaintext stream, which is what the manifest records for COPY data and DDL.
func putStream(ctx context.Context, w *snapshot.Writer, meta store.ManifestObject, produce func(io.Writer) (rows int64, err error)) (ObjectRecord, int64, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var rows int64
	go func() {
		// COPY sends one message per row: buffered, the repository gets large writes instead
		// of a goroutine hand-over through the pipe for every row.
		bw := bufio.NewWriterSize(pw, 256<<10)
		var err error
		rows, err = produce(bw)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	obj, err := w.Put(ctx, meta, "", countedStream{pr, &rows})
	pr.CloseWithError(errStoreFailed)
	if err := firstCause(<-done, err); err != nil {
		return ObjectRecord{}, 0, err
	}
	return ObjectRecord{Object: obj.ID, Bytes: obj.RawSize, SHA256: obj.SHA256}, rows, nil
}

// countedStream reports the producer's row count once the stream is drained (the producer sets
// it before closing the pipe), so the manifest's object records it.
type countedStream struct {
	*io.PipeReader
	rows *int64
}

func (c countedStream) Rows() int64 { return *c.rows }

// errStoreFailed stops a producer whose consumer, the repository, gave up.
var errStoreFailed = errors.New("the repository stopped reading")

// firstCause picks the root cause of a producer/consumer pair: the producer's error, unless it
// only failed because the repository stopped reading.
func firstCause(produce, consume error) error {
	if produce != nil && !errors.Is(produce, errStoreFailed) {
		return produce
	}
	if consume != nil {
		return consume
	}
	return produce
}
