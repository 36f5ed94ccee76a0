package jobs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// CheckCluster runs the replica consistency check over the configured replicas and ensemble:
// the one mapping from the configuration that `tracevault check` and the status page share.
func CheckCluster(ctx context.Context, cfg *config.Config, maxDelay time.Duration, log *slog.Logger) (*replica.Report, error) {
	ch := cfg.ClickHouse
	servers, _, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, ClickHouseConn(ch), log)
	if err != nil {
		return nil, fmt.Errorf("check: %w; start the servers or fix [clickhouse] addresses", err)
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	var conn *zk.Conn
	var health []zookeeper.ServerHealth
	zkErr := ""
	if zc := cfg.ZooKeeper; len(zc.Servers) > 0 {
		timeout := zc.SessionTimeout.D()
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
			timeout = time.Until(dl)
		}
		health = zookeeper.Health(ctx, zc.Servers, ZKThresholds(zc), timeout)
		// Without a session the registrations are unknown; the report says so.
		if conn, err = zkConnect(ctx, zc, timeout, log); err == nil {
			defer conn.Close()
		} else {
			zkErr = err.Error()
		}
	}
	// The migrated database is checked too, for its schema_migrations, even when it is not among
	// the databases backed up.
	dbs := ch.Databases
	if m := cfg.Migrate.ClickHouseDatabase; m != "" {
		dbs = append(append([]string{}, dbs...), m)
	}
	return replica.Check(ctx, servers, ch.Addresses, conn, replica.CheckOptions{
		Filter:    clickhouse.Filter{Databases: dbs, Include: ch.IncludeTables, Exclude: ch.ExcludeTables},
		ZooKeeper: health, MaxDelay: maxDelay, ZooKeeperError: zkErr,
	})
}

// Replicas is the replica consistency report for the status page.
func (d *Daemon) Replicas(ctx context.Context) (*replica.Report, error) {
	if len(d.cfg.ClickHouse.Addresses) == 0 {
		return nil, nil
	}
	return CheckCluster(ctx, d.cfg, 5*time.Minute, d.log)
}

// WriteCheckReport prints a check's report as `tracevault check` shows it: the matrix, then
// each problem with its fix.
func WriteCheckReport(w io.Writer, rep *replica.Report) { replica.WriteReport(w, rep) }
