package devstack

import (
	"fmt"
	"strconv"
	"strings"
)

// ClickHouseTOML is the [clickhouse] table of a tracevault configuration for the stack's
// three-replica cluster, backing up database db. It ends with a newline and no other table, so
// a caller may append keys of its own ([clickhouse] include_tables, say) right after it.
func (e *Env) ClickHouseTOML(db string) string {
	return fmt.Sprintf("[clickhouse]\naddresses = %s\nhttp_addresses = %s\ncluster = %q\ndatabases = [%q]\n",
		TOMLList(e.CHNative), TOMLList(e.CHHTTP), e.CHCluster, db)
}

// ZooKeeperTOML is the [zookeeper] table for the stack's ZooKeeper; like ClickHouseTOML, keys
// of the caller's may follow it.
func (e *Env) ZooKeeperTOML() string {
	return fmt.Sprintf("[zookeeper]\nservers = [%q]\n", e.ZK)
}

// TOMLList is a TOML array of the strings, each quoted.
func TOMLList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
