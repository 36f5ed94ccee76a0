// Package config reads and validates tracevault's TOML configuration once, into plain structs
// that the other packages receive. Every problem in a file is reported together, each with the
// key, the line and what is allowed, so an operator fixes a file in one pass.
package config

import (
	"net/netip"
	"time"
)

// Config is the whole file. Field tags are the TOML keys; config.example.toml documents each.
type Config struct {
	Storage    Storage    `toml:"storage"`
	Postgres   Postgres   `toml:"postgres"`
	ClickHouse ClickHouse `toml:"clickhouse"`
	ZooKeeper  ZooKeeper  `toml:"zookeeper"`
	Blobs      Blobs      `toml:"blobs"`
	Langfuse   Langfuse   `toml:"langfuse"`
	Jobs       []Job      `toml:"jobs"`
	Retention  Retention  `toml:"retention"`
	Web        Web        `toml:"web"`
	Migrate    Migrate    `toml:"migrate"`
	Drill      Drill      `toml:"drill"`
	Verify     Verify     `toml:"verify"`

	// File is the path the configuration was read from, for messages.
	File string `toml:"-"`
}

// Storage is the snapshot repository.
type Storage struct {
	URL string `toml:"url"`
	AzureCredentials
	BlockSize        Size `toml:"block_size"`
	Concurrency      int  `toml:"concurrency"`
	CompressionLevel int  `toml:"compression_level"`
	// AppendOnly: every object is written once, to a new key, and nothing is deleted; prune and
	// delete refuse (they run as another identity, with a configuration without it).
	AppendOnly bool       `toml:"append_only"`
	Encryption Encryption `toml:"encryption"`
}

// Encryption configures age encryption of repository objects.
type Encryption struct {
	Recipients   []string `toml:"recipients"`
	IdentityFile string   `toml:"identity_file"`
	Passphrase   Secret   `toml:"passphrase"`
}

// AzureCredentials are the Azure Blob credential keys [storage] and [blobs] share; at most one
// of connection string, key and SAS, else the default credential chain.
type AzureCredentials struct {
	ConnectionString Secret `toml:"connection_string"`
	AccountName      string `toml:"account_name"`
	AccountKey       Secret `toml:"account_key"`
	SASToken         Secret `toml:"sas_token"`
	Endpoint         string `toml:"endpoint"`
}

// Blobs is Langfuse's blob container (raw events, exports, media), with the same Azure
// credential keys as [storage].
type Blobs struct {
	URL string `toml:"url"`
	AzureCredentials
	Workers  int  `toml:"workers"`
	PackSize Size `toml:"pack_size"`
}

// Langfuse is the Langfuse instance whose raw events replay-events sends back: its admin replay
// route re-ingests the events written to [blobs] after a snapshot's cut.
type Langfuse struct {
	// URL is Langfuse's base URL (its NEXTAUTH_URL); empty means no replay.
	URL string `toml:"url"`
	// AdminAPIKey is the instance's ADMIN_API_KEY.
	AdminAPIKey Secret `toml:"admin_api_key"`
	// EventsPrefix is where Langfuse writes raw events in the [blobs] container
	// (LANGFUSE_S3_EVENT_UPLOAD_PREFIX / its Azure equivalent).
	EventsPrefix string `toml:"events_prefix"`
	// EventsRetention is the age after which the container's lifecycle rule deletes events; zero
	// if it has none. A replay reaching further back is warned about.
	EventsRetention Duration `toml:"events_retention"`
	// ReplayMargin moves the replay's start this far before the snapshot's cut, for clock error
	// between tracevault, the databases and the container.
	ReplayMargin        Duration `toml:"replay_margin"`
	ReplayBatch         int      `toml:"replay_batch"`
	ReplayKeysPerSecond int      `toml:"replay_keys_per_second"`
	ReplayRetries       int      `toml:"replay_retries"`
	// ReplayState is the checkpoint file of a replay; empty means under the user's state directory.
	ReplayState string `toml:"replay_state"`
}

// Postgres is the Langfuse operational database.
type Postgres struct {
	DSN      Secret   `toml:"dsn"`
	Parallel int      `toml:"parallel"`
	Schemas  []string `toml:"schemas"`
	PGDump   string   `toml:"pg_dump"`
	DataOnly bool     `toml:"data_only"`
	// RestoreMaintenanceWorkMem is maintenance_work_mem for a restore's sessions: what each
	// index or constraint build may sort in memory; default 256MiB.
	RestoreMaintenanceWorkMem Size `toml:"restore_maintenance_work_mem"`
	// RestoreParallelMaintenanceWorkers sets max_parallel_maintenance_workers for a
	// restore's sessions; 0 (the default) leaves the server's.
	RestoreParallelMaintenanceWorkers int `toml:"restore_parallel_maintenance_workers"`
	// RestoreSplitTableSize: a restore loads a table of this much COPY text or more over every
	// connection at once (its rows not frozen); 0 never. Default 64MiB.
	RestoreSplitTableSize Size `toml:"restore_split_table_size"`
	// PITR streams every committed change through a logical replication slot into the
	// repository (wal_level = logical), for restores to any time (snapshot/postgres/pitr).
	PITR                bool     `toml:"pitr"`
	PITRSlot            string   `toml:"pitr_slot"`             // slot and publication name; default "tracevault"
	PITRSegmentInterval Duration `toml:"pitr_segment_interval"` // default 5s
	PITRSegmentMiB      int64    `toml:"pitr_segment_mib"`      // default 16
	// PITRChainInterval starts a new chain (a new base) once the current one is this old, so
	// that old chains go with their bases under [retention]; default 24h.
	PITRChainInterval Duration `toml:"pitr_chain_interval"`
	// PITRChainWithBackup also starts a new chain with each backup set that holds a full
	// PostgreSQL snapshot, so that chains follow the sets under [retention].
	PITRChainWithBackup bool `toml:"pitr_chain_with_backup"`
	// PITRWarnRetainedMiB warns (page, /metrics) once the slot holds back this much WAL on the
	// server; default 1024.
	PITRWarnRetainedMiB int64 `toml:"pitr_warn_retained_mib"`
}

// ClickHouse is the replicated trace store.
type ClickHouse struct {
	Addresses     []string `toml:"addresses"`
	HTTPAddresses []string `toml:"http_addresses"`
	User          string   `toml:"user"`
	Password      Secret   `toml:"password"`
	Cluster       string   `toml:"cluster"`
	Databases     []string `toml:"databases"`
	IncludeTables []string `toml:"include_tables"`
	ExcludeTables []string `toml:"exclude_tables"`
	Mode          string   `toml:"mode"`
	DataPath      string   `toml:"data_path"`
	Parallel      int      `toml:"parallel"`
	// SpreadExports exports each partition of a replicated table from the least loaded replica
	// fit to give it (logical mode); false reads a table from its one least-delayed replica.
	SpreadExports bool     `toml:"spread_exports"`
	DialTimeout   Duration `toml:"dial_timeout"`
	QueryTimeout  Duration `toml:"query_timeout"`
	StallTimeout  Duration `toml:"stall_timeout"`
}

// ZooKeeper is the ensemble coordinating ClickHouse replication.
type ZooKeeper struct {
	Servers []string `toml:"servers"`
	// Identity is the "user:password" of the digest scheme ClickHouse connects with
	// (<zookeeper><identity>): its znodes are then readable by that identity alone. The official
	// ClickHouse operator sets one for every ClickHouseCluster. Empty: no authentication.
	Identity       Secret   `toml:"identity"`
	Roots          []string `toml:"roots"`
	Exclude        []string `toml:"exclude"`
	SessionTimeout Duration `toml:"session_timeout"`
	// Warning thresholds for `zk health` and the status page; 0 disables one.
	WarnZnodeCount          int64 `toml:"warn_znode_count"`
	WarnDataSize            Size  `toml:"warn_data_size"`
	WarnOutstandingRequests int64 `toml:"warn_outstanding_requests"`
}

// Job is one scheduled piece of work.
type Job struct {
	Name     string   `toml:"name"`
	Schedule string   `toml:"schedule"`
	Action   string   `toml:"action"`
	Only     []string `toml:"only"`
	Timeout  Duration `toml:"timeout"`
	Jitter   Duration `toml:"jitter"`
	CatchUp  string   `toml:"catch_up"`
}

// Drill bounds a restore drill (tracevault drill, action = "drill"): restoring the newest
// snapshot set into scratch databases must end within Timeout, or it fails.
type Drill struct {
	Timeout Duration `toml:"timeout"`
}

// Verify tunes the scheduled verify job (action = "verify"). Sample empty checks that every
// object exists with its size; "P%" also reads the next P% of the objects through the codec
// (a rotation, so every object is read within ⌈100/P⌉ runs), as verify --read-data --sample.
type Verify struct {
	Sample string `toml:"sample"`
}

// Retention is the GFS policy prune applies.
type Retention struct {
	KeepLast    int      `toml:"keep_last"`
	KeepHourly  int      `toml:"keep_hourly"`
	KeepDaily   int      `toml:"keep_daily"`
	KeepWeekly  int      `toml:"keep_weekly"`
	KeepMonthly int      `toml:"keep_monthly"`
	MinAge      Duration `toml:"min_age"`
}

// Web is the status page and API.
type Web struct {
	Listen              string `toml:"listen"`
	Token               Secret `toml:"token"`
	RequireTokenForRead bool   `toml:"require_token_for_read"`
	// SecureCookies: "auto" marks the session cookie Secure when the request reached the daemon
	// over TLS, or a trusted proxy says it reached the proxy so; "always" marks it Secure on
	// every response (behind a TLS-terminating Ingress).
	SecureCookies string `toml:"secure_cookies"`
	// TrustedProxies are CIDRs whose X-Forwarded-Proto is believed; empty: none.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// TrustedProxyPrefixes returns TrustedProxies parsed; validation has refused any that does not
// parse.
func (w Web) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range w.TrustedProxies {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Migrate configures versioned schema migrations.
type Migrate struct {
	ClickHouseDir      string `toml:"clickhouse_dir"`
	PostgresDir        string `toml:"postgres_dir"`
	ClickHouseDatabase string `toml:"clickhouse_database"`
	Cluster            string `toml:"cluster"`
}

// Actions a job may take, and the sources a backup may cover.
const (
	ActionBackup   = "backup"
	ActionPrune    = "prune"
	ActionVerify   = "verify"
	ActionZKRecord = "zk-record"
	ActionDrill    = "drill"

	SourcePostgres   = "postgres"
	SourceClickHouse = "clickhouse"
	SourceZooKeeper  = "zookeeper"
	SourceBlobs      = "blobs"
)

// Sources lists every backup source in the order a snapshot set runs them.
var Sources = []string{SourcePostgres, SourceClickHouse, SourceZooKeeper, SourceBlobs}

// Defaults returns the values used for every key the file leaves out.
func Defaults() Config {
	return Config{
		Storage: Storage{
			BlockSize:        8 << 20,
			Concurrency:      4,
			CompressionLevel: 1,
		},
		Blobs:    Blobs{Workers: 4, PackSize: 32 << 20},
		Langfuse: Langfuse{EventsPrefix: "events/", ReplayMargin: Duration(2 * time.Minute), ReplayBatch: 1000, ReplayKeysPerSecond: 2000, ReplayRetries: 6},
		Postgres: Postgres{Parallel: 2, Schemas: []string{"public"}, PGDump: "pg_dump", RestoreMaintenanceWorkMem: 256 << 20, RestoreSplitTableSize: 64 << 20},
		ClickHouse: ClickHouse{
			User:          "default",
			Databases:     []string{"default"},
			IncludeTables: []string{"*.*"},
			Mode:          "logical",
			Parallel:      2,
			SpreadExports: true,
			DialTimeout:   Duration(10e9),
			QueryTimeout:  Duration(3600e9),
			StallTimeout:  Duration(300e9),
		},
		ZooKeeper: ZooKeeper{
			Roots: []string{"/clickhouse"},
			Exclude: []string{
				"/clickhouse/tables/*/*/*/blocks",
				"/clickhouse/tables/*/*/*/log",
				"/clickhouse/tables/*/*/*/queue",
				"/clickhouse/task_queue",
			},
			SessionTimeout:          Duration(10e9),
			WarnZnodeCount:          1_000_000,
			WarnDataSize:            1 << 30,
			WarnOutstandingRequests: 1000,
		},
		Retention: Retention{KeepLast: 7, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 6, MinAge: Duration(24 * 3600e9)},
		Web:       Web{Listen: "127.0.0.1:8480", SecureCookies: "auto"},
		Drill:     Drill{Timeout: Duration(3600e9)},
		Migrate: Migrate{
			ClickHouseDir:      "migrations/clickhouse",
			PostgresDir:        "migrations/postgres",
			ClickHouseDatabase: "default",
		},
	}
}

// jobDefaults fills what a [[jobs]] table leaves out; arrays of tables can't be pre-filled.
func (j *Job) applyDefaults() {
	if j.Timeout == 0 {
		j.Timeout = Duration(3600e9)
	}
	if j.CatchUp == "" {
		j.CatchUp = "once"
	}
}

// BacksUp reports whether the job's backup scope includes source.
func (j Job) BacksUp(source string) bool {
	if j.Action != ActionBackup {
		return false
	}
	if len(j.Only) == 0 {
		return true
	}
	for _, s := range j.Only {
		if s == source {
			return true
		}
	}
	return false
}
