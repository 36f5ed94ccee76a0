package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
)

// target is the most a ratio (tracevault / baseline) may be.
type target struct {
	Max float64 `json:"max_ratio"`
}

func atMost(v float64) target { return target{Max: v} }

// result is one tracevault side of one step at one scale.
type result struct {
	Step         string         `json:"step"`
	Scale        int            `json:"scale"`
	Data         string         `json:"data"`
	Tracevault   summary        `json:"tracevault"`
	BaselineName string         `json:"baseline_name,omitempty"`
	Baseline     *summary       `json:"baseline,omitempty"`
	Ratio        float64        `json:"ratio,omitempty"` // tracevault / baseline median time
	Target       target         `json:"target"`
	Met          *bool          `json:"met,omitempty"` // nil without targets
	Limit        string         `json:"limit"`         // what limits the tracevault side on this machine
	Profile      []string       `json:"profile,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
}

// growth is a tracevault side at the largest scale against the smallest.
type growth struct {
	Step      string  `json:"step"`
	Factor    int     `json:"factor"`
	TimeRatio float64 `json:"time_ratio"` // target 0.9..1.1 x factor
	RSSRatio  float64 `json:"rss_ratio"`  // target < 1.2
	PeakRSS   float64 `json:"peak_rss_mib"`
	Met       *bool   `json:"met,omitempty"`
}

type report struct {
	Generated time.Time `json:"generated"`
	Machine   []string  `json:"machine"`
	Options   struct {
		Traces  int    `json:"traces_1x"`
		PGScale int    `json:"pgbench_scale_1x"`
		Months  int    `json:"months"`
		Runs    int    `json:"runs"`
		Scales  []int  `json:"scales"`
		World   string `json:"world,omitempty"`
		Seed    uint64 `json:"seed,omitempty"`
	} `json:"options"`
	Data    []string  `json:"data"`
	Results []*result `json:"results"`
	Growth  []*growth `json:"growth"`
	Notes   []string  `json:"notes,omitempty"`
}

const rssLimitMiB = 256

// linearBand is how far from linear a step's time may grow with its data (issue 34: 8.5–11.5×
// for 10× the data).
const linearBand = 0.15

func newReport(o options, m []string) *report {
	r := &report{Generated: time.Now().UTC().Truncate(time.Second), Machine: m}
	r.Options.Traces, r.Options.PGScale, r.Options.Months, r.Options.Runs, r.Options.Scales = o.Traces, o.PGScale, o.Months, o.Runs, o.Scales
	r.Options.World, r.Options.Seed = o.World, o.Seed
	return r
}

// finish computes the ratios, judges the targets (when asked) and the growth from the smallest
// to the largest scale.
func (r *report) finish(targets bool) {
	judge := func(ok bool) *bool {
		if !targets {
			return nil
		}
		return &ok
	}
	bySide := map[string]map[int]*result{}
	for _, x := range r.Results {
		if x.Baseline != nil && x.Baseline.Seconds > 0 {
			x.Ratio = round(x.Tracevault.Seconds/x.Baseline.Seconds, 2)
			x.Met = judge(x.Ratio <= x.Target.Max && x.Tracevault.PeakRSSMiB < rssLimitMiB)
		}
		x.Limit = limit(x.Tracevault)
		if bySide[x.Step] == nil {
			bySide[x.Step] = map[int]*result{}
		}
		bySide[x.Step][x.Scale] = x
	}
	r.Growth = nil
	for _, x := range r.Results {
		scales := bySide[x.Step]
		lo, hi := r.Options.Scales[0], r.Options.Scales[len(r.Options.Scales)-1]
		if x.Scale != hi || lo == hi || scales[lo] == nil || scales[lo].Tracevault.Seconds == 0 || scales[lo].Tracevault.PeakRSSMiB == 0 {
			continue
		}
		f := hi / lo
		g := &growth{Step: x.Step, Factor: f, TimeRatio: round(x.Tracevault.Seconds/scales[lo].Tracevault.Seconds, 2),
			RSSRatio: round(x.Tracevault.PeakRSSMiB/scales[lo].Tracevault.PeakRSSMiB, 2), PeakRSS: x.Tracevault.PeakRSSMiB}
		if x.Target.Max > 0 { // a side without a target (the incremental's per-run cost) is a figure, not a step
			g.Met = judge(g.TimeRatio >= (1-linearBand)*float64(f) && g.TimeRatio <= (1+linearBand)*float64(f) && g.RSSRatio < 1.2 && g.PeakRSS < rssLimitMiB)
		}
		r.Growth = append(r.Growth, g)
	}
}

// limit names the resource that bounds a side, from the CPU it and the servers used.
func limit(s summary) string {
	cores := runtime.NumCPU()
	switch {
	case s.Busy >= 0.9:
		return fmt.Sprintf("machine CPU: all %d cores busy (tracevault %.2f, ClickHouse servers %.2f cores, the rest other processes)", cores, s.CPUCores, s.ServerCore)
	case s.CPUCores >= 0.85 && s.CPUCores < 1.15:
		return fmt.Sprintf("tracevault CPU: one core busy (%.2f) while the machine had room (%.0f%% busy): one stream at a time", s.CPUCores, s.Busy*100)
	case s.ServerCore >= 0.85:
		return fmt.Sprintf("ClickHouse server CPU (%.2f cores), tracevault %.2f", s.ServerCore, s.CPUCores)
	default:
		return fmt.Sprintf("no CPU saturated (tracevault %.2f, ClickHouse %.2f cores, machine %.0f%% busy): waiting on disk, fsync or the peer", s.CPUCores, s.ServerCore, s.Busy*100)
	}
}

// machine describes where the figures were taken, with the load other users put on it.
func machine(ctx context.Context, env *devstack.Env, worlds []*world) []string {
	var m []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m = append(m, fmt.Sprintf("CPU: %d x %s", runtime.NumCPU(), strings.TrimSpace(strings.SplitN(l, ":", 2)[1])))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		m = append(m, "memory: "+strings.Join(strings.Fields(l)[1:], " "))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m = append(m, "load average at start (1, 5, 15 min): "+strings.Join(strings.Fields(string(b))[:3], ", "))
	}
	if out, err := exec.CommandContext(ctx, "df", "-h", "--output=source,fstype,size,avail", env.Dir).Output(); err == nil {
		m = append(m, "disk: "+strings.Join(strings.Fields(strings.Split(strings.TrimSpace(string(out)), "\n")[1]), " "))
	}
	for _, w := range worlds {
		rows, err := chRows(ctx, w.h(0), "SELECT version()")
		switch {
		case err != nil || len(rows) != 1:
		case w.atomic:
			m = append(m, fmt.Sprintf("ClickHouse %s (ch-modern: chdb's clickhouse-local serving as one server, no Keeper) of internal/devstack, on this machine", rows[0][0]))
		default:
			m = append(m, fmt.Sprintf("ClickHouse %s, %d replicas (cluster %s), PostgreSQL and Azurite of internal/devstack, all on this machine", rows[0][0], len(w.native), w.cluster))
		}
	}
	if len(worlds) == 0 {
		m = append(m, "PostgreSQL of internal/devstack, on this machine")
	}
	m = append(m, "Go "+runtime.Version())
	return m
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "RESULTS.md"), []byte(r.markdown()), 0o644)
}

// rerender writes RESULTS.md and results.json into dir from earlier runs' results.json files,
// merged in order (see merge).
func rerender(paths []string, dir string) error {
	var merged *report
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var r report
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if merged == nil {
			merged = &r
			continue
		}
		merged.merge(&r)
	}
	if merged == nil {
		return errors.New("-render: name at least one results.json")
	}
	return merged.write(dir)
}

// merge adds a later run's rows to r: each replaces r's row of the same step and scale, or
// joins the table. The later run's data, machine and options are recorded beside r's, in a
// note naming its rows, so that every figure still says where it was taken.
func (r *report) merge(later *report) {
	at := func(x *result) string { return fmt.Sprintf("%s at %d×", x.Step, x.Scale) }
	var rows []string
	for _, x := range later.Results {
		rows = append(rows, at(x))
		if i := slices.IndexFunc(r.Results, func(y *result) bool { return y.Step == x.Step && y.Scale == x.Scale }); i >= 0 {
			r.Results[i] = x
			continue
		}
		r.Results = append(r.Results, x)
	}
	for _, s := range later.Options.Scales {
		if !slices.Contains(r.Options.Scales, s) {
			r.Options.Scales = append(r.Options.Scales, s)
		}
	}
	slices.Sort(r.Options.Scales)
	when := later.Generated.Format("2006-01-02 15:04 UTC")
	for _, d := range later.Data {
		r.Data = append(r.Data, "run of "+when+": "+d)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("%s measured in a later run, on %s (%d runs each; machine: %s); every other row is from the run of %s.",
		strings.Join(rows, "; "), when, later.Options.Runs, strings.Join(later.Machine, "; "), r.Generated.Format("2006-01-02 15:04 UTC")))
	for _, n := range later.Notes {
		r.Notes = append(r.Notes, "run of "+when+": "+n)
	}
	r.finish(anyJudged(r.Results))
}

// anyJudged says whether a report's rows were judged against their targets.
func anyJudged(rs []*result) bool {
	return slices.ContainsFunc(rs, func(x *result) bool { return x.Met != nil })
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Benchmark results\n\n")
	p("Generated by `make bench` (`go run ./bench`) on %s. Every figure is the median of %d runs; in each run\n", r.Generated.Format("2006-01-02 15:04 UTC"), r.Options.Runs)
	p("tracevault and its baseline run one after the other in alternating order, each as a child process whose\n")
	p("peak RSS and CPU come from the kernel. Ratio = tracevault time / baseline time (below 1 is faster).\n")
	p("The machine is shared: \"machine busy\" counts every process on it, other users' too. The raw\n")
	p("figures, every run's time included, are in results.json. What these figures led to (fixes, and\n")
	p("the bottlenecks left) is in [README.md](README.md) beside this file.\n\n")
	p("## Machine\n\n")
	for _, m := range r.Machine {
		p("- %s\n", m)
	}
	p("\n## Data\n\n")
	for _, d := range r.Data {
		p("- %s\n", d)
	}
	p("\n## Steps\n\n")
	p("| step | data | tracevault s | baseline s | ratio | target | met | peak RSS MiB | tracevault cores | ClickHouse cores | machine busy |\n")
	p("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n")
	for _, x := range r.Results {
		base, ratio, tgt := "–", "–", "–"
		if x.Target.Max > 0 {
			tgt = fmt.Sprintf("≤ %.2f×", x.Target.Max)
		}
		if x.Baseline != nil {
			base = fmt.Sprintf("%.2f", x.Baseline.Seconds)
		}
		if x.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", x.Ratio)
		}
		p("| %s | %d× | %.2f | %s | %s | %s | %s | %.0f | %.2f | %.2f | %.0f%% |\n", x.Step, x.Scale, x.Tracevault.Seconds, base, ratio,
			tgt, met(x.Met), x.Tracevault.PeakRSSMiB, x.Tracevault.CPUCores, x.Tracevault.ServerCore, x.Tracevault.Busy*100)
	}
	p("\nBaselines:\n\n")
	seen := map[string]bool{}
	for _, x := range r.Results {
		if x.BaselineName != "" && !seen[x.BaselineName] {
			seen[x.BaselineName] = true
			p("- %s: %s\n", strings.SplitN(x.Step, ",", 2)[0], x.BaselineName)
		}
	}
	if len(r.Growth) > 0 {
		p("\n## 1× → %d× data\n\nTarget: time grows linearly (ratio %.1f–%.1f), peak RSS does not grow (< 1.2×) and stays under %d MiB.\n\n",
			r.Growth[0].Factor, (1-linearBand)*float64(r.Growth[0].Factor), (1+linearBand)*float64(r.Growth[0].Factor), rssLimitMiB)
		p("| step | time ratio | RSS ratio | peak RSS MiB | met |\n|---|---:|---:|---:|---|\n")
		for _, g := range r.Growth {
			p("| %s | %.2f | %.2f | %.0f | %s |\n", g.Step, g.TimeRatio, g.RSSRatio, g.PeakRSS, met(g.Met))
		}
	}
	p("\n## What limits each step\n\nFrom the CPU the tracevault process, the ClickHouse servers and the whole machine used during the\nstep (largest scale)")
	p(", and where profiled, the top of tracevault's CPU profile (`go tool pprof -top`).\n\n")
	hi := r.Options.Scales[len(r.Options.Scales)-1]
	for _, x := range r.Results {
		if x.Scale != hi {
			continue
		}
		p("### %s\n\n%s.\n", x.Step, x.Limit)
		if len(x.Extra) > 0 {
			keys, _ := json.Marshal(x.Extra)
			p("\nDetails: `%s`\n", keys)
		}
		if len(x.Profile) > 0 {
			p("\n```\n%s\n```\n", strings.Join(x.Profile, "\n"))
		}
		p("\n")
	}
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("- %s\n", n)
		}
	}
	return b.String()
}

func met(m *bool) string {
	switch {
	case m == nil:
		return "–"
	case *m:
		return "met"
	default:
		return "**not met**"
	}
}
