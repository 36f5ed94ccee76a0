package demo_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/migrate"
	mch "github.com/tracevault/tracevault/migrate/clickhouse"
	mpg "github.com/tracevault/tracevault/migrate/postgres"
)

// TestSeedMigratesEveryReplica: after Seed, schema_migrations on every replica is at the latest
// version and clean, each replicated table's ZooKeeper path names the seeded database, and
// reverting every migration then applying them again (the repository's files, which
// `tracevault migrate --dir` reads) gives back the same columns on all three replicas; in
// between, the downs have really undone everything but the migration tables. The same round
// trip for PostgreSQL.
func TestSeedMigratesEveryReplica(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	opts, _ := seedScratch(t, env, 200)
	db := opts.Database

	ms, err := migrate.Load("migrations/clickhouse")
	if err != nil {
		t.Fatal(err)
	}
	latest := ms[len(ms)-1].Version
	for _, addr := range env.CHNative {
		c := openCH(t, addr)
		var v int64
		var dirty uint8
		if err := c.QueryRow(ctx, fmt.Sprintf("SELECT argMax(version, sequence), argMax(dirty, sequence) FROM %s.schema_migrations", db)).Scan(&v, &dirty); err != nil {
			t.Fatalf("schema_migrations on %s: %v", addr, err)
		}
		if v != latest || dirty != 0 {
			t.Errorf("schema_migrations on %s: version %d dirty=%d, want %d clean", addr, v, dirty, latest)
		}
		var path string
		if err := c.QueryRow(ctx, "SELECT zookeeper_path FROM system.replicas WHERE database = ? AND table = 'traces'", db).Scan(&path); err != nil || path != "/clickhouse/tables/01/"+db+"/traces" {
			t.Errorf("traces on %s replicates under %q (%v), want the seeded database's own path", addr, path, err)
		}
	}
	seeded := chSchemas(ctx, t, env, db)
	for i := range seeded[1:] {
		if !reflect.DeepEqual(seeded[i+1], seeded[0]) {
			t.Fatalf("after seeding, replica %s's columns differ from %s's:\n%v\n%v", env.CHNative[i+1], env.CHNative[0], seeded[i+1], seeded[0])
		}
	}
	if len(seeded[0]) < 100 {
		t.Fatalf("seeded schema has only %d columns: %v", len(seeded[0]), seeded[0])
	}

	d, err := mch.Open(ctx, mch.Options{Addresses: env.CHNative, HTTPAddresses: env.CHHTTP, Database: db, Cluster: env.CHCluster})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := &migrate.Runner{Driver: d, Migrations: ms, Cluster: env.CHCluster, Database: db, LockWait: time.Minute}
	if done, err := r.Migrate(ctx, migrate.Op{Kind: "down"}, nil); err != nil || len(done) != len(ms) {
		t.Fatalf("down all: %d steps, %v; want %d", len(done), err, len(ms))
	}
	for _, addr := range env.CHNative {
		var left []string
		if err := openCH(t, addr).QueryRow(ctx, "SELECT groupArray(name) FROM (SELECT name FROM system.tables WHERE database = ? ORDER BY name)", db).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if want := []string{"schema_migrations", "tracevault_migrations"}; !reflect.DeepEqual(left, want) {
			t.Errorf("after down all, %s holds %v; want only %v", addr, left, want)
		}
	}
	if v, dirty, err := d.Version(ctx); err != nil || v != migrate.NilVersion || dirty {
		t.Errorf("after down all: version %d dirty=%v (%v), want none, clean", v, dirty, err)
	}
	if done, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil || len(done) != len(ms) {
		t.Fatalf("up all: %d steps, %v; want %d", len(done), err, len(ms))
	}
	for i, got := range chSchemas(ctx, t, env, db) {
		if !reflect.DeepEqual(got, seeded[0]) {
			t.Errorf("after down all and up all, %s's columns differ from the seeded schema:\n%v\nwant\n%v", env.CHNative[i], got, seeded[0])
		}
	}

	pgRoundTrip(ctx, t, opts.PostgresDSN)
}

// chSchemas lists, per replica, every column of every table and view of db, with its type.
func chSchemas(ctx context.Context, t *testing.T, env *devstack.Env, db string) [][]string {
	t.Helper()
	out := make([][]string, len(env.CHNative))
	for i, addr := range env.CHNative {
		q := "SELECT groupArray(c) FROM (SELECT concat(table, '.', name, ' ', type) AS c FROM system.columns WHERE database = ? ORDER BY c)"
		if err := openCH(t, addr).QueryRow(ctx, q, db).Scan(&out[i]); err != nil {
			t.Fatalf("columns of %s on %s: %v", db, addr, err)
		}
	}
	return out
}

// pgRoundTrip reverts and reapplies the PostgreSQL migrations of a seeded database.
func pgRoundTrip(ctx context.Context, t *testing.T, dsn string) {
	t.Helper()
	ms, err := migrate.Load("migrations/postgres")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	schema := func() []string {
		var out []string
		rows, err := conn.Query(ctx, `SELECT table_name || '.' || column_name || ' ' || udt_name || ' ' || is_nullable || ' ' || coalesce(column_default, '')
			FROM information_schema.columns WHERE table_schema = 'public'
			UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'public'
			UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typnamespace = 'public'::regnamespace AND typtype = 'e' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	seeded := schema()
	if !strings.Contains(strings.Join(seeded, "\n"), "type role") {
		t.Fatalf("seeded postgres schema lacks the role enum: %v", seeded)
	}
	d, err := mpg.Open(ctx, dsn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := &migrate.Runner{Driver: d, Migrations: ms, LockWait: time.Minute}
	if v, dirty, err := d.Version(ctx); err != nil || v != ms[len(ms)-1].Version || dirty {
		t.Errorf("postgres after seeding: version %d dirty=%v (%v), want %d clean", v, dirty, err, ms[len(ms)-1].Version)
	}
	if done, err := r.Migrate(ctx, migrate.Op{Kind: "down"}, nil); err != nil || len(done) != len(ms) {
		t.Fatalf("postgres down all: %d steps, %v; want %d", len(done), err, len(ms))
	}
	for _, s := range schema() {
		if !strings.HasPrefix(s, "schema_migrations.") && !strings.HasPrefix(s, "tracevault_migrations.") && !strings.Contains(s, "_migrations_pkey") {
			t.Errorf("postgres after down all still holds %q", s)
		}
	}
	if _, err := r.Migrate(ctx, migrate.Op{Kind: "up"}, nil); err != nil {
		t.Fatalf("postgres up all: %v", err)
	}
	if got := schema(); !reflect.DeepEqual(got, seeded) {
		t.Errorf("postgres after down all and up all:\n%v\nwant\n%v", got, seeded)
	}
}
