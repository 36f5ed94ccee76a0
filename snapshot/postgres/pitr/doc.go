// Package pitr is PostgreSQL point-in-time recovery through logical decoding: a replication
// slot streams every committed change of the backed-up schemas (pgoutput) into the repository
// as segments, after a base snapshot exported by the slot itself, so base + segments replay to
// any commit. It needs only what managed servers allow (wal_level = logical), no WAL archive.
//
// Layout in the repository, outside data/ (prune's sweep) and snapshots/:
//
//	pitr/<chain>/chain.json             the chain: slot, base snapshot, its consistent LSN
//	pitr/<chain>/seg/<end LSN>-<tag>.seg a segment's body (segment.go), through the codec; its
//	                                    record names the tag (none before tags: <end LSN>.seg)
//	pitr/<chain>/seg/<end LSN>.json     its record; a segment exists once its record does
//	pitr/<chain>/seg/<start LSN>.next   the claim of the segment after start (cut.go), by its writer
//	pitr/<chain>/head.json              coverage past the last segment while no transaction came
//
// In an encrypted repository every record (chain, segment, head) carries MACs under the
// repository's authentication keys over its content and its path (records.go): a record that
// someone who can write the repository but lacks the keys forged, altered, swapped or copied from
// another chain is refused, naming it. The segment bodies are bound by the SHA-256 in their
// records.
//
// Writers of one chain are fenced by the repository, not only by the slot: a segment is stored
// only by the writer that created, create-only, the claim on its start, which is where the
// chain's newest record ends; its record is created create-only too. A streamer that stalled
// while another took the slot finds the chain gone on without it, stores nothing and stops.
//
// A chain is one slot's life from its base. A schema change, or a lost slot, ends the chain and
// starts a new one with a new base.
package pitr
