// Package chaos holds the chaos suite of `make chaos` (and its reduced form in `make test`): the
// daemon backs up the local stack under `demo load` while faults are injected in turn, and every
// restored snapshot is checked against the load's ledger. TestChaos runs on the 18.16 cluster
// with PostgreSQL, ZooKeeper and the blob container; TestChaosModern on ch-modern (ClickHouse
// 26.7) under `demo load --modern`, whose lightweight updates and deletes each restored table
// is held to row by row. Only tests live here; the fault proxy it uses is internal/faultproxy.
package chaos
