package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/internal/doccmd"
)

// runbooks are the Markdown files an operator follows, in the order their commands run: the
// README, the manual, then the deployment runbook.
func runbooks(t *testing.T) []string {
	t.Helper()
	root := moduleRoot(t)
	files := []string{filepath.Join(root, "README.md")}
	for _, glob := range []string{"docs/*.md", "deploy/*.md"} {
		m, err := filepath.Glob(filepath.Join(root, glob))
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(m)
		files = append(files, m...)
	}
	return files
}

// notRun are the commands the runbooks show that this test does not run, each with why. A
// command of a runbook that is neither run nor listed here fails the test.
var notRun = []struct {
	match  *regexp.Regexp
	reason string
}{
	{regexp.MustCompile(`^make `), "starts, stops or tests the local stack this test runs on"},
	{regexp.MustCompile(`^go test `), "runs a package's tests, as this one is run"},
	{regexp.MustCompile(`^(az |[A-Z_]+=\$\(az )`), "the Azure CLI against a subscription; the values it makes are rendered by TestReadmeHelmTemplateCommands"},
	{regexp.MustCompile(`^RG=|^AKS=`), "names for the Azure CLI commands beside it"},
	{regexp.MustCompile(`^kubectl -n (\$NS|<NAMESPACE>) (create|get|rollout|logs|apply|scale|set)`), "kubectl against AKS; the tracevault commands run through `kubectl exec` run here"},
	{regexp.MustCompile(`^helm template `), "rendered as written by TestReadmeHelmTemplateCommands; the apply needs AKS"},
	{regexp.MustCompile(`^helm upgrade `), "installs the chart into AKS; its templates render in TestReadmeHelmTemplateCommands"},
	{regexp.MustCompile(`^(install|systemctl|journalctl) `), "installs the systemd unit as root on a host; TestSystemdUnitsVerify checks the unit"},
	{regexp.MustCompile(`^tracevault demo seed --traces 1000000\b`), "a million traces take minutes; every integration test seeds through the same demo.Seed"},
	{regexp.MustCompile(`^tracevault restore --only postgres --(to|to-lsn) `), "point-in-time recovery needs a daemon streaming the change stream; TestPITRAcceptance (snapshot/postgres/pitr) restores to a time and an LSN"},
	{regexp.MustCompile(`replay-events`), "needs Langfuse's admin replay route; TestReplayAgainstFakeLangfuseRoute drives it against a fake one"},
	{regexp.MustCompile(`^tracevault hold ID\b`), "an Azure legal hold: a directory repository refuses it and Azurite has none; TestHoldRequestShapes (snapshot/store) checks the requests Azure gets"},
}

// substitutions fill the runbooks' placeholders: what the docs write in capitals or as an
// example name is replaced by this test's scratch objects. Nothing else of a command changes.
type substitutions struct {
	cfg, chDB, pgDB, repo string
	created               []string      // scratch PostgreSQL databases the restores made
	id                    func() string // the newest full set's id, at the time of the command
}

var pgDocNames = regexp.MustCompile(`\b(langfuse_restored|langfuse_1015|langfuse_lsn|staging_1015)\b`)

// newPG names a new scratch PostgreSQL database, for each restore the docs show into a new one.
func (s *substitutions) newPG() string {
	n := devstack.ScratchName("it_rb_new")
	s.created = append(s.created, n)
	return n
}

func (s *substitutions) apply(cmd string) string {
	cmd = strings.NewReplacer(" [--json]", "", " [--dry-run]", "").Replace(cmd) // optional flags, shown in brackets
	cmd = regexp.MustCompile(`--config FILE\b`).ReplaceAllString(cmd, "--config "+s.cfg)
	cmd = regexp.MustCompile(`\bdefault:restored\b`).ReplaceAllString(cmd, s.chDB+":"+s.chDB+"_restored")
	cmd = regexp.MustCompile(`\bdefault\.`).ReplaceAllString(cmd, s.chDB+".")
	cmd = regexp.MustCompile(`--database langfuse\b`).ReplaceAllString(cmd, "--database "+s.pgDB)
	cmd = regexp.MustCompile(`--(to|root) /clickhouse/tables\b`).ReplaceAllString(cmd, "--$1 /clickhouse/tables/01/"+s.chDB)
	cmd = regexp.MustCompile(`--to new-cluster\.toml\b`).ReplaceAllString(cmd, "--to target.toml")
	cmd = regexp.MustCompile(`\bgoto 20260501120000\b`).ReplaceAllString(cmd, "goto 4") // the demo's versions are 1 to 5
	cmd = pgDocNames.ReplaceAllStringFunc(cmd, func(string) string { return s.newPG() })
	if regexp.MustCompile(`\bID\b`).MatchString(cmd) {
		cmd = regexp.MustCompile(`\bID\b`).ReplaceAllString(cmd, s.id())
	}
	return cmd
}

// expectation is what an operator relies on from a command: its exit code and words of its
// output. A command no expectation matches must exit 0.
type expectation struct {
	match *regexp.Regexp
	exit  int
	words []string
	// disaster is run before the command: what the command recovers from.
	disaster func(t *testing.T, env *devstack.Env, s *substitutions)
}

var expectations = []expectation{
	{regexp.MustCompile(`^tracevault serve$`), 0, []string{"serving", "nightly", "/readyz: 200 OK"}, nil},
	{regexp.MustCompile(`^tracevault --help`), 0, []string{"backup", "restore", "Examples"}, nil},
	{regexp.MustCompile(`^tracevault config check`), 0, []string{": valid ("}, nil},
	{regexp.MustCompile(`^tracevault backup --only clickhouse --tables`), 0, []string{"complete"}, nil},
	{regexp.MustCompile(`^tracevault backup`), 0, []string{"complete"}, nil},
	// README's backup made the repository: init refuses to make a second over it.
	{regexp.MustCompile(`^tracevault init`), 1, []string{"is already a repository"}, nil},
	{regexp.MustCompile(`^tracevault list`), 0, []string{"complete"}, nil},
	{regexp.MustCompile(`^tracevault show latest:clickhouse`), 0, []string{"clickhouse"}, nil},
	{regexp.MustCompile(`^tracevault show latest`), 0, []string{"postgres", "clickhouse", "zookeeper"}, nil},
	{regexp.MustCompile(`^tracevault verify`), 0, []string{"0 problems"}, nil},
	{regexp.MustCompile(`^tracevault prune --dry-run`), 0, []string{"would forget"}, nil},
	{regexp.MustCompile(`^tracevault restore .*--only clickhouse .*--replace --dry-run`), 0, []string{"[overwrites live data]"}, nil},
	{regexp.MustCompile(`^tracevault restore .*--dry-run`), 0, nil, nil},
	// On a live ensemble, which the test's ZooKeeper is, these refuse and name --replace.
	{regexp.MustCompile(`^tracevault restore .*--only zookeeper`), 1, []string{"nodes already exist", "nothing was restored", "--replace"}, nil},
	{regexp.MustCompile(`^tracevault restore latest --only clickhouse --cluster$`), 0, []string{"verified"}, loseCluster},
	{regexp.MustCompile(`^tracevault restore .*--only clickhouse`), 0, []string{"verified"}, nil},
	{regexp.MustCompile(`^tracevault restore .*--only postgres`), 0, []string{"restored"}, nil},
	{regexp.MustCompile(`^tracevault drill`), 0, []string{"succeeded", "RTO"}, nil},
	{regexp.MustCompile(`^tracevault check`), 0, []string{"healthy"}, nil},
	// ch3 is whole here (the runbook's lost replica is TestRunbookReplicaLostOnStack's).
	{regexp.MustCompile(`^tracevault restore-replica ch3`), 0, []string{"nothing to do: every table of ch3 is in its peers' groups"}, nil},
	{regexp.MustCompile(`^tracevault migrate --target clickhouse status`), 0, []string{"(clean)", "applied:"}, nil},
	// The demo's migrations are all applied by its seed.
	{regexp.MustCompile(`^tracevault migrate --target clickhouse up --snapshot-before$`), 0, []string{"nothing to do", "no snapshot was taken"}, nil},
	{regexp.MustCompile(`^tracevault migrate .* down 1$`), 0, []string{"applied 4 down", "now at 3"}, nil},
	{regexp.MustCompile(`^tracevault migrate .* goto \d+ --dry-run$`), 0, []string{"would apply 5 down", "now at 4"}, nil},
	{regexp.MustCompile(`^tracevault migrate .* force 3$`), 0, []string{"forced version 3 (clean)"}, nil},
	{regexp.MustCompile(`^tracevault migrate .* create add_trace_tags$`), 0, []string{"add_trace_tags.up.sql", "add_trace_tags.down.sql"}, nil},
	{regexp.MustCompile(`^tracevault doctor`), 0, []string{"create    ALLOWED"}, nil},
	{regexp.MustCompile(`^tracevault zk health`), 0, []string{"standalone", "znodes"}, nil},
	// The demo's event_log is a local table on each of three servers, which a move to one server
	// refuses before writing (docs/migrate-cluster.md); TestMigrateClusterToModern moves a world
	// without one, pass by pass.
	{regexp.MustCompile(`^tracevault migrate-cluster`), 1, []string{"nothing was written", "event_log is a local MergeTree table"}, nil},
}

// TestRunbookCommandsOnStack runs every command the README, the manual and the deployment
// runbook show in their sh blocks, in order, as written but for the placeholders (see
// substitutions), with the built binary on PATH against scratch databases of the local stack
// and a repository of its own, and checks each exit code and the words an operator relies on.
// A command neither run nor listed in notRun fails the test, so a new command in a doc is run
// the day it is written. Blocks after a runbook-test marker are run by the test named for it.
func TestRunbookCommandsOnStack(t *testing.T) {
	env := devstack.RequireModern(t) // migrate-cluster moves to ch-modern
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	chDB := env.CHDatabase(t, "it_rb")
	pgDSN := env.PGDatabase(t, "it_rb")
	pgURL, err := url.Parse(pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	pgDB := strings.TrimPrefix(pgURL.Path, "/")
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: chDB,
		PostgresDSN: pgDSN, Traces: 60, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	sub := &substitutions{cfg: filepath.Join(tmp, "tracevault.toml"), chDB: chDB, pgDB: pgDB, repo: filepath.Join(tmp, "repo")}
	t.Cleanup(func() { dropScratch(t, env, chDB, sub.created) })
	migrations := filepath.Join(tmp, "migrations") // `migrate create` writes here, not into demo/
	if out, err := exec.Command("cp", "-r", filepath.Join(moduleRoot(t), "demo", "migrations"), migrations).CombinedOutput(); err != nil {
		t.Fatalf("copy the demo migrations: %v: %s", err, out)
	}
	writeRunbookConfig(t, env, sub, migrations)

	bin := filepath.Dir(tracevaultBinary(t))
	dir := tmp // each runbook runs in a directory of its own
	shell := func(script string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "TRACEVAULT_CONFIG="+sub.cfg, "NS=langfuse", "REPO="+sub.repo,
			"PGHOST="+pgURL.Hostname(), "PGPORT="+pgURL.Port(), "PGUSER="+pgURL.User.Username(), "PGPASSWORD="+password(pgURL))
		return cmd
	}
	run := func(script string) (int, string) {
		if script == "tracevault serve" {
			return serveUntilReady(t, shell("exec "+script))
		}
		out, err := shell(script).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		} else if err != nil {
			t.Fatalf("bash: %v", err)
		}
		return 0, string(out)
	}
	sub.id = func() string { return newestFullSet(t, run) }

	ran := 0
	for _, doc := range runbooks(t) {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(moduleRoot(t), doc)
		if own, _ := filepath.Match(doccmd.MigrateClusterRunbooks, rel); own {
			t.Logf("%s: run by TestMigrateClusterRunbooks (cmd/tracevault), in the world it is written for", rel)
			continue
		}
		dir = filepath.Join(tmp, strings.NewReplacer("/", "_", ".", "_").Replace(rel))
		writeTarget(t, env, dir, chDB)
		for _, b := range doccmd.Blocks(rel, string(data)) {
			if b.Marker != "" {
				t.Logf("%s:%d: the %s block is run by its own test", rel, b.Line, b.Marker)
				continue
			}
			if handBlock(b) {
				ran++
				runHandRestore(t, b, sub, run)
				continue
			}
			for _, cmd := range b.Commands() {
				c := cmd.Text
				if why := notRunReason(c); why != "" {
					t.Logf("%s:%d: not run: %s (%s)", rel, b.Line, c, why)
					continue
				}
				c = strings.TrimPrefix(c, "kubectl -n $NS exec deploy/tv-tracevault -- ")
				if !strings.HasPrefix(c, "tracevault ") {
					t.Errorf("%s:%d: %q is neither run by this test nor listed in notRun with the reason", rel, b.Line, c)
					continue
				}
				ran++
				line := sub.apply(c)
				want := expect(c)
				if want.disaster != nil {
					want.disaster(t, env, sub)
				}
				code, out := run(line)
				if code != want.exit {
					t.Errorf("%s:%d: %s\n  exited %d, want %d:\n%s", rel, b.Line, line, code, want.exit, indent(out))
					continue
				}
				for _, w := range want.words {
					if !strings.Contains(out, w) {
						t.Errorf("%s:%d: %s\n  output lacks %q:\n%s", rel, b.Line, line, w, indent(out))
					}
				}
				t.Logf("%s:%d: %s: exit %d", rel, b.Line, line, code)
			}
		}
	}
	if ran < 40 {
		t.Errorf("ran %d commands of the runbooks; they show more than 40", ran)
	}
}

func notRunReason(cmd string) string {
	for _, n := range notRun {
		if n.match.MatchString(cmd) {
			return n.reason
		}
	}
	return ""
}

func expect(cmd string) expectation {
	for _, e := range expectations {
		if e.match.MatchString(cmd) {
			return e
		}
	}
	return expectation{}
}

func indent(s string) string {
	if len(s) > 4000 {
		s = s[:2000] + "\n…\n" + s[len(s)-2000:]
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func password(u *url.URL) string {
	p, _ := u.User.Password()
	return p
}

// writeRunbookConfig writes the configuration the commands run with: the stack's servers, the
// scratch databases, ZooKeeper's record of their replication paths only (the stack's tree is
// shared), the copied migrations, a daily backup job for freshness and a retention for prune.
func writeRunbookConfig(t *testing.T, env *devstack.Env, s *substitutions, migrations string) {
	t.Helper()
	base := fmt.Sprintf(`[storage]
url = "file://%s"
[postgres]
dsn = %q
%s%sroots = ["/clickhouse/tables/01/%s"]
[migrate]
clickhouse_dir = %q
postgres_dir = %q
clickhouse_database = %q
[web]
listen = "127.0.0.1:0"
[drill]
timeout = "10m"
[retention]
keep_last = 10
min_age = "0s"
[[jobs]]
name = "nightly"
schedule = "0 3 * * *"
action = "backup"
catch_up = "none"
`, s.repo, pgDSNFor(t, env, s.pgDB), env.ClickHouseTOML(s.chDB), env.ZooKeeperTOML(), s.chDB,
		filepath.Join(migrations, "clickhouse"), filepath.Join(migrations, "postgres"), s.chDB)
	if err := os.WriteFile(s.cfg, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
}

func pgDSNFor(t *testing.T, env *devstack.Env, db string) string {
	t.Helper()
	u, err := url.Parse(env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

// newestFullSet is the id `tracevault list --json` gives the newest complete full set, which
// the docs' ID stands for.
func newestFullSet(t *testing.T, run func(string) (int, string)) string {
	t.Helper()
	code, out := run("tracevault --json list")
	var rows []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		FullSet bool   `json:"full_set"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("tracevault --json list: exit %d: %s", code, out)
	}
	for _, r := range rows {
		if r.Status == "complete" && r.FullSet {
			return r.ID
		}
	}
	t.Fatalf("no complete full set for ID yet: %s", out)
	return ""
}

// handBlock is the manual's PostgreSQL restore with psql alone (docs/design.md).
func handBlock(b doccmd.Block) bool { return strings.HasPrefix(b.Text, "obj() {") }

// runHandRestore runs the by-hand restore as one script, as written, with $REPO, $ID and $DB
// set, and checks it restored every table's rows.
func runHandRestore(t *testing.T, b doccmd.Block, s *substitutions, run func(string) (int, string)) {
	t.Helper()
	db := s.newPG()
	script := fmt.Sprintf("set -e -o pipefail\nID=%s DB=%s\n%s", s.id(), db, b.Text)
	code, out := run(script)
	if code != 0 {
		t.Errorf("%s:%d: the by-hand restore exited %d:\n%s", b.Doc, b.Line, code, indent(out))
		return
	}
	for _, table := range []string{"users", "projects", "api_keys", "audit_logs"} {
		q := "SELECT count(*) FROM " + table
		_, want := run(fmt.Sprintf("psql -X -At -d %s -c %q", s.pgDB, q))
		_, got := run(fmt.Sprintf("psql -X -At -d %s -c %q", db, q))
		if got != want {
			t.Errorf("%s:%d: by hand, %s holds %q rows, the source %q", b.Doc, b.Line, table, got, want)
		}
	}
	t.Logf("%s:%d: the by-hand restore into %s: exit 0", b.Doc, b.Line, db)
}

// dropScratch drops the databases the runbooks' restores and migrate-cluster created.
func dropScratch(t *testing.T, env *devstack.Env, chDB string, pgNames []string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = env.CHExec(0, fmt.Sprintf("DROP DATABASE IF EXISTS %s_restored ON CLUSTER %s", chDB, env.CHCluster))
	_, _ = env.ModernQuery("DROP DATABASE IF EXISTS " + chDB + " SYNC")
	if conn, _, err := zk.Connect([]string{env.ZK}, 10*time.Second, zk.WithLogInfo(false)); err == nil {
		removeTree(t, conn, "/clickhouse/tables/01/"+chDB+"_restored")
		conn.Close()
	}
	c, err := pgx.Connect(ctx, env.PGDSN)
	if err != nil {
		t.Logf("drop the scratch databases: %v", err)
		return
	}
	defer c.Close(ctx)
	for _, n := range pgNames {
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

// loseCluster is the disaster `restore --cluster` recovers from, for the test's database only:
// dropped on every replica, and its tables' replication metadata gone from ZooKeeper.
func loseCluster(t *testing.T, env *devstack.Env, s *substitutions) {
	t.Helper()
	if err := env.CHExec(0, fmt.Sprintf("DROP DATABASE %s ON CLUSTER %s", s.chDB, env.CHCluster)); err != nil {
		t.Fatal(err)
	}
	conn, _, err := zk.Connect([]string{env.ZK}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	removeTree(t, conn, "/clickhouse/tables/01/"+s.chDB)
}

func removeTree(t *testing.T, conn *zk.Conn, p string) {
	t.Helper()
	children, _, err := conn.Children(p)
	if errors.Is(err, zk.ErrNoNode) {
		return
	} else if err != nil {
		t.Fatalf("list %s: %v", p, err)
	}
	for _, c := range children {
		removeTree(t, conn, path.Join(p, c))
	}
	if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("delete %s: %v", p, err)
	}
}

// writeTarget writes dir/target.toml, the runbooks' migrate-cluster target: ch-modern, one
// server, with a repository of its own in dir.
func writeTarget(t *testing.T, env *devstack.Env, dir, db string) {
	t.Helper()
	body := fmt.Sprintf("[storage]\nurl = \"file://%s/target-repo\"\n[clickhouse]\naddresses = [%q]\nhttp_addresses = [%q]\ndatabases = [%q]\n",
		dir, env.CHModernNative, env.CHModernHTTP, db)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "target.toml"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

var servingOn = regexp.MustCompile(`msg=serving listen=(\S+)`)

// serveUntilReady starts the daemon as the README shows it, waits for the line that says where
// it serves, reads its page and /readyz there, then stops it as systemd and Kubernetes do
// (SIGTERM). Its output is the log, then what the page and /readyz answered.
func serveUntilReady(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), "serve.log")) // read while the daemon writes it
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	log := func() string {
		b, _ := os.ReadFile(logFile.Name())
		return string(b)
	}
	out := ""
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		m := servingOn.FindStringSubmatch(log())
		if m == nil {
			continue
		}
		page, ready := httpGet("http://"+m[1]+"/"), httpGet("http://"+m[1]+"/readyz")
		if !strings.Contains(ready, "200") {
			continue
		}
		out = "\n/: " + page + "\n/readyz: " + ready
		break
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), log() + out
	} else if err != nil {
		t.Fatalf("serve: %v", err)
	}
	return 0, log() + out
}

// httpGet is a response's status and body, or the error, as text.
func httpGet(u string) string {
	resp, err := http.Get(u)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.Status + " " + string(body)
}
