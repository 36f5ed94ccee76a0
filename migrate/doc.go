// Package migrate runs versioned schema migrations the way golang-migrate does, through its
// schema_migrations table, so either tool can continue where the other stopped; and does better
// where golang-migrate is weak: a lock that spans hosts, a check that every replica of a cluster
// agrees after each step, guidance out of a dirty state, and drift detection of applied files.
//
// The runner here is shared; a Driver (migrate/clickhouse, migrate/postgres) knows one database.
package migrate
