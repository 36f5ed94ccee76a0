// Package zookeeper records, compares, checks and restores the ZooKeeper metadata that
// ClickHouse replication depends on: each replicated table's path, the replicas registered under
// it, and the ensemble's own health, since a ZooKeeper out of memory stops all replication.
package zookeeper
