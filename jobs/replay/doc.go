// Package replay recovers ClickHouse past its newest snapshot by asking Langfuse to re-ingest
// its own raw events: every event Langfuse accepts is first written as an object to its events
// container, and Langfuse's admin route POST /api/admin/ingestion-replay re-queues such objects
// by key. This package selects the keys written after a snapshot's cut from the container's
// listing (snapshot/blobs lists it already, with each blob's last-modified time), sends them in
// acknowledged batches and keeps a checkpoint so a killed run resumes without resending.
//
// Replaying an event ClickHouse already holds is harmless: Langfuse's tables are
// ReplacingMergeTree keyed by the event's entity, so the window starts a margin before the cut
// and errs on the side of sending too much.
package replay
