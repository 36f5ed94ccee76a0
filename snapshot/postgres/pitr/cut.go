package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/internal/tempfile"
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
	f, err := tempfile.Unlinked("the segment being written")
	if err != nil {
		return nil, err
	}
	w, err := NewSegmentWriter(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &segmentFile{f: f, w: w, written: map[uint32]bool{}, opened: time.Now(), seg: Segment{Chain: chain, StartLSN: start, EndLSN: start}}, nil
}

func (sf *segmentFile) discard() { sf.f.Close() }

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
		// A head extends the chain from After as a segment does: not if another writer went on.
		if err := s.successorFree(ctx, repo, st.chain, h.After); err != nil {
			return s.lostChain(err)
		}
		if err := writeHead(ctx, repo, &h); err != nil {
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
	qctx, cancel := context.WithTimeout(ctx, probeTimeout) // as the probe: a frozen server ends the stream
	seqs, err := postgres.ReadSequences(qctx, aux, s.Schemas)
	cancel()
	if err != nil {
		return postgres.Explain("read sequences for the segment", err)
	}
	seg.Sequences = seqs
	if beforeStore != nil {
		beforeStore(s, seg)
	}
	if err := s.storeSegment(ctx, repo, st.chain, seg, sf.f); err != nil {
		if errors.Is(err, errLostChain) {
			return s.lostChain(err)
		}
		return err
	}
	st.durable, st.lastUntil = seg.EndLSN, seg.Until
	s.Log.Debug("point-in-time recovery: segment durable", "chain", seg.Chain, "end", seg.EndLSN, "transactions", seg.Transactions, "changes", seg.Changes, "bytes", seg.Object.RawSize)
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

// beforeStore, set by tests, runs right before a cut segment is stored: a test holds a streamer
// there as a frozen process (SIGSTOP, a paused pod) would be held.
var beforeStore func(*Streamer, *Segment)

// storeSegment makes a cut segment durable: it claims the chain's successor of the segment's
// start (claimSuccessor), stores the body, then creates the record, which is what makes the
// segment exist. A writer that lost the chain (errLostChain) stores nothing.
func (s *Streamer) storeSegment(ctx context.Context, repo *store.Repository, c *Chain, seg *Segment, body io.Reader) error {
	if err := s.claimSuccessor(ctx, repo, c, seg.StartLSN, seg.EndLSN); err != nil {
		return err
	}
	seg.BodyTag = fmt.Sprintf("%016x", rand.Uint64())
	ref, err := repo.PutNamed(ctx, seg.bodyName(), body)
	if err != nil {
		return fmt.Errorf("store segment ending at %s: %w", seg.EndLSN, err)
	}
	seg.Object, seg.Written = ref, time.Now().UTC()
	name := segmentName(seg.Chain, seg.EndLSN, "json")
	err = createRecord(ctx, repo, name, seg)
	if errors.Is(err, store.ErrExists) {
		// Ours if it describes this very body: a create whose first attempt landed but whose
		// answer was lost is retried, and then finds its own record.
		if had, rerr := readSegment(ctx, repo, name); rerr == nil && had.StartLSN == seg.StartLSN && had.Object.SHA256 == ref.SHA256 {
			return nil
		}
		return fmt.Errorf("%w: chain %s: record %s was written by another writer while this one held the successor of %s; this stream stops", errLostChain, c.ID, name, seg.StartLSN)
	}
	if err != nil {
		return fmt.Errorf("record segment ending at %s: %w", seg.EndLSN, err)
	}
	return nil
}

// lostChain is what a writer that lost its chain to another does: it stops, and says so.
func (s *Streamer) lostChain(err error) error {
	s.say(err.Error())
	return err
}

// successorFree returns nil if chain c may be extended from start by this writer: nobody else
// claimed the segment after it.
func (s *Streamer) successorFree(ctx context.Context, repo *store.Repository, c *Chain, start LSN) error {
	_, err := repo.Backend().Stat(ctx, claimName(c.ID, start))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("chain %s: look for a claim on the segment after %s: %w", c.ID, start, err)
	}
	return s.claimTaken(ctx, repo, c, start)
}

// errLostChain: another writer continued the chain from where this one meant to; whatever this
// one holds that is not durable is not stored, and its stream stops.
var errLostChain = errors.New("point-in-time recovery: another writer continued the chain")

// errStaleClaim (with errLostChain): another writer claimed the successor of a position but no
// record continues the chain from it yet: that writer is storing it, or died or stalled between
// its claim and its record. Only the slot's holder takes such a claim over.
var errStaleClaim = errors.New("point-in-time recovery: a claimed segment was never recorded")

// successorClaim fences writers of one chain. A segment is stored only if the chain's newest
// record ends exactly at its start: its writer first creates, create-only, the claim named by
// that start. Every stored segment's start was claimed by its writer, so a claim that is already
// there means the chain went on from that start without this writer (a stalled streamer woke up
// after another took the slot), and of writers racing for one start exactly one gets it.
type successorClaim struct {
	Chain  string    `json:"chain"`
	Start  LSN       `json:"start"`
	End    LSN       `json:"end"` // the end of the segment its writer was storing
	Writer string    `json:"writer"`
	At     time.Time `json:"at"`
}

func claimName(chain string, start LSN) string {
	return fmt.Sprintf("%s%s/seg/%016X.next", root, chain, uint64(start))
}

// claimSuccessor claims for this writer the segment that continues chain c from start, which
// must be where the chain's newest record ends.
func (s *Streamer) claimSuccessor(ctx context.Context, repo *store.Repository, c *Chain, start, end LSN) error {
	if start != c.StartLSN {
		if _, err := repo.Backend().Stat(ctx, segmentName(c.ID, start, "json")); err != nil {
			return fmt.Errorf("chain %s: check the segment ending at %s before continuing it: %w", c.ID, start, err)
		}
	}
	name := claimName(c.ID, start)
	err := repo.CreateJSON(ctx, name, successorClaim{Chain: c.ID, Start: start, End: end, Writer: s.writer, At: time.Now().UTC()})
	if !errors.Is(err, store.ErrExists) {
		if err != nil {
			return fmt.Errorf("chain %s: claim the segment after %s: %w", c.ID, start, err)
		}
		return nil
	}
	return s.claimTaken(ctx, repo, c, start)
}

// claimTaken says why the successor of start is not this writer's to store, or nil if its claim
// is this writer's own (an earlier attempt that failed after claiming).
func (s *Streamer) claimTaken(ctx context.Context, repo *store.Repository, c *Chain, start LSN) error {
	var had successorClaim
	if err := repo.GetJSON(ctx, claimName(c.ID, start), &had); err != nil {
		return fmt.Errorf("chain %s: read the claim on the segment after %s: %w", c.ID, start, err)
	}
	if had.Writer == s.writer {
		return nil
	}
	next, err := successorRecord(ctx, repo, c.ID, start)
	if err != nil {
		return err
	}
	if next == nil && s.slotHeld != nil && s.slotHeld(ctx) {
		// The claimant died, or stalled, between its claim and its record: the slot is this
		// writer's now, so the chain goes on from here. Should the claimant still store its
		// segment, it is a second one from start, holding the same transactions up to its end,
		// which restore passes over (followChain); its confirm then fails and it stops.
		s.Log.Warn("point-in-time recovery: taking over a segment claimed but never recorded", "chain", c.ID, "after", start, "claimed_by", had.Writer, "at", had.At, "slot", s.Slot)
		return nil
	}
	if next == nil {
		return fmt.Errorf("%w: %w: chain %s: %s claimed the segment after %s at %s but never recorded it (it died, or is stalled, while storing it)",
			errLostChain, errStaleClaim, c.ID, had.Writer, start, had.At.Format(time.RFC3339))
	}
	return fmt.Errorf("%w: chain %s already continues from %s with segment %s..%s, stored by %s; this writer (%s) stalled past the server's timeout while another took the slot, so it stops and stores nothing it holds: the other writer's segments stand",
		errLostChain, c.ID, start, next.StartLSN, next.EndLSN, had.Writer, s.writer)
}

// successorRecord is the segment record that continues chain from start, or nil.
func successorRecord(ctx context.Context, repo *store.Repository, chain string, start LSN) (*Segment, error) {
	names, err := segmentRecords(ctx, repo, chain)
	if err != nil {
		return nil, err
	}
	after := segmentName(chain, start, "json")
	for _, n := range names {
		if n <= after {
			continue
		}
		// The names are the end LSNs, so the first record past start is its successor in a
		// continuous chain; any other record starting at start ends later still.
		seg, err := readSegment(ctx, repo, n)
		if err != nil {
			return nil, err
		}
		if seg.StartLSN == start {
			return &seg, nil
		}
	}
	return nil, nil
}
