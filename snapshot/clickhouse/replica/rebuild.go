package replica

// restore-replica rebuilds one replica so that it rejoins its replication groups: every table
// is re-created with its peers' definition, ZooKeeper path, replica name and UUID, and then
// fetches its data from them. Nothing is ever executed on the peers: they are only read.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/clickhouse/restore"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Options say how a replica is rebuilt.
type Options struct {
	Filter clickhouse.Filter
	Conn   clickhouse.ConnOptions
	HTTP   map[string]string // native address -> HTTP address, to load a local table's partitions
	// Snapshot is the clickhouse section of --from-snapshot (nil without): the definitions when
	// no peer is healthy, and the rows of the replica's local tables.
	Snapshot   *clickhouse.Section
	SnapshotID string
	Objects    map[string]store.ObjectRef // the snapshot's objects by id
	// SyncTimeout bounds the wait for each table to fetch its data; default 30 minutes.
	SyncTimeout time.Duration
	Log         *slog.Logger
}

// Step is one action of a rebuild.
type Step struct {
	// Action: create-database, recover-rows, drop-table, drop-registration, create-table,
	// restore-metadata, load-partition, create-view, sync, verify.
	Action        restore.Action `json:"action"`
	Target        string         `json:"target"` // database or db.table on the replica
	SQL           string         `json:"sql,omitempty"`
	ZooKeeperPath string         `json:"zookeeper_path,omitempty"`
	Partition     string         `json:"partition,omitempty"`
	Object        string         `json:"object,omitempty"`
	Rows          uint64         `json:"rows,omitempty"`
	Detail        string         `json:"detail,omitempty"`

	table *clickhouse.Table       // the peers' definition
	own   *clickhouse.Table       // the replica's current, isolated definition (recover-rows)
	rec   *clickhouse.TableRecord // the snapshot's record (load-partition)
	ref   store.ObjectRef
}

// Plan rebuilds one replica.
type Plan struct {
	Replica  string `json:"replica"` // native address
	Name     string `json:"name"`    // its {replica} macro
	Peer     string `json:"peer,omitempty"`
	Snapshot string `json:"snapshot,omitempty"`
	Steps    []Step `json:"steps"`
	// Notes are what the operator must know: local tables created empty, for instance.
	Notes []string `json:"notes,omitempty"`
}

// Recovered is a table of rows that existed only on the isolated replica, kept aside.
type Recovered struct {
	Table         string `json:"table"`
	RecoveryTable string `json:"recovery_table"`
	Rows          uint64 `json:"rows"`
}

// Result is what a rebuild did.
type Result struct {
	Recovered []Recovered `json:"recovered,omitempty"`
	Verified  []string    `json:"verified"` // tables whose rows per partition match the peers'
}

// Progress is told about each step as it finishes, and about the fetch while a sync waits.
type Progress func(done, total int, s Step, detail string)

// Rebuilder plans and runs restore-replica against connected servers.
type Rebuilder struct {
	view    *clickhouse.View
	servers map[string]*clickhouse.Server
	zk      *zk.Conn
	opts    Options
}

// NewRebuilder observes the cluster once; the plan and its execution read that view.
func NewRebuilder(ctx context.Context, servers []*clickhouse.Server, addrs []string, conn *zk.Conn, o Options) *Rebuilder {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = 30 * time.Minute
	}
	b := &Rebuilder{view: clickhouse.Observe(ctx, servers, addrs, conn), servers: map[string]*clickhouse.Server{}, zk: conn, opts: o}
	for _, s := range servers {
		b.servers[s.Addr] = s
	}
	return b
}

// resolve finds the replica named on the command line: its address or its {replica} macro.
func (b *Rebuilder) resolve(which string) (*clickhouse.Replica, error) {
	var known, down []string
	for i := range b.view.Replicas {
		r := &b.view.Replicas[i]
		if r.Addr == which || (r.Macros["replica"] != "" && r.Macros["replica"] == which) {
			if !r.Up {
				return nil, fmt.Errorf("replica %s is not answering (%s): start it (empty, if its volume was lost), then rerun restore-replica", which, r.Error)
			}
			return r, nil
		}
		known = append(known, r.Name()+" ("+r.Addr+")")
		if !r.Up {
			down = append(down, r.Addr)
		}
	}
	err := fmt.Errorf("no configured replica is %q; the replicas are %s", which, strings.Join(known, ", "))
	if len(down) > 0 {
		// A server that does not answer has no macros to match a name against.
		err = fmt.Errorf("%w; %s not answering, so their names are unknown: start them (empty, if their volume was lost)", err, strings.Join(down, ", "))
	}
	return nil, err
}

// peer picks the replica whose definitions are copied: up, every replicated table writable and
// in session, and in the group most replicas other than the target are in.
func (b *Rebuilder) peer(target string) *clickhouse.Server {
	others := map[int]bool{}
	for i, r := range b.view.Replicas {
		others[i] = r.Addr != target && r.Up
	}
	reference := map[string][2]string{} // db.table -> path, uuid of most other replicas
	for i, r := range b.view.Replicas {
		for _, t := range r.Tables {
			if _, done := reference[t.FullName()]; done || !others[i] {
				continue
			}
			live := map[int]clickhouse.ReplicaTable{}
			for j, o := range b.view.Replicas {
				for _, ot := range o.Tables {
					if others[j] && ot.FullName() == t.FullName() {
						live[j] = ot
					}
				}
			}
			path, uuid := referenceGroup(live, b.view)
			reference[t.FullName()] = [2]string{path, uuid}
		}
	}
	for i, r := range b.view.Replicas {
		if !others[i] {
			continue
		}
		good := true
		for _, t := range r.Tables {
			if b.opts.Filter.Matches(t.Database, t.Table) && (!t.Healthy() || reference[t.FullName()] != [2]string{t.ZooKeeperPath, t.UUID}) {
				good = false
			}
		}
		if good {
			return b.servers[r.Addr]
		}
	}
	return nil
}

// WritePlan prints a plan for --dry-run.
func WritePlan(w io.Writer, p *Plan) {
	from := "peer " + p.Peer
	if p.Peer == "" {
		from = "snapshot " + p.Snapshot
	}
	fmt.Fprintf(w, "rebuild replica %s (%s) from %s\n", p.Name, p.Replica, from)
	for i, s := range p.Steps {
		line := fmt.Sprintf("%3d. %-17s %s", i+1, s.Action, s.Target)
		switch {
		case s.Action == restore.ActionLoadPartition:
			line += fmt.Sprintf(" partition %s: %d rows from object %.12s", s.Partition, s.Rows, s.Object)
		case s.Action == restore.ActionDropRegistration:
			line += " " + s.ZooKeeperPath
		case s.Detail != "":
			line += ": " + s.Detail
		}
		fmt.Fprintln(w, line)
		if s.SQL != "" && (s.Action == restore.ActionCreateTable || s.Action == restore.ActionDropTable) {
			fmt.Fprintf(w, "       %s\n", oneLine(s.SQL))
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintf(w, "nothing to do: every table of %s is in its peers' groups\n", p.Name)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
