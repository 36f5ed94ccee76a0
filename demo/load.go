package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

// LoadOptions say where Load writes, how fast and for how long.
type LoadOptions struct {
	// ClickHouse native addresses; batches go to the first, as a Langfuse worker writes to
	// one replica and replication carries them to the others.
	ClickHouse []string
	User       string
	Password   string
	Database   string // default "default"
	// PostgresDSN is a libpq URL; empty writes nothing to PostgreSQL.
	PostgresDSN string
	// Modern writes Langfuse v4's way into the modern demo world (demo seed --modern) on the
	// first ClickHouse address instead: inserts into events_full, lightweight updates and
	// deletes, OPTIMIZE and TRUNCATE (see loadModern); PostgresDSN is not used.
	Modern bool

	// Rate is the target of ClickHouse rows per second, every version counted; 0 writes as
	// fast as the server acknowledges.
	Rate int
	// Duration ends the run; 0 runs until ctx is cancelled.
	Duration time.Duration
	// Ticks, with Modern, ends the run after this many intervals' writes, however long they
	// take (a test that needs every kind of write once, on a machine of any speed); 0: no bound.
	Ticks int
	// Interval is the time between batches at a target rate (default 500 ms): fewer, larger
	// inserts, as ClickHouse advises, each a part to merge and a ZooKeeper round trip.
	Interval time.Duration
	// Ledger is the file to record every acknowledged batch in (see LedgerRecord); empty
	// keeps none.
	Ledger string
	Seed   uint64
	// ReportEvery is how often the achieved rate is logged (default 5 s).
	ReportEvery time.Duration
	Log         *slog.Logger
}

// LoadResult counts what Load wrote.
type LoadResult struct {
	// RunID is in every id the run wrote ("ld-<run>-<n>").
	RunID string `json:"run_id"`
	// Rows per "clickhouse:<table>" and "postgres:<table>", every version and update counted.
	Rows map[string]int64 `json:"rows"`
	// Traces per operation: insert, upsert, delete, and late (inserted into an older month).
	Traces     map[string]int64 `json:"traces"`
	Batches    int64            `json:"batches"`
	Duration   time.Duration    `json:"duration_ns"`
	TargetRate float64          `json:"target_rows_per_s"` // 0: as fast as possible
	// Rate is the ClickHouse rows acknowledged per second, between the first and the last
	// acknowledgement.
	Rate   float64 `json:"rows_per_s"`
	Ledger string  `json:"ledger,omitempty"`
	// Ops counts the modern load's writes: rows of events_full inserted (insert), updated in
	// place (update) and deleted in place (erase), and OPTIMIZE and TRUNCATE statements.
	Ops map[string]int64 `json:"ops,omitempty"`
}

// The mix of a Langfuse worker's writes, in percent of traces handled: the rest are new.
const (
	upsertPercent = 12 // a newer version of a recent trace and of its first observation
	deletePercent = 2  // a tombstone of a recent trace
	latePercent   = 1  // a new trace into one of the three previous months
	recentTraces  = 4096
	maxBatchRows  = 5_000 // per batch: with loadSenders, bounds the rows in memory
	maxBacklog    = 10 * time.Second
	pgEvery       = time.Second
	// loadSenders is how many batches are in flight at once, each inserting its three tables
	// at once: an insert into a replicated table waits 0.1-5 s on a busy machine (ZooKeeper,
	// the replicas' fetches, the view it feeds), so one at a time would not reach even 2,000
	// rows/s. connect's pool has room for them all.
	loadSenders = 8
)

// Load ingests into a seeded demo deployment (run Seed first) until ctx is cancelled or
// Duration has passed, the way Langfuse's workers do: new traces with their observations and
// scores in the current month, newer versions of recent traces (a ReplacingMergeTree upsert by
// event_ts), is_deleted tombstones, a few late traces in older months, and in PostgreSQL new
// API keys and projects, keys' last use and projects' settings. On a stop it sends the rows
// due by then and waits for every batch in flight: the ledger records only what the servers
// acknowledged, and all of it.
func Load(ctx context.Context, o LoadOptions) (LoadResult, error) {
	if err := o.defaults(); err != nil {
		return LoadResult{}, err
	}
	if o.Modern {
		return loadModern(ctx, o)
	}
	l := &loader{o: o, w: newWorld(o.Seed), run: strconv.FormatInt(time.Now().UnixNano()/1e6, 36),
		res: LoadResult{Rows: map[string]int64{}, Traces: map[string]int64{}, TargetRate: float64(o.Rate), Ledger: o.Ledger}}
	l.res.RunID = l.run
	l.r, l.pgR = rng(o.Seed, uint64(time.Now().UnixNano())), rng(o.Seed, 1<<48+uint64(time.Now().UnixNano()))
	if err := l.open(ctx); err != nil {
		l.close()
		return l.res, err
	}
	err := l.loop(ctx)
	if cerr := l.close(); err == nil {
		err = cerr
	}
	return l.res, err
}

func (o *LoadOptions) defaults() error {
	if len(o.ClickHouse) == 0 {
		return errors.New("demo load: no ClickHouse address: set [clickhouse] addresses")
	}
	if o.Rate < 0 || o.Duration < 0 || o.Interval < 0 {
		return fmt.Errorf("demo load: rate, duration and interval must be >= 0 (got %d, %s, %s)", o.Rate, o.Duration, o.Interval)
	}
	if o.Database == "" {
		o.Database = "default"
	}
	if o.User == "" {
		o.User = "default"
	}
	if o.Interval == 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.ReportEvery == 0 {
		o.ReportEvery = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return nil
}

type loader struct {
	o       LoadOptions
	w       *world
	r       *rand.Rand
	run     string
	seq     int
	recent  []recentTrace // a ring of the newest traces, the ones upserts and tombstones pick
	next    int
	tz      *time.Location // the server's, in which toYYYYMM cuts partitions
	conn    driver.Conn
	pg      *pgx.Conn
	pgR     *rand.Rand // the PostgreSQL writer's own: rand.Rand is not safe for concurrent use
	pgTicks int64

	mu     sync.Mutex // guards ledger, res, chRows and the acks, which senders update
	ledger *ledgerWriter
	res    LoadResult
	chRows int64
	// The first and last acknowledgements bound the window the rate is measured over, so
	// that the batches' latency at the start and the end of a run does not count as idle.
	firstAck, lastAck time.Time
	firstRows         int64
}

type recentTrace struct {
	id, project, env, obsType string
	ts                        time.Time
	version                   int64
	deleted                   bool
}

func (l *loader) open(ctx context.Context) error {
	o := l.o
	conn, err := connect(ctx, o.ClickHouse[0], Options{User: o.User, Password: o.Password})
	if err != nil {
		return fmt.Errorf("demo load: %w", err)
	}
	l.conn = conn
	var tz string
	var tables uint64
	if err := conn.QueryRow(ctx, "SELECT timezone(), (SELECT count() FROM system.tables WHERE database = ? AND name IN ('traces', 'observations', 'scores'))", o.Database).Scan(&tz, &tables); err != nil {
		return fmt.Errorf("demo load: read timezone and demo tables of %s: %w", o.ClickHouse[0], err)
	}
	if tables != 3 {
		return fmt.Errorf("demo load: database %s on %s has no demo tables: run `tracevault demo seed --database %s` first", o.Database, o.ClickHouse[0], o.Database)
	}
	if l.tz, err = time.LoadLocation(tz); err != nil {
		return fmt.Errorf("demo load: server timezone %q of %s: %w", tz, o.ClickHouse[0], err)
	}
	if o.PostgresDSN != "" {
		if l.pg, err = pgx.Connect(ctx, o.PostgresDSN); err != nil {
			return fmt.Errorf("demo load: connect to postgres: %w", err)
		}
		var users int64
		if err := l.pg.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users); err != nil || users == 0 {
			return fmt.Errorf("demo load: postgres has no demo users (%d, %v): run `tracevault demo seed` first", users, err)
		}
	}
	if o.Ledger != "" {
		if l.ledger, err = createLedger(o.Ledger); err != nil {
			return fmt.Errorf("demo load: %w", err)
		}
	}
	return nil
}

func (l *loader) close() error {
	if l.conn != nil {
		l.conn.Close()
	}
	if l.pg != nil {
		l.pg.Close(context.Background())
	}
	return l.ledger.close()
}

// loop generates batches and hands them to the senders. The bucket is rate × elapsed - rows
// generated, refilled every interval. While every sender is busy the generator waits and the
// next batch takes all the rows due meanwhile, as a Langfuse worker drains its queue: batches
// grow with the servers' latency. A backlog beyond maxBacklog is dropped rather than caught
// up, so a server that cannot keep up shows in the achieved rate, never in an endless burst.
func (l *loader) loop(ctx context.Context) error {
	o := l.o
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	start := time.Now()
	if o.Duration > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, o.Duration)
		defer stop()
	}
	batches := make(chan *loadBatch)
	var wg sync.WaitGroup
	for range loadSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if ctx.Err() != nil && !stopped(ctx) {
					continue // another sender failed: the run is over
				}
				if err := l.send(ctx, b); err != nil {
					cancel(err)
				}
			}
		}()
	}
	if l.pg != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.postgresLoop(ctx); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.report(ctx, start)
	}()

	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	var made float64
	behind := false // more rows are due than one batch holds: no waiting for the tick
	// due generates the rows due by now; at a target rate at most maxBatchRows of them.
	due := func(now time.Time) *loadBatch {
		want := maxBatchRows
		if o.Rate > 0 {
			due := float64(o.Rate) * now.Sub(start).Seconds()
			made = max(made, due-float64(o.Rate)*maxBacklog.Seconds())
			want = min(int(due-made), maxBatchRows)
			behind = due-made > maxBatchRows
		}
		if want <= 0 {
			return nil
		}
		b := l.generate(now, want)
		made += float64(b.rows)
		return b
	}
	for ctx.Err() == nil {
		if o.Rate > 0 && !behind {
			select {
			case <-ctx.Done():
				continue
			case <-tick.C:
			}
		}
		b := due(time.Now())
		if b == nil {
			continue
		}
		select {
		case batches <- b:
		case <-ctx.Done():
			// Due before the stop: it goes out, and then the rest due by the stop.
			if stopped(ctx) {
				batches <- b
			}
		}
	}
	// A stop, not a failure: flush the rows due up to the stop, as a worker flushes its queue.
	if stopAt := time.Now(); stopped(ctx) && o.Rate > 0 {
		if o.Duration > 0 && stopAt.After(start.Add(o.Duration)) {
			stopAt = start.Add(o.Duration)
		}
		if b := due(stopAt); b != nil {
			batches <- b
		}
	}
	close(batches)
	wg.Wait()
	l.res.Duration = time.Since(start)
	if d := l.lastAck.Sub(l.firstAck); d > 0 {
		l.res.Rate = float64(l.chRows-l.firstRows) / d.Seconds()
	}
	l.o.Log.Info("demo load done", "rows", l.chRows, "rows_per_s", int64(l.res.Rate), "target_rows_per_s", l.o.Rate,
		"batches", l.res.Batches, "duration", l.res.Duration.Round(time.Millisecond))
	if !stopped(ctx) {
		return context.Cause(ctx)
	}
	return nil
}

// stopped says whether ctx ended by a stop (cancel, --duration), not by a sender's error.
func stopped(ctx context.Context) bool {
	err := context.Cause(ctx)
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// report logs the rate achieved since the last report, every ReportEvery.
func (l *loader) report(ctx context.Context, start time.Time) {
	t := time.NewTicker(l.o.ReportEvery)
	defer t.Stop()
	last, lastRows := start, int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.mu.Lock()
			rows, batches := l.chRows, l.res.Batches
			l.mu.Unlock()
			l.o.Log.Info("demo load", "rows", rows, "rows_per_s", int64(float64(rows-lastRows)/now.Sub(last).Seconds()),
				"target_rows_per_s", l.o.Rate, "batches", batches)
			last, lastRows = now, rows
		}
	}
}

// loadBatch holds one batch's rows of each table and, in the same order, what the ledger
// records of each row.
type loadBatch struct {
	traces       traceCols
	observations obsCols
	scores       scoreCols
	marks        map[string][]rowMark // by table
	rows         int
}

type rowMark struct {
	key LedgerKey
	op  string
	v   int64
	id  string
}

func (b *loadBatch) mark(table, partition, op string, v int64, id string) {
	b.marks[table] = append(b.marks[table], rowMark{LedgerKey{"clickhouse:" + table, partition}, op, v, id})
	b.rows++
}

func (l *loader) partition(t time.Time) string { return t.In(l.tz).Format("200601") }

// generate makes a batch of at least want rows, in whole traces.
func (l *loader) generate(now time.Time, want int) *loadBatch {
	b := &loadBatch{marks: map[string][]rowMark{}}
	for b.rows < want {
		roll := l.r.IntN(100)
		switch e := l.pickRecent(); {
		case roll < deletePercent && e != nil:
			l.tombstone(b, e, now)
		case roll < deletePercent+upsertPercent && e != nil:
			l.upsert(b, e, now)
		default:
			l.newTrace(b, now)
		}
	}
	return b
}

// send inserts a batch's tables at once and records each acknowledged insert. A batch must
// land even when ctx is cancelled in the middle of it: the ledger records only acknowledged
// inserts, and the run's end must leave none unaccounted.
func (l *loader) send(ctx context.Context, b *loadBatch) error {
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var g errgroup.Group
	for _, s := range []*rowSet{b.traces.rowSet(), b.observations.rowSet(), b.scores.rowSet()} {
		g.Go(func() error {
			began := time.Now()
			n, err := insert(sendCtx, l.conn, l.o.Database, s)
			if err != nil {
				return fmt.Errorf("demo load: insert %d rows into %s.%s on %s: %w", s.n, l.o.Database, s.table, l.o.ClickHouse[0], err)
			}
			acked := time.Now()
			l.o.Log.Debug("demo load insert", "table", s.table, "rows", n, "took", acked.Sub(began))
			l.mu.Lock()
			defer l.mu.Unlock()
			l.res.Rows["clickhouse:"+s.table] += n
			l.chRows += n
			if l.firstAck.IsZero() {
				l.firstAck, l.firstRows = acked, n
			}
			l.lastAck = acked
			return l.record(acked, b.marks[s.table])
		})
	}
	err := g.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Batches++
	if ferr := l.ledger.flush(); err == nil {
		err = ferr
	}
	return err
}

// record writes one acknowledged insert's rows to the ledger, grouped by partition,
// operation and version; l.mu is held.
func (l *loader) record(acked time.Time, marks []rowMark) error {
	type group struct {
		key LedgerKey
		op  string
		v   int64
	}
	var order []group
	ids := map[group][]string{}
	for _, m := range marks {
		g := group{m.key, m.op, m.v}
		if _, ok := ids[g]; !ok {
			order = append(order, g)
		}
		ids[g] = append(ids[g], m.id)
	}
	for _, g := range order {
		if err := l.ledger.append(LedgerRecord{Acked: acked, Table: g.key.Table, Partition: g.key.Partition, Op: g.op, Version: g.v, IDs: ids[g]}); err != nil {
			return err
		}
	}
	return nil
}

func (l *loader) pickRecent() *recentTrace {
	if len(l.recent) == 0 {
		return nil
	}
	e := &l.recent[l.r.IntN(len(l.recent))]
	if e.deleted {
		return nil
	}
	return e
}

func (l *loader) newTrace(b *loadBatch, now time.Time) {
	r := l.r
	l.seq++
	id := fmt.Sprintf("ld-%s-%08d", l.run, l.seq)
	p := pick(r, l.w.projects)
	env := pick(r, environments)
	ts := now
	if r.IntN(100) < latePercent {
		ts = now.AddDate(0, -1-r.IntN(3), 0)
		l.res.Traces["late"]++
	}
	v := now.Unix()
	b.traces.add(r, id, p.id, env, ts, l.w)
	b.traces.eventTS[len(b.traces.eventTS)-1] = time.Unix(v, 0)
	b.mark("traces", l.partition(ts), OpInsert, v, id)
	typ := ""
	for k := 0; k < 1+r.IntN(observationsMax); k++ {
		start := ts.Add(time.Duration(k) * 1500 * time.Millisecond)
		b.observations.add(r, fmt.Sprintf("%s-o%d", id, k), id, p.id, env, start, k)
		b.observations.eventTS[len(b.observations.eventTS)-1] = time.Unix(v, 0)
		if k == 0 {
			typ = b.observations.typ[len(b.observations.typ)-1]
		}
		b.mark("observations", l.partition(start), OpInsert, v, fmt.Sprintf("%s-o%d", id, k))
	}
	for k := 0; k < r.IntN(scoresMax+1); k++ {
		sid := fmt.Sprintf("%s-s%d", id, k)
		b.scores.add(r, sid, id, p.id, env, ts.Add(time.Minute), pick(r, l.w.users))
		b.scores.eventTS[len(b.scores.eventTS)-1] = time.Unix(v, 0)
		b.mark("scores", l.partition(ts.Add(time.Minute)), OpInsert, v, sid)
	}
	e := recentTrace{id: id, project: p.id, env: env, obsType: typ, ts: ts, version: v}
	if len(l.recent) < recentTraces {
		l.recent = append(l.recent, e)
	} else {
		l.recent[l.next] = e
		l.next = (l.next + 1) % recentTraces
	}
	l.res.Traces[OpInsert]++
}

// newVersion is a version newer than e's: event_ts has whole seconds, and two versions of a
// row with the same event_ts would leave which one survives a merge to chance.
func newVersion(e *recentTrace, now time.Time) int64 {
	e.version = max(now.Unix(), e.version+1)
	return e.version
}

// upsert writes a newer version of a recent trace and of its first observation, the way
// Langfuse re-inserts a trace when its later events (output, end time, usage) arrive.
func (l *loader) upsert(b *loadBatch, e *recentTrace, now time.Time) {
	v := newVersion(e, now)
	b.traces.add(l.r, e.id, e.project, e.env, e.ts, l.w)
	b.traces.eventTS[len(b.traces.eventTS)-1] = time.Unix(v, 0)
	b.mark("traces", l.partition(e.ts), OpUpsert, v, e.id)
	b.observations.addTyped(l.r, e.obsType, e.id+"-o0", e.id, e.project, e.env, e.ts, 0)
	b.observations.eventTS[len(b.observations.eventTS)-1] = time.Unix(v, 0)
	b.mark("observations", l.partition(e.ts), OpUpsert, v, e.id+"-o0")
	l.res.Traces[OpUpsert]++
}

// tombstone writes a newer version of a recent trace with is_deleted = 1; the trace is not
// written again, which the ledger's counts rely on.
func (l *loader) tombstone(b *loadBatch, e *recentTrace, now time.Time) {
	v := newVersion(e, now)
	e.deleted = true
	b.traces.add(l.r, e.id, e.project, e.env, e.ts, l.w)
	b.traces.eventTS[len(b.traces.eventTS)-1] = time.Unix(v, 0)
	b.traces.deleted[len(b.traces.deleted)-1] = 1
	b.mark("traces", l.partition(e.ts), OpDelete, v, e.id)
	l.res.Traces[OpDelete]++
}

// postgres is one second's worth of Langfuse's operational writes, in one transaction: an API
// key created (with its audit log row) and another one used, a project's settings changed,
// and every tenth time a new project.
func (l *loader) postgres(ctx context.Context) error {
	r := l.pgR
	sendCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	tx, err := l.pg.Begin(sendCtx)
	if err != nil {
		return fmt.Errorf("demo load: begin postgres transaction: %w", err)
	}
	defer tx.Rollback(context.Background())
	l.pgTicks++
	n := l.pgTicks
	p := pick(r, l.w.projects)
	var newProject string
	if n%10 == 1 {
		org := pick(r, l.w.orgs)
		newProject = fmt.Sprintf("proj-ld-%s-%04d", l.run, n/10+1)
		if _, err := tx.Exec(sendCtx, "INSERT INTO projects (id, org_id, name, retention_days, metadata) VALUES ($1, $2, $3, $4, $5)",
			newProject, org, "load "+newProject, 30, map[string]any{"team": pick(r, words)}); err != nil {
			return fmt.Errorf("demo load: insert postgres project %s: %w", newProject, err)
		}
		p = project{id: newProject, org: org}
	}
	key := fmt.Sprintf("key-ld-%s-%06d", l.run, n)
	if _, err := tx.Exec(sendCtx, "INSERT INTO api_keys (id, public_key, hashed_secret_key, display_secret_key, note, project_id, scopes) VALUES ($1, $2, $3, 'sk-lf-...', 'load', $4, '{project}')",
		key, "pk-lf-"+key, fmt.Sprintf("%x%x", r.Uint64(), r.Uint64()), p.id); err != nil {
		return fmt.Errorf("demo load: insert postgres api key %s: %w", key, err)
	}
	var audit int64
	if err := tx.QueryRow(sendCtx, "INSERT INTO audit_logs (user_id, org_id, project_id, resource_type, resource_id, action, after) VALUES ($1, $2, $3, 'apiKey', $4, 'create', $5) RETURNING id",
		pick(r, l.w.users), p.org, p.id, key, map[string]any{"note": "load"}).Scan(&audit); err != nil {
		return fmt.Errorf("demo load: insert postgres audit log of %s: %w", key, err)
	}
	used := fmt.Sprintf("key-%s-%d", pick(r, l.w.projects).id, 1+r.IntN(2))
	if _, err := tx.Exec(sendCtx, "UPDATE api_keys SET last_used_at = now() WHERE id = $1", used); err != nil {
		return fmt.Errorf("demo load: update postgres api key %s: %w", used, err)
	}
	settings := pick(r, l.w.projects).id
	if _, err := tx.Exec(sendCtx, "UPDATE projects SET metadata = coalesce(metadata, '{}') || jsonb_build_object('sampling', $2::float8, 'retention', $3::int), retention_days = $3, updated_at = now() WHERE id = $1",
		settings, float64(1+r.IntN(100))/100, 30*(1+r.IntN(12))); err != nil {
		return fmt.Errorf("demo load: update postgres project %s settings: %w", settings, err)
	}
	if err := tx.Commit(sendCtx); err != nil {
		return fmt.Errorf("demo load: commit postgres writes: %w", err)
	}
	acked := time.Now()
	recs := []LedgerRecord{
		{Table: "postgres:api_keys", Op: OpInsert, IDs: []string{key}},
		{Table: "postgres:audit_logs", Op: OpInsert, IDs: []string{strconv.FormatInt(audit, 10)}},
		{Table: "postgres:api_keys", Op: OpUpdate, IDs: []string{used}},
		{Table: "postgres:projects", Op: OpUpdate, IDs: []string{settings}},
	}
	if newProject != "" {
		recs = append(recs, LedgerRecord{Table: "postgres:projects", Op: OpInsert, IDs: []string{newProject}})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, rec := range recs {
		rec.Acked = acked
		if err := l.ledger.append(rec); err != nil {
			return err
		}
		l.res.Rows[rec.Table] += int64(len(rec.IDs))
	}
	return l.ledger.flush()
}

// postgresLoop writes to PostgreSQL every pgEvery until ctx ends.
func (l *loader) postgresLoop(ctx context.Context) error {
	t := time.NewTicker(pgEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := l.postgres(ctx); err != nil {
				return err
			}
		}
	}
}
