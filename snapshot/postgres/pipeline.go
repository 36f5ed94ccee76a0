package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
)

// task is one unit of a whole-database restore's pipeline: a table's load (or the large
// objects'), or a post-data entry that builds an index or a constraint of one loaded table.
type task struct {
	step  *Step  // a load; nil for an entry
	entry *entry // an index or constraint; nil for a load
	table string // Ident(schema, name) of the table loaded or built on; "" for large objects
	bytes int64  // the table's size: larger tables go first, their indexes with them
	seq   int    // the manifest's or the script's order, for ties
	// split: a large table's load over every worker's connection at once (copySplit). It
	// starts once nothing else runs, and nothing else starts until it is done.
	split bool
}

// exclusive says a task locks its table against every other task on it: ALTER TABLE … ADD
// CONSTRAINT takes an ACCESS EXCLUSIVE lock, CREATE INDEX a SHARE lock that other index builds
// share. Running a task that would only wait for another's lock would hold a connection idle.
func (t task) exclusive() bool { return t.entry != nil && t.entry.Type == "CONSTRAINT" }

// pipeline runs loads and the index and constraint builds of loaded tables on a bounded number
// of workers, as pg_restore -j does: as soon as a table's load commits, its entries are ready,
// so one table's indexes build while other tables load. A ready task of a larger table goes
// first (its load and builds are the longest path); a task that would wait on a lock another
// running task holds on the same table waits in the queue instead, not on a connection.
type pipeline struct {
	workers int
	// after holds each table's entries until its load commits.
	after map[string][]task
	// run does one task on a worker's connection; a load's entries become ready when it
	// returns nil.
	run func(ctx context.Context, worker int, t task) error

	mu      sync.Mutex
	wake    *sync.Cond
	ready   []task
	running int
	shared  map[string]int  // index builds running per table
	held    map[string]bool // tables an exclusive task runs on
	alone   bool            // a split load runs, on every worker's connection
	failed  error
}

// newPipeline plans loads (in the manifest's order) and entries, each entry after the load of
// the table it names.
func newPipeline(workers int, loads, entries []task, run func(context.Context, int, task) error) *pipeline {
	p := &pipeline{workers: workers, after: map[string][]task{}, run: run, shared: map[string]int{}, held: map[string]bool{}}
	p.wake = sync.NewCond(&p.mu)
	p.ready = append(p.ready, loads...)
	for _, e := range entries {
		p.after[e.table] = append(p.after[e.table], e)
	}
	return p
}

// Run runs every task and returns the first failure; the workers stop taking tasks at the
// first failure or when ctx ends, and Run returns once the running ones have returned.
func (p *pipeline) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.wake.Broadcast()
	})
	defer stop()
	var wg sync.WaitGroup
	for w := range p.workers {
		wg.Go(func() {
			for {
				t, ok := p.take(ctx)
				if !ok {
					return
				}
				err := p.run(ctx, w, t)
				if err != nil {
					cancel(err)
				}
				p.done(t, err)
			}
		})
	}
	wg.Wait()
	if p.failed != nil {
		return p.failed
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if n := len(p.ready) + len(p.after); n > 0 {
		// Entries of a table that never loaded: newPipeline's caller hands only entries of
		// loaded tables, so this is a bug, not a state a restore can reach.
		return errUnscheduled
	}
	return nil
}

// take waits for a task that can run now; false once there is nothing left or ctx ended.
func (p *pipeline) take(ctx context.Context) (task, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if ctx.Err() != nil || p.failed != nil {
			return task{}, false
		}
		if i := p.next(); i >= 0 {
			t := p.ready[i]
			p.ready = slices.Delete(p.ready, i, i+1)
			p.running++
			p.alone = t.split
			if t.entry != nil {
				if t.exclusive() {
					p.held[t.table] = true
				} else {
					p.shared[t.table]++
				}
			}
			return t, true
		}
		if p.running == 0 {
			// Nothing ready can run and nothing running will make more ready.
			p.wake.Broadcast()
			return task{}, false
		}
		p.wake.Wait()
	}
}

// next picks the ready task of the largest table whose locks are free, or -1. A split load
// waits for the running tasks to end, and no task starts before it.
func (p *pipeline) next() int {
	if p.alone {
		return -1
	}
	best := -1
	for i, t := range p.ready {
		if t.entry != nil && (p.held[t.table] || t.exclusive() && p.shared[t.table] > 0) {
			continue
		}
		if best < 0 || before(t, p.ready[best]) {
			best = i
		}
	}
	if best >= 0 && p.ready[best].split && p.running > 0 {
		return -1
	}
	return best
}

// before orders ready tasks: the larger table first, then a load before an entry (it makes
// more tasks ready), then the manifest's and the script's order.
func before(a, b task) bool {
	if a.bytes != b.bytes {
		return a.bytes > b.bytes
	}
	if (a.step != nil) != (b.step != nil) {
		return a.step != nil
	}
	return a.seq < b.seq
}

func (p *pipeline) done(t task, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	p.alone = false
	if t.entry != nil {
		if t.exclusive() {
			delete(p.held, t.table)
		} else {
			p.shared[t.table]--
		}
	}
	switch {
	case err != nil:
		if p.failed == nil {
			p.failed = err
		}
	case t.step != nil:
		p.ready = append(p.ready, p.after[t.table]...)
		delete(p.after, t.table)
	}
	p.wake.Broadcast()
}

var errUnscheduled = errors.New("restore pipeline: index or constraint entries of a table that was not loaded were left unrun")

// splitEarly divides post-data entries into those that can run as soon as one loaded table's
// load commits (an index or a constraint whose statement names that table) and the rest,
// which run in the script's order once every load and early entry is done. Only INDEX and
// CONSTRAINT entries run early: they lock their own table only. Their order among themselves
// never mattered (runPostData always built them in parallel); foreign keys, index attachments
// to a partitioned parent, triggers, comments and everything else wait, as they always did.
func splitEarly(entries []entry, loaded map[string]int64) (early []task, late []entry) {
	for i, e := range entries {
		if parallelSafe(e.Type) {
			if table, ok := entryTable(e); ok {
				if size, ok := loaded[table]; ok {
					early = append(early, task{entry: &entries[i], table: table, bytes: size, seq: i})
					continue
				}
			}
		}
		late = append(late, e)
	}
	return early, late
}

// entryTable reads the table an INDEX or CONSTRAINT entry of pg_dump builds on, as
// Ident(schema, name): pg_dump writes `CREATE [UNIQUE] INDEX name ON [ONLY] schema.table …`
// and `ALTER TABLE [ONLY] schema.table … ADD CONSTRAINT …`, with every name schema-qualified
// and quoted where it needs to be. Anything else is not recognised (false), and runs late.
func entryTable(e entry) (string, bool) {
	s := statementText(e.SQL)
	var ok bool
	switch {
	case strings.HasPrefix(s, "ALTER TABLE "):
		s = strings.TrimPrefix(s, "ALTER TABLE ")
	case strings.HasPrefix(s, "CREATE INDEX "), strings.HasPrefix(s, "CREATE UNIQUE INDEX "):
		_, s, _ = strings.Cut(s, "INDEX ")
		if _, s, ok = identifier(s); !ok || !strings.HasPrefix(s, " ON ") {
			return "", false
		}
		s = strings.TrimPrefix(s, " ON ")
	default:
		return "", false
	}
	s = strings.TrimPrefix(s, "ONLY ")
	schema, s, ok := identifier(s)
	if !ok || !strings.HasPrefix(s, ".") {
		return "", false
	}
	name, s, ok := identifier(s[1:])
	if !ok || s == "" || !strings.ContainsAny(s[:1], " \n") {
		return "", false
	}
	return Ident(schema, name), true
}

// statementText is an entry's SQL from its first statement on: pg_dump's settings and the
// header's comment lines left out.
func statementText(sql string) string {
	for sql != "" {
		line, rest, _ := strings.Cut(sql, "\n")
		if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "--") && !dumpSetting.MatchString(line) {
			return sql
		}
		sql = rest
	}
	return ""
}

// identifier reads one identifier as pg_dump writes it: double-quoted, with "" for a quote, or
// bare lower-case letters, digits, underscores and dollars. It returns the name and the rest.
func identifier(s string) (string, string, bool) {
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], b.Len() > 0
		}
		return "", s, false
	}
	n := 0
	for n < len(s) && (s[n] >= 'a' && s[n] <= 'z' || s[n] >= '0' && s[n] <= '9' || s[n] == '_' || s[n] == '$') {
		n++
	}
	if n == 0 || s[0] >= '0' && s[0] <= '9' || s[0] == '$' {
		return "", s, false
	}
	return s[:n], s[n:], true
}

// loadTasks makes the pipeline's loads from a plan's load steps, in the manifest's order; a
// table of splitBytes or more loads split when there are several workers.
func loadTasks(steps []Step, workers int, splitBytes int64) ([]task, map[string]int64) {
	loaded := map[string]int64{}
	tasks := make([]task, len(steps))
	for i := range steps {
		s := &steps[i]
		tasks[i] = task{step: s, bytes: s.Bytes, seq: i}
		if len(s.loads) == 1 {
			l := s.loads[0].table
			tasks[i].table = Ident(l.Schema, l.Name)
			tasks[i].split = workers > 1 && splitBytes > 0 && s.Bytes >= splitBytes
			loaded[tasks[i].table] = s.Bytes
		}
	}
	return tasks, loaded
}
