package clickhouse

import (
	"fmt"
	"regexp"
	"strings"

	chsnap "github.com/tracevault/tracevault/snapshot/clickhouse"
)

const (
	migrationsTable = "schema_migrations"
	checksumTable   = "tracevault_migrations"
)

// tableDDL creates schema_migrations (or tracevault's checksum table, same engine choice) the
// way golang-migrate creates it with x-cluster-name and x-migrations-table-engine: on a modern
// server golang-migrate's exact statement, run in the migrated database; on a server that needs
// explicit replication arguments (18.16 rejects a bare ReplicatedMergeTree), the same table
// with the ZooKeeper path every replicated table of the database uses. Without a cluster it is
// what golang-migrate creates with x-migrations-table-engine=MergeTree, as Langfuse migrates a
// single server: its default, TinyLog, keeps rows outside MergeTree parts, which backups leave
// out, and a restored database would forget its schema version.
func tableDDL(database, table, columns, cluster string, caps chsnap.Capabilities) string {
	switch {
	case cluster == "":
		return fmt.Sprintf("CREATE TABLE %s (%s) Engine=MergeTree ORDER BY sequence", table, columns)
	case caps.DefaultReplicatedArgs:
		return fmt.Sprintf("CREATE TABLE %s ON CLUSTER %s (%s) Engine=ReplicatedMergeTree ORDER BY sequence", table, cluster, columns)
	default:
		return fmt.Sprintf("CREATE TABLE %s.%s ON CLUSTER %s (%s) Engine=ReplicatedMergeTree(%s, '{replica}') ORDER BY sequence",
			chsnap.QuoteIdent(database), table, cluster, columns, chsnap.QuoteString("/clickhouse/tables/{shard}/"+database+"/"+table))
	}
}

// golang-migrate's columns, in its order.
const migrationsColumns = "version Int64, dirty UInt8, sequence UInt64"

const checksumColumns = "version Int64, title String, checksum String, sequence UInt64"

// What a statement acts on: CREATE/ALTER/DROP/... TABLE|VIEW [IF [NOT] EXISTS] name, and the new
// name of a RENAME.
var (
	touchedHead = regexp.MustCompile("(?is)\\b(?:CREATE|ALTER|DROP|RENAME|TRUNCATE|ATTACH|DETACH|OPTIMIZE|EXCHANGE)\\s+(?:OR\\s+REPLACE\\s+)?(?:TEMPORARY\\s+)?(?:TABLE|VIEW|MATERIALIZED\\s+VIEW|LIVE\\s+VIEW|DICTIONARY|TABLES)\\s+(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?((?:[`\"]?[\\w]+[`\"]?\\.)?[`\"]?[\\w]+[`\"]?)")
	renameTo    = regexp.MustCompile("(?is)\\bTO\\s+((?:[`\"]?[\\w]+[`\"]?\\.)?[`\"]?[\\w]+[`\"]?)")
)

type tableRef struct{ database, table string }

// touchedTables lists the tables a migration's statements name, with defaultDB for
// unqualified names; the cluster check compares their columns on every replica.
func touchedTables(stmts []string, defaultDB string) []tableRef {
	seen := map[tableRef]bool{}
	var out []tableRef
	add := func(name string) {
		name = strings.NewReplacer("`", "", `"`, "").Replace(name)
		ref := tableRef{defaultDB, name}
		if db, t, ok := strings.Cut(name, "."); ok {
			ref = tableRef{db, t}
		}
		if !seen[ref] {
			seen[ref] = true
			out = append(out, ref)
		}
	}
	for _, s := range stmts {
		m := touchedHead.FindStringSubmatch(s)
		if m == nil {
			continue
		}
		add(m[1])
		if strings.HasPrefix(strings.ToUpper(strings.TrimSpace(s)), "RENAME") {
			for _, to := range renameTo.FindAllStringSubmatch(s, -1) {
				add(to[1])
			}
		}
	}
	return out
}
