package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/snapshot/store"
)

// onEach hands items out to one worker per connection, in order, and stops them all at the
// first error, which it returns.
func onEach[T any](ctx context.Context, conns []*pgx.Conn, items []T, do func(context.Context, *pgx.Conn, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan T, len(items))
	for _, it := range items {
		work <- it
	}
	close(work)
	var wg sync.WaitGroup
	for _, conn := range conns {
		wg.Go(func() {
			for it := range work {
				if ctx.Err() != nil {
					return
				}
				if err := do(ctx, conn, it); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// loadAndBuild loads every table and large objects and runs post-data on Parallel
// connections. Each table's indexes and constraints are built as soon as its load commits
// (pipeline), while other tables still load; the rest of post-data (foreign keys, index
// attachments, triggers, …) then runs in pg_dump's order. The script is read, and its checksum
// checked, before the first load.
func (r *Restorer) loadAndBuild(ctx context.Context, repo *store.Repository, plan *Plan, loads []Step, post Step, finish func(Step)) error {
	sql, err := readScript(ctx, repo, post)
	if err != nil {
		return fmt.Errorf("restore step post-data: %w", err)
	}
	conns := make([]*pgx.Conn, r.opts.Parallel)
	tasks, loaded := loadTasks(loads, len(conns), r.opts.SplitBytes)
	early, late := splitEarly(splitScript(sql), loaded)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i := range conns {
		if conns[i], err = r.sessionConn(ctx, plan.LoadInto); err != nil {
			return err
		}
	}
	start := time.Now()
	var mu sync.Mutex
	p := newPipeline(len(conns), tasks, early, func(ctx context.Context, w int, t task) error {
		if t.entry != nil {
			if err := r.runEntry(ctx, conns[w], *t.entry); err != nil {
				return fmt.Errorf("restore step post-data: %w", err)
			}
			return nil
		}
		// Only worker w uses conns[w] (but for a split load, which runs alone); a load whose
		// connection dropped goes on with the one that replaced it (see copyAgain), and so
		// does the worker.
		s, begun := *t.step, time.Now()
		var err error
		switch {
		case s.Action == "large-objects":
			err = loadLargeObjects(ctx, conns[w], repo, s)
		case t.split:
			// The pipeline runs nothing else meanwhile: every connection is free.
			err = r.copySplit(ctx, conns, w, plan.LoadInto, repo, s.loads[0])
		default:
			conns[w], err = r.copyAgain(ctx, conns[w], plan.LoadInto, repo, s.loads[0])
		}
		if err != nil {
			return fmt.Errorf("restore step %s %s: %w", s.Action, s.Target, err)
		}
		r.opts.Log.Info("loaded", "table", s.Target, "rows", s.Rows, "seconds", time.Since(begun).Seconds())
		mu.Lock()
		defer mu.Unlock()
		finish(s)
		return nil
	})
	if err := p.Run(ctx); err != nil {
		return err
	}
	r.opts.Log.Info("loaded tables, building their indexes and constraints meanwhile", "database", plan.LoadInto,
		"tables", len(loads), "entries", len(early), "seconds", time.Since(start).Seconds())
	start = time.Now()
	if err := r.runEntries(ctx, conns, late); err != nil {
		return fmt.Errorf("restore step post-data: %w", err)
	}
	r.opts.Log.Info("replayed schema", "section", post.Action, "database", plan.LoadInto, "entries", len(late), "seconds", time.Since(start).Seconds())
	return flushed(ctx, conns[0])
}

// flushed waits until everything the restore's sessions committed is on disk: they commit
// without waiting for the WAL flush, and a server crash right after a restore said it was done
// must not roll a table's load back. One synchronous commit of a transaction that wrote
// (txid_current gives it an id) flushes the WAL up to it, every earlier commit included.
func flushed(ctx context.Context, conn *pgx.Conn) error {
	_, err := conn.PgConn().Exec(ctx, "BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT").ReadAll()
	return explain("flush the restore's commits to disk", err)
}

// sessionConn opens one of a restore's connections to db, with the session settings of a
// restore. A failed restore is dropped, not recovered, so commits need not wait for the WAL
// flush (flushed waits once, at the end of post-data). Index builds get the memory and
// parallel workers the restore is allowed ([postgres] restore_maintenance_work_mem,
// restore_parallel_maintenance_workers): the server's default (64 MB) sorts a large table's
// index on disk. A connection that opened is returned with an error of its setup too, for the
// caller to close.
func (r *Restorer) sessionConn(ctx context.Context, db string) (*pgx.Conn, error) {
	conn, err := r.connectTo(ctx, db)
	if err != nil {
		return nil, err
	}
	set := fmt.Sprintf("SET synchronous_commit = off; SET maintenance_work_mem = '%dkB'", r.opts.MaintenanceWorkMem>>10)
	if r.opts.MaintenanceWorkers > 0 {
		set += fmt.Sprintf("; SET max_parallel_maintenance_workers = %d", r.opts.MaintenanceWorkers)
	}
	if _, err := conn.PgConn().Exec(ctx, set).ReadAll(); err != nil {
		return conn, explain("prepare a restore connection ("+set+")", err)
	}
	return conn, nil
}

// splitChunk is how much of a split load's object one connection takes at a time.
const splitChunk = 1 << 20

// copySplit loads one large table over every connection at once, so that the server parses
// and writes its rows in as many backends, where one COPY would leave the other cores idle
// (pg_restore -j loads a table in one). The object is cut at row ends (COPY's text format
// escapes a newline inside a value, so a raw newline always ends a row) into chunks that the
// connections' COPY … FROM STDIN take in turn, each COPY in a transaction of its own. They
// commit only once every COPY has ended, the object's checksum has matched at its end, and
// their rows add up to the snapshot's. The rows are not frozen (FREEZE needs the table emptied
// in the loading transaction itself); vacuum freezes them later, as after pg_restore.
//
// A split load that fails for another cause than the object's own or ctx (a dropped
// connection, a commit whose answer was lost) is loaded again the usual way, copyAgain on
// worker w's connection: it empties the table in its own transaction first, so rows a part of
// the split committed are not doubled. Connections that dropped are replaced, so every worker
// goes on with a live one.
func (r *Restorer) copySplit(ctx context.Context, conns []*pgx.Conn, w int, db string, repo *store.Repository, l load) error {
	err := copyParts(ctx, conns, repo, l)
	if err == nil {
		r.opts.Log.Info("table loaded split over connections", "table", l.table.FullName(), "connections", len(conns))
	}
	if err == nil || ctx.Err() != nil || errors.Is(err, errNotRetried) {
		return err
	}
	r.opts.Log.Warn("a split load failed; loading the table again on one connection", "table", l.table.FullName(), "err", err)
	for i, c := range conns {
		if c.IsClosed() {
			fresh, cerr := r.sessionConn(ctx, db)
			if cerr != nil {
				if fresh != nil {
					fresh.Close(context.WithoutCancel(ctx))
				}
				return fmt.Errorf("%w; loading it again failed: %w", err, cerr)
			}
			conns[i] = fresh
		}
	}
	conns[w], err = r.copyAgain(ctx, conns[w], db, repo, l)
	return err
}

// errNotRetried marks a split load's failure that loading again cannot mend: the object's
// own, or rows that do not add up to the snapshot's.
var errNotRetried = errors.New("not retried")

// copyParts runs the split COPYs of copySplit and commits them when all succeeded.
func copyParts(ctx context.Context, conns []*pgx.Conn, repo *store.Repository, l load) error {
	obj, err := openGuarded(ctx, repo, l.ref)
	if err != nil {
		return fmt.Errorf("%w (%w)", err, errNotRetried)
	}
	defer obj.Close()
	feed := newChunkFeed(len(conns))
	go feed.cut(obj)
	sql := "COPY " + Ident(l.table.Schema, l.table.Name) + columnList(l.table.Columns) + " FROM STDIN"
	txs := make([]pgx.Tx, len(conns))
	defer func() {
		for _, tx := range txs {
			if tx != nil {
				tx.Rollback(context.WithoutCancel(ctx))
			}
		}
	}()
	rows := make([]int64, len(conns))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Go(func() {
			if txs[i], errs[i] = conn.Begin(ctx); errs[i] != nil {
				feed.abort(errs[i])
				return
			}
			tag, err := conn.PgConn().CopyFrom(ctx, feed.reader(), sql)
			if err != nil {
				feed.abort(err)
				errs[i] = err
				return
			}
			rows[i] = tag.RowsAffected()
		})
	}
	wg.Wait()
	feed.abort(io.EOF) // stops the cutter if a COPY ended early
	doing := fmt.Sprintf("load %s over %d connections", l.table.FullName(), len(conns))
	if err := obj.objectErr(); err != nil {
		return fmt.Errorf("%s: %w (%w)", doing, err, errNotRetried)
	}
	if err := errors.Join(errs...); err != nil {
		return explain(doing, err)
	}
	var total int64
	for _, n := range rows {
		total += n
	}
	if total != l.table.Rows {
		return fmt.Errorf("%s: %d rows loaded, the snapshot has %d (%w)", doing, total, l.table.Rows, errNotRetried)
	}
	for i, tx := range txs {
		if err := tx.Commit(ctx); err != nil {
			return explain("commit "+doing, err)
		}
		txs[i] = nil
	}
	return nil
}

// chunkFeed cuts an object into chunks of whole rows for several COPYs to take in turn.
type chunkFeed struct {
	chunks chan []byte
	free   chan []byte // chunks the COPYs have sent, to cut into again
	stop   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error // why the feed stopped: a reader's or a COPY's failure; io.EOF at the end
}

// newChunkFeed makes a feed for readers COPYs. Chunks are used again once sent, so a split
// load holds a few per connection, whatever the table's size.
func newChunkFeed(readers int) *chunkFeed {
	return &chunkFeed{chunks: make(chan []byte, readers), free: make(chan []byte, 2*readers+1), stop: make(chan struct{})}
}

// cut reads the object into chunks of about splitChunk bytes, each ending at a row's end,
// until its end, a read error or abort.
func (f *chunkFeed) cut(obj io.Reader) {
	defer close(f.chunks)
	br := bufio.NewReaderSize(obj, 64<<10)
	for {
		var buf []byte
		select {
		case buf = <-f.free:
		default:
			buf = make([]byte, 0, splitChunk+64<<10)
		}
		n, err := io.ReadFull(br, buf[:splitChunk])
		buf = buf[:n]
		for err == nil {
			var rest []byte
			rest, err = br.ReadSlice('\n')
			buf = append(buf, rest...)
			if err == nil {
				break
			}
			if err == bufio.ErrBufferFull {
				err = nil // a row longer than the reader's buffer: read on
			}
		}
		if len(buf) > 0 {
			select {
			case f.chunks <- buf:
			case <-f.stop:
				return
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			f.abort(io.EOF)
			return
		case err != nil:
			f.abort(err)
			return
		}
	}
}

// abort stops the feed with err; the first cause stays.
func (f *chunkFeed) abort(err error) {
	f.once.Do(func() {
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
		close(f.stop)
	})
}

func (f *chunkFeed) cause() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// reader is one COPY's share of the feed: the chunks it takes, then io.EOF once the object
// ended, or the feed's failure, which makes pgconn abort that COPY (CopyFail) and keep the
// connection.
func (f *chunkFeed) reader() io.Reader { return &chunkReader{feed: f} }

type chunkReader struct {
	feed *chunkFeed
	buf  []byte // the chunk being sent
	cur  []byte // what of it is left
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.cur) == 0 && c.buf != nil {
		select {
		case c.feed.free <- c.buf[:0]:
		default:
		}
		c.buf = nil
	}
	for len(c.cur) == 0 {
		select {
		case b, ok := <-c.feed.chunks:
			if !ok {
				return 0, c.end()
			}
			c.buf, c.cur = b, b
		case <-c.feed.stop:
			if err := c.feed.cause(); err != io.EOF {
				return 0, err
			}
			// The object ended: take what is left in the channel first.
			b, ok := <-c.feed.chunks
			if !ok {
				return 0, c.end()
			}
			c.buf, c.cur = b, b
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

// end is a COPY's end of input: io.EOF when the whole object was read, or why it was not.
func (c *chunkReader) end() error {
	if err := c.feed.cause(); err != nil && err != io.EOF {
		return err
	}
	return io.EOF
}

// loadAttempts bounds how often one table loads while its connection keeps dropping.
const loadAttempts = 3

// loadRetryWait is the wait before a table's next load: 1 s, then 4 s.
var loadRetryWait = func(attempt int) time.Duration { return time.Duration(attempt*attempt) * time.Second }

// copyAgain loads a table with copyFrozen, and where the connection dropped under it (a reset, a
// server restarting), loads it again on a new connection, up to loadAttempts times. That is
// safe because the load is a transaction of its own that empties the table first and reads the
// object anew: a drop before the commit rolls it all back, and a drop that lost only the
// commit's answer is loaded over. A failure the server answered on a live connection, or of
// the object itself (which aborts the COPY and leaves the connection open), is returned at
// once. The connection to go on with is returned, the new one where it was replaced.
func (r *Restorer) copyAgain(ctx context.Context, conn *pgx.Conn, db string, repo *store.Repository, l load) (*pgx.Conn, error) {
	for attempt := 1; ; attempt++ {
		err := copyFrozen(ctx, conn, repo, l)
		if !dropped(ctx, conn, err) {
			return conn, err
		}
		if attempt >= loadAttempts {
			return conn, fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		r.opts.Log.Warn("a table's load lost its connection; loading it again on a new one", "table", l.table.FullName(),
			"attempt", attempt+1, "of", loadAttempts, "err", err)
		select {
		case <-ctx.Done():
			return conn, err
		case <-time.After(loadRetryWait(attempt)):
		}
		fresh, cerr := r.sessionConn(ctx, db)
		if cerr != nil {
			if fresh != nil {
				fresh.Close(context.WithoutCancel(ctx))
			}
			return conn, fmt.Errorf("%w; loading it again failed: %w", err, cerr)
		}
		conn.Close(context.WithoutCancel(ctx))
		conn = fresh
	}
}

// dropped says whether a load failed because its connection dropped: the connection is closed
// and the job goes on. pgconn closes a connection whose network failed or that the server ended
// (a FATAL: a shutdown or a restart); a statement the server refused, or a COPY aborted by the
// object's own failure, leaves it open.
func dropped(ctx context.Context, conn *pgx.Conn, err error) bool {
	return err != nil && ctx.Err() == nil && conn.IsClosed()
}

// copyFrozen loads a table of a new database with COPY FREEZE: rows arrive frozen and
// all-visible, so the index builds, foreign-key checks and row counts that follow, and the
// first queries after the restore, do not rewrite every page to set hint bits. FREEZE needs
// the table emptied in the same transaction, hence the TRUNCATE of a table known to be empty.
func copyFrozen(ctx context.Context, conn *pgx.Conn, repo *store.Repository, l load) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return explain("begin loading "+l.table.FullName(), err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "TRUNCATE ONLY "+Ident(l.table.Schema, l.table.Name)); err != nil {
		return explain("prepare "+l.table.FullName(), err)
	}
	if err := copyIn(ctx, conn, repo, l, " WITH (FREEZE)"); err != nil {
		return err
	}
	return explain("commit "+l.table.FullName(), tx.Commit(ctx))
}

// copyIn streams one table's object into COPY FROM STDIN; the object's checksum is checked as
// it is read, so a damaged object aborts the COPY.
func copyIn(ctx context.Context, conn *pgx.Conn, repo *store.Repository, l load, options string) error {
	obj, err := openGuarded(ctx, repo, l.ref)
	if err != nil {
		return err
	}
	defer obj.Close()
	sql := "COPY " + Ident(l.table.Schema, l.table.Name) + columnList(l.table.Columns) + " FROM STDIN" + options
	tag, err := conn.PgConn().CopyFrom(ctx, obj, sql)
	if err != nil {
		return obj.cause("load "+l.table.FullName(), err)
	}
	if tag.RowsAffected() != l.table.Rows {
		return fmt.Errorf("load %s: %d rows loaded, the snapshot has %d", l.table.FullName(), tag.RowsAffected(), l.table.Rows)
	}
	return nil
}

// guarded serialises Read and Close: pgconn's CopyFrom can return on a server error while
// its reading goroutine is still inside Read, and closing the decoder under it crashes.
type guarded struct {
	mu      sync.Mutex
	r       io.ReadCloser
	closed  bool
	readErr error // the object's own failure (a checksum mismatch), which aborted the COPY
}

func openGuarded(ctx context.Context, repo *store.Repository, ref store.ObjectRef) (*guarded, error) {
	r, err := repo.OpenObject(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &guarded{r: r}, nil
}

func (g *guarded) Read(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, io.ErrClosedPipe
	}
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		g.readErr = err
	}
	return n, err
}

// cause explains a failed COPY: pgconn turns a read error into CopyFail, so the server's
// answer only quotes it; the object's own error is returned instead, where there is one, so
// that a damaged object stays recognisable (store.ErrCorrupt).
func (g *guarded) cause(doing string, err error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.readErr != nil {
		return fmt.Errorf("%s: %w", doing, g.readErr)
	}
	return explain(doing, err)
}

// objectErr is the object's own failure, if reading it failed.
func (g *guarded) objectErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.readErr
}

func (g *guarded) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.r.Close()
}

func loadLargeObjects(ctx context.Context, conn *pgx.Conn, repo *store.Repository, s Step) error {
	obj, err := openGuarded(ctx, repo, s.ref)
	if err != nil {
		return err
	}
	defer obj.Close()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return explain("begin loading large objects", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE tracevault_lo (oid oid, data bytea) ON COMMIT DROP"); err != nil {
		return explain("load large objects", err)
	}
	if _, err := conn.PgConn().CopyFrom(ctx, obj, "COPY tracevault_lo FROM STDIN"); err != nil {
		return obj.cause("load large objects", err)
	}
	if _, err := tx.Exec(ctx, "SELECT lo_from_bytea(oid, data) FROM tracevault_lo"); err != nil {
		return explain("create large objects", err)
	}
	return explain("commit large objects", tx.Commit(ctx))
}
