package pitr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

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
	// ChainEvery ends the chain once it is this old and starts a new one with a new base, so old
	// chains can go with their bases under retention and the repository does not grow without
	// end. Default 24h.
	ChainEvery time.Duration
	// Base is the template of the base snapshots' source (pg_dump, parallelism, ...).
	Base postgres.Source
	Tags []string
	Log  *slog.Logger
	// Event, when set, hears what an operator must know: a new base and why.
	Event func(what string)

	mu    sync.Mutex
	state State
	// slotHeld, while streaming, says whether this process holds the slot right now: only the
	// holder may take over a successor claimed by a writer that never recorded it.
	slotHeld func(context.Context) bool
	// segs caches the records of chain segsOf that checkChain has read.
	segs   map[string]Segment
	segsOf string
	// writer names this process in the chain's successor claims (cut.go): host, pid and a
	// random part, so a restarted process is another writer.
	writer string
	// rotateAfter (NewChainAfter) ends a chain created before it at the next transaction
	// boundary, for rotateWhy.
	rotateAfter time.Time
	rotateWhy   string

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
	// Broken says why the chain is not continuous (a segment record missing): restores reach
	// only RecoveryPoint, before the break, until a new chain's base is taken.
	Broken string
}

// State returns the streamer's current state.
func (s *Streamer) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// NewChainAfter asks the stream to end its chain, if that chain was created before at, and to
// start a new one with a new base, saying why: [postgres] pitr_chain_with_backup asks with each
// backup set that holds a full PostgreSQL snapshot, so chains follow the sets and go with them
// under retention. A chain started since at is left alone, so one set never starts two chains.
func (s *Streamer) NewChainAfter(at time.Time, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at.After(s.rotateAfter) {
		s.rotateAfter, s.rotateWhy = at, why
	}
}

// rotation says why chain c ends now for a new one, or "" while it goes on.
func (s *Streamer) rotation(c *Chain) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Created.Before(s.rotateAfter) {
		return s.rotateWhy
	}
	if age := time.Since(c.Created); age >= s.ChainEvery {
		return fmt.Sprintf("it is %s old ([postgres] pitr_chain_interval %s)", age.Round(time.Second), s.ChainEvery)
	}
	return ""
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
	if s.ChainEvery <= 0 {
		s.ChainEvery = 24 * time.Hour
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.writer == "" {
		host, _ := os.Hostname()
		s.writer = fmt.Sprintf("%s pid %d (%08x)", host, os.Getpid(), rand.Uint32())
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

// continuityEvery is how often a streaming daemon follows its chain from the start, to see that
// no segment record is missing (only the records new since the last look are read).
var continuityEvery = time.Minute

// checkChain follows chain c from its start. A chain that is not continuous (a segment record
// missing, e.g. left so by a writer from before writers were fenced) restores nothing past the
// break, so streaming on into it is useless: the state says so, its recovery point drops back to
// the break, and the chain ends there for a new base.
func (s *Streamer) checkChain(ctx context.Context, repo *store.Repository, c *Chain) error {
	if s.segsOf != c.ID {
		s.segs, s.segsOf = map[string]Segment{}, c.ID
	}
	path, broken, err := chainSegments(ctx, repo, *c, s.segs)
	if err != nil {
		s.Log.Warn("point-in-time recovery: could not follow the chain to check it is continuous", "chain", c.ID, "err", err)
		return nil
	}
	if broken == nil {
		return nil
	}
	at, lsn := c.BaseTime, c.StartLSN
	if n := len(path); n > 0 {
		at, lsn = path[n-1].Until, path[n-1].EndLSN
	}
	why := fmt.Sprintf("point-in-time recovery: chain %s is not continuous (%v): restores reach only what committed before %s (LSN %s); the chain ends and a new base is taken",
		c.ID, broken, at.Format(time.RFC3339Nano), lsn)
	s.update(func(st *State) { st.Broken, st.RecoveryPoint, st.DurableLSN = why, at, lsn })
	return errNewBase{why}
}

func (s *Streamer) endChain(ctx context.Context, repo *store.Repository, c *Chain, why string) error {
	c.Ended, c.EndReason = time.Now().UTC(), why
	if err := recordEnd(ctx, repo, c); err != nil {
		return fmt.Errorf("record the end of chain %s: %w", c.ID, err)
	}
	return nil
}
