package pitr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tracevault/tracevault/internal/tempfile"
	"github.com/tracevault/tracevault/snapshot/store"
)

// A large transaction is streamed by the server before it commits (protocol 2, streaming on),
// in chunks between other transactions. Its changes are spooled to a temporary file, in the
// segment encoding, until its commit or abort; memory does not grow with it.
type spool struct {
	f       *os.File
	w       *SegmentWriter
	written map[uint32]bool // relations described in the spool since their last description
	// runs are the spooled records' subtransactions, in order: a subtransaction can abort
	// (ROLLBACK TO SAVEPOINT) while its top-level transaction goes on.
	runs    []run
	aborted map[uint32]bool
}

type run struct {
	subxid uint32
	n      int
}

func (sp *spool) discard() { sp.f.Close() }

func (sp *spool) add(subxid uint32, rec *Record) error {
	if err := sp.w.Write(rec); err != nil {
		return fmt.Errorf("spool a streamed transaction: %w", err)
	}
	if n := len(sp.runs); n > 0 && sp.runs[n-1].subxid == subxid {
		sp.runs[n-1].n++
	} else {
		sp.runs = append(sp.runs, run{subxid, 1})
	}
	return nil
}

// spoolChange adds a change of the streamed transaction in progress to its spool.
func (st *streamState) spoolChange(slot string, subxid uint32, rec *Record) error {
	sp := st.spools[st.streamXid]
	if sp == nil {
		f, err := tempfile.Unlinked("a streamed transaction")
		if err != nil {
			return err
		}
		w, err := NewSegmentWriter(f)
		if err != nil {
			f.Close()
			return err
		}
		sp = &spool{f: f, w: w, written: map[uint32]bool{}, aborted: map[uint32]bool{}}
		st.spools[st.streamXid] = sp
	}
	for _, oid := range changeRels(rec) {
		if sp.written[oid] {
			continue
		}
		rel, ok := st.rels[oid]
		if !ok {
			return fmt.Errorf("slot %s streamed a change for relation %d before describing it", slot, oid)
		}
		// A description belongs to no subtransaction: it survives any abort.
		if err := sp.add(0, &Record{Op: OpRelation, Relation: rel}); err != nil {
			return err
		}
		sp.written[oid] = true
	}
	return sp.add(subxid, rec)
}

// abortStreamed drops a streamed transaction, or one of its subtransactions.
func (st *streamState) abortStreamed(xid, subxid uint32) {
	sp := st.spools[xid]
	if sp == nil {
		return
	}
	if subxid == xid || subxid == 0 {
		sp.discard()
		delete(st.spools, xid)
		return
	}
	sp.aborted[subxid] = true
}

// commitStreamed writes a streamed transaction into the segment as one transaction, at its
// commit's place in commit order.
func (s *Streamer) commitStreamed(ctx context.Context, repo *store.Repository, repl *pgconn.PgConn, st *streamState, m *pglogrepl.StreamCommitMessageV2) error {
	sp := st.spools[m.Xid]
	delete(st.spools, m.Xid)
	if sp != nil {
		defer sp.discard()
	}
	if LSN(m.CommitLSN) < st.durable {
		return nil // a segment holds it already
	}
	w := st.seg.w
	st.txMark = w.mark()
	if err := w.Write(&Record{Op: OpBegin, Xid: m.Xid, LSN: uint64(m.CommitLSN), Time: m.CommitTime.UTC()}); err != nil {
		return err
	}
	if sp != nil {
		if err := sp.w.Close(); err != nil {
			return fmt.Errorf("finish the spool of transaction %d: %w", m.Xid, err)
		}
		if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("read the spool of transaction %d: %w", m.Xid, err)
		}
		rd, err := NewSegmentReader(sp.f)
		if err != nil {
			return fmt.Errorf("read the spool of transaction %d: %w", m.Xid, err)
		}
		rels := map[uint32]Relation{}
		runs := sp.runs
		for {
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("read the spool of transaction %d: %w", m.Xid, err)
			}
			subxid := runs[0].subxid
			if runs[0].n--; runs[0].n == 0 {
				runs = runs[1:]
			}
			switch {
			case rec.Op == OpRelation:
				rels[rec.Relation.OID] = rec.Relation
				// The segment may describe the relation differently from the spool's moment.
				delete(st.seg.written, rec.Relation.OID)
				delete(st.checked, rec.Relation.OID)
			case sp.aborted[subxid]:
			default:
				if err := s.writeChange(ctx, repo, repl, st, rec, rels); err != nil {
					return err
				}
			}
		}
	}
	s.update(func(x *State) { x.Streamed++ })
	return st.committed(LSN(m.CommitLSN), LSN(m.TransactionEndLSN), m.CommitTime)
}
