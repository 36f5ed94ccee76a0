// Package restore is the ClickHouse restore: Restorer plans a restore of a snapshot's
// clickhouse section (databases, tables, partitions, views; restore --cluster's adjustments for
// a cluster after a disaster) and executes it, loading each partition through a staging table
// (an INSERT of a Native object, or frozen parts unpacked into detached/ and attached) and an
// atomic REPLACE PARTITION, then checking row counts on every replica. Plan.RefuseLive guards a
// drill's scratch restore. It reads the core package snapshot/clickhouse (servers, capabilities,
// records, DDL checks and rewrites, the parts-tar format, the cluster view); the core never
// imports it. The replica package loads a local table's partitions through LoadPartition.
package restore
