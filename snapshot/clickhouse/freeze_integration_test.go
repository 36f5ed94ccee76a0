package clickhouse

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/deploy/stack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
)

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
	env, db := chtest.FreezeTable(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet, repo := chtest.Quiet, chtest.Repo(t)
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
	})

	t.Run("upload fails mid-stream", func(t *testing.T) {
		srv, err := Dial(ctx, env.CHNative[0], ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
		root, err := NewLocalFS("").root(ctx, srv)
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
