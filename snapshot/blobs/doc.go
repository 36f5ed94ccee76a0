// Package blobs backs up and restores Langfuse's blob container (raw ingestion events, exports,
// media) as one source of a snapshot set: a listing of every blob, and the content of the blobs
// the repository does not hold yet, packed into a few large objects.
package blobs
