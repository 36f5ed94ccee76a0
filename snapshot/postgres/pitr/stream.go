package pitr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Streamer keeps a replication slot and streams its changes into the repository.
type Streamer struct {
	DSN         string
	Schemas     []string // default ["public"]
	Slot        string   // default "tracevault"
	Publication string   // default "tracevault"
	// A segment is cut every Interval, or once it holds Bytes, at a transaction boundary.
	Interval time.Duration // default 5s
	Bytes    int64         // default 16 MiB
	// Base is the template of the base snapshots' source (pg_dump, parallelism, ...).
	Base postgres.Source
	Tags []string
	Log  *slog.Logger
	// Event, when set, hears what an operator must know: a new base and why.
	Event func(what string)

	mu    sync.Mutex
	state State

	// decodingWorkMem, when set (tests), is the walsender's logical_decoding_work_mem: past it
	// the server streams a transaction in progress.
	decodingWorkMem string
}

// State is what the status page and /metrics show.
type State struct {
	Chain         string
	RecoveryPoint time.Time // every commit before it is durable in the repository
	DurableLSN    LSN
	// RetainedBytes is the WAL the server keeps for the slot (current LSN - restart_lsn).
	RetainedBytes int64
	WALStatus     string // pg_replication_slots.wal_status
	Changes       int64  // changes made durable by this process
	Segments      int64
	Streamed      int64 // large transactions the server streamed before their commit
	LastError     string
}

// State returns the streamer's current state.
func (s *Streamer) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *Streamer) update(f func(*State)) {
	s.mu.Lock()
	f(&s.state)
	s.mu.Unlock()
}

func (s *Streamer) defaults() {
	if len(s.Schemas) == 0 {
		s.Schemas = []string{"public"}
	}
	if s.Slot == "" {
		s.Slot = "tracevault"
	}
	if s.Publication == "" {
		s.Publication = "tracevault"
	}
	if s.Interval <= 0 {
		s.Interval = 5 * time.Second
	}
	if s.Bytes <= 0 {
		s.Bytes = 16 << 20
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
}

// errNewBase ends a chain: the stream cannot continue it (schema change, slot lost).
type errNewBase struct{ reason string }

func (e errNewBase) Error() string { return e.reason }

// Run streams until ctx ends, starting new chains (and bases) when the current one cannot go on.
func (s *Streamer) Run(ctx context.Context, repo *store.Repository) error {
	s.defaults()
	for {
		err := s.runChain(ctx, repo)
		var nb errNewBase
		if !errors.As(err, &nb) {
			if err != nil && ctx.Err() == nil {
				s.update(func(st *State) { st.LastError = err.Error() })
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (s *Streamer) say(msg string) {
	s.Log.Warn(msg)
	if s.Event != nil {
		s.Event(msg)
	}
}

// runChain resumes the open chain, or starts a new one with a base, and streams it.
func (s *Streamer) runChain(ctx context.Context, repo *store.Repository) error {
	aux, err := postgres.Connect(ctx, s.DSN)
	if err != nil {
		return err
	}
	defer aux.Close(context.WithoutCancel(ctx))
	var db string
	if err := aux.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return postgres.Explain("read the database name", err)
	}
	chains, damaged, err := ReadChains(ctx, repo)
	if err != nil {
		return err
	}
	for _, d := range damaged {
		// Never resumed nor extended: a new chain (new base) starts instead. Restores name it.
		s.Log.Warn("point-in-time recovery: ignoring a damaged chain record", "record", d.Name, "err", d.Error)
	}
	var chain *Chain
	for i := len(chains) - 1; i >= 0; i-- {
		if c := chains[i]; c.Database == db && c.Slot == s.Slot {
			if c.Ended.IsZero() {
				chain = &chains[i]
			}
			break
		}
	}
	repl, err := replicationConn(ctx, s.DSN, s.decodingWorkMem)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))
	var from, segEnd LSN
	if chain != nil {
		status, err := slotStatus(ctx, aux, s.Slot)
		if err != nil {
			return err
		}
		if status == "" || status == "lost" {
			why := fmt.Sprintf("point-in-time recovery: replication slot %s is gone or invalidated (wal_status %q): changes after the last durable segment are lost; chain %s ends there and a new base is taken", s.Slot, status, chain.ID)
			if err := s.endChain(ctx, repo, chain, why); err != nil {
				return err
			}
			s.say(why)
			chain = nil
		}
	}
	if chain == nil {
		if chain, err = s.newChain(ctx, repo, aux, repl, db); err != nil {
			return err
		}
		from, segEnd = chain.StartLSN, chain.StartLSN
	} else {
		segs, err := lastSegment(ctx, repo, chain.ID)
		if err != nil {
			return err
		}
		segEnd = chain.StartLSN
		if n := len(segs); n > 0 {
			segEnd = segs[n-1].EndLSN
		}
		if _, from, err = coverage(ctx, repo, *chain, segs); err != nil {
			return err
		}
		s.Log.Info("point-in-time recovery: resuming", "chain", chain.ID, "slot", s.Slot, "from", from)
	}
	err = s.stream(ctx, repo, aux, repl, chain, from, segEnd)
	var nb errNewBase
	if errors.As(err, &nb) {
		if e := s.endChain(ctx, repo, chain, nb.reason); e != nil {
			return e
		}
		s.say(nb.reason)
		// The slot is ours and this chain is over: release it and drop it, or the server keeps
		// WAL for it.
		repl.Close(ctx)
		if e := dropSlot(ctx, aux, s.Slot); e != nil {
			s.Log.Warn("could not drop the ended chain's slot; the next chain drops it", "slot", s.Slot, "err", e)
		}
	}
	return err
}

func (s *Streamer) endChain(ctx context.Context, repo *store.Repository, c *Chain, why string) error {
	c.Ended, c.EndReason = time.Now().UTC(), why
	if err := putRecord(ctx, repo, chainName(c.ID), c); err != nil {
		return fmt.Errorf("record the end of chain %s: %w", c.ID, err)
	}
	return nil
}

func replicationConn(ctx context.Context, dsn, workMem string) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse [postgres] dsn for replication: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	// Values arrive in text form: fix the formats a replay must read back.
	cfg.RuntimeParams["datestyle"] = "ISO, MDY"
	cfg.RuntimeParams["intervalstyle"] = "postgres"
	cfg.RuntimeParams["extra_float_digits"] = "1"
	if workMem != "" {
		cfg.RuntimeParams["logical_decoding_work_mem"] = workMem
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, postgres.Explain(fmt.Sprintf("open a replication connection to %s:%d as %s (needs the REPLICATION attribute, or azure_pg_admin on Azure, and a replication line in pg_hba.conf)", cfg.Host, cfg.Port, cfg.User), err)
	}
	return conn, nil
}

func slotStatus(ctx context.Context, conn *pgx.Conn, slot string) (string, error) {
	var status *string
	err := conn.QueryRow(ctx, "SELECT coalesce(wal_status, 'reserved') FROM pg_replication_slots WHERE slot_name = $1", slot).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", postgres.Explain("read replication slot "+slot, err)
	}
	return *status, nil
}

func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	_, err := conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
	return postgres.Explain("drop replication slot "+slot, err)
}

// newChain creates the publication and the slot, takes the base in the slot's exported snapshot
// and records the chain.
func (s *Streamer) newChain(ctx context.Context, repo *store.Repository, aux *pgx.Conn, repl *pgconn.PgConn, db string) (*Chain, error) {
	if err := s.preparePublication(ctx, aux); err != nil {
		return nil, err
	}
	if err := dropSlot(ctx, aux, s.Slot); err != nil {
		return nil, fmt.Errorf("%w; a slot of that name is in use: is another tracevault streaming? ([postgres] pitr_slot names it)", err)
	}
	// Read before the slot exists, so every transaction committed before it is in the slot's
	// snapshot: the base's cut.
	var before time.Time
	if err := aux.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&before); err != nil {
		return nil, postgres.Explain("read the server clock", err)
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return nil, postgres.Explain("create replication slot "+s.Slot+" (needs wal_level = logical and a free max_replication_slots)", err)
	}
	start, err := ParseLSN(res.ConsistentPoint)
	if err != nil {
		return nil, err
	}
	chain := &Chain{ID: newChainID(time.Now(), start), Database: db, Slot: s.Slot, Publication: s.Publication,
		Schemas: s.Schemas, StartLSN: start}
	ok := false
	defer func() {
		if !ok {
			_ = dropSlot(context.WithoutCancel(ctx), aux, s.Slot)
		}
	}()
	if err := aux.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&chain.BaseTime); err != nil {
		return nil, postgres.Explain("read the server clock", err)
	}
	chain.BaseTime = chain.BaseTime.UTC()
	if chain.Relations, err = s.relations(ctx, res.SnapshotName); err != nil {
		return nil, err
	}
	src := s.Base
	src.DSN, src.Schemas, src.Log = s.DSN, s.Schemas, s.Log
	src.Slot, src.SlotSnapshot, src.SlotLSN, src.SlotTime = s.Slot, res.SnapshotName, start.String(), before.UTC()
	s.Log.Info("point-in-time recovery: taking a base snapshot bound to the slot", "slot", s.Slot, "lsn", start)
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{&src}, snapshot.Options{Tags: append(slices.Clone(s.Tags), store.TagPITRBase), Log: s.Log})
	if err != nil {
		return nil, fmt.Errorf("point-in-time recovery: base snapshot: %w", err)
	}
	chain.Base, chain.Created = m.ID, time.Now().UTC()
	if err := putRecord(ctx, repo, chainName(chain.ID), chain); err != nil {
		return nil, fmt.Errorf("record chain %s: %w", chain.ID, err)
	}
	ok = true
	s.Log.Info("point-in-time recovery: new chain", "chain", chain.ID, "base", m.ID, "lsn", start)
	s.update(func(st *State) { st.Chain, st.RecoveryPoint, st.DurableLSN = chain.ID, chain.BaseTime, start })
	return chain, nil
}

// preparePublication publishes the schemas, and gives tables with no replica identity a full
// one: without it the server refuses their UPDATE and DELETE once they are published.
func (s *Streamer) preparePublication(ctx context.Context, aux *pgx.Conn) error {
	schemas := make([]string, len(s.Schemas))
	for i, n := range s.Schemas {
		schemas[i] = postgres.Ident(n)
	}
	var exists bool
	if err := aux.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.Publication).Scan(&exists); err != nil {
		return postgres.Explain("read publications", err)
	}
	verb := "CREATE PUBLICATION " + postgres.Ident(s.Publication) + " FOR"
	if exists {
		verb = "ALTER PUBLICATION " + postgres.Ident(s.Publication) + " SET"
	}
	if _, err := aux.Exec(ctx, verb+" TABLES IN SCHEMA "+strings.Join(schemas, ", ")); err != nil {
		return postgres.Explain("publish schemas "+strings.Join(s.Schemas, ", ")+" (PostgreSQL 15+; FOR TABLES IN SCHEMA needs a superuser, on Azure a member of azure_pg_admin)", err)
	}
	rows, err := aux.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = ANY($1) AND (c.relreplident = 'n' OR (c.relreplident = 'd'
		AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)))`, s.Schemas)
	if err != nil {
		return postgres.Explain("list tables without a replica identity", err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var n, t string
		err := r.Scan(&n, &t)
		return postgres.Ident(n, t), err
	})
	if err != nil {
		return postgres.Explain("list tables without a replica identity", err)
	}
	for _, t := range names {
		s.Log.Warn("point-in-time recovery: table has no primary key; setting REPLICA IDENTITY FULL so its updates and deletes can be streamed", "table", t)
		if _, err := aux.Exec(ctx, "ALTER TABLE "+t+" REPLICA IDENTITY FULL"); err != nil {
			return postgres.Explain("set REPLICA IDENTITY FULL on "+t, err)
		}
	}
	return nil
}

// relations reads the published tables' columns in the slot's snapshot: what the base holds.
func (s *Streamer) relations(ctx context.Context, snap string) ([]Relation, error) {
	conn, err := postgres.Connect(ctx, s.DSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, postgres.Explain("begin reading the published tables", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snap+"'"); err != nil {
		return nil, postgres.Explain("import the slot's snapshot", err)
	}
	rows, err := tx.Query(ctx, `SELECT c.oid, n.nspname, c.relname, a.attname, a.atttypid, a.atttypmod
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		WHERE c.relkind = 'r' AND n.nspname = ANY($1) ORDER BY c.oid, a.attnum`, s.Schemas)
	if err != nil {
		return nil, postgres.Explain("read the published tables' columns", err)
	}
	defer rows.Close()
	var out []Relation
	for rows.Next() {
		var oid, typ uint32
		var schema, name, col string
		var mod int32
		if err := rows.Scan(&oid, &schema, &name, &col, &typ, &mod); err != nil {
			return nil, postgres.Explain("read the published tables' columns", err)
		}
		if len(out) == 0 || out[len(out)-1].OID != oid {
			out = append(out, Relation{OID: oid, Schema: schema, Name: name})
		}
		r := &out[len(out)-1]
		r.Columns = append(r.Columns, RelColumn{Name: col, Type: typ, TypeMod: mod})
	}
	return out, postgres.Explain("read the published tables' columns", rows.Err())
}

// schemaChange says how rel differs from the base's table, or "" if it does not.
func schemaChange(base []Relation, rel Relation) string {
	for _, b := range base {
		if b.OID != rel.OID {
			continue
		}
		if b.Schema != rel.Schema || b.Name != rel.Name {
			return fmt.Sprintf("table %s.%s was renamed to %s.%s", b.Schema, b.Name, rel.Schema, rel.Name)
		}
		describe := func(cs []RelColumn) string {
			parts := make([]string, len(cs))
			for i, c := range cs {
				parts[i] = fmt.Sprintf("%s:%d:%d", c.Name, c.Type, c.TypeMod)
			}
			return strings.Join(parts, ",")
		}
		if was, is := describe(b.Columns), describe(rel.Columns); was != is {
			return fmt.Sprintf("table %s.%s changed columns (name:type:typmod) from [%s] to [%s]", rel.Schema, rel.Name, was, is)
		}
		return ""
	}
	return fmt.Sprintf("table %s.%s is new since the base", rel.Schema, rel.Name)
}

// probe is the server's WAL position at a moment: once the stream has passed it, every
// transaction that committed before that moment has been received.
type probe struct {
	lsn LSN
	at  time.Time
}

// segmentFile is the segment being written, in a temporary file.
type segmentFile struct {
	f       *os.File
	w       *SegmentWriter
	written map[uint32]bool // relations already described in this segment
	opened  time.Time
	seg     Segment
}

func newSegmentFile(chain string, start LSN) (*segmentFile, error) {
	f, err := os.CreateTemp("", "tracevault-pitr-*.seg")
	if err != nil {
		return nil, fmt.Errorf("create a temporary segment file (set TMPDIR to a writable directory): %w", err)
	}
	w, err := NewSegmentWriter(f)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &segmentFile{f: f, w: w, written: map[uint32]bool{}, opened: time.Now(), seg: Segment{Chain: chain, StartLSN: start, EndLSN: start}}, nil
}

func (sf *segmentFile) discard() {
	sf.f.Close()
	os.Remove(sf.f.Name())
}

// streamState is one streaming session's progress.
type streamState struct {
	chain     *Chain
	rels      map[uint32]Relation
	inStream  bool              // between stream start and stop: changes of an in-progress transaction
	streamXid uint32            // its top-level xid
	spools    map[uint32]*spool // in-progress transactions streamed so far, by top-level xid
	checked   map[uint32]bool   // relations compared with the base since their last description
	seg       *segmentFile
	inTx      bool
	skipTx    bool
	txMark    segmentMark
	received  LSN // everything before it has been received (and belongs to a closed transaction)
	covered   time.Time
	probes    []probe
	durable   LSN
	lastUntil time.Time
}

// stream streams from the slot from LSN from; the next segment starts at segEnd, the last
// segment's end (before from when the head moved past it).
func (s *Streamer) stream(ctx context.Context, repo *store.Repository, aux *pgx.Conn, repl *pgconn.PgConn, chain *Chain, from, segEnd LSN) error {
	err := pglogrepl.StartReplication(ctx, repl, s.Slot, pglogrepl.LSN(from), pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '2'", "streaming 'on'", "publication_names '" + strings.ReplaceAll(s.Publication, "'", "''") + "'"}})
	if err != nil {
		return postgres.Explain("start streaming from slot "+s.Slot+" (if it is active for another process, another tracevault holds it)", err)
	}
	st := &streamState{chain: chain, rels: map[uint32]Relation{}, checked: map[uint32]bool{}, spools: map[uint32]*spool{}, received: from, durable: from}
	defer func() {
		if st.seg != nil {
			st.seg.discard()
		}
		for _, sp := range st.spools {
			sp.discard()
		}
	}()
	if st.seg, err = newSegmentFile(chain.ID, segEnd); err != nil {
		return err
	}
	tick := time.Now()
	// One deadline per tick, not per message: receiving stops at the tick to probe.
	var recv struct {
		ctx    context.Context
		cancel context.CancelFunc
	}
	recv.ctx, recv.cancel = context.WithCancel(ctx)
	defer func() { recv.cancel() }()
	for {
		if time.Now().After(tick) {
			tick = time.Now().Add(time.Second)
			recv.cancel()
			recv.ctx, recv.cancel = context.WithDeadline(ctx, tick)
			if err := s.sendStatus(ctx, repl, st.durable, true); err != nil {
				return err
			}
			var p probe
			if err := aux.QueryRow(ctx, "SELECT pg_current_wal_lsn(), clock_timestamp()").Scan((*pglogrepl.LSN)(&p.lsn), &p.at); err != nil {
				return postgres.Explain("read the server's WAL position", err)
			}
			st.probes = append(st.probes, p)
			// A probe stays unresolved while the WAL before it is written but not flushed (the
			// walsender decodes only flushed WAL, and an idle WAL writer sleeps for seconds):
			// a tiny synchronous commit flushes it all.
			if time.Since(st.probes[0].at.Local()) > 1500*time.Millisecond || len(st.probes) > 2 {
				if _, err := aux.Exec(ctx, "SET synchronous_commit = on; SELECT pg_current_xact_id()"); err != nil {
					return postgres.Explain("flush the server's WAL", err)
				}
			}
			s.observeSlot(ctx, aux)
		}
		if !st.inTx && (st.seg.w.Bytes() >= s.Bytes || time.Since(st.seg.opened) >= s.Interval) {
			if err := s.cut(ctx, repo, aux, repl, st); err != nil {
				return err
			}
		}
		msg, err := repl.ReceiveMessage(recv.ctx)
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return postgres.Explain("receive changes from slot "+s.Slot, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if err := s.handle(ctx, repo, repl, st, msg.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return postgres.Explain("stream from slot "+s.Slot, pgconn.ErrorResponseToPgError(msg))
		}
	}
}

func (s *Streamer) sendStatus(ctx context.Context, repl *pgconn.PgConn, durable LSN, reply bool) error {
	// Only what is durable in the repository is confirmed: the server may then discard it.
	err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(durable), ReplyRequested: reply})
	return postgres.Explain("confirm LSN "+durable.String()+" to slot "+s.Slot, err)
}

// advance records that everything before pos has been received, outside any transaction, and
// so that every probe at or before pos is covered.
func (st *streamState) advance(pos LSN) {
	st.received = max(st.received, pos)
	n := 0
	for _, p := range st.probes {
		if p.lsn <= st.received {
			st.covered = p.at
			n++
			continue
		}
		break
	}
	st.probes = st.probes[n:]
}

func (s *Streamer) handle(ctx context.Context, repo *store.Repository, repl *pgconn.PgConn, st *streamState, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		k, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse a keepalive from slot %s: %w", s.Slot, err)
		}
		if !st.inTx {
			st.advance(LSN(k.ServerWALEnd))
		}
		if k.ReplyRequested {
			return s.sendStatus(ctx, repl, st.durable, false)
		}
		return nil
	case pglogrepl.XLogDataByteID:
	default:
		return nil
	}
	x, err := pglogrepl.ParseXLogData(data[1:])
	if err != nil {
		return fmt.Errorf("parse a change from slot %s: %w", s.Slot, err)
	}
	m, err := pglogrepl.ParseV2(x.WALData, st.inStream)
	if err != nil {
		return fmt.Errorf("decode a pgoutput message from slot %s: %w", s.Slot, err)
	}
	w := st.seg.w
	switch m := m.(type) {
	case *pglogrepl.RelationMessageV2:
		rel := Relation{OID: m.RelationID, Schema: m.Namespace, Name: m.RelationName, ReplicaIdentity: m.ReplicaIdentity}
		for _, c := range m.Columns {
			rel.Columns = append(rel.Columns, RelColumn{Name: c.Name, Key: c.Flags&1 != 0, Type: c.DataType, TypeMod: c.TypeModifier})
		}
		st.rels[rel.OID] = rel
		delete(st.seg.written, rel.OID)
		delete(st.checked, rel.OID)
		for _, sp := range st.spools {
			delete(sp.written, rel.OID)
		}
		return nil
	case *pglogrepl.BeginMessage:
		st.inTx = true
		// Resuming may replay what a segment already holds: skip what committed before it.
		st.skipTx = LSN(m.FinalLSN) < st.durable
		st.txMark = w.mark()
		if st.skipTx {
			return nil
		}
		return w.Write(&Record{Op: OpBegin, Xid: m.Xid, LSN: uint64(m.FinalLSN), Time: m.CommitTime.UTC()})
	case *pglogrepl.CommitMessage:
		st.inTx = false
		if st.skipTx {
			return nil
		}
		return st.committed(LSN(m.CommitLSN), LSN(m.TransactionEndLSN), m.CommitTime)
	case *pglogrepl.StreamStartMessageV2:
		st.inStream, st.streamXid = true, m.Xid
		return nil
	case *pglogrepl.StreamStopMessageV2:
		st.inStream = false
		return nil
	case *pglogrepl.StreamAbortMessageV2:
		st.abortStreamed(m.Xid, m.SubXid)
		return nil
	case *pglogrepl.StreamCommitMessageV2:
		return s.commitStreamed(ctx, repo, repl, st, m)
	}
	rec, subxid := &Record{}, uint32(0)
	switch m := m.(type) {
	case *pglogrepl.InsertMessageV2:
		rec.Op, rec.Rel, rec.New, subxid = OpInsert, m.RelationID, values(m.Tuple), m.Xid
	case *pglogrepl.UpdateMessageV2:
		rec.Op, rec.Rel, rec.OldKind, rec.Old, rec.New, subxid = OpUpdate, m.RelationID, m.OldTupleType, values(m.OldTuple), values(m.NewTuple), m.Xid
	case *pglogrepl.DeleteMessageV2:
		rec.Op, rec.Rel, rec.OldKind, rec.Old, subxid = OpDelete, m.RelationID, m.OldTupleType, values(m.OldTuple), m.Xid
	case *pglogrepl.TruncateMessageV2:
		rec.Op, rec.Options, rec.Rels, subxid = OpTruncate, m.Option, m.RelationIDs, m.Xid
	default:
		return nil // type, origin and logical messages: nothing to replay
	}
	if st.inStream {
		return st.spoolChange(s.Slot, subxid, rec)
	}
	if st.skipTx {
		return nil
	}
	return s.writeChange(ctx, repo, repl, st, rec, st.rels)
}

// writeChange writes a change of the transaction in progress into the segment, describing its
// relations first (rels) where the segment has not yet, and refusing a schema the base lacks.
func (s *Streamer) writeChange(ctx context.Context, repo *store.Repository, repl *pgconn.PgConn, st *streamState, rec *Record, rels map[uint32]Relation) error {
	for _, oid := range changeRels(rec) {
		if st.seg.written[oid] {
			continue
		}
		rel, ok := rels[oid]
		if !ok {
			return fmt.Errorf("slot %s sent a change for relation %d before describing it", s.Slot, oid)
		}
		if !st.checked[oid] {
			if why := schemaChange(st.chain.Relations, rel); why != "" {
				return s.schemaChanged(ctx, repo, repl, st, why)
			}
			st.checked[oid] = true
		}
		if err := st.seg.w.Write(&Record{Op: OpRelation, Relation: rel}); err != nil {
			return err
		}
		st.seg.written[oid] = true
	}
	st.seg.seg.Changes++
	return st.seg.w.Write(rec)
}

func changeRels(rec *Record) []uint32 {
	if rec.Op == OpTruncate {
		return rec.Rels
	}
	return []uint32{rec.Rel}
}

// committed closes the transaction in progress in the segment.
func (st *streamState) committed(lsn, end LSN, at time.Time) error {
	if err := st.seg.w.Write(&Record{Op: OpCommit, LSN: uint64(lsn), EndLSN: uint64(end), Time: at.UTC()}); err != nil {
		return err
	}
	seg := &st.seg.seg
	if seg.Transactions == 0 {
		seg.FirstCommit = at.UTC()
	}
	seg.Transactions++
	seg.LastCommit, seg.LastLSN = at.UTC(), lsn
	st.advance(end)
	return nil
}

// schemaChanged ends the chain before the transaction in progress, the first to use the new
// schema: it belongs to the next base.
func (s *Streamer) schemaChanged(ctx context.Context, repo *store.Repository, repl *pgconn.PgConn, st *streamState, why string) error {
	if err := st.seg.w.rewind(st.seg.f, st.txMark); err != nil {
		return fmt.Errorf("drop a transaction from the segment file: %w", err)
	}
	st.inTx = false
	if err := s.cut(ctx, repo, nil, repl, st); err != nil {
		return err
	}
	return errNewBase{fmt.Sprintf("point-in-time recovery: schema change (%s): DDL is not streamed, so chain %s ends at %s and a new base is taken", why, st.chain.ID, st.durable)}
}

func values(t *pglogrepl.TupleData) []Value {
	if t == nil {
		return nil
	}
	out := make([]Value, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = Value{Kind: c.DataType, Data: c.Data}
	}
	return out
}

// cut makes the segment durable, then confirms its end to the server. aux may be nil when the
// connection is about to be abandoned (sequences are then read on a fresh one).
func (s *Streamer) cut(ctx context.Context, repo *store.Repository, aux *pgx.Conn, repl *pgconn.PgConn, st *streamState) error {
	sf := st.seg
	seg := &sf.seg
	seg.EndLSN = max(st.received, seg.StartLSN)
	seg.Until = st.covered
	if seg.Until.Before(st.lastUntil) {
		seg.Until = st.lastUntil
	}
	if seg.Transactions == 0 {
		sf.opened = time.Now()
		if !seg.Until.After(st.lastUntil) && seg.EndLSN <= st.durable {
			return nil // nothing new to record
		}
		h := Head{Chain: seg.Chain, After: seg.StartLSN, EndLSN: seg.EndLSN, Until: seg.Until, Written: time.Now().UTC()}
		if err := putRecord(ctx, repo, headName(h.Chain), &h); err != nil {
			return fmt.Errorf("record the head of chain %s: %w", h.Chain, err)
		}
		st.durable, st.lastUntil = h.EndLSN, h.Until
		s.update(func(x *State) { x.Chain, x.DurableLSN, x.RecoveryPoint = h.Chain, h.EndLSN, h.Until })
		return s.sendStatus(ctx, repl, st.durable, false)
	}
	if err := sf.w.Close(); err != nil {
		return fmt.Errorf("finish segment file: %w", err)
	}
	if _, err := sf.f.Seek(0, 0); err != nil {
		return fmt.Errorf("read segment file: %w", err)
	}
	if aux == nil {
		conn, err := postgres.Connect(ctx, s.DSN)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		aux = conn
	}
	seqs, err := postgres.ReadSequences(ctx, aux, s.Schemas)
	if err != nil {
		return postgres.Explain("read sequences for the segment", err)
	}
	seg.Sequences = seqs
	ref, err := repo.PutNamed(ctx, segmentName(seg.Chain, seg.EndLSN, "seg"), sf.f)
	if err != nil {
		return fmt.Errorf("store segment ending at %s: %w", seg.EndLSN, err)
	}
	seg.Object, seg.Written = ref, time.Now().UTC()
	if err := putRecord(ctx, repo, segmentName(seg.Chain, seg.EndLSN, "json"), seg); err != nil {
		return fmt.Errorf("record segment ending at %s: %w", seg.EndLSN, err)
	}
	st.durable, st.lastUntil = seg.EndLSN, seg.Until
	s.Log.Debug("point-in-time recovery: segment durable", "chain", seg.Chain, "end", seg.EndLSN, "transactions", seg.Transactions, "changes", seg.Changes, "bytes", ref.RawSize)
	done := *seg
	s.update(func(x *State) {
		x.Chain, x.DurableLSN, x.RecoveryPoint = done.Chain, done.EndLSN, done.Until
		x.Changes += done.Changes
		x.Segments++
		x.LastError = ""
	})
	sf.discard()
	if st.seg, err = newSegmentFile(seg.Chain, done.EndLSN); err != nil {
		return err
	}
	return s.sendStatus(ctx, repl, st.durable, false)
}

// observeSlot reads how much WAL the server keeps for the slot.
func (s *Streamer) observeSlot(ctx context.Context, aux *pgx.Conn) {
	var retained *int64
	var status *string
	err := aux.QueryRow(ctx, `SELECT (pg_current_wal_lsn() - restart_lsn)::bigint, wal_status FROM pg_replication_slots WHERE slot_name = $1`, s.Slot).Scan(&retained, &status)
	if err != nil {
		return
	}
	s.update(func(st *State) {
		if retained != nil {
			st.RetainedBytes = *retained
		}
		if status != nil {
			st.WALStatus = *status
		}
	})
}
