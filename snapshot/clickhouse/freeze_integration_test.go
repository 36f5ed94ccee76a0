package clickhouse

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/deploy/stack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// freezeFixture is a replicated table with two partitions in a scratch database.
func freezeFixture(t *testing.T) (*stack.Env, string) {
	t.Helper()
	env := stack.Require(t)
	db := env.CHDatabase(t, "it_frz")
	for _, sql := range []string{
		"CREATE TABLE " + db + ".t ON CLUSTER " + env.CHCluster + " (d Date, x UInt32) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/" + db + "/t', '{replica}') PARTITION BY toYYYYMM(d) ORDER BY x",
		"INSERT INTO " + db + ".t VALUES ('2026-06-01', 1), ('2026-07-01', 2), ('2026-07-02', 3)",
	} {
		if err := env.CHExec(0, sql); err != nil {
			t.Fatal(err)
		}
	}
	return env, db
}

// shadowEntries lists what each replica's shadow directory holds besides increment.txt.
func shadowEntries(t *testing.T, env *stack.Env) []string {
	t.Helper()
	var out []string
	for _, dir := range env.CHDataDirs {
		entries, err := os.ReadDir(filepath.Join(dir, "shadow"))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "increment.txt" {
				out = append(out, filepath.Join(dir, "shadow", e.Name()))
			}
		}
	}
	return out
}

func freezeIncrements(env *stack.Env) string {
	var out []string
	for _, dir := range env.CHDataDirs {
		b, _ := os.ReadFile(filepath.Join(dir, "shadow", "increment.txt"))
		out = append(out, strings.TrimSpace(string(b)))
	}
	return strings.Join(out, ",")
}

func TestFreezeBackupRemovesShadow(t *testing.T) {
	env, db := freezeFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	repo, err := store.Open(ctx, store.Options{URL: "file://" + t.TempDir(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	src := func(dataPath string) *Source {
		return &Source{Native: env.CHNative, Conn: ConnOptions{User: "default"}, Filter: Filter{Databases: []string{db}},
			Cluster: env.CHCluster, Mode: ModeFreeze, DataPath: dataPath, Log: quiet}
	}

	t.Run("success", func(t *testing.T) {
		before := freezeIncrements(env)
		m, err := snapshot.Run(ctx, repo, []snapshot.Source{src("")}, snapshot.Options{Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Objects) != 2 {
			t.Errorf("%d objects; want one per partition, 2", len(m.Objects))
		}
		if before == freezeIncrements(env) {
			t.Error("no replica counted a freeze")
		}
		if left := shadowEntries(t, env); len(left) > 0 {
			t.Errorf("shadow directories left after the backup: %v", left)
		}
		// Nothing changed: every object is reused and nothing is frozen.
		before = freezeIncrements(env)
		m, err = snapshot.Run(ctx, repo, []snapshot.Source{src("")}, snapshot.Options{Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if tot := m.Totals(); tot.Reused != tot.Objects {
			t.Errorf("unchanged partitions: %d of %d objects reused", tot.Reused, tot.Objects)
		}
		if after := freezeIncrements(env); after != before {
			t.Errorf("unchanged partitions were frozen again: increments %s then %s", before, after)
		}

		// Frozen parts load only into a replica whose data path is here.
		rs, err := NewRestorer(ctx, RestoreOptions{Native: env.CHNative, Conn: ConnOptions{User: "default"}, Cluster: env.CHCluster,
			DatabaseMap: map[string]string{db: db + "_copy"}, DataPath: t.TempDir(), Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		if _, err := rs.Plan(ctx, m); err == nil || !strings.Contains(err.Error(), "frozen parts") || !strings.Contains(err.Error(), "data_path") {
			t.Errorf("restore plan with no local replica: %v; want the cause and the fix", err)
		}
	})

	t.Run("upload fails mid-stream", func(t *testing.T) {
		srv, err := Dial(ctx, env.CHNative[0], ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		root, err := newLocalFS("").root(ctx, srv)
		if err != nil {
			t.Fatal(err)
		}
		fz := &freezeReader{freeze: func() (*frozen, error) { return freezePartition(ctx, srv, root, db, "t", "202607") }}
		if _, err := fz.Read(make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		if len(shadowEntries(t, env)) == 0 {
			t.Fatal("no shadow directory while the partition streams")
		}
		if fz.f.rows != 2 {
			t.Errorf("frozen partition 202607 counts %d rows; want 2", fz.f.rows)
		}
		// The stream is abandoned, as exportTable does when the repository fails.
		if err := fz.Close(); err != nil {
			t.Fatal(err)
		}
		if left := shadowEntries(t, env); len(left) > 0 {
			t.Errorf("shadow directories left after a failed upload: %v", left)
		}
	})

	t.Run("data path not on this host", func(t *testing.T) {
		_, err := snapshot.Run(ctx, repo, []snapshot.Source{src(t.TempDir())}, snapshot.Options{Log: quiet})
		if err == nil || !strings.Contains(err.Error(), `mode = "logical"`) || !strings.Contains(err.Error(), "data_path") {
			t.Errorf("backup with a data_path that is no replica's: %v; want the cause and both fixes", err)
		}
		for i := range env.CHNative {
			srv, err := Dial(ctx, env.CHNative[i], ConnOptions{User: "default"})
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			err = srv.Conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name LIKE '__tracevault_probe_%'").Scan(&n)
			srv.Close()
			if err != nil || n != 0 {
				t.Errorf("replica %d: %d probe databases left (%v)", i+1, n, err)
			}
		}
	})
}

// A freeze-mode object swapped for another one in the repository fails the restore, naming it,
// before anything is attached: the target partition keeps its parts.
func TestFreezeRestoreRefusesSwappedObject(t *testing.T) {
	env, db := freezeFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	repo, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{Native: env.CHNative, Conn: ConnOptions{User: "default"}, Filter: Filter{Databases: []string{db}},
		Cluster: env.CHCluster, Mode: ModeFreeze, Log: quiet}
	m, err := snapshot.Run(ctx, repo, []snapshot.Source{src}, snapshot.Options{Log: quiet})
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
			srv, err := Dial(ctx, env.CHNative[i], ConnOptions{User: "default"})
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
	rs, err := NewRestorer(ctx, RestoreOptions{Native: env.CHNative, Conn: ConnOptions{User: "default"}, Cluster: env.CHCluster,
		Partitions: []string{"202607"}, Force: true, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	plan, err := rs.Plan(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	err = rs.Execute(ctx, repo, plan, nil)
	if err == nil || !strings.Contains(err.Error(), victim.ID) || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("restore of a swapped object: %v; want a corrupt-object error naming %s", err, victim.ID)
	}
	if after := parts(); after != before || before == "" {
		t.Errorf("partition 202607 parts %q before the failed restore, %q after; want them unchanged", before, after)
	}
}
