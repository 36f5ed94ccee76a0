// Planning a restore: which databases, tables and partitions to create and load from a
// snapshot, where, and refusing non-empty targets. Executing the plan is in execute.go.

package restore

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Plan builds the restore plan for a snapshot's clickhouse section, refusing targets that
// already hold rows in a partition to be loaded unless Replace is set.
func (r *Restorer) Plan(ctx context.Context, m *store.Manifest) (*Plan, error) {
	sec, objects, err := clickhouse.SnapshotSection(m)
	if err != nil {
		return nil, err
	}
	filter := clickhouse.Filter{Databases: []string{"*"}, Include: r.opts.Tables}
	plan := &Plan{Snapshot: m.ID}
	dbs := map[string]bool{}
	var views []Step
	for i := range sec.Tables {
		t := &sec.Tables[i]
		if !filter.Matches(t.Database, t.Name) {
			continue
		}
		dst := r.target(t.Database)
		full := dst + "." + t.Name
		if !dbs[dst] {
			dbs[dst] = true
			create, err := r.createDatabase(sec, t.Database, dst)
			if err != nil {
				return nil, fmt.Errorf("plan database %s of snapshot %s: %w", dst, m.ID, err)
			}
			plan.Steps = append(plan.Steps, Step{Action: ActionCreateDatabase, Target: dst, SQL: create})
		}
		create, err := clickhouse.RewriteCreate(t.Create, r.rewrite(t, dst))
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", t.FullName(), err)
		}
		step := Step{Action: ActionCreateTable, Target: full, SQL: create, table: t}
		if t.IsView() {
			step.Action = ActionCreateView
			views = append(views, step) // after the data, so materialized views never fire twice
			continue
		}
		plan.Steps = append(plan.Steps, step)
		for _, p := range t.Partitions {
			if !r.wantPartition(p.ID) {
				continue
			}
			ref, ok := objects[p.Object]
			if !ok {
				return nil, fmt.Errorf("snapshot %s lists partition %s of %s but not its object %s; run 'tracevault verify %s'", m.ID, p.ID, t.FullName(), p.Object, m.ID)
			}
			format := p.ObjectFormat()
			replica := r.loadReplica(t, p)
			if replica == "" {
				return nil, fmt.Errorf("restore %s partition %s: replica %s it was taken from is not reachable, and a local table's rows belong to it", t.FullName(), p.ID, p.Replica)
			}
			if format == clickhouse.FormatPartsTar {
				if replica, err = r.localLoadReplica(ctx, t, p, replica); err != nil {
					return nil, err
				}
			}
			plan.Steps = append(plan.Steps, Step{Action: ActionLoadPartition, Target: full, Replica: replica, Partition: p.ID,
				Object: ref.ID, Rows: p.Rows, Bytes: ref.RawSize, Format: format, ref: ref, table: t})
		}
	}
	plan.Steps = append(plan.Steps, views...)
	if r.opts.WholeCluster {
		if plan, err = r.planCluster(ctx, plan); err != nil {
			return nil, err
		}
	}
	if !r.opts.Replace {
		if err := r.refuseNonEmpty(ctx, plan); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// createDatabase is the statement that creates a restored table's database. In place, on a
// server with database UUIDs, an Atomic database gets its recorded UUID back; under
// --database-map the copy gets a fresh one on purpose, as its tables do, since the original may
// still hold that UUID.
func (r *Restorer) createDatabase(sec *clickhouse.Section, src, dst string) (string, error) {
	head := "CREATE DATABASE IF NOT EXISTS " + clickhouse.QuoteIdent(dst)
	if src != dst || !r.first.Caps.DatabaseUUIDs {
		return head + r.onCluster(), nil
	}
	for _, d := range sec.Databases {
		if d.Name != src || d.Engine != "Atomic" {
			continue
		}
		// The UUID comes from the manifest, which is not trusted: only a well-formed one goes
		// into SQL.
		if !clickhouse.WellFormedUUID(d.UUID) {
			return "", fmt.Errorf("the snapshot records database %s with UUID %q, which is not a UUID: the manifest is damaged or forged; run 'tracevault verify'", src, d.UUID)
		}
		return fmt.Sprintf("%s UUID '%s'%s ENGINE = Atomic", head, d.UUID, r.onCluster()), nil
	}
	return head + r.onCluster(), nil
}

func (r *Restorer) onCluster() string {
	if r.opts.Cluster == "" {
		return ""
	}
	return " ON CLUSTER " + clickhouse.QuoteIdent(r.opts.Cluster)
}

func (r *Restorer) rewrite(t *clickhouse.TableRecord, dst string) clickhouse.Rewrite {
	rw := clickhouse.Rewrite{Database: dst, Cluster: r.opts.Cluster, DBMap: r.opts.DatabaseMap}
	if dst != t.Database {
		src := t.Database
		rw.ZKPathMap = func(p string) string { return clickhouse.MapZooKeeperPath(p, src, dst) }
	} else if r.first.Caps.TableUUIDs {
		rw.UUID = t.UUID // same UUID, same default replication path: the table rejoins its group
	}
	return rw
}

func (r *Restorer) wantPartition(id string) bool {
	if len(r.opts.Partitions) == 0 {
		return true
	}
	for _, p := range r.opts.Partitions {
		if p == id {
			return true
		}
	}
	return false
}

// loadReplica picks where a partition is loaded: any reachable replica for a replicated table
// (replication copies it to the others), the recorded replica for a local one.
func (r *Restorer) loadReplica(t *clickhouse.TableRecord, p clickhouse.PartitionRecord) string {
	if !t.Replicated() {
		if _, ok := r.servers[p.Replica]; ok {
			return p.Replica
		}
		return ""
	}
	if _, ok := r.servers[p.Replica]; ok {
		return p.Replica
	}
	return r.first.Addr
}

// localLoadReplica keeps the chosen replica for an object of frozen parts if its data path is
// on this host, or for a replicated table moves to one that is.
func (r *Restorer) localLoadReplica(ctx context.Context, t *clickhouse.TableRecord, p clickhouse.PartitionRecord, chosen string) (string, error) {
	err := r.local.Check(ctx, r.servers[chosen])
	if err == nil {
		return chosen, nil
	}
	if t.Replicated() {
		for addr, srv := range r.servers {
			if r.local.Check(ctx, srv) == nil {
				return addr, nil
			}
		}
	}
	return "", fmt.Errorf("restore %s partition %s: its object holds frozen parts, which load only into a replica whose data path is on this host: %w", t.FullName(), p.ID, err)
}

func (r *Restorer) refuseNonEmpty(ctx context.Context, plan *Plan) error {
	type load struct {
		partitions int
		rows       uint64
	}
	busy := map[string]*load{}
	var order []string
	seen := map[string]bool{}
	for _, s := range plan.Steps {
		if s.Action != ActionLoadPartition || seen[s.Target+s.Partition+s.Replica] {
			continue
		}
		seen[s.Target+s.Partition+s.Replica] = true
		db, table, _ := strings.Cut(s.Target, ".")
		rows, err := partitionRowCount(ctx, r.servers[s.Replica], db, table, s.Partition)
		if err != nil {
			return fmt.Errorf("check target: %w", err)
		}
		if rows > 0 {
			if busy[s.Target] == nil {
				busy[s.Target] = &load{}
				order = append(order, s.Target)
			}
			busy[s.Target].partitions++
			busy[s.Target].rows += rows
		}
	}
	if len(busy) == 0 {
		return nil
	}
	var parts []string
	for _, t := range order {
		parts = append(parts, fmt.Sprintf("%s (%d partitions, %d rows)", t, busy[t].partitions, busy[t].rows))
	}
	return fmt.Errorf("the target already holds rows in partitions this restore would replace: %s; pass --replace to replace them atomically (REPLACE PARTITION), or --database-map SRC:DST to restore next to them", strings.Join(parts, ", "))
}

// WritePlan prints a plan for --dry-run.
func WritePlan(w io.Writer, p *Plan) {
	var rows uint64
	var bytes int64
	for _, s := range p.Steps {
		switch s.Action {
		case ActionLoadPartition:
			how := ""
			if s.Format == clickhouse.FormatPartsTar {
				how = " (frozen parts, attached)"
			}
			fmt.Fprintf(w, "load     %s partition %s on %s: %d rows, %d bytes from object %.12s%s\n", s.Target, s.Partition, s.Replica, s.Rows, s.Bytes, s.Object, how)
			rows += s.Rows
			bytes += s.Bytes
		case ActionDropRegistration, ActionDropGroup:
			fmt.Fprintf(w, "%-8s %s: remove %s from zookeeper\n", s.Action, s.Target, s.ZooKeeperPath)
		default:
			fmt.Fprintf(w, "%-8s %s\n", strings.TrimPrefix(string(s.Action), "create-"), s.Target)
		}
	}
	fmt.Fprintf(w, "plan: %d steps, %d rows, %d bytes from snapshot %s\n", len(p.Steps), rows, bytes, p.Snapshot)
}
