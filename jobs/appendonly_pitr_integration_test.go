package jobs

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/postgres/pitr"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestAppendOnlyPITRStreams: the daemon streams a PostgreSQL database's changes into an
// append-only repository on Azurite through a container SAS "rcl" (no write, no delete): the base,
// segments, an idle database's heads and the run records are all new objects. A restore to a time
// after the writes reaches them, and verify --read-data follows the chain.
func TestAppendOnlyPITRStreams(t *testing.T) {
	env := devstack.Require(t)
	pitrRetry = time.Second
	defer func() { pitrRetry = 10 * time.Second }()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dsn := env.PGDatabase(t, "it_aopitr")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id serial PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}

	sc := env.ScratchSASContainer(t, "aopitr", "rcl")
	name, endpoint, sas, admin := sc.Name, sc.Endpoint, sc.SAS, sc.Admin
	cfg := daemonConfig(t, env, t.TempDir())
	cfg.Storage.URL = "azblob://" + name + "/repo"
	cfg.Storage.Endpoint, cfg.Storage.SASToken, cfg.Storage.AppendOnly = endpoint, config.Secret(sas), true
	cfg.ZooKeeper.Servers = nil
	cfg.Postgres.DSN = config.Secret(dsn)
	d, waitPast := pitrDaemon(ctx, t, env, cfg)
	waitPast(time.Now()) // the chain's base is stored: what follows is streamed
	for range 50 {
		if _, err := conn.Exec(ctx, "INSERT INTO t (v) VALUES (repeat('v', 10))"); err != nil {
			t.Fatal(err)
		}
	}
	var at time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&at); err != nil {
		t.Fatal(err)
	}
	waitPast(at)
	waitPast(time.Now().Add(3 * time.Second)) // idle: the recovery point moves by heads
	d.Stop(time.Second)
	if st := d.pitr.s.State(); st.Broken != "" || strings.Contains(st.LastError, store.ErrAppendOnly.Error()) || strings.Contains(st.LastError, "403") {
		t.Fatalf("the stream in append-only mode: %+v", st)
	}

	repo := d.repo
	chains, err := pitr.Chains(ctx, repo)
	if err != nil || len(chains) != 1 {
		t.Fatalf("chains %+v, %v; want one", chains, err)
	}
	heads := 0
	pager := admin.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: ptrTo("repo/pitr/" + chains[0].ID + "/head/")})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		heads += len(page.Segment.BlobItems)
	}
	if heads == 0 {
		t.Error("an idle database wrote no head object: its recovery point did not move by new keys")
	}
	rep, err := Verify(ctx, repo, VerifyRequest{ReadData: true})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify --read-data: %+v, %v", rep, err)
	}
	reached, err := pitr.Restore(ctx, repo, pitr.RestoreOptions{DSN: dsn, Database: devstack.ScratchName("it_aopitr_r"), Log: quiet}, pitr.Target{Time: at})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), env.PGDSN); err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{reached.Database}.Sanitize()+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	rdsn := strings.Replace(dsn, "/"+strings.Split(strings.TrimPrefix(dsn[strings.LastIndex(dsn, "/"):], "/"), "?")[0]+"?", "/"+reached.Database+"?", 1)
	rc, err := pgx.Connect(ctx, rdsn)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close(context.Background())
	var rows int
	if err := rc.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&rows); err != nil || rows != 50 {
		t.Errorf("restored from the append-only chain: %d rows, want 50: %v", rows, err)
	}
}

func ptrTo[T any](v T) *T { return &v }
