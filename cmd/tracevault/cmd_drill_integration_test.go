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
)

// TestDrillCLI: after a backup, `drill --json` exits 0 with the snapshot, RTO, RPO and no
// mismatches, and leaves no scratch database; after one byte of a data object flips, `drill`
// exits 1 naming the object.
func TestDrillCLI(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := devstack.ScratchName("it_drillcli")
	srv, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() {
		for _, d := range []string{db, db + "_drill"} {
			_ = srv.Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", d, env.CHCluster))
		}
	})
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: db, Traces: 60, Seed: 9}); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tracevault.toml")
	toml := fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\ndatabases = [%q]\n[drill]\ntimeout = \"5m\"\n",
		tmp, quoteList(env.CHNative), quoteList(env.CHHTTP), env.CHCluster, db)
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (int, string, string) {
		return runCLI(append([]string{"--config", cfg}, args...)...)
	}
	if code, out, errs := cli("backup"); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}

	code, out, errs := cli("drill", "--json")
	var res struct {
		Snapshot   string  `json:"snapshot"`
		Outcome    string  `json:"outcome"`
		RTO        float64 `json:"rto_seconds"`
		RPO        float64 `json:"rpo_seconds"`
		Mismatches []any   `json:"mismatches"`
		Compared   string  `json:"compared"`
		Sources    []any   `json:"sources"`
		Disk       string  `json:"disk_check"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("drill --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if res.Snapshot == "" || res.Outcome != "succeeded" || res.RTO <= 0 || res.RPO <= 0 || res.Mismatches == nil || len(res.Mismatches) != 0 || len(res.Sources) != 1 {
		t.Errorf("drill result %+v; want succeeded with RTO, RPO and an empty mismatch list", res)
	}
	var n uint64
	if err := srv.Conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db+"_drill").Scan(&n); err != nil || n != 0 {
		t.Errorf("scratch database %s_drill left after the drill (%d, %v)", db, n, err)
	}

	// Flip one byte in the middle of the largest data object.
	var victim string
	var size int64
	_ = filepath.Walk(filepath.Join(tmp, "repo", "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Size() > size {
			victim, size = p, fi.Size()
		}
		return nil
	})
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli("drill")
	t.Logf("drill over a flipped byte:\n%s%s", out, errs)
	if id := filepath.Base(victim); code != 1 || !strings.Contains(out+errs, id) || !strings.Contains(out, "failed") {
		t.Errorf("drill over a flipped byte in %s: exit %d\n%s%s; want exit 1 naming the object", id, code, out, errs)
	}
}
