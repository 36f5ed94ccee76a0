package main

// Commands an operator runs at 3 a.m. (issue 35's high items), driven through the CLI on the
// stack: a --database-map that cannot overwrite production, a backup filter that selects
// nothing, and "latest" that means the newest full set.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// trustStack is two seeded ClickHouse databases (a stands for Langfuse's "default", b for a
// second one, "ux_db" in the issue) and, with postgres, a seeded PostgreSQL database, in a
// configuration that covers them with a repository of its own.
type trustStack struct {
	cfg  string
	a, b string
	srv  *clickhouse.Server
}

func newTrustStack(t *testing.T, prefix string, postgres, zk bool) *trustStack {
	t.Helper()
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := &trustStack{a: devstack.ScratchName(prefix + "_a"), b: devstack.ScratchName(prefix + "_b")}
	srv, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() {
		for _, d := range []string{s.a, s.b, s.b + "2", s.a + "_drill", s.b + "_drill"} {
			_ = srv.Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", d, env.CHCluster))
		}
	})
	pgDSN := ""
	if postgres {
		pgDSN = env.PGDatabase(t, prefix)
	}
	for i, db := range []string{s.a, s.b} {
		o := demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: db, Traces: 40, Seed: uint64(7 + i)}
		if i == 0 {
			o.PostgresDSN = pgDSN
		}
		if _, err := demo.Seed(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	s.cfg = filepath.Join(tmp, "tracevault.toml")
	toml := fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\ndatabases = [%q, %q]\n[drill]\ntimeout = \"5m\"\n",
		tmp, quoteList(env.CHNative), quoteList(env.CHHTTP), env.CHCluster, s.a, s.b)
	if postgres {
		toml += fmt.Sprintf("[postgres]\ndsn = %q\n", pgDSN)
	}
	if zk {
		// The record of this test's replication paths only: the stack's whole tree is shared.
		toml += fmt.Sprintf("[zookeeper]\nservers = [%q]\nroots = [\"/clickhouse/tables/01/%s\", \"/clickhouse/tables/01/%s\"]\n", env.ZK, s.a, s.b)
	}
	if err := os.WriteFile(s.cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *trustStack) cli(args ...string) (int, string, string) {
	return runCLI(append([]string{"--config", s.cfg}, args...)...)
}

// snapshotID is the id a backup printed.
func snapshotID(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`snapshot (\S+) complete`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no complete snapshot printed:\n%s", out)
	}
	return m[1]
}

// TestDatabaseMapRestoresOnlyTheMappedDatabases: `restore latest --only clickhouse
// --database-map B:B2 --dry-run` on a snapshot of A and B plans B's copy only and says so; it
// is neither refused because A holds rows nor, with --replace, a load of A in place. A plan
// that writes over live data marks each such step, in the text and the JSON, and its refusal
// names the partitions --replace would overwrite.
func TestDatabaseMapRestoresOnlyTheMappedDatabases(t *testing.T) {
	s := newTrustStack(t, "it_dbmap", false, false)
	if code, out, errs := s.cli("backup", "--only", "clickhouse"); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	mapArg := s.b + ":" + s.b + "2"
	for _, replace := range []bool{false, true} {
		args := []string{"restore", "latest", "--only", "clickhouse", "--database-map", mapArg, "--dry-run"}
		if replace {
			args = append(args, "--replace")
		}
		code, out, errs := s.cli(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d; want the copy of %s planned alone\n%s%s", args, code, s.b, out, errs)
		}
		header := fmt.Sprintf("restoring only the mapped databases: %s → %s2 (the snapshot's %s left as it is)", s.b, s.b, s.a)
		if !strings.HasPrefix(out, header+"\n") {
			t.Errorf("%v: the plan does not start with %q:\n%s", args, header, out)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			if strings.Contains(line, s.a) || strings.Contains(line, "[overwrites live data]") {
				t.Errorf("%v: a step touches %s or live data: %s", args, s.a, line)
			}
		}
		if !strings.Contains(out, "load     "+s.b+"2.traces partition") || !strings.Contains(out, "; 0 steps overwrite live data") {
			t.Errorf("%v: no load of %s2.traces, or steps overwriting live data:\n%s", args, s.b, out)
		}
	}
	code, out, errs := s.cli("--json", "restore", "latest", "--only", "clickhouse", "--database-map", mapArg, "--dry-run", "--replace")
	var plan struct {
		Map     map[string]string `json:"database_map"`
		LeftOut []string          `json:"left_out_databases"`
		Steps   []struct {
			Action     string `json:"action"`
			Target     string `json:"target"`
			Overwrites *bool  `json:"overwrites_live_data"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != 0 {
		t.Fatalf("--json plan: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if plan.Map[s.b] != s.b+"2" || len(plan.LeftOut) != 1 || plan.LeftOut[0] != s.a || len(plan.Steps) == 0 {
		t.Errorf("--json plan: map %v, left out %v, %d steps; want %s → %s2 with %s left out", plan.Map, plan.LeftOut, len(plan.Steps), s.b, s.b, s.a)
	}
	for _, st := range plan.Steps {
		if !strings.HasPrefix(st.Target, s.b+"2") || st.Overwrites == nil || *st.Overwrites {
			t.Errorf("--json plan step %s %s: overwrites_live_data %v; want only %s2 and false", st.Action, st.Target, st.Overwrites, s.b)
		}
	}

	// In place, without --replace: refused, naming each partition --replace would overwrite.
	var partition string
	if err := s.srv.Conn.QueryRow(context.Background(), "SELECT min(partition_id) FROM system.parts WHERE database = ? AND table = 'traces' AND active", s.a).Scan(&partition); err != nil {
		t.Fatal(err)
	}
	code, out, errs = s.cli("restore", "latest", "--only", "clickhouse", "--tables", s.a+".traces", "--dry-run")
	for _, want := range []string{"refusing to write over live data", s.a + ".traces partitions " + partition, "--replace would overwrite exactly these partitions in place"} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("in-place restore without --replace: exit %d, stderr lacks %q\n%s%s", code, want, out, errs)
		}
	}
	// With --replace: every load is marked, in the text and the JSON.
	code, out, errs = s.cli("restore", "latest", "--only", "clickhouse", "--tables", s.a+".traces", "--dry-run", "--replace")
	if code != 0 || !strings.Contains(out, "WARNING: this plan writes over live data in place") {
		t.Fatalf("--replace --dry-run: exit %d, no warning\n%s%s", code, out, errs)
	}
	loads := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "load ") {
			loads++
			if !strings.Contains(line, "[overwrites live data]") {
				t.Errorf("--replace --dry-run: a load into a partition holding rows is not marked: %s", line)
			}
		}
	}
	if loads == 0 {
		t.Errorf("--replace --dry-run planned no load:\n%s", out)
	}
	code, out, _ = s.cli("--json", "restore", "latest", "--only", "clickhouse", "--tables", s.a+".traces", "--dry-run", "--replace")
	if err := json.Unmarshal([]byte(out), &plan); err != nil || code != 0 {
		t.Fatalf("--replace --json: exit %d, %v\n%s", code, err, out)
	}
	for _, st := range plan.Steps {
		if st.Action == "load-partition" && (st.Overwrites == nil || !*st.Overwrites) {
			t.Errorf("--replace --json: load of %s not marked overwrites_live_data", st.Target)
		}
	}

	// A map whose source the snapshot lacks, and --tables outside the mapped databases, would
	// restore nothing: refused.
	if code, _, errs := s.cli("restore", "latest", "--only", "clickhouse", "--database-map", "nope:nope2", "--dry-run"); code != 1 || !strings.Contains(errs, "--database-map nope") {
		t.Errorf("--database-map nope:nope2: exit %d; want 1 naming nope\n%s", code, errs)
	}
	if code, _, errs := s.cli("restore", "latest", "--only", "clickhouse", "--tables", s.a+".traces", "--database-map", mapArg, "--dry-run"); code != 1 || !strings.Contains(errs, "selects no table of a database --database-map maps") {
		t.Errorf("--tables %s.traces --database-map %s: exit %d; want 1\n%s", s.a, mapArg, code, errs)
	}
}

// TestBackupFilterSelectingNothingFails: `backup --tables` with a glob that selects no table (a
// typo) exits 1 naming it and records nothing, so it never becomes latest; `migrate up
// --snapshot-before` on a new database says there is nothing to snapshot and records nothing.
func TestBackupFilterSelectingNothingFails(t *testing.T) {
	s := newTrustStack(t, "it_nofilter", false, false)
	for _, tables := range []string{"nope.*", strings.Replace(s.a, "it_", "ti_", 1) + ".traces", s.a + ".traces,nope.*"} {
		code, out, errs := s.cli("backup", "--only", "clickhouse", "--tables", tables)
		bad := tables[strings.LastIndex(tables, ",")+1:]
		if code != 1 || !strings.Contains(errs, "table filter "+bad+" selects no table") || strings.Contains(out, "complete") {
			t.Errorf("backup --tables %s: exit %d; want 1 naming %s and no snapshot\n%s%s", tables, code, bad, out, errs)
		}
	}
	if code, out, _ := s.cli("--json", "list"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list after refused backups: exit %d, %s; want no snapshot", code, out)
	}

	// A migration's snapshot of a database with no row in it.
	env := devstack.Require(t)
	dir := t.TempDir()
	db := devstack.ScratchName("it_nofilter_m")
	t.Cleanup(func() {
		_ = s.srv.Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, env.CHCluster))
	})
	if err := os.WriteFile(filepath.Join(dir, "1_t.up.sql"), []byte("CREATE TABLE t {{cluster}} (id String) ENGINE = MergeTree ORDER BY id;"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.cfg, fmt.Appendf(cfg, "[migrate]\nclickhouse_dir = %q\nclickhouse_database = %q\n", dir, db), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := s.cli("migrate", "--target", "clickhouse", "up", "--snapshot-before")
	if code != 0 || !strings.Contains(errs, "no snapshot taken before migrating") || !strings.Contains(errs, "no row in databases "+db) || !strings.Contains(out, "applied 1 up") {
		t.Errorf("migrate up --snapshot-before on a new database: exit %d; want 0, saying no snapshot was taken\n%s%s", code, out, errs)
	}
	if code, out, _ := s.cli("--json", "list"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list after the migration: exit %d, %s; want no snapshot", code, out)
	}
}

// TestLatestIsTheNewestFullSet: after a --tables backup, "latest" is still the newest full set:
// restore latest --only postgres, zk diff latest live and restore latest --only clickhouse
// --cluster use it, list and show say each set's scope, an explicit narrower set names the
// full one, and before any full set exists the error names the sets there are.
func TestLatestIsTheNewestFullSet(t *testing.T) {
	s := newTrustStack(t, "it_latest", true, true)
	narrow := s.b + ".*"
	code, out, errs := s.cli("backup", "--only", "clickhouse", "--tables", narrow)
	if code != 0 {
		t.Fatalf("backup --tables: exit %d\n%s%s", code, out, errs)
	}
	first := snapshotID(t, out)
	code, out, errs = s.cli("show", "latest")
	for _, want := range []string{"no snapshot of that scope", "the newest complete snapshot, " + first + ", holds clickhouse (tables " + narrow, "latest:any"} {
		if code != 1 || !strings.Contains(errs, want) {
			t.Errorf("show latest with no full set: exit %d, stderr lacks %q\n%s%s", code, want, out, errs)
		}
	}

	code, out, errs = s.cli("backup")
	if code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	full := snapshotID(t, out)
	code, out, errs = s.cli("backup", "--only", "clickhouse", "--tables", narrow)
	if code != 0 {
		t.Fatalf("backup --tables: exit %d\n%s%s", code, out, errs)
	}
	narrowed := snapshotID(t, out)

	for sel, want := range map[string]string{"latest": full, "latest:clickhouse": full, "latest:postgres,zookeeper": full, "latest:any": narrowed} {
		code, out, errs := s.cli("--json", "show", sel)
		var m struct {
			ID string `json:"id"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m.ID != want {
			t.Errorf("show %s: exit %d, id %q; want %s\n%s", sel, code, m.ID, want, errs)
		}
	}
	if code, out, errs := s.cli("restore", "latest", "--only", "postgres", "--pg-database", "it_latest_never", "--dry-run"); code != 0 {
		t.Errorf("restore latest --only postgres --dry-run: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := s.cli("zk", "diff", "latest", "live"); code != 0 {
		t.Errorf("zk diff latest live: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = s.cli("restore", "latest", "--only", "clickhouse", "--cluster", "--replace", "--dry-run")
	if code != 0 || !strings.Contains(out, s.a+".traces partition") || !strings.Contains(out, s.b+".traces partition") || !strings.Contains(out, "from snapshot "+full) {
		t.Errorf("restore latest --only clickhouse --cluster --dry-run: exit %d; want both databases from %s\n%s%s", code, full, out, errs)
	}

	code, out, _ = s.cli("--json", "list")
	var list []struct {
		ID      string `json:"id"`
		Scope   string `json:"scope"`
		FullSet bool   `json:"full_set"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || code != 0 || len(list) != 3 {
		t.Fatalf("list --json: exit %d, %v\n%s", code, err, out)
	}
	for _, e := range list {
		wantFull := e.ID == full
		if e.FullSet != wantFull || (wantFull && e.Scope != "full") || (!wantFull && !strings.Contains(e.Scope, "tables "+narrow)) {
			t.Errorf("list: %s scope %q full_set %v", e.ID, e.Scope, e.FullSet)
		}
	}
	if code, out, _ := s.cli("list"); code != 0 || !strings.Contains(out, "SCOPE") || !strings.Contains(out, "clickhouse (tables "+narrow) {
		t.Errorf("list: exit %d, no scope column\n%s", code, out)
	}
	if code, out, _ := s.cli("show", narrowed); code != 0 || !strings.Contains(out, "not a full set: 'latest' passes over it") {
		t.Errorf("show %s: exit %d; want its scope\n%s", narrowed, code, out)
	}
	code, out, errs = s.cli("restore", narrowed, "--only", "postgres", "--pg-database", "it_latest_never", "--dry-run")
	if code != 1 || !strings.Contains(errs, "holds no postgres") || !strings.Contains(errs, "holding it whole is "+full) {
		t.Errorf("restore %s --only postgres: exit %d; want 1 naming %s\n%s%s", narrowed, code, full, out, errs)
	}

	// The default drill proves the full set, not the newest narrower one.
	code, out, errs = s.cli("drill", "--json")
	var res struct {
		Snapshot string `json:"snapshot"`
		Outcome  string `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res.Snapshot != full {
		t.Errorf("drill: exit %d, snapshot %q; want %s\n%s%s", code, res.Snapshot, full, out, errs)
	}
}
