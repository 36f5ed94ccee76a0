package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	mch "github.com/tracevault/tracevault/migrate/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// TestMigrateCLIClickHouse drives `tracevault migrate` end to end on the stack's cluster: a
// failing migration exits 1 with the statement, the server's error and the force commands;
// status reports dirty (exit 1) and --json; force then up works; --snapshot-before prints the
// snapshot id before migrating; create and --dry-run change nothing in the database.
func TestMigrateCLIClickHouse(t *testing.T) {
	env := devstack.Require(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "migrations")
	db := devstack.ScratchName("migcli")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(tmp, "tracevault.toml")
	toml := fmt.Sprintf(`[storage]
url = "file://%s/repo"
[clickhouse]
addresses = %s
http_addresses = %s
cluster = %q
[zookeeper]
servers = [%q]
[migrate]
clickhouse_dir = %q
clickhouse_database = %q
`, tmp, quoteList(env.CHNative), quoteList(env.CHHTTP), env.CHCluster, env.ZK, dir, db)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if srv, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{}); err == nil {
			_ = srv.Conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, env.CHCluster))
			srv.Close()
		}
		if zk, err := zookeeper.Connect(ctx, []string{env.ZK}, 10*time.Second, nil); err == nil {
			shards, _, _ := zk.Children("/clickhouse/tables")
			for _, shard := range shards {
				_ = zk.Delete("/clickhouse/tables/"+shard+"/"+db, -1)
			}
			_ = zk.Delete(mch.LockRoot+"/"+db+"/lock", -1)
			_ = zk.Delete(mch.LockRoot+"/"+db, -1)
			zk.Close()
		}
	})
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("1_traces.up.sql", fmt.Sprintf("CREATE TABLE traces {{cluster}} (id String, month UInt32) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}') PARTITION BY month ORDER BY id;\nINSERT INTO traces VALUES ('a', 202605);", db))
	// The bad statement fails on the server it is sent to: a failing ALTER ... ON CLUSTER of a
	// replicated table can end an 18.16 replica's DDL worker ("Unexpected ZooKeeper error:
	// Node exists ... Terminating"), which hangs every later ON CLUSTER query of the devstack.
	write("2_bad.up.sql", "INSERT INTO traces (id, no_such_column) VALUES ('x', 1);")
	mig := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"--config", cfg, "migrate", "--target", "clickhouse"}, args...)...)
	}

	if code, out, errs := mig("up", "--dry-run"); code != 0 || !strings.Contains(out, "would apply 1 up") || !strings.Contains(out, "would apply 2 up") {
		t.Fatalf("up --dry-run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs := mig("up")
	forceCmd := fmt.Sprintf("tracevault --config %s migrate --target clickhouse --database %s force 1", cfg, db)
	for _, want := range []string{"INSERT INTO traces (id, no_such_column)", "no_such_column", "dirty at version 2", forceCmd} {
		if !strings.Contains(errs, want) {
			t.Errorf("failed up: stderr lacks %q:\n%s", want, errs)
		}
	}
	if code != 1 || !strings.Contains(out, "applied 1 up") {
		t.Fatalf("failed up: exit %d, stdout %q; want 1 with version 1 applied", code, out)
	}
	if code, _, errs := mig("up"); code != 1 || !strings.Contains(errs, forceCmd) {
		t.Errorf("up on a dirty database: exit %d, stderr %s; want 1 with the force command", code, errs)
	}
	code, out, _ = mig("status", "--json")
	var st struct {
		Version int64 `json:"version"`
		Dirty   bool  `json:"dirty"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &st) != nil || st.Version != 2 || !st.Dirty {
		t.Errorf("status --json when dirty: exit %d, %s; want exit 1, version 2 dirty", code, out)
	}

	write("2_bad.up.sql", "ALTER TABLE traces {{cluster}} ADD COLUMN tags Array(String);")
	if code, _, errs := mig("force", "1"); code != 0 {
		t.Fatalf("force 1: exit %d\n%s", code, errs)
	}
	code, _, errs = mig("up", "--snapshot-before")
	id := regexp.MustCompile(`snapshot (\S+) taken before migrating`).FindStringSubmatch(errs)
	if code != 0 || id == nil {
		t.Fatalf("up --snapshot-before: exit %d, no snapshot id printed\n%s", code, errs)
	}
	if code, out, _ := runCLI("--config", cfg, "show", id[1]); code != 0 || !strings.Contains(out, "traces") {
		t.Errorf("show %s: exit %d; want the snapshot to hold %s.traces\n%s", id[1], code, db, out)
	}
	if code, out, errs := mig("status"); code != 0 || !strings.Contains(out, "version 2 (clean)") {
		t.Errorf("status after force and up: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := mig("create", "Add scores", "--dry-run"); code != 0 || !strings.Contains(out, "would create "+filepath.Join(dir, "3_add_scores.up.sql")) {
		t.Errorf("create --dry-run: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "3_add_scores.up.sql")); !os.IsNotExist(err) {
		t.Errorf("create --dry-run wrote a file: %v", err)
	}
	if code, _, _ := mig("create", "add scores"); code != 0 {
		t.Errorf("create: exit %d", code)
	}
	if code, out, _ := mig("status"); code != 0 || !strings.Contains(out, "pending: 1") {
		t.Errorf("status after create: exit %d\n%s", code, out)
	}
}

// TestMigrateCLIPostgres: --database picks a database on the [postgres] dsn's server; a failed
// file exits 1 with the server error and the force commands; --snapshot-before
// takes a PostgreSQL snapshot of that database first.
func TestMigrateCLIPostgres(t *testing.T) {
	env := devstack.Require(t)
	dsn := env.PGDatabase(t, "migcli")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tracevault.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n[postgres]\ndsn = %q\n[migrate]\npostgres_dir = %q\n", tmp, env.PGDSN, tmp)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"1_users.up.sql":   "CREATE TABLE users (id bigint PRIMARY KEY);",
		"1_users.down.sql": "DROP TABLE users;",
		"2_bad.up.sql":     "ALTER TABLE users ADD COLUMN email text; ALTER TABLE nope ADD COLUMN x int;",
	} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mig := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"--config", cfg, "migrate", "--target", "postgres", "--database", db}, args...)...)
	}
	code, _, errs := mig("up", "--snapshot-before")
	if !regexp.MustCompile(`snapshot \S+ taken before migrating`).MatchString(errs) {
		t.Errorf("up --snapshot-before: no snapshot id printed\n%s", errs)
	}
	if code != 1 || !strings.Contains(errs, `relation "nope" does not exist`) || !strings.Contains(errs, "--database "+db+" force 1") {
		t.Errorf("failed up: exit %d, want 1 with the server error and the force command\n%s", code, errs)
	}
	if code, out, _ := mig("status"); code != 1 || !strings.Contains(out, "version 2 (DIRTY)") {
		t.Errorf("status when dirty: exit %d, want 1 and version 2 (DIRTY)\n%s", code, out)
	}
	if code, out, errs := mig("force", "1"); code != 0 || !strings.Contains(out, "forced version 1") {
		t.Errorf("force 1: exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := mig("status"); code != 0 || !strings.Contains(out, "version 1 (clean)") || !strings.Contains(out, "pending: 1") {
		t.Errorf("status after force: exit %d\n%s", code, out)
	}
}
