package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
)

// TestCheckAndRestoreReplicaCLI drives check and restore-replica end to end: a healthy demo
// database exits 0; with replica 3's traces re-created under another ZooKeeper path, check
// exits 1 naming the table, the replica and the fix; restore-replica --dry-run prints the steps
// and changes nothing; restore-replica repairs it and check exits 0 again; after the database is
// dropped everywhere, restore --cluster brings it back.
func TestCheckAndRestoreReplicaCLI(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := devstack.ScratchName("it_check")
	var servers []*clickhouse.Server
	for _, addr := range env.CHNative {
		s, err := clickhouse.Dial(ctx, addr, clickhouse.ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() }) // after the drop below: cleanups run last-registered first
		servers = append(servers, s)
	}
	t.Cleanup(func() {
		_ = servers[0].Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, env.CHCluster))
	})
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: db, Traces: 500, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tracevault.toml")
	toml := fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\ndatabases = [%q]\n[zookeeper]\nservers = [%q]\n",
		tmp, quoteList(env.CHNative), quoteList(env.CHHTTP), env.CHCluster, db, env.ZK)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"--config", cfg}, args...)...)
	}

	// [migrate] clickhouse_database (default "default") is checked too, for its migrations.
	if code, out, errs := cli("check"); code != 0 || !strings.Contains(out, db+".traces ") || !strings.Contains(out, "healthy: ") {
		t.Fatalf("check of a healthy database: exit %d\n%s%s", code, out, errs)
	}
	var create string
	if err := servers[0].Conn.QueryRow(ctx, fmt.Sprintf("SHOW CREATE TABLE %s.traces", db)).Scan(&create); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{fmt.Sprintf("DROP TABLE %s.traces", db), strings.Replace(create, "/"+db+"/traces'", "/"+db+"/traces_elsewhere'", 1)} {
		if err := servers[2].Conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	code, out, _ := cli("check")
	for _, want := range []string{db + ".traces", "isolated 0", "[isolated] " + db + ".traces on ch3", "fix: tracevault restore-replica ch3"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("check with an isolated table: exit %d, want 1", code)
	}
	code, out, _ = cli("check", "--json")
	var rep replica.Report
	if code != 1 || json.Unmarshal([]byte(out), &rep) != nil || rep.Healthy || len(rep.Problems) != 1 || rep.Problems[0].Replica != "ch3" {
		t.Errorf("check --json: exit %d, %+v", code, rep.Problems)
	}

	code, out, errs := cli("restore-replica", "ch3", "--dry-run")
	if code != 0 || !strings.Contains(out, "recover-rows") || !strings.Contains(out, "drop-table") || !strings.Contains(out, "/"+db+"/traces") {
		t.Errorf("restore-replica --dry-run: exit %d\n%s%s", code, out, errs)
	}
	var path string
	if err := servers[2].Conn.QueryRow(ctx, "SELECT zookeeper_path FROM system.replicas WHERE database = ? AND table = 'traces'", db).Scan(&path); err != nil || !strings.HasSuffix(path, "traces_elsewhere") {
		t.Errorf("--dry-run changed the table: path %q (%v)", path, err)
	}
	if code, out, errs := cli("restore-replica", env.CHNative[2]); code != 0 || !strings.Contains(out, "replica ch3 rebuilt") {
		t.Fatalf("restore-replica: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := cli("check"); code != 0 {
		t.Errorf("check after restore-replica: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := cli("restore-replica", "ch9"); code != 1 || !strings.Contains(errs, "no configured replica is \"ch9\"") {
		t.Errorf("restore-replica of an unknown replica: exit %d, %s", code, errs)
	}

	// Whole-cluster recovery through the CLI: the database gone everywhere, restore --cluster
	// brings it back on every replica and check is satisfied.
	if code, out, errs := cli("backup", "--only", "clickhouse"); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	if err := servers[0].Conn.Exec(ctx, fmt.Sprintf("DROP DATABASE %s ON CLUSTER %s", db, env.CHCluster)); err != nil {
		t.Fatal(err)
	}
	// The backup holds ClickHouse only, and the configuration covers ZooKeeper too: it is not a
	// full set, so "latest" passes over it and latest:clickhouse names it.
	if code, out, errs := cli("restore", "latest:clickhouse", "--only", "clickhouse", "--cluster"); code != 0 || !strings.Contains(out, "row counts verified") {
		t.Fatalf("restore --cluster: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := cli("check"); code != 0 {
		t.Errorf("check after restore --cluster: exit %d\n%s%s", code, out, errs)
	}
}
