// Planning a restore: which databases, tables and partitions to create and load from a
// snapshot, where, and refusing non-empty targets. Executing the plan is in execute.go.

package restore

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Plan builds the restore plan for a snapshot's clickhouse section. Under --database-map only
// the mapped databases are restored (the plan says which were left out): a map restores a
// database next to the live one, and never also writes the others in place. Each load into a
// partition that holds rows now is marked as overwriting live data; without Replace such a plan
// is refused, naming every partition that --replace would overwrite.
func (r *Restorer) Plan(ctx context.Context, m *store.Manifest) (*Plan, error) {
	sec, objects, err := clickhouse.SnapshotSection(m)
	if err != nil {
		return nil, err
	}
	if err := r.checkMap(sec, m.ID); err != nil {
		return nil, err
	}
	filter := clickhouse.Filter{Databases: []string{"*"}, Include: r.opts.Tables}
	plan := &Plan{Snapshot: m.ID, DatabaseMap: r.opts.DatabaseMap}
	dbs := map[string]bool{}
	unmapped := map[string]bool{}
	mappedGlob := map[string]bool{} // --tables glob -> selected a table of a mapped database
	if err := r.preflight(ctx, m, objects, r.selected(sec, filter), plan); err != nil {
		return nil, err
	}
	var views []Step
	for i := range sec.Tables {
		t := &sec.Tables[i]
		if !filter.Matches(t.Database, t.Name) {
			continue
		}
		if _, ok := r.opts.DatabaseMap[t.Database]; len(r.opts.DatabaseMap) > 0 && !ok {
			unmapped[t.Database] = true
			continue
		}
		for _, g := range r.opts.Tables {
			if (clickhouse.Filter{Databases: []string{"*"}, Include: []string{g}}).Matches(t.Database, t.Name) {
				mappedGlob[g] = true
			}
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
	plan.LeftOut = slices.Sorted(maps.Keys(unmapped))
	if len(r.opts.DatabaseMap) > 0 {
		var outside []string
		for _, g := range r.opts.Tables {
			if !mappedGlob[g] {
				outside = append(outside, g)
			}
		}
		if len(outside) > 0 {
			return nil, fmt.Errorf("--tables %s selects no table of a database --database-map maps (%s): a map restores only the mapped databases; restore the others in a run of their own",
				strings.Join(outside, ","), describeMap(r.opts.DatabaseMap))
		}
	}
	plan.Steps = append(plan.Steps, views...)
	if r.opts.WholeCluster {
		mapped, leftOut := plan.DatabaseMap, plan.LeftOut
		if plan, err = r.planCluster(ctx, plan); err != nil {
			return nil, err
		}
		plan.DatabaseMap, plan.LeftOut = mapped, leftOut
	}
	plan.Notes = r.viewNotes(sec, plan)
	if n := r.Reach().planNote(); n != "" {
		plan.Notes = append(plan.Notes, n)
	}
	if err := r.markLive(ctx, plan); err != nil {
		return nil, err
	}
	if !r.opts.Replace {
		if err := refuseOverwrites(plan); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// checkMap refuses a --database-map whose source database the snapshot does not hold: the map
// restricts the restore to its databases, so a typo would restore nothing.
func (r *Restorer) checkMap(sec *clickhouse.Section, id string) error {
	held := map[string]bool{}
	for _, t := range sec.Tables {
		held[t.Database] = true
	}
	var missing []string
	for src := range r.opts.DatabaseMap {
		if !held[src] {
			missing = append(missing, src)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("--database-map %s: snapshot %s holds no database of that name (it holds %s); 'tracevault show %s' lists its tables",
		strings.Join(missing, ","), id, strings.Join(slices.Sorted(maps.Keys(held)), ", "), id)
}

// describeMap is "a → b, c → d", sorted by source.
func describeMap(m map[string]string) string {
	var out []string
	for _, src := range slices.Sorted(maps.Keys(m)) {
		out = append(out, src+" → "+m[src])
	}
	return strings.Join(out, ", ")
}

// createDatabase is the statement that creates a restored table's database. In place, on a
// server with database UUIDs, an Atomic database gets its recorded UUID back; under
// --database-map the copy gets a fresh one on purpose, as its tables do, since the original may
// still hold that UUID.
func (r *Restorer) createDatabase(sec *clickhouse.Section, src, dst string) (string, error) {
	head := "CREATE DATABASE IF NOT EXISTS " + clickhouse.QuoteIdent(dst)
	if src != dst || !r.first.Caps.DatabaseUUIDs || r.opts.Topology != nil {
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
	rw := clickhouse.Rewrite{Database: dst, Cluster: r.opts.Cluster, DBMap: r.opts.DatabaseMap, Topology: r.opts.Topology}
	switch {
	case r.opts.Topology != nil: // the target's replication paths, its own UUIDs
	case dst != t.Database:
		src := t.Database
		rw.ZKPathMap = func(p string) string { return clickhouse.MapZooKeeperPath(p, src, dst) }
	case r.first.Caps.TableUUIDs:
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
	if r.opts.Topology != nil && (r.opts.Topology.Replicated || len(r.servers) == 1) {
		return r.first.Addr // another cluster: the recorded replica is not one of its servers
	}
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

// markLive counts, for each load, the rows its target partition holds now on the loading
// replica, and marks the loads that would replace rows: those write over live data. Each table
// is counted once per loading replica, every partition in one query.
func (r *Restorer) markLive(ctx context.Context, plan *Plan) error {
	counted := map[string]map[string]uint64{} // table and replica -> rows by partition
	for i := range plan.Steps {
		s := &plan.Steps[i]
		if s.Action != ActionLoadPartition {
			continue
		}
		key := s.Target + "\x00" + s.Replica
		rows, ok := counted[key]
		if !ok {
			db, table, _ := strings.Cut(s.Target, ".")
			var err error
			if rows, err = partitionRowCounts(ctx, r.servers[s.Replica], db, table); err != nil {
				return fmt.Errorf("check target: %w", err)
			}
			counted[key] = rows
		}
		s.LiveRows, s.Overwrites = rows[s.Partition], rows[s.Partition] > 0
	}
	return nil
}

// refuseOverwrites refuses a plan that would write over live data, naming each table and
// partition that --replace would overwrite in place, with the rows they hold now.
func refuseOverwrites(plan *Plan) error {
	over := plan.Overwrites()
	if len(over) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to write over live data: the target already holds rows in partitions this restore would replace: %s. "+
		"--replace would overwrite exactly these partitions in place, atomically (REPLACE PARTITION), and the rows they hold now would be gone; "+
		"add --dry-run --replace to see each step marked [overwrites live data], or restore next to them with --database-map SRC:DST",
		describeOverwrites(over))
}

// Overwrite is what a plan writes over in one table: its partitions that hold rows now.
type Overwrite struct {
	Target     string   `json:"target"`
	Partitions []string `json:"partitions"`
	Rows       uint64   `json:"rows"` // held now, to be replaced
}

// Overwrites lists, per table in plan order, the partitions the plan's marked steps replace.
func (p *Plan) Overwrites() []Overwrite {
	var out []Overwrite
	idx := map[string]int{}
	seen := map[string]bool{}
	for _, s := range p.Steps {
		if !s.Overwrites || seen[s.Target+"\x00"+s.Partition] {
			continue
		}
		seen[s.Target+"\x00"+s.Partition] = true
		i, ok := idx[s.Target]
		if !ok {
			i, idx[s.Target] = len(out), len(out)
			out = append(out, Overwrite{Target: s.Target})
		}
		out[i].Partitions = append(out[i].Partitions, s.Partition)
		out[i].Rows += s.LiveRows
	}
	return out
}

// describeOverwrites is "default.traces partitions 202601, 202602 (2 partitions, 32400 rows now)"
// for each table, its partitions named up to a bound.
func describeOverwrites(over []Overwrite) string {
	const shown = 10
	var parts []string
	for _, o := range over {
		ids := strings.Join(o.Partitions[:min(shown, len(o.Partitions))], ", ")
		if len(o.Partitions) > shown {
			ids += fmt.Sprintf(" and %d more", len(o.Partitions)-shown)
		}
		if len(o.Partitions) == 1 {
			parts = append(parts, fmt.Sprintf("%s partition %s (%d rows now)", o.Target, ids, o.Rows))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s partitions %s (%d partitions, %d rows now)", o.Target, ids, len(o.Partitions), o.Rows))
	}
	return strings.Join(parts, "; ")
}

// overwritesMark ends a --dry-run line whose step writes over live data.
const overwritesMark = "[overwrites live data]"

// WritePlan prints a plan for --dry-run: first what it leaves out and what live data it writes
// over, then each step, every one that writes over live data marked.
func WritePlan(w io.Writer, p *Plan) {
	if len(p.DatabaseMap) > 0 {
		line := "restoring only the mapped databases: " + describeMap(p.DatabaseMap)
		if len(p.LeftOut) > 0 {
			line += fmt.Sprintf(" (the snapshot's %s left as %s)", strings.Join(p.LeftOut, ", "), map[bool]string{true: "it is", false: "they are"}[len(p.LeftOut) == 1])
		}
		fmt.Fprintln(w, line)
	}
	writePreflight(w, p.Preflight)
	for _, n := range p.Notes {
		fmt.Fprintln(w, "note: "+n)
	}
	over := p.Overwrites()
	if len(over) > 0 {
		fmt.Fprintf(w, "WARNING: this plan writes over live data in place, marked %s below: %s\n", overwritesMark, describeOverwrites(over))
	}
	var rows uint64
	var bytes int64
	marked := 0
	for _, s := range p.Steps {
		switch s.Action {
		case ActionLoadPartition:
			how := ""
			if s.Format == clickhouse.FormatPartsTar {
				how = " (frozen parts, attached)"
			}
			if s.Overwrites {
				how += fmt.Sprintf(" %s: replaces the %d rows it holds now", overwritesMark, s.LiveRows)
				marked++
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
	fmt.Fprintf(w, "plan: %d steps, %d rows, %d bytes from snapshot %s; %d steps overwrite live data\n", len(p.Steps), rows, bytes, p.Snapshot, marked)
}
