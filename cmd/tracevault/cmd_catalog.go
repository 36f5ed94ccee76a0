package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// repo loads the configuration and opens its repository.
func (a *app) repo(cmd *cobra.Command) (*store.Repository, error) {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	r, err := jobs.OpenRepository(cmd.Context(), cfg.Storage, a.log)
	if err != nil {
		return nil, failed(err)
	}
	return r, nil
}

func (a *app) printJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printPlan shows a --dry-run plan: as JSON for scripts, else in the plan's own words.
func printPlan[P any](a *app, cmd *cobra.Command, plan P, write func(io.Writer, P)) error {
	if a.json {
		return a.printJSON(cmd, plan)
	}
	write(cmd.OutOrStdout(), plan)
	return nil
}

// listEntry is one row of `list`, also its --json shape.
type listEntry struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Status   string    `json:"status"`
	Sources  []string  `json:"sources"`
	Bytes    int64     `json:"bytes"`
	NewBytes int64     `json:"new_bytes"`
	Objects  int       `json:"objects"`
	Duration float64   `json:"duration_seconds"`
	Tags     []string  `json:"tags,omitempty"`
	Error    string    `json:"error,omitempty"`
}

func (a *app) listCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List snapshots in the repository, oldest first",
		Long: `List every snapshot: id, time (UTC), status, sources, size, new bytes (uploaded by that
snapshot; the rest was reused from earlier ones), duration and tags. A partial snapshot is one
whose components did not all succeed; its error says which.`,
		Example: examples("tracevault list", "tracevault list --json | jq -r '.[] | select(.status==\"complete\") | .id'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			snaps, err := r.Snapshots(cmd.Context())
			if err != nil {
				return failed(err)
			}
			entries := make([]listEntry, 0, len(snaps))
			for _, m := range snaps {
				t := m.Totals()
				entries = append(entries, listEntry{ID: m.ID, Time: m.Start, Status: m.Status, Sources: m.Sources(), Bytes: t.Bytes,
					NewBytes: t.NewBytes, Objects: t.Objects, Duration: m.End.Sub(m.Start).Seconds(), Tags: m.Tags, Error: m.Error})
			}
			if a.json {
				return a.printJSON(cmd, entries)
			}
			if len(entries) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no snapshots in %s yet; take one with 'tracevault backup'\n", r)
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME (UTC)\tSTATUS\tSOURCES\tSIZE\tNEW\tDURATION\tTAGS")
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.UTC().Format("2006-01-02 15:04:05"), e.Status,
					strings.Join(e.Sources, ","), store.HumanBytes(e.Bytes), store.HumanBytes(e.NewBytes),
					time.Duration(e.Duration*float64(time.Second)).Round(time.Second), strings.Join(e.Tags, ","))
			}
			return w.Flush()
		},
	}
}

func (a *app) showCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID",
		Short:   "Show what a snapshot holds, per source, database, table and partition",
		Long:    "Show a snapshot's components and every object it references. ID may be a unique prefix, or 'latest' for the newest complete snapshot.",
		Example: examples("tracevault show latest", "tracevault show 20261124T0315 --json"),
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
			printManifest(cmd.OutOrStdout(), m)
			return nil
		},
	}
}

func printManifest(out io.Writer, m *store.Manifest) {
	t := m.Totals()
	fmt.Fprintf(out, "snapshot %s  %s  host %s\n", m.ID, m.Status, m.Host)
	fmt.Fprintf(out, "time     %s .. %s (%s)\n", m.Start.UTC().Format(time.RFC3339), m.End.UTC().Format(time.RFC3339), m.End.Sub(m.Start).Round(time.Second))
	fmt.Fprintf(out, "size     %s in %d objects, %s new, %d reused\n", store.HumanBytes(t.Bytes), t.Objects, store.HumanBytes(t.NewBytes), t.Reused)
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

func objectKey(o store.ManifestObject) string {
	return strings.Join([]string{o.Source, o.Database, o.Table, o.Partition, o.Replica}, "\x00")
}

func (a *app) deleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Short:   "Forget one snapshot; prune then removes objects nothing else references",
		Example: examples("tracevault delete 20261124T031500Z-1a2b3c"),
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
			lock, err := r.Lock(cmd.Context(), "delete", time.Minute)
			if err != nil {
				return failed(err)
			}
			defer lock.Release(cmd.Context())
			if err := r.DeleteSnapshot(cmd.Context(), m.ID); err != nil {
				return failed(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted snapshot %s; run 'tracevault prune' to free its objects\n", m.ID)
			return nil
		},
	}
}

func (a *app) verifyCommand() *cobra.Command {
	var all, readData bool
	c := &cobra.Command{
		Use:   "verify [ID...]",
		Short: "Check that snapshots' objects exist and, with --read-data, are intact",
		Long: `Check every object the given snapshots (or --all) reference: that it exists with the recorded
size; with --read-data, also download, decrypt, decompress and check its SHA-256. Each bad object
is named with the snapshot and what it holds. Exits 1 if any object is bad.`,
		Example: examples("tracevault verify --all", "tracevault verify latest --read-data --json"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !all {
				return usage(fmt.Errorf("give snapshot ids or --all"))
			}
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			rep, err := r.Verify(cmd.Context(), args, readData)
			if err != nil {
				return failed(err)
			}
			if a.json {
				if err := a.printJSON(cmd, rep); err != nil {
					return err
				}
			} else {
				for _, p := range rep.Problems {
					fmt.Fprintf(cmd.OutOrStdout(), "BAD  %s  snapshot %s (%s): %s\n", p.Object, p.Snapshot, p.What, p.Error)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "verified %d snapshots, %d objects, %s read: %d problems\n", rep.Snapshots, rep.Objects, store.HumanBytes(rep.BytesRead), len(rep.Problems))
			}
			if len(rep.Problems) > 0 {
				return &codeError{code: exitFailed, err: fmt.Errorf("%d bad objects", len(rep.Problems)), silent: a.json}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&all, "all", false, "verify every snapshot")
	c.Flags().BoolVar(&readData, "read-data", false, "read every object and check its checksum")
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
repository lock, so it never races a backup. --dry-run shows what would go.`,
		Example: examples("tracevault prune --dry-run", "tracevault prune --json"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			rep, err := r.Prune(cmd.Context(), jobs.RetentionPolicy(a.cfg.Retention), dryRun, wait)
			if err != nil {
				return failed(err)
			}
			if a.json {
				return a.printJSON(cmd, rep)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, id := range rep.Forgotten {
				fmt.Fprintf(cmd.OutOrStdout(), "forget %s\n", id)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kept %d snapshots, forgot %d; %s %d objects (%s); %d objects remain\n",
				len(rep.Kept), len(rep.Forgotten), verb, rep.ObjectsRemoved, store.HumanBytes(rep.BytesRemoved), rep.ObjectsRemaining)
			return nil
		},
	}
	c.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be removed, remove nothing")
	c.Flags().DurationVar(&wait, "lock-wait", 5*time.Minute, "how long to wait for a running backup to release the repository")
	return c
}
