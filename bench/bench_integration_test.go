package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestMain lets the test binary stand in for the driver's own binary: the pipeline step runs
// its sides as `<self> -child ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "-child" {
		if err := runChild(context.Background(), os.Args[2], os.Args[3:]); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs the whole driver once on tiny data, without targets: every step must run on
// both sides against the real stack, be measured, and land in RESULTS.md and results.json.
func TestSmoke(t *testing.T) {
	devstack.RequireModern(t)
	ctx := context.Background()
	bin := buildTracevault(t)
	out := t.TempDir()
	o := options{Traces: 200, PGScale: 1, Months: 3, Runs: 1, Scales: []int{1}, Out: out, Work: t.TempDir(), Tracevault: bin, Cleanup: true}
	rep, err := run(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{ // step prefix → has a baseline
		"clickhouse backup logical, tracevault → file":                                true,
		"clickhouse backup logical, tracevault → azurite":                             true,
		"clickhouse backup freeze, tracevault → file":                                 true,
		"clickhouse backup freeze, tracevault → azurite":                              true,
		"clickhouse restore, tracevault, logical":                                     true,
		"clickhouse restore, tracevault, freeze":                                      true,
		"clickhouse incremental, 1 changed partition, tracevault → file, 1 partition": true,
		"clickhouse incremental, 1 changed partition, tracevault → file, nothing":     false, // the per-run cost
		"clickhouse replica rebuild":                                                  true,
		"postgres backup, pgbench":                                                    true,
		"postgres restore, pgbench":                                                   true,
		"postgres backup, demo":                                                       true,
		"postgres restore, demo":                                                      true,
		"repository pipeline":                                                         true,
		// Langfuse v4's world on ch-modern, with patch parts.
		"modern clickhouse backup logical, tracevault → file":                                true,
		"modern clickhouse backup logical, tracevault → azurite":                             true,
		"modern clickhouse restore, tracevault, logical":                                     true,
		"modern clickhouse incremental, 1 changed partition, tracevault → file, 1 partition": true,
		"modern clickhouse incremental, 1 changed partition, tracevault → file, nothing":     false,
	}
	for prefix, hasBaseline := range want {
		found := false
		for _, r := range rep.Results {
			if !strings.HasPrefix(r.Step, prefix) {
				continue
			}
			found = true
			if r.Tracevault.Seconds <= 0 || r.Tracevault.PeakRSSMiB <= 0 {
				t.Errorf("%s: not measured: %+v", r.Step, r.Tracevault)
			}
			if hasBaseline && (r.Baseline == nil || r.Baseline.Seconds <= 0 || r.Ratio <= 0) {
				t.Errorf("%s: no baseline figure: %+v", r.Step, r.Baseline)
			}
			if !hasBaseline && r.Baseline != nil {
				t.Errorf("%s: a baseline for a side that has none: %+v", r.Step, r.Baseline)
			}
			if r.Met != nil {
				t.Errorf("%s: judged against a target in a smoke run", r.Step)
			}
		}
		if !found {
			t.Errorf("no result for %q", prefix)
		}
	}
	for _, n := range rep.Notes {
		t.Errorf("note: %s", n) // e.g. an incremental backup that sent more than the changed partition
	}
	md, err := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	if err != nil || !strings.Contains(string(md), "| clickhouse backup logical, tracevault → file | 1× |") {
		t.Errorf("RESULTS.md lacks the steps table (%v):\n%s", err, md)
	}
	var back report
	if b, err := os.ReadFile(filepath.Join(out, "results.json")); err != nil || json.Unmarshal(b, &back) != nil || len(back.Results) != len(rep.Results) {
		t.Errorf("results.json does not hold the %d results (%v)", len(rep.Results), err)
	}
}

// buildTracevault builds the binary the bench measures, into a temporary directory.
func buildTracevault(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tracevault")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/tracevault/tracevault/cmd/tracevault").CombinedOutput(); err != nil {
		t.Fatalf("build tracevault: %v\n%s", err, out)
	}
	return bin
}

// TestPostgresWorld: -world postgres measures the PostgreSQL steps alone and seeds no
// ClickHouse data (at 10× the ClickHouse seeds take hours; PostgreSQL's take minutes).
func TestPostgresWorld(t *testing.T) {
	devstack.Require(t)
	ctx := context.Background()
	bin := buildTracevault(t)
	o := options{World: "postgres", Traces: 200, PGScale: 1, Months: 3, Runs: 1, Scales: []int{1}, Out: t.TempDir(), Work: t.TempDir(), Tracevault: bin, Cleanup: true}
	rep, err := run(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) == 0 {
		t.Fatal("no results")
	}
	for _, r := range rep.Results {
		if !strings.HasPrefix(r.Step, "postgres ") {
			t.Errorf("-world postgres measured %q", r.Step)
		}
	}
	for _, d := range rep.Data {
		if strings.Contains(d, "ClickHouse") || strings.Contains(d, "traces") {
			t.Errorf("-world postgres seeded ClickHouse data: %s", d)
		}
	}
}

// TestSeedCache: a database is seeded once and reused while its mark matches; a different mark,
// -reseed, or a seed that failed half-way seeds it again.
func TestSeedCache(t *testing.T) {
	env := devstack.RequireModern(t)
	w, err := modernWorld(env)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db := devstack.ScratchName("bench_seedcache")
	t.Cleanup(func() {
		_ = w.setSeedMark(context.Background(), db, "")
		_ = w.drop(context.Background(), db)
	})
	seeds := 0
	fill := func(ctx context.Context) error {
		seeds++
		if err := w.h(0).Exec(ctx, "CREATE DATABASE "+db, nil); err != nil {
			return err
		}
		return w.h(0).Exec(ctx, "CREATE TABLE "+db+".t (x UInt8) ENGINE = Log", nil)
	}
	failing := func(ctx context.Context) error {
		if err := fill(ctx); err != nil {
			return err
		}
		return errors.New("interrupted")
	}
	steps := []struct {
		name   string
		mark   string
		reseed bool
		seed   func(context.Context) error
		seeded bool
	}{
		{"first run seeds", "v1 a", false, fill, true},
		{"same mark reuses", "v1 a", false, fill, false},
		{"another mark seeds", "v1 b", false, fill, true},
		{"-reseed seeds", "v1 b", true, fill, true},
		{"an interrupted seed", "v1 b", true, failing, false},
		{"after an interrupted seed the same mark seeds", "v1 b", false, fill, true},
		{"then reuses", "v1 b", false, fill, false},
	}
	for _, s := range steps {
		before := seeds
		got, err := w.cachedSeed(ctx, db, s.mark, s.reseed, s.seed)
		if (err != nil) != (s.name == "an interrupted seed") {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.seeded || (seeds > before) != (s.seeded || err != nil) {
			t.Errorf("%s: seeded %v (seed called %d times), want %v", s.name, got, seeds-before, s.seeded)
		}
	}
	// A mark left for a database that is gone is not taken for the database.
	if err := w.drop(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got, err := w.cachedSeed(ctx, db, "v1 b", false, fill); err != nil || !got {
		t.Errorf("dropped database: seeded %v, %v; want it seeded again", got, err)
	}
}
