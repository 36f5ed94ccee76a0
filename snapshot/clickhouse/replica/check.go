package replica

// The check judges a cluster view: for every table on every replica, is it where its peers are
// (same ZooKeeper path, same UUID), alive, caught up, holding the same rows and the same columns?
// Gathering (Check) is separate from judging (judge), so the verdicts are tested on fixtures.

import (
	"context"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
	"github.com/tracevault/tracevault/snapshot/zookeeper"
)

// Verdicts of a cell of the matrix, from healthy to worst. A cell shows its worst verdict.
const (
	VerdictOK           = "ok"
	VerdictSyncing      = "syncing" // queue not empty yet: rows are not compared
	VerdictLagging      = "lagging" // absolute_delay past CheckOptions.MaxDelay
	VerdictRowsDiffer   = "rows-differ"
	VerdictSchema       = "schema-differs"
	VerdictInactive     = "inactive"     // registered in ZooKeeper but its session is gone
	VerdictUnregistered = "unregistered" // not under its group's replicas/ in ZooKeeper
	VerdictReadonly     = "readonly"
	VerdictExpired      = "expired"
	VerdictIsolated     = "isolated" // replicates under another path or UUID than its peers
	VerdictMissing      = "missing"
	VerdictDown         = "down"
)

var verdictRank = map[string]int{VerdictOK: 0, VerdictSyncing: 1, VerdictLagging: 2, VerdictRowsDiffer: 3, VerdictSchema: 4,
	VerdictInactive: 5, VerdictUnregistered: 6, VerdictReadonly: 7, VerdictExpired: 8, VerdictIsolated: 9, VerdictMissing: 10, VerdictDown: 11}

// Report is the health of the cluster: a matrix of tables by replicas and the problems found,
// each with the command that fixes it. The status page renders it as is.
type Report struct {
	Taken   time.Time `json:"taken"`
	Healthy bool      `json:"healthy"`
	// Replicas are the matrix's columns: each configured replica's name ({replica} macro, or
	// its address while it is down), in configuration order.
	Replicas   []Column                 `json:"replicas"`
	Tables     []TableCheck             `json:"tables"`
	Migrations []Migration              `json:"migrations,omitempty"`
	ZooKeeper  []zookeeper.ServerHealth `json:"zookeeper,omitempty"`
	Problems   []Problem                `json:"problems"`
}

// Column names one configured replica.
type Column struct {
	Name  string `json:"name"`
	Addr  string `json:"addr"`
	Up    bool   `json:"up"`
	Error string `json:"error,omitempty"`
}

// TableCheck is one row of the matrix.
type TableCheck struct {
	Table      string `json:"table"` // db.table
	Engine     string `json:"engine"`
	Replicated bool   `json:"replicated"`
	// ZooKeeperPath and UUID are the group most replicas are in: the reference the cells are
	// judged against.
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	UUID          string `json:"uuid,omitempty"`
	Cells         []Cell `json:"cells"` // one per replica, in Report.Replicas order
}

// Cell is one table on one replica.
type Cell struct {
	Replica       string `json:"replica"`
	Verdict       string `json:"verdict"`
	Rows          uint64 `json:"rows"`
	QueueSize     uint32 `json:"queue_size,omitempty"`
	AbsoluteDelay uint64 `json:"absolute_delay,omitempty"`
	ZooKeeperPath string `json:"zookeeper_path,omitempty"`
	UUID          string `json:"uuid,omitempty"`
	Detail        string `json:"detail,omitempty"`
}

// Migration is the state of golang-migrate's schema_migrations in one database.
type Migration struct {
	Database string `json:"database"`
	Version  int64  `json:"version"`
	Dirty    bool   `json:"dirty"`
}

// Problem is one thing to fix, with the command that fixes it.
type Problem struct {
	Kind    string `json:"kind"` // a cell verdict, or zookeeper, migration, stale-registration
	Table   string `json:"table,omitempty"`
	Replica string `json:"replica,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// CheckOptions tune the check.
type CheckOptions struct {
	Filter clickhouse.Filter
	// ZooKeeper is the ensemble's health (zookeeper.Health); unhealthy servers are problems.
	ZooKeeper []zookeeper.ServerHealth
	// MaxDelay is the absolute_delay past which a replica counts as lagging; default 5 minutes.
	MaxDelay time.Duration
	// ZooKeeperError is why the caller has no session to pass to Check, if it tried.
	ZooKeeperError string
}

// Check observes the cluster and judges it.
func Check(ctx context.Context, servers []*clickhouse.Server, addrs []string, conn *zk.Conn, o CheckOptions) (*Report, error) {
	view := clickhouse.Observe(ctx, servers, addrs, conn)
	byAddr := map[string]*clickhouse.Server{}
	for _, s := range servers {
		byAddr[s.Addr] = s
	}
	facts := make([]replicaFacts, len(view.Replicas))
	var migrations []Migration
	for i, r := range view.Replicas {
		if !r.Up {
			continue
		}
		f, err := gatherFacts(ctx, byAddr[r.Addr], o.Filter)
		if err != nil {
			return nil, err
		}
		facts[i] = f
		if migrations == nil {
			if migrations, err = readMigrations(ctx, byAddr[r.Addr], f); err != nil {
				return nil, err
			}
		}
	}
	return judge(view, facts, migrations, o), nil
}
