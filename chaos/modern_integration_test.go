package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/faultproxy"
	"github.com/tracevault/tracevault/jobs"
	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

// TestChaosModern is the chaos suite on Langfuse v4's world: the daemon backs up ch-modern
// (ClickHouse 26.7) every few seconds, in logical and then freeze mode, while `demo load
// --modern` inserts into events_full (events_core_mv fills events_core), edits and deletes rows
// in place with lightweight UPDATEs and DELETEs (patch parts), runs OPTIMIZE FINAL and truncates
// the legacy events table. Faults are injected one at a time, each in each mode: ch-modern
// killed -9 mid-backup and restarted, and the repository's storage answering 503, resetting
// connections and stalling. After each, every complete snapshot verifies with --read-data,
// failed runs name their cause, and the newest snapshot is drilled into a scratch database in
// which events_full, events_core and the staging table read, row by row with the values of the
// edited columns (FINAL), as the ledger says they were at a moment between the table's cut and
// the snapshot's end, each partition at its own moment; the truncated table is empty; and
// events_core holds each row once. The reduced form (the default, in CI) injects a kill in
// logical mode and resets in freeze mode; TRACEVAULT_CHAOS=full every fault in both modes, with
// longer holds and a heavier load. TRACEVAULT_CHAOS_SEED and TRACEVAULT_CHAOS_FAULTS work as
// for TestChaos.
func TestChaosModern(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.RequireModern(t)
	m := &modernSuite{suite: newSuite(t, env), reconciled: map[string]bool{}}
	m.contentChecks = true
	defer m.summary()
	m.start()
	modes := []string{chsnap.ModeLogical, chsnap.ModeFreeze}
	var rounds []modernRound
	for _, f := range m.faults() {
		if !m.wanted(f) {
			continue
		}
		if m.full {
			for _, mode := range modes {
				rounds = append(rounds, modernRound{f, mode})
			}
			continue
		}
		rounds = append(rounds, modernRound{f, modes[len(rounds)%len(modes)]})
	}
	// Logical rounds first, then freeze: one switch of mode, itself a case (an incremental
	// snapshot in freeze mode over logical ones).
	slices.SortStableFunc(rounds, func(a, b modernRound) int { return strings.Compare(b.mode, a.mode) })
	for _, r := range rounds {
		if t.Failed() {
			break
		}
		m.round(r)
	}
	m.stop()
	m.checkFreezes()
}

// checkFreezes fails the suite if a freeze the suite's daemon made is still on ch-modern's disk
// after the daemon stopped: the backups whose server was killed, or whose storage failed, while
// a partition was frozen must have removed theirs.
func (m *modernSuite) checkFreezes() {
	left, err := devstack.Freezes(m.env.CHModernData)
	if err != nil {
		m.t.Errorf("list ch-modern's freezes: %v", err)
	}
	for _, name := range left {
		if !slices.Contains(m.freezesBefore, name) {
			m.t.Errorf("freeze %s left in ch-modern's shadow/ after the daemon stopped; see %s", name, m.daemonLog())
		}
	}
}

type modernRound struct {
	f    fault
	mode string
}

// modernSuite is the suite with ch-modern as the daemon's ClickHouse.
type modernSuite struct {
	*suite
	mode string // the daemon's [clickhouse] mode now

	freezesBefore []string // tracevault's freezes on ch-modern's disk before the suite started

	ended      []loadEnd // load runs a fault ended, whose last statement may have been applied
	reconciled map[string]bool

	// What the summary prints beside the suite's.
	rowsCompared  int64 // restored rows compared with the ledger, values included
	updates       int64 // rows updated in place before a checked snapshot's cut
	erased        int64 // rows deleted in place (lightweight DELETE) before a checked snapshot's cut
	truncates     int   // restored legacy tables checked empty after a TRUNCATE
	unacked       int64 // rows an unacknowledged statement had changed when its run was cut off
	partitionsBad int
}

// loadEnd is a load run that a fault ended.
type loadEnd struct {
	ledger, run string
	at          time.Time
}

const modernStaging = "observations_batch_staging"

func (m *modernSuite) faults() []fault {
	hold := func(reduced, full time.Duration) time.Duration {
		if m.full {
			return full
		}
		return reduced
	}
	storage := []string{"storage", "blob", "azure", m.proxy.Addr()}
	return []fault{
		{name: "ch-modern killed -9 mid-backup and restarted", cause: []string{m.env.CHModernNative, m.env.CHModernHTTP, "clickhouse"}, within: 800 * time.Millisecond,
			inject: func(ctx context.Context, s *suite) error {
				if err := s.env.Kill("ch-modern"); err != nil {
					return err
				}
				sleep(ctx, hold(2*time.Second, 8*time.Second))
				return m.startModern(ctx)
			}},
		{name: "storage answers 503", cause: append(storage, "503", "ServerBusy"), full: true,
			inject: m.storageFault(faultproxy.Mode{Fault: faultproxy.Unavailable}, hold(5*time.Second, 15*time.Second))},
		{name: "storage resets connections", cause: append(storage, "reset", "EOF", "broken pipe"),
			inject: m.storageFault(faultproxy.Mode{Fault: faultproxy.Reset, After: int64(1<<10 + m.rng.IntN(64<<10))}, hold(5*time.Second, 15*time.Second))},
		{name: "storage stalls", cause: append(storage, "timeout", "deadline", "timed out"), full: true,
			inject: m.storageFault(faultproxy.Mode{Fault: faultproxy.Stall, Stall: hold(15*time.Second, 30*time.Second)}, hold(5*time.Second, 10*time.Second))},
	}
}

// startModern starts ch-modern after a kill. stack.sh retries a start that crashes, but not one
// whose port is taken: ch-modern's ports lie in the ephemeral range, where a client's
// connection may hold one for a moment.
func (m *modernSuite) startModern(ctx context.Context) error {
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		if err = m.env.Start(ctx, "ch-modern"); err == nil {
			return nil
		}
		m.t.Logf("chaos: ch-modern start, attempt %d: %v", attempt, err)
		sleep(ctx, 2*time.Second)
	}
	return err
}

// start seeds the modern world into a scratch database, starts the proxy, the load and the
// daemon in logical mode, and waits for its first complete snapshot.
func (m *modernSuite) start() {
	t := m.t
	ctx := context.Background()
	m.bin = buildBinary(t, m.dir)
	m.db = devstack.ScratchName("chaos_modern")
	var err error
	if m.freezesBefore, err = devstack.Freezes(m.env.CHModernData); err != nil {
		t.Fatalf("list ch-modern's freezes: %v", err)
	}
	t.Cleanup(func() {
		for _, d := range []string{m.db, m.db + jobs.DrillSuffix} {
			_, _ = m.env.ModernQuery("DROP DATABASE IF EXISTS " + d + " SYNC")
		}
	})
	now := time.Now().UTC()
	seed := demo.Options{ClickHouse: []string{m.env.CHModernNative}, ClickHouseHTTP: []string{m.env.CHModernHTTP}, Database: m.db, Modern: true,
		Traces: 200, Seed: 11, Months: 1, Start: now.AddDate(0, 0, 1-now.Day()).Truncate(24 * time.Hour)}
	if m.full {
		seed.Traces, seed.Months, seed.Start = 1000, 3, now.AddDate(0, -2, 1-now.Day()).Truncate(24*time.Hour)
	}
	seedCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if _, err := demo.Seed(seedCtx, seed); err != nil {
		t.Fatalf("seed the modern chaos database: %v", err)
	}
	m.proxy = storageProxy(t, m.env, m.logFile("proxy.log"))
	m.listen = freeAddr(t)
	m.writeConfig(chsnap.ModeLogical)
	o := demo.LoadOptions{ClickHouse: []string{m.env.CHModernNative}, Database: m.db, Modern: true, Rate: 300, Interval: 300 * time.Millisecond}
	if m.full {
		o.Rate, o.Interval = 600, 200*time.Millisecond
	}
	m.runLoads(o, m.loadEnded)
	m.startDaemon()
	t.Cleanup(func() {
		m.stopLoad()
		m.killDaemon()
	})
	if _, ok := m.waitSuccess(time.Now().Add(-time.Hour), 4*time.Minute); !ok {
		t.Fatalf("no backup succeeded before any fault; see %s", m.daemonLog())
	}
}

// writeConfig writes the daemon's configuration: ch-modern alone, in the given mode, backed up
// every 3 s to Azurite through the fault proxy.
func (m *modernSuite) writeConfig(mode string) {
	storage, _ := m.storageConfig(false)
	text := fmt.Sprintf(`[storage]
%s
[clickhouse]
addresses = [%q]
http_addresses = [%q]
databases = [%q]
mode = %q

[[jobs]]
name = "chaos-modern-backup"
schedule = "*/3 * * * * *"
action = "backup"
only = ["clickhouse"]
timeout = "3m"
catch_up = "none"

[web]
listen = %q
`, storage, m.env.CHModernNative, m.env.CHModernHTTP, m.db, mode, m.listen)
	m.cfg = m.loadConfig(text, false)
	m.mode = mode
}

// round switches the daemon's mode when the round's differs, injects the fault and checks the
// newest snapshot against the ledger.
func (m *modernSuite) round(r modernRound) {
	if r.mode != m.mode {
		m.stopDaemon()
		m.writeConfig(r.mode)
		m.startDaemon()
		if _, ok := m.waitSuccess(time.Now(), 4*time.Minute); !ok {
			m.t.Fatalf("no backup succeeded in %s mode; see %s", r.mode, m.daemonLog())
		}
	}
	f := r.f
	f.name += " (" + r.mode + ")"
	if m.injectAndHeal(f) {
		m.checkNewest()
	}
}

// loadEnded keeps the load runs a fault ended: the statement in flight may have been applied
// without being acknowledged, which reconcile finds out.
func (m *modernSuite) loadEnded(ledger string, res demo.LoadResult, err error) {
	if err == nil || res.RunID == "" {
		return
	}
	m.ledgerMu.Lock()
	defer m.ledgerMu.Unlock()
	m.ended = append(m.ended, loadEnd{ledger: ledger, run: res.RunID, at: time.Now()})
}

// checkNewest drills the newest complete snapshot into a scratch database and holds its tables
// against the ledger.
func (m *modernSuite) checkNewest() {
	t := m.t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	copyDB := m.db + jobs.DrillSuffix
	drop := func() { _, _ = m.env.ModernQuery("DROP DATABASE IF EXISTS " + copyDB + " SYNC") }
	defer drop()
	man := m.drillNewest(ctx, drop)
	if man == nil {
		return
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{m.env.CHModernNative}, Auth: clickhouse.Auth{Username: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := m.reconcile(ctx, conn); err != nil {
		t.Errorf("reconcile the load runs a fault ended: %v", err)
		return
	}
	sec, _, err := chsnap.SnapshotSection(man)
	if err != nil {
		t.Errorf("snapshot %s: %v", man.ID, err)
		return
	}
	cuts := map[string]time.Time{}
	for _, rec := range sec.Tables {
		if rec.Database == m.db {
			cuts[rec.Name] = rec.Cut
		}
	}
	// events_core_mv must not have fired during the restore: every span is inserted once, so
	// each table holds as many rows as distinct spans before any merge.
	for _, table := range []string{"events_full", "events_core"} {
		var rows, spans uint64
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(), uniqExact(span_id) FROM %s.%s", copyDB, table)).Scan(&rows, &spans); err != nil {
			t.Errorf("count the restored %s: %v", table, err)
		} else if rows != spans {
			t.Errorf("snapshot %s: the restored %s holds %d rows of %d spans: filled more than once", man.ID, table, rows, spans)
		}
	}
	for _, table := range []string{"events_full", "events_core", modernStaging} {
		cut, ok := cuts[table]
		if !ok || cut.IsZero() {
			t.Errorf("snapshot %s records no cut for %s.%s", man.ID, m.db, table)
			continue
		}
		var rec *chsnap.TableRecord
		for i := range sec.Tables {
			if sec.Tables[i].Database == m.db && sec.Tables[i].Name == table {
				rec = &sec.Tables[i]
			}
		}
		m.checkTable(ctx, conn, man.ID, copyDB, table, cut, man.End, rec)
	}
	m.checkTruncated(ctx, conn, man.ID, copyDB, cuts["events"])
}

// modernColumns is what a table is compared on beside its ids and partitions.
func modernColumns(table string) (idColumn string, cols []string) {
	if table == modernStaging {
		return "id", nil
	}
	return "span_id", demo.ModernTracked
}

// checkTable holds one restored table against the ledgers (see matchWindow) and reports, for
// each partition that reads as no state of the ledger, the rows acknowledged before the cut that
// it lacks or holds with other values (compared with the cut's state, the earliest it may hold).
func (m *modernSuite) checkTable(ctx context.Context, conn clickhouse.Conn, snap, db, table string, cut, end time.Time, rec *chsnap.TableRecord) {
	t := m.t
	idColumn, cols := modernColumns(table)
	got, err := demo.ReadRows(ctx, conn, db, table, idColumn, "ld-", cols)
	if err != nil {
		t.Errorf("snapshot %s: %v", snap, err)
		return
	}
	w, err := matchWindow(m.eachRecord, "clickhouse:"+table, cols, cut, end, got)
	if err != nil {
		t.Errorf("replay the ledgers: %v", err)
		return
	}
	m.rowsCompared += int64(len(got))
	m.updates += w.updates
	m.erased += w.erased
	for _, p := range w.unmatched {
		var lost, extra []string
		n := 0
		for id, g := range got {
			if g.Partition != p {
				continue
			}
			n++
			if a, ok := w.atCut[id]; !ok || a.Partition != p {
				extra = append(extra, id)
			}
		}
		for id, a := range w.atCut {
			if a.Partition == p {
				if g, ok := got[id]; !ok || g.Partition != p || !maps.Equal(g.Values, a.Values) {
					lost = append(lost, fmt.Sprintf("%s (restored %v, acknowledged %v)", id, g.Values, a.Values))
				}
			}
		}
		slices.Sort(lost)
		slices.Sort(extra)
		m.rowsLost += int64(len(lost))
		m.partitionsBad++
		t.Errorf("snapshot %s: %s partition %s (%d rows) reads as no state of the ledger between its cut %s and the snapshot's end %s: %d rows acknowledged before the cut lost or changed, e.g. %v; %d rows not in the ledger then, e.g. %v",
			snap, table, p, n, cut.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano), len(lost), lost[:min(3, len(lost))], len(extra), extra[:min(3, len(extra))])
		m.explain(table, p, rec, lost, extra)
	}
}

// explain logs what a partition that read as no state of the ledger was made of: its record in
// the snapshot (parts, patch parts, rows, whether its object was exported or reused, when) and
// the ledger's records of a few of the rows it got wrong, with their acknowledgement times.
func (m *modernSuite) explain(table, partition string, rec *chsnap.TableRecord, lost, extra []string) {
	if rec != nil {
		for _, p := range rec.Partitions {
			if p.ID == partition {
				raw, _ := json.Marshal(p)
				m.t.Logf("chaos: %s partition %s as recorded: %s", table, partition, raw)
			}
		}
	}
	ids := map[string]bool{}
	for _, l := range lost[:min(3, len(lost))] {
		id, _, _ := strings.Cut(l, " ")
		ids[id] = true
	}
	for _, id := range extra[:min(3, len(extra))] {
		ids[id] = true
	}
	_ = m.eachRecord(func(r demo.LedgerRecord) error {
		if r.Table != "clickhouse:"+table {
			return nil
		}
		for _, id := range r.IDs {
			if ids[id] {
				m.t.Logf("chaos: ledger %s %s acked %s partition %s set %v (%d ids)", id, r.Op, r.Acked.Format(time.RFC3339Nano), r.Partition, r.Set, len(r.IDs))
			}
		}
		return nil
	})
}

// window is what matchWindow found of one table.
type window struct {
	unmatched       []string                  // partitions that read as no state of the window, sorted
	atCut           map[string]demo.LedgerRow // the table's rows at the cut, by id
	updates, erased int64                     // rows updated and erased in place before the cut
}

// matchWindow replays the records of table key that each yields, in order, and finds the
// partitions of got (restored rows by id) that read, on cols, as no state of the ledger from
// the cut (the records acknowledged before it applied) through each later record sent up to
// end. A snapshot's partitions are each read at their own moment in that window, so each
// must match one of those states; a partition the ledger fills only after the cut matches its
// state before, empty, when nothing of it was restored.
func matchWindow(each func(func(demo.LedgerRecord) error) error, key string, cols []string, cut, end time.Time, got map[string]demo.LedgerRow) (window, error) {
	restored := map[string]map[string]demo.LedgerRow{}
	for id, row := range got {
		if restored[row.Partition] == nil {
			restored[row.Partition] = map[string]demo.LedgerRow{}
		}
		restored[row.Partition][id] = row
	}
	digests := map[string]demo.PartitionDigest{}
	for p, rows := range restored {
		n, sum := demo.Digest(rows, cols)
		digests[p] = demo.PartitionDigest{Rows: n, Sum: sum}
	}
	replay := demo.NewLedgerReplay(cols)
	matched := map[string]bool{}
	judged := map[string]bool{} // partitions restored or holding rows at the cut
	var w window
	crossed := false
	check := func(k demo.LedgerKey) {
		if replay.Digest(k) == digests[k.Partition] {
			matched[k.Partition] = true
		}
	}
	cross := func() {
		crossed = true
		w.atCut = maps.Clone(replay.Rows[key])
		judged = partitionsOf(w.atCut, restored)
		for p := range judged {
			check(demo.LedgerKey{Table: key, Partition: p})
		}
	}
	err := each(func(r demo.LedgerRecord) error {
		// A statement sent before the end and acknowledged after it was in flight while the
		// snapshot read: the server may have applied it before a partition's read, so its
		// state is one of the window's too (the load sends one statement at a time, so at
		// most one is in flight).
		sent := r.Acked
		if !r.Sent.IsZero() {
			sent = r.Sent
		}
		if r.Table != key || sent.After(end) {
			return nil
		}
		if !crossed && !r.Acked.Before(cut) {
			cross()
		}
		touched, err := replay.Apply(r)
		if err != nil {
			return err
		}
		if crossed {
			for _, k := range touched {
				check(k)
			}
			return nil
		}
		switch r.Op {
		case demo.OpUpdate:
			w.updates += int64(len(r.IDs))
		case demo.OpErase:
			w.erased += int64(len(r.IDs))
		}
		return nil
	})
	if err != nil {
		return w, err
	}
	if !crossed {
		cross()
	}
	for p := range judged {
		if !matched[p] {
			w.unmatched = append(w.unmatched, p)
		}
	}
	slices.Sort(w.unmatched)
	return w, nil
}

// partitionsOf is the partitions of the rows of either map.
func partitionsOf(rows map[string]demo.LedgerRow, restored map[string]map[string]demo.LedgerRow) map[string]bool {
	out := map[string]bool{}
	for _, r := range rows {
		out[r.Partition] = true
	}
	for p := range restored {
		out[p] = true
	}
	return out
}

// checkTruncated: the load only truncates the legacy events table, so once a TRUNCATE was
// acknowledged before the table's cut the restored table is empty.
func (m *modernSuite) checkTruncated(ctx context.Context, conn clickhouse.Conn, snap, db string, cut time.Time) {
	truncated := false
	if err := m.eachRecord(func(r demo.LedgerRecord) error {
		truncated = truncated || r.Op == demo.OpTruncate && r.Acked.Before(cut)
		return nil
	}); err != nil {
		m.t.Errorf("replay the ledgers: %v", err)
		return
	}
	if !truncated {
		return
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".events").Scan(&n); err != nil {
		m.t.Errorf("count the restored events: %v", err)
		return
	}
	m.truncates++
	if n != 0 {
		m.t.Errorf("snapshot %s: the legacy events table, truncated before its cut %s, is restored with %d rows", snap, cut.Format(time.RFC3339Nano), n)
	}
}

// eachRecord calls fn for every record of every ledger, in the order they were written (the
// load runs one after another).
func (m *modernSuite) eachRecord(fn func(demo.LedgerRecord) error) error {
	m.ledgerMu.Lock()
	paths := slices.Clone(m.ledgers)
	m.ledgerMu.Unlock()
	for _, p := range paths {
		if err := (demo.Ledger{Path: p}).Each(time.Time{}, fn); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// reconcile finds out, for each load run a fault ended, whether the statement in flight was
// applied though never acknowledged: the run's rows (which nothing writes once it ended) are
// read from ch-modern and every difference from the ledger's final state is appended to the
// ledger as acknowledged when the run saw its error, before which it was applied.
func (m *modernSuite) reconcile(ctx context.Context, conn clickhouse.Conn) error {
	m.ledgerMu.Lock()
	ended := slices.Clone(m.ended)
	m.ledgerMu.Unlock()
	for _, e := range ended {
		if m.reconciled[e.ledger] {
			continue
		}
		final, err := demo.Ledger{Path: e.ledger}.Expected(time.Time{})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		var add []demo.LedgerRecord
		for _, table := range []string{"events_full", "events_core", modernStaging} {
			idColumn, cols := modernColumns(table)
			live, err := demo.ReadRows(ctx, conn, m.db, table, idColumn, "ld-"+e.run+"-", cols)
			if err != nil {
				return err
			}
			add = append(add, ledgerDiff("clickhouse:"+table, final["clickhouse:"+table], live, e.at)...)
		}
		if len(add) > 0 {
			f, err := os.OpenFile(e.ledger, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("append to ledger %s: %w", e.ledger, err)
			}
			enc := json.NewEncoder(f)
			for _, r := range add {
				if err := enc.Encode(r); err != nil {
					f.Close()
					return fmt.Errorf("append to ledger %s: %w", e.ledger, err)
				}
				m.unacked += int64(len(r.IDs))
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("append to ledger %s: %w", e.ledger, err)
			}
			m.t.Logf("chaos: load run %s was cut off at %s with a statement applied but not acknowledged: %d rows told the ledger", e.run, e.at.Format(time.RFC3339Nano), len(add))
		}
		m.reconciled[e.ledger] = true
	}
	return nil
}

// ledgerDiff is the records that turn want into live, acknowledged at at.
func ledgerDiff(table string, want, live map[string]demo.LedgerRow, at time.Time) []demo.LedgerRecord {
	var out []demo.LedgerRecord
	for id, w := range want {
		if l, ok := live[id]; !ok || l.Partition != w.Partition {
			out = append(out, demo.LedgerRecord{Acked: at, Table: table, Partition: w.Partition, Op: demo.OpErase, IDs: []string{id}})
		} else if !maps.Equal(l.Values, w.Values) {
			out = append(out, demo.LedgerRecord{Acked: at, Table: table, Partition: w.Partition, Op: demo.OpUpdate, IDs: []string{id}, Set: l.Values})
		}
	}
	for id, l := range live {
		if w, ok := want[id]; !ok || w.Partition != l.Partition {
			out = append(out, demo.LedgerRecord{Acked: at, Table: table, Partition: l.Partition, Op: demo.OpInsert, IDs: []string{id}, Set: l.Values})
		}
	}
	return out
}

// summary prints, last, what the modern run did and found.
func (m *modernSuite) summary() {
	if m.repo != nil {
		m.countRuns()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos modern summary (ch-modern, full=%v, seed=%d)\n", m.full, m.seed)
	m.summaryRuns(&b)
	fmt.Fprintf(&b, "  rows compared:      %d (restored rows of the load, values of %s included, against the ledger)\n", m.rowsCompared, strings.Join(demo.ModernTracked, ", "))
	fmt.Fprintf(&b, "  updates checked:    %d (rows updated in place before a restored snapshot's cut)\n", m.updates)
	fmt.Fprintf(&b, "  deletes checked:    %d (rows deleted in place before a restored snapshot's cut)\n", m.erased)
	fmt.Fprintf(&b, "  truncates checked:  %d\n", m.truncates)
	fmt.Fprintf(&b, "  unacknowledged:     %d (rows an in-flight statement changed when a fault cut its load run off)\n", m.unacked)
	fmt.Fprintf(&b, "  rows lost:          %d (%d partitions reading as no state of the ledger)\n", m.rowsLost, m.partitionsBad)
	m.t.Log(b.String())
	fmt.Print(b.String())
	if m.rowsLost != 0 || m.partitionsBad != 0 {
		m.t.Errorf("%d rows lost, %d partitions unlike the ledger", m.rowsLost, m.partitionsBad)
	}
}
