package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// world is one ClickHouse the bench measures on: the 18.16 cluster of the stack, with the
// demo's Langfuse v2-era schema, or ch-modern (26.7, one server, no Keeper) with Langfuse v4's
// tables. The steps are the same; the addresses, the baseline's client and the step names
// differ.
type world struct {
	name    string // prefix of the step names: "" for the cluster, "modern" for ch-modern
	engine  string // for the report's data lines
	native  []string
	http    []string
	cluster string
	// atomic: databases are Atomic, whose DROP must be SYNC so that the next run's CREATE of
	// the same name does not wait for the old one's files to go.
	atomic bool
	probe  *probe
}

// clusterWorld is the stack's 18.16 cluster.
func clusterWorld(env *devstack.Env) *world {
	return &world{engine: "ClickHouse 18.16 cluster", native: env.CHNative, http: env.CHHTTP, cluster: env.CHCluster, probe: newProbe(env.Dir)}
}

// modernWorld is the stack's ch-modern, or an error naming what the stack lacks. Its server
// process is clickhouse-local loaded by a launcher, whose command line names neither
// "clickhouse" nor "server": the probe finds it by the pid file stack.sh writes.
func modernWorld(env *devstack.Env) (*world, error) {
	if env.CHModernNative == "" || env.CHModernHTTP == "" {
		return nil, fmt.Errorf("%s has no STACK_CH_MODERN_NATIVE/STACK_CH_MODERN_HTTP: re-run `make stack-up` to start ch-modern, or pass -world cluster", filepath.Join(env.Dir, "env"))
	}
	p := &probe{}
	if b, err := os.ReadFile(filepath.Join(env.Dir, "ch-modern.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			p.servers = []int{pid}
		}
	}
	return &world{name: "modern", engine: "ClickHouse 26.7 (ch-modern), Langfuse v4's tables", native: []string{env.CHModernNative},
		http: []string{env.CHModernHTTP}, atomic: true, probe: p}, nil
}

// h is replica i's HTTP interface.
func (w *world) h(i int) *clickhouse.HTTP {
	return &clickhouse.HTTP{Addr: w.http[i], User: "default"}
}

// port is replica i's native port, for clickhouse-client.
func (w *world) port(i int) string {
	a := w.native[i]
	return a[strings.LastIndexByte(a, ':')+1:]
}

// step names a step of this world.
func (w *world) step(s string) string {
	if w.name == "" {
		return s
	}
	return w.name + " " + s
}

// exportBaseline is the name and the shell command of the logical backup's baseline for one
// table: the server's Native format compressed by zstd -1. The stack's clickhouse-client is
// 18.16's, which cannot decode 26.7's types (Map, JSON, Dynamic): on ch-modern the Native
// stream comes through the HTTP interface with curl, which does not decode it at all.
func (w *world) exportBaseline(db, table, file string) (name, sh string) {
	q := fmt.Sprintf("SELECT * FROM %s.%s FORMAT Native", db, table)
	if w.atomic {
		return "curl -sS --data-binary 'SELECT … FORMAT Native' to the HTTP interface | zstd -1, per table",
			fmt.Sprintf("curl -sS --fail-with-body --data-binary '%s' 'http://%s/' | zstd -1 -q -f -o %s\n", q, w.http[0], file)
	}
	return "clickhouse-client … FORMAT Native | zstd -1, per table",
		fmt.Sprintf("clickhouse-client --host 127.0.0.1 --port %s --query '%s' | zstd -1 -q -f -o %s\n", w.port(0), q, file)
}

// loadBaseline is the restore's baseline for one table, the other way round: zstd -d into an
// INSERT … FORMAT Native on replica 1 (on ch-modern a streamed, chunked HTTP POST).
func (w *world) loadBaseline(file, db, table string) (name, sh string) {
	q := fmt.Sprintf("INSERT INTO %s.%s FORMAT Native", db, table)
	if w.atomic {
		return "zstd -d | curl -T - (chunked POST) of INSERT … FORMAT Native to the HTTP interface, per table",
			fmt.Sprintf("zstd -d -q -c %s | curl -sS --fail-with-body -X POST -T - 'http://%s/?query=%s'\n", file, w.http[0], url.QueryEscape(q))
	}
	return "zstd -d | clickhouse-client … INSERT … FORMAT Native per table, then SYNC REPLICA on the others",
		fmt.Sprintf("zstd -d -q -c %s | clickhouse-client --host 127.0.0.1 --port %s --query '%s'\n", file, w.port(0), q)
}

// drop drops db on every replica; the replicated tables leave ZooKeeper with the last one.
func (w *world) drop(ctx context.Context, db string) error {
	q := "DROP DATABASE IF EXISTS " + db
	if w.atomic {
		q += " SYNC"
	}
	for i := range w.http {
		if err := w.h(i).Exec(ctx, q, nil); err != nil {
			return fmt.Errorf("drop %s on %s: %w", db, w.http[i], err)
		}
	}
	return nil
}

// The seed cache: a database the bench generated is kept for the next run, and reused when the
// mark recorded for it says it was filled completely with what this run asks for (the data's
// size, the generator's seed, the demo schema's version and the bench's own changes to it).
// The marks live in a database of their own on replica 1, so that no measured database holds
// a table the bench added.
const (
	seedsDB = "bench_seeds"
	// seedVersion changes when the bench changes what it does to seeded data after demo.Seed
	// (merges, lightweight updates): a database marked with another version is seeded again.
	seedVersion = 1
)

// seedMark is the mark recorded for db, "" when none is or db is not there.
func (w *world) seedMark(ctx context.Context, db string) (string, error) {
	h := w.h(0)
	n, err := chInt(ctx, h, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s' AND name = 'marks'", seedsDB))
	if err != nil || n == 0 {
		return "", err
	}
	if n, err = chInt(ctx, h, fmt.Sprintf("SELECT count() FROM system.tables WHERE database = '%s'", db)); err != nil || n == 0 {
		return "", err
	}
	rows, err := chRows(ctx, h, fmt.Sprintf("SELECT argMax(mark, at) FROM %s.marks WHERE db = '%s'", seedsDB, db))
	if err != nil || len(rows) != 1 {
		return "", err
	}
	return strings.NewReplacer(`\'`, "'", `\\`, `\`).Replace(rows[0][0]), nil
}

// setSeedMark records mark for db ("" before seeding starts, so that an interrupted seed is
// never taken for a complete one).
func (w *world) setSeedMark(ctx context.Context, db, mark string) error {
	h := w.h(0)
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + seedsDB,
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.marks (db String, mark String, at UInt64) ENGINE = Log", seedsDB),
		fmt.Sprintf("INSERT INTO %s.marks VALUES ('%s', '%s', %d)", seedsDB, db, strings.ReplaceAll(mark, "'", `\'`), time.Now().UnixNano()),
	} {
		if err := h.Exec(ctx, q, nil); err != nil {
			return fmt.Errorf("record the seed mark of %s: %w", db, err)
		}
	}
	return nil
}

// cachedSeed fills db with seed unless the mark recorded for it is want (and reseed is false);
// it drops what an earlier or interrupted seed left first. It reports whether it seeded.
func (w *world) cachedSeed(ctx context.Context, db, want string, reseed bool, seed func(context.Context) error) (bool, error) {
	have, err := w.seedMark(ctx, db)
	if err != nil {
		return false, err
	}
	if have == want && !reseed {
		return false, nil
	}
	if err := w.setSeedMark(ctx, db, ""); err != nil {
		return false, err
	}
	if err := w.drop(ctx, db); err != nil {
		return false, err
	}
	if err := seed(ctx); err != nil {
		return false, err
	}
	return true, w.setSeedMark(ctx, db, want)
}
