package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// stub is a command whose name and flags are already a contract but whose work lands with a
// later change. It refuses to run rather than pretend.
type stub struct {
	use, short, example string
}

var stubs = []stub{
	{"restore-replica REPLICA", "Rebuild a lost or isolated ClickHouse replica so it rejoins its replication group", "tracevault restore-replica 127.0.0.1:9000 --dry-run"},
	{"check", "Check replica consistency, ZooKeeper health and migrations; exit 1 on problems", "tracevault check --json"},
	{"migrate", "Run versioned schema migrations through schema_migrations", "tracevault migrate --target clickhouse status"},
}

var errNotImplemented = errors.New("not implemented yet")

func stubCommands() []*cobra.Command {
	cmds := make([]*cobra.Command, 0, len(stubs))
	for _, s := range stubs {
		s := s
		cmds = append(cmds, &cobra.Command{
			Use:                s.use,
			Short:              s.short,
			Long:               s.short + ".\n\nThis command is not implemented yet in this build.",
			Example:            examples(s.example),
			Args:               cobra.ArbitraryArgs,
			FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
			RunE: func(cmd *cobra.Command, _ []string) error {
				return failed(fmt.Errorf("tracevault %s: %w", cmd.Name(), errNotImplemented))
			},
		})
	}
	return cmds
}
