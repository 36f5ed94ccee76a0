// Command tracevault backs up and restores a self-hosted Langfuse deployment: PostgreSQL,
// a replicated ClickHouse cluster and its ZooKeeper metadata, to Azure Blob Storage or a
// directory. This package is flags in, rendering out: it parses flags into a request, calls
// package jobs, and prints what comes back.
package main
