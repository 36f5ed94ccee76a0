package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

func (a *app) backupCommand() *cobra.Command {
	var req jobs.BackupRequest
	c := &cobra.Command{
		Use:   "backup",
		Short: "Take one snapshot set now (postgres, clickhouse, zookeeper, blobs)",
		Long: `Take one snapshot set: every configured source (or --only some) into ONE snapshot whose
manifest records each source's start and end. ClickHouse partitions whose parts did not change
since an earlier snapshot reuse its objects (incremental); so do blobs whose name, size and MD5
(or ETag) did not change, which are not even read. If any source fails the snapshot is
recorded as partial with the error, never as complete, and the command exits 1. Each --tables
glob must select a table within [clickhouse] databases: one that selects none (a typo) exits 1
naming it, and nothing is recorded. A set narrowed by --only or --tables records its scope and
is never 'latest', which names the newest full set ('tracevault list' shows each scope).` + progressHelp,
		Example: examples(
			"tracevault backup",
			"tracevault backup --only clickhouse,zookeeper --tag before-upgrade",
			"tracevault backup --only clickhouse --tables 'default.traces' --json"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := a.openRepo(cmd, jobs.CreateRepository)
			if err != nil {
				return err
			}
			pr := a.startProgress(cmd, "backup")
			m, err := jobs.Backup(cmd.Context(), a.cfg, r, req, a.log)
			pr.finish(cmd.Context(), err)
			if m == nil {
				return failed(err)
			}
			if cmd.Context().Err() != nil && m.Status != store.StatusComplete {
				not := []string{}
				for _, c := range m.Components {
					if c.Status != store.StatusComplete {
						not = append(not, c.Source)
					}
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "interrupted: snapshot %s is recorded as %s with the %d objects stored so far; not finished: %s. It is not listed as complete, and restore refuses it without --allow-partial.\n",
					m.ID, m.Status, len(m.Objects), strings.Join(not, ", "))
			}
			if a.json {
				if jerr := a.printJSON(cmd, m); jerr != nil {
					return jerr
				}
			} else {
				t := m.Totals()
				fmt.Fprintf(cmd.OutOrStdout(), "snapshot %s %s: %d objects, %s stored, %s new, %d reused, in %s\n",
					m.ID, m.Status, t.Objects, store.HumanBytes(t.Bytes), store.HumanBytes(t.NewBytes), t.Reused, m.End.Sub(m.Start).Round(time.Millisecond))
			}
			if errors.Is(err, jobs.ErrPartial) {
				return &codeError{code: exitFailed, err: err}
			}
			return wrapFailed(err)
		},
	}
	f := c.Flags()
	f.StringSliceVar(&req.Only, "only", nil, "sources to back up: postgres, clickhouse, zookeeper, blobs (default all configured)")
	f.StringSliceVar(&req.Tables, "tables", nil, "ClickHouse tables as db.table globs, each selecting at least one (default [clickhouse] include_tables)")
	f.StringSliceVar(&req.Tags, "tag", nil, "tag the snapshot (repeatable)")
	f.DurationVar(&req.LockWait, "lock-wait", 10*time.Minute, "how long to wait for another backup or prune to finish")
	return c
}
