package restore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Frozen parts load only into a replica whose data path is on this host: planning a restore of
// them anywhere else names the cause and the fix.
func TestFreezeRestoreNeedsLocalDataPath(t *testing.T) {
	env, db := chtest.FreezeTable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	repo := chtest.Repo(t)
	src := &clickhouse.Source{Native: env.CHNative, Conn: clickhouse.ConnOptions{User: "default"}, Filter: clickhouse.Filter{Databases: []string{db}},
		Cluster: env.CHCluster, Mode: clickhouse.ModeFreeze, Log: chtest.Quiet}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := restore.New(ctx, restore.Options{Native: env.CHNative, Conn: clickhouse.ConnOptions{User: "default"}, Cluster: env.CHCluster,
		DatabaseMap: map[string]string{db: db + "_copy"}, DataPath: t.TempDir(), Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if _, err := rs.Plan(ctx, m); err == nil || !strings.Contains(err.Error(), "frozen parts") || !strings.Contains(err.Error(), "data_path") {
		t.Errorf("restore plan with no local replica: %v; want the cause and the fix", err)
	}
}

// A freeze-mode object swapped for another one in the repository fails the restore, naming it,
// before anything is attached: the target partition keeps its parts.
func TestFreezeRestoreRefusesSwappedObject(t *testing.T) {
	env, db := chtest.FreezeTable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	src := &clickhouse.Source{Native: env.CHNative, Conn: clickhouse.ConnOptions{User: "default"}, Filter: clickhouse.Filter{Databases: []string{db}},
		Cluster: env.CHCluster, Mode: clickhouse.ModeFreeze, Log: chtest.Quiet}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: chtest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	byPartition := map[string]store.ObjectRef{}
	for _, o := range m.Objects {
		byPartition[o.Partition] = o.ObjectRef
	}
	victim, other := byPartition["202607"], byPartition["202606"]
	if victim.ID == "" || other.ID == "" {
		t.Fatalf("objects by partition %v; want 202606 and 202607", byPartition)
	}
	// The victim's stored bytes become the other partition's: a valid tar of valid parts,
	// encoded as the repository encodes, whose only fault is its checksum.
	b, err := os.ReadFile(filepath.Join(dir, other.Name()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, victim.Name()), b, 0o640); err != nil {
		t.Fatal(err)
	}

	parts := func() string {
		var out []string
		for i := range env.CHNative {
			srv, err := clickhouse.Dial(ctx, env.CHNative[i], clickhouse.ConnOptions{User: "default"})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			err = srv.Conn.QueryRow(ctx, "SELECT groupArray(name) FROM (SELECT name FROM system.parts WHERE database = ? AND table = 't' AND partition_id = '202607' AND active ORDER BY name)", db).Scan(&names)
			srv.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(names, " "))
		}
		return strings.Join(out, " | ")
	}
	before := parts()
	_, err = planAndRestore(ctx, restore.Options{Native: env.CHNative, Conn: clickhouse.ConnOptions{User: "default"}, Cluster: env.CHCluster,
		Partitions: []string{"202607"}, Replace: true, Log: chtest.Quiet}, repo, m, nil)
	if err == nil || !strings.Contains(err.Error(), victim.ID) || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("restore of a swapped object: %v; want a corrupt-object error naming %s", err, victim.ID)
	}
	if after := parts(); after != before || before == "" {
		t.Errorf("partition 202607 parts %q before the failed restore, %q after; want them unchanged", before, after)
	}
}
