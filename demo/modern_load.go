package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

// ModernTracked are the events_full (and events_core) columns the modern load edits in place
// and its ledger follows (LedgerRecord.Set): what a restored table is compared on, beside its ids.
var ModernTracked = []string{"bookmarked", "public", "output"}

// The modern load's schedule, in ticks of LoadOptions.Interval. Each tick inserts a batch of
// traces and makes one kind of edit; the rest comes every so many ticks, first early in a run so
// that a run of a few seconds has every kind of write.
const (
	modernTraceDeletePercent = 30 // of ticks: one trace deleted
	modernLatePercent        = 20 // of ticks: one trace into an older month
	modernRetentionEvery     = 10 // ticks between retention deletes, the first at tick 3
	modernOptimizeEvery      = 25 // ... OPTIMIZE FINAL of the current partition, at 6
	modernTruncateEvery      = 50 // ... TRUNCATE of the legacy events table, at 9
	modernRetention          = 90 * time.Second
	modernEditRows           = 5    // spans a bookmark or output edit names
	modernFastBatch          = 3000 // spans per batch at Rate 0
)

// modernLegacyTable is the v3-era table the modern load truncates now and then: the raw events
// table that Langfuse v4's events_full supersedes (migration 0002).
const modernLegacyTable = "events"

// modernLoader writes the way Langfuse v4's workers and web edits do, one statement at a time:
// each is acknowledged before the next is sent, so the ledger's order is the server's and an
// edit or a delete never races the insert of the rows it names.
type modernLoader struct {
	o      LoadOptions
	conn   driver.Conn
	r      *rand.Rand
	tz     *time.Location
	prefix string // "ld-<run>": every id the run writes starts with it
	traces int    // traces written, the next one's number
	batch  int
	// The run's live rows: what its edits and deletes pick from, and what a retention delete
	// must find to record. Retention bounds them, loosely: each pass ages out one project's rows
	// older than modernRetention.
	spans     map[string]modernSpan
	byTrace   map[string][]string // trace id → its live span ids
	traceList []string            // live trace ids, for picking one at random
	tracePos  map[string]int      // trace id → its index in traceList, to drop it in O(1)
	ledger    *ledgerWriter
	res       LoadResult
}

type modernSpan struct {
	trace, project string
	start          time.Time // start_time, to the microsecond
}

// loadModern is Load for the modern world (LoadOptions.Modern); see LoadResult.Ops for what it
// counts.
func loadModern(ctx context.Context, o LoadOptions) (LoadResult, error) {
	run := strconv.FormatInt(time.Now().UnixNano()/1e6, 36)
	l := &modernLoader{o: o, r: rng(o.Seed, uint64(time.Now().UnixNano())), prefix: "ld-" + run,
		spans: map[string]modernSpan{}, byTrace: map[string][]string{}, tracePos: map[string]int{},
		res: LoadResult{RunID: run, Rows: map[string]int64{}, Traces: map[string]int64{}, Ops: map[string]int64{}, TargetRate: float64(o.Rate), Ledger: o.Ledger}}
	err := l.open(ctx)
	if err == nil {
		err = l.loop(ctx)
	}
	if l.conn != nil {
		l.conn.Close()
	}
	if cerr := l.ledger.close(); err == nil {
		err = cerr
	}
	return l.res, err
}

func (l *modernLoader) open(ctx context.Context) error {
	o := l.o
	conn, err := connect(ctx, o.ClickHouse[0], Options{User: o.User, Password: o.Password})
	if err != nil {
		return fmt.Errorf("demo load --modern: %w", err)
	}
	l.conn = conn
	var tz string
	var tables uint64
	if err := conn.QueryRow(ctx, "SELECT timezone(), (SELECT count() FROM system.tables WHERE database = ? AND name IN ('events_full', 'events_core', 'events'))", o.Database).Scan(&tz, &tables); err != nil {
		return fmt.Errorf("demo load --modern: read timezone and demo tables of %s: %w", o.ClickHouse[0], err)
	}
	if tables != 3 {
		return fmt.Errorf("demo load --modern: database %s on %s has no modern demo tables: run `tracevault demo seed --modern --database %s` first", o.Database, o.ClickHouse[0], o.Database)
	}
	if l.tz, err = time.LoadLocation(tz); err != nil {
		return fmt.Errorf("demo load --modern: server timezone %q of %s: %w", tz, o.ClickHouse[0], err)
	}
	if o.Ledger != "" {
		if l.ledger, err = createLedger(o.Ledger); err != nil {
			return fmt.Errorf("demo load --modern: %w", err)
		}
	}
	return nil
}

// loop runs a tick every Interval (at Rate 0, back to back) until ctx ends or Duration has
// passed. A tick in progress when it ends is finished: its statements are not cancelled, so
// whatever the server acknowledged is in the ledger.
func (l *modernLoader) loop(ctx context.Context) error {
	start := time.Now()
	if l.o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.o.Duration)
		defer cancel()
	}
	tick := time.NewTicker(l.o.Interval)
	defer tick.Stop()
	report := time.NewTicker(l.o.ReportEvery)
	defer report.Stop()
	for n := 0; ; n++ {
		if err := l.tick(context.WithoutCancel(ctx), n); err != nil {
			return err
		}
		if err := l.ledger.flush(); err != nil {
			return err
		}
		l.res.Batches++
		if l.o.Ticks > 0 && n+1 >= l.o.Ticks {
			break
		}
		select {
		case <-report.C:
			l.o.Log.Info("demo load --modern", "ops", l.res.Ops, "live_spans", len(l.spans))
		default:
		}
		if l.o.Rate > 0 {
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	l.res.Duration = time.Since(start)
	if s := l.res.Duration.Seconds(); s > 0 {
		l.res.Rate = float64(l.res.Ops[OpInsert]) / s
	}
	l.o.Log.Info("demo load --modern done", "ops", l.res.Ops, "ticks", l.res.Batches, "duration", l.res.Duration.Round(time.Millisecond))
	return nil
}

// tick is one interval's writes, in order: the batch, an edit, and what is due of deletes,
// OPTIMIZE and TRUNCATE.
func (l *modernLoader) tick(ctx context.Context, n int) error {
	spans := modernFastBatch
	if l.o.Rate > 0 {
		spans = int(float64(l.o.Rate) * l.o.Interval.Seconds())
	}
	now := time.Now()
	traces := max(1, spans/spansPerTrace)
	if err := l.stage(ctx, now, traces); err != nil {
		return err
	}
	if err := l.insert(ctx, now, traces); err != nil {
		return err
	}
	if l.r.IntN(100) < modernLatePercent {
		if err := l.insert(ctx, now.AddDate(0, -1-l.r.IntN(3), 0), 1); err != nil {
			return err
		}
	}
	if err := l.edit(ctx); err != nil {
		return err
	}
	if l.r.IntN(100) < modernTraceDeletePercent {
		if trace := l.pickTrace(); trace != "" {
			if err := l.erase(ctx, "trace_id = "+chsnap.QuoteString(trace), slices.Clone(l.byTrace[trace])); err != nil {
				return err
			}
		}
	}
	if n%modernRetentionEvery == 3 {
		if err := l.retention(ctx, now.Add(-modernRetention)); err != nil {
			return err
		}
	}
	if n%modernOptimizeEvery == 6 {
		if err := l.optimize(ctx, l.partition(now)); err != nil {
			return err
		}
	}
	if n%modernTruncateEvery == 9 {
		if err := l.truncate(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (l *modernLoader) partition(t time.Time) string { return t.In(l.tz).Format("200601") }

// stamp is when a statement was sent and when the server acknowledged it.
type stamp struct{ sent, acked time.Time }

// record is a ledger record of a statement with this stamp.
func (st stamp) record(r LedgerRecord) LedgerRecord {
	r.Sent, r.Acked = st.sent, st.acked
	return r
}

// exec runs one statement and returns when the server acknowledged it.
func (l *modernLoader) exec(ctx context.Context, what, sql string, settings clickhouse.Settings) (stamp, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if settings != nil {
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	}
	st := stamp{sent: time.Now()}
	if err := l.conn.Exec(ctx, sql); err != nil {
		return stamp{}, fmt.Errorf("demo load --modern: %s in %s on %s: %w", what, l.o.Database, l.o.ClickHouse[0], err)
	}
	st.acked = time.Now()
	l.o.Log.Debug("demo load --modern", "op", what, "took", st.acked.Sub(st.sent))
	return st, nil
}

// record writes one acknowledged statement's rows to the ledger, a record per partition.
func (l *modernLoader) record(st stamp, table, op string, set map[string]string, ids []string) error {
	byPart := map[string][]string{}
	var parts []string
	for _, id := range ids {
		p := l.partition(l.spans[id].start)
		if _, ok := byPart[p]; !ok {
			parts = append(parts, p)
		}
		byPart[p] = append(byPart[p], id)
	}
	for _, p := range parts {
		if err := l.ledger.append(st.record(LedgerRecord{Table: "clickhouse:" + table, Partition: p, Op: op, IDs: byPart[p], Set: set})); err != nil {
			return err
		}
	}
	return nil
}

// insert writes traces new traces of spansPerTrace spans each, starting at base one
// microsecond apart, into events_full; events_core_mv copies them into events_core within the
// same acknowledged INSERT.
func (l *modernLoader) insert(ctx context.Context, base time.Time, traces int) error {
	base = base.Truncate(time.Microsecond)
	first := l.traces * spansPerTrace
	rows := traces * spansPerTrace
	l.batch++
	output := fmt.Sprintf(`{"role":"assistant","content":"answer of batch %d"}`, l.batch)
	sql := strings.NewReplacer("{db}", chsnap.QuoteIdent(l.o.Database), "{seed}", strconv.FormatUint(l.o.Seed, 10)).Replace(eventsGen{
		prefix:  l.prefix,
		first:   strconv.Itoa(first),
		rows:    strconv.Itoa(rows),
		project: "concat('proj-', toString(1 + t % 12))",
		start:   fmt.Sprintf("fromUnixTimestamp64Micro(toInt64(%d + number - %d))", base.UnixMicro(), first),
		output:  chsnap.QuoteString(output),
		version: "now64(6)",
		deleted: "0",
	}.sql())
	st, err := l.exec(ctx, fmt.Sprintf("insert %d spans into events_full", rows), sql, nil)
	if err != nil {
		return err
	}
	ids := make([]string, 0, rows)
	for i := range rows {
		num := first + i
		t := num / spansPerTrace
		trace := fmt.Sprintf("%s-t%08d", l.prefix, t)
		id := fmt.Sprintf("%s-%08d", l.prefix, num)
		l.spans[id] = modernSpan{trace: trace, project: "proj-" + strconv.Itoa(1+t%12), start: base.Add(time.Duration(i) * time.Microsecond)}
		if len(l.byTrace[trace]) == 0 {
			l.tracePos[trace] = len(l.traceList)
			l.traceList = append(l.traceList, trace)
		}
		l.byTrace[trace] = append(l.byTrace[trace], id)
		ids = append(ids, id)
	}
	l.traces += traces
	set := map[string]string{"bookmarked": "false", "public": "false", "output": output}
	for _, table := range []string{"events_full", "events_core"} {
		if err := l.record(st, table, OpInsert, set, ids); err != nil {
			return err
		}
		l.res.Rows["clickhouse:"+table] += int64(rows)
	}
	l.res.Ops[OpInsert] += int64(rows)
	l.res.Traces[OpInsert] += int64(traces)
	return nil
}

// stage writes the next traces' spans into observations_batch_staging first, as ingestion does
// before the propagation job builds events_full rows from them: each tick's rows land in the
// 3-minute partition of now, so a long run adds a partition every 3 minutes.
func (l *modernLoader) stage(ctx context.Context, now time.Time, traces int) error {
	first, rows := l.traces*spansPerTrace, traces*spansPerTrace
	seen := now.Truncate(time.Millisecond)
	sql := fmt.Sprintf(`INSERT INTO %s.observations_batch_staging (id, trace_id, project_id, type, start_time, name, metadata, input, output,
	cost_details, environment, s3_first_seen_timestamp, event_ts, is_deleted)
SELECT
	concat(%[2]s, '-', leftPad(toString(number), 8, '0')),
	concat(%[2]s, '-t', leftPad(toString(intDiv(number, 3)), 8, '0')),
	concat('proj-', toString(1 + intDiv(number, 3) %% 12)),
	['SPAN', 'GENERATION', 'EVENT'][1 + number %% 3],
	fromUnixTimestamp64Milli(toInt64(%[3]d)) AS seen,
	'llm-call', map('sdk', 'python'),
	concat('staged question ', toString(number)), NULL,
	map('input', toDecimal64(number %% 1000, 12) / 1000000),
	'production',
	seen, seen, 0
FROM numbers(%[4]d, %[5]d)`, chsnap.QuoteIdent(l.o.Database), chsnap.QuoteString(l.prefix), seen.UnixMilli(), first, rows)
	st, err := l.exec(ctx, fmt.Sprintf("stage %d spans", rows), sql, nil)
	if err != nil {
		return err
	}
	ids := make([]string, rows)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%08d", l.prefix, first+i)
	}
	// toStartOfInterval of 3 minutes counts from the epoch; the partition id is its Unix time.
	part := strconv.FormatInt(seen.Unix()-seen.Unix()%180, 10)
	l.res.Rows["clickhouse:observations_batch_staging"] += int64(rows)
	return l.ledger.append(st.record(LedgerRecord{Table: "clickhouse:observations_batch_staging", Partition: part, Op: OpInsert, IDs: ids}))
}

// edit makes one of the web's edits in place, as lightweight UPDATEs of events_full and then
// events_core (the view copies inserts only, so Langfuse edits both): bookmark or un-bookmark
// spans, publish a trace, or replace spans' output.
func (l *modernLoader) edit(ctx context.Context) error {
	var set map[string]string
	var ids []string
	var where string
	switch l.r.IntN(3) {
	case 0:
		ids = l.pickSpans(modernEditRows)
		set = map[string]string{"bookmarked": strconv.FormatBool(l.r.IntN(3) > 0)}
	case 1:
		trace := l.pickTrace()
		if trace == "" {
			return nil
		}
		ids, where = slices.Clone(l.byTrace[trace]), "trace_id = "+chsnap.QuoteString(trace)
		set = map[string]string{"public": strconv.FormatBool(l.r.IntN(4) > 0)}
	default:
		ids = l.pickSpans(modernEditRows)
		set = map[string]string{"output": fmt.Sprintf(`{"role":"assistant","content":"edited in batch %d"}`, l.batch)}
	}
	if len(ids) == 0 {
		return nil
	}
	if where == "" {
		where = "span_id IN (" + quoteList(ids) + ")"
	}
	var assign []string
	for _, c := range ModernTracked {
		if v, ok := set[c]; ok {
			if c == "output" {
				v = chsnap.QuoteString(v)
			}
			assign = append(assign, chsnap.QuoteIdent(c)+" = "+v)
		}
	}
	assign = append(assign, "updated_at = now64(6)")
	for _, table := range []string{"events_full", "events_core"} {
		st, err := l.exec(ctx, "update "+table, fmt.Sprintf("UPDATE %s.%s SET %s WHERE %s", chsnap.QuoteIdent(l.o.Database), table, strings.Join(assign, ", "), where), nil)
		if err != nil {
			return err
		}
		if err := l.record(st, table, OpUpdate, set, ids); err != nil {
			return err
		}
	}
	l.res.Ops[OpUpdate] += int64(len(ids))
	return nil
}

// erase deletes rows in place from events_full and events_core with lightweight DELETEs in
// lightweight_update mode (patch parts, as Langfuse v4 deletes); ids are the run's rows the
// condition matches, which are then forgotten. The condition may match rows the run did not
// write: a retention delete removes seeded rows of the project too unless it says otherwise.
func (l *modernLoader) erase(ctx context.Context, where string, ids []string) error {
	for _, table := range []string{"events_full", "events_core"} {
		st, err := l.exec(ctx, "delete from "+table, fmt.Sprintf("DELETE FROM %s.%s WHERE %s", chsnap.QuoteIdent(l.o.Database), table, where),
			clickhouse.Settings{"lightweight_delete_mode": "lightweight_update"})
		if err != nil {
			return err
		}
		if err := l.record(st, table, OpErase, nil, ids); err != nil {
			return err
		}
	}
	for _, id := range ids {
		s := l.spans[id]
		delete(l.spans, id)
		rest := slices.DeleteFunc(l.byTrace[s.trace], func(x string) bool { return x == id })
		if len(rest) == 0 {
			delete(l.byTrace, s.trace)
			i, last := l.tracePos[s.trace], l.traceList[len(l.traceList)-1]
			l.traceList[i], l.tracePos[last] = last, i
			l.traceList = l.traceList[:len(l.traceList)-1]
			delete(l.tracePos, s.trace)
		} else {
			l.byTrace[s.trace] = rest
		}
	}
	l.res.Ops[OpErase] += int64(len(ids))
	return nil
}

// retention deletes one project's spans that started before cutoff, as Langfuse's retention
// job does, limited to this run's rows so that the seeded world stays as seeded.
func (l *modernLoader) retention(ctx context.Context, cutoff time.Time) error {
	project := "proj-" + strconv.Itoa(1+l.r.IntN(12))
	var ids []string
	for id, s := range l.spans {
		if s.project == project && s.start.Before(cutoff) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	where := fmt.Sprintf("project_id = %s AND start_time < fromUnixTimestamp64Micro(toInt64(%d)) AND startsWith(span_id, %s)",
		chsnap.QuoteString(project), cutoff.UnixMicro(), chsnap.QuoteString(l.prefix+"-"))
	return l.erase(ctx, where, ids)
}

// optimize merges a partition of events_full whole, which applies its patch parts and its
// deletes to the merged part: the rows read the same, the parts are new.
func (l *modernLoader) optimize(ctx context.Context, partition string) error {
	st, err := l.exec(ctx, "optimize events_full", fmt.Sprintf("OPTIMIZE TABLE %s.events_full PARTITION ID %s FINAL", chsnap.QuoteIdent(l.o.Database), chsnap.QuoteString(partition)), nil)
	if err != nil {
		return err
	}
	l.res.Ops[OpOptimize]++
	return l.ledger.append(st.record(LedgerRecord{Table: "clickhouse:events_full", Partition: partition, Op: OpOptimize}))
}

// truncate empties the legacy table, as an upgrade's cleanup does.
func (l *modernLoader) truncate(ctx context.Context) error {
	st, err := l.exec(ctx, "truncate "+modernLegacyTable, fmt.Sprintf("TRUNCATE TABLE %s.%s", chsnap.QuoteIdent(l.o.Database), modernLegacyTable), nil)
	if err != nil {
		return err
	}
	l.res.Ops[OpTruncate]++
	return l.ledger.append(st.record(LedgerRecord{Table: "clickhouse:" + modernLegacyTable, Op: OpTruncate}))
}

func (l *modernLoader) pickTrace() string {
	if len(l.traceList) == 0 {
		return ""
	}
	return l.traceList[l.r.IntN(len(l.traceList))]
}

// pickSpans picks up to n live spans of random traces, each once.
func (l *modernLoader) pickSpans(n int) []string {
	seen := map[string]bool{}
	var ids []string
	for range n {
		trace := l.pickTrace()
		if trace == "" {
			break
		}
		spans := l.byTrace[trace]
		if id := spans[l.r.IntN(len(spans))]; !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids
}

func quoteList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = chsnap.QuoteString(id)
	}
	return strings.Join(q, ", ")
}
