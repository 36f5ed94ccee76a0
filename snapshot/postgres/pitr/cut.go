package pitr

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

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
