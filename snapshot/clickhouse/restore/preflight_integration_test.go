package restore_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
)

// TestPreflightRefusesTextIndexOn1816: a snapshot of a table with a text index, taken on the
// modern engine, planned (as --dry-run plans it) against the 18.16 cluster, is refused before
// anything is written, naming the table, the text index, its minimum version and the cluster's;
// no database of its name appears there. On the modern engine the same plan passes.
func TestPreflightRefusesTextIndexOn1816(t *testing.T) {
	env := devstack.RequireModern(t)
	devstack.Require(t)
	ctx := context.Background()
	db := env.ModernDatabase(t, "it_prefl")
	if _, err := env.ModernQuery("CREATE TABLE " + db + ".logs (id UInt64, body String, INDEX idx_body body TYPE text(tokenizer = splitByNonAlpha)) " +
		"ENGINE = MergeTree ORDER BY id SETTINGS enable_full_text_index = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ModernQuery("INSERT INTO " + db + ".logs SELECT number, 'line ' || toString(number) FROM numbers(10)"); err != nil {
		t.Fatal(err)
	}
	repo := chtest.Repo(t)
	src := &clickhouse.Source{Native: []string{env.CHModernNative}, HTTP: []string{env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
		Filter: clickhouse.Filter{Databases: []string{db}}, Log: chtest.Quiet}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatalf("backup of %s on ch-modern: %v", db, err)
	}

	rs, err := restore.New(ctx, restore.Options{Native: env.CHNative, HTTP: env.CHHTTP, Cluster: env.CHCluster, Conn: clickhouse.ConnOptions{User: "default"},
		Repo: repo, Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err == nil {
		t.Fatalf("a plan of a text-indexed table on ClickHouse 18.16: %+v; want a refusal", plan)
	}
	t.Logf("refused: %v", err)
	for _, want := range []string{db + ".logs", "text index (TYPE text)", "from 25.12", "runs 18.16", "25.12 or newer"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	ch1, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer ch1.Close()
	var n uint64
	if err := ch1.Conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil || n != 0 {
		t.Errorf("database %s on 18.16 after the refusal: %d, %v; want none", db, n, err)
	}

	// The modern engine takes it: the plan is made, and --dry-run prints no preflight line.
	mrs, err := restore.New(ctx, restore.Options{Native: []string{env.CHModernNative}, HTTP: []string{env.CHModernHTTP}, Conn: clickhouse.ConnOptions{User: "default"},
		DatabaseMap: map[string]string{db: db + "_copy"}, Repo: repo, Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer mrs.Close()
	plan, err = mrs.Plan(ctx, m)
	if err != nil {
		t.Fatalf("plan on ch-modern: %v", err)
	}
	var out bytes.Buffer
	restore.WritePlan(&out, plan)
	if len(plan.Preflight) != 0 || strings.Contains(out.String(), "preflight") {
		t.Errorf("preflight on ch-modern %+v, printed:\n%s\nwant nothing", plan.Preflight, out.String())
	}
}
