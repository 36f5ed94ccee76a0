package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

func (a *app) replayEventsCommand() *cobra.Command {
	var (
		req   jobs.ReplayRequest
		since string
	)
	c := &cobra.Command{
		Use:   "replay-events (--snapshot ID | --since TIME)",
		Short: "Recover ClickHouse past its snapshot: have Langfuse re-ingest its raw events written since",
		Long: `Langfuse writes every event it accepts to its events container ([blobs] url, under [langfuse]
events_prefix) before ingesting it. After ClickHouse was restored from a snapshot, this lists
that container for the events written after the snapshot's cut (--snapshot; the earliest of its
sources' cuts) or after --since, less [langfuse] replay_margin, and sends their keys in time
order to Langfuse's admin route POST /api/admin/ingestion-replay (Authorization: Bearer
[langfuse] admin_api_key, the instance's ADMIN_API_KEY) in batches of up to 1000, paced by
replay_keys_per_second, retrying 429 and 5xx answers. Langfuse's worker re-ingests them; an
event ClickHouse already holds is replaced by itself, so replaying too much is harmless.

The window ends when the first run starts; events written later were ingested by Langfuse
itself. After each batch Langfuse acknowledges, a checkpoint ([langfuse] replay_state) is saved:
run the same command again after an interruption to resume without resending (at most the one
batch whose answer was not received is sent again). --fresh starts over.

Keys that cannot be replayed (unknown entity types such as sdk_log, malformed names, not .json)
are counted and the first named, never dropped silently; a key Langfuse skips is reported with
its reason. The result states the recovery point, e.g. "ClickHouse at the snapshot S (cut
11:45:00Z), then 4,812 events written until 11:58:31Z replayed", and is kept in the run history.

--dry-run lists and counts (by project and entity type, the time range, the unreplayable keys,
and whether the window reaches past [langfuse] events_retention) and sends nothing.
See docs/replay-events.md.` + progressHelp,
		Example: examples(
			"tracevault replay-events --snapshot latest --dry-run",
			"tracevault replay-events --snapshot 20261130T1145",
			"tracevault replay-events --since 2026-11-30T11:45:00Z --json",
			"tracevault restore latest --only clickhouse --cluster --replay-events"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if (since == "") == (req.Snapshot == "") {
				return usage(errors.New("give one of --snapshot ID (replay after its cut) or --since TIME"))
			}
			if since != "" {
				t, err := time.Parse(time.RFC3339, since)
				if err != nil {
					return usage(fmt.Errorf("--since %q: want an RFC 3339 time such as 2026-11-30T11:45:00Z", since))
				}
				req.Since = t
			}
			r, err := a.repo(cmd)
			if err != nil {
				return err
			}
			return a.replayEvents(cmd, r, req)
		},
	}
	fl := c.Flags()
	fl.StringVar(&req.Snapshot, "snapshot", "", "replay the events written after this snapshot's cut (an ID, a unique prefix or 'latest')")
	fl.StringVar(&since, "since", "", "replay the events written after this RFC 3339 time")
	fl.BoolVar(&req.DryRun, "dry-run", false, "list and count what would be replayed, send nothing")
	fl.BoolVar(&req.Fresh, "fresh", false, "ignore the checkpoint of an earlier run of the same replay and start over")
	return c
}

// replayEvents runs a replay and prints its result; restore --replay-events runs it too.
func (a *app) replayEvents(cmd *cobra.Command, repo *store.Repository, req jobs.ReplayRequest) error {
	if !req.DryRun {
		a.startProgress(cmd, "replay-events")
	}
	res, err := jobs.ReplayEvents(cmd.Context(), a.cfg, repo, req, a.log)
	a.progressDone(cmd.Context(), err)
	if res == nil {
		return failed(err)
	}
	if a.json {
		if jerr := a.printJSON(cmd, res); jerr != nil {
			return jerr
		}
	} else {
		printReplay(cmd.OutOrStdout(), res)
	}
	if err != nil {
		return failed(err)
	}
	return nil
}

func printReplay(w io.Writer, res *jobs.ReplayEventsResult) {
	sel := res.Selection
	fmt.Fprintf(w, "events container %s, written %s .. %s", res.Container, stamp(sel.Window.Since), stamp(sel.Window.Until))
	if res.Snapshot != "" {
		fmt.Fprintf(w, " (snapshot %s cut %s, skew %.1fs, less a %gs margin)", res.Snapshot, stamp(res.Cut), res.CutSkewSeconds, res.MarginSeconds)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%d events to replay", sel.Count)
	if sel.Count > 0 {
		fmt.Fprintf(w, ", written %s .. %s; by project: %s; by type: %s", stamp(sel.First), stamp(sel.Last), counts(sel.ByProject), counts(sel.ByType))
	}
	fmt.Fprintln(w)
	if sel.Unreplayable > 0 {
		fmt.Fprintf(w, "%d keys cannot be replayed (first %d):\n", sel.Unreplayable, len(sel.Named))
		for _, k := range sel.Named {
			fmt.Fprintf(w, "  %s: %s\n", k.Key, k.Reason)
		}
	}
	if !res.LifecycleCutoff.IsZero() {
		fmt.Fprintf(w, "warning: the window starts before %s, past [langfuse] events_retention: events written before then may be gone\n", stamp(res.LifecycleCutoff))
	}
	if rp := res.Replay; rp != nil {
		fmt.Fprintf(w, "sent %d keys in %d batches (%d by an earlier run); Langfuse queued %d, skipped %d\n", rp.Sent, rp.Batches, rp.Resumed, rp.Queued, rp.Skipped)
		for _, e := range rp.Errors {
			fmt.Fprintf(w, "  skipped by Langfuse: %s\n", e)
		}
		if !rp.Done {
			fmt.Fprintf(w, "checkpoint %s: run the same command again to resume\n", res.Checkpoint)
		}
	}
	fmt.Fprintln(w, res.RecoveryPoint)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// counts writes a count per name, largest first: "p1 4000, p2 812".
func counts(m map[string]int) string {
	names := slices.SortedFunc(maps.Keys(m), func(x, y string) int {
		if m[x] != m[y] {
			return m[y] - m[x]
		}
		return strings.Compare(x, y)
	})
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
}

// restoredClickHouseThenReplay reports a ClickHouse restore and, once it succeeded, replays the
// events written after the restored snapshot's cut. The replay starts fresh: the restore just
// replaced whatever an earlier replay had sent.
func (a *app) restoredClickHouseThenReplay(cmd *cobra.Command, res *jobs.RestoreResult, err error) error {
	if err != nil || a.json {
		// With --json, stdout carries the replay's result alone; the restore's is in its log.
		if err != nil {
			return a.restoredClickHouse(cmd, res, err)
		}
		a.progressDone(cmd.Context(), nil)
		a.log.Info("restored; "+res.Reach.Summary(), "snapshot", res.Snapshot, "steps", res.Steps)
	} else if rerr := a.restoredClickHouse(cmd, res, nil); rerr != nil {
		return rerr
	}
	repo, rerr := a.repo(cmd)
	if rerr != nil {
		return rerr
	}
	return a.replayEvents(cmd, repo, jobs.ReplayRequest{Snapshot: res.Snapshot, Fresh: true, Restored: true})
}
