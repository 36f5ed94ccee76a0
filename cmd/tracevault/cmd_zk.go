package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/config"
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
	cmd.AddCommand(a.zkDumpCommand(), a.zkHealthCommand())
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
			hs := zookeeper.Health(cmd.Context(), cfg.ZooKeeper.Servers, zkThresholds(cfg.ZooKeeper), cfg.ZooKeeper.SessionTimeout.D())
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

func zkThresholds(z config.ZooKeeper) zookeeper.Thresholds {
	return zookeeper.Thresholds{ZnodeCount: z.WarnZnodeCount, DataSize: int64(z.WarnDataSize), OutstandingRequests: z.WarnOutstandingRequests}
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
