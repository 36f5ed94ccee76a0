package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestRestoreRequestErrors: what a restore request asks wrongly is refused before anything is
// connected, marked ErrUsage (the command exits 2); what the snapshot cannot give is not.
func TestRestoreRequestErrors(t *testing.T) {
	ctx := context.Background()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + filepath.Join(t.TempDir(), "repo")})
	if err != nil {
		t.Fatal(err)
	}
	traces := clickhouse.TableRecord{Table: clickhouse.Table{Database: "default", Name: "traces", Engine: "ReplicatedReplacingMergeTree",
		Create: "CREATE TABLE default.traces (id String, event_ts DateTime) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/default/traces', '{replica}', event_ts) PARTITION BY toYYYYMM(event_ts) ORDER BY id"},
		Partitions: []clickhouse.PartitionRecord{{Partition: clickhouse.Partition{ID: "202605", Rows: 10}}}}
	m := store.NewManifest(nil)
	m.Status = store.StatusComplete
	for src, sec := range map[string]any{
		config.SourceClickHouse: clickhouse.Section{Tables: []clickhouse.TableRecord{traces}},
		config.SourcePostgres:   map[string]any{},
		config.SourceZooKeeper:  map[string]any{},
		config.SourceBlobs:      map[string]any{},
	} {
		raw, _ := json.Marshal(sec)
		m.Sections[src] = raw
		m.Components = append(m.Components, store.Component{Source: src, Start: m.Start, End: m.Start, Status: store.StatusComplete})
	}
	if err := repo.CommitManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{}
	tests := []struct {
		name  string
		req   RestoreRequest
		usage bool
		want  string
	}{
		{"no source", RestoreRequest{}, true, "--only is required"},
		{"unknown source", RestoreRequest{Only: "mysql"}, true, "--only is required"},
		{"bad database map", RestoreRequest{Only: config.SourceClickHouse, DatabaseMap: []string{"default"}}, true, "write SRC:DST"},
		{"cluster without zookeeper", RestoreRequest{Only: config.SourceClickHouse, Cluster: true}, true, "--cluster needs [zookeeper] servers"},
		{"zookeeper without a root", RestoreRequest{Only: config.SourceZooKeeper}, true, "--root is required"},
		{"postgres not configured", RestoreRequest{Only: config.SourcePostgres}, true, "no PostgreSQL configured"},
		{"blobs with --dry-run", RestoreRequest{Only: config.SourceBlobs, DryRun: true}, true, "--dry-run is not supported"},
		{"tables match nothing", RestoreRequest{Only: config.SourceClickHouse, Tables: []string{"default.trace"}}, false, "matches no table"},
		{"partition held by no table", RestoreRequest{Only: config.SourceClickHouse, Partitions: []string{"209901"}}, false, "holds no such partition"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.Snapshot = m.ID
			rs, err := NewRestore(ctx, cfg, repo, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			plan, err := rs.Plan(ctx, quiet)
			if err == nil {
				plan.Close()
				t.Fatal("planned")
			}
			if errors.Is(err, ErrUsage) != tc.usage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v (usage %v), want %q (usage %v)", err, errors.Is(err, ErrUsage), tc.want, tc.usage)
			}
		})
	}
}
