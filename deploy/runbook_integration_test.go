package deploy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/doccmd"
)

// runbookBlock returns the sh block of deploy/README.md that follows the marker comment
// <!-- runbook-test: NAME ... -->.
func runbookBlock(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range doccmd.Blocks("README.md", string(data)) {
		if b.Marker == name {
			return b.Text
		}
	}
	t.Fatalf("README.md has no sh block after a runbook-test marker for %s", name)
	return ""
}

func chQuery(t *testing.T, addr, sql string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/?query=" + url.QueryEscape(sql))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s on %s: %s", sql, addr, body)
	}
	return strings.TrimSpace(string(body))
}

var exitMark = regexp.MustCompile(`(?m)^@@exit (\d+)$`)

// TestRunbookRestoreReplicaOnStack runs the "Restore one replica" block of deploy/README.md, as
// written, with the built binary on PATH against the local stack: replica ch3 lost a replicated
// table (dropped on ch3 alone); the first `check` must exit 1 naming the fix, every later
// command must exit 0, and ch3 must hold the rows again.
func TestRunbookRestoreReplicaOnStack(t *testing.T) {
	env := devstack.Require(t)
	runRestoreReplicaBlock(t, env, func(db string) {
		if err := env.CHExec(2, "DROP TABLE "+db+".traces"); err != nil { // ch3 loses its table
			t.Fatal(err)
		}
	})
}

// TestRunbookReplicaLostOnStack runs the same block after ch3 lost its volume: stopped, the
// test database's data and metadata removed from its disk, started again, with its
// registration still in ZooKeeper, as a replica whose disk was replaced comes back.
func TestRunbookReplicaLostOnStack(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	runRestoreReplicaBlock(t, env, func(db string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := env.Stop(ctx, "ch3"); err != nil {
			t.Fatal(err)
		}
		dir := env.CHDataDirs[2]
		for _, p := range []string{filepath.Join(dir, "data", db), filepath.Join(dir, "metadata", db), filepath.Join(dir, "metadata", db+".sql")} {
			if err := os.RemoveAll(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := env.Start(ctx, "ch3"); err != nil {
			t.Fatal(err)
		}
	})
}

// runRestoreReplicaBlock seeds a replicated table in a scratch database, lets lose take it from
// ch3, then runs the block and checks each exit, the words and ch3's rows.
func runRestoreReplicaBlock(t *testing.T, env *devstack.Env, lose func(db string)) {
	t.Helper()
	block := runbookBlock(t, "restore-replica")
	db := env.CHDatabase(t, "it_runbook")
	if got := chQuery(t, env.CHHTTP[2], "SELECT substitution FROM system.macros WHERE macro = 'replica'"); got != "ch3" {
		t.Fatalf("the runbook names replica ch3; the stack's third replica is %q", got)
	}
	for _, q := range []string{
		fmt.Sprintf("CREATE TABLE %s.traces ON CLUSTER %s (id UInt64, day Date, name String) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/%s/traces', '{replica}') PARTITION BY toYYYYMM(day) ORDER BY id", db, env.CHCluster, db),
		fmt.Sprintf("INSERT INTO %s.traces SELECT number, toDate('2026-04-01') + number %% 60, toString(number) FROM system.numbers LIMIT 1000", db),
	} {
		if err := env.CHExec(0, q); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < len(env.CHHTTP); i++ {
		if err := env.CHExec(i, "SYSTEM SYNC REPLICA "+db+".traces"); err != nil {
			t.Fatal(err)
		}
	}
	lose(db)

	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tracevault.toml")
	toml := fmt.Sprintf("[storage]\nurl = \"file://%s/repo\"\n", tmp) + env.ClickHouseTOML(db) + env.ZooKeeperTOML()
	if err := os.WriteFile(cfg, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}

	// The block as written, with a marker after each line that runs something, to see each exit.
	var script strings.Builder
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		script.WriteString(line + "\n")
		if code := doccmd.StripComment(line); strings.TrimSpace(code) != "" {
			cmds = append(cmds, strings.TrimSpace(code))
			script.WriteString("echo \"@@exit $?\"\n")
		}
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(tracevaultBinary(t))+":"+os.Getenv("PATH"), "TRACEVAULT_CONFIG="+cfg)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runbook block: %v\n%s", err, out)
	}
	codes := exitMark.FindAllStringSubmatch(string(out), -1)
	if len(codes) != len(cmds) || len(cmds) != 5 {
		t.Fatalf("%d commands, %d exits (want 5 each):\n%s", len(cmds), len(codes), out)
	}
	for i, c := range cmds {
		want := "0"
		if i == 0 {
			want = "1" // check finds the lost table
		}
		if codes[i][1] != want {
			t.Errorf("%q exited %s, want %s", c, codes[i][1], want)
		}
	}
	for _, want := range []string{"restore-replica ch3", "replica ch3 rebuilt"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("runbook output lacks %q", want)
		}
	}
	if got := chQuery(t, env.CHHTTP[2], "SELECT count() FROM "+db+".traces"); got != "1000" {
		t.Errorf("ch3 holds %s rows after the runbook, want 1000", got)
	}
	t.Logf("runbook output:\n%s", out)
}
