package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
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
			req := jobs.ZKDumpRequest{Roots: roots, NoExclude: noExclude}
			out := cmd.OutOrStdout()
			if a.json {
				return wrapFailed(jobs.ZKDump(cmd.Context(), cfg, req, out, a.log))
			}
			for n, err := range jobs.ZKNodes(cmd.Context(), cfg, req, a.log) {
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
			return nil
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
		Long: `Ask each server of [zookeeper] servers with the four-letter-word commands ruok, srvr, mntr and
isro (ZooKeeper: 4lw.commands.whitelist=ruok,srvr,mntr,isro in zoo.cfg; ClickHouse Keeper allows
them by default, <keeper_server><four_letter_word_allow_list>). Reports which server it is
(ZooKeeper or ClickHouse Keeper), mode (leader, follower, observer, standalone), znode count,
approximate data size, outstanding requests, latency, watches and file descriptors, with warnings
past the [zookeeper] warn_* thresholds and for a ZooKeeper in read-only mode.
Exits 1 when a server does not answer, a Keeper has no leader, or a warning is raised.`,
		Example: examples("tracevault zk health", "tracevault zk health --json | jq '.[0].znode_count'"),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			hs := jobs.ZKHealthReport(cmd.Context(), cfg)
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

func printZKHealth(w io.Writer, hs []jobs.ZKHealth) {
	for _, h := range hs {
		if !h.OK {
			fmt.Fprintf(w, "%-22s DOWN  %s\n", h.Server, h.Error)
			continue
		}
		fmt.Fprintf(w, "%-22s %-10s %s %s  znodes %d  data %d B  outstanding %d  latency avg %.1f ms max %.0f ms  watches %d  fds %d/%d\n",
			h.Server, h.Mode, serverName(h.Kind), h.Version, h.ZnodeCount, h.ApproxDataSize, h.OutstandingRequests, h.AvgLatencyMs, h.MaxLatencyMs, h.WatchCount, h.OpenFDs, h.MaxFDs)
		for _, warn := range h.Warnings {
			fmt.Fprintf(w, "%-22s WARN  %s\n", "", warn)
		}
	}
}

// serverName is how `zk health` names the kind of server that answered.
func serverName(kind string) string {
	if kind == jobs.ZKKindKeeper {
		return "ClickHouse Keeper"
	}
	return "ZooKeeper"
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
			var changes []jobs.ZKChange
			counts := map[string]int{}
			req := jobs.ZKDiffRequest{From: args[0], To: args[1], IncludeEphemeral: withEphemeral}
			err = jobs.ZKDiff(cmd.Context(), a.cfg, repo, req, a.log, func(c jobs.ZKChange) error {
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
