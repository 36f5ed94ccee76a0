package jobs

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// moveFixture is a PostgreSQL source and target (scratch databases) and a blob source and target
// (scratch Azurite containers), with the configuration of the source and the target file's
// sections for them.
type moveFixture struct {
	env              *devstack.Env
	cfg              *config.Config
	src              *pgx.Conn
	srcDSN, dstDSN   string
	srcURL, dstURL   string
	srcBlobs         blobs.Container
	pgTarget, blobTo string // the target file's [postgres] and [blobs]
}

func newMoveFixture(t *testing.T, env *devstack.Env) *moveFixture {
	t.Helper()
	ctx := context.Background()
	f := &moveFixture{env: env, srcDSN: env.PGDatabase(t, "it_mv_src"), dstDSN: env.PGDatabase(t, "it_mv_dst")}
	var err error
	if f.src, err = pgx.Connect(ctx, f.srcDSN); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.src.Close(context.Background()) })
	// Langfuse's tables in miniature: rows with a serial key, jsonb and a timestamp, and
	// golang-migrate's schema_migrations.
	f.pg(t, "CREATE TABLE traces (id serial PRIMARY KEY, name text, meta jsonb, at timestamptz DEFAULT now())",
		"CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)",
		"INSERT INTO schema_migrations VALUES (4, false)")
	f.insert(t, 100)

	name := strings.ToLower(strings.ReplaceAll(devstack.ScratchName("it-mv"), "_", "-"))
	f.srcURL, f.dstURL = "azblob://"+name+"-src", "azblob://"+name+"-dst"
	t.Cleanup(func() { deleteContainers(env.AzureConnectionString, f.srcURL, f.dstURL) })
	if f.srcBlobs, err = blobs.OpenContainer(ctx, f.srcURL, blobs.Credentials{ConnectionString: env.AzureConnectionString}, true); err != nil {
		t.Fatal(err)
	}
	f.putBlobs(t, 0, 5)

	f.cfg = daemonConfig(t, env, t.TempDir())
	f.cfg.ZooKeeper.Servers = nil
	f.cfg.Postgres.DSN = config.Secret(f.srcDSN)
	f.cfg.Blobs = config.Blobs{URL: f.srcURL, AzureCredentials: config.AzureCredentials{ConnectionString: config.Secret(env.AzureConnectionString)}, Workers: 2, PackSize: 1 << 20}
	f.pgTarget = fmt.Sprintf("[postgres]\ndsn = %q\n", f.dstDSN)
	f.blobTo = fmt.Sprintf("[blobs]\nurl = %q\nconnection_string = %q\n", f.dstURL, env.AzureConnectionString)
	return f
}

func (f *moveFixture) pg(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := f.src.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// insert writes n traces in one transaction.
func (f *moveFixture) insert(t *testing.T, n int) {
	f.pg(t, fmt.Sprintf("INSERT INTO traces (name, meta) SELECT 'trace ' || g, jsonb_build_object('n', g) FROM generate_series(1, %d) g", n))
}

// putBlobs writes blobs number from to to-1 into the source container.
func (f *moveFixture) putBlobs(t *testing.T, from, to int) {
	for i := from; i < to; i++ {
		putBlob(t, f.srcBlobs, fmt.Sprintf("events/%03d.json", i), []byte(fmt.Sprintf(`{"event": %d}`, i)))
	}
}

// target counts the target's traces, and those named name, on a new connection: a copy pass
// swaps in a new database, ending the connections to the old one.
func (f *moveFixture) target(t *testing.T, name string) (all, named int) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, f.dstDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, "SELECT count(*), count(*) FILTER (WHERE name = $1) FROM traces", name).Scan(&all, &named); err != nil {
		t.Fatal(err)
	}
	return all, named
}

func (f *moveFixture) count(t *testing.T) int {
	n, _ := f.target(t, "")
	return n
}

// move plans a migration and runs one pass of it.
func move(t *testing.T, cfg *config.Config, repo *store.Repository, req MigrateClusterRequest) *MoveReport {
	t.Helper()
	_, rep := movePlanned(t, cfg, repo, req)
	return rep
}

// movePlanned plans a migration and runs one pass of it, and returns the plan too.
func movePlanned(t *testing.T, cfg *config.Config, repo *store.Repository, req MigrateClusterRequest) (*ClusterMigrationPlan, *MoveReport) {
	t.Helper()
	ctx := context.Background()
	m, err := NewClusterMigration(ctx, cfg, repo, req, quiet)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	defer m.Close()
	rep, err := m.Run(ctx, repo)
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	return m.Plan, rep
}

// pitrDaemon starts a daemon streaming cfg's [postgres] database into cfg's repository (created
// here) through a slot of its own, dropped when the test ends, and returns it with a wait for
// its recovery point to pass a time. The caller stops it.
func pitrDaemon(ctx context.Context, t *testing.T, env *devstack.Env, cfg *config.Config) (*Daemon, func(time.Time)) {
	t.Helper()
	slot := fmt.Sprintf("tv_it_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
			c.Close(context.Background())
		}
	})
	cfg.Postgres.PITR, cfg.Postgres.PITRSlot, cfg.Postgres.PITRSegmentInterval = true, slot, config.Duration(time.Second)
	if _, err := CreateRepository(ctx, cfg.Storage, quiet); err != nil {
		t.Fatal(err)
	}
	d, err := NewDaemon(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return d, func(at time.Time) {
		t.Helper()
		for !d.pitr.s.State().RecoveryPoint.After(at) {
			if ctx.Err() != nil {
				t.Fatalf("the recovery point never passed %s: %+v", at, d.pitr.s.State())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestMigratePostgresCatchUp: PostgreSQL moved to another database while the daemon streams its
// changes: the first pass restores the chain's base and replays what the stream covers, the
// second replays only the inserts, updates and deletes written since, and the cutover, with
// no stream wait left to chance, reaches the source's WAL position and proves every table's
// rows and content checksum equal, schema_migrations included.
func TestMigratePostgresCatchUp(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	f := newMoveFixture(t, env)
	cfg := f.cfg
	d, waitPast := pitrDaemon(ctx, t, env, cfg)
	defer d.Stop(time.Second)
	waitPast(time.Now()) // the chain's base is stored
	f.insert(t, 50)
	waitPast(time.Now())
	req := MigrateClusterRequest{Target: writeTarget(t, f.pgTarget), Only: []string{"postgres"}}

	rep := move(t, cfg, d.repo, req).Postgres
	t.Logf("base pass: %s, %d rows", rep.Duration, rep.Rows)
	if rep.How != "pitr-base" || f.count(t) != 150 {
		t.Errorf("first pass: %+v; the target holds %d traces, want 150", rep, f.count(t))
	}
	f.insert(t, 30)
	f.pg(t, "UPDATE traces SET name = 'renamed' WHERE id <= 10", "DELETE FROM traces WHERE id > 170")
	waitPast(time.Now())
	rep = move(t, cfg, d.repo, req).Postgres
	t.Logf("catch-up pass: %s, %d transactions", rep.Duration, rep.Transactions)
	if rep.How != "pitr-catch-up" || rep.Transactions != 3 || f.count(t) != 170 {
		t.Errorf("second pass: %+v; the target holds %d traces, want 3 transactions replayed, 170 traces", rep, f.count(t))
	}
	f.insert(t, 20) // ingestion paused after these: the cutover waits for the stream to cover them
	req.Cutover = true
	rep = move(t, cfg, d.repo, req).Postgres
	t.Logf("cutover: %s, %d transactions", rep.Duration, rep.Transactions)
	if rep.Proof == nil || !rep.Proof.Equal || rep.Proof.Compared != 2 || rep.Transactions != 1 || f.count(t) != 190 {
		t.Errorf("cutover: %+v proof %+v; the target holds %d traces, want 190", rep, rep.Proof, f.count(t))
	}
	if _, renamed := f.target(t, "renamed"); renamed != 10 {
		t.Errorf("updated rows on the target: %d, want 10", renamed)
	}
}

// TestMigrateBlobs: the blob container moved to another one: a first pass writes every blob,
// the next only those added or changed since and deletes the one deleted on the source, the
// cutover none and proves the listings equal; a container that holds blobs is refused as a
// target before anything is written.
func TestMigrateBlobs(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	f := newMoveFixture(t, env)
	repo, err := CreateRepository(ctx, f.cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	req := MigrateClusterRequest{Target: writeTarget(t, f.blobTo), Only: []string{"blobs"}}
	if rep := move(t, f.cfg, repo, req).Blobs; rep.Written != 5 || rep.Identical != 0 {
		t.Errorf("first pass: %+v; want 5 written", rep)
	}
	f.putBlobs(t, 5, 7)
	putBlob(t, f.srcBlobs, "events/001.json", []byte(`{"event": 1, "edited": true}`))
	if err := f.srcBlobs.(blobs.Deleter).Delete(ctx, "events/004.json"); err != nil {
		t.Fatal(err)
	}
	if rep := move(t, f.cfg, repo, req).Blobs; rep.Written != 3 || rep.Identical != 3 || rep.Deleted != 1 {
		t.Errorf("second pass: %+v; want 3 written (2 new, 1 changed), 3 identical, 1 deleted", rep)
	}
	req.Cutover = true
	rep := move(t, f.cfg, repo, req).Blobs
	if rep.Written != 0 || rep.Deleted != 0 || rep.Proof == nil || !rep.Proof.Equal || rep.Proof.Compared != 6 {
		t.Errorf("cutover: %+v proof %+v; want nothing written, 6 blobs equal", rep, rep.Proof)
	}

	// A new migration into the container that now holds blobs.
	other := MigrateClusterRequest{Target: writeTarget(t, f.blobTo), Only: []string{"blobs"}}
	m, err := NewClusterMigration(ctx, f.cfg, repo, other, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Run(ctx, repo); err == nil || !strings.Contains(err.Error(), "holds blobs (events/000.json, ...)") {
		t.Errorf("a target container holding blobs: %v, want refused", err)
	}
}

// TestMigrateLangfuseWhole: ClickHouse (the 18.16 cluster to ch-modern), PostgreSQL (without
// PITR: each pass a fresh copy) and the blob container in one command: a pass, writes to all
// three, then the cutover, whose proofs find each target equal to its source.
func TestMigrateLangfuseWhole(t *testing.T) {
	env := devstack.RequireModern(t)
	ctx := context.Background()
	f := newMoveFixture(t, env)
	db := env.CHDatabase(t, "it_mvall")
	t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC") })
	exec := func(q string) {
		t.Helper()
		if err := env.CHExec(0, q); err != nil {
			t.Fatal(err)
		}
	}
	exec(fmt.Sprintf("CREATE TABLE %s.traces ON CLUSTER %s "+mcTraces, db, env.CHCluster,
		fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}', event_ts)", db)))
	exec(fmt.Sprintf(mcRows, db, 1, 100))
	cfg := f.cfg
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{db}
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	req := MigrateClusterRequest{Target: writeTarget(t, fmt.Sprintf("[clickhouse]\naddresses = [%q]\nhttp_addresses = [%q]\n", env.CHModernNative, env.CHModernHTTP)+f.pgTarget+f.blobTo)}

	m, err := NewClusterMigration(ctx, cfg, repo, req, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.Plan.Sources, ","); got != "postgres,clickhouse,blobs" || len(m.Plan.Moves) != 2 || len(m.Plan.refused()) != 0 {
		t.Errorf("plan: sources %s, moves %+v", got, m.Plan.Moves)
	}
	m.Close()
	rep := move(t, cfg, repo, req)
	if rep.PassReport == nil || rep.BehindRows != 100 || rep.Postgres.Rows != 101 || rep.Blobs.Written != 5 {
		t.Errorf("first pass: clickhouse %+v, postgres %+v, blobs %+v", rep.PassReport, rep.Postgres, rep.Blobs)
	}
	if rep.Snapshot == "" || rep.Postgres.Snapshot != rep.Snapshot || rep.Blobs.Snapshot != rep.Snapshot {
		t.Errorf("the pass moved snapshots %s, %s and %s: want one cut of all three", rep.Postgres.Snapshot, rep.Snapshot, rep.Blobs.Snapshot)
	}
	exec(fmt.Sprintf(mcRows, db, 2, 50))
	f.insert(t, 25)
	f.putBlobs(t, 5, 6)
	req.Cutover = true
	rep = move(t, cfg, repo, req)
	if rep.Proof == nil || !rep.Proof.Rows || rep.BehindRows != 50 {
		t.Errorf("clickhouse cutover: %+v proof %+v", rep.PassReport, rep.Proof)
	}
	if p := rep.Postgres; p.How != "copy" || p.Proof == nil || !p.Proof.Equal || f.count(t) != 125 {
		t.Errorf("postgres cutover: %+v proof %+v; the target holds %d traces, want 125", p, p.Proof, f.count(t))
	}
	if b := rep.Blobs; b.Written != 1 || b.Proof == nil || !b.Proof.Equal || b.Proof.Compared != 6 {
		t.Errorf("blobs cutover: %+v proof %+v", b, b.Proof)
	}
	if rep.Took <= 0 {
		t.Error("the cutover's downtime was not measured")
	}
	t.Logf("cutover: %s in all; clickhouse %s, postgres %s, blobs %s", rep.Took, rep.Duration, rep.Postgres.Duration, rep.Blobs.Duration)

	// A new migration into the database that now holds tables is refused before it writes.
	other := MigrateClusterRequest{Target: writeTarget(t, f.pgTarget), Only: []string{"postgres"}}
	m, err = NewClusterMigration(ctx, cfg, repo, other, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Run(ctx, repo); err == nil || !strings.Contains(err.Error(), "holds 2 tables: migrate into an empty database, or pass --allow-nonempty") {
		t.Errorf("a target database holding tables: %v, want refused", err)
	}
}
