package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// repo loads the configuration and opens its existing repository: a command that reads never
// creates one at a mistyped URL.
func (a *app) repo(cmd *cobra.Command) (*store.Repository, error) {
	return a.openRepo(cmd, jobs.OpenRepository)
}

// openRepo loads the configuration and opens its repository with open (jobs.OpenRepository, or
// jobs.CreateRepository for backup and init).
func (a *app) openRepo(cmd *cobra.Command, open func(context.Context, config.Storage, *slog.Logger) (*store.Repository, error)) (*store.Repository, error) {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	r, err := open(cmd.Context(), cfg.Storage, a.log)
	if err != nil {
		return nil, failed(err)
	}
	r.SetConfigured(jobs.ConfiguredSources(cfg))
	return r, nil
}

func (a *app) printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printPlan shows a --dry-run plan: as JSON for scripts, else in the plan's own words.
func printPlan(a *app, cmd *cobra.Command, plan interface{ Write(io.Writer) }) error {
	if a.json {
		return a.printJSON(cmd, plan)
	}
	plan.Write(cmd.OutOrStdout())
	return nil
}

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List snapshots in the repository, oldest first",
		Long: `List every snapshot: id, time (UTC), status, scope, size, new bytes (uploaded by that
snapshot; the rest was reused from earlier ones), duration and tags. A partial snapshot is one
whose components did not all succeed; its error says which. The scope is "full" for a set that
holds every source the configuration covers, none narrowed: only those are 'latest'. Any other
set names its sources ("clickhouse only" for backup --only clickhouse) and how a request
narrowed one ("clickhouse (tables default.traces)" for backup --tables, or a migration's
snapshot of its database); 'latest:clickhouse' names the newest set holding ClickHouse whole.
Snapshots from before the scope was recorded count as holding each of their sources whole.
A manifest that cannot be read, fails validation or (encrypted repository) authentication is
listed as damaged, by file name, with the fix; every other snapshot is listed as usual.`,
		Example: examples("tracevault list", "tracevault list --json | jq -r '.[] | select(.status==\"complete\") | .id'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			cat, err := r.Catalog(cmd.Context())
			if err != nil {
				return failed(err)
			}
			entries := make([]jobs.SnapshotSummary, 0, len(cat.Snapshots)+len(cat.Damaged))
			for i := range cat.Snapshots {
				entries = append(entries, jobs.Summarize(&cat.Snapshots[i], r.Configured()))
			}
			for _, d := range cat.Damaged {
				entries = append(entries, jobs.SummarizeDamaged(d))
			}
			if a.json {
				return a.printJSON(cmd, entries)
			}
			out := cmd.OutOrStdout()
			if len(cat.Snapshots) == 0 {
				what := "no snapshots in %s yet; take one with 'tracevault backup'\n"
				if len(cat.Damaged) > 0 {
					what = "no readable snapshots in %s; take one with 'tracevault backup'\n"
				}
				fmt.Fprintf(out, what, r)
				printDamaged(out, cat.Damaged)
				return nil
			}
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME (UTC)\tSTATUS\tSCOPE\tSIZE\tNEW\tDURATION\tTAGS")
			for _, e := range entries[:len(cat.Snapshots)] {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.UTC().Format("2006-01-02 15:04:05"), e.Status,
					e.Scope, store.HumanBytes(e.Bytes), store.HumanBytes(e.NewBytes),
					time.Duration(e.Seconds*float64(time.Second)).Round(time.Second), strings.Join(e.Tags, ","))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			printDamaged(out, cat.Damaged)
			return nil
		},
	}
}

func (a *app) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show what a snapshot holds, per source, database, table and partition",
		Long: `Show a snapshot's scope, components and every object it references. ID may be a unique
prefix; 'latest' is the newest complete full set (every source the configuration covers, none
narrowed), 'latest:SOURCE[,SOURCE]' the newest complete set holding those sources whole, and
'latest:any' the newest complete set of any scope.`,
		Example: examples("tracevault show latest", "tracevault show latest:clickhouse", "tracevault show 20261124T0315 --json"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			m, err := r.Snapshot(cmd.Context(), args[0])
			if err != nil {
				return failed(err)
			}
			if a.json {
				return a.printJSON(cmd, m)
			}
			printManifest(cmd.OutOrStdout(), m, r.Configured())
			return nil
		},
	}
}

func printManifest(out io.Writer, m *store.Manifest, configured []string) {
	t := m.Totals()
	fmt.Fprintf(out, "snapshot %s  %s  host %s\n", m.ID, m.Status, m.Host)
	fmt.Fprintf(out, "scope    %s\n", m.ScopeDetail(configured))
	fmt.Fprintf(out, "time     %s .. %s (%s)\n", m.Start.UTC().Format(time.RFC3339), m.End.UTC().Format(time.RFC3339), m.End.Sub(m.Start).Round(time.Second))
	fmt.Fprintf(out, "size     %s in %d objects, %s new, %d reused\n", store.HumanBytes(t.Bytes), t.Objects, store.HumanBytes(t.NewBytes), t.Reused)
	fmt.Fprintf(out, "cut      %s\n", m.Cut)
	if m.Error != "" {
		fmt.Fprintf(out, "error    %s\n", m.Error)
	}
	for _, c := range m.Components {
		line := fmt.Sprintf("  %-11s %-8s %s", c.Source, c.Status, c.End.Sub(c.Start).Round(time.Millisecond))
		if c.Error != "" {
			line += "  " + c.Error
		}
		fmt.Fprintln(out, line)
	}
	for _, l := range jobs.SourceDetails(m) {
		fmt.Fprintln(out, l)
	}
	objs := append([]store.ManifestObject(nil), m.Objects...)
	sort.SliceStable(objs, func(i, j int) bool { return objectKey(objs[i]) < objectKey(objs[j]) })
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nSOURCE\tDATABASE.TABLE\tPARTITION\tREPLICA\tROWS\tRAW\tSTORED\tOBJECT")
	for _, o := range objs {
		name := strings.Trim(o.Database+"."+o.Table, ".")
		if name == "" {
			name = o.Kind
		}
		reused := ""
		if o.Reused {
			reused = " (reused)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s%s\n", o.Source, name, o.Partition, o.Replica, o.Rows, store.HumanBytes(o.RawSize), store.HumanBytes(o.Size), o.ID[:12], reused)
	}
	w.Flush()
}

// printDamaged names each damaged manifest with what is wrong and the fix.
func printDamaged(out io.Writer, damaged []store.DamagedManifest) {
	for _, d := range damaged {
		fmt.Fprintf(out, "DAMAGED  %s: %s\n         %s\n", d.Name, d.Error, d.Fix())
	}
}

func objectKey(o store.ManifestObject) string {
	return strings.Join([]string{o.Source, o.Database, o.Table, o.Partition, o.Replica}, "\x00")
}

func (a *app) deleteCommand() *cobra.Command {
	var damaged bool
	c := &cobra.Command{
		Use:   "delete ID | --damaged NAME",
		Short: "Forget one snapshot; prune then removes objects nothing else references",
		Long: `Forget one snapshot by its id or a unique prefix of it ('latest' is not accepted here).
With --damaged, remove a damaged manifest instead, by the file name 'list' and 'verify' give
(e.g. 20261124T031500Z-1a2b3c.json): only a file the repository lists as damaged is removed.`,
		Example: examples("tracevault delete 20261124T031500Z-1a2b3c", "tracevault delete --damaged 20261124T031500Z-1a2b3c.json"),
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := args[0]
			switch {
			case strings.TrimSpace(arg) == "":
				return usage(errors.New("delete: the snapshot id is empty (an unset shell variable?); give the id 'tracevault list' shows"))
			case arg == "latest" && !damaged:
				return usage(errors.New("delete: give the snapshot's id, not latest"))
			}
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			if damaged {
				if err := jobs.DeleteDamaged(cmd.Context(), r, arg); err != nil {
					return failed(err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "deleted damaged manifest %s; run 'tracevault prune' to free objects nothing references\n", arg)
				return nil
			}
			id, err := jobs.DeleteSnapshot(cmd.Context(), r, arg)
			if err != nil {
				return failed(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted snapshot %s; run 'tracevault prune' to free its objects\n", id)
			return nil
		},
	}
	c.Flags().BoolVar(&damaged, "damaged", false, "NAME is a damaged manifest's file name (from 'list' or 'verify'), not a snapshot id")
	return c
}

func (a *app) verifyCommand() *cobra.Command {
	var all, readData bool
	var sampleFlag string
	c := &cobra.Command{
		Use:   "verify [ID...]",
		Short: "Check that snapshots' objects exist and, with --read-data, are intact",
		Long: `Check every object the given snapshots (or --all) reference: that it exists with the recorded
size; with --read-data, also download, decrypt, decompress and check its SHA-256, and check each
freeze-mode partition's parts against their own checksums.txt (size and CityHash128 of every
file, as the server wrote them: damage on the server's disk before the upload). Each bad object
is named with the snapshot and what it holds; with --all, every damaged manifest is named too,
with the fix. PostgreSQL point-in-time chains are checked too (all with --all, else those whose
base is given): every record authentic, the segments continuous from the base without a gap,
each segment stored; with --read-data, each segment read and parsed (checksum, CRC-32C trailer).
Exits 1 if anything is bad.

--sample P% reads only a share of the objects with --read-data (every object is still checked for
existence and size): objects fall into ⌈100/P⌉ buckets by a hash of their id, and each run reads
the next bucket, recorded in the repository (verify/position), so every object is read within
⌈100/P⌉ runs, new ones included. --sample N/M reads bucket N of M and leaves the rotation alone.` + progressHelp,
		Example: examples("tracevault verify --all", "tracevault verify latest --read-data --json", "tracevault verify --all --read-data --sample 10%"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				return usage(fmt.Errorf("give snapshot ids or --all"))
			}
			req := jobs.VerifyRequest{Snapshots: args, ReadData: readData}
			if cmd.Flags().Changed("sample") {
				if !readData {
					return usage(fmt.Errorf("--sample chooses which objects --read-data reads: add --read-data (without it every object is only checked for existence and size, which is cheap)"))
				}
				var err error
				if req.Sample, err = jobs.ParseSample(sampleFlag); err != nil {
					return usage(fmt.Errorf("--sample: %w", err))
				}
			}
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			if readData {
				a.startProgress(cmd, "verify")
			}
			rep, err := jobs.Verify(cmd.Context(), r, req)
			a.progressDone(cmd.Context(), err)
			if err != nil {
				return failed(err)
			}
			if a.json {
				if err := a.printJSON(cmd, rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					if p.Snapshot == "" {
						fmt.Fprintf(cmd.OutOrStdout(), "BAD  %s (%s): %s\n     fix: %s\n", p.Object, p.What, p.Error, p.Fix)
						continue
					}
					fmt.Fprintf(cmd.OutOrStdout(), "BAD  %s  snapshot %s (%s): %s\n", p.Object, p.Snapshot, p.What, p.Error)
				}
				read := ""
				if s := rep.Sample; s != nil {
					read = fmt.Sprintf(" (read %d: bucket %d of %d)", rep.ObjectsRead, s.Bucket, s.Buckets)
				}
				chains := ""
				if p := rep.PITR; p.Chains > 0 {
					chains = fmt.Sprintf(", %d point-in-time chains (%d segments, %d read)", p.Chains, p.Segments, p.SegmentsRead)
				}
				// BytesRead is the plaintext streamed through the checks (after decryption and
				// decompression), not what was downloaded: say so.
				checked := ""
				if rep.BytesRead > 0 {
					checked = fmt.Sprintf(", %s of data decompressed and checked", store.HumanBytes(rep.BytesRead))
				}
				fmt.Fprintf(cmd.OutOrStdout(), "verified %d snapshots, %d objects%s%s%s: %d problems\n", rep.Snapshots, rep.Objects, read, chains, checked, len(rep.Problems))
				if s := rep.Sample; s != nil && s.PositionError != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "WARN the rotation did not advance: %s\n", s.PositionError)
				}
			}
			if len(rep.Problems) > 0 {
				return &codeError{code: exitFailed, err: fmt.Errorf("%d problems", len(rep.Problems)), silent: a.json}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "verify every snapshot")
	c.Flags().BoolVar(&readData, "read-data", false, "read every object and check its checksum")
	c.Flags().StringVar(&sampleFlag, "sample", "", "with --read-data, read only the next P% of the objects (rotating: all within ⌈100/P⌉ runs), or bucket N/M")
	return c
}

func (a *app) pruneCommand() *cobra.Command {
	var dryRun bool
	var wait time.Duration
	c := &cobra.Command{
		Use:   "prune",
		Short: "Forget snapshots outside the retention policy and remove unreferenced objects",
		Long: `Apply [retention] (keep_last, keep_hourly/daily/weekly/monthly, min_age): snapshots no rule keeps
are forgotten, then every object no remaining snapshot references is deleted. Runs under the
repository lock, so it never races a backup. A PostgreSQL point-in-time chain goes with its base
snapshot (the newest chain's base is always kept); a chain whose base is kept stays whole.
--dry-run shows what would go.`,
		Example: examples("tracevault prune --dry-run", "tracevault prune --json"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			rep, err := jobs.Prune(cmd.Context(), r, jobs.RetentionPolicy(a.cfg.Retention), dryRun, wait)
			if err != nil {
				return failed(err)
			}
			if a.json {
				return a.printJSON(cmd, rep)
			}
			verb, forget, forgot := "removed", "forget", "forgot"
			if dryRun {
				verb, forget, forgot = "would remove", "would forget", "would forget"
			}
			for _, id := range rep.Forgotten {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", forget, id)
			}
			if rep.SweepSkipped != "" {
				printDamaged(cmd.OutOrStdout(), rep.Damaged)
				fmt.Fprintf(cmd.OutOrStdout(), "kept %d snapshots, %s %d; %s\n", len(rep.Kept), forgot, len(rep.Forgotten), rep.SweepSkipped)
				return nil
			}
			for _, c := range rep.PITRChains {
				what := "point-in-time chain " + c.Chain + " (base " + c.Base + " forgotten)"
				if c.Leftover {
					what = "leftover of point-in-time chain " + c.Chain
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %d segments, %d files (%s)\n", verb, what, c.Segments, c.Files, store.HumanBytes(c.Bytes))
			}
			for _, d := range rep.PITRDamaged {
				fmt.Fprintf(cmd.OutOrStdout(), "left alone: damaged point-in-time chain record %s: %s\n", d.Name, d.Error)
			}
			for _, r := range rep.Retained {
				fmt.Fprintf(cmd.OutOrStdout(), "retained by the storage (immutable): %s\n", r)
			}
			if rep.LeftoversRemoved > 0 || rep.RunsRemoved > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %d superseded append-only records and %d old run records\n", verb, rep.LeftoversRemoved, rep.RunsRemoved)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kept %d snapshots, %s %d; %s %d objects (%s); %d objects remain\n",
				len(rep.Kept), forgot, len(rep.Forgotten), verb, rep.ObjectsRemoved, store.HumanBytes(rep.BytesRemoved), rep.ObjectsRemaining)
			return nil
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be removed, remove nothing")
	c.Flags().DurationVar(&wait, "lock-wait", 5*time.Minute, "how long to wait for a running backup to release the repository")
	return c
}

func (a *app) initCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create the repository [storage] names",
		Long: `Create an empty repository at [storage] url, encrypted as [storage.encryption] says. Only init
and backup create a repository: every other command fails at a URL that holds none, so a typo
never starts a new, empty one. Fails if a repository is already there.`,
		Example: examples("tracevault init --config /etc/tracevault.toml"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.repo(cmd)
			if err == nil {
				return failed(fmt.Errorf("init: %s is already a repository (id %s)", r, r.ID()))
			}
			if !errors.Is(err, store.ErrNoRepository) {
				return err
			}
			if r, err = a.openRepo(cmd, jobs.CreateRepository); err != nil {
				return err
			}
			if a.json {
				return a.printJSON(cmd, map[string]string{"repository": r.String(), "id": r.ID()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created repository %s (id %s)\n", r, r.ID())
			return nil
		},
	}
}
