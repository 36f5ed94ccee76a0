package jobs

import (
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// SourceDetails are the lines a snapshot's sources add to `tracevault show` beyond their
// objects: the blob container, its cut and its check against ClickHouse's file log.
func SourceDetails(m *store.Manifest) []string { return blobs.Describe(m) }
