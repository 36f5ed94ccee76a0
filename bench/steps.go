package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/store"
)

// side is one way of doing a step: tracevault's, or the baseline's.
type side struct {
	name     string
	baseline bool
	prep     func(ctx context.Context, run int) error // untimed, before each run
	run      func(ctx context.Context, run int) (sample, error)
	// args, for a tracevault side, is its command line without the binary, for the profile run.
	args func(run int) []string
	// target, if set, replaces the group's for this side (a destination held to a stricter one).
	target target
}

// group is one step at one scale: its tracevault sides and the baseline they are compared
// with, run in turn, in a rotating order, o.Runs times.
type group struct {
	step   string // name without the scale
	probe  *probe // of the servers the step runs on; nil: the 18.16 cluster's
	scale  int
	data   string
	target target
	sides  []side
	// after, if set, turns the medians into extra figures (the incremental step's share).
	after func(r *result, tv, base []sample)
}

type bench struct {
	o      options
	env    *devstack.Env
	log    *slog.Logger
	probe  *probe
	rep    *report
	only   *regexp.Regexp
	seq    int
	worlds []*world // the ClickHouse worlds measured, the 18.16 cluster first
	ch     map[*world]map[int]*chData
	pg     map[int]*pgData
	dbs    []*chData // generated ClickHouse databases, for cleanup
}

func newBench(ctx context.Context, o options, log *slog.Logger) (*bench, error) {
	env, err := devstack.Load()
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, env: env, log: log, probe: newProbe(env.Dir), ch: map[*world]map[int]*chData{}, pg: map[int]*pgData{}}
	if o.World == "all" || o.World == "cluster" {
		b.worlds = append(b.worlds, clusterWorld(env))
	}
	if o.World == "all" || o.World == "modern" {
		w, err := modernWorld(env)
		if err != nil {
			return nil, err
		}
		b.worlds = append(b.worlds, w)
	}
	if o.Only != "" {
		if b.only, err = regexp.Compile(o.Only); err != nil {
			return nil, fmt.Errorf("-only: %w", err)
		}
	}
	b.rep = newReport(o, machine(ctx, env, b.worlds))
	return b, nil
}

func (b *bench) measure(ctx context.Context) error {
	for _, s := range b.o.Scales {
		var data []string
		for _, w := range b.worlds {
			seed := seedClickHouse
			if w.atomic {
				seed = seedModern
			}
			d, err := seed(ctx, b.env, w, b.o, b.o.Traces*s, b.log)
			if err != nil {
				return err
			}
			if b.ch[w] == nil {
				b.ch[w] = map[int]*chData{}
			}
			b.ch[w][s], b.dbs = d, append(b.dbs, d)
			data = append(data, d.String())
		}
		if b.o.World != "modern" {
			p, err := seedPgbench(ctx, b.env, b.o.PGScale*s, b.o.Reseed, b.log)
			if err != nil {
				return err
			}
			b.pg[s] = p
			data = append(data, p.String())
		}
		b.rep.Data = append(b.rep.Data, fmt.Sprintf("%dx: %s", s, strings.Join(data, "; ")))
	}
	var demoPG *pgData
	if b.o.World != "modern" {
		var err error
		if demoPG, err = seedPGDemo(ctx, b.env, b.o.Seed, b.o.Reseed, b.log); err != nil {
			return err
		}
		b.rep.Data = append(b.rep.Data, "PostgreSQL "+demoPG.String())
	}

	for _, s := range b.o.Scales {
		for _, w := range b.worlds {
			if err := b.clickhouse(ctx, s, b.ch[w][s]); err != nil {
				return err
			}
		}
		if p := b.pg[s]; p != nil {
			if err := b.postgres(ctx, s, p); err != nil {
				return err
			}
		}
	}
	if demoPG == nil {
		return nil
	}
	return b.postgres(ctx, 1, demoPG)
}

// clickhouse measures every ClickHouse step of d's world at one scale: backups, restores and
// the incremental backup everywhere; on the cluster also the replica rebuild (ch-modern has no
// peer), the move to ch-modern (migrate-cluster) and the repository pipeline (one per scale: it
// measures no server).
func (b *bench) clickhouse(ctx context.Context, s int, d *chData) error {
	full, err := b.clickhouseBackups(ctx, s, d)
	if err != nil {
		return err
	}
	if err := b.clickhouseRestores(ctx, s, d, full); err != nil {
		return err
	}
	if d.w.atomic {
		return b.clickhouseIncremental(ctx, s, d, full, modernChange(d))
	}
	if err := b.clickhouseIncremental(ctx, s, d, full, clusterChange(b.env, d)); err != nil {
		return err
	}
	if err := b.clickhouseReplica(ctx, s, d, full); err != nil {
		return err
	}
	if err := b.clickhouseMigrate(ctx, s, d); err != nil {
		return err
	}
	return b.pipeline(ctx, s, full)
}

// fullBackups remembers, per mode, a complete snapshot of the step's data and the baseline's
// files, for the restore and incremental steps.
type fullBackups struct {
	repo     map[string]string // mode → config of a repository holding a full backup
	id       map[string]string // mode → its snapshot id
	manifest *store.Manifest   // the logical one
	native   string            // directory of the logical baseline's <table>.native.zst files
	seconds  float64           // median time of the logical full backup to file://
}

func (b *bench) clickhouseBackups(ctx context.Context, scale int, d *chData) (*fullBackups, error) {
	full := &fullBackups{repo: map[string]string{}, id: map[string]string{}, native: filepath.Join(b.o.Work, fmt.Sprintf("native-%s-%d", d.db, scale))}
	modes := []string{"logical", "freeze"}
	if d.w.atomic {
		// Freeze mode exports every partition with patch parts logically (FREEZE carries no
		// patch part), and the modern world's events tables have them in every partition:
		// its figures would be the logical ones again, against a baseline that drops the
		// updates.
		modes = modes[:1]
	}
	for _, mode := range modes {
		g := group{step: d.w.step("clickhouse backup " + mode), probe: d.w.probe, scale: scale, data: d.String(), target: atMost(1.15)}
		for _, dest := range []string{"file", "azurite"} {
			dest := dest
			var cfg string
			// Issue 34: the logical export to a file keeps pace with the pipe it replaces.
			var strict target
			if mode == "logical" && dest == "file" {
				strict = atMost(1.0)
			}
			g.sides = append(g.sides, side{
				name:   "tracevault → " + dest,
				target: strict,
				prep: func(ctx context.Context, run int) error {
					var err error
					cfg, err = b.config(d.w, dest, mode, d.db, "")
					return err
				},
				args: func(int) []string { return []string{"--config", cfg, "backup", "--only", "clickhouse", "--json"} },
				run: func(ctx context.Context, run int) (sample, error) {
					s, m, err := b.backup(ctx, cfg, "clickhouse")
					if err == nil && dest == "file" && full.repo[mode] == "" {
						full.repo[mode], full.id[mode] = cfg, m.ID
						if mode == "logical" {
							full.manifest = m
						}
					} else if err == nil {
						b.dropRepo(cfg)
					}
					return s, err
				},
			})
		}
		if mode == "logical" {
			name, _ := d.w.exportBaseline(d.db, "t", "f")
			g.sides = append(g.sides, side{
				name: name, baseline: true,
				prep: func(context.Context, int) error {
					_ = os.RemoveAll(full.native)
					return os.MkdirAll(full.native, 0o755)
				},
				run: func(ctx context.Context, _ int) (sample, error) {
					var sh strings.Builder
					for _, t := range d.tables {
						_, cmd := d.w.exportBaseline(d.db, t, filepath.Join(full.native, t+".native.zst"))
						sh.WriteString(cmd)
					}
					// tracevault fsyncs every object it writes; so does the baseline.
					fmt.Fprintf(&sh, "sync %s/*\n", full.native)
					return shell(ctx, sh.String())
				},
			})
		} else {
			out := filepath.Join(b.o.Work, "frozen.tar.zst")
			shadow := filepath.Join(b.env.CHDataDirs[0], "shadow")
			g.sides = append(g.sides, side{
				name: "FREEZE PARTITION each, tar of the shadow directory | zstd -1", baseline: true,
				prep: func(context.Context, int) error { return clearShadow(b.env) },
				run: func(ctx context.Context, _ int) (sample, error) {
					start := time.Now()
					h := chHTTP(b.env, 0)
					for _, t := range d.tables {
						for _, p := range d.partitions[t] {
							if err := h.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s FREEZE PARTITION ID '%s'", d.db, t, p), nil); err != nil {
								return sample{}, err
							}
						}
					}
					s, err := shell(ctx, fmt.Sprintf("tar -cf - -C %s --exclude increment.txt . | zstd -1 -q -f -o %s\nsync %s", shadow, out, out))
					s.Wall = time.Since(start)
					_ = clearShadow(b.env)
					return s, err
				},
			})
		}
		r, err := b.runGroup(ctx, g)
		if err != nil {
			return nil, err
		}
		if mode == "logical" && len(r) > 0 {
			full.seconds = r[0].Tracevault.Seconds
		}
	}
	return full, nil
}

func (b *bench) clickhouseRestores(ctx context.Context, scale int, d *chData, full *fullBackups) error {
	// Issue 34: loads in a pool, with replicas fetching meanwhile, beat the one-table-at-a-time
	// pipe by 30 %.
	g := group{step: d.w.step("clickhouse restore"), probe: d.w.probe, scale: scale, data: d.String(), target: atMost(0.7)}
	target := d.db + "_restored"
	for _, mode := range []string{"logical", "freeze"} {
		cfg, id := full.repo[mode], full.id[mode]
		if cfg == "" {
			continue
		}
		args := []string{"--config", cfg, "restore", id, "--only", "clickhouse", "--database-map", d.db + ":" + target}
		g.sides = append(g.sides, side{
			name: "tracevault, " + mode + " snapshot",
			prep: func(ctx context.Context, _ int) error { return d.w.drop(ctx, target) },
			args: func(int) []string { return args },
			run: func(ctx context.Context, _ int) (sample, error) {
				s, _, err := command(ctx, nil, b.o.Tracevault, args...)
				return s, err
			},
		})
	}
	if len(g.sides) == 0 || full.manifest == nil {
		return nil // -only left the full backups out
	}
	base := d.db + "_baseline"
	name, _ := d.w.loadBaseline("f", base, "t")
	g.sides = append(g.sides, side{
		name: name, baseline: true,
		prep: func(ctx context.Context, _ int) error { return copySchema(ctx, d, base) },
		run: func(ctx context.Context, _ int) (sample, error) {
			var sh strings.Builder
			for _, t := range d.tables {
				_, cmd := d.w.loadBaseline(filepath.Join(full.native, t+".native.zst"), base, t)
				sh.WriteString(cmd)
			}
			// tracevault's restore checks the rows on every replica: wait for them here too.
			for i := 1; i < len(d.w.native); i++ {
				for _, t := range d.tables {
					if d.replicated[t] {
						fmt.Fprintf(&sh, "clickhouse-client --host 127.0.0.1 --port %s --query 'SYSTEM SYNC REPLICA %s.%s'\n", d.w.port(i), base, t)
					}
				}
			}
			return shell(ctx, sh.String())
		},
	})
	_, err := b.runGroup(ctx, g)
	_ = d.w.drop(context.Background(), target)
	_ = d.w.drop(context.Background(), base)
	return err
}

// change is what the incremental step does to one partition of one table before each changed
// run: that partition, and nothing else, must be sent by the backup that follows.
type change struct {
	table, partition string
	what             string // "1 partition of 12 of traces changed"
	do               func(ctx context.Context, run int) error
}

// clusterChange changes one partition of traces on the 18.16 cluster: one row attached to it
// from a staging table, as a late batch. An INSERT into traces would also fire the
// materialized views on it, whose target (project_environments) would then be a second changed
// partition. Every run changes the same partition and merges it to one part before the backup,
// so no merge left over from an earlier run changes another partition while the step is
// measured.
func clusterChange(env *devstack.Env, d *chData) change {
	const table = "traces"
	parts := d.partitions[table]
	c := change{table: table, partition: parts[len(parts)/2], what: fmt.Sprintf("1 partition of %d of %s changed", len(parts), table)}
	c.do = func(ctx context.Context, _ int) error { return changePartition(ctx, env, d, table, c.partition) }
	return c
}

// modernChange edits rows of one partition of events_full in place, as Langfuse v4's bookmark
// toggle does: a lightweight UPDATE, which writes a patch part into that partition and fires
// no materialized view (events_core is not changed). Each run toggles the same spans again.
func modernChange(d *chData) change {
	const table = "events_full"
	parts := d.partitions[table]
	c := change{table: table, partition: parts[len(parts)/2],
		what: fmt.Sprintf("1 partition of %d of %s updated in place (lightweight UPDATE, a patch part)", len(parts), table)}
	c.do = func(ctx context.Context, _ int) error {
		q := fmt.Sprintf("UPDATE %s.%s SET bookmarked = NOT bookmarked WHERE toYYYYMM(start_time) = %s AND cityHash64(span_id) %% 100 = 4", d.db, table, c.partition)
		if err := d.w.h(0).Exec(ctx, q, nil); err != nil {
			return fmt.Errorf("update partition %s of %s.%s: %w", c.partition, d.db, table, err)
		}
		return nil
	}
	return c
}

// clickhouseIncremental makes ch before each changed run and backs up into the repository of
// the full logical backup: only the changed partition must be sent (the step fails otherwise),
// in no more than 1.2x its share of the full backup's time.
func (b *bench) clickhouseIncremental(ctx context.Context, scale int, d *chData, full *fullBackups, ch change) error {
	if full.manifest == nil {
		return nil // -only left the full backup out
	}
	table, changed := ch.table, ch.partition
	parts := d.partitions[table]
	var total, share int64
	for _, o := range full.manifest.Objects {
		if o.Kind == "partition" {
			total += o.RawSize
			if o.Table == table && o.Partition == changed {
				share = o.RawSize
			}
		}
	}
	var sentParts [][]string
	// sent lists the partitions a backup stored anew.
	sent := func(m *store.Manifest) []string {
		out := []string{}
		for _, o := range m.Objects {
			if !o.Reused && o.Kind == "partition" {
				out = append(out, o.Table+"/"+o.Partition)
			}
		}
		return out
	}
	args := func(int) []string {
		return []string{"--config", full.repo["logical"], "backup", "--only", "clickhouse", "--json"}
	}
	// The unchanged run is the cost every incremental backup pays whatever changed (start,
	// connections, discovery, comparing every partition, the manifest): the changed run's time
	// less it is what the one partition costs, which is what its share is compared with.
	var fixed float64
	const unchangedSide = "tracevault → file, nothing changed (the per-run cost)"
	g := group{step: d.w.step("clickhouse incremental, 1 changed partition"), probe: d.w.probe, scale: scale, data: fmt.Sprintf("%s; %d partitions of %s", d, len(parts), table), target: atMost(1.2)}
	g.sides = []side{{
		name: unchangedSide,
		args: args,
		run: func(ctx context.Context, run int) (sample, error) {
			s, m, err := b.backup(ctx, full.repo["logical"], "clickhouse")
			if err == nil && len(sent(m)) != 0 {
				err = fmt.Errorf("%w: backup %s of unchanged data sent partitions %v", errAssertion, m.ID, sent(m))
			}
			return s, err
		},
	}, {
		name: "tracevault → file, " + ch.what,
		prep: ch.do,
		args: args,
		run: func(ctx context.Context, run int) (sample, error) {
			s, m, err := b.backup(ctx, full.repo["logical"], "clickhouse")
			if err != nil {
				return s, err
			}
			got := sent(m)
			sentParts = append(sentParts, got)
			if want := table + "/" + changed; len(got) != 1 || got[0] != want {
				return s, fmt.Errorf("%w: incremental backup %s sent partitions %v; only %s changed", errAssertion, m.ID, got, want)
			}
			return s, nil
		},
	}}
	g.after = func(r *result, tv, _ []sample) {
		// The share is what the changed partition's bytes are of the full backup's time.
		r.BaselineName = "its share of the full logical backup to file:// (partition bytes / all bytes x full time)"
		frac := float64(share) / float64(total)
		r.Baseline = &summary{Runs: 1, Seconds: round(frac*full.seconds, 3)}
		if strings.HasSuffix(r.Step, unchangedSide) {
			fixed = r.Tracevault.Seconds
			r.Baseline, r.BaselineName, r.Target = nil, "", target{}
			return
		}
		r.Extra = map[string]any{"changed_partition": table + "/" + changed, "sent_partitions_per_run": sentParts, "share_of_bytes": round(frac, 4), "full_backup_seconds": full.seconds,
			"per_run_cost_seconds": fixed, "partition_seconds": round(r.Tracevault.Seconds-fixed, 3)}
		if r.Baseline.Seconds > 0 {
			r.Extra["partition_ratio"] = round((r.Tracevault.Seconds-fixed)/r.Baseline.Seconds, 2)
		}
	}
	_, err := b.runGroup(ctx, g)
	return err
}

func (b *bench) postgres(ctx context.Context, scale int, d *pgData) error {
	dump := filepath.Join(b.o.Work, "pg.dump")
	var next, cfg, id string // next: the run's repository; cfg, id: the newest complete backup's
	g := group{step: "postgres backup, " + strings.SplitN(d.what, " ", 2)[0], scale: scale, data: d.String(), target: atMost(0.5)}
	g.sides = []side{{
		name: "tracevault → file",
		prep: func(ctx context.Context, run int) error {
			var err error
			// A configuration names a ClickHouse section; the backup runs --only postgres,
			// so the cluster's addresses serve whichever worlds this run measures.
			next, err = b.config(clusterWorld(b.env), "file", "logical", "", d.db)
			return err
		},
		args: func(int) []string { return []string{"--config", next, "backup", "--only", "postgres", "--json"} },
		run: func(ctx context.Context, run int) (sample, error) {
			s, m, err := b.backup(ctx, next, "postgres")
			if err == nil {
				if cfg != "" {
					b.dropRepo(cfg)
				}
				cfg, id = next, m.ID
			}
			return s, err
		},
	}, {
		name: "pg_dump -Fc", baseline: true,
		prep: func(context.Context, int) error { return os.RemoveAll(dump) },
		run: func(ctx context.Context, _ int) (sample, error) {
			s, _, err := command(ctx, nil, "pg_dump", "-Fc", "-f", dump, pgURL(b.env, d.db))
			return s, err
		},
	}}
	if _, err := b.runGroup(ctx, g); err != nil || id == "" {
		return err
	}
	defer b.dropRepo(cfg)
	restored, base := d.db+"_restored", d.db+"_baseline"
	args := []string{"--config", cfg, "restore", id, "--only", "postgres", "--pg-database", restored}
	// Issue 34: indexes built while other tables load, with the memory they are allowed.
	g = group{step: "postgres restore, " + strings.SplitN(d.what, " ", 2)[0], scale: scale, data: d.String(), target: atMost(0.85)}
	g.sides = []side{{
		name: "tracevault",
		prep: func(ctx context.Context, _ int) error { return dropPG(ctx, b.env, restored) },
		args: func(int) []string { return args },
		run: func(ctx context.Context, _ int) (sample, error) {
			s, _, err := command(ctx, nil, b.o.Tracevault, args...)
			return s, err
		},
	}, {
		name: "pg_restore -j 2", baseline: true,
		prep: func(ctx context.Context, _ int) error {
			if err := dropPG(ctx, b.env, base); err != nil {
				return err
			}
			return createPG(ctx, b.env, base)
		},
		run: func(ctx context.Context, _ int) (sample, error) {
			s, _, err := command(ctx, nil, "pg_restore", "-j", "2", "-d", pgURL(b.env, base), dump)
			return s, err
		},
	}}
	_, err := b.runGroup(ctx, g)
	_ = dropPG(context.Background(), b.env, restored)
	_ = dropPG(context.Background(), b.env, base)
	return err
}

// pipeline puts the largest table's Native data, uncompressed, into Azurite through the
// repository (sha256, zstd 1, blocks) and through a raw azblob UploadStream with the same
// block size and concurrency, each in a child process of this binary.
func (b *bench) pipeline(ctx context.Context, scale int, full *fullBackups) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var biggest string
	var size int64
	ents, _ := os.ReadDir(full.native)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Size() > size {
			biggest, size = filepath.Join(full.native, e.Name()), fi.Size()
		}
	}
	if biggest == "" {
		return nil // the logical baseline did not run (-only)
	}
	input := filepath.Join(b.o.Work, "pipeline-input.native")
	if _, _, err := command(ctx, nil, "zstd", "-d", "-q", "-f", biggest, "-o", input); err != nil {
		return err
	}
	defer os.Remove(input)
	fi, err := os.Stat(input)
	if err != nil {
		return err
	}
	g := group{step: "repository pipeline → azurite", scale: scale, target: atMost(1.2),
		data: fmt.Sprintf("%s of Native (%s), 8 MiB blocks, 4 at once", mib(fi.Size()), filepath.Base(biggest))}
	for _, kind := range []string{"repository", "raw"} {
		kind := kind
		s := side{name: "tracevault repository PutObject (sha256 + zstd 1)", baseline: kind == "raw"}
		if kind == "raw" {
			s.name = "azblob UploadStream"
		}
		s.run = func(ctx context.Context, _ int) (sample, error) {
			b.seq++
			s, _, err := command(ctx, nil, self, "-child", "put-"+kind, input, b.env.AzureConnectionString, fmt.Sprintf("bench-%d-%d", os.Getpid(), b.seq))
			return s, err
		}
		g.sides = append(g.sides, s)
	}
	_, err = b.runGroup(ctx, g)
	return err
}

// backup runs `tracevault backup --only source --json` and returns its manifest.
func (b *bench) backup(ctx context.Context, cfg, source string) (sample, *store.Manifest, error) {
	s, out, err := command(ctx, nil, b.o.Tracevault, "--config", cfg, "backup", "--only", source, "--json")
	if err != nil {
		return s, nil, err
	}
	var m store.Manifest
	if err := json.Unmarshal(out, &m); err != nil {
		return s, nil, fmt.Errorf("backup output: %w", err)
	}
	if m.Status != store.StatusComplete {
		return s, nil, fmt.Errorf("snapshot %s is %s: %s", m.ID, m.Status, m.Error)
	}
	s.Bytes = m.Totals().NewBytes
	return s, &m, nil
}

// config writes a tracevault configuration for one run into a fresh repository: w is the
// ClickHouse it backs up, dest file or azurite, chDB the ClickHouse database backed up, pgDB the
// PostgreSQL one.
func (b *bench) config(w *world, dest, mode, chDB, pgDB string) (string, error) {
	b.seq++
	name := fmt.Sprintf("run-%d", b.seq)
	storage := fmt.Sprintf("url = \"file://%s\"", filepath.Join(b.o.Work, name))
	if dest == "azurite" {
		storage = fmt.Sprintf("url = \"azblob://bench-%d-%d\"\nconnection_string = %q", os.Getpid(), b.seq, b.env.AzureConnectionString)
	}
	if chDB == "" {
		chDB = "none"
	}
	dsn := b.env.PGDSN
	if pgDB != "" {
		dsn = pgURL(b.env, pgDB)
	}
	var addrs, haddrs []string
	for i := range w.native {
		addrs, haddrs = append(addrs, fmt.Sprintf("%q", w.native[i])), append(haddrs, fmt.Sprintf("%q", w.http[i]))
	}
	toml := fmt.Sprintf(`[storage]
%s
compression_level = 1

[postgres]
dsn = %q

[clickhouse]
addresses = [%s]
http_addresses = [%s]
cluster = %q
databases = [%q]
mode = %q

[zookeeper]
servers = [%q]
`, storage, dsn, strings.Join(addrs, ", "), strings.Join(haddrs, ", "), w.cluster, chDB, mode, b.env.ZK)
	path := filepath.Join(b.o.Work, name+".toml")
	return path, os.WriteFile(path, []byte(toml), 0o600)
}

// dropRepo removes the repository of a configuration written by config (file:// only; the
// Azurite containers go with the stack).
func (b *bench) dropRepo(cfg string) {
	dir := strings.TrimSuffix(cfg, ".toml")
	if strings.HasPrefix(dir, b.o.Work) {
		_ = os.RemoveAll(dir)
	}
}

// errAssertion marks a run whose result is wrong, not failed: running it again would only hide it.
var errAssertion = errors.New("bench assertion failed")

// runGroup runs every side of g o.Runs times, rotating which goes first, then profiles the
// tracevault sides once at the largest scale when asked to.
func (b *bench) runGroup(ctx context.Context, g group) ([]*result, error) {
	name := fmt.Sprintf("%s @%dx", g.step, g.scale)
	if b.only != nil && !b.only.MatchString(name) {
		return nil, nil
	}
	b.log.Info("step", "name", name)
	samples := make([][]sample, len(g.sides))
	p := g.probe
	if p == nil {
		p = b.probe
	}
	for run := 0; run < b.o.Runs; run++ {
		for k := range g.sides {
			i := (k + run) % len(g.sides)
			sd := g.sides[i]
			if sd.prep != nil {
				if err := sd.prep(ctx, run); err != nil {
					return nil, fmt.Errorf("%s, %s, run %d: prepare: %w", name, sd.name, run+1, err)
				}
			}
			s, err := p.timed(func() (sample, error) { return sd.run(ctx, run) })
			for retry := 1; err != nil && !errors.Is(err, errAssertion) && retry <= 2 && ctx.Err() == nil; retry++ {
				// A loaded machine can expire the replicas' ZooKeeper sessions (read-only for
				// a while): give them time, then run again, and say so in the report.
				b.log.Warn("run failed; retrying", "step", name, "side", sd.name, "run", run+1, "err", err)
				b.rep.Notes = append(b.rep.Notes, fmt.Sprintf("%s, %s, run %d was retried after: %s", name, sd.name, run+1, lastLine(err)))
				time.Sleep(15 * time.Second)
				if sd.prep != nil {
					if err = sd.prep(ctx, run); err != nil {
						break
					}
				}
				s, err = p.timed(func() (sample, error) { return sd.run(ctx, run) })
			}
			if err != nil {
				return nil, fmt.Errorf("%s, %s, run %d: %w", name, sd.name, run+1, err)
			}
			b.log.Info("run", "step", name, "side", sd.name, "run", run+1, "seconds", round(s.Wall.Seconds(), 2), "rss_mib", s.RSS>>20)
			samples[i] = append(samples[i], s)
		}
	}
	var base []sample
	baseName := ""
	for i, sd := range g.sides {
		if sd.baseline {
			base, baseName = samples[i], sd.name
		}
	}
	var out []*result
	for i, sd := range g.sides {
		if sd.baseline {
			continue
		}
		r := &result{Step: g.step + ", " + sd.name, Scale: g.scale, Data: g.data, Target: g.target, Tracevault: summarize(samples[i])}
		if sd.target.Max > 0 {
			r.Target = sd.target
		}
		if base != nil {
			bs := summarize(base)
			r.Baseline, r.BaselineName = &bs, baseName
		}
		if g.after != nil {
			g.after(r, samples[i], base)
		}
		if b.o.Profile && sd.args != nil && g.scale == b.o.Scales[len(b.o.Scales)-1] {
			if sd.prep != nil {
				if err := sd.prep(ctx, b.o.Runs); err != nil {
					return nil, err
				}
			}
			r.Profile = b.profile(ctx, sd.args(b.o.Runs))
		}
		b.rep.Results = append(b.rep.Results, r)
		out = append(out, r)
	}
	return out, nil
}

// profile runs a tracevault command once more under its CPU profiler and returns the top of
// `go tool pprof -top`.
func (b *bench) profile(ctx context.Context, args []string) []string {
	b.seq++
	path := filepath.Join(b.o.Work, fmt.Sprintf("cpu-%d.pprof", b.seq))
	if _, _, err := command(ctx, []string{"TRACEVAULT_CPUPROFILE=" + path}, b.o.Tracevault, args...); err != nil {
		return []string{"profile run failed: " + err.Error()}
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=12", b.o.Tracevault, path).Output()
	if err != nil {
		return []string{"go tool pprof: " + err.Error()}
	}
	var top []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "File:") && !strings.HasPrefix(l, "Build ID:") && !strings.HasPrefix(l, "Type:") && !strings.HasPrefix(l, "Time:") {
			top = append(top, l)
		}
	}
	return top
}

func (b *bench) cleanup() {
	ctx := context.Background()
	for _, d := range b.dbs {
		_ = d.w.setSeedMark(ctx, d.db, "")
		_ = d.w.drop(ctx, d.db)
	}
	for _, d := range b.pg {
		_ = dropPG(ctx, b.env, d.db)
	}
	_ = dropPG(ctx, b.env, "bench_pgdemo")
}

// firstLine is the last line of an error: a failed command's own message.
func lastLine(err error) string {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	return lines[len(lines)-1]
}

// clickhouseReplica rebuilds the last replica after its copy of the database is dropped there
// (its tables gone, and with them its registrations in ZooKeeper), with `tracevault
// restore-replica --from-snapshot`, against plain replication: the same tables created again
// from a peer's definitions, under the same ZooKeeper paths, and left to fetch every part from
// the peers until SYSTEM SYNC REPLICA returns and its parts are the peer's. Before every run
// and after it the cluster must be whole: every replica active, the same parts and rows on each.
func (b *bench) clickhouseReplica(ctx context.Context, scale int, d *chData, full *fullBackups) error {
	cfg := full.repo["logical"]
	if cfg == "" || len(b.env.CHNative) < 2 {
		return nil // -only left the full backup out, or there is no peer to replicate from
	}
	lost := len(b.env.CHNative) - 1
	ddl, err := databaseDDL(ctx, chHTTP(b.env, 0), d.db)
	if err != nil {
		return err
	}
	schema := filepath.Join(b.o.Work, d.db+"-schema.sql")
	if err := os.WriteFile(schema, []byte(strings.Join(append([]string{"CREATE DATABASE " + d.db}, ddl...), ";\n")+";\n"), 0o600); err != nil {
		return err
	}
	// whole: the replica holds the data as seeded, local tables' rows included.
	whole := true
	drop := func(ctx context.Context, _ int) error {
		// What the previous run left must be whole before this one breaks the replica again.
		if err := clusterWhole(ctx, b.env, d); err != nil {
			return err
		}
		whole = false
		return chHTTP(b.env, lost).Exec(ctx, "DROP DATABASE IF EXISTS "+d.db, nil)
	}
	args := []string{"--config", cfg, "restore-replica", b.env.CHNative[lost], "--from-snapshot", "latest:clickhouse"}
	rebuild := func(ctx context.Context) (sample, error) {
		s, _, err := command(ctx, nil, b.o.Tracevault, args...)
		return s, err
	}
	// The baseline leaves the replica's local tables empty (no peer holds their rows): the
	// step ends with a rebuild by tracevault, so that later steps and reruns find the data
	// as seeded.
	g := group{step: "clickhouse replica rebuild", scale: scale, target: atMost(1.15),
		data: fmt.Sprintf("%s; replica %d of %d dropped", d, lost+1, len(b.env.CHNative))}
	// The baseline first: with the rotation, the last run of an odd number of runs ends with
	// tracevault, which leaves nothing to rebuild after the step.
	g.sides = []side{{
		name: "CREATE DATABASE and TABLEs from a peer's definitions, replication until SYSTEM SYNC REPLICA and the peer's parts", baseline: true,
		prep: drop,
		run: func(ctx context.Context, _ int) (sample, error) {
			start := time.Now()
			var sh strings.Builder
			fmt.Fprintf(&sh, "clickhouse-client --host 127.0.0.1 --port %s --multiquery < %s\n", d.w.port(lost), schema)
			for _, t := range d.tables {
				if d.replicated[t] {
					fmt.Fprintf(&sh, "clickhouse-client --host 127.0.0.1 --port %s --query 'SYSTEM SYNC REPLICA %s.%s'\n", d.w.port(lost), d.db, t)
				}
			}
			s, err := shell(ctx, sh.String())
			if err == nil {
				err = caughtUp(ctx, b.env, lost, d)
			}
			s.Wall = time.Since(start)
			if err == nil {
				err = clusterWhole(ctx, b.env, d)
			}
			return s, err
		},
	}, {
		name: "tracevault restore-replica --from-snapshot",
		prep: drop,
		args: func(int) []string { return args },
		run: func(ctx context.Context, _ int) (sample, error) {
			s, err := rebuild(ctx)
			if err == nil {
				err = clusterWhole(ctx, b.env, d)
			}
			whole = err == nil
			return s, err
		},
	}}
	_, err = b.runGroup(ctx, g)
	if !whole {
		// restore-replica loads a local table only where it is missing: drop what the baseline
		// created first.
		b.log.Info("rebuilding the replica once more, untimed, with its local tables' rows", "replica", b.env.CHNative[lost])
		ctx := context.WithoutCancel(ctx)
		rerr := chHTTP(b.env, lost).Exec(ctx, "DROP DATABASE IF EXISTS "+d.db, nil)
		if rerr == nil {
			_, rerr = rebuild(ctx)
		}
		if rerr == nil {
			rerr = clusterWhole(ctx, b.env, d)
		}
		if rerr != nil {
			return errors.Join(err, fmt.Errorf("rebuild replica %s after the step: %w", b.env.CHNative[lost], rerr))
		}
	}
	return err
}
