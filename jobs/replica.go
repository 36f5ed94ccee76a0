package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tracevault/tracevault/config"
	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/replica"
	"github.com/tracevault/tracevault/snapshot/progress"
	"github.com/tracevault/tracevault/snapshot/store"
)

// ReplicaRequest is one replica rebuild: `tracevault restore-replica`.
type ReplicaRequest struct {
	Replica string // its configured host:port, or its {replica} macro
	// FromSnapshot is the snapshot (ID, prefix or "latest") holding the local tables' rows, and
	// the definitions when no peer is healthy; empty for none.
	FromSnapshot string
	SyncTimeout  time.Duration // per table, for the fetch from the peers
}

// ReplicaRebuild is a rebuild whose snapshot, if it names one, was read: the first of its
// three steps, NewReplicaRebuild → Plan → ReplicaPlan.Run.
type ReplicaRebuild struct {
	cfg  *config.Config
	repo *store.Repository
	req  ReplicaRequest
	opts replica.Options
}

// NewReplicaRebuild reads the ClickHouse section of req.FromSnapshot from repo; repo may be nil
// without one.
func NewReplicaRebuild(ctx context.Context, cfg *config.Config, repo *store.Repository, req ReplicaRequest) (*ReplicaRebuild, error) {
	rb := &ReplicaRebuild{cfg: cfg, repo: repo, req: req, opts: replica.Options{SyncTimeout: req.SyncTimeout}}
	if req.FromSnapshot == "" {
		return rb, nil
	}
	m, err := FindSnapshot(ctx, repo, req.FromSnapshot)
	if err != nil {
		return nil, err
	}
	if rb.opts.Snapshot, rb.opts.Objects, err = clickhouse.SnapshotSection(m); err != nil {
		return nil, err
	}
	rb.opts.SnapshotID = m.ID
	return rb, nil
}

// ReplicaPlan is a planned rebuild, its replica, peers and ZooKeeper connected: --dry-run
// prints it, Run executes it. Close it when done.
type ReplicaPlan struct {
	*replica.Plan
	b       *replica.Rebuilder
	repo    *store.Repository
	log     *slog.Logger
	closers []func()
}

// Plan connects to every configured replica and to ZooKeeper, and plans the steps that bring
// the replica back into its replication groups.
func (rb *ReplicaRebuild) Plan(ctx context.Context, log *slog.Logger) (*ReplicaPlan, error) {
	ch, zc := rb.cfg.ClickHouse, rb.cfg.ZooKeeper
	opts := rb.opts
	opts.Log = log
	opts.Filter = clickhouse.Filter{Databases: ch.Databases, Include: ch.IncludeTables, Exclude: ch.ExcludeTables}
	opts.Conn = ClickHouseConn(ch)
	servers, httpOf, err := clickhouse.Connect(ctx, ch.Addresses, ch.HTTPAddresses, opts.Conn, log)
	if err != nil {
		return nil, err
	}
	p := &ReplicaPlan{repo: rb.repo, log: log, closers: []func(){func() { closeServers(servers) }}}
	opts.HTTP = httpOf
	if len(zc.Servers) == 0 {
		p.Close()
		return nil, usageError{fmt.Errorf("restore-replica needs [zookeeper] servers: the replica re-registers there")}
	}
	conn, err := zkConnect(ctx, zc, zc.SessionTimeout.D(), log)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("restore-replica: %w; replication cannot resume without ZooKeeper", err)
	}
	p.closers = append(p.closers, conn.Close)
	p.b = replica.NewRebuilder(ctx, servers, ch.Addresses, conn, opts)
	if p.Plan, err = p.b.Plan(ctx, rb.req.Replica); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Write prints the plan for --dry-run.
func (p *ReplicaPlan) Write(w io.Writer) { replica.WritePlan(w, p.Plan) }

// MarshalJSON is the plan as --dry-run --json prints it.
func (p *ReplicaPlan) MarshalJSON() ([]byte, error) { return json.Marshal(p.Plan) }

// Run executes the plan, reporting each step to the progress in ctx and the log.
func (p *ReplicaPlan) Run(ctx context.Context) (*replica.Result, error) {
	rep := progress.From(ctx)
	unit := func(s replica.Step) progress.Unit {
		return progress.Unit{Source: config.SourceClickHouse, Table: s.Target, Partition: string(s.Action)}
	}
	steps := p.Steps
	for _, s := range steps {
		rep.Plan(unit(s))
	}
	if len(steps) > 0 {
		rep.Begin(unit(steps[0]))
	}
	return p.b.Execute(ctx, p.repo, p.Plan, func(done, total int, s replica.Step, detail string) {
		if detail != "" {
			p.log.Info("waiting for the replica to fetch", "table", s.Target, "progress", detail)
			return
		}
		p.log.Info("step done", "step", fmt.Sprintf("%d/%d", done, total), "action", s.Action, "target", s.Target)
		rep.End(unit(s))
		if done < len(steps) {
			rep.Begin(unit(steps[done]))
		}
	})
}

// Close releases the plan's connections.
func (p *ReplicaPlan) Close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}
