package jobs

import (
	"context"
	"time"

	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// SnapshotSummary is one snapshot as a catalog row: `tracevault list` prints it (with --json,
// these fields) and the status page's API serves it (/api/v1/snapshots, the status document).
type SnapshotSummary struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Status  string    `json:"status"`
	Sources []string  `json:"sources"`
	// Scope says what the set holds against what the configuration covers ("full", or its
	// sources and how a request narrowed them); only a FullSet counts as "latest".
	Scope    string   `json:"scope"`
	FullSet  bool     `json:"full_set"`
	Bytes    int64    `json:"bytes"`
	NewBytes int64    `json:"new_bytes"`
	Objects  int      `json:"objects"`
	Seconds  float64  `json:"duration_seconds"`
	Tags     []string `json:"tags,omitempty"`
	Error    string   `json:"error,omitempty"`
	// BlobCheck is the blob container's check against ClickHouse's file log, where the
	// snapshot holds the container.
	BlobCheck *blobs.Check `json:"blob_check,omitempty"`
	// Manifest names a damaged manifest's file (status StatusDamaged, no id), listed so that
	// it is seen; Fix says what to do about it.
	Manifest string `json:"manifest,omitempty"`
	Fix      string `json:"fix,omitempty"`
}

// StatusDamaged is the status of a catalog row whose manifest cannot be read.
const StatusDamaged = "damaged"

// Summarize is snapshot m as a catalog row; configured are the sources the configuration
// covers, which its scope is told against. The error is the manifest's, as recorded.
func Summarize(m *store.Manifest, configured []string) SnapshotSummary {
	t := m.Totals()
	sum := SnapshotSummary{ID: m.ID, Time: m.Start, Status: m.Status, Sources: m.Sources(),
		Scope: m.DescribeScope(configured), FullSet: m.FullScope(configured), Bytes: t.Bytes, NewBytes: t.NewBytes,
		Objects: t.Objects, Seconds: m.End.Sub(m.Start).Seconds(), Tags: m.Tags, Error: m.Error}
	if sec, ok := blobs.SectionOf(m); ok {
		sum.BlobCheck = sec.Check
	}
	return sum
}

// SummarizeDamaged is a damaged manifest as a catalog row.
func SummarizeDamaged(d store.DamagedManifest) SnapshotSummary {
	return SnapshotSummary{Status: StatusDamaged, Manifest: d.Name, Error: d.Error, Fix: d.Fix()}
}

// SourceDetails are the lines a snapshot's sources add to `tracevault show` beyond their
// objects: the blob container, its cut and its check against ClickHouse's file log.
func SourceDetails(m *store.Manifest) []string { return blobs.Describe(m) }

// DeleteSnapshot forgets one snapshot, named by its id or a unique prefix of it, under the
// repository's delete lock, and returns its id; prune then frees what nothing else references.
func DeleteSnapshot(ctx context.Context, repo *store.Repository, id string) (string, error) {
	if err := repo.RefuseAppendOnly("delete " + id); err != nil {
		return "", err
	}
	lock, err := repo.Lock(ctx, "delete", time.Minute)
	if err != nil {
		return "", err
	}
	defer lock.Release(ctx)
	m, err := repo.Snapshot(ctx, id)
	if err != nil {
		return "", err
	}
	return m.ID, repo.DeleteSnapshot(ctx, m.ID)
}

// DeleteDamaged removes a damaged manifest by the file name `list` and `verify` give, under the
// repository's delete lock; only a file the repository lists as damaged is removed.
func DeleteDamaged(ctx context.Context, repo *store.Repository, name string) error {
	if err := repo.RefuseAppendOnly("delete " + name); err != nil {
		return err
	}
	lock, err := repo.Lock(ctx, "delete", time.Minute)
	if err != nil {
		return err
	}
	defer lock.Release(ctx)
	return repo.DeleteDamaged(ctx, name)
}
