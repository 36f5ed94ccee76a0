package clickhouse

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/clickhouse/internal/chtest"
)

// shadowEntries lists what each replica's shadow directory holds besides increment.txt.
func shadowEntries(t *testing.T, env *devstack.Env) []string {
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

func freezeIncrements(env *devstack.Env) string {
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
		root, err := NewLocalFS("", []*Server{srv}).root(ctx, srv)
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

// TestLocalFSProof proves where each server's data directory is without DDL when its status file
// says so, and still refuses a directory that is another server's or absent, on 18.16 and on
// ch-modern.
func TestLocalFSProof(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dial := func(addr string) *Server {
		srv, err := Dial(ctx, addr, ConnOptions{User: "default"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	var servers []*Server
	for _, addr := range env.CHNative {
		servers = append(servers, dial(addr))
	}
	t.Run("each server's own directory, read-only", func(t *testing.T) {
		all := servers
		if m := devstack.RequireModern(t); m != nil {
			all = append(all[:len(all):len(all)], dial(m.CHModernNative))
		}
		l := NewLocalFS("", all)
		for _, srv := range all {
			if _, err := l.root(ctx, srv); err != nil {
				t.Errorf("root of %s: %v", srv.Addr, err)
			}
		}
		if l.probes != 0 {
			t.Errorf("%d probe databases created; want the status files to prove every server", l.probes)
		}
	})
	t.Run("another replica's directory mounted", func(t *testing.T) {
		// data_path is the mount of replica 2's data: it is replica 2's, never replica 1's,
		// however close their starts were (this stack starts them within seconds).
		// A busy replica 2 writes its status file seconds after its uptime clock starts (seen
		// on CI); replica 1, started then, must still not pass for the file's owner. Replica 3
		// is left out: started in the same second, it would hide the case.
		l := NewLocalFS(env.CHDataDirs[1], servers[:2])
		l.mu.Lock()
		l.roots, l.facts = map[string]localRoot{}, map[string]serverFact{}
		f := l.fact(ctx, servers[1])
		f.started -= 3
		l.facts[servers[1].Addr] = f
		l.mu.Unlock()
		if _, err := l.root(ctx, servers[0]); err == nil || !strings.Contains(err.Error(), "is not at") {
			t.Errorf("root of replica 1 on replica 2's mount: %v; want a not-on-this-host error", err)
		}
		if _, err := l.root(ctx, servers[1]); err != nil {
			t.Errorf("root of replica 2 on its own mount: %v", err)
		}
	})
	t.Run("replicas started alike, one mount", func(t *testing.T) {
		// As for a sidecar whose configuration lists every replica: all of them map to the
		// mount of replica 2's data. The stack starts its replicas within a second, so the
		// status file cannot tell them apart; the macros in the directory's configuration do.
		l := NewLocalFS(env.CHDataDirs[1], servers)
		start := time.Now()
		if _, err := l.root(ctx, servers[1]); err != nil {
			t.Errorf("root of replica 2 on its own mount: %v", err)
		}
		own := time.Since(start)
		for _, i := range []int{0, 2} {
			if _, err := l.root(ctx, servers[i]); err == nil || !strings.Contains(err.Error(), "is not at") || !strings.Contains(err.Error(), servers[1].Addr) {
				t.Errorf("root of replica %d on replica 2's mount: %v; want a not-on-this-host error naming replica 2", i+1, err)
			}
		}
		if l.probes != 0 {
			t.Errorf("%d probe databases created; want the macros to tell the replicas apart", l.probes)
		}
		// What the probe this replaces costs, for the record (bench/FIGURES.md).
		start = time.Now()
		if err := probeLocal(ctx, servers[1], localRoot{server: env.CHDataDirs[1], local: env.CHDataDirs[1]}); err != nil {
			t.Errorf("probe of replica 2 on its own directory: %v", err)
		}
		t.Logf("replica 2 proven by its status file and macros in %s; a probe database takes %s", own, time.Since(start))
	})
	t.Run("nothing mounted", func(t *testing.T) {
		l := NewLocalFS(t.TempDir(), servers)
		if _, err := l.root(ctx, servers[0]); err == nil || !strings.Contains(err.Error(), "is not at") {
			t.Errorf("root on an empty mount: %v; want a not-on-this-host error", err)
		}
		if l.probes != 0 {
			t.Errorf("%d probe databases created for a mount with no status file", l.probes)
		}
	})
}
