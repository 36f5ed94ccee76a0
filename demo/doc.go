// Package demo builds a Langfuse-like deployment to back up: the ClickHouse schema of Langfuse's
// architecture (replicated traces, observations, scores and their aggregates and views) and the
// operational PostgreSQL tables, both as versioned migrations (demo/migrations), filled
// with realistic rows that are deterministic for a seed.
package demo
