package replica

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/tracevault/tracevault/snapshot/clickhouse"
)

// tableFacts is what one replica says about one of its tables, beyond system.replicas.
type tableFacts struct {
	Engine     string
	UUID       string
	Columns    []string
	Partitions map[string]uint64 // partition id -> rows of active parts
}

// replicaFacts are one up replica's tables by "db.table".
type replicaFacts map[string]*tableFacts

func gatherFacts(ctx context.Context, s *clickhouse.Server, f clickhouse.Filter) (replicaFacts, error) {
	uuid := "''"
	if s.Caps.TableUUIDs {
		uuid = "toString(uuid)"
	}
	out := replicaFacts{}
	rows, err := s.Conn.Query(ctx, "SELECT database, name, engine, "+uuid+" FROM system.tables WHERE NOT is_temporary")
	if err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	for rows.Next() {
		var db, name, engine, id string
		if err := rows.Scan(&db, &name, &engine, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
		}
		if !f.Matches(db, name) || isScratchTable(name) {
			continue
		}
		if id == "00000000-0000-0000-0000-000000000000" {
			id = ""
		}
		out[db+"."+name] = &tableFacts{Engine: engine, UUID: id, Partitions: map[string]uint64{}}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tables on %s: %w", s.Addr, err)
	}
	// One pass over each system table for the whole server, not one query per table.
	cols, err := s.Conn.Query(ctx, "SELECT database, table, name, type FROM system.columns")
	if err != nil {
		return nil, fmt.Errorf("read columns on %s: %w", s.Addr, err)
	}
	for cols.Next() {
		var db, table, name, typ string
		if err := cols.Scan(&db, &table, &name, &typ); err != nil {
			cols.Close()
			return nil, fmt.Errorf("read columns on %s: %w", s.Addr, err)
		}
		if t := out[db+"."+table]; t != nil {
			t.Columns = append(t.Columns, name+" "+typ)
		}
	}
	cols.Close()
	parts, err := s.Conn.Query(ctx, "SELECT database, table, partition_id, sum(rows) FROM system.parts WHERE active GROUP BY database, table, partition_id")
	if err != nil {
		return nil, fmt.Errorf("read parts on %s: %w", s.Addr, err)
	}
	defer parts.Close()
	for parts.Next() {
		var db, table, id string
		var n uint64
		if err := parts.Scan(&db, &table, &id, &n); err != nil {
			return nil, fmt.Errorf("read parts on %s: %w", s.Addr, err)
		}
		if _, patch := clickhouse.PatchPartitionOf(id); patch && s.Caps.PatchParts {
			continue // a lightweight update's changes to its partition's rows, not rows of a partition
		}
		if t := out[db+"."+table]; t != nil {
			t.Partitions[id] = n
		}
	}
	return out, parts.Err()
}

// isScratchTable: tracevault's own staging and recovery tables are not part of the schema.
func isScratchTable(name string) bool { return strings.HasPrefix(name, "__tracevault_") }

// readMigrations reads golang-migrate's current version (the row with the highest sequence) of
// every database that has a schema_migrations table.
func readMigrations(ctx context.Context, s *clickhouse.Server, f replicaFacts) ([]Migration, error) {
	out := []Migration{}
	for _, name := range sortedKeys(f) {
		db, table, _ := strings.Cut(name, ".")
		if table != "schema_migrations" {
			continue
		}
		var m Migration
		var dirty uint8
		err := s.Conn.QueryRow(ctx, fmt.Sprintf("SELECT version, dirty FROM %s.schema_migrations ORDER BY sequence DESC LIMIT 1", clickhouse.QuoteIdent(db))).Scan(&m.Version, &dirty)
		if err != nil && strings.Contains(err.Error(), "no rows") {
			continue // no migration has run yet
		}
		if err != nil {
			return nil, fmt.Errorf("read %s.schema_migrations on %s: %w", db, s.Addr, err)
		}
		m.Database, m.Dirty = db, dirty != 0
		out = append(out, m)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
