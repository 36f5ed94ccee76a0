package restore

import (
	"context"
	"log/slog"
	"net/url"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Options choose what to restore and where.
type Options struct {
	Native      []string
	HTTP        []string
	Conn        clickhouse.ConnOptions
	Cluster     string
	Tables      []string          // "db.table" globs; empty = all
	Partitions  []string          // partition ids; empty = all
	DatabaseMap map[string]string // source db -> target db
	Replace     bool              // replace partitions that already hold rows
	// WholeCluster (restore --cluster) rebuilds a cluster that lost its replicas' data or its
	// ZooKeeper metadata: see planCluster. It needs ZooKeeper.
	WholeCluster bool
	ZooKeeper    *zk.Conn
	// DataPath is where the loading replica's data path is mounted on this host, for objects
	// of frozen parts (see clickhouse.Source.DataPath); empty uses the server's paths as they are.
	DataPath string
	// Parallel is how many partitions load at once ([clickhouse] parallel; default 2). Each
	// holds an object's read and decompression buffers and one insert stream.
	Parallel int
	Log      *slog.Logger
	// Topology, for a cluster migration, rewrites every MergeTree engine for the target's
	// replication and gives tables and databases the target's own UUIDs: the target is a new
	// cluster, not the source's replication group.
	Topology *clickhouse.Topology
	// Repo is where the snapshot's objects are, for the preflight to read its schema_migrations
	// (see Restorer.preflight); without it the snapshot's migration version is not compared.
	Repo *store.Repository
}

// Action is what a step does. A plan's JSON and --dry-run print it as it is spelled here.
type Action string

// The actions of a restore plan, and of a replica rebuild (snapshot/clickhouse/replica), which
// shares them: one vocabulary for both, matched by these constants rather than by literals.
const (
	ActionCreateDatabase   Action = "create-database"
	ActionCreateTable      Action = "create-table"
	ActionCreateView       Action = "create-view"
	ActionLoadPartition    Action = "load-partition"
	ActionRestoreMetadata  Action = "restore-metadata"  // SYSTEM RESTORE REPLICA from the parts on disk
	ActionDropRegistration Action = "drop-registration" // a stale replica registration in ZooKeeper
	ActionDropGroup        Action = "drop-group"        // a lost table's whole replication group in ZooKeeper
	// Only a replica rebuild has these.
	ActionRecoverRows Action = "recover-rows" // keep rows found on no peer in a recovery table
	ActionDropTable   Action = "drop-table"
	ActionSync        Action = "sync"   // wait until the replica fetched its parts
	ActionVerify      Action = "verify" // rows per partition equal to the peers'
)

// Step is one action of a restore plan; --dry-run prints them.
type Step struct {
	Action    Action `json:"action"`
	Target    string `json:"target"` // db.table on the target
	Replica   string `json:"replica,omitempty"`
	Partition string `json:"partition,omitempty"`
	Object    string `json:"object,omitempty"`
	Rows      uint64 `json:"rows,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Format    string `json:"format,omitempty"` // of the object: FormatNative or FormatPartsTar
	SQL       string `json:"sql,omitempty"`
	// ZooKeeperPath is what a drop-registration or drop-group step (restore --cluster) removes.
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	// Overwrites marks a step that writes over live data: a load into a partition that holds
	// LiveRows rows now, which it replaces. Only a plan made with Replace has one.
	Overwrites bool   `json:"overwrites_live_data"`
	LiveRows   uint64 `json:"live_rows,omitempty"`

	ref   store.ObjectRef
	table *clickhouse.TableRecord
}

// Plan is the ordered restore: databases, tables, partitions, views.
type Plan struct {
	Snapshot string `json:"snapshot"`
	// DatabaseMap is --database-map's: only those databases are restored, under their new
	// names; LeftOut are the snapshot's databases (of the tables selected) it leaves as they are.
	DatabaseMap map[string]string `json:"database_map,omitempty"`
	LeftOut     []string          `json:"left_out_databases,omitempty"`
	// Preflight is what the target cannot take, or should be told of, found before any step
	// runs; a plan is made only when none of it is a refusal.
	Preflight []Finding `json:"preflight,omitempty"`
	// Notes say what the restore does about what it does not write itself: a materialized view
	// whose source it loads (REPLACE PARTITION fires no view).
	Notes []string `json:"notes,omitempty"`
	Steps []Step   `json:"steps"`
}

// Restorer plans and executes restores against the configured cluster.
type Restorer struct {
	opts    Options
	servers map[string]*clickhouse.Server // by native address; only the reachable ones
	httpOf  map[string]string
	first   *clickhouse.Server
	local   *clickhouse.LocalFS
}

// New connects to every reachable replica.
func New(ctx context.Context, o Options) (*Restorer, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	servers, httpOf, err := clickhouse.Connect(ctx, o.Native, o.HTTP, o.Conn, o.Log)
	if err != nil {
		return nil, err
	}
	r := &Restorer{opts: o, servers: map[string]*clickhouse.Server{}, httpOf: httpOf, first: servers[0], local: clickhouse.NewLocalFS(o.DataPath, servers)}
	for _, s := range servers {
		r.servers[s.Addr] = s
	}
	return r, nil
}

// insertSettings keep a restore's INSERT on srv from changing the rows it loads: with
// optimize_on_insert a server merges the rows of each inserted block by a Replacing or
// Aggregating table's sorting key, so a partition with unmerged versions would load fewer rows
// than it holds. Servers without the setting (18.16) never do that.
func insertSettings(srv *clickhouse.Server) url.Values {
	if !srv.Caps.OptimizeOnInsert {
		return nil
	}
	return url.Values{"optimize_on_insert": {"0"}}
}

// Close releases the connections.
func (r *Restorer) Close() {
	for _, s := range r.servers {
		s.Close()
	}
}

// replicated says whether t replicates where it is restored: as recorded, or as a cluster
// migration's target topology makes it.
func (r *Restorer) replicated(t *clickhouse.TableRecord) bool {
	if r.opts.Topology != nil && t.HasData() {
		return r.opts.Topology.Replicated
	}
	return t.Replicated()
}

func (r *Restorer) target(db string) string {
	if t, ok := r.opts.DatabaseMap[db]; ok {
		return t
	}
	return db
}
