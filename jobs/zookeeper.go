package jobs

import (
	"context"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/store"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// ZKNode is one node of a ZooKeeper tree, as `zk dump` prints it; ZKChange one difference
// between two trees; ZKHealth one server's health.
type (
	ZKNode   = zookeeper.Node
	ZKChange = zookeeper.Change
	ZKHealth = zookeeper.ServerHealth
)

// ZKKindKeeper is ZKHealth.Kind of a ClickHouse Keeper.
const ZKKindKeeper = zookeeper.KindKeeper

// zkConnect opens a session to [zookeeper] servers, authenticated as [zookeeper] identity.
func zkConnect(ctx context.Context, zc config.ZooKeeper, timeout time.Duration, log *slog.Logger) (*zk.Conn, error) {
	return zookeeper.Connect(ctx, zc.Servers, timeout, log, zookeeper.WithIdentity(zc.Identity.Reveal()))
}

// ZKDumpRequest is one walk of the live tree: `tracevault zk dump`.
type ZKDumpRequest struct {
	Roots     []string // default [zookeeper] roots
	NoExclude bool     // keep the subtrees [zookeeper] exclude leaves out
}

func (req ZKDumpRequest) options(zc config.ZooKeeper) zookeeper.RecordOptions {
	opts := zookeeper.RecordOptions{Roots: zc.Roots, Exclude: zc.Exclude}
	if len(req.Roots) > 0 {
		opts.Roots = req.Roots
	}
	if req.NoExclude {
		opts.Exclude = nil
	}
	return opts
}

// ZKDump writes the live tree as a record to w: one JSON line per node, the format a
// snapshot records.
func ZKDump(ctx context.Context, cfg *config.Config, req ZKDumpRequest, w io.Writer, log *slog.Logger) error {
	zc := cfg.ZooKeeper
	conn, err := zkConnect(ctx, zc, zc.SessionTimeout.D(), log)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = zookeeper.Record(ctx, conn, req.options(zc), w)
	return err
}

// ZKNodes walks the live tree, yielding its nodes in the record's order; a failure is the last
// thing yielded.
func ZKNodes(ctx context.Context, cfg *config.Config, req ZKDumpRequest, log *slog.Logger) iter.Seq2[*ZKNode, error] {
	return func(yield func(*ZKNode, error) bool) {
		zc := cfg.ZooKeeper
		conn, err := zkConnect(ctx, zc, zc.SessionTimeout.D(), log)
		if err != nil {
			yield(nil, err)
			return
		}
		defer conn.Close()
		pr, pw := io.Pipe()
		defer pr.Close()
		go func() {
			_, err := zookeeper.Record(ctx, conn, req.options(zc), pw)
			pw.CloseWithError(err)
		}()
		r := zookeeper.NewReader(pr)
		for {
			n, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(n, err) || err != nil {
				return
			}
		}
	}
}

// ZKHealthReport asks each server of [zookeeper] servers how it is, with warnings past the
// [zookeeper] warn_* thresholds.
func ZKHealthReport(ctx context.Context, cfg *config.Config) []ZKHealth {
	zc := cfg.ZooKeeper
	return zookeeper.Health(ctx, zc.Servers, ZKThresholds(zc), zc.SessionTimeout.D())
}

// ZKDiffRequest compares the ZooKeeper records of two snapshots, or of a snapshot and the
// live tree ("live"): `tracevault zk diff`.
type ZKDiffRequest struct {
	From, To         string
	IncludeEphemeral bool
}

// ZKDiff calls fn with each node added, removed or changed from req.From to req.To.
func ZKDiff(ctx context.Context, cfg *config.Config, repo *store.Repository, req ZKDiffRequest, log *slog.Logger, fn func(ZKChange) error) error {
	from, err := openZKRecord(ctx, cfg, repo, req.From, log)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := openZKRecord(ctx, cfg, repo, req.To, log)
	if err != nil {
		return err
	}
	defer to.Close()
	err = zookeeper.Diff(zookeeper.NewReader(from), zookeeper.NewReader(to), zookeeper.DiffOptions{IncludeEphemeral: req.IncludeEphemeral}, fn)
	if err != nil {
		return err
	}
	return ctx.Err()
}

// openZKRecord opens a snapshot's ZooKeeper record, or walks the live tree for "live".
func openZKRecord(ctx context.Context, cfg *config.Config, repo *store.Repository, which string, log *slog.Logger) (io.ReadCloser, error) {
	zc := cfg.ZooKeeper
	if which == "live" {
		conn, err := zkConnect(ctx, zc, zc.SessionTimeout.D(), log)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		go func() {
			defer conn.Close()
			_, err := zookeeper.Record(ctx, conn, zookeeper.RecordOptions{Roots: zc.Roots, Exclude: zc.Exclude}, pw)
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
	m, err := repo.Snapshot(ctx, which)
	if err != nil {
		return nil, err
	}
	if err := repo.RequireSource(ctx, m, config.SourceZooKeeper); err != nil {
		return nil, err // names the newest set that holds the record
	}
	for _, o := range m.Objects {
		if o.Source == config.SourceZooKeeper && o.Kind == "zk-record" {
			return repo.OpenObject(ctx, o.ObjectRef)
		}
	}
	return nil, fmt.Errorf("snapshot %s has no zookeeper record", m.ID)
}
