package jobs

import (
	"context"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// ZKThresholds maps [zookeeper] warn_* to the health check's thresholds.
func ZKThresholds(z config.ZooKeeper) zookeeper.Thresholds {
	return zookeeper.Thresholds{ZnodeCount: z.WarnZnodeCount, DataSize: int64(z.WarnDataSize), OutstandingRequests: z.WarnOutstandingRequests}
}

// ZooKeeper reports each configured ensemble member's health, bounded by ctx and the session
// timeout, for the status page.
func (d *Daemon) ZooKeeper(ctx context.Context) ([]zookeeper.ServerHealth, error) {
	zc := d.cfg.ZooKeeper
	timeout := zc.SessionTimeout.D()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	return zookeeper.Health(ctx, zc.Servers, ZKThresholds(zc), timeout), nil
}

// Snapshot returns one snapshot's manifest (ID may be a unique prefix or "latest").
func (d *Daemon) Snapshot(ctx context.Context, id string) (*store.Manifest, error) {
	return d.repo.Snapshot(ctx, id)
}

// VerifySnapshot checks that every object of one snapshot exists with its recorded size: the
// status page's quick verify (a full read is `tracevault verify --read-data`).
func (d *Daemon) VerifySnapshot(ctx context.Context, id string) (store.VerifyReport, error) {
	m, err := d.repo.Snapshot(ctx, id)
	if err != nil {
		return store.VerifyReport{}, err
	}
	return d.repo.Verify(ctx, []string{m.ID}, false)
}
