package clickhouse_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestBackupSpreadsPartitionsOverReplicas backs up the 18.16 cluster's multi-partition tables
// once from one replica and once spread: the spread backup reads partitions from more than one
// replica, records each partition's replica in the manifest's objects and its section alike,
// reuses every object of the one-replica backup (a replicated partition's fingerprint does not
// name its replica), and restores to the same rows on every replica.
func TestBackupSpreadsPartitionsOverReplicas(t *testing.T) {
	f := newFixture(t, 3000)
	// Every replica holds every part, and has run every merge, before the backups: a replica
	// still fetching is fit for no partition whose parts it lacks, which would leave this
	// small cluster's partitions on one replica for a reason the test is not about; and a
	// background merge between the backups would make a partition new that no write touched.
	for _, tbl := range []string{"traces", "observations", "scores", "project_environments", "blob_storage_file_log", "schema_migrations", "tracevault_migrations"} {
		f.sql(t, 0, fmt.Sprintf("OPTIMIZE TABLE %s.%s FINAL", f.db, tbl))
		for i := range f.env.CHNative {
			f.sql(t, i, fmt.Sprintf("SYSTEM SYNC REPLICA %s.%s", f.db, tbl))
		}
	}
	backup := func(single bool) *store.Manifest {
		t.Helper()
		src := &clickhouse.Source{Native: f.env.CHNative, HTTP: f.env.CHHTTP, Conn: clickhouse.ConnOptions{User: "default"},
			Filter: clickhouse.Filter{Databases: []string{f.db}}, Cluster: f.env.CHCluster, SingleReplica: single, Log: chtest.Quiet}
		m, err := snapshot.Run(context.Background(), f.repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
		if err != nil {
			t.Fatalf("backup: %v", err)
		}
		return m
	}
	// replicas is, per table, the set of replicas its partition objects were read from.
	replicas := func(m *store.Manifest) map[string][]string {
		sets := map[string]map[string]bool{}
		for _, o := range m.Objects {
			if o.Kind != "partition" {
				continue
			}
			if o.Replica == "" {
				t.Errorf("object %s (%s partition %s) records no replica", o.ID, o.Table, o.Partition)
			}
			if sets[o.Table] == nil {
				sets[o.Table] = map[string]bool{}
			}
			sets[o.Table][o.Replica] = true
		}
		out := map[string][]string{}
		for tbl, set := range sets {
			out[tbl] = slices.Sorted(maps.Keys(set))
		}
		return out
	}

	single := backup(true)
	for _, tbl := range []string{"traces", "observations", "scores"} {
		if got := replicas(single)[tbl]; len(got) != 1 {
			t.Errorf("spread_exports = false read %s from %v; want one replica", tbl, got)
		}
	}

	before := f.checksums(t, f.db)
	m := backup(false)
	used := map[string]bool{}
	for tbl, rs := range replicas(m) {
		for _, r := range rs {
			used[r] = true
		}
		if tbl == "traces" && len(rs) < 2 {
			t.Errorf("the spread backup read all of traces' partitions from %v; want more than one replica", rs)
		}
	}
	t.Logf("partitions read from, by table: %v", replicas(m))
	if len(used) < 2 {
		t.Errorf("the spread backup read every partition from %v", slices.Sorted(maps.Keys(used)))
	}
	if tot := m.Totals(); tot.NewBytes != 0 || tot.Reused != tot.Objects {
		var fresh []string
		for _, o := range m.Objects {
			if !o.Reused {
				fresh = append(fresh, o.Table+"/"+o.Partition+" from "+o.Replica)
			}
		}
		t.Errorf("the spread backup after the one-replica one uploaded %d bytes (%d of %d objects reused): %v", tot.NewBytes, tot.Reused, tot.Objects, fresh)
	}
	// The section's partition records name the same replica as the object list.
	sec, _, err := clickhouse.SnapshotSection(m)
	if err != nil {
		t.Fatal(err)
	}
	objReplica := map[string]string{}
	for _, o := range m.Objects {
		objReplica[o.Table+"/"+o.Partition+"/"+o.ID] = o.Replica
	}
	for _, rec := range sec.Tables {
		for _, p := range rec.Partitions {
			if got, ok := objReplica[rec.Name+"/"+p.ID+"/"+p.Object]; !ok || got != p.Replica {
				t.Errorf("%s partition %s: the section says replica %s, the object list %q", rec.Name, p.ID, p.Replica, got)
			}
		}
	}

	f.sql(t, 0, fmt.Sprintf("DROP DATABASE %s ON CLUSTER %s", f.db, f.env.CHCluster))
	f.restore(t, m, restore.Options{})
	f.sameChecksums(t, before)
}
