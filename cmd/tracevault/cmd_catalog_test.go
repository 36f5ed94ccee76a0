package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// catalogConfig writes a configuration for a filesystem repository at dir and returns its path.
func catalogConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tracevault.toml")
	doc := fmt.Sprintf("[storage]\nurl = \"file://%s\"\n[retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nmin_age = \"0s\"\n%s", dir, extra)
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// seedRepository commits snapshots with the given statuses, one object each, oldest first.
func seedRepository(t *testing.T, dir string, statuses ...string) []string {
	t.Helper()
	ctx := context.Background()
	r, err := store.Open(ctx, store.Options{URL: "file://" + dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i, status := range statuses {
		ref, _, err := r.PutObject(ctx, "", strings.NewReader(fmt.Sprint("object ", i)))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Date(2026, 11, 20+i, 3, 0, 0, 0, time.UTC)
		m := &store.Manifest{ID: start.Format("20060102T150405Z") + fmt.Sprintf("-00000%d", i), Start: start, Status: status,
			Objects: []store.ManifestObject{{ObjectRef: ref, Source: "postgres", Table: "users"}}}
		if status == store.StatusPartial {
			m.Error = "clickhouse: replica ch2 unreachable"
		}
		if err := r.CommitManifest(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

type cliStep struct {
	args []string
	code int
	out  []string // fragments of stdout+stderr
}

func runSteps(t *testing.T, cfg string, steps []cliStep) {
	t.Helper()
	for _, s := range steps {
		code, out, errOut := runCLI(append([]string{"--config", cfg}, s.args...)...)
		all := out + errOut
		if strings.Contains(all, "panic:") {
			t.Fatalf("%v panicked:\n%s", s.args, all)
		}
		if code != s.code {
			t.Errorf("%v: exit %d, want %d\n%s", s.args, code, s.code, all)
		}
		for _, want := range s.out {
			if !strings.Contains(all, want) {
				t.Errorf("%v: output lacks %q:\n%s", s.args, want, all)
			}
		}
	}
}

func TestCatalogCommandsOnDamagedRepository(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "repo")
	ids := seedRepository(t, dir, store.StatusComplete, store.StatusComplete)
	// Random bytes where a manifest should be, and a manifest whose id climbs out of the repository.
	_ = os.WriteFile(filepath.Join(dir, "snapshots", "20261101T000000Z-aaaaaa.json"), []byte("\x00\x01 not zstd"), 0o600)
	_ = os.WriteFile(filepath.Join(parent, "x.json"), []byte("sentinel"), 0o600)
	evil := `{"id":"../../x","status":"complete","objects":[{"id":"a"}]}`
	r, err := store.Open(context.Background(), store.Options{URL: "file://" + dir, MustExist: true, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.PutJSON(context.Background(), "snapshots/evil.json", json.RawMessage(evil)); err != nil {
		t.Fatal(err)
	}
	cfg := catalogConfig(t, dir, "")
	runSteps(t, cfg, []cliStep{
		{[]string{"list"}, 0, []string{ids[0], ids[1], "DAMAGED  snapshots/20261101T000000Z-aaaaaa.json", "DAMAGED  snapshots/evil.json", "invalid id", "delete --damaged evil.json"}},
		{[]string{"--json", "list"}, 0, []string{`"status": "damaged"`, `"manifest": "snapshots/evil.json"`, `"id": "` + ids[1]}},
		{[]string{"show", "latest"}, 0, []string{ids[1]}},
		{[]string{"verify", "--all", "--read-data"}, 1, []string{"BAD  snapshots/evil.json (damaged manifest)", "fix: ", "verified 2 snapshots, 2 objects", "2 problems"}},
		{[]string{"prune"}, 0, []string{"forget " + ids[0], "no object was deleted"}},
		{[]string{"delete", ""}, 2, []string{"empty"}},
		{[]string{"delete", "--damaged", ids[1] + ".json"}, 1, []string{"no damaged manifest has that name"}},
		{[]string{"delete", "--damaged", "evil.json"}, 0, []string{"deleted damaged manifest evil.json"}},
		{[]string{"delete", "--damaged", "snapshots/20261101T000000Z-aaaaaa.json"}, 0, nil},
		{[]string{"verify", "--all"}, 0, []string{"verified 1 snapshots, 1 objects", "0 problems"}},
		{[]string{"--json", "verify", "--all"}, 0, []string{`"problems": []`}},
		{[]string{"verify", "--all", "--read-data"}, 0, []string{"of data decompressed and checked: 0 problems"}},
		{[]string{"prune", "--dry-run"}, 0, []string{"would forget 0"}},
		{[]string{"prune"}, 0, []string{"removed 1 objects", "1 objects remain"}},
	})
	if b, err := os.ReadFile(filepath.Join(parent, "x.json")); err != nil || string(b) != "sentinel" {
		t.Errorf("a file outside the repository was touched: %q %v", b, err)
	}
}

func TestOnlyInitAndBackupCreateARepository(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "typo")
	cfg := catalogConfig(t, dir, "")
	var steps []cliStep
	for _, args := range [][]string{{"list"}, {"show", "latest"}, {"verify", "--all"}, {"prune"}, {"delete", "20261124T031500Z-1a2b3c"}, {"restore", "latest", "--only", "postgres"}} {
		steps = append(steps, cliStep{args, 1, []string{"no repository there", "tracevault init"}})
	}
	runSteps(t, cfg, steps)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a read-only command created %s: %v", dir, err)
	}
	runSteps(t, cfg, []cliStep{
		{[]string{"init"}, 0, []string{"created repository file://" + dir}},
		{[]string{"init"}, 1, []string{"already a repository"}},
		{[]string{"list"}, 0, []string{"no snapshots"}},
	})
}

func TestLatestWithOnlyPartialSnapshotsNamesThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	ids := seedRepository(t, dir, store.StatusPartial)
	runSteps(t, catalogConfig(t, dir, ""), []cliStep{
		{[]string{"show", "latest"}, 1, []string{ids[0], "partial", "restore it by id"}},
		{[]string{"restore", "latest", "--only", "postgres"}, 1, []string{ids[0], "partial", "--allow-partial"}},
	})
}

func TestRetentionKeepingNothingIsAConfigurationError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	seedRepository(t, dir, store.StatusComplete)
	cfg := filepath.Join(t.TempDir(), "t.toml")
	_ = os.WriteFile(cfg, []byte(fmt.Sprintf("[storage]\nurl = \"file://%s\"\n[retention]\nkeep_last = 0\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n", dir)), 0o600)
	runSteps(t, cfg, []cliStep{
		{[]string{"prune"}, 2, []string{"retention.keep_last", "forget every snapshot"}},
		{[]string{"list"}, 2, nil},
	})
}

// TestVerifySample checks --sample's validation and output: a usage error without --read-data
// naming the fix, the bucket read in text and JSON, a rotation that covers every object, and a
// damaged object named by the run that reads it.
func TestVerifySample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	seedRepository(t, dir, store.StatusComplete, store.StatusComplete, store.StatusComplete, store.StatusComplete)
	cfg := catalogConfig(t, dir, "")
	runSteps(t, cfg, []cliStep{
		{[]string{"verify", "--all", "--sample", "10%"}, 2, []string{"--sample chooses which objects --read-data reads: add --read-data"}},
		{[]string{"verify", "--all", "--read-data", "--sample", "0%"}, 2, []string{"--sample", "0 < P <= 100"}},
		{[]string{"verify", "--all", "--read-data", "--sample", "3/2"}, 2, []string{"--sample", "1 <= N <= M"}},
		{[]string{"verify", "--all", "--read-data", "--sample", "1/1"}, 0, []string{"verified 4 snapshots, 4 objects (read 4: bucket 1 of 1)", "0 problems"}},
	})
	read := 0
	for run := 1; run <= 2; run++ {
		code, out, errOut := runCLI("--config", cfg, "--json", "verify", "--all", "--read-data", "--sample", "50%")
		var rep store.VerifyReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 {
			t.Fatalf("run %d: exit %d, %v\n%s%s", run, code, err, out, errOut)
		}
		if rep.Sample == nil || rep.Sample.Bucket != run || rep.Sample.Buckets != 2 || !rep.Sample.Rotating || rep.Objects != 4 {
			t.Errorf("run %d: %+v sample %+v; want bucket %d of 2 of all 4 objects", run, rep, rep.Sample, run)
		}
		read += rep.ObjectsRead
	}
	if read != 4 {
		t.Errorf("two runs at 50%% read %d objects; want each of the 4 once", read)
	}
	runSteps(t, cfg, []cliStep{{[]string{"verify", "--all", "--read-data", "--sample", "50%"}, 0, []string{"bucket 1 of 2"}}})

	var bad string
	_ = filepath.WalkDir(filepath.Join(dir, "data"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && bad == "" {
			bad = p
		}
		return nil
	})
	raw, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(bad, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	name := filepath.ToSlash(strings.TrimPrefix(bad, dir+string(filepath.Separator)))
	runSteps(t, cfg, []cliStep{
		{[]string{"verify", "--all", "--sample", "1/1", "--read-data"}, 1, []string{"BAD  " + name, "(postgres users)", "1 problems"}},
	})
}
