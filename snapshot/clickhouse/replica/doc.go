// Package replica is ClickHouse replica consistency: Check observes the cluster and judges every
// table on every replica (the health matrix behind `check` and the status page), and Rebuilder
// plans and executes `restore-replica`. It reads the core package snapshot/clickhouse (servers,
// capabilities, the cluster view, registrations, records) and loads a local table's partitions
// through restore.LoadPartition; nothing in the core imports it.
package replica
