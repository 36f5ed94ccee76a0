package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/tracevault/tracevault/demo"
	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// progressFixture seeds a scratch ClickHouse database and writes a configuration backing it up
// into a fresh file repository through the given HTTP addresses (the replicas' own by default).
type progressFixture struct {
	env *devstack.Env
	db  string
	dir string
}

func newProgressFixture(t *testing.T) *progressFixture {
	t.Helper()
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := &progressFixture{env: env, db: devstack.ScratchName("it_progress"), dir: t.TempDir()}
	srv, err := clickhouse.Dial(ctx, env.CHNative[0], clickhouse.ConnOptions{User: "default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", f.db, env.CHCluster))
		srv.Close()
	})
	if _, err := demo.Seed(ctx, demo.Options{ClickHouse: env.CHNative, ClickHouseHTTP: env.CHHTTP, Cluster: env.CHCluster, Database: f.db, Traces: 60, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	return f
}

// config writes NAME.toml for the repository f.dir/NAME.
func (f *progressFixture) config(t *testing.T, name string, httpAddrs []string) (cfg, repo string) {
	t.Helper()
	p, repo := filepath.Join(f.dir, name+".toml"), filepath.Join(f.dir, name)
	toml := fmt.Sprintf("[storage]\nurl = \"file://%s\"\n[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\ndatabases = [%q]\n",
		repo, quoteList(f.env.CHNative), quoteList(httpAddrs), f.env.CHCluster, f.db)
	if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, repo
}

// tracevaultProcess runs this test binary as tracevault (see TestMain).
func tracevaultProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "TRACEVAULT_TEST_MAIN=1")
	return cmd
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// TestProgress runs backups of a seeded database three ways and checks what a person or a
// script sees: on a terminal the bar names the tables and partitions and ends at 100 %; without
// one, log lines; with --json, stderr is JSON lines whose last is the result. Then a restore and
// a drill, and a backup interrupted by SIGINT.
func TestProgress(t *testing.T) {
	f := newProgressFixture(t)
	cfg, repo := f.config(t, "repo", f.env.CHHTTP)

	t.Run("terminal", func(t *testing.T) {
		cmd := tracevaultProcess("--config", cfg, "backup")
		ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 240})
		if err != nil {
			t.Fatal(err)
		}
		defer ptmx.Close()
		var out bytes.Buffer
		_, _ = io.Copy(&out, ptmx) // ends with EIO once the process is gone
		if err := cmd.Wait(); err != nil {
			t.Fatalf("backup on a terminal: %v\n%s", err, out.String())
		}
		screen := ansi.ReplaceAllString(out.String(), "")
		m := newestSnapshot(t, repo)
		last := m.Objects[len(m.Objects)-1]
		for _, want := range []string{"backup ", last.Unit().String(), "100 %", " rows", "ETA", "snapshot " + m.ID + " complete"} {
			if !strings.Contains(screen, want) {
				t.Errorf("the terminal shows no %q:\n%s", want, screen)
			}
		}
	})

	t.Run("log lines", func(t *testing.T) {
		code, out, errs := runCLI("--config", cfg, "--progress-interval", "5ms", "backup")
		if code != 0 {
			t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
		}
		if !strings.Contains(errs, "msg=progress ") || !strings.Contains(errs, "table="+f.db+".") {
			t.Errorf("no periodic progress log line naming a table:\n%s", errs)
		}
		done := regexp.MustCompile(`msg="progress done" op=backup bytes=([1-9][0-9]*) rows=([1-9][0-9]*)`)
		if !done.MatchString(errs) {
			t.Errorf("no final progress line with bytes and rows:\n%s", errs)
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, errs := runCLI("--config", cfg, "--json", "--progress-interval", "5ms", "backup")
		if code != 0 {
			t.Fatalf("backup --json: exit %d\n%s%s", code, out, errs)
		}
		var m store.Manifest
		if err := json.Unmarshal([]byte(out), &m); err != nil || m.Status != store.StatusComplete {
			t.Fatalf("stdout is not the complete manifest (%v):\n%s", err, out)
		}
		events := jsonLines(t, errs)
		progressEvents := 0
		for _, e := range events[:len(events)-1] {
			if e["type"] == "result" {
				t.Errorf("a result event before the last line: %v", e)
			}
			if e["type"] == "progress" {
				progressEvents++
			}
		}
		if progressEvents == 0 {
			t.Errorf("no progress event:\n%s", errs)
		}
		res := events[len(events)-1]
		if res["type"] != "result" || res["exit_code"] != 0.0 || res["bytes"].(float64) <= 0 || res["rows"].(float64) <= 0 {
			t.Errorf("the last line is not a successful result with bytes and rows: %v", res)
		}
	})

	t.Run("restore and drill", func(t *testing.T) { testRestoreProgress(t, f, cfg, repo) })
	t.Run("interrupt", func(t *testing.T) { testProgressInterrupt(t, f) })
}

// testRestoreProgress: a ClickHouse restore and a drill with --json report, in their result
// events, the bytes and rows of the partitions they read back, and their progress events name
// them.
func testRestoreProgress(t *testing.T, f *progressFixture, cfg, repo string) {
	if code, out, errs := runCLI("--config", cfg, "backup"); code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	restored := f.db + "_r"
	t.Cleanup(func() {
		srv, err := clickhouse.Dial(context.Background(), f.env.CHNative[0], clickhouse.ConnOptions{User: "default"})
		if err == nil {
			for _, db := range []string{restored, f.db + "_drill"} {
				_ = srv.Conn.Exec(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, f.env.CHCluster))
			}
			srv.Close()
		}
	})
	m := newestSnapshot(t, repo)
	var bytes, rows int64
	for _, o := range m.Objects {
		bytes += o.RawSize
		rows += o.Rows
	}
	for _, args := range [][]string{
		{"restore", "latest", "--only", "clickhouse", "--database-map", f.db + ":" + restored},
		{"drill"},
	} {
		code, out, errs := runCLI(append([]string{"--config", cfg, "--json", "--progress-interval", "5ms"}, args...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", args[0], code, out, errs)
		}
		events := jsonLines(t, errs)
		named := false
		for _, e := range events {
			if cur, ok := e["current"].(map[string]any); ok && strings.HasPrefix(fmt.Sprint(cur["table"]), f.db+".") && cur["partition"] != nil {
				named = true
			}
		}
		if !named {
			t.Errorf("%s: no progress event names a table and partition:\n%s", args[0], errs)
		}
		res := events[len(events)-1]
		if res["type"] != "result" || res["exit_code"] != 0.0 || res["bytes"] != float64(bytes) || res["rows"] != float64(rows) || res["expected_bytes"] != float64(bytes) {
			t.Errorf("%s: result %v; want exit 0 with the snapshot's %d bytes and %d rows read and expected", args[0], res, bytes, rows)
		}
	}
}

// testProgressInterrupt sends SIGINT while a backup into a new repository is streaming its
// third partition (an HTTP proxy in front of the replicas holds it): the process exits 1 with a
// summary of what was done and what was not, and the repository lists no complete snapshot.
func testProgressInterrupt(t *testing.T, f *progressFixture) {
	var exports atomic.Int32
	held := make(chan struct{}, 1)
	var proxies []string
	for _, addr := range f.env.CHHTTP {
		target, _ := url.Parse("http://" + addr)
		rp := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if strings.Contains(string(body), "FORMAT Native") && exports.Add(1) > 2 {
				select {
				case held <- struct{}{}:
				default:
				}
				<-r.Context().Done() // until the backup gives up on it
				return
			}
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		proxies = append(proxies, strings.TrimPrefix(srv.URL, "http://"))
	}
	cfg, _ := f.config(t, "proxied", proxies)

	cmd := tracevaultProcess("--config", cfg, "backup")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the backup never reached its third partition\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitFailed {
		t.Fatalf("interrupted backup: %v, want exit %d\n%s%s", err, exitFailed, stdout.String(), stderr.String())
	}
	errs := stderr.String()
	// Partitions export two at a time ([clickhouse] parallel), so when the third is held the
	// second may still be in flight and be interrupted with it.
	summary := regexp.MustCompile(`backup interrupted after [0-9.]+s: done [12] of [0-9]+ planned units, .* rows; unfinished: clickhouse ` + regexp.QuoteMeta(f.db) + `\.`)
	if !summary.MatchString(errs) {
		t.Errorf("no summary of what was done:\n%s", errs)
	}
	if !strings.Contains(errs, "It is not listed as complete") || !strings.Contains(errs, "not finished: clickhouse") {
		t.Errorf("the summary does not say what was not done:\n%s", errs)
	}
	code, out, lerrs := runCLI("--config", cfg, "--json", "list")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, lerrs)
	}
	var list []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Objects int    `json:"objects"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(list) != 1 || list[0].Status != store.StatusPartial {
		t.Fatalf("the repository should list one partial snapshot, no complete one: %s", out)
	}
}

func newestSnapshot(t *testing.T, repoDir string) *store.Manifest {
	t.Helper()
	r, err := store.Open(context.Background(), store.Options{URL: "file://" + repoDir})
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.Snapshot(context.Background(), "latest")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// jsonLines parses every line of s as one JSON object.
func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stderr line is not JSON (%v): %s", err, sc.Text())
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatal("stderr is empty")
	}
	return out
}
