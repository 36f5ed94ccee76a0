package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

func (a *app) zkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zk",
		Short: "Inspect ZooKeeper: dump the tree, check the ensemble's health",
		Long: `Inspect the ZooKeeper ensemble that coordinates ClickHouse replication.

ZooKeeper keeps its whole tree in memory: a znode count or data size that keeps growing is the
early sign of the out-of-memory failure that stops every replicated table at once.`,
	}
	cmd.AddCommand(a.zkDumpCommand(), a.zkHealthCommand(), a.zkDiffCommand())
	return cmd
}

func (a *app) zkDumpCommand() *cobra.Command {
	var roots []string
	var noExclude bool
	c := &cobra.Command{
		Use:   "dump",
		Short: "Print the live tree under the configured roots (one node per line)",
		Long: `Walk the live tree under --root (default: [zookeeper] roots) and print each node's path,
data size, version and whether it is ephemeral. With --json, each node is a JSON line with its
data, stat and ACL: the same format a snapshot records. [zookeeper] exclude prunes high-churn
subtrees unless --no-exclude is given.`,
		Example: examples(
			"tracevault zk dump --root /clickhouse/tables",
			"tracevault zk dump --json > tree.jsonl"),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			conn, err := zookeeper.Connect(cmd.Context(), cfg.ZooKeeper.Servers, cfg.ZooKeeper.SessionTimeout.D(), a.log)
			if err != nil {
				return failed(err)
			}
			defer conn.Close()
			opts := zookeeper.RecordOptions{Roots: cfg.ZooKeeper.Roots, Exclude: cfg.ZooKeeper.Exclude}
			if len(roots) > 0 {
				opts.Roots = roots
			}
			if noExclude {
				opts.Exclude = nil
			}
			out := cmd.OutOrStdout()
			if a.json {
				_, err = zookeeper.Record(cmd.Context(), conn, opts, out)
				return wrapFailed(err)
			}
			pr, pw := io.Pipe()
			go func() {
				_, err := zookeeper.Record(cmd.Context(), conn, opts, pw)
				pw.CloseWithError(err)
			}()
			r := zookeeper.NewReader(pr)
			for {
				n, err := r.Next()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return failed(err)
				}
				flags := ""
				if n.Ephemeral {
					flags += " ephemeral"
				}
				if n.ChildrenExcluded {
					flags += fmt.Sprintf(" (%d children excluded)", n.Stat.NumChildren)
				}
				fmt.Fprintf(out, "%s  %dB v%d%s\n", n.Path, len(n.Data), n.Stat.Version, flags)
			}
		},
	}
	c.Flags().StringSliceVar(&roots, "root", nil, "subtree to dump (repeatable); default [zookeeper] roots")
	c.Flags().BoolVar(&noExclude, "no-exclude", false, "include the subtrees [zookeeper] exclude leaves out")
	return c
}

func (a *app) zkHealthCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "health",
		Short: "Report each ZooKeeper server's mode, znode count, data size, latency; exit 1 on problems",
		Long: `Ask each server of [zookeeper] servers with the four-letter-word commands ruok, mntr and srvr
(whitelist them with 4lw.commands.whitelist=ruok,mntr,srvr in zoo.cfg). Reports mode (leader,
follower, standalone), znode count, approximate data size, outstanding requests, latency, watches
and file descriptors, with warnings past the [zookeeper] warn_* thresholds.
Exits 1 when a server does not answer or a threshold is passed.`,
		Example: examples("tracevault zk health", "tracevault zk health --json | jq '.[0].znode_count'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			hs := zookeeper.Health(cmd.Context(), cfg.ZooKeeper.Servers, jobs.ZKThresholds(cfg.ZooKeeper), cfg.ZooKeeper.SessionTimeout.D())
			bad := 0
			for _, h := range hs {
				if !h.OK || len(h.Warnings) > 0 {
					bad++
				}
			}
			if a.json {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(hs); err != nil {
					return failed(err)
				}
			} else {
				printZKHealth(cmd.OutOrStdout(), hs)
			}
			if bad > 0 {
				return &codeError{code: exitFailed, err: fmt.Errorf("%d of %d zookeeper servers unhealthy", bad, len(hs)), silent: a.json}
			}
			return nil
		},
	}
}

func printZKHealth(w io.Writer, hs []zookeeper.ServerHealth) {
	for _, h := range hs {
		if !h.OK {
			fmt.Fprintf(w, "%-22s DOWN  %s\n", h.Server, h.Error)
			continue
		}
		fmt.Fprintf(w, "%-22s %-10s v%s  znodes %d  data %d B  outstanding %d  latency avg %.1f ms max %.0f ms  watches %d  fds %d/%d\n",
			h.Server, h.Mode, h.Version, h.ZnodeCount, h.ApproxDataSize, h.OutstandingRequests, h.AvgLatencyMs, h.MaxLatencyMs, h.WatchCount, h.OpenFDs, h.MaxFDs)
		for _, warn := range h.Warnings {
			fmt.Fprintf(w, "%-22s WARN  %s\n", "", warn)
		}
	}
}

func wrapFailed(err error) error {
	if err == nil {
		return nil
	}
	return failed(err)
}

func (a *app) zkDiffCommand() *cobra.Command {
	var withEphemeral bool
	c := &cobra.Command{
		Use:   "diff SNAP_A SNAP_B|live",
		Short: "Compare the ZooKeeper records of two snapshots, or a snapshot and the live tree",
		Long: `Print the nodes added, removed and changed (data, ACL) from SNAP_A to SNAP_B, where SNAP_B may be
'live' for the tree as it is now (walked with the same roots and excludes). Ephemeral nodes come
and go with sessions and are ignored unless --ephemeral is given. Exits 0 whether or not there are
differences; use --json to process them.`,
		Example: examples("tracevault zk diff 20261123T0300 20261124T0300", "tracevault zk diff latest live --json"),
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := a.repo(cmd)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			from, err := a.zkRecordSource(cmd, repo, args[0])
			if err != nil {
				return err
			}
			defer from.Close()
			to, err := a.zkRecordSource(cmd, repo, args[1])
			if err != nil {
				return err
			}
			defer to.Close()
			var changes []zookeeper.Change
			counts := map[string]int{}
			err = zookeeper.Diff(zookeeper.NewReader(from), zookeeper.NewReader(to), zookeeper.DiffOptions{IncludeEphemeral: withEphemeral}, func(c zookeeper.Change) error {
				counts[c.Kind]++
				if a.json {
					changes = append(changes, c)
					return nil
				}
				what := ""
				if len(c.What) > 0 {
					what = " (" + strings.Join(c.What, ", ") + ")"
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "%-8s %s%s\n", c.Kind, c.Path, what)
				return err
			})
			if err != nil {
				return failed(err)
			}
			if ctx.Err() != nil {
				return failed(ctx.Err())
			}
			if a.json {
				return a.printJSON(cmd, map[string]any{"changes": changes, "added": counts["added"], "removed": counts["removed"], "changed": counts["changed"]})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d added, %d removed, %d changed\n", counts["added"], counts["removed"], counts["changed"])
			return nil
		},
	}
	c.Flags().BoolVar(&withEphemeral, "ephemeral", false, "also compare ephemeral nodes")
	return c
}

// zkRecordSource opens a snapshot's ZooKeeper record, or walks the live tree for "live".
func (a *app) zkRecordSource(cmd *cobra.Command, repo *store.Repository, which string) (io.ReadCloser, error) {
	zc := a.cfg.ZooKeeper
	if which == "live" {
		conn, err := zookeeper.Connect(cmd.Context(), zc.Servers, zc.SessionTimeout.D(), a.log)
		if err != nil {
			return nil, failed(err)
		}
		pr, pw := io.Pipe()
		go func() {
			defer conn.Close()
			_, err := zookeeper.Record(cmd.Context(), conn, zookeeper.RecordOptions{Roots: zc.Roots, Exclude: zc.Exclude}, pw)
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
	m, err := repo.Snapshot(cmd.Context(), which)
	if err != nil {
		return nil, failed(err)
	}
	for _, o := range m.Objects {
		if o.Source == "zookeeper" && o.Kind == "zk-record" {
			rc, err := repo.OpenObject(cmd.Context(), o.ObjectRef)
			if err != nil {
				return nil, failed(err)
			}
			return rc, nil
		}
	}
	return nil, failed(fmt.Errorf("snapshot %s has no zookeeper record", m.ID))
}
