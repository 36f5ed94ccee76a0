// Package clickhouse is the core of tracevault's ClickHouse support: the server model (servers,
// capabilities, tables and their records, the cluster view, ZooKeeper registrations, DDL checks
// and rewrites, the parts-tar format) and the backup (Source, logical and freeze export). It
// talks to each replica over the native protocol and learns what the server can do once, at
// connect time, so the 18.16 path and the modern path (table UUIDs, Atomic databases, SYSTEM
// RESTORE REPLICA) differ only where Capabilities are read. Restoring is the subpackage restore
// and replica consistency (check, restore-replica) the subpackage replica; both build on this
// one, which imports neither.
package clickhouse
