package jobs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// drillFixture is a seeded scratch ClickHouse database and PostgreSQL database, backed up into a
// file:// repository.
type drillFixture struct {
	env     *devstack.Env
	cfg     *config.Config
	repoDir string
	repo    *store.Repository
	chDB    string
	pgDB    string
	m       *store.Manifest
}

func newDrillFixture(t *testing.T) *drillFixture {
	t.Helper()
	env := devstack.Require(t)
	ctx := context.Background()
	f := &drillFixture{env: env, repoDir: t.TempDir(), chDB: devstack.ScratchName("it_drill")}
	dsn := env.PGDatabase(t, "it_drill")
	f.pgDB = dsn[strings.LastIndex(dsn, "/")+1:]
	if i := strings.IndexByte(f.pgDB, '?'); i >= 0 {
		f.pgDB = f.pgDB[:i]
	}
	t.Cleanup(func() {
		for _, db := range []string{f.chDB, f.chDB + DrillSuffix} {
			f.chExec(t, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, env.CHCluster))
		}
		f.pgExec(t, "DROP DATABASE IF EXISTS "+pgx.Identifier{f.pgDB + DrillSuffix}.Sanitize()+" WITH (FORCE)")
	})
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: f.chDB,
		PostgresDSN: dsn, Traces: 150, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	cfg := daemonConfig(t, env, f.repoDir)
	cfg.ZooKeeper.Servers = nil
	cfg.Postgres.DSN = config.Secret(dsn)
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{f.chDB}
	f.cfg = cfg
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	if f.m, err = Backup(ctx, cfg, repo, BackupRequest{}, quiet); err != nil {
		t.Fatalf("backup: %v", err)
	}
	return f
}

func (f *drillFixture) chExec(t *testing.T, q string) {
	t.Helper()
	srv, err := clickhouse.Dial(context.Background(), f.env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.Conn.Exec(context.Background(), q); err != nil {
		t.Errorf("%s: %v", q, err)
	}
}

func (f *drillFixture) pgExec(t *testing.T, q string) {
	t.Helper()
	c, err := pgx.Connect(context.Background(), f.env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(context.Background(), q); err != nil {
		t.Errorf("%s: %v", q, err)
	}
}

// scratchLeft names the drill's scratch databases still present on any replica or on PostgreSQL.
func (f *drillFixture) scratchLeft(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var left []string
	for _, addr := range f.env.CHNative {
		srv, err := clickhouse.Dial(ctx, addr, clickhouse.ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		err = srv.Conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", f.chDB+DrillSuffix).Scan(&n)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			left = append(left, addr+":"+f.chDB+DrillSuffix)
		}
	}
	c, err := pgx.Connect(ctx, f.env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", f.pgDB+DrillSuffix).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		left = append(left, "postgres:"+f.pgDB+DrillSuffix)
	}
	return left
}

func TestDrillRestoresComparesAndDrops(t *testing.T) {
	f := newDrillFixture(t)
	ctx := context.Background()

	t.Run("succeeds", func(t *testing.T) {
		start := time.Now()
		res, err := Drill(ctx, f.cfg, f.repo, DrillRequest{}, quiet)
		if err != nil {
			t.Fatalf("drill: %v", err)
		}
		if res.Outcome != OutcomeSucceeded || res.Snapshot != f.m.ID || len(res.Mismatches) != 0 {
			t.Errorf("drill result %+v; want succeeded on %s without mismatches", res, f.m.ID)
		}
		if res.RPOSeconds <= 0 || res.RPOSeconds > time.Since(f.m.Start).Seconds() {
			t.Errorf("RPO %.1fs; want the snapshot's age, at most %.1fs", res.RPOSeconds, time.Since(f.m.Start).Seconds())
		}
		t.Logf("drill of %s: RTO %.2fs, RPO %.1fs, sources %+v", res.Snapshot, res.RTOSeconds, res.RPOSeconds, res.Sources)
		var sum float64
		got := map[string]DrillSource{}
		for _, s := range res.Sources {
			got[s.Source] = s
			sum += s.RestoreSeconds
		}
		if got["clickhouse"].RestoreSeconds <= 0 || got["postgres"].RestoreSeconds <= 0 || got["clickhouse"].Rows == 0 || res.RTOSeconds != sum {
			t.Errorf("sources %+v, RTO %.2f; want both restored with rows, RTO their sum", res.Sources, res.RTOSeconds)
		}
		if c := got["clickhouse"].Content; !strings.HasPrefix(c, "not supported by this server (ClickHouse 18.16") {
			t.Errorf("content checksum %q: 18.16 has no formatRow, the drill must say so and compare rows", c)
		}
		if !strings.Contains(res.DiskCheck, "iB free") && !strings.Contains(res.DiskCheck, "not measured") {
			t.Errorf("disk check %q: want the measured free space of the servers' data directories, in human units", res.DiskCheck)
		}
		if left := f.scratchLeft(t); len(left) > 0 {
			t.Errorf("scratch databases left after the drill: %v", left)
		}
		r, err := RecordDrill(ctx, f.repo, res, start)
		if err != nil {
			t.Fatal(err)
		}
		if r.RTOSeconds != res.RTOSeconds || r.RestoreSeconds["postgres"] <= 0 {
			t.Errorf("recorded run %+v lacks the drill's RTO", r)
		}
	})

	t.Run("corrupt object", func(t *testing.T) {
		sec, objects, err := clickhouse.SnapshotSection(f.m)
		if err != nil {
			t.Fatal(err)
		}
		var ref store.ObjectRef
		for _, tb := range sec.Tables {
			for _, p := range tb.Partitions {
				if o := objects[p.Object]; ref.ID == "" && o.RawSize > 0 {
					ref = o
				}
			}
		}
		file := filepath.Join(f.repoDir, "data", ref.ID[:2], ref.ID)
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), b...)
		b[len(b)/2] ^= 0x40
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(file, orig, 0o644)
		start := time.Now()
		res, err := Drill(ctx, f.cfg, f.repo, DrillRequest{}, quiet)
		if err == nil || res.Outcome != OutcomeFailed || !strings.Contains(res.Error, ref.ID) {
			t.Fatalf("drill over a flipped byte in %s: outcome %s, error %v; want failed naming the object", ref.ID, res.Outcome, err)
		}
		if left := f.scratchLeft(t); len(left) > 0 {
			t.Errorf("scratch databases left after a failed drill: %v", left)
		}
		if _, err := RecordDrill(ctx, f.repo, res, start); err != nil {
			t.Fatal(err)
		}
		// The page puts the failed drill first, with its cause.
		d, err := NewDaemon(f.cfg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer d.Stop(time.Minute)
		st, _ := d.Status(ctx)
		if st.LastDrill == nil || st.LastDrill.Outcome != OutcomeFailed || len(st.Problems) == 0 ||
			!strings.HasPrefix(st.Problems[0].What, "restore drill") || !strings.Contains(st.Problems[0].What, ref.ID) {
			t.Errorf("status after a failed drill: last drill %+v, problems %+v; want the drill's failure first", st.LastDrill, st.Problems)
		}
	})
	t.Run("keep", func(t *testing.T) {
		if _, err := Drill(ctx, f.cfg, f.repo, DrillRequest{Keep: true}, quiet); err != nil {
			t.Fatal(err)
		}
		if left := f.scratchLeft(t); len(left) != len(f.env.CHNative)+1 {
			t.Errorf("--keep left %v; want the scratch database on every replica and on postgres", left)
		}
		// The drill drops what it restores into, so it never adopts a database that exists.
		if _, err := Drill(ctx, f.cfg, f.repo, DrillRequest{}, quiet); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("drill over a kept scratch database: %v; want it refused", err)
		}
		if left := f.scratchLeft(t); len(left) != len(f.env.CHNative)+1 {
			t.Errorf("the refused drill dropped the kept databases: left %v", left)
		}
		f.chExec(t, fmt.Sprintf("DROP DATABASE %s ON CLUSTER %s", f.chDB+DrillSuffix, f.env.CHCluster))
		f.pgExec(t, "DROP DATABASE "+pgx.Identifier{f.pgDB + DrillSuffix}.Sanitize()+" WITH (FORCE)")
	})

	t.Run("timeout", func(t *testing.T) {
		res, err := Drill(ctx, f.cfg, f.repo, DrillRequest{Timeout: 300 * time.Millisecond}, quiet)
		if err == nil || !strings.Contains(res.Error, "longer than its timeout 300ms") {
			t.Errorf("drill past its timeout: %v; want the timeout named", err)
		}
		if left := f.scratchLeft(t); len(left) > 0 {
			t.Errorf("scratch databases left after a timed-out drill: %v", left)
		}
	})

	// Last: it drops the live ClickHouse database.
	t.Run("refuses live targets", func(t *testing.T) {
		drillSuffix = ""
		defer func() { drillSuffix = DrillSuffix }()
		// With the live data in place the restorer's own refusal of non-empty partitions fires;
		// with the live database lost (the day a drill must not recreate it) only the guard can.
		for _, lost := range []bool{false, true} {
			if lost {
				f.chExec(t, fmt.Sprintf("DROP DATABASE %s ON CLUSTER %s", f.chDB, f.env.CHCluster))
			}
			_, err := Drill(ctx, f.cfg, f.repo, DrillRequest{}, quiet)
			if err == nil || !strings.Contains(err.Error(), f.chDB) {
				t.Fatalf("a drill onto the live databases (lost %v): %v; want a refusal naming %s", lost, err, f.chDB)
			}
			if lost && !strings.Contains(err.Error(), "refusing the scratch restore: step create-database "+f.chDB) {
				t.Errorf("drill onto a lost live database: %v; want the guard's refusal", err)
			}
		}
		srv, err := clickhouse.Dial(ctx, f.env.CHNative[0], clickhouse.ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		var n uint64
		if err := srv.Conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", f.chDB).Scan(&n); err != nil || n != 0 {
			t.Errorf("the refused drill recreated the lost live database %s (%d, %v)", f.chDB, n, err)
		}
	})

}

func TestDaemonDrillMetrics(t *testing.T) {
	f := newDrillFixture(t)
	f.cfg.Jobs = []config.Job{{Name: "drill", Schedule: "0 0 4 * * *", Action: config.ActionDrill, Timeout: config.Duration(10 * time.Minute), CatchUp: "none"}}
	d, err := NewDaemon(f.cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Trigger("drill", TriggerManual); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	var last *Run
	for time.Now().Before(deadline) {
		if last = LastDrill(runsOf(t, d)); last != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	d.Stop(time.Minute)
	if last == nil || last.Outcome != OutcomeSucceeded {
		t.Fatalf("daemon drill run: %+v", last)
	}
	for _, name := range []string{"tracevault_drill_last_success_timestamp_seconds", "tracevault_drill_restore_seconds", "tracevault_recovery_point_age_seconds"} {
		if n, err := testutil.GatherAndCount(d.Metrics(), name); err != nil || n == 0 {
			t.Errorf("scrape: %s has %d series (%v); want it after a drill", name, n, err)
		}
	}
	want := fmt.Sprintf("tracevault_drill_last_success_timestamp_seconds %d\n", last.End.Unix())
	if err := testutil.GatherAndCompare(d.Metrics(), strings.NewReader(
		"# HELP tracevault_drill_last_success_timestamp_seconds Unix time a restore drill last proved a snapshot set restorable; alert on time() minus this.\n"+
			"# TYPE tracevault_drill_last_success_timestamp_seconds gauge\n"+want), "tracevault_drill_last_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(d.Metrics(), "tracevault_recovery_point_age_seconds"); n != 2 {
		t.Errorf("recovery point age: %d series; want one per backed-up source (postgres, clickhouse)", n)
	}
	if left := f.scratchLeft(t); len(left) > 0 {
		t.Errorf("scratch databases left after the daemon's drill: %v", left)
	}
}
