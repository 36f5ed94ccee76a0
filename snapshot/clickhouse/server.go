// Package clickhouse backs up and restores the partitions of a ClickHouse cluster. It talks
// to each replica over the native protocol and learns what the server can do once, at connect
// time, so the 18.16 path and the modern path (table UUIDs, Atomic databases, SYSTEM RESTORE
// REPLICA) differ only where Capabilities are read.
package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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
	// RestoreReplica: SYSTEM RESTORE REPLICA rebuilds ZooKeeper metadata from local parts (21.7+).
	RestoreReplica bool `json:"restore_replica"`
	// DefaultReplicatedArgs: ReplicatedMergeTree may omit path and replica (20.x+ with
	// default_replica_path); 18.16 requires both, explicitly.
	DefaultReplicatedArgs bool `json:"default_replicated_args"`
	// FreezeWithName: ALTER TABLE ... FREEZE ... WITH NAME 'x' puts the parts in shadow/x (19.x);
	// 18.16 numbers shadow directories by shadow/increment.txt instead.
	FreezeWithName bool `json:"freeze_with_name"`
}

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

func detect(ctx context.Context, conn driver.Conn) (Capabilities, error) {
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return Capabilities{}, err
	}
	var uuidCols uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = 'system' AND table = 'tables' AND name = 'uuid'").Scan(&uuidCols); err != nil {
		return Capabilities{}, err
	}
	return capabilitiesFor(version, uuidCols > 0), nil
}

// capabilitiesFor derives capabilities from the version string, so that fixture tests can
// exercise the modern path without a modern server.
func capabilitiesFor(version string, uuidColumn bool) Capabilities {
	c := Capabilities{Version: version}
	parts := strings.SplitN(version, ".", 3)
	if len(parts) >= 2 {
		c.Major, _ = strconv.Atoi(parts[0])
		c.Minor, _ = strconv.Atoi(parts[1])
	}
	atLeast := func(major, minor int) bool { return c.Major > major || (c.Major == major && c.Minor >= minor) }
	c.TableUUIDs = uuidColumn
	c.RestoreReplica = atLeast(21, 7)
	c.DefaultReplicatedArgs = atLeast(20, 10)
	c.FreezeWithName = atLeast(19, 1)
	return c
}

// QuoteIdent quotes a database or table name for SQL with backticks.
func QuoteIdent(name string) string {
	return "`" + strings.ReplaceAll(strings.ReplaceAll(name, `\`, `\\`), "`", "\\`") + "`"
}

// QuoteString quotes a string literal.
func QuoteString(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}
