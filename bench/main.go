package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// options are the driver's flags.
type options struct {
	Traces     int    // traces of the 1x ClickHouse data; each scale has that many times as many
	PGScale    int    // pgbench -s of the 1x PostgreSQL data
	Months     int    // monthly partitions of the demo data
	Runs       int    // runs of each side; medians are compared
	Scales     []int  // data multiples measured, smallest first
	World      string // worlds measured: all, cluster (18.16 and PostgreSQL), modern (ch-modern, with no PostgreSQL step) or postgres (no ClickHouse)
	Seed       uint64 // the demo generator's seed
	Reseed     bool   // seed every database again, even where a seed mark says it holds the data asked for
	Out        string // where RESULTS.md and results.json go; empty: nowhere
	Work       string // scratch directory for repositories and baseline files
	Tracevault string // the tracevault binary
	Profile    bool   // one more run of each tracevault step at the largest scale under pprof
	Targets    bool   // judge the figures against the targets
	Cleanup    bool   // drop the generated databases at the end
	Only       string // regexp: run only the steps whose names match
}

func main() {
	o := options{Targets: true}
	scale := flag.String("scale", "", "preset: small (20k traces, pgbench -s 2, minutes), medium (100k traces, pgbench -s 8, 20-30 min), tiny (a smoke run, no targets), full (the default: 1.25M traces, pgbench -s 25, 1x and 4x, hours) or 10x (1M traces, pgbench -s 50, 1x and 10x: 10M traces and -s 500, a quiet machine for most of a day); flags below override it")
	traces := flag.Int("traces", 0, "traces of the 1x data (each scale multiplies it; default 1250000, so 4x is 5M)")
	pgScale := flag.Int("pgbench", 0, "pgbench -s of the 1x PostgreSQL data (default 25, so 4x is -s 100, about 1.5 GB)")
	scales := flag.String("scales", "", "data multiples measured, comma-separated, smallest first (default 1,4; 1,10 with -scale 10x)")
	flag.StringVar(&o.World, "world", "all", "worlds measured: all, cluster (the 18.16 cluster, Langfuse v2-era schema, and PostgreSQL), modern (Langfuse v4's tables on ch-modern, 26.7, with patch parts; no PostgreSQL steps) or postgres (PostgreSQL alone: no ClickHouse data is seeded)")
	flag.Uint64Var(&o.Seed, "seed", 0, "seed of the demo data generator (part of the seed mark)")
	flag.BoolVar(&o.Reseed, "reseed", false, "seed every database again, even where its seed mark says it holds this run's data (size, seed, schema version)")
	flag.IntVar(&o.Months, "months", 12, "monthly partitions of the demo data")
	runs := flag.Int("runs", 0, "runs of each side (default 3; the median is reported)")
	flag.StringVar(&o.Out, "out", "bench", "directory for RESULTS.md and results.json")
	flag.StringVar(&o.Work, "work", "", "scratch directory (default a new one under $TMPDIR, removed at the end)")
	flag.StringVar(&o.Tracevault, "tracevault", "bin/tracevault", "tracevault binary to measure")
	flag.BoolVar(&o.Profile, "profile", false, "profile each tracevault step once more at the largest scale (pprof) and report its top functions")
	flag.BoolVar(&o.Cleanup, "cleanup", false, "drop the generated databases at the end (by default they stay, and a rerun with the same data reuses them: see -reseed)")
	flag.StringVar(&o.Only, "only", "", "run only the steps whose names match this regexp")
	child := flag.String("child", "", "internal: run one side of the repository pipeline step in this process")
	render := flag.String("render", "", "measure nothing: write RESULTS.md into -out again from this results.json; a comma-separated list merges runs, a later run's rows replacing an earlier one's of the same step and scale (a -only run added to a whole one)")
	flag.Parse()

	if *render != "" {
		if err := rerender(strings.Split(*render, ","), o.Out); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}

	if *child != "" {
		if err := runChild(context.Background(), *child, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		return
	}
	o.Scales = []int{1, 4}
	switch *scale {
	case "", "full":
		o.Traces, o.PGScale, o.Runs = 1_250_000, 25, 3
	case "10x":
		o.Traces, o.PGScale, o.Runs, o.Scales = 1_000_000, 50, 3, []int{1, 10}
	case "small":
		o.Traces, o.PGScale, o.Runs = 20_000, 2, 3
	case "medium":
		o.Traces, o.PGScale, o.Runs = 100_000, 8, 3
	case "tiny":
		o.Traces, o.PGScale, o.Runs, o.Targets = 300, 1, 1, false
	default:
		fmt.Fprintf(os.Stderr, "error: -scale %q: use tiny, small, medium, full or 10x\n", *scale)
		os.Exit(2)
	}
	if *scales != "" {
		var err error
		if o.Scales, err = parseScales(*scales); err != nil {
			fmt.Fprintln(os.Stderr, "error: -scales:", err)
			os.Exit(2)
		}
	}
	if *traces > 0 {
		o.Traces = *traces
	}
	if *pgScale > 0 {
		o.PGScale = *pgScale
	}
	if *runs > 0 {
		o.Runs = *runs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if _, err := run(ctx, o, log); err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

// run measures everything o asks for and writes the report; it returns the report.
func run(ctx context.Context, o options, log *slog.Logger) (*report, error) {
	if o.Runs < 1 || o.Traces < 1 || o.PGScale < 1 || len(o.Scales) == 0 {
		return nil, errors.New("runs, traces, pgbench scale and scales must be positive")
	}
	switch o.World {
	case "":
		o.World = "all"
	case "all", "cluster", "modern", "postgres":
	default:
		return nil, fmt.Errorf("-world %q: use all, cluster, modern or postgres", o.World)
	}
	bin, err := filepath.Abs(o.Tracevault)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("tracevault binary: %w (run `make build`, or pass -tracevault)", err)
	}
	o.Tracevault = bin
	if o.Work == "" {
		if o.Work, err = os.MkdirTemp("", "tracevault-bench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(o.Work)
	} else if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, err
	}
	b, err := newBench(ctx, o, log)
	if err != nil {
		return nil, err
	}
	if o.Cleanup {
		defer b.cleanup()
	}
	err = b.measure(ctx)
	if err != nil {
		// What was measured is still worth reading: write it, saying where the run stopped.
		b.rep.Notes = append(b.rep.Notes, "the run stopped early: "+lastLine(err))
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		b.rep.Machine = append(b.rep.Machine, "load average at the end (1, 5, 15 min): "+strings.Join(strings.Fields(string(l))[:3], ", "))
	}
	b.rep.finish(o.Targets)
	if o.Out != "" {
		if werr := b.rep.write(o.Out); werr != nil {
			return b.rep, errors.Join(err, werr)
		}
		log.Info("wrote", "results", filepath.Join(o.Out, "RESULTS.md"), "json", filepath.Join(o.Out, "results.json"))
	}
	return b.rep, err
}

// parseScales reads -scales: positive multiples, smallest first (the growth table compares the
// last with the first).
func parseScales(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive whole multiple", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, fmt.Errorf("%s: list the multiples smallest first, each once", s)
		}
		out = append(out, n)
	}
	return out, nil
}
