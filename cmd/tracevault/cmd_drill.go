package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/jobs"
)

func (a *app) drillCommand() *cobra.Command {
	var req jobs.DrillRequest
	c := &cobra.Command{
		Use:   "drill [ID]",
		Short: "Prove a snapshot set restores: restore into scratch databases, compare, drop them",
		Long: `Restore a snapshot set (default the newest complete one) into scratch targets that cannot touch
production, compare what landed with the manifest, record the result in the run history and
drop the scratch targets (keep them with --keep; drop kept ones by hand: a drill refuses scratch
databases that exist before it starts, since it drops what it restored into).

ClickHouse: every database db is restored as db_drill through the restore's --database-map, so
the replication paths move with the database; a plan that would write to a live database or
register under a live replication path is refused before anything is created. PostgreSQL: the
database is restored as db_drill next to the live one.

What is compared: every object's SHA-256 as it is read; ClickHouse partition row counts (the
restorer's check on every replica, then the active parts of each partition on the replica it
was loaded into) and, where the server has formatRow (20.x+, not 18.16), each partition's content
checksum, count() and the sum of a hash of each row, against the one the backup recorded (the
hash is cityHash64(tuple(*)) where the backup ran on 25.5+, else cityHash64(formatRow('TSV', *)));
PostgreSQL table row counts. On a server without formatRow the result says "content checksum:
not supported by this server" and rows are compared.

Measured: RTO, the seconds each source took to restore, and their total; RPO, the snapshot's
age when the drill started. Before starting, each filesystem on this host that holds a data
directory of a server the drill restores into must have room for what lands on it (free and
needed space are printed in KiB/MiB/GiB); data directories on other hosts are not measured and
the result says so. The repository's disk is not what is checked. The
drill fails after --timeout (default [drill] timeout, 1h). Exit status 1 when it fails.` + progressHelp,
		Example: examples(
			"tracevault drill",
			"tracevault drill 20261124T0315 --keep",
			"tracevault drill --json --timeout 30m"),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				req.Snapshot = args[0]
			}
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			a.startProgress(cmd, "drill")
			start := time.Now()
			res, err := jobs.Drill(cmd.Context(), a.cfg, r, req, a.log)
			a.progressDone(cmd.Context(), err)
			// A refused drill restored nothing and the operator sees why; recorded, it would read
			// as a failed restore with an RTO of 0 on the page.
			if !res.Refused {
				if _, rerr := jobs.RecordDrill(cmd.Context(), r, res, start); rerr != nil {
					a.log.Warn("could not record the drill in the run history", "err", rerr)
				}
			}
			if a.json {
				if jerr := a.printJSON(cmd, res); jerr != nil {
					return jerr
				}
			} else {
				out := cmd.OutOrStdout()
				fmt.Fprintln(out, drillHeadline(res))
				for _, s := range res.Sources {
					if s.Content != "" {
						fmt.Fprintf(out, "%s content checksum: %s\n", s.Source, s.Content)
					}
				}
				for _, m := range res.Mismatches {
					fmt.Fprintf(out, "mismatch: %s\n", m)
				}
				if res.DiskCheck != "" {
					fmt.Fprintf(out, "disk: %s\n", res.DiskCheck)
				}
				if res.Kept {
					fmt.Fprintln(out, keptLine(res))
				}
			}
			return wrapFailed(err)
		},
	}
	f := c.Flags()
	f.BoolVar(&req.Keep, "keep", false, "keep the scratch databases for inspection")
	f.DurationVar(&req.Timeout, "timeout", 0, "fail the drill after this long (default [drill] timeout)")
	return c
}

// drillHeadline is a drill's first line: what it measured, or that it was refused before it
// restored anything (no RTO to show).
func drillHeadline(res *jobs.DrillResult) string {
	snap := res.Snapshot
	if snap == "" {
		snap = "(none found)"
	}
	if res.Refused {
		return fmt.Sprintf("drill of snapshot %s refused before restoring anything: nothing was measured or changed", snap)
	}
	var per []string
	for _, s := range res.Sources {
		per = append(per, fmt.Sprintf("%s %.1fs into %s", s.Source, s.RestoreSeconds, strings.Join(s.Targets, ",")))
	}
	return fmt.Sprintf("drill of snapshot %s %s: RTO %.1fs (%s), RPO %.0fs", snap, res.Outcome, res.RTOSeconds, strings.Join(per, "; "), res.RPOSeconds)
}

// keptLine names what drill --keep left behind, for the operator to inspect and then drop.
func keptLine(res *jobs.DrillResult) string {
	var kept []string
	for _, s := range res.Sources {
		if s.Source == config.SourceClickHouse || s.Source == config.SourcePostgres {
			kept = append(kept, s.Source+" "+strings.Join(s.Targets, ", "))
		}
	}
	if len(kept) == 0 {
		return "nothing kept (--keep): the drill restored no database"
	}
	return "kept (--keep): " + strings.Join(kept, "; ") + "; drop them when done (a later drill refuses to start while they exist)"
}
