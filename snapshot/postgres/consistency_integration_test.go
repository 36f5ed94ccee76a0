package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
)

// writer runs transactions over several related tables until stopped: a new organization with
// a project, an API key and an audit row; a rename; a key revoked. Each transaction keeps the
// foreign keys valid, so only a torn snapshot could break them.
func writer(ctx context.Context, t *testing.T, dsn string, commits *atomic.Int64) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Errorf("writer connect: %v", err)
		return
	}
	defer conn.Close(context.Background())
	for i := 0; ctx.Err() == nil; i++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			org, proj := fmt.Sprintf("w-org-%d", i), fmt.Sprintf("w-proj-%d", i)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{"INSERT INTO organizations (id, name) VALUES ($1, $1)", []any{org}},
				{"INSERT INTO projects (id, org_id, name) VALUES ($1, $2, $1)", []any{proj, org}},
				{"INSERT INTO api_keys (id, public_key, hashed_secret_key, display_secret_key, project_id) VALUES ($1, 'pk-' || $1, 'h-' || $1, 'sk', $2)", []any{"wk-" + proj, proj}},
				{"INSERT INTO audit_logs (org_id, project_id, resource_type, resource_id, action) VALUES ($1, $2, 'project', $2, 'create')", []any{org, proj}},
				{"UPDATE projects SET name = name || '+', updated_at = now() WHERE id = (SELECT id FROM projects ORDER BY random() LIMIT 1)", nil},
				{"DELETE FROM api_keys WHERE id = (SELECT id FROM api_keys WHERE id NOT LIKE 'wk-%' ORDER BY id LIMIT 1)", nil},
			} {
				if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if ctx.Err() == nil {
				t.Errorf("writer transaction %d: %v", i, err)
			}
			return
		}
		commits.Add(1)
	}
}

// TestBackupUnderConcurrentWrites: while a writer commits transactions across related tables,
// the backup copies exactly the snapshot it exported: the restored database matches per-table
// checksums computed inside that same snapshot, and every foreign key holds.
func TestBackupUnderConcurrentWrites(t *testing.T) {
	env := devstack.Require(t)
	ctx := testContext(t)
	srcDSN := seededDatabase(t, env)
	repo := openRepo(t)

	wctx, stop := context.WithCancel(ctx)
	var commits atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); writer(wctx, t, srcDSN, &commits) }()
	defer func() { stop(); wg.Wait() }()
	for commits.Load() < 20 {
		time.Sleep(10 * time.Millisecond)
	}

	var atSnapshot map[string]string
	var duringCopy int64
	src := &Source{DSN: srcDSN, Parallel: 3, exported: func(ctx context.Context, id string) error {
		conn := dial(t, srcDSN)
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+literal(id)); err != nil {
			return err
		}
		atSnapshot = checksums(t, tx)
		// Let the writer commit more while the snapshot is held, so a copy that read the
		// live tables instead of the snapshot would see different rows.
		before := commits.Load()
		for commits.Load() < before+20 {
			time.Sleep(10 * time.Millisecond)
		}
		duringCopy = commits.Load() - before
		return nil
	}}
	m, err := backup(t, repo, src)
	if err != nil {
		t.Fatalf("backup under writes: %v", err)
	}
	stop()
	wg.Wait()
	if duringCopy == 0 {
		t.Fatal("the writer made no commit while the snapshot was held; the test proves nothing")
	}

	target := devstack.ScratchName("it_pg_consistent")
	dropAfter(t, env, target)
	if _, err := restore(t, repo, m, RestoreOptions{DSN: env.PGDSN, Database: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	dst := dial(t, dsnFor(t, env.PGDSN, target))
	if diffs := diffMaps(atSnapshot, checksums(t, dst)); len(diffs) > 0 {
		t.Errorf("restored tables differ from the snapshot's moment:\n%s", strings.Join(diffs, "\n"))
	}
	if live := checksums(t, dial(t, srcDSN)); live["public.organizations"] == atSnapshot["public.organizations"] {
		t.Error("the source did not change after the snapshot; the test proves nothing")
	}
	fks, err := catalogReader{q: dst, schemas: []string{"public"}}.foreignKeys(ctx)
	if err != nil || len(fks) < 8 {
		t.Fatalf("restored foreign keys: %d, %v; want the demo's 8 or more", len(fks), err)
	}
	tx, err := dst.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, fk := range fks {
		if err := checkForeignKey(ctx, tx, fk); err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d writer commits while the snapshot was held", duringCopy)
}
