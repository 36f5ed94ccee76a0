package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	toml "github.com/pelletier/go-toml/v2"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// TestMakeRunConfigShowsTheWholeRestorePoint starts `tracevault serve` on the configuration
// `make run` serves (.stack/run.toml, as internal/devstack/stack.sh writes it for the running
// stack) and waits, at most three minutes, for its status API to show what a newcomer's first
// page must: every source fresh (PostgreSQL through its change stream, ClickHouse, ZooKeeper,
// Langfuse's blob container), no problem, and a passed restore drill of the first set. The
// configuration is used as written but for where it points: its own repository, a free port,
// and scratch databases, container and replication slot seeded as `make run` seeds the demo,
// so that it neither disturbs nor depends on a `make run` sharing the stack.
func TestMakeRunConfigShowsTheWholeRestorePoint(t *testing.T) {
	env := devstack.Require(t)
	dir := t.TempDir()
	ports, err := os.ReadFile(filepath.Join(env.Dir, "ports"))
	if err != nil {
		t.Fatalf("the stack's ports: %v", err)
	}
	writeFile(t, filepath.Join(dir, "ports"), string(ports))
	gen := exec.Command("bash", "../../internal/devstack/stack.sh", "contract")
	gen.Env = append(os.Environ(), "STACK_DIR="+dir)
	if out, err := gen.CombinedOutput(); err != nil {
		t.Fatalf("stack.sh contract: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "run.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var run map[string]any
	if err := toml.Unmarshal(raw, &run); err != nil {
		t.Fatalf("run.toml: %v", err)
	}
	table := func(k string) map[string]any {
		m, ok := run[k].(map[string]any)
		if !ok {
			t.Fatalf("run.toml has no [%s]:\n%s", k, raw)
		}
		return m
	}
	var actions []string
	for _, j := range run["jobs"].([]any) {
		actions = append(actions, j.(map[string]any)["action"].(string))
	}
	if table("postgres")["pitr"] != true || table("blobs")["url"] == "" || !slices.Contains(actions, config.ActionDrill) || !slices.Contains(actions, config.ActionBackup) {
		t.Fatalf("run.toml must stream PostgreSQL's changes, back up the blob container, back up and drill:\n%s", raw)
	}

	// Where it points, made the test's own.
	pgDSN := env.PGDatabase(t, "it_run")
	chDB := devstack.ScratchName("it_run")
	slot := fmt.Sprintf("tv_run_%d", os.Getpid())
	container := fmt.Sprintf("it-run-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	conn := table("blobs")["connection_string"].(string)
	table("storage")["url"] = "file://" + filepath.Join(dir, "repo")
	table("web")["listen"] = "127.0.0.1:0"
	table("postgres")["dsn"], table("postgres")["pitr_slot"] = pgDSN, slot
	table("clickhouse")["databases"] = []string{chDB}
	table("migrate")["clickhouse_database"] = chDB
	table("blobs")["url"] = "azblob://" + container
	cleanupRunStack(t, env, chDB, pgDSN, slot, container, conn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	seeded, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: chDB,
		ZooKeeper: []string{env.ZK}, PostgresDSN: pgDSN, Traces: 1000, Seed: 3,
		Blobs: &demo.Blobs{URL: "azblob://" + container, Credentials: blobs.Credentials{ConnectionString: conn}}})
	if err != nil {
		t.Fatalf("demo seed: %v", err)
	}
	if seeded.Rows["blobs:files"] == 0 || seeded.Rows["blobs:files"] != seeded.Rows["clickhouse:blob_storage_file_log"] {
		t.Fatalf("demo seed wrote %d files for %d file log rows; want one each", seeded.Rows["blobs:files"], seeded.Rows["clickhouse:blob_storage_file_log"])
	}
	out, err := toml.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "run-test.toml")
	writeFile(t, cfgPath, string(out))

	start := time.Now()
	daemon := exec.Command(os.Args[0], "--config", cfgPath, "--log-format", "json", "serve", "--grace", "30s")
	daemon.Env = append(os.Environ(), "TRACEVAULT_TEST_MAIN=1")
	logPath := filepath.Join(dir, "daemon.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	daemon.Stdout, daemon.Stderr = logf, logf
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Stopped before the slot and the scratch databases are dropped (cleanups run last first).
		_ = daemon.Process.Signal(syscall.SIGTERM)
		waited := make(chan error, 1)
		go func() { waited <- daemon.Wait() }()
		select {
		case <-waited:
		case <-time.After(45 * time.Second):
			_ = daemon.Process.Kill()
			<-waited
		}
		logf.Close()
	})
	addr := servingAddr(t, logPath)

	var st jobs.Status
	var missing []string
	for deadline := start.Add(3 * time.Minute); ; time.Sleep(2 * time.Second) {
		st, missing = restorePointStatus(t, addr)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			tail, _ := os.ReadFile(logPath)
			if len(tail) > 6000 {
				tail = tail[len(tail)-6000:]
			}
			js, _ := json.MarshalIndent(struct {
				Freshness []jobs.Freshness
				LastDrill *jobs.Run
				Problems  []jobs.Problem
				Runs      []jobs.Run
			}{st.Freshness, st.LastDrill, st.Problems, st.Runs}, "", "  ")
			t.Fatalf("3 minutes after the daemon started, the page still lacks: %s\n%s\ndaemon log (end):\n%s", strings.Join(missing, "; "), js, tail)
		}
	}
	d := st.LastDrill
	t.Logf("every source fresh and drill %s of %s passed %s after the daemon started (RTO %.1f s, RPO %.1f s); seeded %d traces, %d blob files",
		d.ID, d.Snapshot, time.Since(start).Round(time.Second), d.RTOSeconds, d.RPOSeconds, seeded.Rows["clickhouse:traces"], seeded.Rows["blobs:files"])
}

// restorePointStatus reads the status API and says what the first page still lacks.
func restorePointStatus(t *testing.T, addr string) (jobs.Status, []string) {
	t.Helper()
	var st jobs.Status
	resp, err := http.Get("http://" + addr + "/api/v1/status")
	if err != nil {
		return st, []string{"the status API: " + err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, []string{"the status API answered " + resp.Status}
	}
	var missing []string
	for _, src := range []string{config.SourcePostgres, config.SourceClickHouse, config.SourceZooKeeper, config.SourceBlobs} {
		i := slices.IndexFunc(st.Freshness, func(f jobs.Freshness) bool { return f.Source == src })
		switch {
		case i < 0:
			missing = append(missing, src+" is not on the page")
		case st.Freshness[i].Level != jobs.LevelOK:
			missing = append(missing, fmt.Sprintf("%s is %s (%s)", src, st.Freshness[i].Level, st.Freshness[i].Reason))
		case src == config.SourcePostgres && !strings.Contains(st.Freshness[i].Reason, "point-in-time recovery"):
			missing = append(missing, "postgres is fresh by its snapshot, not by its change stream: "+st.Freshness[i].Reason)
		}
	}
	switch d := st.LastDrill; {
	case d == nil:
		missing = append(missing, "no restore drill yet")
	case d.Outcome != jobs.OutcomeSucceeded:
		missing = append(missing, fmt.Sprintf("drill %s %s: %s", d.ID, d.Outcome, d.Error))
	}
	for _, p := range st.Problems {
		missing = append(missing, "problem: "+p.What)
	}
	return st, missing
}

// servingAddr waits for the daemon's "serving" log line and returns the address it listens on.
func servingAddr(t *testing.T, logPath string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		f, err := os.Open(logPath)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var line struct {
				Msg    string `json:"msg"`
				Listen string `json:"listen"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" && line.Listen != "" {
				f.Close()
				return line.Listen
			}
		}
		f.Close()
	}
	data, _ := os.ReadFile(logPath)
	t.Fatalf("the daemon never said where it serves:\n%s", data)
	return ""
}

// cleanupRunStack drops what the test made on the shared stack: the replication slot (before the
// database it belongs to), the drill's scratch databases, the ClickHouse database, the container.
func cleanupRunStack(t *testing.T, env *devstack.Env, chDB, pgDSN, slot, container, conn string) {
	t.Helper()
	pgDB := pgDSN[strings.LastIndex(pgDSN, "/")+1:]
	pgDB, _, _ = strings.Cut(pgDB, "?")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if c, err := pgx.Connect(ctx, env.PGDSN); err == nil {
			_, _ = c.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{pgDB + jobs.DrillSuffix}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
		for _, db := range []string{chDB, chDB + jobs.DrillSuffix} {
			_ = env.CHExec(0, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, env.CHCluster))
		}
		if az, err := store.NewAzure(ctx, store.AzureOptions{ConnectionString: conn, Container: container, NoCreate: true}); err == nil {
			_, _ = az.Container().Delete(ctx, nil)
		}
	})
}
