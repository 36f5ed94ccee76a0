package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ConnOptions are what every connection to a replica needs.
type ConnOptions struct {
	User         string
	Password     string
	DialTimeout  time.Duration
	QueryTimeout time.Duration
	// StallTimeout ends an export over HTTP that has received nothing for this long (see
	// HTTP.StallTimeout).
	StallTimeout time.Duration
}

// Server is one replica: its address, connection and capabilities.
type Server struct {
	Addr string
	Conn driver.Conn
	Caps Capabilities
}

// Capabilities are the version-dependent features tracevault relies on.
type Capabilities struct {
	Version string `json:"version"`
	Major   int    `json:"major"`
	Minor   int    `json:"minor"`
	// TableUUIDs: system.tables has a uuid column and CREATE TABLE accepts UUID '...'.
	TableUUIDs bool `json:"table_uuids"`
	// DatabaseUUIDs: system.databases has a uuid column and CREATE DATABASE accepts UUID '...'
	// (Atomic databases, 20.x+).
	DatabaseUUIDs bool `json:"database_uuids,omitempty"`
	// RestoreReplica: SYSTEM RESTORE REPLICA rebuilds ZooKeeper metadata from local parts (21.7+).
	RestoreReplica bool `json:"restore_replica"`
	// DefaultReplicatedArgs: ReplicatedMergeTree may omit path and replica (20.x+ with
	// default_replica_path); 18.16 requires both, explicitly.
	DefaultReplicatedArgs bool `json:"default_replicated_args"`
	// FreezeWithName: ALTER TABLE ... FREEZE ... WITH NAME 'x' puts the parts in shadow/x (19.x);
	// 18.16 numbers shadow directories by shadow/increment.txt instead.
	FreezeWithName bool `json:"freeze_with_name"`
	// PartHashes: system.parts has hash_of_all_files, a hash of each part's checksums.txt, which
	// tells two parts of the same name and row count apart (not in 18.16).
	PartHashes bool `json:"part_hashes"`
	// TableDataPaths: system.tables lists a table's directories in data_paths (one per disk);
	// 18.16 has the single data_path column instead.
	TableDataPaths bool `json:"table_data_paths"`
	// Disks: system.disks lists the default disk, whose path is the server's <path>; without
	// it the path is derived from the system database's directory.
	Disks bool `json:"disks"`
	// LightweightDeletes: system.parts has has_lightweight_delete; a part so marked keeps its
	// deleted rows (in rows and count.txt) behind a _row_exists mask that SELECT applies (23.x+).
	LightweightDeletes bool `json:"lightweight_deletes"`
	// FormatRow: the formatRow function exists (20.x+), which a partition's content checksum
	// needs (ContentSum); 18.16 has none, so its partitions are compared by rows only.
	FormatRow bool `json:"format_row,omitempty"`
	// TupleHash: hash functions take a NULL inside a tuple as a value (25.5+), so that
	// cityHash64(tuple(*)) hashes any row: the ContentTuple checksum. No system table tells it.
	TupleHash bool `json:"tuple_hash,omitempty"`
	// OptimizeOnInsert: the server has the optimize_on_insert setting (21.x+), on by default,
	// with which an INSERT merges the rows of each block by a Replacing or Aggregating table's
	// sorting key; a restore's INSERT turns it off so that it loads every row it was given.
	OptimizeOnInsert bool `json:"optimize_on_insert,omitempty"`
	// PatchParts: the server has the apply_patch_parts setting (25.7+), so it may write a
	// lightweight update (UPDATE, and DELETE in lightweight_update mode) as patch parts, which
	// system.parts lists under a partition id of their own (PatchPartitionOf) and a SELECT
	// applies to the rows of the partition they update.
	PatchParts bool `json:"patch_parts,omitempty"`
}

// capabilityColumns are the system columns whose presence is a capability, as "table.column";
// capabilitySettings and capabilityFunctions are the settings and functions whose presence is one.
var (
	capabilityColumns   = []string{"tables.uuid", "databases.uuid", "tables.data_paths", "parts.hash_of_all_files", "disks.path", "parts.has_lightweight_delete"}
	capabilitySettings  = []string{"optimize_on_insert", "apply_patch_parts"}
	capabilityFunctions = []string{"formatRow"}
)

// Dial connects to one replica and detects its capabilities.
func Dial(ctx context.Context, addr string, o ConnOptions) (*Server, error) {
	if o.DialTimeout == 0 {
		o.DialTimeout = 10 * time.Second
	}
	settings := ch.Settings{}
	if o.QueryTimeout > 0 {
		settings["max_execution_time"] = int(o.QueryTimeout.Seconds())
	}
	conn, err := ch.Open(&ch.Options{
		Addr:        []string{addr},
		Auth:        ch.Auth{Database: "default", Username: o.User, Password: o.Password},
		DialTimeout: o.DialTimeout,
		Settings:    settings,
	})
	if err != nil {
		return nil, fmt.Errorf("connect to clickhouse %s: %w", addr, err)
	}
	s := &Server{Addr: addr, Conn: conn}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect to clickhouse %s: %w", addr, err)
	}
	if s.Caps, err = detect(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("detect capabilities of clickhouse %s: %w", addr, err)
	}
	return s, nil
}

// Close releases the connection.
func (s *Server) Close() error { return s.Conn.Close() }

// detect asks the server once for everything capabilitiesFor needs: its version, and which
// capabilityColumns, capabilitySettings and capabilityFunctions it has (as "table.column",
// "settings.name" and "functions.name").
func detect(ctx context.Context, conn driver.Conn) (Capabilities, error) {
	conds := make([]string, len(capabilityColumns))
	for i, c := range capabilityColumns {
		table, name, _ := strings.Cut(c, ".")
		conds[i] = fmt.Sprintf("(table = %s AND name = %s)", QuoteString(table), QuoteString(name))
	}
	quoted := func(names []string) string {
		q := make([]string, len(names))
		for i, name := range names {
			q[i] = QuoteString(name)
		}
		return strings.Join(q, ", ")
	}
	var version string
	var columns, settings, functions []string
	q := "SELECT version()," +
		" (SELECT groupArray(concat(table, '.', name)) FROM system.columns WHERE database = 'system' AND (" + strings.Join(conds, " OR ") + "))," +
		" (SELECT groupArray(concat('settings.', name)) FROM system.settings WHERE name IN (" + quoted(capabilitySettings) + "))," +
		" (SELECT groupArray(concat('functions.', name)) FROM system.functions WHERE name IN (" + quoted(capabilityFunctions) + "))"
	if err := conn.QueryRow(ctx, q).Scan(&version, &columns, &settings, &functions); err != nil {
		return Capabilities{}, err
	}
	has := map[string]bool{}
	for _, c := range slices.Concat(columns, settings, functions) {
		has[c] = true
	}
	return capabilitiesFor(version, has), nil
}

// capabilitiesFor derives capabilities from the version string and from which of the
// capabilityColumns and capabilitySettings the server has, so that fixture tests can exercise the
// modern path without a modern server. What a system column or setting tells is read from it,
// not from the version.
func capabilitiesFor(version string, present map[string]bool) Capabilities {
	c := Capabilities{Version: version}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) >= 2 {
		c.Major, _ = strconv.Atoi(parts[0])
		c.Minor, _ = strconv.Atoi(parts[1])
	}
	atLeast := c.AtLeast
	c.TableUUIDs = present["tables.uuid"]
	c.DatabaseUUIDs = present["databases.uuid"]
	c.OptimizeOnInsert = present["settings.optimize_on_insert"]
	c.PatchParts = present["settings.apply_patch_parts"]
	c.PartHashes = present["parts.hash_of_all_files"]
	c.TableDataPaths = present["tables.data_paths"]
	c.Disks = present["disks.path"]
	c.LightweightDeletes = present["parts.has_lightweight_delete"]
	c.FormatRow = present["functions.formatRow"]
	c.TupleHash = atLeast(25, 5)
	c.RestoreReplica = atLeast(21, 7)
	c.DefaultReplicatedArgs = atLeast(20, 10)
	c.FreezeWithName = atLeast(19, 1)
	return c
}

// AtLeast tells whether the server's version is major.minor or newer: for what no system
// table tells, such as a column type or index kind a CREATE TABLE may use (the restore's
// preflight).
func (c Capabilities) AtLeast(major, minor int) bool {
	return c.Major > major || (c.Major == major && c.Minor >= minor)
}

// QuoteIdent quotes a database or table name for SQL with backticks.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), "`", "\\`") + "`"
}

// QuoteString quotes a string literal.
func QuoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

// Connect dials every configured replica that answers. Those that do not are logged and left
// out, so backup, restore, Check and restore-replica see them as down; it fails only when none
// answers. httpOf maps each native address to its HTTP address when http is given.
func Connect(ctx context.Context, native, http []string, o ConnOptions, log *slog.Logger) ([]*Server, map[string]string, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(http) > 0 && len(http) != len(native) {
		return nil, nil, errors.New("clickhouse: http_addresses must list the HTTP address of every replica in addresses, same order")
	}
	// Dialled together: each dial is a handshake and a query, and every run pays them.
	dialled := make([]*Server, len(native))
	failed := make([]error, len(native))
	var wg sync.WaitGroup
	for i, addr := range native {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dialled[i], failed[i] = Dial(ctx, addr, o)
		}()
	}
	wg.Wait()
	var servers []*Server
	httpOf := map[string]string{}
	var errs []string
	for i, addr := range native {
		if len(http) > 0 {
			httpOf[addr] = http[i]
		}
		if failed[i] != nil {
			log.Warn("replica unavailable for this backup", "replica", addr, "err", failed[i])
			errs = append(errs, failed[i].Error())
			continue
		}
		servers = append(servers, dialled[i])
	}
	if len(servers) == 0 {
		return nil, nil, fmt.Errorf("no clickhouse replica answered: %s", strings.Join(errs, "; "))
	}
	return servers, httpOf, nil
}
