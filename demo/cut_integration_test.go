package demo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/postgres"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestBackupUnderLoadHoldsEveryAcknowledgedRow takes snapshot sets of PostgreSQL and ClickHouse
// while the generator writes 2,000 rows/s: the first a full backup, the second an incremental
// one. Each must be complete, record its cut, verify with read-data, restore into scratch
// databases with the restores' row checks passing, and hold every row the ledger says was
// acknowledged before its cut, at least at the version acknowledged by then. The skew between
// the sources' cuts is logged: the figure their running together keeps small.
func TestBackupUnderLoadHoldsEveryAcknowledgedRow(t *testing.T) {
	env := devstack.Require(t)
	seeded, _ := seedScratch(t, env, 2000)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	repo, err := store.Open(context.Background(), store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	o := loadOptions(t, env, seeded, 2000)
	ctx, stop := context.WithCancel(context.Background())
	type outcome struct {
		res demo.LoadResult
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := demo.Load(ctx, o)
		done <- outcome{res, err}
	}()
	// The backups start once the generator is in its stride, every table being written.
	waitLedger(t, o.Ledger, 4000, time.Minute)
	pg := &postgres.Source{DSN: seeded.PostgresDSN, Log: quiet}
	ch := &clickhouse.Source{Native: env.CHNative, HTTP: env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{seeded.Database}}, Cluster: env.CHCluster, Log: quiet}
	sets := []string{"full", "incremental"}
	var taken []*store.Manifest
	for _, name := range sets {
		m, err := snapshot.Run(context.Background(), repo, []snapshot.Source{pg, ch}, snapshot.Options{Log: quiet})
		if err != nil {
			t.Fatalf("%s backup under load: %v", name, err)
		}
		taken = append(taken, m)
	}
	time.Sleep(time.Second) // rows after the last cut, so "before the cut" is a real distinction
	stop()
	out := <-done
	if out.err != nil {
		t.Fatalf("load: %v", out.err)
	}
	t.Logf("load: %.0f rows/s, rows %v", out.res.Rate, out.res.Rows)

	rep, err := repo.Verify(context.Background(), nil, true)
	if err != nil || len(rep.Problems) > 0 || rep.ObjectsRead != rep.Objects || rep.Snapshots != len(taken) {
		t.Fatalf("verify --read-data: %v, %+v", err, rep)
	}
	for i, m := range taken {
		t.Run(sets[i], func(t *testing.T) {
			if m.Status != store.StatusComplete || m.Cut == nil || len(m.Cut.Sources) != 2 {
				t.Fatalf("snapshot %s: %s, cut %v; want complete with the cuts of postgres and clickhouse", m.ID, m.Status, m.Cut)
			}
			t.Logf("snapshot %s: cut %s", m.ID, m.Cut)
			checkNewest(t, m, o.Ledger)
			checkRestore(t, env, repo, m, seeded.Database, o.Ledger, out.res.RunID)
		})
	}
	for i, m := range taken {
		if m.Cut != nil {
			t.Logf("%s: skew between the sources' cuts %s", sets[i], m.Cut.Skew())
		}
	}
}

// checkNewest: each exported partition's newest event_ts is at least the newest version the
// ledger says was acknowledged in it before its table's cut.
func checkNewest(t *testing.T, m *store.Manifest, ledger string) {
	t.Helper()
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, rec := range sec.Tables {
		if !slices.Contains(loadTables, rec.Name) {
			continue // the generator writes the ReplacingMergeTrees of traces, observations, scores
		}
		if rec.VersionColumn != "event_ts" || rec.Cut.IsZero() {
			t.Errorf("%s: version column %q, cut %s; want event_ts and a cut", rec.FullName(), rec.VersionColumn, rec.Cut)
			continue
		}
		want, err := demo.Ledger{Path: ledger}.RowsBefore(rec.Cut)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rec.Partitions {
			w := want[demo.LedgerKey{Table: "clickhouse:" + rec.Name, Partition: p.ID}]
			if p.Newest == "" {
				continue // reused: not read
			}
			newest, err := time.Parse(time.RFC3339Nano, p.Newest)
			if err != nil {
				t.Errorf("%s partition %s: newest %q: %v", rec.FullName(), p.ID, p.Newest, err)
				continue
			}
			if newest.Unix() < w.MaxVersion {
				t.Errorf("%s partition %s: the export's newest event_ts is %s, but the ledger acknowledged version %s before the table's cut %s",
					rec.FullName(), p.ID, newest, time.Unix(w.MaxVersion, 0).UTC(), rec.Cut)
			}
			checked++
		}
		t.Logf("%s: cut %s (%d s of replica delay before its listing), read from %s", rec.FullName(), rec.Cut.Format("15:04:05.000"), rec.CutReplicaDelay, rec.Partitions[0].Replica)
	}
	if checked == 0 {
		t.Error("no partition recorded its newest event_ts")
	}
}

// checkRestore restores m's PostgreSQL and ClickHouse into scratch databases (the restores
// check the rows they load against the manifest) and checks that every row the ledger
// acknowledged before m's cut is there.
func checkRestore(t *testing.T, env *devstack.Env, repo *store.Repository, m *store.Manifest, chDB, ledger, run string) {
	t.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	copyCH := devstack.ScratchName("it_cut")
	t.Cleanup(func() { dropScratchCH(t, env, copyCH) })
	rs, err := restore.New(ctx, restore.Options{Native: env.CHNative, HTTP: env.CHHTTP,
		Conn: clickhouse.ConnOptions{User: "default"}, Cluster: env.CHCluster, Log: quiet, DatabaseMap: map[string]string{chDB: copyCH}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		t.Fatalf("plan the clickhouse restore: %v", err)
	}
	// A failed row check comes after every partition is loaded: the ledger is checked anyway.
	if err := rs.Execute(ctx, repo, plan, nil); err != nil {
		t.Errorf("clickhouse restore: %v", err)
	}

	copyPG := devstack.ScratchName("it_cut")
	t.Cleanup(func() {
		if c, err := pgx.Connect(ctx, env.PGDSN); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{copyPG}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	})
	pr := postgres.NewRestorer(postgres.RestoreOptions{DSN: env.PGDSN, Database: copyPG, Log: quiet})
	pgPlan, err := pr.Plan(ctx, m)
	if err != nil {
		t.Fatalf("plan the postgres restore: %v", err)
	}
	if err := pr.Execute(ctx, repo, pgPlan, nil); err != nil {
		t.Fatalf("postgres restore: %v", err)
	}

	cut := m.Cut.Time
	want := map[string]map[string]int64{} // table: id: newest version before the cut
	pgIDs := map[string][]string{}        // "postgres:<table> <op>": ids
	var before, after int
	if err := (demo.Ledger{Path: ledger}).Each(time.Time{}, func(r demo.LedgerRecord) error {
		if !r.Acked.Before(cut) {
			after += len(r.IDs)
			return nil
		}
		before += len(r.IDs)
		if strings.HasPrefix(r.Table, "postgres:") {
			pgIDs[r.Table+" "+r.Op] = append(pgIDs[r.Table+" "+r.Op], r.IDs...)
			return nil
		}
		table := strings.TrimPrefix(r.Table, "clickhouse:")
		if want[table] == nil {
			want[table] = map[string]int64{}
		}
		for _, id := range r.IDs {
			want[table][id] = max(want[table][id], r.Version)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ledger: %d rows acknowledged before the cut, %d after", before, after)
	if before == 0 || after == 0 {
		t.Fatalf("the backup did not run while the generator wrote: %d rows before its cut, %d after", before, after)
	}

	c := openCH(t, env.CHNative[0])
	for _, table := range loadTables {
		got, err := demo.Versions(ctx, c, copyCH, table, "ld-"+run+"-%")
		if err != nil {
			t.Fatal(err)
		}
		var missing, stale []string
		for id, v := range want[table] {
			g, ok := got[id]
			switch {
			case !ok:
				missing = append(missing, id)
			case g < v:
				stale = append(stale, fmt.Sprintf("%s (version %d, want %d)", id, g, v))
			}
		}
		sort.Strings(missing)
		sort.Strings(stale)
		if len(missing)+len(stale) > 0 {
			t.Errorf("clickhouse %s: of %d ids acknowledged before the cut, the restore lacks %d (e.g. %v) and holds %d at an older version (e.g. %v)",
				table, len(want[table]), len(missing), firstN(missing, 5), len(stale), firstN(stale, 5))
		}
	}

	u, err := url.Parse(env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + copyPG
	pgc, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pgc.Close(ctx)
	for _, check := range pgLedgerChecks {
		distinct := map[string]bool{}
		for _, id := range pgIDs[check.key] {
			distinct[id] = true
		}
		var n int
		if err := pgc.QueryRow(ctx, check.query, pgIDs[check.key]).Scan(&n); err != nil {
			t.Fatalf("%s: %v", check.key, err)
		}
		if n != len(distinct) {
			t.Errorf("%s: the restored postgres holds %d of the %d rows acknowledged before the cut", check.key, n, len(distinct))
		}
	}
}
