// Package store is the snapshot repository: the only thing a disaster-recovery restore needs.
//
// Layout, modelled on restic's:
//
//	config                  format version, encryption, compression: the repository describes itself
//	data/<xx>/<id>          objects: zstd, then age when encrypted; named by a random id
//	snapshots/<id>.json     manifests, written last: a snapshot exists only once its manifest does
//	runs/                   the daemon's run history
//	locks/<name>            leases
//
// Incremental backups reuse objects by fingerprint: a source names what an object holds (for a
// ClickHouse partition, its part names), and an object with the same fingerprint in any earlier
// manifest is referenced instead of uploaded again.
//
// Crash safety follows from the order of writes: objects first, manifest last. A crash leaves
// objects no manifest references (orphans), never a manifest referencing a missing object. Prune
// removes orphans under the exclusive repository lock, which backups also hold, so it can never
// delete an object a running backup has uploaded but not yet referenced; a backup whose lease is
// lost must stop, which the Lost channel tells it.
package store
