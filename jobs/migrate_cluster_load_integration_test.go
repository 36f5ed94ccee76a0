package jobs

import (
	"bytes"
	"context"
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

// TestMigrateClusterUnderLoad: the demo world on the 18.16 cluster moves to ch-modern while
// `demo load` writes into it, as Langfuse keeps running during the passes: three passes under
// load, then the load stops (ingestion paused) and the cutover pass moves the rest, proves the
// target and reports its downtime. Every id the load's ledger records is then on the target at
// its newest version.
func TestMigrateClusterUnderLoad(t *testing.T) {
	env := devstack.RequireModern(t)
	ctx := context.Background()
	db := env.CHDatabase(t, "it_mcl")
	t.Cleanup(func() { _, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + db + " SYNC") })
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: db, Traces: 150, Seed: 13}); err != nil {
		t.Fatalf("seed: %v", err)
	}
	cfg := daemonConfig(t, env, t.TempDir())
	cfg.ClickHouse.Addresses, cfg.ClickHouse.HTTPAddresses, cfg.ClickHouse.Cluster = env.CHNative, env.CHHTTP, env.CHCluster
	cfg.ClickHouse.Databases = []string{db}
	// The demo's event_log is a local table on each replica (Langfuse's too): each holds its
	// own rows, which a move to one server would have to merge; the migration refuses it.
	cfg.ClickHouse.ExcludeTables = []string{"*.event_log"}
	repo, err := CreateRepository(ctx, cfg.Storage, quiet)
	if err != nil {
		t.Fatal(err)
	}
	req := MigrateClusterRequest{Target: writeTarget(t, fmt.Sprintf("[clickhouse]\naddresses = [%q]\nhttp_addresses = [%q]\n", env.CHModernNative, env.CHModernHTTP))}

	loadCtx, stop := context.WithCancel(ctx)
	defer stop()
	ledger := filepath.Join(t.TempDir(), "ledger")
	type loaded struct {
		res demo.LoadResult
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		res, err := demo.Load(loadCtx, demo.LoadOptions{ClickHouse: env.CHNative, Database: db, Rate: 300, Ledger: ledger, Seed: 13, Log: quiet})
		done <- loaded{res, err}
	}()
	var ledgerSize int64
	for pass := 1; pass <= 3; pass++ {
		// A pass takes well under the load's interval on a quiet machine: wait for a batch
		// acknowledged since the last pass, or the pass may rightly find nothing to move.
		ledgerSize = waitLedgerGrows(t, ledger, ledgerSize)
		_, rep := migrateOnce(t, cfg, repo, req)
		t.Logf("pass %d under load: %d partitions, %d rows behind, %s", pass, rep.BehindPartitions, rep.BehindRows, rep.Duration)
		if rep.BehindPartitions == 0 {
			t.Errorf("pass %d under load moved nothing: the load writes every batch", pass)
		}
	}
	stop() // ingestion paused: Load returns once every batch in flight is acknowledged
	l := <-done
	if l.err != nil {
		t.Fatalf("load: %v", l.err)
	}
	t.Logf("load: %d batches, rows %v", l.res.Batches, l.res.Rows)

	req.Cutover = true
	_, rep := migrateOnce(t, cfg, repo, req)
	var out bytes.Buffer
	rep.Write(&out)
	t.Logf("cutover:\n%s", out.String())
	if rep.Proof == nil || !rep.Proof.Rows || rep.Duration <= 0 || !strings.Contains(out.String(), "downtime: "+rep.Duration.String()) {
		t.Errorf("cutover: %+v proof %+v; want a proof and the downtime reported", rep, rep.Proof)
	}

	want := ledgerVersions(t, ledger)
	target, err := clickhouse.Dial(ctx, env.CHModernNative, clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	for table, ids := range want {
		got, err := demo.Versions(ctx, target.Conn, db, strings.TrimPrefix(table, "clickhouse:"), "ld-"+l.res.RunID+"-%")
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for id, v := range ids {
			if got[id] != v {
				if missing++; missing <= 5 {
					t.Errorf("%s %s: version %d on the target, the ledger's newest is %d", table, id, got[id], v)
				}
			}
		}
		if missing > 0 || len(got) != len(ids) {
			t.Errorf("%s: %d of the ledger's %d ids differ on the target, which holds %d of the run's ids", table, missing, len(ids), len(got))
		}
	}
	if len(want) == 0 {
		t.Error("the ledger records no ClickHouse row")
	}
}

// waitLedgerGrows waits until the ledger at path is larger than size (a batch acknowledged
// since) and returns its new size.
func waitLedgerGrows(t *testing.T, path string, size int64) int64 {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > size {
			return fi.Size()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the load acknowledged no batch in a minute (ledger %s at %d bytes)", path, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ledgerVersions is, per "clickhouse:<table>" of a ledger, each id's newest version: its
// insert, upsert or tombstone, all of which the target must hold.
func ledgerVersions(t *testing.T, path string) map[string]map[string]int64 {
	t.Helper()
	out := map[string]map[string]int64{}
	err := demo.Ledger{Path: path}.Each(time.Time{}, func(r demo.LedgerRecord) error {
		if !strings.HasPrefix(r.Table, "clickhouse:") || r.Version == 0 {
			return nil
		}
		if out[r.Table] == nil {
			out[r.Table] = map[string]int64{}
		}
		for _, id := range r.IDs {
			out[r.Table][id] = max(out[r.Table][id], r.Version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
