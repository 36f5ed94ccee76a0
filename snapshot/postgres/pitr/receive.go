package pitr

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// probe is the server's WAL position at a moment: once the stream has passed it, every
// transaction that committed before that moment has been received.
type probe struct {
	lsn LSN
	at  time.Time
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
	followed  time.Time // when checkChain last followed the chain
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
	s.slotHeld = func(ctx context.Context) bool {
		held, err := holdsSlot(ctx, aux, repl, s.Slot)
		return err == nil && held
	}
	defer func() { s.slotHeld = nil }()
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
			if err := s.probe(ctx, aux, st); err != nil {
				return err
			}
			// First thing once the slot is ours (only the slot's holder may end the chain),
			// then every continuityEvery.
			if time.Since(st.followed) >= continuityEvery {
				st.followed = time.Now()
				if err := s.checkChain(ctx, repo, chain); err != nil {
					return err
				}
			}
			if why := s.rotation(chain); why != "" && !st.inTx {
				return s.rotate(ctx, repo, aux, repl, st, why)
			}
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

// rotate ends a chain that reached ChainEvery, or that NewChainAfter ended, for why:
// everything received is made durable first, so the chain ends as late as it can, and the next
// chain's base follows at once (runChain).
func (s *Streamer) rotate(ctx context.Context, repo *store.Repository, aux *pgx.Conn, repl *pgconn.PgConn, st *streamState, why string) error {
	if err := s.cut(ctx, repo, aux, repl, st); err != nil {
		return err
	}
	return errNewBase{fmt.Sprintf("point-in-time recovery: chain %s ends at %s, as %s, and a new chain starts with a new base, so that older chains go with their bases under [retention]; a time between the two is refused, naming both",
		st.chain.ID, st.durable, why)}
}

// probeTimeout bounds each query on the auxiliary connection while streaming: a server or a
// network that stops answering (a partition, a frozen proxy) must end the stream, not hang it
// holding transactions it received (a variable for tests).
var probeTimeout = 15 * time.Second

// probe reads the server's clock, then its WAL insert position. In that order: a transaction
// whose commit time is before the clock reading took it before the reading and inserted its
// commit record before the position read after it, so once the stream has passed the position
// every commit before the time is received (Segment.Until; the boundary is exclusive). The
// write position (pg_current_wal_lsn) lags the insert position and can miss such a commit.
func (s *Streamer) probe(ctx context.Context, aux *pgx.Conn, st *streamState) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var p probe
	if err := aux.QueryRow(ctx, "SELECT clock_timestamp(), pg_current_wal_insert_lsn()").Scan(&p.at, (*pglogrepl.LSN)(&p.lsn)); err != nil {
		return postgres.Explain("read the server's clock and WAL position", err)
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
	return nil
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
