package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/doccmd"
)

// notRunnableHere are the runbooks' commands this test cannot run, by how they start, and why.
// Any other command of a runbook runs; one that matches neither fails the test.
var notRunnableHere = map[string]string{
	"kubectl ": "needs the Kubernetes cluster Langfuse runs in; the stack has none",
}

var (
	placeholderRow  = regexp.MustCompile("(?m)^\\| (`<[A-Z0-9_]+>`(?:, `<[A-Z0-9_]+>`)*) \\|")
	placeholderName = regexp.MustCompile(`<[A-Z0-9_]+>`)
)

// runbookPlaceholders returns the placeholders a runbook documents: its table's first column.
func runbookPlaceholders(md string) map[string]bool {
	placeholders := map[string]bool{}
	for _, row := range placeholderRow.FindAllStringSubmatch(md, -1) {
		for _, p := range placeholderName.FindAllString(row[1], -1) {
			placeholders[p] = true
		}
	}
	return placeholders
}

// TestRunbookPlaceholders: the placeholder table's names are read, several to a row; a name
// elsewhere is not. How the commands are read is internal/doccmd's TestCommands.
func TestRunbookPlaceholders(t *testing.T) {
	md := "| Placeholder | What |\n|---|---|\n| `<A>`, `<B>` | x |\n| `<C>` | y |\n\n" +
		"```sh\ncat > f <<'EOF'\nx = \"<D>\"\nEOF\n```\n"
	ph := runbookPlaceholders(md)
	if len(ph) != 3 || !ph["<A>"] || !ph["<B>"] || !ph["<C>"] {
		t.Errorf("placeholders %v, want <A>, <B>, <C>", ph)
	}
}

// runbookWorlds are the migrate-cluster runbooks (doccmd.MigrateClusterRunbooks) by file, each
// with the subtest of TestMigrateClusterRunbooks that builds its world and runs it. No other
// runner of the docs runs them, so one missing here would run nowhere: the test fails on it.
var runbookWorlds = map[string]string{
	"runbook-clickhouse-v4.md":           "clickhouse-v4",
	"runbook-single-node-to-replicas.md": "single-node-to-replicas",
}

// checkRunbookOwners fails t for a migrate-cluster runbook without a world here.
func checkRunbookOwners(t *testing.T) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", doccmd.MigrateClusterRunbooks))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no runbook matches %s", doccmd.MigrateClusterRunbooks)
	}
	for _, f := range files {
		if runbookWorlds[filepath.Base(f)] == "" {
			t.Errorf("%s: no subtest runs it; add its world to runbookWorlds", f)
		}
	}
}

// runRunbook runs every command of docs/<file> as written, in dir (which holds the source's
// tracevault.toml), placeholders filled from values, with the tracevault binary first on
// PATH: each must exit 0 and print what its comment says. A placeholder the runbook does not
// document, or one documented that values lacks, fails the test.
func runRunbook(t *testing.T, file, dir, bin string, values map[string]string) {
	t.Helper()
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	placeholders := runbookPlaceholders(string(md))
	var cmds []doccmd.Command
	for _, b := range doccmd.Blocks(file, string(md)) {
		cmds = append(cmds, b.Commands()...)
	}
	for p := range placeholders {
		if _, ok := values[p]; !ok {
			t.Fatalf("%s documents %s, which this test does not fill", file, p)
		}
	}
	if len(cmds) == 0 {
		t.Fatalf("%s holds no sh command", file)
	}
	ran := 0
	for _, c := range cmds {
		text := c.Raw // as written: the runbook's own continuation lines and comments
		for _, p := range placeholderName.FindAllString(text, -1) {
			if !placeholders[p] {
				t.Fatalf("%s: %s in %q is not in the runbook's placeholder table", file, p, text)
			}
			text = strings.ReplaceAll(text, p, values[p])
		}
		if reason := notRunnable(text); reason != "" {
			t.Logf("not run here (%s): %s", reason, text)
			continue
		}
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", text)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"), "TRACEVAULT_CONFIG=")
		out, err := cmd.CombinedOutput()
		t.Logf("$ %s\n%s", text, out)
		if err != nil {
			t.Fatalf("%s: %q as written fails: %v", file, text, err)
		}
		for _, w := range c.Prints {
			w = strings.NewReplacer(flatten(values)...).Replace(w)
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: %q prints no %q", file, text, w)
			}
		}
		ran++
	}
	if ran == 0 {
		t.Errorf("%s: no command ran", file)
	}
}

func notRunnable(cmd string) string {
	for prefix, reason := range notRunnableHere {
		if strings.HasPrefix(cmd, prefix) {
			return reason
		}
	}
	return ""
}

func flatten(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// sourceConfig writes the source's tracevault.toml into a new directory, where the runbook's
// commands run, and creates its repository, as a tracevault that backs the source up has one;
// it returns the directory.
func sourceConfig(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	body = fmt.Sprintf("[storage]\nurl = %q\n", "file://"+filepath.Join(dir, "repo")) + body
	path := filepath.Join(dir, "tracevault.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI("--config", path, "init"); code != 0 {
		t.Fatalf("init the source's repository: %s", stderr)
	}
	return dir
}

// TestMigrateClusterRunbooks runs the two migrate-cluster runbooks as written: upgrading for
// v4 (the 18.16 replicas to ch-modern, replicated to plain) and single node to three replicas
// (ch-modern to the 18.16 replicas, ON CLUSTER, a TinyLog schema_migrations). It owns every
// runbook of doccmd.MigrateClusterRunbooks: the deploy runner leaves them to it.
func TestMigrateClusterRunbooks(t *testing.T) {
	checkRunbookOwners(t)
	env := devstack.RequireModern(t)
	bin := buildBinary(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	modern := func(q string) error { _, err := env.ModernQuery(q); return err }
	const traces = "(id UInt64, name String, ts DateTime, event_ts DateTime) ENGINE = %s PARTITION BY toYYYYMM(ts) ORDER BY id"
	const rows = "INSERT INTO %s.traces SELECT number, toString(number), toDateTime('2026-0%d-01 00:00:00') + number, now() FROM system.numbers LIMIT 100"

	t.Run(runbookWorlds["runbook-clickhouse-v4.md"], func(t *testing.T) {
		db := env.CHDatabase(t, "it_rbv4")
		t.Cleanup(func() { _ = modern("DROP DATABASE IF EXISTS " + db + " SYNC") })
		must(env.CHExec(0, fmt.Sprintf("CREATE TABLE %s.traces ON CLUSTER %s "+traces, db, env.CHCluster,
			fmt.Sprintf("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}', event_ts)", db))))
		must(env.CHExec(0, fmt.Sprintf("CREATE TABLE %s.schema_migrations ON CLUSTER %s (version Int64, dirty UInt8, sequence UInt64) ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/%s/schema_migrations', '{replica}') ORDER BY sequence", db, env.CHCluster, db)))
		must(env.CHExec(0, fmt.Sprintf(rows, db, 1)))
		must(env.CHExec(0, fmt.Sprintf(rows, db, 2)))
		must(env.CHExec(0, "INSERT INTO "+db+".schema_migrations VALUES (9, 0, 1)"))
		dir := sourceConfig(t, fmt.Sprintf("[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\ndatabases = [%q]\n[zookeeper]\nservers = [%q]\n",
			quoteList(env.CHNative), quoteList(env.CHHTTP), env.CHCluster, db, env.ZK))
		runRunbook(t, "runbook-clickhouse-v4.md", dir, bin, map[string]string{
			"<NEW_CLICKHOUSE>": env.CHModernNative, "<NEW_CLICKHOUSE_HTTP>": env.CHModernHTTP, "<DATABASE>": db,
			"<TARGET_REPOSITORY>": "file://" + filepath.Join(dir, "target-repo"), "<NAMESPACE>": "langfuse",
		})
		if got, err := env.ModernQuery("SELECT count() FROM " + db + ".traces"); err != nil || got != "200" {
			t.Errorf("ch-modern holds %q rows (%v), want 200", got, err)
		}
	})

	t.Run(runbookWorlds["runbook-single-node-to-replicas.md"], func(t *testing.T) {
		db := env.CHDatabase(t, "it_rbsr") // the target's database, empty
		must(modern("CREATE DATABASE " + db + " ENGINE = Atomic"))
		t.Cleanup(func() { _ = modern("DROP DATABASE IF EXISTS " + db + " SYNC") })
		must(modern(fmt.Sprintf("CREATE TABLE %s.traces "+traces, db, "ReplacingMergeTree(event_ts)")))
		must(modern("CREATE TABLE " + db + ".schema_migrations (version Int64, dirty UInt8, sequence UInt64) ENGINE = TinyLog"))
		must(modern(fmt.Sprintf(rows, db, 3)))
		must(modern("INSERT INTO " + db + ".schema_migrations VALUES (4, 0, 1)"))
		dir := sourceConfig(t, fmt.Sprintf("[clickhouse]\naddresses = [%q]\nhttp_addresses = [%q]\ndatabases = [%q]\n", env.CHModernNative, env.CHModernHTTP, db))
		values := map[string]string{"<CLUSTER>": env.CHCluster, "<KEEPER>": env.ZK, "<DATABASE>": db,
			"<TARGET_REPOSITORY>": "file://" + filepath.Join(dir, "target-repo"), "<NAMESPACE>": "langfuse"}
		for i := range env.CHNative {
			values[fmt.Sprintf("<REPLICA_%d>", i+1)], values[fmt.Sprintf("<REPLICA_%d_HTTP>", i+1)] = env.CHNative[i], env.CHHTTP[i]
		}
		runRunbook(t, "runbook-single-node-to-replicas.md", dir, bin, values)
		for i := range env.CHHTTP {
			if err := env.CHExec(i, "SELECT throwIf(count() != 100) FROM "+db+".traces"); err != nil {
				t.Errorf("replica %d: %v", i+1, err)
			}
		}
	})
}
