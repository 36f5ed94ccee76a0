package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// clickhouseMigrate measures `migrate-cluster` from the 18.16 cluster to ch-modern (Langfuse
// v4's upgrade) as issue 30 asks: the cutover's downtime as a ratio to a full copy. The
// baseline is the first pass, which copies everything; the measured side is a cutover after a
// first pass and one changed partition (what changed since the last pass while Langfuse ran),
// the proof included, which is the whole of the downtime. The cluster's local tables are left
// out: each replica holds its own rows, which a move to one server cannot merge.
func (b *bench) clickhouseMigrate(ctx context.Context, scale int, d *chData) error {
	if d.w.atomic || b.env.CHModernNative == "" {
		return nil // the move is from the cluster, onto ch-modern
	}
	modern, err := modernWorld(b.env)
	if err != nil {
		return err
	}
	var local []string
	for _, t := range d.tables {
		if !d.replicated[t] {
			local = append(local, fmt.Sprintf("%q", d.db+"."+t))
		}
	}
	target := filepath.Join(b.o.Work, "migrate-target.toml")
	body := fmt.Sprintf("[storage]\nurl = %q\n[clickhouse]\naddresses = [%q]\nhttp_addresses = [%q]\n",
		"file://"+filepath.Join(b.o.Work, "migrate-target-repo"), b.env.CHModernNative, b.env.CHModernHTTP)
	if err := os.WriteFile(target, []byte(body), 0o600); err != nil {
		return err
	}
	var source string
	// reset gives each run a new source repository (so the first pass backs everything up) and
	// an empty target.
	reset := func(ctx context.Context) error {
		if err := modern.drop(ctx, d.db); err != nil {
			return err
		}
		if err := os.Remove(target + ".migrate-state.json"); err != nil && !os.IsNotExist(err) {
			return err
		}
		if source != "" {
			b.dropRepo(source)
		}
		if source, err = b.config(d.w, "file", "logical", d.db, ""); err != nil {
			return err
		}
		return excludeTables(source, local)
	}
	// pass runs one pass and returns the time the run reports (for a cutover: the downtime, its
	// backup of the source included).
	pass := func(ctx context.Context, flags ...string) (sample, time.Duration, error) {
		s, out, err := command(ctx, nil, b.o.Tracevault, append([]string{"--config", source, "migrate-cluster", "--to", target, "--json"}, flags...)...)
		if err != nil {
			return s, 0, err
		}
		var rep struct {
			Took   string `json:"took"`
			Behind int    `json:"behind_partitions"`
			Proof  *struct {
				Rows bool `json:"rows_equal"`
			} `json:"proof"`
		}
		if err := json.Unmarshal(out, &rep); err != nil {
			return s, 0, fmt.Errorf("migrate-cluster output: %w", err)
		}
		// The cutover must move the changed partition, and nothing else changed.
		if len(flags) > 0 && (rep.Proof == nil || !rep.Proof.Rows || rep.Behind != 1) {
			return s, 0, fmt.Errorf("%w: the cutover moved %d partitions (want the changed one) or proved no equal rows: %s", errAssertion, rep.Behind, out)
		}
		took, err := time.ParseDuration(rep.Took)
		return s, took, err
	}
	ch := clusterChange(b.env, d)
	var reported []float64
	g := group{step: "clickhouse migrate-cluster to ch-modern", scale: scale, target: atMost(0.5),
		data: fmt.Sprintf("%s; to ch-modern (one server); %s", d, ch.what)}
	g.sides = []side{{
		name: "the first pass (a full copy)", baseline: true,
		prep: func(ctx context.Context, _ int) error { return reset(ctx) },
		run: func(ctx context.Context, _ int) (sample, error) {
			s, _, err := pass(ctx)
			return s, err
		},
	}, {
		name: "cutover after a pass and " + ch.what,
		prep: func(ctx context.Context, run int) error {
			if err := reset(ctx); err != nil {
				return err
			}
			if _, _, err := pass(ctx); err != nil {
				return fmt.Errorf("first pass: %w", err)
			}
			return ch.do(ctx, run)
		},
		args: func(int) []string {
			return []string{"--config", source, "migrate-cluster", "--to", target, "--cutover", "--json"}
		},
		run: func(ctx context.Context, _ int) (sample, error) {
			s, downtime, err := pass(ctx, "--cutover")
			reported = append(reported, round(downtime.Seconds(), 3))
			return s, err
		},
	}}
	g.after = func(r *result, _, _ []sample) {
		r.BaselineName = "migrate-cluster's first pass: a full copy"
		r.Extra = map[string]any{"downtime_reported_seconds": reported, "changed_partition": ch.table + "/" + ch.partition}
	}
	_, err = b.runGroup(ctx, g)
	_ = modern.drop(context.Background(), d.db)
	if source != "" {
		b.dropRepo(source)
	}
	return err
}

// excludeTables adds exclude_tables to a configuration config wrote.
func excludeTables(cfg string, tables []string) error {
	if len(tables) == 0 {
		return nil
	}
	body, err := os.ReadFile(cfg)
	if err != nil {
		return err
	}
	s := strings.Replace(string(body), "\n[clickhouse]\n", "\n[clickhouse]\nexclude_tables = ["+strings.Join(tables, ", ")+"]\n", 1)
	return os.WriteFile(cfg, []byte(s), 0o600)
}
